import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from vpoller_ffi import ClosedError, VPollerClient, library_version

NO_REPLY = '{"success": 1, "msg": "Did not receive response, aborting..."}'


def echo(msg_text):
    return '{"success": 0, "msg": "Successfully retrieved object properties", "result": [%s]}' % msg_text


def free_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def test_str_message_reply_is_verbatim(endpoint):
    client = VPollerClient(endpoint=endpoint)
    msg = '{"method": "vm.get", "hostname": "vc01", "name": "vm01", "properties": ["runtime.powerState"]}'
    assert client.run(msg) == echo(msg)
    client.close()


def test_dict_message_is_sent_as_py_vpoller_sends_it(endpoint):
    client = VPollerClient(endpoint, 3000, 3)
    msg = {"method": "vm.discover", "hostname": "vc01.example.org"}
    assert client.run(msg) == echo(json.dumps(msg))


def test_non_ascii_names_round_trip(endpoint):
    client = VPollerClient(endpoint)
    name = 'Zürich-ВМ-虚拟机 "q"'
    reply = client.run({"method": "vm.get", "hostname": "vc01", "name": name})
    assert json.loads(reply)["result"][0]["name"] == name
    raw = '{"name": "%s"}' % "Zürich-虚拟机"
    assert client.run(raw) == echo(raw)


def test_nul_terminated_reply_is_trimmed(endpoint):
    reply = VPollerClient(endpoint).run({"method": "about", "stand_in": {"nul": True}})
    assert reply.endswith("}]}")
    assert "\0" not in reply


def test_no_proxy_gives_the_vpoller_failure_within_retries_times_timeout():
    client = VPollerClient("tcp://127.0.0.1:%d" % free_port(), timeout=200, retries=2)
    started = time.monotonic()
    assert client.run({"method": "about", "hostname": "vc01"}) == NO_REPLY
    elapsed = time.monotonic() - started
    # Both attempts waited their whole timeout (so there were two at least).
    assert elapsed >= 0.39
    # And then it gave up: only a hang takes this long, not a busy machine.
    assert elapsed < 30


def test_the_given_retries_and_timeout_are_used(endpoint):
    client = VPollerClient(endpoint, timeout=200, retries=2)
    # Not more than two attempts: the stand-in ignores the first two copies
    # of this request and would answer a third (the default is 3 attempts).
    assert client.run({"method": "about", "stand_in": {"drop_first": 2}}) == NO_REPLY
    # Not longer than 200 ms each: a reply 2 s late is not waited for (the
    # default 3000 ms would take it).
    assert client.run({"method": "about", "stand_in": {"delay_ms": 2000}}) == NO_REPLY


def test_bad_arguments(endpoint):
    with pytest.raises(TypeError):
        VPollerClient()
    with pytest.raises(TypeError):
        VPollerClient(None)
    with pytest.raises(TypeError):
        VPollerClient(endpoint, timeout="3000")
    with pytest.raises(TypeError):
        VPollerClient(endpoint, retries=2.5)
    with pytest.raises(ValueError):
        VPollerClient(endpoint, timeout=2 ** 40)
    with pytest.raises(ValueError, match="connecting to the endpoint"):
        VPollerClient("bogus")
    with pytest.raises(ValueError, match="NUL"):
        VPollerClient("tcp://127.0.0.1:1\0")

    client = VPollerClient(endpoint)
    for bad in (42, None, ["vm.get"], b'{"method": "about"}'):
        with pytest.raises(TypeError):
            client.run(bad)
    with pytest.raises(ValueError, match="not valid JSON"):
        client.run("vm.discover")
    with pytest.raises(ValueError, match="must be a JSON object, not an array"):
        client.run("[1, 2]")
    with pytest.raises(ValueError, match="NUL"):
        client.run('{"a": "\0"}')
    with pytest.raises(ValueError):
        client.run('{"a": "\udcff"}')
    with pytest.raises(TypeError):
        client.run({"not serialisable": object()})
    # The client still works after refusing bad input.
    assert json.loads(client.run({"method": "about"}))["success"] == 0


def test_closed_client():
    client = VPollerClient("tcp://127.0.0.1:1")
    assert not client.closed
    client.close()
    client.close()
    assert client.closed
    with pytest.raises(ClosedError, match="closed"):
        client.run({"method": "about"})
    with VPollerClient("tcp://127.0.0.1:1") as managed:
        pass
    assert managed.closed


def run_in_threads(count, work):
    """Runs work(0) ... work(count - 1) in threads of their own."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_threads_share_one_client_in_parallel(endpoint):
    client = VPollerClient(endpoint, timeout=30000)
    results = []

    def work(thread_id):
        for call in range(10):
            name = "vm-%d-%d" % (thread_id, call)
            reply = json.loads(client.run({"method": "vm.get", "name": name, "stand_in": {"delay_ms": 20}}))
            results.append(reply["result"][0]["name"] == name)

    run_in_threads(8, work)
    assert len(results) == 80
    assert all(results), "a thread got another thread's reply"

    # The calls overlap. 16 calls that the stand-in answers after 2 s each
    # take 32 s one after another, whatever the machine, and about 2 s in
    # parallel. The bound sits far from both, so that a busy machine cannot
    # break it and calls made one at a time cannot pass it.
    answered = []

    def slow(n):
        reply = json.loads(client.run({"method": "about", "n": n, "stand_in": {"delay_ms": 2000}}))
        answered.append(reply["result"][0]["n"])

    started = time.monotonic()
    run_in_threads(16, slow)
    elapsed = time.monotonic() - started
    assert sorted(answered) == list(range(16))
    assert 2.0 <= elapsed < 20


def test_close_waits_for_running_calls(endpoint):
    # On a busy machine the thread's call may not have started when close
    # comes; then it is refused as closed, and the test tries again. A close
    # that broke running calls would fail every try.
    replies = []

    def call(client):
        try:
            replies.append(client.run({"method": "about", "stand_in": {"delay_ms": 200}}))
        except ClosedError:
            pass

    for _ in range(20):
        client = VPollerClient(endpoint)
        slow = threading.Thread(target=call, args=(client,))
        slow.start()
        time.sleep(0.05)
        client.close()
        slow.join()
        with pytest.raises(ClosedError):
            client.run({"method": "about"})
        if replies:
            break
    assert replies, "no call was running when close came"
    assert json.loads(replies[0])["success"] == 0


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_clients_left_to_the_gc_are_freed(endpoint):
    VPollerClient(endpoint).run({"method": "about"})
    gc.collect()
    before = open_fds()
    for _ in range(200):
        client = VPollerClient(endpoint)
        assert json.loads(client.run({"method": "about"}))["success"] == 0
        del client
    gc.collect()
    time.sleep(0.2)
    # Each unfreed client would hold a TCP connection and ZeroMQ descriptors.
    assert open_fds() < before + 40


def test_unclosed_client_at_interpreter_exit_is_quiet(endpoint):
    script = ("from vpoller_ffi import VPollerClient\n"
              "client = VPollerClient(%r)\n"
              "assert client.run({'method': 'about'}).startswith('{\"success\": 0')\n" % endpoint)
    completed = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
    assert completed.returncode == 0
    assert completed.stderr == b""


def test_library_version():
    assert library_version().count(".") >= 2


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc (Linux)")
def test_a_client_on_tcp_or_ipc_starts_no_thread(endpoint, tmp_path):
    """On tcp:// and ipc:// the calling thread speaks ZMTP itself; other
    endpoints use libzmq, whose context starts I/O threads."""
    code = ("import os, sys, vpoller_ffi\n"
            "client = vpoller_ffi.VPollerClient(sys.argv[1], 1, int(sys.argv[2]))\n"
            "reply = client.run({'method': 'about', 'hostname': 'vc01'})\n"
            "print(len(os.listdir('/proc/self/task')), reply)\n")

    def threads_after_a_request(target, timeout_ms):
        completed = subprocess.run([sys.executable, "-c", code, target, str(timeout_ms)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert completed.returncode == 0, completed.stderr
        count, reply = completed.stdout.decode().split(" ", 1)
        return int(count), reply

    count, reply = threads_after_a_request(endpoint, 3000)
    assert reply.startswith('{"success": 0'), reply
    assert count == 1
    count, reply = threads_after_a_request("ipc://%s" % (tmp_path / "no-proxy"), 100)
    assert reply.strip() == NO_REPLY
    assert count == 1
    count, reply = threads_after_a_request("inproc://no-proxy", 100)
    assert reply.strip() == NO_REPLY
    assert count > 1


# CURVE: the client's curve_* keywords, against the stand-in (which speaks
# plain ZMTP only) and against vpoller-proxy and vpoller-worker.

RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "target", "release")
# A key of 40 Z85 characters (ZeroMQ's test vector).
SERVER_KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"


def program(name):
    path = os.path.normpath(os.path.join(RELEASE, name))
    if not os.access(path, os.X_OK):
        pytest.fail("%s is missing: run `make lib`" % path)
    return path


def keygen(path):
    """`vpoller-proxy keygen FILE`: the public key it prints (the secret key is in FILE)."""
    completed = subprocess.run([program("vpoller-proxy"), "keygen", str(path)], stdout=subprocess.PIPE,
                               check=True, timeout=60)
    return completed.stdout.decode().strip()


@pytest.fixture
def curve_stack(tmp_path):
    """vpoller-proxy and vpoller-worker, the frontend speaking CURVE and
    letting in only the client key in tmp_path/client.key: the frontend's
    endpoint and public key. Stopped by pid afterwards."""
    frontend_key = keygen(tmp_path / "frontend.key")
    (tmp_path / "clients").write_text(keygen(tmp_path / "client.key") + "\n")
    frontend = "tcp://127.0.0.1:%d" % free_port()
    config = tmp_path / "vpoller.conf"
    config.write_text(
        "[proxy]\nfrontend = {frontend}\nbackend = ipc://{dir}/backend\nmgmt = ipc://{dir}/proxy-mgmt\n"
        "frontend_curve_secret_key = {dir}/frontend.key\nfrontend_curve_allowed = {dir}/clients\n"
        "[worker]\ndb = {dir}/vconnector.db\nproxy = ipc://{dir}/backend\nmgmt = ipc://{dir}/worker-mgmt\n"
        .format(frontend=frontend, dir=tmp_path))
    processes = []
    try:
        for name in ("vpoller-proxy", "vpoller-worker"):
            with open(str(tmp_path / (name + ".log")), "wb") as log:
                processes.append(subprocess.Popen([program(name), "-f", str(config), "start"],
                                                  stdout=subprocess.DEVNULL, stderr=log))
        for mgmt in ("proxy-mgmt", "worker-mgmt"):
            status = VPollerClient("ipc://%s/%s" % (tmp_path, mgmt), timeout=300, retries=100).run(
                {"method": "status"})
            assert json.loads(status)["success"] == 0, status
        yield frontend, frontend_key
    finally:
        for process in processes:
            process.kill()
            process.wait()


def test_malformed_keys_raise_at_once(tmp_path):
    endpoint = "tcp://127.0.0.1:1"
    with pytest.raises(ValueError) as error:
        VPollerClient(endpoint, curve_server_key="short")
    assert str(error.value) == ("curve_server_key: Invalid argument: the server's key: a CURVE public key "
                                "must be 40 characters of Z85, not 5")
    with pytest.raises(ValueError, match=r"^curve_secret_key: .*the client's key: .*"
                                         r"'~' at position 40 is not a Z85 character"):
        VPollerClient(endpoint, curve_server_key=SERVER_KEY, curve_secret_key=SERVER_KEY[:39] + "~")
    public_key = keygen(tmp_path / "client.key")
    other = keygen(tmp_path / "other.key")
    with pytest.raises(ValueError, match=r"^curve_public_key: .*the CURVE public key is not the secret key's"):
        VPollerClient(endpoint, curve_server_key=SERVER_KEY, curve_secret_key_file=str(tmp_path / "client.key"),
                      curve_public_key=other)
    # The file's key and its own public key go together.
    client = VPollerClient(endpoint, curve_server_key=SERVER_KEY,
                           curve_secret_key_file=str(tmp_path / "client.key"), curve_public_key=public_key)
    assert client.curve_public_key() == public_key
    os.chmod(str(tmp_path / "other.key"), 0o644)
    with pytest.raises(ValueError, match=r"^curve_secret_key_file: .*may be read by others \(mode 0644\)"):
        VPollerClient(endpoint, curve_server_key=SERVER_KEY, curve_secret_key_file=str(tmp_path / "other.key"))
    with pytest.raises(ValueError, match=r"^curve_secret_key_file: .*cannot read the CURVE secret key file"):
        VPollerClient(endpoint, curve_server_key=SERVER_KEY, curve_secret_key_file="/no/such.key")
    with pytest.raises(ValueError, match="NUL"):
        VPollerClient(endpoint, curve_server_key=SERVER_KEY + "\0")
    with pytest.raises(TypeError):
        VPollerClient(endpoint, curve_server_key=42)
    with pytest.raises(TypeError):
        VPollerClient(endpoint, curve_server_key=SERVER_KEY.encode())


def test_good_keys_are_taken():
    endpoint = "tcp://127.0.0.1:1"
    assert VPollerClient(endpoint).curve_public_key() is None
    # None and "" leave CURVE off.
    assert VPollerClient(endpoint, curve_server_key=None).curve_public_key() is None
    assert VPollerClient(endpoint, curve_server_key="").curve_public_key() is None
    # A server key alone: a fresh key pair, the same for the client's life.
    client = VPollerClient(endpoint, curve_server_key=" %s\n" % SERVER_KEY)
    fresh = client.curve_public_key()
    assert len(fresh) == 40
    assert client.curve_public_key() == fresh
    assert VPollerClient(endpoint, curve_server_key=SERVER_KEY).curve_public_key() != fresh
    client.close()
    with pytest.raises(ClosedError):
        client.curve_public_key()


def test_a_curve_client_gets_no_reply_from_a_plain_proxy(endpoint):
    client = VPollerClient(endpoint, timeout=300, retries=2, curve_server_key=SERVER_KEY)
    assert client.run({"method": "about", "hostname": "vc01"}) == NO_REPLY
    # Without the key the stand-in answers.
    assert json.loads(VPollerClient(endpoint).run({"method": "about"}))["success"] == 0


def test_a_listed_key_is_served_and_a_fresh_one_is_not(curve_stack, tmp_path):
    frontend, frontend_key = curve_stack
    client = VPollerClient(frontend, timeout=15000, retries=1, curve_server_key=frontend_key,
                           curve_secret_key_file=str(tmp_path / "client.key"))
    # The worker's answer for a host it does not know: the request got through.
    for _ in range(2):
        reply = client.run({"method": "about", "hostname": "vc-unknown"})
        assert json.loads(reply) == {"success": 1, "msg": "Unknown or missing agent name"}
    stranger = VPollerClient(frontend, timeout=500, retries=1, curve_server_key=frontend_key)
    assert stranger.run({"method": "about", "hostname": "vc-unknown"}) == NO_REPLY
    plain = VPollerClient(frontend, timeout=500, retries=1)
    assert plain.run({"method": "about", "hostname": "vc-unknown"}) == NO_REPLY
