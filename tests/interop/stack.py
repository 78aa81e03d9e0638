"""A real vPoller on loopback: govmomi's vSphere simulator behind py-vpoller
0.7.3's own proxy and worker.

    python tests/interop/stack.py run -- COMMAND [ARGS...]   # start, run COMMAND, stop
    python tests/interop/stack.py serve                      # start, wait for Ctrl-C, stop

COMMAND gets VPOLLER_ENDPOINT (the proxy frontend), VPOLLER_VSPHERE_HOST (the
vSphere host name registered with the worker) and VPOLLER_VSPHERE_CA (the PEM
file of the CA that signed the simulator's certificate) in its environment. Every process
is started in a process group of its own and the whole group is stopped by pid
on exit, also when something fails. All ports are free ones picked at start, so
a vPoller on the default ports is left alone.

Needs, beside the venv's vpoller==0.7.3: target/interop/vcsim (`make vcsim`),
and root (or the right to bind port 443), since vconnector always uses port 443.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VCSIM = os.path.join(ROOT, "target", "interop", "vcsim")
RUST_PROXY = os.path.join(ROOT, "target", "release", "vpoller-proxy")
RUST_WORKER = os.path.join(ROOT, "target", "release", "vpoller-worker")
WORKER_WRAPPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vpoller_worker.py")
BIN = os.path.dirname(sys.executable)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_https_address():
    """A loopback address whose port 443 is free: vconnector cannot use another port."""
    for last in range(2, 255):
        address = "127.0.0.%d" % last
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, 443))
            except PermissionError:
                raise SystemExit("binding port 443 needs root (vconnector always connects to port 443)")
            except OSError:
                continue
            return address
    raise SystemExit("no loopback address with a free port 443")


class Stack(object):
    """The simulator, the vconnector database, the proxy and the worker."""

    def __init__(self, workers=2, helpers="vpoller.helpers.cclient,vpoller.helpers.zabbix",
                 proxy="python", worker="python", share=None, cache=False, simulator_args=(),
                 control=False, mirror=None, rust_proxy=RUST_PROXY, rust_worker=RUST_WORKER):
        """proxy, worker: "python" (py-vpoller 0.7.3's programs) or "rust"
        (this project's target/release/vpoller-proxy and vpoller-worker, or
        the programs rust_proxy and rust_worker name, such as an older
        build). share: another running Stack whose simulator and host
        registry this one uses (so that replies compare across stacks).
        simulator_args: more vcsim arguments (`-vms 200`, `-delay-ms 10`).
        control: keep a pipe to the simulator's standard input, for
        simulator() (else its standard input is /dev/null). mirror: True or
        False writes `mirror = on|off` in [cache]; None leaves it out."""
        self.workers = workers
        self.helpers = helpers
        self.proxy_kind = proxy
        self.worker_kind = worker
        self.share = share
        self.cache = cache
        self.simulator_args = list(simulator_args)
        self.control = control
        self.mirror = mirror
        self.rust_proxy = rust_proxy
        self.rust_worker = rust_worker
        self.directory = tempfile.mkdtemp(prefix="vpoller-stack-")
        self.vsphere_host = None
        self.frontend_port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.frontend_port
        self.processes = {}

    # -- processes ---------------------------------------------------------

    def _spawn(self, name, argv, **options):
        log = open(os.path.join(self.directory, name + ".log"), "wb")
        process = subprocess.Popen(argv, stdout=options.pop("stdout", log), stderr=log,
                                   stdin=options.pop("stdin", subprocess.DEVNULL), start_new_session=True,
                                   cwd=self.directory, **options)
        self.processes[name] = process
        return process

    def _stop(self, name):
        """Stops the process group started as `name`: SIGTERM, then SIGKILL."""
        process = self.processes.pop(name, None)
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not _group_alive(process.pid):
                break
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                process.poll()  # reap the leader, so that only live members count
                if not _group_alive(process.pid):
                    break
                time.sleep(0.05)
        process.wait()
        if process.stdout:
            process.stdout.close()
        if process.stdin:
            process.stdin.close()

    def log(self, name):
        with open(os.path.join(self.directory, name + ".log"), "rb") as log:
            return log.read().decode("utf-8", "replace")

    # -- parts ---------------------------------------------------------------

    def start(self):
        try:
            if self.share is None:
                self._start_simulator()
                self._register_simulator()
            else:
                self.vsphere_host = self.share.vsphere_host
                self.vsphere_ca = self.share.vsphere_ca
                self.db = self.share.db
            self._write_config()
            self.start_proxy()
            self.start_worker()
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_simulator(self):
        if not os.access(VCSIM, os.X_OK):
            raise SystemExit("%s is missing: run `make vcsim`" % VCSIM)
        self.vsphere_host = free_https_address()
        self.vsphere_ca = os.path.join(self.directory, "vcsim-ca.pem")
        simulator = self._spawn("vcsim", [VCSIM, "-listen", self.vsphere_host + ":443", "-ca-out", self.vsphere_ca]
                                + self.simulator_args, stdout=subprocess.PIPE,
                                stdin=subprocess.PIPE if self.control else subprocess.DEVNULL)
        url = simulator.stdout.readline().decode().strip()
        if not url.startswith("https://"):
            raise RuntimeError("the vSphere simulator did not start:\n" + self.log("vcsim"))

    def simulator(self, command):
        """Sends one command to the simulator's control channel (a Stack
        made with control=True, or one it shares with) and returns its
        answer after `ok` (`calls` gives `METHOD=COUNT ...`); raises
        RuntimeError on `error ...`."""
        if self.share is not None:
            return self.share.simulator(command)
        simulator = self.processes["vcsim"]
        if simulator.stdin is None:
            raise RuntimeError("the simulator was started without its control channel (control=False)")
        simulator.stdin.write(command.encode() + b"\n")
        simulator.stdin.flush()
        answer = simulator.stdout.readline().decode().strip()
        if answer == "ok" or answer.startswith("ok "):
            return answer[3:]
        raise RuntimeError("the simulator answered %r to %r" % (answer, command))

    def simulator_calls(self):
        """The SOAP calls the simulator served since the last `calls reset`,
        {METHOD: COUNT}."""
        return {method: int(count) for method, count in
                (pair.split("=", 1) for pair in self.simulator("calls").split())}

    def _register_simulator(self):
        self.db = os.path.join(self.directory, "vconnector.db")
        cli = os.path.join(BIN, "vconnector-cli")
        for args in (["init"], ["-H", self.vsphere_host, "-U", "root", "-P", "simulator", "add"],
                     ["-H", self.vsphere_host, "enable"]):
            subprocess.run([cli, "-d", self.db] + args, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd=self.directory)

    def _write_config(self):
        backend = "tcp://127.0.0.1:%d" % free_port()
        self.worker_mgmt = "tcp://127.0.0.1:%d" % free_port()
        self.config = os.path.join(self.directory, "vpoller.conf")
        with open(self.config, "w") as config:
            config.write(
                "[proxy]\nfrontend = %s\nbackend = %s\nmgmt = tcp://127.0.0.1:%d\n\n"
                "[worker]\ndb = %s\nproxy = %s\nmgmt = %s\nhelpers = %s\n"
                "tasks = vpoller.vsphere.tasks\n\n"
                "[cache]\nenabled = %s\nmaxsize = 0\nttl = 3600\nhousekeeping = 480\n"
                % (self.endpoint, backend, free_port(), self.db, backend, self.worker_mgmt, self.helpers,
                   "yes" if self.cache else "no"))
            if self.mirror is not None:
                config.write("mirror = %s\n" % ("on" if self.mirror else "off"))

    def start_proxy(self):
        program = self.rust_proxy if self.proxy_kind == "rust" else os.path.join(BIN, "vpoller-proxy")
        self._spawn("proxy", [program, "-f", self.config, "start"])

    def stop_proxy(self):
        self._stop("proxy")

    def start_worker(self):
        if self.worker_kind == "rust":
            self._spawn("worker", [self.rust_worker, "-f", self.config, "-c", "1", "start"])
        else:
            self._spawn("worker", [sys.executable, WORKER_WRAPPER, "-f", self.config, "-c", str(self.workers)])

    def stop_worker(self, sig=None):
        """Stops the worker; with sig (e.g. SIGKILL) sends only that."""
        if sig is not None and "worker" in self.processes:
            os.killpg(self.processes["worker"].pid, sig)
        self._stop("worker")

    def request(self, msg, timeout=3000, retries=1):
        """A request through py-vpoller's own client (a new one each time: its
        run() uses up the instance's retries)."""
        from vpoller.client import VPollerClient
        return VPollerClient(endpoint=self.endpoint, timeout=timeout, retries=retries).run(msg)

    def worker_status(self, timeout=10000):
        """The worker's management `status` reply, parsed."""
        from vpoller.client import VPollerClient
        reply = VPollerClient(endpoint=self.worker_mgmt, timeout=timeout, retries=1).run({"method": "status"})
        return json.loads(reply)

    def wait_until_ready(self, seconds=90):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError("%s exited early:\n%s" % (name, self.log(name)))
            reply = json.loads(self.request({"method": "about", "hostname": self.vsphere_host}, timeout=2000))
            if reply.get("success") == 0:
                return
        raise RuntimeError("vPoller did not answer `about` within %d s" % seconds)

    def stop(self):
        for name in ("worker", "proxy", "vcsim"):
            self._stop(name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def main(argv):
    usage = "usage: stack.py run -- COMMAND [ARGS...] | stack.py serve"
    if not argv or argv[0] not in ("run", "serve"):
        print(usage, file=sys.stderr)
        return 64
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    with Stack() as stack:
        env = dict(os.environ, VPOLLER_ENDPOINT=stack.endpoint, VPOLLER_VSPHERE_HOST=stack.vsphere_host,
                   VPOLLER_VSPHERE_CA=stack.vsphere_ca)
        print("vPoller is up: endpoint %s, vSphere host %s" % (stack.endpoint, stack.vsphere_host), flush=True)
        if argv[0] == "serve":
            while True:
                time.sleep(3600)
        command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        if not command:
            print(usage, file=sys.stderr)
            return 64
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
