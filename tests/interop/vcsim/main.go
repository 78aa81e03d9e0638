// vcsim serves a simulated vCenter (govmomi's simulator package) over HTTPS
// for libvpoller's interop tests and demo: a VPX inventory with standalone
// hosts, a cluster and virtual machines, one of them with a non-ASCII name.
// It prints the SDK URL once it listens, and serves until SIGINT or SIGTERM.
//
// Tests steer it through its standard input, one command a line (see
// controller.run): power, rename, create and destroy virtual machines, put
// hosts in maintenance mode, end every client's session, count the SOAP
// calls served. Each command answers one line on standard output, `ok ...`
// or `error TEXT`. When standard input is closed, /dev/null or a terminal
// this process is in the background of, no commands are read; serving goes
// on.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// controlUserAgent is the User-Agent of the controller's own client: its
// calls are left out of the call counts.
const controlUserAgent = "libvpoller-vcsim-control"

func main() {
	// First, before anything opens a file that could take descriptor 0.
	commands := stdinOpen()
	listen := flag.String("listen", "127.0.0.1:443", "host:port to serve the vSphere API on (vconnector always uses port 443)")
	hosts := flag.Int("hosts", 2, "standalone hosts")
	clusters := flag.Int("clusters", 1, "clusters")
	clusterHosts := flag.Int("cluster-hosts", 2, "hosts in each cluster")
	machines := flag.Int("vms", 2, "virtual machines on each host and resource pool")
	rename := flag.String("rename", "DC0_H0_VM1=Zürich-ВМ-虚拟机", "give one VM another name: OLD=NEW (empty: none)")
	caOut := flag.String("ca-out", "", "write the PEM certificate of the CA that signed the server certificate here")
	delayMs := flag.Int("delay-ms", 0, "make every SOAP call take this many milliseconds longer (a loaded vCenter)")
	tlsDir := flag.String("tls-dir", "", "keep the server certificate, its key and the CA here: reused when a valid set is there, else made and written there")
	flag.Parse()

	raiseFileLimit()

	model := simulator.VPX()
	model.Host = *hosts
	model.Cluster = *clusters
	model.ClusterHost = *clusterHosts
	model.Machine = *machines
	// Set before Create, which hands the service a pointer to it; every
	// call served from then on waits this long, the controller's own too.
	model.DelayConfig.Delay = *delayMs
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
	certificate, caPEM, err := serverCertificate(*tlsDir)
	if err != nil {
		log.Fatalf("vcsim: the server certificate: %v", err)
	}
	if *caOut != "" {
		if err := os.WriteFile(*caOut, caPEM, 0o644); err != nil {
			log.Fatalf("vcsim: write %s: %v", *caOut, err)
		}
	}
	// The server starts serving inside NewServer, before its handler can be
	// wrapped by the call counter; TLS handshakes wait at this gate until it
	// is, so that no request is served by (or races with) the bare handler.
	ready := make(chan struct{})
	model.Service.TLS = &tls.Config{
		Certificates: []tls.Certificate{certificate},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			<-ready
			return nil, nil
		},
	}
	server := model.Service.NewServer()
	defer server.Close()
	calls := &callCounter{counts: map[string]uint64{}}
	server.Config.Handler = calls.wrap(server.Config.Handler)
	close(ready)

	control, err := newController(server.URL, calls)
	if err != nil {
		log.Fatalf("vcsim: log the controller in: %v", err)
	}
	if err := addSnapshots(control.client, "DC0_H0_VM0"); err != nil {
		log.Fatalf("vcsim: snapshots: %v", err)
	}

	fmt.Println(server.URL.String())
	os.Stdout.Sync()

	// Without this a write to a closed stdout would end the process; with
	// it the write fails and the controller stops reading commands.
	signal.Ignore(syscall.SIGPIPE)
	if commands && !stdinInBackground() {
		go control.serve(os.Stdin, os.Stdout)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}

// raiseFileLimit raises the soft limit on open files to the hard one: the
// simulator keeps a file open per virtual machine.
func raiseFileLimit() {
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		log.Printf("vcsim: the open-file limit: %v", err)
		return
	}
	if limit.Cur < limit.Max {
		limit.Cur = limit.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
			log.Printf("vcsim: raise the open-file limit to %d: %v", limit.Max, err)
		}
	}
}

// stdinOpen tells whether standard input is open. When it is not (started
// with `<&-`), descriptor 0 is free for whatever is opened first, and that
// must not be read as commands: an epoll descriptor made while packages are
// initialised (by the time main runs) or, if still free, /dev/null opened
// here to hold it.
func stdinOpen() bool {
	var status syscall.Stat_t
	if syscall.Fstat(0, &status) != nil {
		if null, err := syscall.Open("/dev/null", syscall.O_RDONLY, 0); err == nil && null != 0 {
			_ = syscall.Close(null)
		}
		return false
	}
	target, err := os.Readlink("/proc/self/fd/0")
	return err != nil || !strings.HasPrefix(target, "anon_inode:")
}

// stdinInBackground tells whether standard input is a terminal whose
// foreground is another process group (`vcsim &` in an interactive shell):
// reading it would stop this process (SIGTTIN).
func stdinInBackground() bool {
	var foreground int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, 0, syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&foreground)))
	if errno != 0 {
		return false // not a terminal
	}
	return int(foreground) != syscall.Getpgrp()
}

// callCounter counts the HTTP requests the server receives, by SOAP method
// (the first element inside the envelope's Body), or by HTTP method and
// path for a request without one (`GET:/about`). A request is counted when
// it arrives, before the simulator handles it (and before its delay).
// Requests of the controller's own client are told apart by their
// User-Agent (controlUserAgent) and not counted.
type callCounter struct {
	mu     sync.Mutex
	counts map[string]uint64
}

func (c *callCounter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() != controlUserAgent {
			name := r.Method + ":" + r.URL.Path
			if r.Method == http.MethodPost {
				body, err := io.ReadAll(r.Body)
				_ = r.Body.Close()
				if err == nil {
					if method := soapMethod(body); method != "" {
						name = method
					}
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			c.mu.Lock()
			c.counts[name]++
			c.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// text is `METHOD=COUNT` pairs separated by spaces, by method name.
func (c *callCounter) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	pairs := make([]string, 0, len(c.counts))
	for method, count := range c.counts {
		pairs = append(pairs, fmt.Sprintf("%s=%d", method, count))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, " ")
}

func (c *callCounter) reset() {
	c.mu.Lock()
	c.counts = map[string]uint64{}
	c.mu.Unlock()
}

// soapMethod is the name of the first element inside a SOAP envelope's
// Body (the envelope's child), "" if there is none.
func soapMethod(body []byte) string {
	decoder := xml.NewDecoder(bytes.NewReader(body))
	depth := 0
	inBody := false
	for {
		token, err := decoder.RawToken()
		if err != nil {
			return ""
		}
		switch element := token.(type) {
		case xml.StartElement:
			depth++
			if inBody {
				return element.Name.Local
			}
			inBody = depth == 2 && element.Name.Local == "Body"
		case xml.EndElement:
			depth--
			inBody = false
		}
	}
}

// controller carries out the commands read from standard input through a
// vSphere API client of its own, logged in once (and again if its session
// is ended), so that the simulator reports their effects to every client as
// it does for any API call.
type controller struct {
	client *govmomi.Client
	login  *url.Userinfo
	calls  *callCounter
}

func newController(u *url.URL, calls *callCounter) (*controller, error) {
	ctx := context.Background()
	soapClient := soap.NewClient(u, true)
	soapClient.UserAgent = controlUserAgent
	vimClient, err := vim25.NewClient(ctx, soapClient)
	if err != nil {
		return nil, err
	}
	client := &govmomi.Client{Client: vimClient, SessionManager: session.NewManager(vimClient)}
	if err := client.Login(ctx, u.User); err != nil {
		return nil, err
	}
	return &controller{client: client, login: u.User, calls: calls}, nil
}

// serve answers the commands read from in, one line each on out, until in
// ends or out cannot be written.
func (c *controller) serve(in io.Reader, out io.Writer) {
	lines := bufio.NewScanner(in)
	lines.Buffer(make([]byte, 64*1024), 1024*1024)
	for lines.Scan() {
		answer, err := c.run(strings.Fields(lines.Text()))
		if err != nil {
			answer = "error " + strings.Join(strings.Fields(describe(err)), " ")
		} else if answer == "" {
			answer = "ok"
		} else {
			answer = "ok " + answer
		}
		if _, err := fmt.Fprintln(out, answer); err != nil {
			return
		}
	}
}

// run carries out one command (its words) and returns the text to answer
// after `ok`. A command refused because the controller's session is gone
// (expired, ended by a client) is run again after a new login.
func (c *controller) run(words []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	answer, err := c.dispatch(ctx, words)
	if isNotAuthenticated(err) {
		if err := c.client.Login(ctx, c.login); err != nil {
			return "", fmt.Errorf("log the controller in again: %v", err)
		}
		answer, err = c.dispatch(ctx, words)
	}
	return answer, err
}

// describe is the text of err, with the fault's type and what it tells
// when err is a fault a task ended with (whose message in the simulator is
// only the fault's Go type).
func describe(err error) string {
	failed, ok := err.(task.Error)
	if !ok || failed.LocalizedMethodFault == nil {
		return err.Error()
	}
	fault := failed.Fault()
	kind := strings.TrimPrefix(fmt.Sprintf("%T", fault), "*types.")
	switch fault := fault.(type) {
	case *types.InvalidPowerState:
		return fmt.Sprintf("%s: the virtual machine is %s", kind, fault.ExistingState)
	case *types.InvalidState:
		return kind + ": the object is in a state that does not allow this"
	}
	if message := failed.LocalizedMessage; message != "" && !strings.HasSuffix(message, kind) {
		return kind + ": " + message
	}
	return kind
}

func isNotAuthenticated(err error) bool {
	if err == nil || !soap.IsSoapFault(err) {
		return false
	}
	_, ok := soap.ToSoapFault(err).VimFault().(types.NotAuthenticated)
	return ok
}

func (c *controller) dispatch(ctx context.Context, words []string) (string, error) {
	if len(words) == 0 {
		return "", errors.New("empty command")
	}
	command, args := words[0], words[1:]
	want := func(count int, usage string) error {
		if len(args) != count {
			return fmt.Errorf("usage: %s %s", command, usage)
		}
		return nil
	}
	switch command {
	case "hello":
		return "", want(0, "")
	case "poweroff", "poweron":
		if err := want(1, "VMNAME"); err != nil {
			return "", err
		}
		vm, err := c.virtualMachine(args[0])
		if err != nil {
			return "", err
		}
		if command == "poweroff" {
			return "", wait(ctx)(vm.PowerOff(ctx))
		}
		return "", wait(ctx)(vm.PowerOn(ctx))
	case "rename":
		if err := want(2, "OLDNAME NEWNAME"); err != nil {
			return "", err
		}
		vm, err := c.virtualMachine(args[0])
		if err != nil {
			return "", err
		}
		return "", wait(ctx)(vm.Rename(ctx, args[1]))
	case "create":
		if err := want(1, "VMNAME"); err != nil {
			return "", err
		}
		return c.create(ctx, args[0])
	case "destroy":
		if err := want(1, "VMNAME"); err != nil {
			return "", err
		}
		return "", c.destroy(ctx, args[0])
	case "maintenance":
		if err := want(2, "HOSTNAME on|off"); err != nil {
			return "", err
		}
		return "", c.maintenance(ctx, args[0], args[1])
	case "expire-sessions":
		if err := want(0, ""); err != nil {
			return "", err
		}
		return c.expireSessions(ctx)
	case "calls":
		if len(args) == 1 && args[0] == "reset" {
			c.calls.reset()
			return "", nil
		}
		if err := want(0, "[reset]"); err != nil {
			return "", err
		}
		return c.calls.text(), nil
	}
	return "", fmt.Errorf("unknown command %s (hello, poweroff, poweron, rename, create, destroy, maintenance, expire-sessions, calls)", command)
}

// wait returns a function that waits for the task a call started.
func wait(ctx context.Context) func(*object.Task, error) error {
	return func(task *object.Task, err error) error {
		if err != nil {
			return err
		}
		return task.Wait(ctx)
	}
}

// named is every managed entity of type kind named name, in the whole
// inventory (the simulator's registry: no API calls).
func named(kind, name string) []types.ManagedObjectReference {
	var found []types.ManagedObjectReference
	for _, entity := range simulator.Map.All(kind) {
		var current string
		simulator.Map.WithLock(entity, func() { current = entity.Entity().Name })
		if current == name {
			found = append(found, entity.Reference())
		}
	}
	return found
}

// lookup finds the one managed entity of type kind (a label in messages)
// named name.
func lookup(kind, label, name string) (types.ManagedObjectReference, error) {
	found := named(kind, name)
	switch len(found) {
	case 0:
		return types.ManagedObjectReference{}, fmt.Errorf("no %s named %s", label, name)
	case 1:
		return found[0], nil
	}
	return types.ManagedObjectReference{}, fmt.Errorf("%d objects of type %s named %s", len(found), kind, name)
}

func (c *controller) virtualMachine(name string) (*object.VirtualMachine, error) {
	ref, err := lookup("VirtualMachine", "virtual machine", name)
	if err != nil {
		return nil, err
	}
	return object.NewVirtualMachine(c.client.Client, ref), nil
}

// create makes a virtual machine called name (powered off) in the first
// datacenter's VM folder, on its first host and that host's resource pool,
// with its files on the host's first datastore; answers its reference.
func (c *controller) create(ctx context.Context, name string) (string, error) {
	// vCenter refuses a name taken in the folder; the simulator does not,
	// and lookups by name would be ambiguous.
	if len(named("VirtualMachine", name)) != 0 {
		return "", fmt.Errorf("a virtual machine named %s exists", name)
	}
	finder := find.NewFinder(c.client.Client, false)
	datacenters, err := finder.DatacenterList(ctx, "*")
	if err != nil {
		return "", err
	}
	datacenter := datacenters[0]
	finder.SetDatacenter(datacenter)
	hosts, err := finder.HostSystemList(ctx, "*")
	if err != nil {
		return "", err
	}
	host := hosts[0]
	pool, err := host.ResourcePool(ctx)
	if err != nil {
		return "", err
	}
	folders, err := datacenter.Folders(ctx)
	if err != nil {
		return "", err
	}
	var hostProperties mo.HostSystem
	if err := host.Properties(ctx, host.Reference(), []string{"datastore"}, &hostProperties); err != nil {
		return "", err
	}
	if len(hostProperties.Datastore) == 0 {
		return "", fmt.Errorf("host %s has no datastore", host.Name())
	}
	datastore, err := object.NewDatastore(c.client.Client, hostProperties.Datastore[0]).ObjectName(ctx)
	if err != nil {
		return "", err
	}
	spec := types.VirtualMachineConfigSpec{
		Name:     name,
		GuestId:  string(types.VirtualMachineGuestOsIdentifierOtherGuest),
		NumCPUs:  1,
		MemoryMB: 64,
		Files:    &types.VirtualMachineFileInfo{VmPathName: "[" + datastore + "]"},
	}
	task, err := folders.VmFolder.CreateVM(ctx, spec, pool, host)
	if err != nil {
		return "", err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return "", err
	}
	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		return "", fmt.Errorf("CreateVM_Task answered %T", info.Result)
	}
	return ref.Value, nil
}

// destroy removes the virtual machine called name, powering it off first
// if it is not off.
func (c *controller) destroy(ctx context.Context, name string) error {
	vm, err := c.virtualMachine(name)
	if err != nil {
		return err
	}
	state, err := vm.PowerState(ctx)
	if err != nil {
		return err
	}
	if state != types.VirtualMachinePowerStatePoweredOff {
		if err := wait(ctx)(vm.PowerOff(ctx)); err != nil {
			return err
		}
	}
	return wait(ctx)(vm.Destroy(ctx))
}

// maintenance puts the host called name in maintenance mode (on) or takes
// it out (off).
func (c *controller) maintenance(ctx context.Context, name, mode string) error {
	if mode != "on" && mode != "off" {
		return fmt.Errorf("maintenance mode is on or off, not %s", mode)
	}
	ref, err := lookup("HostSystem", "host", name)
	if err != nil {
		return err
	}
	host := object.NewHostSystem(c.client.Client, ref)
	on := mode == "on"
	if on {
		err = wait(ctx)(host.EnterMaintenanceMode(ctx, 0, false, nil))
	} else {
		err = wait(ctx)(host.ExitMaintenanceMode(ctx, 0))
	}
	if err != nil {
		return err
	}
	// vCenter reports the change to property collectors; the simulator's
	// tasks set the field without telling them. Tell them, so that
	// WaitForUpdatesEx reports it.
	if entity := simulator.Map.Get(ref); entity != nil {
		simulator.Map.WithLock(entity, func() {
			simulator.Map.Update(entity, []types.PropertyChange{
				{Name: "runtime.inMaintenanceMode", Val: on},
				{Name: "summary.runtime.inMaintenanceMode", Val: on},
			})
		})
	}
	return nil
}

// expireSessions ends every session but the controller's own
// (SessionManager.TerminateSession), as vCenter does when sessions expire;
// answers how many it ended.
func (c *controller) expireSessions(ctx context.Context) (string, error) {
	var manager mo.SessionManager
	err := c.client.PropertyCollector().RetrieveOne(ctx, c.client.SessionManager.Reference(),
		[]string{"sessionList", "currentSession"}, &manager)
	if err != nil {
		return "", err
	}
	if manager.CurrentSession == nil {
		return "", errors.New("the controller has no session")
	}
	ended := 0
	for _, user := range manager.SessionList {
		if user.Key == manager.CurrentSession.Key {
			continue
		}
		err := c.client.SessionManager.TerminateSession(ctx, []string{user.Key})
		if err != nil {
			if soap.IsSoapFault(err) {
				if _, gone := soap.ToSoapFault(err).VimFault().(types.NotFound); gone {
					continue // logged out meanwhile
				}
			}
			return "", err
		}
		ended++
	}
	return fmt.Sprint(ended), nil
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
func addSnapshots(client *govmomi.Client, vm string) error {
	ctx := context.Background()
	ref, err := lookup("VirtualMachine", "virtual machine", vm)
	if err != nil {
		return err
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

// The files of -tls-dir.
const (
	serverCertFile = "server.pem" // the server certificate, then the CA's
	serverKeyFile  = "server-key.pem"
	caCertFile     = "ca.pem"
)

// serverCertificate is the certificate to serve and the PEM of the CA that
// signed it: the ones in dir if it holds a set valid for another hour, else
// new ones, written to dir (when dir is not "") for the next start.
func serverCertificate(dir string) (tls.Certificate, []byte, error) {
	if dir != "" {
		if certificate, caPEM, err := loadCertificate(dir); err == nil {
			return certificate, caPEM, nil
		}
	}
	certPEM, keyPEM, caPEM, err := makeCertificate()
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certificate, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return tls.Certificate{}, nil, err
		}
		// The CA last: a set is complete once it is there.
		for _, file := range []struct {
			name string
			data []byte
			mode os.FileMode
		}{{serverKeyFile, keyPEM, 0o600}, {serverCertFile, certPEM, 0o644}, {caCertFile, caPEM, 0o644}} {
			if err := writeFileAtomically(filepath.Join(dir, file.name), file.data, file.mode); err != nil {
				return tls.Certificate{}, nil, err
			}
		}
	}
	return certificate, caPEM, nil
}

// loadCertificate reads the set serverCertificate wrote to dir, if it is
// complete and the server certificate is valid for another hour.
func loadCertificate(dir string) (tls.Certificate, []byte, error) {
	caPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certificate, err := tls.LoadX509KeyPair(filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(certificate.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if now := time.Now(); now.Before(leaf.NotBefore) || now.Add(time.Hour).After(leaf.NotAfter) {
		return tls.Certificate{}, nil, errors.New("the certificate is not valid long enough")
	}
	return certificate, caPEM, nil
}

func writeFileAtomically(path string, data []byte, mode os.FileMode) error {
	temporary := path + ".new"
	if err := os.WriteFile(temporary, data, mode); err != nil {
		return err
	}
	return os.Rename(temporary, path)
}

// makeCertificate makes a throw-away CA and a server certificate it signs,
// for 127.0.0.0/8 addresses, ::1 and localhost (ECDSA P-256, valid one day):
// the PEM of the server certificate followed by the CA's, of the server's
// key, and of the CA certificate.
func makeCertificate() (certPEM, keyPEM, caPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
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
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
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
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(serverKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverDER}), caPEM...)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, caPEM, nil
}
