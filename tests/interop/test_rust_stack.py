"""The Rust vpoller-proxy and vpoller-worker as a drop-in for py-vpoller's.

Three stacks share the reference stack's simulator and vconnector host
registry (registered with py-vpoller's vconnector-cli) and are started from
the same kind of configuration file: the Rust proxy and worker, the Rust
worker behind py-vpoller's proxy, and py-vpoller's worker behind the Rust
proxy. Every request of the interop table gets, byte for byte, the reply the
reference stack (py-vpoller's proxy and worker) gives, through py-vpoller's
own VPollerClient, its vpoller-client program, the documented Ruby ffi-rzmq
snippet, and libvpoller's clients.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import PythonBinding
from stack import BIN, ROOT, Stack
from test_interop import NO_REPLY, cclient_args, reference, requests, run_cclient

STACKS = [("rust", "rust"), ("python", "rust"), ("rust", "python")]
RUBY_SNIPPET = os.path.join(ROOT, "tests", "interop", "runners", "ffi_rzmq_snippet.rb")


@pytest.fixture(scope="module", params=STACKS, ids=["rust proxy + rust worker", "py proxy + rust worker",
                                                   "rust proxy + py worker"])
def other(request, stack):
    proxy, worker = request.param
    with Stack(proxy=proxy, worker=worker, share=stack) as running:
        yield running


def test_every_reply_equals_the_reference_stacks(stack, other):
    binding = PythonBinding(other.endpoint)
    mismatches = []
    try:
        for label, msg in requests(stack):
            expected = reference(stack, msg)
            assert expected != NO_REPLY, "the reference stack got no reply for %s" % label
            through = {
                "py-vpoller VPollerClient": reference(other, msg),
                "python binding": binding.run(json.dumps(msg)),
                "vpoller-cclient": run_cclient(other.endpoint, cclient_args(msg))[1],
            }
            for client, got in through.items():
                if got != expected:
                    mismatches.append("%s via %s:\n  expected %r\n  got      %r" % (label, client, expected, got))
    finally:
        binding.close()
    assert not mismatches, "\n".join(mismatches)


def test_py_vpollers_command_line_client(stack, other):
    args = ["-m", "vm.get", "-V", stack.vsphere_host, "-n", "DC0_H0_VM0", "-p", "runtime.powerState"]

    def run(endpoint):
        completed = subprocess.run([os.path.join(BIN, "vpoller-client"), "-e", endpoint] + args,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    assert run(other.endpoint) == run(stack.endpoint)
    assert b"poweredOn" in run(other.endpoint)


def test_the_documented_ruby_snippet(stack, other):
    def run(endpoint):
        completed = subprocess.run(["ruby", RUBY_SNIPPET, endpoint, stack.vsphere_host],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout.decode("utf-8")

    got = run(other.endpoint)
    assert got == run(stack.endpoint)
    assert "Zürich-ВМ-虚拟机" in got


def test_management_commands_answer_as_py_vpollers(stack, other):
    """`vpoller-proxy -e ENDPOINT status` and the worker's (this project's
    command lines; py-vpoller's insist on reading /etc/vpoller/vpoller.conf
    first) get the same reply form from either stack's programs: the same
    message and every field py-vpoller reports."""
    for program, section in (("vpoller-proxy", "proxy"), ("vpoller-worker", "worker")):
        def status(running):
            endpoint = _config_value(running.config, section, "mgmt")
            completed = subprocess.run([os.path.join(ROOT, "target", "release", program), "-e", endpoint, "status"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            assert completed.returncode == 0, completed.stderr
            return json.loads(completed.stdout)

        expected, got = status(stack), status(other)
        assert got["success"] == expected["success"] == 0
        assert got["msg"] == expected["msg"]
        assert got["result"]["status"] == "running"
        assert set(expected["result"]) <= set(got["result"]), (expected, got)


def _config_value(path, section, key):
    import configparser
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser.get(section, key).replace("*", "127.0.0.1")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


LEGACY_CCLIENT = os.path.join(ROOT, "target", "c", "legacy-cclient")


def test_the_old_c_clients_requests(stack, other):
    """py-vpoller's old C client (extra/vpoller-cclient) fills every field of
    its template, the ones not given as "(null)", asks for the cclient helper
    unless told otherwise, and prints the reply up to its NUL: through each
    stack, the same output as through the reference stack."""
    host = stack.vsphere_host
    cases = [
        ["method=vm.get", "hostname=" + host, "name=DC0_H0_VM0", "properties=runtime.powerState"],
        ["method=host.get", "hostname=" + host, "name=DC0_H0", "properties=runtime.powerState"],
        ["method=vm.get", "hostname=" + host, "name=no-such-vm", "properties=name"],
        ["method=vm.discover", "hostname=" + host],
        ["method=datastore.discover", "hostname=" + host, "properties=summary.accessible"],
        ["method=about", "hostname=" + host, "properties=fullName"],
        ["method=vm.get", "hostname=vc99.example.org", "name=DC0_H0_VM0", "properties=name"],
        ["method=vm.get", "hostname=" + host, "name=DC0_H0_VM0", "properties=runtime.powerState",
         "helper=vpoller.helpers.zabbix"],
    ]

    def run(endpoint, fields):
        completed = subprocess.run([LEGACY_CCLIENT, endpoint, "10000", "1"] + fields,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return completed.returncode, completed.stdout.decode("utf-8")

    mismatches = []
    for fields in cases:
        expected = run(stack.endpoint, fields)
        assert expected[0] == 0, (fields, expected)
        got = run(other.endpoint, fields)
        if got != expected:
            mismatches.append("%s:\n  expected %r\n  got      %r" % (" ".join(fields), expected, got))
    assert not mismatches, "\n".join(mismatches)
