"""Section 12 of `make bench`: what CURVE costs a request.

Two whole vPoller stacks of this project (vpoller-proxy and vpoller-worker
-c 1) run side by side, one plain and one with CURVE on the frontend and the
backend (keys from `vpoller-proxy keygen`, each side with a list of the keys
it lets in); one libvpoller client (`bench-agent round-trip`) sends `about`
for a host the registry lacks, which the worker answers without vSphere, so
the round trip is the client, the proxy, the worker and back, and
encryption's share of it shows the most. Rounds alternate the stacks; the
ratio is the median of the ratios within one round. The bytes per round
trip are counted by a relay between the client and the proxy's frontend
(the handshake's bytes left out: 20 requests and 220 requests, the
difference over 200).
"""

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PROXY = os.path.join(ROOT, "target", "release", "vpoller-proxy")
WORKER = os.path.join(ROOT, "target", "release", "vpoller-worker")
BENCH_AGENT = os.path.join(ROOT, "target", "release", "examples", "bench-agent")
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
from stack import free_port  # noqa: E402

MSG = '{"method": "about", "hostname": "vc-not-registered"}'


def keygen(path):
    public = subprocess.run([PROXY, "keygen", path], check=True, stdout=subprocess.PIPE).stdout
    with open(path) as key_file:
        return public.decode().strip(), key_file.read().strip()


class OwnStack(object):
    """vpoller-proxy and vpoller-worker -c 1 on free loopback ports; with
    curve, CURVE on both sides and a client key pair the frontend lets in."""

    def __init__(self, directory, curve):
        self.directory = directory
        self.curve = curve
        self.endpoint = "tcp://127.0.0.1:%d" % free_port()
        self.processes = []
        self.client_keys = []

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__(None, None, None)  # the programs started so far
            raise

    def _start(self):
        backend = "tcp://127.0.0.1:%d" % free_port()
        path = lambda name: os.path.join(self.directory, name)  # noqa: E731
        proxy, worker = "", ""
        if self.curve:
            frontend_public, _ = keygen(path("frontend.key"))
            backend_public, _ = keygen(path("backend.key"))
            worker_public, _ = keygen(path("worker.key"))
            client_public, client_secret = keygen(path("client.key"))
            with open(path("clients"), "w") as out:
                out.write(client_public + "\n")
            with open(path("workers"), "w") as out:
                out.write(worker_public + "\n")
            proxy = ("frontend_curve_secret_key = %s\nfrontend_curve_allowed = %s\n"
                     "backend_curve_secret_key = %s\nbackend_curve_allowed = %s\n"
                     % (path("frontend.key"), path("clients"), path("backend.key"), path("workers")))
            worker = "proxy_curve_server_key = %s\ncurve_secret_key = %s\n" % (backend_public, path("worker.key"))
            self.client_keys = [frontend_public, client_public, client_secret]
        config = path("vpoller.conf")
        with open(config, "w") as out:
            out.write("[proxy]\nfrontend = %s\nbackend = %s\nmgmt = tcp://127.0.0.1:%d\n%s\n"
                      "[worker]\ndb = %s\nproxy = %s\nmgmt = tcp://127.0.0.1:%d\n%s\n"
                      % (self.endpoint, backend, free_port(), proxy, path("vconnector.db"), backend,
                         free_port(), worker))
        for program, extra in ((PROXY, []), (WORKER, ["-c", "1"])):
            log = open(path(os.path.basename(program) + ".log"), "wb")
            self.processes.append(subprocess.Popen([program, "-f", config] + extra + ["start"], stdout=log,
                                                   stderr=log, stdin=subprocess.DEVNULL, start_new_session=True))
            log.close()
        # Ready once a request is answered.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.round_trip(1, self.endpoint, check=False) is not None:
                return self
            time.sleep(0.2)
        raise SystemExit("the %s stack did not answer" % ("CURVE" if self.curve else "plain"))

    def round_trip(self, calls, endpoint=None, check=True):
        """Seconds per request over `calls` requests (after 20 unmeasured)."""
        completed = subprocess.run([BENCH_AGENT, "round-trip", endpoint or self.endpoint, MSG, str(calls)]
                                   + self.client_keys, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if completed.returncode != 0:
            if check:
                raise SystemExit("bench-agent round-trip failed: %s" % completed.stderr.decode())
            return None
        return float(completed.stdout.decode().split()[0])

    def __exit__(self, *exc_info):
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


class CountingRelay(object):
    """A TCP relay to `target` that counts the bytes it carries, both ways."""

    def __init__(self, target):
        host, port = target.replace("tcp://", "").rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.endpoint = "tcp://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.bytes = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    sink.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            with self.lock:
                self.bytes += len(data)
            sink.sendall(data)

    def close(self):
        self.listener.close()


def bytes_per_round_trip(stack):
    counts = []
    for calls in (0, 200):
        relay = CountingRelay(stack.endpoint)
        stack.round_trip(calls, relay.endpoint)
        time.sleep(0.2)
        counts.append(relay.bytes)
        relay.close()
    return (counts[1] - counts[0]) / 200.0


def section_curve(rounds, calls):
    with tempfile.TemporaryDirectory(prefix="vpoller-bench-curve-") as directory:
        plain_dir, curve_dir = os.path.join(directory, "plain"), os.path.join(directory, "curve")
        os.makedirs(plain_dir)
        os.makedirs(curve_dir)
        with OwnStack(plain_dir, False) as plain, OwnStack(curve_dir, True) as curve:
            times = {"plain": [], "curve": []}
            for _ in range(rounds):
                times["plain"].append(plain.round_trip(calls))
                times["curve"].append(curve.round_trip(calls))
            return {
                "rounds": rounds,
                "calls": calls,
                "plain_us": statistics.median(times["plain"]) * 1e6,
                "curve_us": statistics.median(times["curve"]) * 1e6,
                "ratio": statistics.median(c / p for c, p in zip(times["curve"], times["plain"])),
                "extra_us": statistics.median((c - p) * 1e6 for c, p in zip(times["curve"], times["plain"])),
                "plain_bytes": bytes_per_round_trip(plain),
                "curve_bytes": bytes_per_round_trip(curve),
            }


def report_curve(out, say, targets):
    say("### 12. CURVE: a round trip through a whole vPoller, encrypted and plain")
    say()
    say("One libvpoller client, `about` for a host the registry lacks (answered by the worker without "
        "vSphere: the hops alone), %d requests per stack and round, %d rounds alternating a plain stack "
        "and one with CURVE on the frontend and the backend (medians; the ratio and the difference are "
        "the medians of those within a round). Bytes: both directions between the client and the "
        "proxy's frontend, per round trip, the handshake left out." % (out["calls"], out["rounds"]))
    say()
    say("| stack | µs per request | bytes per round trip (client–proxy) |")
    say("|---|---:|---:|")
    say("| plain (NULL) | %.1f | %.0f |" % (out["plain_us"], out["plain_bytes"]))
    say("| CURVE | %.1f | %.0f |" % (out["curve_us"], out["curve_bytes"]))
    say()
    say("- CURVE / plain: %.2f; encryption's cost: %.1f µs per request (a box per frame: ten sealed "
        "and ten opened per round trip, between the client, the proxy and the worker)." % (out["ratio"], out["extra_us"]))
    say()
    targets.append(("CURVE round trip within 1.5x of plain (section 12)", "%.2fx" % out["ratio"],
                    out["ratio"] <= 1.5))
