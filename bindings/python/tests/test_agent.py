"""vpoller_ffi.VSphereAgent against the vSphere simulator."""
import json
import os
import subprocess
import sys
import threading

import pytest

import vpoller_ffi
from vpoller_ffi import ClosedError, VSphereAgent, VSphereError

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")


def agent_for(vsphere, **options):
    return VSphereAgent(user="root", pwd="p4ssw0rd", host=vsphere.host, ca_file=vsphere.ca_file, **options)


def test_documented_local_example(vsphere):
    agent = agent_for(vsphere)
    assert agent.connect() is agent
    result = agent.vm_discover(msg={})
    assert result["success"] == 0
    assert result["msg"] == "Successfully discovered objects"
    names = [vm["name"] for vm in result["result"]]
    assert "DC0_H0_VM0" in names and "Zürich-ВМ-虚拟机" in names


def test_every_task_has_a_method():
    assert len(vpoller_ffi.TASKS) == 52
    for task in vpoller_ffi.TASKS:
        assert callable(getattr(VSphereAgent, task.replace(".", "_")))
    assert VSphereAgent.vm_perf_metric_get.__name__ == "vm_perf_metric_get"


def test_task_methods_take_msg_and_keywords(vsphere):
    with agent_for(vsphere, timeout=20000, cache_ttl=0) as agent:
        reply = agent.vm_get(msg={"name": "Zürich-ВМ-虚拟机"}, properties=["runtime.powerState"])
        assert reply == {"success": 0, "msg": "Successfully retrieved object properties",
                         "result": [{"name": "Zürich-ВМ-虚拟机", "runtime.powerState": "poweredOn"}]}
        # Keywords win, and their underscores become dashes.
        samples = agent.host_perf_metric_get(msg={"name": "nothing"}, name="DC0_H0",
                                             counter_name="cpu.usagemhz.megaHertz.average", max_sample=2)
        assert samples["success"] == 0, samples
        assert len(samples["result"]) == 2
        assert agent.host_get(name="no-such-host", properties=["name"]) == {
            "success": 1, "msg": "Cannot find object no-such-host"}
        assert agent.vm_get(name="DC0_H0_VM0") == {"success": 1, "msg": "Invalid task request"}


def test_run_returns_the_worker_text(vsphere):
    agent = agent_for(vsphere)
    text = agent.run({"method": "vm.host.get", "name": "DC0_H0_VM0"})
    assert text == '{"success": 0, "msg": "Successfully retrieved object properties", ' \
                   '"result": [{"name": "DC0_H0_VM0", "host": "DC0_H0"}]}'
    assert json.loads(agent.run('{"method": "about"}'))["result"] == [{"fullName": json.loads(
        agent.run('{"method": "about", "properties": ["fullName"]}'))["result"][0]["fullName"]}]
    with pytest.raises(ValueError):
        agent.run("not\0text")
    with pytest.raises(TypeError):
        agent.run(["vm.discover"])
    with pytest.raises(TypeError):
        agent.vm_discover(msg=["not", "a", "dict"])


def test_threads_share_one_agent(vsphere):
    agent = agent_for(vsphere)
    replies = []

    def work():
        for _ in range(5):
            replies.append(agent.vm_get(name="DC0_H0_VM0", properties=["runtime.powerState"])["success"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert replies == [0] * 20


def test_untrusted_certificate_and_bad_options(vsphere):
    agent = VSphereAgent(user="root", pwd="p4ssw0rd", host=vsphere.host, timeout=5000)
    with pytest.raises(VSphereError) as failure:
        agent.connect()
    assert "not trusted" in str(failure.value) and "ca_file" in str(failure.value)
    assert "p4ssw0rd" not in repr(agent)
    insecure = VSphereAgent(user="root", pwd="p4ssw0rd", host=vsphere.host, insecure=True)
    assert insecure.about()["success"] == 0
    with pytest.raises(ValueError):
        VSphereAgent(user="root", pwd="x", host=vsphere.host, ca_file="/no/such/file.pem")
    with pytest.raises(ValueError):
        VSphereAgent(user="root", pwd="x", host=vsphere.host, fingerprint="zz")
    with pytest.raises(TypeError):
        VSphereAgent(user="root", pwd="x", host=vsphere.host, timeout="soon")
    with pytest.raises(TypeError):
        VSphereAgent(user="root", pwd=None, host=vsphere.host)
    with pytest.raises(ValueError):
        VSphereAgent(user="root", pwd="x", host="")


def test_mirror_options(vsphere):
    # Off, every task asks the host, as py-vpoller does; the sizes are taken.
    with agent_for(vsphere, mirror=False, mirror_idle=60, mirror_max_values=5000) as agent:
        reply = agent.vm_get(name="DC0_H0_VM0", properties=["runtime.powerState"])
        assert reply["result"] == [{"name": "DC0_H0_VM0", "runtime.powerState": "poweredOn"}]
    with agent_for(vsphere, mirror=True, mirror_idle=604800, mirror_max_values=100000000) as agent:
        assert agent.about()["success"] == 0


def test_bad_mirror_options():
    def make(**options):
        return VSphereAgent(user="root", pwd="x", host="vc01.example.org", **options)

    for options, reason in (
        ({"mirror_idle": 0}, "mirror_idle: Invalid argument: VPOLLER_AGENT_MIRROR_IDLE_S wants a number of seconds from 1 to 604800"),
        ({"mirror_idle": 604801}, "mirror_idle: Invalid argument: VPOLLER_AGENT_MIRROR_IDLE_S wants"),
        ({"mirror_idle": -1}, "mirror_idle: Invalid argument: VPOLLER_AGENT_MIRROR_IDLE_S wants"),
        ({"mirror_max_values": 0},
         "mirror_max_values: Invalid argument: VPOLLER_AGENT_MIRROR_MAX_VALUES wants a number of values from 1 to 100000000"),
        ({"mirror_max_values": 100000001}, "mirror_max_values: Invalid argument: VPOLLER_AGENT_MIRROR_MAX_VALUES wants"),
    ):
        with pytest.raises(ValueError) as failure:
            make(**options)
        assert reason in str(failure.value), options
    for options, reason in (
        ({"mirror": "off"}, "mirror must be a bool, not str"),
        ({"mirror": 0}, "mirror must be a bool, not int"),
        ({"mirror_idle": "60"}, "mirror_idle must be an int, not str"),
        ({"mirror_idle": True}, "mirror_idle must be an int, not bool"),
        ({"mirror_max_values": 1.5}, "mirror_max_values must be an int, not float"),
    ):
        with pytest.raises(TypeError) as failure:
            make(**options)
        assert reason in str(failure.value), options
    # None is the library's default.
    make(mirror=None, mirror_idle=None, mirror_max_values=None).close()


def test_nothing_listening_and_closed():
    agent = VSphereAgent(user="root", pwd="x", host="127.0.0.1:9", insecure=True, connect_timeout=1000)
    with pytest.raises(VSphereError) as failure:
        agent.connect()
    assert "cannot reach 127.0.0.1:9" in str(failure.value)
    reply = agent.about()
    assert reply["success"] == 1 and reply["msg"].startswith("Task about failed: cannot reach")
    agent.close()
    agent.close()
    assert agent.closed
    with pytest.raises(ClosedError):
        agent.about()


def test_local_example_script(vsphere):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    output = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "python", "local.py"), vsphere.host, "root", "pw",
         vsphere.ca_file],
        env=env, stdout=subprocess.PIPE, check=True, timeout=60,
    ).stdout.decode("utf-8")
    assert "'runtime.powerState': 'poweredOn'" in output
    assert "Successfully discovered objects" in output
