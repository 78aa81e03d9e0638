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
