// agentloop is the floor of the vSphere agent's benchmark: a plain govmomi
// loop making the SOAP calls the agent makes for a task, and writing the
// result as JSON, with nothing else (no lookups by name after the first, no
// task checks, no reply formatting beyond encoding/json).
//
//	agentloop URL CA-FILE TASK CALLS [GOROUTINES]
//
// TASK is vm.get, host.get, vm.discover or about. Prints seconds per task
// with one goroutine, else tasks per second over all goroutines.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "agentloop: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 5 {
		fail("usage: agentloop URL CA-FILE TASK CALLS [GOROUTINES]")
	}
	ctx := context.Background()
	u, err := url.Parse(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	task := os.Args[3]
	calls, _ := strconv.Atoi(os.Args[4])
	goroutines := 1
	if len(os.Args) > 5 {
		goroutines, _ = strconv.Atoi(os.Args[5])
	}

	pem, err := ioutil.ReadFile(os.Args[2])
	if err != nil {
		fail("%v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	transport := soap.NewClient(u, false)
	transport.DefaultTransport().TLSClientConfig.RootCAs = roots
	// As many idle keep-alive connections as goroutines, like the agent's pool.
	transport.DefaultTransport().MaxIdleConnsPerHost = 64
	client, err := vim25.NewClient(ctx, transport)
	if err != nil {
		fail("%v", err)
	}
	manager := session.NewManager(client)
	if err := manager.Login(ctx, u.User); err != nil {
		fail("login: %v", err)
	}

	one := prepare(ctx, client, task)
	for i := 0; i < 20; i++ {
		one()
	}
	started := time.Now()
	var group sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		group.Add(1)
		go func() {
			defer group.Done()
			for i := 0; i < calls; i++ {
				one()
			}
		}()
	}
	group.Wait()
	elapsed := time.Since(started).Seconds()
	if goroutines == 1 {
		fmt.Printf("%.9f\n", elapsed/float64(calls))
	} else {
		fmt.Printf("%.3f\n", float64(calls*goroutines)/elapsed)
	}
}

// prepare finds what the task needs once (the agent caches lookups and
// container views too) and returns one run of the task.
func prepare(ctx context.Context, client *vim25.Client, task string) func() {
	collector := property.DefaultCollector(client)
	finder := find.NewFinder(client, true)
	datacenter, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		fail("%v", err)
	}
	finder.SetDatacenter(datacenter)
	encode := func(value interface{}) {
		if _, err := json.Marshal(value); err != nil {
			fail("%v", err)
		}
	}
	switch task {
	case "vm.get":
		vm, err := finder.VirtualMachine(ctx, "DC0_H0_VM0")
		if err != nil {
			fail("%v", err)
		}
		return func() {
			var machine mo.VirtualMachine
			if err := collector.RetrieveOne(ctx, vm.Reference(), []string{"name", "runtime.powerState"}, &machine); err != nil {
				fail("%v", err)
			}
			encode(map[string]interface{}{"name": machine.Name, "runtime.powerState": machine.Runtime.PowerState})
		}
	case "host.get":
		host, err := finder.HostSystem(ctx, "DC0_H0")
		if err != nil {
			fail("%v", err)
		}
		return func() {
			var system mo.HostSystem
			if err := collector.RetrieveOne(ctx, host.Reference(), []string{"name", "runtime.connectionState"}, &system); err != nil {
				fail("%v", err)
			}
			encode(map[string]interface{}{"name": system.Name, "runtime.connectionState": system.Runtime.ConnectionState})
		}
	case "vm.discover":
		views := view.NewManager(client)
		container, err := views.CreateContainerView(ctx, client.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
		if err != nil {
			fail("%v", err)
		}
		return func() {
			var machines []mo.VirtualMachine
			if err := container.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "runtime.powerState"}, &machines); err != nil {
				fail("%v", err)
			}
			result := make([]map[string]interface{}, 0, len(machines))
			for _, machine := range machines {
				result = append(result, map[string]interface{}{"name": machine.Name, "runtime.powerState": machine.Runtime.PowerState})
			}
			encode(result)
		}
	case "about":
		return func() {
			about := client.ServiceContent.About
			encode([]map[string]interface{}{{"fullName": about.FullName}})
		}
	}
	fail("unknown task %s", task)
	return nil
}
