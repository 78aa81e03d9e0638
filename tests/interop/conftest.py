"""Fixtures for the interop tests: the real vPoller stack, and one long-lived
client per language (Rust API, C ABI, Ruby binding, Python binding)."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import ROOT, Stack  # noqa: E402

# Long enough for a worker's first vCenter login, short enough for the outage test.
RETRIES = 2
TIMEOUT_MS = 3000


class Runner(object):
    """A runner process that keeps one client and answers requests line by line."""

    def __init__(self, name, argv):
        self.name = name
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, msg_text):
        assert "\n" not in msg_text
        self.process.stdin.write(msg_text.encode("utf-8") + b"\n")
        self.process.stdin.flush()
        length = int(self.process.stdout.readline())
        reply = self.process.stdout.read(length + 1)
        assert reply.endswith(b"\n"), "%s broke the framing" % self.name
        return reply[:-1].decode("utf-8")

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


class PythonBinding(object):
    name = "python binding"

    def __init__(self, endpoint):
        from vpoller_ffi import VPollerClient
        self.client = VPollerClient(endpoint, timeout=TIMEOUT_MS, retries=RETRIES)

    def run(self, msg_text):
        return self.client.run(msg_text)

    def close(self):
        self.client.close()


@pytest.fixture(scope="session")
def stack():
    with Stack() as running:
        yield running


@pytest.fixture(scope="session")
def clients(stack):
    args = [stack.endpoint, str(RETRIES), str(TIMEOUT_MS)]
    made = [
        Runner("rust api", [os.path.join(ROOT, "target", "release", "examples", "interop-runner")] + args),
        Runner("c abi", [os.path.join(ROOT, "target", "c", "interop-runner")] + args),
        Runner("ruby binding", ["ruby", "-I", os.path.join(ROOT, "bindings", "ruby", "lib"),
                                os.path.join(ROOT, "tests", "interop", "runners", "runner.rb")] + args),
        PythonBinding(stack.endpoint),
    ]
    yield made
    for client in made:
        client.close()
