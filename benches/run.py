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
        with Stack(proxy="rust", worker="rust", share=py_stack, cache=True) as rust_stack:
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds per section (at least 5)")
    parser.add_argument("--calls", type=int, default=3000, help="calls per contender and round")
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    args = parser.parse_args()
    rounds = max(args.rounds, 5)
    calls = 200 if args.quick else args.calls

    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    targets = []
    raw_name = "raw libzmq REQ loop (C, one socket)"

    def per_call_table(results):
        say("| client | us/call | calls/s | x raw libzmq (median of per-round ratios) |")
        say("|---|---:|---:|---:|")
        for name, values in results.items():
            seconds = statistics.median(values)
            say("| %s | %.1f | %.0f | %.2f |" % (name, seconds * 1e6, 1 / seconds,
                                                 paired_ratio(results, name, raw_name)))
        say()

    say("Machine: %s. Rounds: %d, alternating; medians." % (machine(), rounds))
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
        say("Steady state: logged in, lookups and container views cached where each side caches them. "
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
            "threads) share one simulator and host registry; both with the lookup cache on. "
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
