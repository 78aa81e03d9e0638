"""Every libvpoller client gets, byte for byte, the reply that py-vpoller's own
VPollerClient gets from a real vPoller (py-vpoller 0.7.3's proxy and worker
in front of govmomi's vSphere simulator)."""

import json
import os
import subprocess
import threading
import time

import pytest

from conftest import RETRIES, TIMEOUT_MS
from stack import ROOT

CCLIENT = os.path.join(ROOT, "target", "c", "vpoller-cclient")
NO_REPLY = '{"success": 1, "msg": "Did not receive response, aborting..."}'
NON_ASCII_VM = "Zürich-ВМ-虚拟机"  # renamed so by tests/interop/vcsim


def requests(stack):
    """The table: (label, request). Datastores are named by URL, which the
    simulator makes anew each run."""
    host = stack.vsphere_host
    discovered = json.loads(stack.request(
        {"method": "datastore.discover", "hostname": host, "properties": ["name", "info.url"]}))
    datastore_url = discovered["result"][0]["info.url"]
    return [
        ("about", {"method": "about", "hostname": host}),
        ("vm.discover", {"method": "vm.discover", "hostname": host}),
        ("vm.get", {"method": "vm.get", "hostname": host, "name": "DC0_H0_VM0",
                    "properties": ["name", "runtime.powerState", "config.hardware.numCPU",
                                   "guest.toolsRunningStatus"]}),
        ("vm.get non-ASCII name", {"method": "vm.get", "hostname": host, "name": NON_ASCII_VM,
                                   "properties": ["name", "runtime.powerState"]}),
        ("vm.get cclient helper", {"method": "vm.get", "hostname": host, "name": "DC0_H0_VM0",
                                   "properties": ["runtime.powerState"], "helper": "vpoller.helpers.cclient"}),
        ("vm.get zabbix helper", {"method": "vm.get", "hostname": host, "name": "DC0_H0_VM0",
                                  "properties": ["runtime.powerState"], "helper": "vpoller.helpers.zabbix"}),
        ("vm.discover zabbix helper", {"method": "vm.discover", "hostname": host,
                                       "helper": "vpoller.helpers.zabbix"}),
        ("host.discover", {"method": "host.discover", "hostname": host}),
        ("host.get", {"method": "host.get", "hostname": host, "name": "DC0_H0",
                      "properties": ["name", "runtime.powerState", "summary.hardware.numCpuCores"]}),
        ("datastore.discover", {"method": "datastore.discover", "hostname": host}),
        ("datastore.get", {"method": "datastore.get", "hostname": host, "name": datastore_url,
                           "properties": ["name", "summary.capacity", "summary.accessible"]}),
        ("cluster.discover", {"method": "cluster.discover", "hostname": host}),
        ("cluster.get", {"method": "cluster.get", "hostname": host, "name": "DC0_C0",
                         "properties": ["name", "overallStatus"]}),
        ("datacenter.discover", {"method": "datacenter.discover", "hostname": host}),
        ("datacenter.get", {"method": "datacenter.get", "hostname": host, "name": "DC0",
                            "properties": ["name", "overallStatus"]}),
        ("net.discover", {"method": "net.discover", "hostname": host}),
        ("net.get", {"method": "net.get", "hostname": host, "name": "VM Network",
                     "properties": ["name", "summary.accessible"]}),
        ("unknown method", {"method": "no.such.method", "hostname": host}),
        ("unknown vSphere host", {"method": "vm.get", "hostname": "vc99.example.org", "name": "DC0_H0_VM0",
                                  "properties": ["name"]}),
        ("missing object", {"method": "vm.get", "hostname": host, "name": "vm99", "properties": ["name"]}),
        ("missing object, non-ASCII name", {"method": "vm.get", "hostname": host, "name": "vm-Ωμέγα-99",
                                            "properties": ["name"]}),
    ]


def reference(stack, msg):
    """py-vpoller's reply, less the one trailing NUL that the cclient helper
    adds (which libvpoller removes by contract)."""
    reply = stack.request(msg, timeout=10000)
    return reply[:-1] if reply.endswith("\0") else reply


def cclient_args(msg):
    flags = {"method": "-m", "hostname": "-V", "name": "-n", "key": "-k", "helper": "-H"}
    args = []
    for field, value in msg.items():
        if field == "properties":
            args += ["-p", ",".join(value)]
        else:
            args += [flags[field], value]
    return args


def run_cclient(endpoint, args, retries=RETRIES, timeout_ms=TIMEOUT_MS):
    completed = subprocess.run(
        [CCLIENT, "-e", endpoint, "-r", str(retries), "-t", str(timeout_ms)] + args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    stdout = completed.stdout.decode("utf-8")
    assert stdout.endswith("\n")
    return completed.returncode, stdout[:-1]


def test_the_table_is_complete(stack):
    assert len(requests(stack)) >= 15


def test_every_client_gets_py_vpollers_reply_byte_for_byte(stack, clients):
    mismatches = []
    for label, msg in requests(stack):
        expected = reference(stack, msg)
        assert expected != NO_REPLY, "py-vpoller got no reply for %s" % label
        text = json.dumps(msg)
        for client in clients:
            got = client.run(text)
            if got != expected:
                mismatches.append("%s via %s:\n  expected %r\n  got      %r" % (label, client.name, expected, got))
        code, got = run_cclient(stack.endpoint, cclient_args(msg))
        if got != expected:
            mismatches.append("%s via vpoller-cclient:\n  expected %r\n  got      %r" % (label, expected, got))
        try:
            parsed = json.loads(expected)
        except ValueError:
            parsed = None
        # A helper's answer without a "success" field counts as an answer.
        success = parsed.get("success", 0) if isinstance(parsed, dict) else 0
        if code != (0 if success == 0 else 1):
            mismatches.append("%s via vpoller-cclient: exit %d for success %r" % (label, code, success))
    assert not mismatches, "\n".join(mismatches)


def test_replies_hold_what_vpoller_knows(stack, clients):
    # Guards the comparison above against two equally broken sides.
    python_binding = clients[-1]
    reply = json.loads(python_binding.run(json.dumps(
        {"method": "vm.get", "hostname": stack.vsphere_host, "name": NON_ASCII_VM,
         "properties": ["runtime.powerState"]})))
    assert reply == {"success": 0, "msg": "Successfully retrieved object properties",
                     "result": [{"name": NON_ASCII_VM, "runtime.powerState": "poweredOn"}]}


def test_proxy_outage_and_recovery_with_the_same_clients(stack, clients):
    about = json.dumps({"method": "about", "hostname": stack.vsphere_host})
    expected = reference(stack, json.loads(about))
    for client in clients:
        assert client.run(about) == expected, client.name

    stack.stop_proxy()
    try:
        results = {}

        def ask(client):
            started = time.monotonic()
            reply = client.run(about)
            results[client.name] = (reply, time.monotonic() - started)

        threads = [threading.Thread(target=ask, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        code, cclient_reply = run_cclient(stack.endpoint, cclient_args(json.loads(about)))
        results["vpoller-cclient"] = (cclient_reply, time.monotonic() - started)
        for thread in threads:
            thread.join()
        assert code == 2
        limit = RETRIES * TIMEOUT_MS / 1000.0
        for name, (reply, elapsed) in results.items():
            assert reply == NO_REPLY, name
            assert limit * 0.95 <= elapsed < limit + 2.0, "%s took %.2f s" % (name, elapsed)
    finally:
        stack.start_proxy()

    # The worker reconnects to the new proxy by itself; then the same client objects work again.
    stack.wait_until_ready()
    for client in clients:
        assert client.run(about) == expected, client.name
    code, reply = run_cclient(stack.endpoint, cclient_args(json.loads(about)))
    assert (code, reply) == (0, expected)
