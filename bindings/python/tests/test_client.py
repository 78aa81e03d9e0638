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
