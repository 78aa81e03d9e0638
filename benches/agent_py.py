"""Python contenders of the agent benchmark:
`agent_py.py MODE PORT CA-FILE TASK CALLS` prints seconds per task.

MODE py-vpoller: py-vpoller 0.7.3's task function, called as its worker calls
                 it (vconnector session with its lookup cache on), and the
                 worker's json.dumps of the result.
MODE binding:    this project's vpoller_ffi.VSphereAgent.run (the reply text),
                 the mirror off: every task asks the simulator, as py-vpoller's
                 do (section 10 of `make bench` measures the mirror).
"""
import json
import sys
import time

MESSAGES = {
    "vm.get": {"method": "vm.get", "name": "DC0_H0_VM0", "properties": ["name", "runtime.powerState"]},
    "host.get": {"method": "host.get", "name": "DC0_H0", "properties": ["name", "runtime.connectionState"]},
    "vm.discover": {"method": "vm.discover", "properties": ["runtime.powerState"]},
    "about": {"method": "about"},
}


def main():
    mode, port, ca_file, task, calls = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    msg = MESSAGES[task]
    if mode == "py-vpoller":
        import vpoller.vsphere.tasks  # noqa: F401  (registers the tasks)
        from vconnector.core import VConnector
        from vpoller.task.registry import registry
        from vpoller.worker import DefaultJSONEncoder

        connector = VConnector(user="root", pwd="bench", host="127.0.0.1", port=port, cache_enabled=True)
        connector.connect()
        function = registry.get(task).function

        def run():
            return json.dumps(function(connector, msg), cls=DefaultJSONEncoder, ensure_ascii=False)
    elif mode == "binding":
        from vpoller_ffi import VSphereAgent

        agent = VSphereAgent(user="root", pwd="bench", host="127.0.0.1:%d" % port, ca_file=ca_file, mirror=False)
        agent.connect()

        def run():
            return agent.run(msg)
    else:
        raise SystemExit("unknown mode %r" % mode)
    for _ in range(5):
        run()
    started = time.perf_counter()
    for _ in range(calls):
        reply = run()
        if '"success": 0' not in reply:
            raise SystemExit("task failed: %s" % reply[:300])
    print("%.9f" % ((time.perf_counter() - started) / calls))


if __name__ == "__main__":
    main()
