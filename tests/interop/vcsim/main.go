// vcsim serves a simulated vCenter (govmomi's simulator package) over HTTPS
// for libvpoller's interop tests and demo: a VPX inventory with standalone
// hosts, a cluster and virtual machines, one of them with a non-ASCII name.
// It prints the SDK URL once it listens, and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:443", "host:port to serve the vSphere API on (vconnector always uses port 443)")
	hosts := flag.Int("hosts", 2, "standalone hosts")
	clusters := flag.Int("clusters", 1, "clusters")
	clusterHosts := flag.Int("cluster-hosts", 2, "hosts in each cluster")
	machines := flag.Int("vms", 2, "virtual machines on each host and resource pool")
	rename := flag.String("rename", "DC0_H0_VM1=Zürich-ВМ-虚拟机", "give one VM another name: OLD=NEW (empty: none)")
	caOut := flag.String("ca-out", "", "write the PEM certificate of the CA that signed the server certificate here")
	flag.Parse()

	model := simulator.VPX()
	model.Host = *hosts
	model.Cluster = *clusters
	model.ClusterHost = *clusterHosts
	model.Machine = *machines
	if err := model.Create(); err != nil {
		log.Fatalf("vcsim: create the inventory: %v", err)
	}
	defer model.Remove()

	if *rename != "" {
		parts := strings.SplitN(*rename, "=", 2)
		if len(parts) != 2 {
			log.Fatalf("vcsim: -rename wants OLD=NEW, got %q", *rename)
		}
		renameVM(parts[0], parts[1])
	}

	setHistoricalIntervals()
	setLatestEvent()

	model.Service.Listen = &url.URL{Host: *listen}
	// A certificate of our own: Go's built-in test certificate has a key too
	// weak for current TLS clients (rustls refuses RSA below 2048 bits).
	certificate, caPEM, err := makeCertificate()
	if err != nil {
		log.Fatalf("vcsim: make a certificate: %v", err)
	}
	if *caOut != "" {
		if err := os.WriteFile(*caOut, caPEM, 0o644); err != nil {
			log.Fatalf("vcsim: write %s: %v", *caOut, err)
		}
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{certificate}}
	server := model.Service.NewServer()
	defer server.Close()

	if err := addSnapshots(server.URL, "DC0_H0_VM0"); err != nil {
		log.Fatalf("vcsim: snapshots: %v", err)
	}

	fmt.Println(server.URL.String())
	os.Stdout.Sync()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}

// renameVM changes the name of the virtual machine called old to name.
func renameVM(old, name string) {
	for _, entity := range simulator.Map.All("VirtualMachine") {
		if entity.Entity().Name == old {
			simulator.Map.Update(entity.(mo.Reference), []types.PropertyChange{{Name: "name", Val: name}})
			return
		}
	}
	log.Fatalf("vcsim: no virtual machine named %q to rename", old)
}

// setHistoricalIntervals gives the performance manager vCenter's four
// default historical intervals (the simulator has none).
func setHistoricalIntervals() {
	ref := types.ManagedObjectReference{Type: "PerformanceManager", Value: "PerfMgr"}
	manager, ok := simulator.Map.Get(ref).(*simulator.PerformanceManager)
	if !ok {
		log.Fatalf("vcsim: no performance manager")
	}
	manager.HistoricalInterval = []types.PerfInterval{
		{Key: 1, SamplingPeriod: 300, Name: "Past day", Length: 86400, Level: 1, Enabled: true},
		{Key: 2, SamplingPeriod: 1800, Name: "Past week", Length: 604800, Level: 1, Enabled: true},
		{Key: 3, SamplingPeriod: 7200, Name: "Past month", Length: 2592000, Level: 1, Enabled: true},
		{Key: 4, SamplingPeriod: 86400, Name: "Past year", Length: 31536000, Level: 1, Enabled: true},
	}
}

// setLatestEvent gives the event manager a latest event (the simulator
// leaves latestEvent unset), with a non-ASCII message.
func setLatestEvent() {
	manager := simulator.Map.EventManager()
	manager.LatestEvent = &types.GeneralUserEvent{
		GeneralEvent: types.GeneralEvent{
			Event: types.Event{
				Key:                  1,
				ChainId:              1,
				CreatedTime:          time.Now(),
				UserName:             "root",
				FullFormattedMessage: "User root logged event: Wartung in Zürich",
			},
			Message: "Wartung in Zürich",
		},
	}
}

// addSnapshots gives the virtual machine vm a chain of three snapshots
// (before-upgrade, after-upgrade below it, after-patch below that), through
// the API.
func addSnapshots(u *url.URL, vm string) error {
	ctx := context.Background()
	client, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		return err
	}
	defer client.Logout(ctx)
	var ref types.ManagedObjectReference
	for _, entity := range simulator.Map.All("VirtualMachine") {
		if entity.Entity().Name == vm {
			ref = entity.Reference()
		}
	}
	if ref.Value == "" {
		return fmt.Errorf("no virtual machine named %q", vm)
	}
	machine := object.NewVirtualMachine(client.Client, ref)
	for _, name := range []string{"before-upgrade", "after-upgrade", "after-patch"} {
		task, err := machine.CreateSnapshot(ctx, name, "libvpoller test snapshot "+name, false, false)
		if err != nil {
			return err
		}
		if err := task.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// makeCertificate makes a throw-away CA and a server certificate it signs,
// for 127.0.0.0/8 addresses, ::1 and localhost (ECDSA P-256, valid one day).
func makeCertificate() (tls.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vcsim test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	addresses := []net.IP{net.IPv6loopback}
	for last := 1; last < 255; last++ {
		addresses = append(addresses, net.IPv4(127, 0, 0, byte(last)))
	}
	serverTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  addresses,
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, ca, &serverKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certificate := tls.Certificate{Certificate: [][]byte{serverDER, caDER}, PrivateKey: serverKey}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return certificate, caPEM, nil
}
