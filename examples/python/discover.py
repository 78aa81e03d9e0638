"""The vPoller API documentation's first Python example, over vpoller_ffi:
discover the virtual machines of a vSphere host.

Usage: python3 examples/python/discover.py [endpoint [vsphere-host]]
"""
import sys

from vpoller_ffi import VPollerClient  # was: from vpoller.client import VPollerClient

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://localhost:10123"
hostname = sys.argv[2] if len(sys.argv) > 2 else "vc01.example.org"

msg = {"method": "vm.discover", "hostname": hostname}
client = VPollerClient(endpoint=endpoint)
result = client.run(msg)
print(result)
