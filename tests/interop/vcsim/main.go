// vcsim serves a simulated vCenter (govmomi's simulator package) over HTTPS
// for libvpoller's interop tests and demo: a VPX inventory with standalone
// hosts, a cluster and virtual machines, one of them with a non-ASCII name.
// It prints the SDK URL once it listens, and serves until SIGINT or SIGTERM.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

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

	model.Service.Listen = &url.URL{Host: *listen}
	model.Service.TLS = new(tls.Config)
	server := model.Service.NewServer()
	defer server.Close()

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
