"""The vPoller API documentation's second Python example, over vpoller_ffi:
get the name and power state of one virtual machine, pretty-printed.

Usage: python3 examples/python/vm_get.py [endpoint [vsphere-host [vm-name]]]
"""
import json
import sys

from vpoller_ffi import VPollerClient  # was: from vpoller.client import VPollerClient

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://localhost:10123"
hostname = sys.argv[2] if len(sys.argv) > 2 else "vc01.example.org"
name = sys.argv[3] if len(sys.argv) > 3 else "vm01.example.org"

msg = {
    "method": "vm.get",
    "hostname": hostname,
    "name": name,
    "properties": ["name", "runtime.powerState"],
}
client = VPollerClient(endpoint=endpoint)
result = client.run(msg)
print(json.dumps(json.loads(result), indent=4))
