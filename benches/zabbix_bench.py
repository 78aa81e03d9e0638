"""The Zabbix benchmark contenders, run by benches/run.py under
scripts/demo-stack.sh (which starts the simulator, vpoller-proxy and
vpoller-worker and sets VPOLLER_ENDPOINT and VPOLLER_VSPHERE_HOST).

`zabbix_bench.py ROUNDS SCALE` starts Debian's zabbix_agentd with the vpoller.so
module and two UserParameters, one running vpoller-cclient and one running
py-vpoller's vpoller-client (what an external check runs), queries the same
vm.get item through each over the agent protocol from 4 connections at once,
rounds alternating, and prints one line per contender: its name and the
queries per second of each round.
"""
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
AGENTD = "/usr/sbin/zabbix_agentd"
CONNECTIONS = 4


def query(port, key):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        data = key.encode()
        connection.sendall(b"ZBXD\x01" + struct.pack("<Q", len(data)) + data)
        reply = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply += chunk
    value = reply[13:].decode("utf-8", "replace")
    if "poweredOn" not in value:
        raise SystemExit("%s answered %r" % (key, value))


def rate(port, key, per_connection):
    def work():
        for _ in range(per_connection):
            query(port, key)

    threads = [threading.Thread(target=work) for _ in range(CONNECTIONS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return CONNECTIONS * per_connection / (time.perf_counter() - started)


def free_agent_port():
    while True:
        port = random.randint(20000, 32000)  # zabbix_agentd takes ports up to 32767
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def main():
    rounds, scale = int(sys.argv[1]), float(sys.argv[2])
    endpoint, host = os.environ["VPOLLER_ENDPOINT"], os.environ["VPOLLER_VSPHERE_HOST"]
    directory = tempfile.mkdtemp(prefix="vpoller-zabbix-bench-")
    module_conf = os.path.join(directory, "vpoller_module.conf")
    with open(module_conf, "w") as conf:
        conf.write("vPollerProxy = %s\nvPollerTimeout = 10000\nvPollerRetries = 1\n" % endpoint)
    port = free_agent_port()
    cclient = os.path.join(ROOT, "target", "c", "vpoller-cclient")
    py_client = os.path.join(os.path.dirname(sys.executable), "vpoller-client")
    agent_conf = os.path.join(directory, "zabbix_agentd.conf")
    with open(agent_conf, "w") as conf:
        conf.write(
            "AllowRoot=1\nLoadModulePath=%s\nLoadModule=vpoller.so\nTimeout=30\nPidFile=%s\n"
            "LogType=file\nLogFile=%s\nListenIP=127.0.0.1\nListenPort=%d\nStartAgents=%d\nServer=127.0.0.1\n"
            "UserParameter=vpoller.cclient[*],%s -e %s -m $1 -V $2 -n $3 -p $4 -H vpoller.helpers.zabbix\n"
            "UserParameter=vpoller.pyclient[*],%s -e %s -m $1 -V $2 -n $3 -p $4 -H vpoller.helpers.zabbix\n"
            % (os.path.join(ROOT, "target", "zabbix"), os.path.join(directory, "agent.pid"),
               os.path.join(directory, "agent.log"), port, CONNECTIONS, cclient, endpoint, py_client, endpoint))
    agent = subprocess.Popen([AGENTD, "-c", agent_conf, "-f"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=dict(os.environ, VPOLLER_MODULE_CONF=module_conf),
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("zabbix_agentd did not start")
                time.sleep(0.05)
        item = "vm.get,%s,DC0_H0_VM0,runtime.powerState" % host
        contenders = [
            ("vpoller.so module", "vpoller[%s]" % item, max(2, int(100 * scale))),
            ("UserParameter running vpoller-cclient", "vpoller.cclient[%s]" % item, max(2, int(40 * scale))),
            ("py-vpoller vpoller-client (as an external check runs it)", "vpoller.pyclient[%s]" % item,
             max(1, int(6 * scale))),
        ]
        for _, key, _ in contenders:
            query(port, key)  # warm up: the processes' clients and the worker's session
        results = {name: [] for name, _, _ in contenders}
        for _ in range(rounds):
            for name, key, per_connection in contenders:
                results[name].append(rate(port, key, per_connection))
        for name, _, _ in contenders:
            print("%s\t%s" % (name, " ".join("%.3f" % value for value in results[name])))
    finally:
        os.killpg(agent.pid, 15)
        agent.wait()


if __name__ == "__main__":
    main()
