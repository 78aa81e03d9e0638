import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")


def run_example(name, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "python", name)] + list(args),
        env=env, stdout=subprocess.PIPE, check=True, timeout=60,
    ).stdout.decode("utf-8")


def test_discover_example(endpoint):
    output = run_example("discover.py", endpoint)
    assert json.loads(output)["result"] == [{"method": "vm.discover", "hostname": "vc01.example.org"}]


def test_vm_get_example_pretty_prints(endpoint):
    output = run_example("vm_get.py", endpoint, "vc01", "vm01")
    reply = json.loads(output)
    assert output.startswith('{\n    "success": 0,\n')
    assert reply["result"][0]["properties"] == ["name", "runtime.powerState"]
    assert reply["result"][0]["name"] == "vm01"
