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
