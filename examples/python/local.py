"""The vPoller API documentation's local example over vpoller_ffi: run vPoller
tasks in this process, straight against a vSphere host, with no proxy or
worker.

Usage: python3 examples/python/local.py HOST[:PORT] USER PASSWORD [CA-FILE]
       (CA-FILE: a PEM file of the CA that signed the host's certificate)
"""
import sys

from vpoller_ffi import VSphereAgent

if len(sys.argv) < 4:
    sys.exit("usage: local.py HOST[:PORT] USER PASSWORD [CA-FILE]")
host, user, pwd = sys.argv[1:4]
ca_file = sys.argv[4] if len(sys.argv) > 4 else None

agent = VSphereAgent(user=user, pwd=pwd, host=host, ca_file=ca_file)
agent.connect()
result = agent.vm_discover(msg={})
print(result)
first = result["result"][0]["name"]
print(agent.vm_get(msg={"name": first, "properties": ["runtime.powerState"]}))
agent.close()
