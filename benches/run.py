"""libvpoller's benchmarks: `make bench` (runs this with the project venv).

Every contender runs in its own process against the stand-in server
(tests/standin; `--lean` for the measured sections, and the libzmq `--direct`
one once more for section 1 as a reference), in rounds that alternate the
contenders (A B C ... A B C ...); each figure is the median over the rounds,
each ratio the median of the ratios within a round. The machines are shared
and noisy, so only ratios measured side by side in this one run mean anything.

Prints a Markdown report (also written to target/bench/report.md).
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BENCH_BIN = os.path.join(ROOT, "target", "bench")
STANDIN = os.path.join(ROOT, "target", "release", "vpoller-standin")
VENV_BIN = os.path.dirname(sys.executable)
MIB = 1024 * 1024
BUNDLED_RAW = os.path.join(ROOT, "target", "release", "examples", "bench-raw-bundled")
BENCH_AGENT = os.path.join(ROOT, "target", "release", "examples", "bench-agent")
FAKE_VSPHERE = os.path.join(ROOT, "target", "release", "vpoller-fake-vsphere")
VCSIM = os.path.join(ROOT, "target", "interop", "vcsim")
AGENT_TASKS = {
    "vm.get": {"method": "vm.get", "name": "DC0_H0_VM0", "properties": ["name", "runtime.powerState"]},
    "host.get": {"method": "host.get", "name": "DC0_H0", "properties": ["name", "runtime.connectionState"]},
    "vm.discover": {"method": "vm.discover", "properties": ["runtime.powerState"]},
    "about": {"method": "about"},
}
BASELINE_BIN = os.path.join(BENCH_BIN, "baseline")
BASELINE_COMMIT = "af70a88"  # the last commit before the live mirror (Makefile: BASELINE)
# Section 10: one Zabbix item is one property of one VM.
SWEEP_PROPERTIES = ["runtime.powerState", "summary.config.numCpu", "config.hardware.memoryMB",
                    "summary.quickStats.overallCpuUsage", "guest.toolsRunningStatus"]
PERF_COUNTER = "cpu.usage.percent.average"
PERF_PERIOD_S = 20  # the real-time refresh rate of vCenter, ESXi and the simulator
PERF_CHUNK = 256  # entities per refreshing QueryPerf (src/agent/perf/realtime.rs)
KIB = 1024
DISCOVER_25K = {"method": "vm.discover", "properties": [
    "runtime.powerState", "config.hardware.numCPU", "config.hardware.memoryMB", "summary.config.guestFullName",
    "guest.ipAddress"]}


def c_program(name):
    return os.path.join(BENCH_BIN, name)


def ruby(mode):
    return ["ruby", "-I", os.path.join(ROOT, "bindings", "ruby", "lib"),
            os.path.join(ROOT, "benches", "ruby_loop.rb"), mode]


def python(mode):
    return [sys.executable, os.path.join(ROOT, "benches", "py_loop.py"), mode]


def output_of(argv):
    completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if completed.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s" % (" ".join(argv), completed.returncode,
                                                   completed.stderr.decode(errors="replace")))
    return completed.stdout.decode().split()


class StandIn(object):
    """The stand-in server, `--lean` (ZMTP without libzmq, the fewest thread
    hand-offs, so that the figures show what the clients cost) or `--direct`
    (libzmq ROUTER with one worker thread)."""

    def __init__(self, mode):
        self.mode = mode

    def __enter__(self):
        self.process = subprocess.Popen([STANDIN, self.mode], stdout=subprocess.PIPE)
        self.endpoint = self.process.stdout.readline().decode().strip()
        if not self.endpoint.startswith("tcp://"):
            raise SystemExit("the stand-in proxy did not start")
        return self

    def __exit__(self, *exc_info):
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()


def alternate(rounds, contenders, measure):
    """Runs measure(contender) for every contender, round after round; returns
    {name: [value per round]}."""
    results = {name: [] for name, _ in contenders}
    for _ in range(rounds):
        for name, contender in contenders:
            results[name].append(measure(contender))
    return results


def per_call(endpoint, calls):
    def measure(argv):
        return float(output_of(argv + [endpoint, str(calls)])[0])
    return measure


def paired_ratio(results, name, baseline):
    """The median over rounds of name's time divided by baseline's time in the
    same round: steadier than a ratio of medians on a noisy machine."""
    return statistics.median(a / b for a, b in zip(results[name], results[baseline]))


def section_per_call(endpoint, rounds, calls):
    contenders = [
        ("raw libzmq REQ loop (C, one socket)", [c_program("loop_rawzmq")]),
        ("libvpoller vpoller_run loop (C)", [c_program("loop_vpoller")]),
        ("raw REQ loop over libvpoller's bundled libzmq (Rust)", [BUNDLED_RAW]),
        ("Ruby binding", ruby("binding")),
        ("documented Ruby ffi-rzmq snippet, per call", ruby("ffi-rzmq-snippet")),
        ("Ruby ffi-rzmq, one reused socket", ruby("ffi-rzmq-reused")),
        ("Python binding", python("binding")),
        ("py-vpoller 0.7.3 VPollerClient", python("py-vpoller")),
    ]
    return alternate(rounds, contenders, per_call(endpoint, calls))


def section_threads(endpoint, rounds, calls):
    counts = [1, 2, 4, 8, 16]
    contenders = [(str(n), n) for n in counts]

    def measure(threads):
        return float(output_of([c_program("threads"), endpoint, str(calls), str(threads)])[0])

    results = alternate(rounds, contenders, measure)
    return {int(name): statistics.median(values) for name, values in results.items()}


def section_big_reply(endpoint, rounds, calls):
    seconds, rss = [], []
    for _ in range(rounds):
        per, peak = output_of([c_program("big_reply"), endpoint, str(calls), str(16 * MIB)])
        seconds.append(float(per))
        rss.append(int(peak))
    return statistics.median(seconds), max(rss)


def section_process_per_call(endpoint, rounds, cclient_calls, py_calls):
    cclient = [os.path.join(ROOT, "target", "c", "vpoller-cclient"), "-e", endpoint, "-m", "vm.get",
               "-V", "vc01.example.org", "-n", "vm01", "-p", "runtime.powerState"]
    py_client = [os.path.join(VENV_BIN, "vpoller-client"), "-e", endpoint, "-m", "vm.get",
                 "-V", "vc01.example.org", "-n", "vm01", "-p", "runtime.powerState"]
    contenders = [("vpoller-cclient (libvpoller)", (cclient, cclient_calls)),
                  ("py-vpoller vpoller-client", (py_client, py_calls))]

    def measure(contender):
        argv, calls = contender
        started = time.perf_counter()
        for _ in range(calls):
            completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
            if completed.returncode != 0 or b'"success": 0' not in completed.stdout:
                raise SystemExit("%s failed: %r" % (argv[0], completed.stdout))
        return (time.perf_counter() - started) / calls

    results = alternate(rounds, contenders, measure)
    return {name: statistics.median(values) for name, values in results.items()}


class Simulator(object):
    """govmomi's vSphere simulator (tests/interop/vcsim) on a free loopback port."""

    def __enter__(self):
        os.makedirs(BENCH_BIN, exist_ok=True)
        self.ca_file = os.path.join(BENCH_BIN, "vcsim-ca.pem")
        self.process = subprocess.Popen([VCSIM, "-listen", "127.0.0.1:0", "-ca-out", self.ca_file],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.url = self.process.stdout.readline().decode().strip()
        if not self.url.startswith("https://"):
            raise SystemExit("the vSphere simulator did not start")
        self.host = self.url.split("@")[-1].split("/")[0]
        self.port = self.host.rsplit(":", 1)[1]
        return self

    def __exit__(self, *exc_info):
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()


def section_agent(simulator, rounds, scale):
    """Per task: the agent (Rust API, Python binding), py-vpoller's task
    function and the govmomi floor, seconds per task."""
    import json
    tables = {}
    for task, msg in AGENT_TASKS.items():
        text = json.dumps(msg)
        calls = 100000 if task == "about" else 300
        calls = max(1, int(calls * scale))
        py_calls = max(1, int((200 if task == "about" else 30) * scale))
        py = [sys.executable, os.path.join(ROOT, "benches", "agent_py.py")]
        contenders = [
            ("agent, Rust API", [BENCH_AGENT, "per-call", simulator.host, simulator.ca_file, text, str(calls)]),
            ("agent, Python binding", py + ["binding", simulator.port, simulator.ca_file, task,
                                            str(max(1, calls // 5))]),
            ("py-vpoller 0.7.3 task function", py + ["py-vpoller", simulator.port, simulator.ca_file, task,
                                                     str(py_calls)]),
            ("govmomi loop (Go), the floor", [c_program("agentloop"), simulator.url, simulator.ca_file, task,
                                              str(calls)]),
        ]
        tables[task] = alternate(rounds, contenders, lambda argv: float(output_of(argv)[0]))
    return tables


def section_agent_threads(simulator, rounds, calls):
    import json
    text = json.dumps(AGENT_TASKS["vm.get"])
    contenders = [
        ("agent, 8 threads on one agent (Rust)", [BENCH_AGENT, "threads", simulator.host, simulator.ca_file, text,
                                                 str(calls), "8"]),
        ("govmomi, 8 goroutines on one client (Go)", [c_program("agentloop"), simulator.url, simulator.ca_file,
                                                      "vm.get", str(calls), "8"]),
    ]
    return alternate(rounds, contenders, lambda argv: float(output_of(argv)[0]))


def section_agent_memory(rounds, vms):
    import json
    fake = subprocess.Popen([FAKE_VSPHERE, "--vms", str(vms), "--page", "1000"], stdout=subprocess.PIPE)
    try:
        host = fake.stdout.readline().decode().strip()
        samples = []
        for _ in range(rounds):
            reply, before, peak = (int(field) for field in
                                   output_of([BENCH_AGENT, "rss", host, json.dumps(DISCOVER_25K)]))
            samples.append((reply, before, peak))
        return samples
    finally:
        fake.kill()
        fake.wait()
        fake.stdout.close()


def section_stacks(rounds, scale):
    """Tasks per second through a whole vPoller (proxy and one worker
    process) for 1, 8 and 32 clients: py-vpoller 0.7.3's programs and this
    project's, on one simulator; and the agent in-process with one client."""
    import json
    sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
    from stack import Stack
    results = {}
    with Stack(workers=1, cache=True) as py_stack:
        # The mirror off: every request asks the simulator, as py-vpoller's
        # worker does (section 10 measures the mirror).
        with Stack(proxy="rust", worker="rust", share=py_stack, cache=True, mirror=False) as rust_stack:
            task = dict(AGENT_TASKS["vm.get"], hostname=py_stack.vsphere_host)
            text = json.dumps(task)
            for clients in (1, 8, 32):
                py_calls = max(2, int(400 * scale) // clients)
                rust_calls = max(5, int(3000 * scale) // clients)
                contenders = [
                    ("py-vpoller stack", [BENCH_AGENT, "stack", py_stack.endpoint, text, str(py_calls),
                                          str(clients)]),
                    ("Rust stack", [BENCH_AGENT, "stack", rust_stack.endpoint, text, str(rust_calls),
                                    str(clients)]),
                ]
                if clients == 1:
                    # The hops alone: a task that needs no vSphere call.
                    about = json.dumps(dict(AGENT_TASKS["about"], hostname=py_stack.vsphere_host))
                    contenders.append(("Rust stack, about", [BENCH_AGENT, "stack", rust_stack.endpoint, about,
                                                             str(rust_calls), "1"]))
                    local = json.dumps(AGENT_TASKS["vm.get"])
                    # Seconds per task, turned into tasks per second below.
                    contenders.append(("agent in-process", [BENCH_AGENT, "per-call", py_stack.vsphere_host + ":443",
                                                            py_stack.vsphere_ca, local, str(rust_calls)]))
                measured = alternate(rounds, contenders, lambda argv: float(output_of(argv)[0]))
                if "agent in-process" in measured:
                    measured["agent in-process"] = [1 / seconds for seconds in measured["agent in-process"]]
                results[clients] = measured
            # The same three with every process on one core, where a wake-up
            # needs no other core: how much of the hops is the machine's.
            one_core = [py_stack.processes["vcsim"].pid] + [process.pid for process in rust_stack.processes.values()]
            pin = lambda cpus: [subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)],
                                               stdout=subprocess.DEVNULL, check=True) for pid in one_core]
            pin("0")
            try:
                local = json.dumps(AGENT_TASKS["vm.get"])
                about = json.dumps(dict(AGENT_TASKS["about"], hostname=py_stack.vsphere_host))
                calls = str(max(5, int(3000 * scale)))
                on_one = ["taskset", "-c", "0", BENCH_AGENT]
                measured = alternate(rounds, [
                    ("Rust stack", on_one + ["stack", rust_stack.endpoint, text, calls, "1"]),
                    ("Rust stack, about", on_one + ["stack", rust_stack.endpoint, about, calls, "1"]),
                    ("agent in-process", on_one + ["per-call", py_stack.vsphere_host + ":443", py_stack.vsphere_ca,
                                                   local, calls]),
                ], lambda argv: float(output_of(argv)[0]))
                measured["agent in-process"] = [1 / seconds for seconds in measured["agent in-process"]]
                results["one core"] = measured
            finally:
                pin("0-%d" % (os.cpu_count() - 1))
    return results


class MirrorRun(object):
    """Section 10's sizes: the full run's or --quick's."""

    def __init__(self, quick):
        # VMs = datacenters x (standalone hosts + clusters) x vms per pool.
        if quick:
            self.inventory = ["-hosts", "4", "-clusters", "1", "-vms", "20"]  # 100 VMs
            self.perf_inventory = ["-hosts", "2", "-clusters", "1", "-vms", "100"]  # 300 VMs
            self.block, self.py_sample, self.sample, self.rounds = 10, 50, 100, 1
        else:
            self.inventory = ["-hosts", "24", "-clusters", "1", "-vms", "200"]  # 5000 VMs
            self.perf_inventory = ["-hosts", "34", "-clusters", "1", "-vms", "200"]  # 7000 VMs
            self.block, self.py_sample, self.sample, self.rounds = 40, 200, 1000, 3
        self.delay = ["-delay-ms", "10"]
        self.clients = 32


def vm_names(stack):
    """Every VM's name, asked of the simulator by an agent of this process
    (no contender sees it)."""
    from vpoller_ffi import VSphereAgent
    agent = VSphereAgent(user="root", pwd="simulator", host=stack.vsphere_host, ca_file=stack.vsphere_ca,
                         mirror=False, timeout=600000)
    try:
        reply = agent.vm_discover(msg={})
    finally:
        agent.close()
    if reply.get("success") != 0:
        raise SystemExit("vm.discover on the simulator failed: %r" % reply)
    return sorted(item["name"] for item in reply["result"])


def write_sweep(path, requests):
    import json
    with open(path, "w") as out:
        for request in requests:
            out.write(json.dumps(request) + "\n")


def zabbix_sweep(names, hostname, block):
    """Every VM x SWEEP_PROPERTIES, one property per request (a Zabbix item):
    the VMs in a fixed random order, taken in blocks of `block` VMs, each
    block asking its VMs' first property, then their second, ... So the first
    k blocks are a whole sweep over k x block VMs (a fifth of the requests
    the first ones for their VM, as in the whole sweep), and the items of
    one VM are `block` requests apart (more than the clients in flight)."""
    import random
    order = list(names)
    random.Random(20240).shuffle(order)
    requests = []
    for start in range(0, len(order), block):
        group = order[start:start + block]
        for prop in SWEEP_PROPERTIES:
            for name in group:
                requests.append({"method": "vm.get", "hostname": hostname, "name": name, "properties": [prop]})
    return requests


def worker_calls(stack):
    """The SOAP calls the worker's agent of the simulator made so far, by
    method (its `status`)."""
    return dict(host_mirror(stack)["soap_calls"])


def minus(calls, other):
    left = {method: count - other.get(method, 0) for method, count in calls.items()}
    return {method: count for method, count in left.items() if count > 0}


def sweep(stack, path, clients, limit=None, beside=()):
    """One sweep through stack's proxy with the simulator's calls counted:
    (requests/s, seconds, requests, {METHOD: calls}). The calls that the
    workers of the stacks `beside` (running, idle, a mirror following)
    made meanwhile, by their `status`, are not counted."""
    argv = [BENCH_AGENT, "sweep", stack.endpoint, path, str(clients)]
    if limit is not None:
        argv.append(str(limit))
    before = [worker_calls(other) for other in beside]
    stack.simulator("calls reset")
    rate, seconds, requests = output_of(argv)
    calls = stack.simulator_calls()
    for other, then in zip(beside, before):
        calls = minus(calls, minus(worker_calls(other), then))
    return float(rate), float(seconds), int(requests), calls


def repeat(stack, msg, calls, clients):
    """`bench-agent stack` with the simulator's calls counted: (tasks/s, {METHOD: calls})."""
    stack.simulator("calls reset")
    rate = float(output_of([BENCH_AGENT, "stack", stack.endpoint, msg, str(calls), str(clients)])[0])
    return rate, stack.simulator_calls()


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS for process %d" % pid)


def heap_in_use(pid, log):
    """The bytes glibc's malloc has handed out and not taken back in
    process pid (all arenas), by calling malloc_stats() in it through gdb;
    it prints to the process's standard error, `log`. None without gdb."""
    import re
    import shutil
    if shutil.which("gdb") is None:
        return None
    start = os.path.getsize(log)
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (void) malloc_stats()"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    with open(log, "rb") as text:
        text.seek(start)
        found = re.findall(rb"in use bytes\s*=\s*(\d+)", text.read())
    return int(found[-1]) if found else None


def host_mirror(stack):
    """The worker's `status` of the simulator's host: its `mirror` object."""
    status = stack.worker_status()
    return status["result"]["hosts"][stack.vsphere_host]["mirror"]


def wait_in_sync(stack, seconds=120):
    deadline = time.monotonic() + seconds
    while True:
        mirror = host_mirror(stack)
        if mirror and mirror.get("state") == "in sync":
            return mirror
        if time.monotonic() > deadline:
            raise SystemExit("the mirror is not in sync after %d s: %r" % (seconds, mirror))
        time.sleep(0.2)


def total(calls, method=None):
    if method is None:
        return sum(calls.values())
    return calls.get(method, 0)


def per_thousand(calls, requests):
    return 1000.0 * total(calls) / requests


def section_mirror(run):
    """Section 10: the Zabbix-shaped sweep through py-vpoller's stack, the
    proxy and worker before the mirror (af70a88), this project's with the
    mirror off and on; and real-time CPU samples of many VMs through the
    stack with the mirror on. Returns the figures as a dict."""
    import json
    import random
    sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
    from stack import Stack
    baseline = (os.path.join(BASELINE_BIN, "vpoller-proxy"), os.path.join(BASELINE_BIN, "vpoller-worker"))
    for program in baseline:
        if not os.access(program, os.X_OK):
            raise SystemExit("%s is missing: run `make bench-baseline`" % program)
    out = {}
    sweep_path = os.path.join(BENCH_BIN, "mirror-sweep.jsonl")
    with Stack(workers=1, cache=True, control=True, simulator_args=run.inventory + run.delay) as py_stack:
        names = vm_names(py_stack)
        out["vms"] = len(names)
        requests = zabbix_sweep(names, py_stack.vsphere_host, run.block)
        write_sweep(sweep_path, requests)
        out["requests"] = len(requests)

        # py-vpoller 0.7.3 (one worker process, its lookup cache on): the
        # sample cold, then the same requests again with its lookups cached.
        out["py cold"] = sweep(py_stack, sweep_path, run.clients, run.py_sample)
        out["py warm"] = sweep(py_stack, sweep_path, run.clients, run.py_sample)
        py_stack.stop_worker()
        py_stack.stop_proxy()

        def rust(**options):
            return Stack(proxy="rust", worker="rust", share=py_stack, cache=True, **options)

        # Before the mirror: the sample, cold.
        with rust(rust_proxy=baseline[0], rust_worker=baseline[1]) as old:
            out["before cold"] = sweep(old, sweep_path, run.clients, run.sample)

        with rust(mirror=False) as off, rust(mirror=True) as on:
            # The same sample, cold, on a worker started afresh each time.
            out["off sample"] = sweep(off, sweep_path, run.clients, run.sample)
            out["on sample"] = sweep(on, sweep_path, run.clients, run.sample)
            for stack in (off, on):
                stack.stop_worker()
                stack.start_worker()
                stack.wait_until_ready()
            # The whole first sweep, cold (the mirror filling as it goes).
            out["off first"] = sweep(off, sweep_path, run.clients)
            out["on first"] = sweep(on, sweep_path, run.clients)
            wait_in_sync(on)
            # The steady state: the same sweep again, rounds alternating; and
            # `about` through the same stack (the hops alone).
            about = json.dumps({"method": "about", "hostname": py_stack.vsphere_host})
            about_calls = max(20, len(requests) // run.clients)
            steady = {"on": [], "off": [], "about": []}
            follower_from, follower_started = worker_calls(on), time.monotonic()
            for _ in range(run.rounds):
                steady["on"].append(sweep(on, sweep_path, run.clients))
                rate, calls = repeat(on, about, about_calls, run.clients)
                steady["about"].append((rate, None, about_calls * run.clients, calls))
                steady["off"].append(sweep(off, sweep_path, run.clients, beside=[on]))
            out["steady"] = steady
            # What the mirror-on worker called over the whole steady phase,
            # its sweeps and the others' alike: the follower's polls.
            out["follower"] = (minus(worker_calls(on), follower_from), time.monotonic() - follower_started)
            for name, stack in (("off", off), ("on", on)):
                pid = stack.processes["worker"].pid
                out["rss " + name] = rss_bytes(pid)
                out["heap " + name] = heap_in_use(pid, os.path.join(stack.directory, "worker.log"))
            out["mirror status"] = host_mirror(on)

    # Real-time CPU samples, one request per VM, mirror on.
    with Stack(proxy="rust", worker="rust", cache=True, mirror=True, control=True,
               simulator_args=run.perf_inventory + run.delay) as perf_stack:
        names = vm_names(perf_stack)
        out["perf vms"] = len(names)
        info = json.loads(perf_stack.request({"method": "perf.metric.info", "hostname": perf_stack.vsphere_host},
                                             timeout=60000))
        counters = {"%s.%s.%s.%s" % (counter["groupInfo"]["key"], counter["nameInfo"]["key"],
                                     counter["unitInfo"]["key"], counter["rollupType"])
                    for counter in info.get("result", [])}
        if PERF_COUNTER not in counters:
            raise SystemExit("the simulator has no counter %s" % PERF_COUNTER)
        order = list(names)
        random.Random(20241).shuffle(order)
        perf_path = os.path.join(BENCH_BIN, "mirror-perf-sweep.jsonl")
        write_sweep(perf_path, [{"method": "vm.perf.metric.get", "hostname": perf_stack.vsphere_host, "name": name,
                                 "counter-name": PERF_COUNTER} for name in order])
        out["perf first"] = sweep(perf_stack, perf_path, run.clients)
        second_started = time.monotonic()
        out["perf second"] = sweep(perf_stack, perf_path, run.clients)
        # Once every sample is older than the refresh period (20 s): each
        # chunk is refreshed by the first request that finds it old.
        time.sleep(max(0.0, second_started + PERF_PERIOD_S + 1 - time.monotonic()))
        out["perf third"] = sweep(perf_stack, perf_path, run.clients)
    return out


def duration(seconds):
    if seconds >= 3600:
        return "%.1f hours" % (seconds / 3600)
    if seconds >= 120:
        return "%.0f minutes" % (seconds / 60)
    return "%.0f s" % seconds


def calls_text(calls):
    """`METHOD N, ...`, the most called first."""
    if not calls:
        return "none"
    return ", ".join("%s %d" % item for item in sorted(calls.items(), key=lambda item: (-item[1], item[0])))


def ratio_text(value):
    return "%.3f" % value if value < 0.1 else "%.1f" % value


def report_mirror(out, run, say, targets):
    """Section 10's tables and targets."""
    vms, requests = out["vms"], out["requests"]
    say("### 10. The live mirror: a Zabbix-shaped sweep of %d VMs through a whole vPoller" % vms)
    say()
    say("The simulator with %d VMs and %s ms added to every SOAP call (a loaded vCenter); each request "
        "is one `vm.get` of one property of one VM (a Zabbix item), every VM x %d properties (%s), %d "
        "requests per sweep, in blocks of %d VMs (a block asks its VMs' first property, then the second, "
        "...), from %d libvpoller clients in parallel (`bench-agent sweep`), every reply checked. One "
        "proxy and one worker process each: py-vpoller 0.7.3's (`-c 1`), this project's before the "
        "mirror (commit %s, built by `make bench-baseline`), and this project's with `[cache] mirror` "
        "off and on; the lookup cache on, the worker's defaults (32 threads, at most 8 of them on one "
        "host). SOAP calls are the simulator's count of the calls it served during each sweep. A worker "
        "is started afresh for each cold sweep." % (
            vms, run.delay[1], len(SWEEP_PROPERTIES), ", ".join("`%s`" % p for p in SWEEP_PROPERTIES),
            requests, run.block, run.clients, BASELINE_COMMIT))
    say()
    before_rate = out["before cold"][0]
    say("First sweep, cold (lookups not cached, the mirror filling as it goes). py-vpoller's stack and "
        "the one before the mirror are measured on the first requests of the sweep only (whole blocks, "
        "so a fifth of them the first for their VM, as in the whole sweep): at these rates their whole "
        "sweep would take %s and %s." % (
            duration(requests / out["py cold"][0]), duration(requests / before_rate)))
    say()
    say("| contender | requests | requests/s | SOAP calls per 1,000 requests | calls by method | x before the mirror |")
    say("|---|---:|---:|---:|---|---:|")
    rows = [("py-vpoller 0.7.3 stack, first %d" % run.py_sample, out["py cold"]),
            ("before the mirror (%s), first %d" % (BASELINE_COMMIT, run.sample), out["before cold"]),
            ("mirror off, first %d" % run.sample, out["off sample"]),
            ("mirror on, first %d" % run.sample, out["on sample"]),
            ("mirror off, whole sweep", out["off first"]),
            ("mirror on, whole sweep", out["on first"])]
    for name, (rate, seconds, count, calls) in rows:
        say("| %s | %d | %.0f | %.1f | %s | %s |" % (name, count, rate, per_thousand(calls, count),
                                                      calls_text(calls), ratio_text(rate / before_rate)))
    say()
    steady = out["steady"]
    say("Steady state: the same sweep again right after the first (the mirror `in sync` by the worker's "
        "`status` before it), %d round(s) alternating mirror on, `about` through the mirror-on stack "
        "(a task answered without a vSphere call: the hops alone, client to proxy to worker and back, "
        "%d clients), mirror off; medians, ratios the median of the per-round ratios. The calls the "
        "mirror-on worker's follower made during the mirror-off sweeps (by that worker's `status`) are "
        "not counted for mirror off. py-vpoller's row is its first %d requests once more, lookups "
        "cached." % (run.rounds, run.clients, run.py_sample))
    say()
    say("| contender | requests/s | SOAP calls per 1,000 requests | calls by method (all rounds) | x mirror off |")
    say("|---|---:|---:|---|---:|")
    on_rates = [entry[0] for entry in steady["on"]]
    off_rates = [entry[0] for entry in steady["off"]]
    about_rates = [entry[0] for entry in steady["about"]]

    def merged(entries):
        """All rounds' calls and requests together."""
        calls, count = {}, 0
        for _, _, requests, counted in entries:
            for method, n in counted.items():
                calls[method] = calls.get(method, 0) + n
            count += requests
        return calls, count

    on_calls, on_count = merged(steady["on"])
    off_calls, off_count = merged(steady["off"])
    about_all, about_count = merged(steady["about"])
    on_over_off = statistics.median(a / b for a, b in zip(on_rates, off_rates))
    on_over_about = statistics.median(a / b for a, b in zip(on_rates, about_rates))
    py_rate, _, py_count, py_calls = out["py warm"]
    say("| py-vpoller 0.7.3 stack, first %d again | %.0f | %.1f | %s | %s |" % (
        run.py_sample, py_rate, per_thousand(py_calls, py_count), calls_text(py_calls),
        ratio_text(py_rate / statistics.median(off_rates))))
    say("| mirror off | %.0f | %.1f | %s | 1.0 |" % (statistics.median(off_rates),
                                                    per_thousand(off_calls, off_count), calls_text(off_calls)))
    say("| mirror on | %.0f | %.2f | %s | %.1f |" % (statistics.median(on_rates),
                                                     per_thousand(on_calls, on_count), calls_text(on_calls),
                                                     on_over_off))
    say("| `about` through the mirror-on stack (the hops) | %.0f | %.2f | %s | %.1f |" % (
        statistics.median(about_rates), per_thousand(about_all, about_count), calls_text(about_all),
        statistics.median(a / b for a, b in zip(about_rates, off_rates))))
    say()
    follower_calls, follower_seconds = out["follower"]
    per_minute = 60.0 * total(follower_calls) / follower_seconds
    # At Zabbix's default interval every item is asked once a minute.
    paced = 1000.0 * per_minute / requests
    say("Between requests the follower's long poll returns every 5 s when nothing changed: over the "
        "%.0f s of the steady rounds the mirror-on worker made %s (its `status`), %.1f calls a minute "
        "whatever the load. With every item asked once a minute (Zabbix's default interval, %d "
        "requests a minute here) that is %.2f calls per 1,000 requests." % (
            follower_seconds, calls_text(follower_calls), per_minute, requests, paced))
    say()
    mirror = out["mirror status"]
    grown = out["rss on"] - out["rss off"]
    heap_on, heap_off = out.get("heap on"), out.get("heap off")
    heap = heap_on - heap_off if heap_on is not None and heap_off is not None else None
    say("Memory after the steady sweeps: the worker process's resident set (`VmRSS`), mirror on and off "
        "(the same inventory and sweeps; both workers' lookup caches hold every VM), the bytes its "
        "allocator has handed out and not taken back (glibc's `malloc_stats()`, called through gdb: the "
        "resident set less the allocator's free space in its arenas), and the mirror as the worker's "
        "`status` shows it.")
    say()
    say("| | mirror off | mirror on | on - off | per VM |")
    say("|---|---:|---:|---:|---:|")
    say("| resident set | %.1f MiB | %.1f MiB | %.1f MiB | %.2f KiB |" % (
        out["rss off"] / MIB, out["rss on"] / MIB, grown / MIB, grown / float(vms) / KIB))
    if heap is not None:
        say("| heap in use | %.1f MiB | %.1f MiB | %.1f MiB | %.2f KiB |" % (
            heap_off / MIB, heap_on / MIB, heap / MIB, heap / float(vms) / KIB))
    say()
    say("The mirror: %d objects, %d properties (the five and `name`), %d values; %d tasks answered from "
        "memory, %d directly." % (mirror["objects"], mirror["properties"], mirror["values"],
                                   mirror["answered_from_memory"], mirror["answered_directly"]))
    say()
    perf_vms = out["perf vms"]
    chunks = -(-perf_vms // PERF_CHUNK)
    say("Real-time samples: `vm.perf.metric.get` of `%s` without `perf-interval` for each of %d VMs "
        "(one request per VM, shuffled), %d clients, mirror on, a simulator of its own with the same "
        "delay. The second sweep right after the first, the third once every sample is more than %d s "
        "old (each chunk refreshed by the first request that finds it old). %d VMs make %d chunks of at "
        "most %d." % (PERF_COUNTER, perf_vms, run.clients, PERF_PERIOD_S, perf_vms, chunks, PERF_CHUNK))
    say()
    say("| sweep | seconds | requests/s | QueryPerf calls | all calls by method |")
    say("|---|---:|---:|---:|---|")
    sweeps = (("first (answered directly, fills the cache)", "perf first"),
              ("second, right after (from the cache)", "perf second"),
              ("third, every sample expired (the cache refreshed)", "perf third"))
    for label, key in sweeps:
        rate, seconds, count, calls = out[key]
        say("| %s | %.2f | %.0f | %d | %s |" % (label, seconds, rate, total(calls, "QueryPerf"), calls_text(calls)))
    say()

    steady_calls = per_thousand(on_calls, on_count)
    targets += [
        ("steady state, mirror on: at most 1 SOAP call per 1,000 requests (mirror off: about 1,000)",
         "%.2f during the sweeps, %.2f with the follower's polls at one sweep a minute (mirror off: %.0f)" % (
             steady_calls, paced, per_thousand(off_calls, off_count)),
         steady_calls <= 1.0 and paced <= 1.0),
        ("steady state: mirror on at least 20x mirror off's requests/s", "%.1fx (%.0f against %.0f)" % (
            on_over_off, statistics.median(on_rates), statistics.median(off_rates)), on_over_off >= 20.0),
        ("steady state: mirror on at least half of `about` through the same stack", "%.2fx (%.0f against %.0f)" % (
            on_over_about, statistics.median(on_rates), statistics.median(about_rates)), on_over_about >= 0.5),
    ]
    first_ratio = out["on first"][0] / before_rate
    targets.append(("first sweep of %d VMs at least 20x before the mirror (%s, on its first %d requests)"
                    % (vms, BASELINE_COMMIT, run.sample), "%.0fx (%.0f against %.1f requests/s)" % (
                        first_ratio, out["on first"][0], before_rate), first_ratio >= 20.0))
    per_vm = grown / float(vms)
    targets.append(("worker's memory growth per mirrored VM at %d properties at most 2 KiB" % len(SWEEP_PROPERTIES),
                    "%.2f KiB resident%s" % (per_vm / KIB, "" if heap is None else
                                             ", %.2f KiB heap in use" % (heap / float(vms) / KIB)),
                    per_vm <= 2 * KIB))
    cached = [out["perf second"], out["perf third"]]
    slowest = max(entry[1] for entry in cached)
    targets.append(("real-time CPU counter of %d VMs: the sweep through the stack in under 5 s" % perf_vms,
                    "%.2f s and %.2f s from the cache (the first, direct: %.1f s)" % (
                        cached[0][1], cached[1][1], out["perf first"][1]), slowest < 5.0))
    queries = [total(entry[3], "QueryPerf") for entry in cached]
    allowed = [chunks * max(1, int(-(-entry[1] // PERF_PERIOD_S))) for entry in cached]
    targets.append(("... with at most one QueryPerf per %d s per chunk (%d chunks)" % (PERF_PERIOD_S, chunks),
                    "%d and %d QueryPerf in those sweeps" % tuple(queries),
                    all(q <= a for q, a in zip(queries, allowed))))

def section_zabbix(rounds, scale):
    """benches/zabbix_bench.py under scripts/demo-stack.sh: {contender: [queries/s per round]}."""
    completed = subprocess.run(
        [os.path.join(ROOT, "scripts", "demo-stack.sh"), sys.executable,
         os.path.join(ROOT, "benches", "zabbix_bench.py"), str(rounds), str(scale)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
    if completed.returncode != 0:
        raise SystemExit("the Zabbix benchmark failed:\n%s" % completed.stderr.decode(errors="replace"))
    results = {}
    for line in completed.stdout.decode().splitlines():
        if "\t" in line:
            name, values = line.split("\t", 1)
            results[name] = [1 / float(value) for value in values.split()]  # seconds per query
    return results


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, %s %s, Python %s, %s" % (
        cpu, os.cpu_count(), platform.system(), platform.release(), platform.python_version(),
        subprocess.run(["ruby", "--version"], stdout=subprocess.PIPE).stdout.decode().split(" (")[0])


def classic_sections(args, rounds, calls, say, targets):
    """Sections 1 to 9."""
    raw_name = "raw libzmq REQ loop (C, one socket)"

    def per_call_table(results):
        say("| client | us/call | calls/s | x raw libzmq (median of per-round ratios) |")
        say("|---|---:|---:|---:|")
        for name, values in results.items():
            seconds = statistics.median(values)
            say("| %s | %.1f | %.0f | %.2f |" % (name, seconds * 1e6, 1 / seconds,
                                                 paired_ratio(results, name, raw_name)))
        say()

    with StandIn("--direct") as stand_in:
        say("### 1a. One request after another, libzmq stand-in (`vpoller-standin --direct`), for reference")
        say()
        per_call_table(section_per_call(stand_in.endpoint, rounds, calls))

    with StandIn("--lean") as stand_in:
        endpoint = stand_in.endpoint
        say("### 1. One request after another (`vpoller-standin --lean`, %d calls per contender and round)"
            % calls)
        say()
        results = section_per_call(endpoint, rounds, calls)
        per_call_table(results)
        c_ratio = paired_ratio(results, "libvpoller vpoller_run loop (C)", raw_name)
        ruby_ratio = paired_ratio(results, "Ruby binding", "documented Ruby ffi-rzmq snippet, per call")
        python_speedup = 1 / paired_ratio(results, "Python binding", "py-vpoller 0.7.3 VPollerClient")
        targets += [
            ("C over libvpoller within 1.05x of the raw libzmq loop", "%.2fx" % c_ratio, c_ratio <= 1.05),
            ("Ruby binding no slower than the ffi-rzmq snippet", "%.2fx the snippet's time" % ruby_ratio,
             ruby_ratio <= 1.0),
            ("Python binding at least 5x faster than py-vpoller", "%.1fx faster" % python_speedup,
             python_speedup >= 5.0),
        ]

        thread_calls = 10 if args.quick else 25
        say("### 2. One client shared by threads, 20 ms per request in the stand-in workers "
            "(%d calls per thread)" % thread_calls)
        say()
        threads = section_threads(endpoint, rounds, thread_calls)
        say("| threads | calls/s | x 1 thread | ideal |")
        say("|---:|---:|---:|---:|")
        for count, rate in sorted(threads.items()):
            say("| %d | %.0f | %.2f | %d |" % (count, rate, rate / threads[1], count))
        say()
        scaling = threads[8] / threads[1]
        targets.append(("8 threads at least 7x one thread", "%.2fx" % scaling, scaling >= 7.0))

        big_calls = 2 if args.quick else 5
        say("### 3. A 16 MiB reply (%d calls per round, C)" % big_calls)
        say()
        seconds, peak = section_big_reply(endpoint, rounds, big_calls)
        say("| ms/call | peak RSS of the process | x the reply |")
        say("|---:|---:|---:|")
        say("| %.1f | %.1f MiB | %.2f |" % (seconds * 1e3, peak / MIB, peak / (16.0 * MIB)))
        say()
        targets.append(("16 MiB reply with peak RSS at most 3x the reply", "%.2fx" % (peak / (16.0 * MIB)),
                        peak <= 3 * 16 * MIB))

        cclient_calls, py_calls = (10, 3) if args.quick else (40, 8)
        say("### 4. A whole process per request, as Zabbix external checks run it")
        say()
        process = section_process_per_call(endpoint, rounds, cclient_calls, py_calls)
        say("| command | ms/call |")
        say("|---|---:|")
        for name, seconds in process.items():
            say("| %s | %.2f |" % (name, seconds * 1e3))
        say()
        cli_speedup = process["py-vpoller vpoller-client"] / process["vpoller-cclient (libvpoller)"]
        targets.append(("vpoller-cclient at least 20x faster per call than vpoller-client",
                        "%.0fx faster" % cli_speedup, cli_speedup >= 20.0))

    with Simulator() as simulator:
        scale = 0.2 if args.quick else 1.0
        say("### 5. The vSphere agent, one task after another, on the simulator (govmomi 0.24 vcsim)")
        say()
        say("Steady state: logged in, lookups and container views cached where each side caches them; the "
            "agent's mirror off. "
            "Seconds per task; ratios are medians of per-round ratios.")
        say()
        agent_tables = section_agent(simulator, rounds, scale)
        say("| task | agent (Rust) us | agent (Python) us | py-vpoller us | govmomi (Go) us "
            "| py-vpoller / agent (Rust) | py-vpoller / agent (Python) | agent (Rust) / Go |")
        say("|---|---:|---:|---:|---:|---:|---:|---:|")
        for task, results in agent_tables.items():
            rust, binding = "agent, Rust API", "agent, Python binding"
            py, go = "py-vpoller 0.7.3 task function", "govmomi loop (Go), the floor"
            speedup = paired_ratio(results, py, rust)
            binding_speedup = paired_ratio(results, py, binding)
            floor = paired_ratio(results, rust, go)
            say("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |" % (
                task, statistics.median(results[rust]) * 1e6, statistics.median(results[binding]) * 1e6,
                statistics.median(results[py]) * 1e6, statistics.median(results[go]) * 1e6,
                speedup, binding_speedup, floor))
            targets.append(("agent %s at least 10x faster than py-vpoller (Rust / Python binding)" % task,
                            "%.1fx / %.1fx" % (speedup, binding_speedup),
                            speedup >= 10.0 and binding_speedup >= 10.0))
            targets.append(("agent %s within 1.5x of the govmomi loop" % task, "%.2fx" % floor, floor <= 1.5))
        say()

        agent_thread_calls = 40 if args.quick else 200
        say("### 6. The agent shared by 8 threads vs 8 goroutines on one govmomi client (vm.get, %d tasks each)"
            % agent_thread_calls)
        say()
        threaded = section_agent_threads(simulator, rounds, agent_thread_calls)
        say("| contender | tasks/s |")
        say("|---|---:|")
        for name, values in threaded.items():
            say("| %s | %.0f |" % (name, statistics.median(values)))
        say()
        # Throughput: the Go loop's rate over the agent's, per round.
        slower = paired_ratio(threaded, "govmomi, 8 goroutines on one client (Go)",
                              "agent, 8 threads on one agent (Rust)")
        targets.append(("agent with 8 threads within 1.3x of 8 goroutines' throughput",
                        "Go does %.2fx the agent's tasks/s" % slower, slower <= 1.3))

    vms = 25000
    say("### 7. A %d-VM vm.discover (6 properties each, pages of 1000) from the fake vSphere server" % vms)
    say()
    memory = section_agent_memory(max(3, rounds // 3), vms)
    reply = max(sample[0] for sample in memory)
    grown = max(sample[2] - sample[1] for sample in memory)
    peak = max(sample[2] for sample in memory)
    say("| reply | RSS before the task | peak RSS | peak growth | growth / reply | peak / reply |")
    say("|---:|---:|---:|---:|---:|---:|")
    say("| %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.2f | %.2f |" % (
        reply / MIB, memory[0][1] / MIB, peak / MIB, grown / MIB, grown / float(reply), peak / float(reply)))
    say()
    targets.append(("25 000-VM vm.discover: peak RSS at most 3x the reply", "%.2fx (whole process)"
                    % (peak / float(reply)), peak <= 3 * reply))

    if os.geteuid() == 0:
        say("### 8. A whole vPoller: client, proxy, one worker process, simulator (vm.get, tasks/s)")
        say()
        say("py-vpoller 0.7.3's proxy and worker (`-c 1`) and this project's (`vpoller-worker -c 1`, 32 "
            "threads, `[cache] mirror = off`: every request asks the simulator) share one simulator and host "
            "registry; both with the lookup cache on. "
            "The load comes from libvpoller clients, one per thread.")
        say()
        stacks = section_stacks(max(3, rounds // 2), 0.3 if args.quick else 1.0)
        say("| clients | py-vpoller stack | Rust stack | Rust / py-vpoller | agent in-process |")
        say("|---:|---:|---:|---:|---:|")
        for clients, measured in stacks.items():
            if clients == "one core":
                continue
            speedup = paired_ratio(measured, "Rust stack", "py-vpoller stack")
            local = measured.get("agent in-process")
            say("| %d | %.0f | %.0f | %.1f | %s |" % (
                clients, statistics.median(measured["py-vpoller stack"]), statistics.median(measured["Rust stack"]),
                speedup, "%.0f" % statistics.median(local) if local else ""))
        say()
        one = stacks[1]
        say("With one client, microseconds per request: the agent in-process (`vm.get`), the Rust stack "
            "(`vm.get`), and the Rust stack answering `about`, which needs no vSphere call, so that it "
            "measures the hops alone (client, proxy, worker and back); the last column is the ratio the "
            "stack would have if its `vm.get` cost the agent's time plus those hops and nothing else. "
            "The second row runs the same with every process (simulator, proxy, worker, client, agent) "
            "on one core, where a process wakes without a call to the other core.")
        say()
        say("| processes on | agent in-process | Rust stack | Rust stack, `about` (the hops) | stack / agent "
            "| (agent + hops) / agent |")
        say("|---|---:|---:|---:|---:|---:|")
        for label, row in (("both cores", one), ("one core (`taskset -c 0`)", stacks["one core"])):
            agent_us = 1e6 / statistics.median(row["agent in-process"])
            stack_us = 1e6 / statistics.median(row["Rust stack"])
            hops_us = 1e6 / statistics.median(row["Rust stack, about"])
            say("| %s | %.0f | %.0f | %.0f | %.2f | %.2f |" % (
                label, agent_us, stack_us, hops_us, paired_ratio(row, "agent in-process", "Rust stack"),
                (agent_us + hops_us) / agent_us))
        say()
        at_32 = paired_ratio(stacks[32], "Rust stack", "py-vpoller stack")
        targets.append(("Rust stack at least 10x py-vpoller's with 32 clients", "%.1fx" % at_32, at_32 >= 10.0))
        hops = paired_ratio(stacks[1], "agent in-process", "Rust stack")
        targets.append(("Rust stack within 1.3x of the agent in-process with 1 client",
                        "%.2fx the agent's time" % hops, hops <= 1.3))
    else:
        say("### 8. A whole vPoller: not measured (py-vpoller's stack needs root for port 443)")
        say()

    say("### 9. Zabbix: one item through a running zabbix_agentd (4 connections, queries/s)")
    say()
    say("The same `vm.get` item through the `vpoller.so` module, through a UserParameter running "
        "`vpoller-cclient`, and through a UserParameter running py-vpoller's `vpoller-client` (what an "
        "external check runs), against vpoller-proxy and vpoller-worker; rounds alternate.")
    say()
    zabbix = section_zabbix(rounds, 0.3 if args.quick else 1.0)
    module, external = "vpoller.so module", "py-vpoller vpoller-client (as an external check runs it)"
    say("| item through | queries/s | x the external check |")
    say("|---|---:|---:|")
    for name, values in zabbix.items():
        say("| %s | %.0f | %.1f |" % (name, 1 / statistics.median(values), paired_ratio(zabbix, external, name)))
    say()
    module_speedup = paired_ratio(zabbix, external, module)
    targets.append(("Zabbix module at least 20x the external check", "%.0fx" % module_speedup,
                    module_speedup >= 20.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds per section (at least 5)")
    parser.add_argument("--calls", type=int, default=3000, help="calls per contender and round")
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    parser.add_argument("--only", choices=["mirror", "exporter", "curve"],
                        help="run only this section (mirror: section 10, exporter: section 11, curve: section 12)")
    args = parser.parse_args()
    rounds = max(args.rounds, 5)
    calls = 200 if args.quick else args.calls

    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    targets = []

    say("Machine: %s. Rounds: %d, alternating; medians." % (machine(), rounds))
    say()
    if args.only is None:
        classic_sections(args, rounds, calls, say, targets)
    if args.only in (None, "mirror"):
        mirror_run = MirrorRun(args.quick)
        if os.geteuid() == 0:
            report_mirror(section_mirror(mirror_run), mirror_run, say, targets)
        else:
            say("### 10. The live mirror: not measured (py-vpoller's stack needs root for port 443)")
            say()
    if args.only in (None, "exporter"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import exporter
        if os.geteuid() == 0:
            exporter.report_exporter(exporter.section_exporter(args.quick), say, targets)
        else:
            say("### 11. vpoller-exporter: not measured (vmware_exporter needs root: it connects to port 443)")
            say()

    if args.only in (None, "curve"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import curve
        curve.report_curve(curve.section_curve(rounds, 500 if args.quick else 2000), say, targets)

    say("### Targets")
    say()
    say("| target | measured | met |")
    say("|---|---:|---|")
    for name, measured, met in targets:
        say("| %s | %s | %s |" % (name, measured, "yes" if met else "**no**"))

    os.makedirs(BENCH_BIN, exist_ok=True)
    with open(os.path.join(BENCH_BIN, "report.md"), "w") as report:
        report.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
