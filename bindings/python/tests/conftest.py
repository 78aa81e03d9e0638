"""Starts the repository's stand-in vPoller Proxy (tests/standin, built by
`make test`) on a free loopback port, and stops it by pid."""

import os
import subprocess

import pytest

STANDIN = os.environ.get("VPOLLER_STANDIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "target", "release", "vpoller-standin"
)


@pytest.fixture
def endpoint():
    if not os.access(STANDIN, os.X_OK):
        pytest.fail("%s is missing: run `make test`" % STANDIN)
    process = subprocess.Popen([STANDIN, "--workers", "2"], stdout=subprocess.PIPE)
    try:
        line = process.stdout.readline().decode().strip()
        assert line.startswith("tcp://"), "the stand-in proxy did not start"
        yield line
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


VCSIM = os.environ.get("VPOLLER_VCSIM") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "target", "interop", "vcsim"
)


class Simulator(object):
    """A running vSphere simulator: its host:port and the PEM file of its CA."""

    def __init__(self, host, ca_file):
        self.host = host
        self.ca_file = ca_file


@pytest.fixture
def vsphere(tmp_path):
    """govmomi's vSphere simulator (target/interop/vcsim, `make vcsim`) on a
    free loopback port, stopped by pid afterwards."""
    if not os.access(VCSIM, os.X_OK):
        pytest.fail("%s is missing: run `make vcsim`" % VCSIM)
    ca_file = str(tmp_path / "ca.pem")
    process = subprocess.Popen([VCSIM, "-listen", "127.0.0.1:0", "-ca-out", ca_file],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        url = process.stdout.readline().decode().strip()
        assert url.startswith("https://"), "the vSphere simulator did not start"
        yield Simulator(url.split("@")[-1].split("/")[0], ca_file)
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
