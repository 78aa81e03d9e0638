"""CURVE between libvpoller's programs and libzmq's, through pyzmq (whose
wheel has CURVE): pyzmq clients and workers against vpoller-proxy, and
vpoller-worker and libvpoller's client against pyzmq servers, with keys
that are let in and keys that are not.

py-vpoller 0.7.3's own programs have no CURVE settings, so they take no
part here. No vSphere host is needed: the worker's answer for a host its
registry lacks ("Unknown or missing agent name") is the reply each request
waits for.
"""

import json
import os
import subprocess
import tempfile
import threading
import time

import pytest
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from stack import ROOT, RUST_PROXY, RUST_WORKER, _group_alive, free_port

ANSWER = "Unknown or missing agent name"
REQUEST = json.dumps({"method": "about", "hostname": "vc-not-registered"}).encode()
# How long a pyzmq peer waits for an answer that is due, and for one that
# must not come.
WAIT_MS = 20000
SILENCE_MS = 1500


def keygen(path):
    """vpoller-proxy keygen PATH: (public, secret) as pyzmq takes them."""
    public = subprocess.run([RUST_PROXY, "keygen", path], check=True, stdout=subprocess.PIPE).stdout.strip()
    with open(path, "rb") as key_file:
        secret = key_file.read().strip()
    return public, secret


class Programs(object):
    """vpoller-proxy and vpoller-worker from one configuration file, each
    stopped by its process group at the end, also when a test fails."""

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="vpoller-curve-")
        self.frontend = "tcp://127.0.0.1:%d" % free_port()
        self.backend = "tcp://127.0.0.1:%d" % free_port()
        self.processes = []

    def path(self, name):
        return os.path.join(self.directory, name)

    def write(self, name, text):
        with open(self.path(name), "w") as out:
            out.write(text)
        return self.path(name)

    def config(self, name, proxy="", worker="", backend=None):
        return self.write(name, (
            "[proxy]\nfrontend = %s\nbackend = %s\nmgmt = tcp://127.0.0.1:%d\n%s\n"
            "[worker]\ndb = %s\nproxy = %s\nmgmt = tcp://127.0.0.1:%d\n%s\n"
            % (self.frontend, self.backend, free_port(), proxy, self.path("vconnector.db"),
               backend or self.backend, free_port(), worker)))

    def start(self, program, config, log):
        log_file = open(self.path(log), "wb")
        process = subprocess.Popen([program, "-f", config, "start"], stdout=log_file, stderr=log_file,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log_file.close()
        self.processes.append(process)
        return process

    def log(self, name):
        with open(self.path(name), errors="replace") as log_file:
            return log_file.read()

    def stop(self):
        for process in self.processes:
            if _group_alive(process.pid):
                os.killpg(process.pid, 9)
            process.wait()


@pytest.fixture
def programs():
    running = Programs()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def context():
    made = zmq.Context()
    yield made
    made.destroy(linger=0)


def curve_socket(context, kind, server_key=None, pair=None):
    """A pyzmq socket speaking CURVE as a client of server_key, with pair
    (or a fresh one)."""
    socket = context.socket(kind)
    socket.linger = 0
    public, secret = pair or zmq.curve_keypair()
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.curve_serverkey = server_key
    return socket


def ask(socket, timeout_ms):
    """Sends the request on a REQ socket: the reply, or None in time."""
    socket.send(REQUEST)
    if socket.poll(timeout_ms) == 0:
        return None
    return socket.recv().decode()


def wait_for(condition, what, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("no %s within %d s" % (what, seconds))


def test_pyzmq_clients_through_vpoller_proxy(programs, context):
    """A pyzmq REQ client with a listed key is served through a CURVE
    frontend and a CURVE backend; an unlisted key, a wrong server key and a
    client without CURVE get nothing, and the proxy says why."""
    frontend_public, _ = keygen(programs.path("frontend.key"))
    backend_public, _ = keygen(programs.path("backend.key"))
    worker_public, _ = keygen(programs.path("worker.key"))
    listed = zmq.curve_keypair()
    programs.write("clients", "# clients let in\n%s\n" % listed[0].decode())
    programs.write("workers", "%s\n" % worker_public.decode())
    config = programs.config(
        "vpoller.conf",
        proxy="frontend_curve_secret_key = %s\nfrontend_curve_allowed = %s\n"
              "backend_curve_secret_key = %s\nbackend_curve_allowed = %s\n"
              % (programs.path("frontend.key"), programs.path("clients"), programs.path("backend.key"),
                 programs.path("workers")),
        worker="proxy_curve_server_key = %s\ncurve_secret_key = %s\n"
               % (backend_public.decode(), programs.path("worker.key")))
    programs.start(RUST_PROXY, config, "proxy.log")
    programs.start(RUST_WORKER, config, "worker.log")

    client = curve_socket(context, zmq.REQ, frontend_public, listed)
    client.connect(programs.frontend)
    reply = ask(client, WAIT_MS)
    assert reply is not None and ANSWER in reply, programs.log("proxy.log") + programs.log("worker.log")
    for _ in range(20):
        assert ANSWER in ask(client, WAIT_MS)

    stranger = curve_socket(context, zmq.REQ, frontend_public)
    stranger.connect(programs.frontend)
    assert ask(stranger, SILENCE_MS) is None
    wait_for(lambda: "not in frontend_curve_allowed" in programs.log("proxy.log"), "refusal in the log")

    confused = curve_socket(context, zmq.REQ, backend_public, listed)
    confused.connect(programs.frontend)
    assert ask(confused, SILENCE_MS) is None

    plain = context.socket(zmq.REQ)
    plain.linger = 0
    plain.connect(programs.frontend)
    assert ask(plain, SILENCE_MS) is None

    # (libzmq closes at the sight of our CURVE greeting, before its own
    # mechanism may have arrived: that refusal need not be logged.)
    proxy_log = programs.log("proxy.log")
    assert "HELLO does not open with this server's key" in proxy_log, proxy_log
    # The listed client is still served.
    assert ANSWER in ask(client, WAIT_MS)


def test_pyzmq_workers_on_vpoller_proxys_backend(programs, context):
    """A pyzmq DEALER worker with a listed key takes the requests; one with
    an unlisted key is refused at the handshake and never sees one."""
    backend_public, _ = keygen(programs.path("backend.key"))
    listed = zmq.curve_keypair()
    programs.write("workers", "%s  # pyzmq worker\n" % listed[0].decode())
    config = programs.config(
        "vpoller.conf",
        proxy="backend_curve_secret_key = %s\nbackend_curve_allowed = %s\n"
              % (programs.path("backend.key"), programs.path("workers")))
    programs.start(RUST_PROXY, config, "proxy.log")

    stranger = curve_socket(context, zmq.DEALER, backend_public)
    stranger.connect(programs.backend)
    worker = curve_socket(context, zmq.DEALER, backend_public, listed)
    worker.connect(programs.backend)
    stop = threading.Event()
    seen_by_stranger = []

    def serve():
        poller = zmq.Poller()
        poller.register(worker, zmq.POLLIN)
        poller.register(stranger, zmq.POLLIN)
        while not stop.is_set():
            for socket, _ in poller.poll(100):
                frames = socket.recv_multipart()
                if socket is stranger:
                    seen_by_stranger.append(frames)
                    continue
                socket.send_multipart(frames[:-1] + [b'{"success": 0, "msg": "pyzmq worker", "result": []}'])

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        client = context.socket(zmq.REQ)
        client.linger = 0
        client.connect(programs.frontend)
        for _ in range(20):
            reply = ask(client, WAIT_MS)
            assert reply is not None and "pyzmq worker" in reply, programs.log("proxy.log")
        wait_for(lambda: "not in backend_curve_allowed" in programs.log("proxy.log"), "refusal in the log")
    finally:
        stop.set()
        thread.join()
    assert seen_by_stranger == []


class PyzmqProxy(object):
    """py-vpoller's proxy design in pyzmq (ROUTER frontend, DEALER backend,
    zmq.proxy between them) with CURVE on the backend, and ZAP letting in
    only the keys of `allowed` (None: any)."""

    def __init__(self, context, directory, frontend_curve=False, allowed=None):
        self.frontend = "tcp://127.0.0.1:%d" % free_port()
        self.backend = "tcp://127.0.0.1:%d" % free_port()
        self.public, secret = zmq.curve_keypair()
        self.auth = ThreadAuthenticator(context)
        self.auth.start()
        if allowed is None:
            self.auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
        else:
            keys = os.path.join(directory, "zap-keys")
            os.makedirs(keys, exist_ok=True)
            for index, public in enumerate(allowed):
                with open(os.path.join(keys, "client%d.key" % index), "w") as cert:
                    cert.write('metadata\ncurve\n    public-key = "%s"\n' % public)
            self.auth.configure_curve(domain="*", location=keys)
        front = context.socket(zmq.ROUTER)
        back = context.socket(zmq.DEALER)
        for socket, curve in ((front, frontend_curve), (back, True)):
            socket.linger = 0
            if curve:
                socket.curve_secretkey = secret
                socket.curve_publickey = self.public
                socket.curve_server = True
        front.bind(self.frontend)
        back.bind(self.backend)
        self.sockets = (front, back)
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self):
        try:
            zmq.proxy(*self.sockets)
        except zmq.ZMQError:
            pass  # the context ends at the test's end (terminated, or its sockets closed)

    def stop(self):
        self.auth.stop()


def test_vpoller_worker_behind_a_pyzmq_curve_backend(programs, context):
    """vpoller-worker speaks CURVE to a libzmq backend: served with a key the
    backend's ZAP handler lets in, refused (and saying so) with another."""
    worker_public, _ = keygen(programs.path("worker.key"))
    proxy = PyzmqProxy(context, programs.directory, allowed=[worker_public.decode()])
    try:
        config = programs.config(
            "vpoller.conf", backend=proxy.backend,
            worker="proxy_curve_server_key = %s\ncurve_secret_key = %s\n"
                   % (proxy.public.decode(), programs.path("worker.key")))
        programs.start(RUST_WORKER, config, "worker.log")
        client = context.socket(zmq.REQ)
        client.linger = 0
        client.connect(proxy.frontend)
        reply = ask(client, WAIT_MS)
        assert reply is not None and ANSWER in reply, programs.log("worker.log")
        assert ANSWER in ask(client, WAIT_MS)

        # A worker with a fresh key pair: ZAP says 400, the worker logs it.
        other = programs.config(
            "other.conf", backend=proxy.backend,
            worker="proxy_curve_server_key = %s\n" % proxy.public.decode())
        programs.start(RUST_WORKER, other, "other.log")
        wait_for(lambda: "does not allow our CURVE public key" in programs.log("other.log"),
                 "the refused worker's log line")
        for _ in range(10):
            assert ANSWER in ask(client, WAIT_MS)
    finally:
        proxy.stop()


def binding(endpoint, **keys):
    from vpoller_ffi import VPollerClient
    return VPollerClient(endpoint, timeout=1500, retries=2, **keys)


def test_libvpoller_client_against_a_pyzmq_curve_frontend(programs, context):
    """libvpoller's client (the Python binding) speaks CURVE to a libzmq
    ROUTER frontend: served with a key ZAP allows, the failure reply
    within its attempts otherwise, and a malformed key refused at once."""
    listed_public, listed_secret = zmq.curve_keypair()
    proxy = PyzmqProxy(context, programs.directory, frontend_curve=True, allowed=[listed_public.decode()])
    worker = context.socket(zmq.DEALER)
    worker.linger = 0
    worker.curve_secretkey, worker.curve_publickey = listed_secret, listed_public
    worker.curve_serverkey = proxy.public
    worker.connect(proxy.backend)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            if worker.poll(100):
                frames = worker.recv_multipart()
                worker.send_multipart(frames[:-1] + [b'{"success": 0, "msg": "pyzmq", "result": ' + frames[-1] + b"}"])

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        client = binding(proxy.frontend, curve_server_key=proxy.public.decode(),
                         curve_public_key=listed_public.decode(), curve_secret_key=listed_secret.decode())
        try:
            for n in range(20):
                msg = json.dumps({"method": "about", "hostname": "vc%d" % n})
                assert json.loads(client.run(msg))["result"] == json.loads(msg)
        finally:
            client.close()
        stranger = binding(proxy.frontend, curve_server_key=proxy.public.decode())
        try:
            started = time.monotonic()
            reply = json.loads(stranger.run(REQUEST.decode()))
            assert reply == {"success": 1, "msg": "Did not receive response, aborting..."}
            # Two attempts of 1.5 s: refused, and not left hanging.
            assert time.monotonic() - started >= 2.5
        finally:
            stranger.close()
        with pytest.raises(Exception) as malformed:
            binding(proxy.frontend, curve_server_key="not a key")
        assert "key" in str(malformed.value)
    finally:
        stop.set()
        thread.join()
        proxy.stop()
