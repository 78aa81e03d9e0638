"""The vSphere agent against py-vpoller 0.7.3's own task functions.

For a spread of messages over every task (existing, missing and non-ASCII
names, every object type, simple and nested properties), the agent's reply
(through the Python binding) is compared with what py-vpoller's worker would
send for the same message: its task function run in this process over
vconnector, against the same simulator, serialised as the worker does.

py-vpoller's replies are normalised as documented in the README: the `null`,
`[]`, `dynamicType` and `dynamicProperty` padding of data objects is dropped,
performance sample values (the simulator adds random noise) and times are
left out, and its "Task X failed" is the start of the agent's "Task X
failed: REASON". Where py-vpoller fails (its worker dies on a managed object
reference or a date, it raises on an unset latest event, it stops one level
below the snapshot roots), the test states the right answer from the
simulator's model, read through pyVmomi.
"""

import datetime
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import VCSIM  # noqa: E402

import vpoller.vsphere.tasks  # noqa: E402,F401  (registers the tasks)
from vconnector.core import VConnector  # noqa: E402
from vpoller.task.registry import registry  # noqa: E402
from vpoller.worker import DefaultJSONEncoder  # noqa: E402
from vpoller.client import validate_message  # noqa: E402
from vpoller_ffi import VSphereAgent  # noqa: E402

VM = "DC0_H0_VM0"
UNICODE_VM = "Zürich-ВМ-虚拟机"
HOST = "DC0_H0"
CLUSTER_HOST = "DC0_C0_H0"
CLUSTER = "DC0_C0"
DATACENTER = "DC0"
NETWORK = "VM Network"
COUNTER = "cpu.usagemhz.megaHertz.average"


class Simulator(object):
    def __init__(self, port, ca_file):
        self.port = port
        self.ca_file = ca_file


def start_simulator(ca_file, port=0):
    """The simulator on `port` of 127.0.0.1 (0: a free one): its process and port."""
    if not os.access(VCSIM, os.X_OK):
        pytest.fail("%s is missing: run `make vcsim`" % VCSIM)
    process = subprocess.Popen([VCSIM, "-listen", "127.0.0.1:%d" % port, "-ca-out", ca_file],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    url = process.stdout.readline().decode().strip()
    if not url.startswith("https://"):
        stop_simulator(process)
        pytest.fail("the vSphere simulator did not start")
    return process, int(url.rsplit(":", 1)[1].split("/")[0])


def stop_simulator(process):
    process.kill()
    process.wait()
    process.stdout.close()


@pytest.fixture(scope="module")
def simulator(tmp_path_factory):
    ca_file = str(tmp_path_factory.mktemp("vcsim") / "ca.pem")
    process, port = start_simulator(ca_file)
    try:
        yield Simulator(port, ca_file)
    finally:
        stop_simulator(process)


@pytest.fixture(scope="module")
def reference(simulator):
    """py-vpoller's side: a vconnector session, as its worker holds one."""
    connector = VConnector(user="root", pwd="simulator", host="127.0.0.1", port=simulator.port)
    connector.connect()
    yield connector
    connector.disconnect()


@pytest.fixture(scope="module")
def agent(simulator):
    return VSphereAgent(user="root", pwd="simulator", host="127.0.0.1:%d" % simulator.port,
                        ca_file=simulator.ca_file)


class WorkerDied(Exception):
    """py-vpoller's worker would die on this message: no reply at all."""


def py_vpoller(connector, msg):
    """The reply py-vpoller's worker sends for msg (its process_client_msg and
    serialisation), as a dict; raises WorkerDied where the worker dies."""
    task = registry.get(msg.get("method"))
    if not task:
        return {"success": 1, "msg": "Unknown or missing task/method name"}
    if not validate_message(msg=msg, required=task.required):
        return {"success": 1, "msg": "Invalid task request"}
    result = task.function(connector, msg)
    try:
        text = json.dumps(result, cls=DefaultJSONEncoder, ensure_ascii=False)
    except (ValueError, TypeError) as error:
        text = json.dumps({"success": 1, "msg": "Cannot serialize result: %s" % error})
    except Exception as error:  # the worker does not catch these: it dies
        raise WorkerDied("%s: %s" % (type(error).__name__, error))
    return json.loads(text)


def drop_padding(value):
    """A property value without pyVmomi's padding of data objects."""
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if key in ("dynamicType", "dynamicProperty"):
                continue
            item = drop_padding(item)
            if item is None or item == []:
                continue
            cleaned[key] = item
        return cleaned
    if isinstance(value, list):
        return [drop_padding(item) for item in value]
    return value


def normalise_items(reply):
    """The reply with its result items' values unpadded."""
    result = reply.get("result")
    if isinstance(result, list):
        reply = dict(reply, result=[
            {key: drop_padding(value) for key, value in item.items()} if isinstance(item, dict) else item
            for item in result
        ])
    return reply


def without(reply, *fields):
    """The reply with `fields` left out of each result item."""
    return dict(reply, result=[{k: v for k, v in item.items() if k not in fields} for item in reply["result"]])


def same(agent, connector, msg, *, compare_text=False):
    """Asserts the agent answers msg as py-vpoller does; returns the reply."""
    expected = py_vpoller(connector, msg)
    text = agent.run(msg)
    reply = json.loads(text)
    if expected.get("traceback") is not None:
        # py-vpoller: "Task X failed" plus a traceback; the agent adds the reason.
        assert reply["success"] == 1, (msg, reply)
        assert reply["msg"].startswith(expected["msg"] + ": "), (msg, reply, expected["msg"])
        return reply
    assert reply == normalise_items(expected), msg
    if compare_text:
        assert text == json.dumps(expected, ensure_ascii=False), msg
    return reply


def discovered(agent, method, field):
    return [item[field] for item in agent.run_task(method, properties=[field])["result"]]


# -- inventory -----------------------------------------------------------------

KINDS = {
    "vm": VM,
    "host": HOST,
    "cluster": CLUSTER,
    "datacenter": DATACENTER,
    "net": NETWORK,
}


@pytest.mark.parametrize("kind", sorted(KINDS) + ["resource.pool", "datastore"])
def test_discover(agent, reference, kind):
    same(agent, reference, {"method": kind + ".discover"}, compare_text=True)
    same(agent, reference, {"method": kind + ".discover", "properties": ["overallStatus"]}, compare_text=True)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_get_existing_and_missing(agent, reference, kind):
    same(agent, reference, {"method": kind + ".get", "name": KINDS[kind],
                            "properties": ["name", "overallStatus"]}, compare_text=True)
    same(agent, reference, {"method": kind + ".get", "name": "no-such-object", "properties": ["name"]},
         compare_text=True)


def test_get_names_with_non_ascii_characters(agent, reference):
    same(agent, reference, {"method": "vm.get", "name": UNICODE_VM,
                            "properties": ["runtime.powerState", "config.hardware.numCPU"]}, compare_text=True)


def test_datastores_and_pools_by_their_keys(agent, reference):
    url = discovered(agent, "datastore.discover", "info.url")[0]
    same(agent, reference, {"method": "datastore.get", "name": url,
                            "properties": ["summary.capacity", "summary.type"]}, compare_text=True)
    pool = discovered(agent, "resource.pool.discover", "name")[-1]
    same(agent, reference, {"method": "resource.pool.get", "name": pool,
                            "properties": ["config.cpuAllocation.limit"]}, compare_text=True)


def test_nested_properties_and_data_objects(agent, reference):
    same(agent, reference, {"method": "vm.get", "name": VM, "properties": [
        "summary.quickStats.overallCpuUsage", "config.hardware.memoryMB", "guest.toolsRunningStatus",
        "summary.config"]})
    same(agent, reference, {"method": "host.get", "name": HOST, "properties": [
        "summary.hardware.cpuModel", "runtime.connectionState", "hardware.memorySize",
        "summary.hardware"]})
    same(agent, reference, {"method": "cluster.get", "name": CLUSTER, "properties": ["summary.numHosts"]})


def test_references_where_the_worker_dies(agent, reference):
    """py-vpoller's worker dies on a managed object reference (its issue 172):
    the agent answers "Type:id", the id the simulator's model holds."""
    msg = {"method": "vm.get", "name": VM, "properties": ["runtime.host", "datastore"]}
    with pytest.raises(WorkerDied):
        py_vpoller(reference, msg)
    reply = json.loads(agent.run(msg))
    vm = reference.get_object_by_property("name", VM, vpoller.vsphere.tasks.pyVmomi.vim.VirtualMachine)
    assert reply["success"] == 0
    assert reply["result"][0]["runtime.host"] == "HostSystem:" + vm.runtime.host._moId
    assert reply["result"][0]["datastore"] == ["Datastore:" + ds._moId for ds in vm.datastore]


def test_dates_where_the_worker_dies(agent, reference):
    """A dateTime property kills py-vpoller's worker; the agent answers the
    server's ISO 8601 text, the time the model holds."""
    msg = {"method": "host.get", "name": HOST, "properties": ["runtime.bootTime"]}
    host = reference.get_object_by_property("name", HOST, vpoller.vsphere.tasks.pyVmomi.vim.HostSystem)
    with pytest.raises(WorkerDied):
        py_vpoller(reference, msg)
    reply = json.loads(agent.run(msg))
    text = reply["result"][0]["runtime.bootTime"]
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")[:26] + "+00:00")
    assert abs((parsed - host.runtime.bootTime).total_seconds()) < 1


# -- relations, alarms, guest ------------------------------------------------------

@pytest.mark.parametrize("method,name", [
    ("host.vm.get", HOST), ("host.net.get", HOST), ("host.cluster.get", CLUSTER_HOST),
    ("host.datastore.get", HOST), ("vm.host.get", VM), ("vm.host.get", UNICODE_VM), ("vm.net.get", VM),
    ("vm.datastore.get", VM), ("net.host.get", NETWORK), ("net.vm.get", NETWORK),
    ("vm.disk.discover", VM), ("vm.guest.net.get", VM), ("vm.cpu.usage.percent", VM),
    ("vm.alarm.get", VM), ("host.alarm.get", HOST), ("cluster.alarm.get", CLUSTER),
    ("datacenter.alarm.get", DATACENTER),
])
def test_relations_alarms_and_guest(agent, reference, method, name):
    same(agent, reference, {"method": method, "name": name}, compare_text=True)
    same(agent, reference, {"method": method, "name": "no-such-object"}, compare_text=True)


def test_datastore_relations(agent, reference):
    url = discovered(agent, "datastore.discover", "info.url")[0]
    for method in ("datastore.host.get", "datastore.vm.get", "datastore.alarm.get"):
        same(agent, reference, {"method": method, "name": url}, compare_text=True)


def test_guest_disks_and_processes(agent, reference):
    same(agent, reference, {"method": "vm.disk.get", "name": VM, "key": "/no/such/disk"})
    # The simulator's tools are not running: both refuse the same way.
    same(agent, reference, {"method": "vm.process.get", "name": VM, "username": "u", "password": "p"})


def test_vsan_health_fails_alike(agent, reference):
    # The simulator has no vSAN: py-vpoller's task raises, the agent says why.
    same(agent, reference, {"method": "vsan.health.get", "name": HOST})


# -- service-wide tasks ------------------------------------------------------------

def test_about(agent, reference):
    same(agent, reference, {"method": "about"}, compare_text=True)
    same(agent, reference, {"method": "about", "properties": ["apiType", "version", "no-such-field"]},
         compare_text=True)


def test_about_fails_alike_while_vcenter_is_down(tmp_path):
    """py-vpoller's about asks vCenter every time (vconnector reads the
    current session first), so it fails while vCenter is down; so must the
    agent's. Once vCenter is back on its port the agent answers as before
    (py-vpoller's session is gone then and its about keeps failing: its
    issues 31 and 43)."""
    ca_file = str(tmp_path / "ca.pem")
    process, port = start_simulator(ca_file)
    connector = VConnector(user="root", pwd="simulator", host="127.0.0.1", port=port)
    # Insecure: the simulator makes a new CA each time it starts.
    agent = VSphereAgent(user="root", pwd="simulator", host="127.0.0.1:%d" % port, insecure=True)
    msg = {"method": "about", "properties": ["apiType", "version"]}
    try:
        connector.connect()
        up = same(agent, connector, msg, compare_text=True)
        stop_simulator(process)
        process = None
        # Past the second in which the agent takes vCenter's last answer
        # for a sign of life.
        time.sleep(1.2)
        reply = same(agent, connector, msg)
        assert reply["msg"].startswith("Task about failed: cannot reach"), reply
        process, _ = start_simulator(ca_file, port)
        assert json.loads(agent.run(msg)) == up
    finally:
        if process is not None:
            stop_simulator(process)


def test_event_latest(agent, reference):
    same(agent, reference, {"method": "event.latest"}, compare_text=True)
    reply = json.loads(agent.run({"method": "event.latest"}))
    assert reply["result"] == [{"event": "User root logged event: Wartung in Zürich"}]


def test_session_get_lists_both_sessions(agent, reference):
    expected = py_vpoller(reference, {"method": "session.get"})
    reply = json.loads(agent.run({"method": "session.get"}))
    assert reply["success"] == expected["success"] == 0
    assert reply["msg"] == expected["msg"]
    assert [sorted(item) for item in reply["result"]] == [sorted(item) for item in expected["result"]]
    assert {item["key"] for item in reply["result"]} == {item["key"] for item in expected["result"]}


def test_snapshot_tree(agent, reference):
    """py-vpoller lists the roots and their children only; the agent the whole
    tree (the model holds a chain of three)."""
    msg = {"method": "vm.snapshot.get", "name": VM}
    expected = py_vpoller(reference, msg)
    reply = json.loads(agent.run(msg))
    assert [s["name"] for s in expected["result"]] == ["before-upgrade", "after-upgrade"]
    assert reply["result"][:2] == expected["result"]
    assert [s["name"] for s in reply["result"]] == ["before-upgrade", "after-upgrade", "after-patch"]
    same(agent, reference, {"method": "vm.snapshot.get", "name": "no-such-vm"}, compare_text=True)
    # A VM without snapshots: pyVmomi's read of its `snapshot` makes the
    # simulator drop the connection, so py-vpoller fails; the model gave
    # snapshots to DC0_H0_VM0 only.
    assert py_vpoller(reference, {"method": "vm.snapshot.get", "name": UNICODE_VM})["msg"] == \
        "Task vm.snapshot.get failed"
    assert agent.run({"method": "vm.snapshot.get", "name": UNICODE_VM}) == \
        '{"success": 1, "msg": "No snapshots found for: %s"}' % UNICODE_VM


def test_worker_checks(agent, reference):
    same(agent, reference, {"method": "no.such.task"}, compare_text=True)
    same(agent, reference, {"method": "vm.get", "name": VM}, compare_text=True)
    same(agent, reference, {"properties": ["name"]}, compare_text=True)


# -- performance -----------------------------------------------------------------

def test_performance_tables(agent, reference):
    same(agent, reference, {"method": "perf.metric.info"}, compare_text=True)
    same(agent, reference, {"method": "perf.interval.info"}, compare_text=True)


@pytest.mark.parametrize("method,name", [
    ("vm.perf.metric.info", VM), ("host.perf.metric.info", HOST), ("cluster.perf.metric.info", CLUSTER),
    ("datacenter.perf.metric.info", DATACENTER),
])
def test_metrics_an_object_offers(agent, reference, method, name):
    same(agent, reference, {"method": method, "name": name}, compare_text=True)
    same(agent, reference, {"method": method, "name": name, "counter-name": COUNTER}, compare_text=True)
    same(agent, reference, {"method": method, "name": name, "counter-name": "no.such.counter.x"},
         compare_text=True)
    same(agent, reference, {"method": method, "name": "no-such-object"}, compare_text=True)


def test_datastore_metrics(agent, reference):
    url = discovered(agent, "datastore.discover", "info.url")[0]
    same(agent, reference, {"method": "datastore.perf.metric.info", "name": url}, compare_text=True)
    same(agent, reference, {"method": "datastore.perf.metric.get", "name": url,
                            "counter-name": "datastore.read.kiloBytesPerSecond.average"}, compare_text=True)


@pytest.mark.parametrize("msg", [
    {"method": "vm.perf.metric.get", "name": VM, "counter-name": COUNTER},
    {"method": "host.perf.metric.get", "name": HOST, "counter-name": COUNTER, "instance": ""},
    {"method": "vm.perf.metric.get", "name": UNICODE_VM, "counter-name": COUNTER, "perf-interval": "Past day"},
    {"method": "cluster.perf.metric.get", "name": CLUSTER, "counter-name": "cpu.usagemhz.megaHertz.maximum",
     "perf-interval": "Past day"},
    {"method": "datacenter.perf.metric.get", "name": DATACENTER, "counter-name": "vmop.numPoweron.number.latest",
     "perf-interval": "Past week"},
])
def test_samples(agent, reference, msg):
    """Sample values carry the simulator's random noise and times move on:
    the rest of each sample must agree."""
    expected = py_vpoller(reference, msg)
    reply = json.loads(agent.run(msg))
    assert expected["success"] == 0, expected
    assert without(reply, "value", "timestamp") == without(expected, "value", "timestamp")
    assert all(isinstance(sample["value"], int) for sample in reply["result"])


@pytest.mark.parametrize("msg", [
    {"method": "vm.perf.metric.get", "name": "no-such-vm", "counter-name": COUNTER},
    {"method": "vm.perf.metric.get", "name": VM, "counter-name": "no.such.counter.x"},
    {"method": "vm.perf.metric.get", "name": VM, "counter-name": COUNTER, "perf-interval": "Past century"},
    {"method": "vm.perf.metric.get", "name": VM, "counter-name": COUNTER, "max-sample": "many"},
    {"method": "cluster.perf.metric.get", "name": CLUSTER, "counter-name": COUNTER, "perf-interval": ""},
])
def test_sample_failures(agent, reference, msg):
    same(agent, reference, msg, compare_text=True)


def test_newest_samples_where_py_vpoller_returns_the_oldest(agent, reference):
    """With max-sample 3 both get three samples; the agent's are oldest first
    and end with the newest, one refresh period apart (the simulator sends
    them newest first, which py-vpoller passes on)."""
    msg = {"method": "host.perf.metric.get", "name": HOST, "counter-name": COUNTER, "max-sample": 3}
    expected = py_vpoller(reference, msg)
    reply = json.loads(agent.run(msg))
    times = [datetime.datetime.fromisoformat(sample["timestamp"]) for sample in reply["result"]]
    assert len(times) == len(expected["result"]) == 3
    assert [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:])] == [20, 20]
