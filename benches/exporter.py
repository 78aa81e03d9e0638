"""Section 11 of `make bench`: vpoller-exporter against vmware_exporter 0.18.4.

Both exporters scrape the same simulator (govmomi's, on port 443 of a free
loopback address, since vmware_exporter always connects to port 443) at
1,000 and 5,000 VMs, in rounds that alternate them; a scrape's time is the
client's, from the request to the last byte of the answer. The SOAP calls
of one scrape are the simulator's own count of the calls it served during
that scrape (its `calls` control command), by method. Then vpoller-exporter
alone at 10,000 VMs. Memory: vpoller-exporter's resident set between
scrapes, at each size (the difference per VM between sizes).
"""

import http.client
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXPORTER = os.path.join(ROOT, "target", "release", "vpoller-exporter")
VMWARE_EXPORTER = os.path.join(ROOT, ".venv-exporter", "bin", "vmware_exporter")
VCSIM = os.path.join(ROOT, "target", "interop", "vcsim")
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
from stack import free_https_address, free_port  # noqa: E402
# Calls the mirror's follower and the performance keeper make in the
# background, whether or not a scrape runs.
BACKGROUND = ("WaitForUpdatesEx", "CancelWaitForUpdates", "QueryPerf")


def raise_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Simulator(object):
    """The simulator with `vms` VMs ((hosts + 1 cluster) x 200 per pool)."""

    def __init__(self, vms, directory):
        self.vms = vms
        self.directory = directory

    def __enter__(self):
        per_pool = 200 if self.vms >= 1000 else 20
        hosts = self.vms // per_pool - 1
        self.address = free_https_address()
        self.ca_file = os.path.join(self.directory, "ca-%d.pem" % self.vms)
        tmp = os.path.join(self.directory, "vcsim-tmp-%d" % self.vms)
        os.makedirs(tmp, exist_ok=True)
        self.process = subprocess.Popen(
            [VCSIM, "-listen", self.address + ":443", "-ca-out", self.ca_file,
             "-hosts", str(hosts), "-clusters", "1", "-cluster-hosts", "1", "-vms", str(per_pool)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=dict(os.environ, TMPDIR=tmp), preexec_fn=raise_open_files)
        url = self.process.stdout.readline().decode().strip()
        if not url.startswith("https://"):
            self.process.kill()
            raise SystemExit("the simulator did not start with %d VMs" % self.vms)
        return self

    def command(self, line):
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().decode().strip()
        if not answer.startswith("ok"):
            raise SystemExit("the simulator answered %r to %r" % (answer, line))
        return answer[3:]

    def calls(self):
        """The calls served since the last reset, by method; resets them."""
        counts = {}
        for pair in self.command("calls").split():
            method, count = pair.split("=")
            counts[method] = int(count)
        self.command("calls reset")
        return counts

    def __exit__(self, *exc_info):
        self.process.kill()
        self.process.wait()


class Program(object):
    """An exporter process on a free loopback port, killed by pid at exit."""

    def __init__(self, argv, env):
        self.argv = argv
        self.env = env

    def __enter__(self):
        self.port = free_port()
        descriptor, self.log_path = tempfile.mkstemp(prefix="vpoller-bench-exporter-", suffix=".log")
        self.log = os.fdopen(descriptor, "w+b")
        self.process = subprocess.Popen(self.argv + ["-a", "127.0.0.1", "-p", str(self.port)],
                                        env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = get(self.port, "/healthz")
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.log.seek(0)
                raise SystemExit("%s did not start:\n%s" % (self.argv[0], self.log.read().decode()))
            time.sleep(0.1)

    def rss(self):
        with open("/proc/%d/status" % self.process.pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def heap(self):
        """The bytes its malloc has handed out (gdb's malloc_stats), or None."""
        import run
        return run.heap_in_use(self.process.pid, self.log_path)

    def __exit__(self, *exc_info):
        self.process.kill()
        self.process.wait()
        self.log.close()
        os.unlink(self.log_path)


def get(port, path):
    """GET path: status, body, seconds from the request to the last byte."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - started
    finally:
        connection.close()


def scrape(simulator, program):
    """One scrape: seconds, lines, the simulator's calls during it."""
    simulator.calls()
    status, body, seconds = get(program.port, "/metrics")
    calls = simulator.calls()
    if status != 200:
        raise SystemExit("a scrape failed (%d): %s" % (status, body[:500]))
    lines = sum(1 for line in body.split(b"\n") if line.startswith(b"vmware_"))
    return seconds, lines, calls, body


def own(body, name):
    found = re.search(rb"^" + name.encode() + rb" (\S+)$", body, re.M)
    return float(found.group(1)) if found else None


def warm_up(simulator, program, limit=180):
    """Scrapes until the mirror is in sync and the performance samples are
    served; returns the first (cold) scrape's figures."""
    cold = scrape(simulator, program)
    deadline = time.monotonic() + limit
    while True:
        _, _, _, body = scrape(simulator, program)
        if own(body, "vpoller_exporter_mirror_in_sync") == 1.0 and \
                own(body, "vpoller_exporter_perf_samples_age_seconds") is not None:
            return cold
        if time.monotonic() > deadline:
            raise SystemExit("vpoller-exporter not in sync after %d s" % limit)
        time.sleep(0.5)


def exporter_env(simulator, ours):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "VSPHERE_HOST": simulator.address, "VSPHERE_USER": "user", "VSPHERE_PASSWORD": "pass"}
    if ours:
        env["VSPHERE_CA_FILE"] = simulator.ca_file
    else:
        env["VSPHERE_IGNORE_SSL"] = "True"
    return env


def median_calls(samples):
    methods = sorted({method for calls in samples for method in calls})
    return {method: statistics.median(calls.get(method, 0) for calls in samples) for method in methods}


def section_exporter(quick):
    """Section 11's figures as a dict."""
    for program in (EXPORTER, VMWARE_EXPORTER, VCSIM):
        if not os.access(program, os.X_OK):
            raise SystemExit("%s is missing: `make bench` builds it" % program)
    sizes, big, rounds = ([100, 300], 1000, 3) if quick else ([1000, 5000], 10000, 5)
    out = {"sizes": [], "rounds": rounds}
    directory = tempfile.mkdtemp(prefix="vpoller-bench-exporter-")
    try:
        for vms in sizes:
            with Simulator(vms, directory) as simulator, \
                    Program([VMWARE_EXPORTER], exporter_env(simulator, False)) as theirs, \
                    Program([EXPORTER], exporter_env(simulator, True)) as ours:
                cold = warm_up(simulator, ours)
                scrape(simulator, theirs)  # its first scrape connects and reads the counter table
                figures = {"theirs": [], "ours": [], "ratio": []}
                for _ in range(rounds):
                    theirs_run = scrape(simulator, theirs)
                    ours_run = scrape(simulator, ours)
                    figures["theirs"].append(theirs_run)
                    figures["ours"].append(ours_run)
                    figures["ratio"].append(theirs_run[0] / ours_run[0])
                ours_rss = ours.rss()
                ours_heap = ours.heap()
                theirs_rss = theirs.rss()
                out["sizes"].append({
                    "vms": vms,
                    "theirs_s": statistics.median(run[0] for run in figures["theirs"]),
                    "ours_s": statistics.median(run[0] for run in figures["ours"]),
                    "ratio": statistics.median(figures["ratio"]),
                    "theirs_lines": figures["theirs"][-1][1],
                    "ours_lines": figures["ours"][-1][1],
                    "theirs_calls": median_calls([run[2] for run in figures["theirs"]]),
                    "ours_calls": median_calls([run[2] for run in figures["ours"]]),
                    "ours_scrape_calls": max(sum(count for method, count in run[2].items()
                                                 if method not in BACKGROUND)
                                             for run in figures["ours"]),
                    "cold_s": cold[0],
                    "cold_calls": cold[2],
                    "ours_rss": ours_rss,
                    "ours_heap": ours_heap,
                    "theirs_rss": theirs_rss,
                })
                # The background calls of one minute, with no scrape meanwhile
                # but the one that starts and ends it (the keeper reads once
                # per real-time period while scrapes come this often).
                if vms == sizes[-1]:
                    simulator.calls()
                    time.sleep(20 if quick else 60)
                    out["idle_minute_calls"] = simulator.calls()
                    out["idle_seconds"] = 20 if quick else 60
        with Simulator(big, directory) as simulator, \
                Program([EXPORTER], exporter_env(simulator, True)) as ours:
            warm_up(simulator, ours, limit=300)
            runs = [scrape(simulator, ours) for _ in range(rounds)]
            out["big"] = {
                "vms": big,
                "s": statistics.median(run[0] for run in runs),
                "lines": runs[-1][1],
                "bytes": len(runs[-1][3]),
                "collect_s": own(runs[-1][3], "vpoller_exporter_scrape_duration_seconds"),
                "scrape_calls": max(sum(count for method, count in run[2].items() if method not in BACKGROUND)
                                    for run in runs),
                "rss": ours.rss(),
            }
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return out


def calls_text(calls):
    if not calls:
        return "none"
    return ", ".join("%s %g" % (method, count) for method, count in sorted(calls.items()))


def report_exporter(out, say, targets):
    say("### 11. vpoller-exporter against vmware_exporter 0.18.4")
    say()
    say("The same simulator (no added delay), both exporters alternating, %d rounds; "
        "a scrape is timed by the client to its last byte; SOAP calls are those the "
        "simulator served during the scrape (medians)." % out["rounds"])
    say()
    say("| VMs | vmware_exporter | vpoller-exporter | speed-up | lines (theirs / ours) | SOAP calls per scrape, vmware_exporter | SOAP calls per scrape, vpoller-exporter |")
    say("|---:|---:|---:|---:|---:|---|---|")
    for size in out["sizes"]:
        say("| %d | %.2f s | %.3f s | %.0fx | %d / %d | %s | %s |" % (
            size["vms"], size["theirs_s"], size["ours_s"], size["ratio"], size["theirs_lines"],
            size["ours_lines"], calls_text(size["theirs_calls"]), calls_text(size["ours_calls"])))
    say()
    for size in out["sizes"]:
        say("- %d VMs: vpoller-exporter's first scrape (cold: the mirror and the performance keeper "
            "start) %.2f s with %s. Resident set between scrapes: vpoller-exporter %.1f MiB, "
            "vmware_exporter %.1f MiB." % (
                size["vms"], size["cold_s"], calls_text(size["cold_calls"]),
                size["ours_rss"] / 1048576.0, size["theirs_rss"] / 1048576.0))
    if len(out["sizes"]) >= 2:
        small, large = out["sizes"][0], out["sizes"][-1]
        per_vm = (large["ours_rss"] - small["ours_rss"]) / float(large["vms"] - small["vms"])
        heap = ""
        if large["ours_heap"] is not None and small["ours_heap"] is not None:
            heap_per_vm = (large["ours_heap"] - small["ours_heap"]) / float(large["vms"] - small["vms"])
            heap = "; heap in use (glibc's malloc_stats through gdb) %.1f KiB" % (heap_per_vm / 1024.0)
        say("- vpoller-exporter's memory per VM, %d VMs against %d, between scrapes: resident set %.1f KiB%s." % (
            large["vms"], small["vms"], per_vm / 1024.0, heap))
        out["per_vm"] = per_vm
    idle = out.get("idle_minute_calls", {})
    say("- In %d s without scrapes, after scrapes every few seconds, at %d VMs: %s "
        "(the mirror's long polls and the performance keeper's reads)." % (
            out.get("idle_seconds", 0), out["sizes"][-1]["vms"], calls_text(idle)))
    big = out["big"]
    say("- %d VMs, vpoller-exporter alone: a scrape takes %.3f s (collection %.3f s), %d lines, %.1f MB; "
        "resident set %.1f MiB." % (big["vms"], big["s"], big["collect_s"] or 0, big["lines"],
                                     big["bytes"] / 1e6, big["rss"] / 1048576.0))
    say()
    for size in out["sizes"]:
        targets.append(("vpoller-exporter at least 30x vmware_exporter's scrape at %d VMs" % size["vms"],
                        "%.0fx" % size["ratio"], size["ratio"] >= 30.0))
    for size in out["sizes"]:
        targets.append(("vpoller-exporter serves as many series as vmware_exporter at %d VMs" % size["vms"],
                        "%d / %d" % (size["ours_lines"], size["theirs_lines"]),
                        size["ours_lines"] >= size["theirs_lines"]))
    scrape_calls = max(size["ours_scrape_calls"] for size in out["sizes"])
    scrape_calls = max(scrape_calls, big["scrape_calls"])
    targets.append(("no SOAP call made by a steady-state scrape (background polls aside)",
                    "%d" % scrape_calls, scrape_calls == 0))
    targets.append(("a %d-VM scrape under 1 s" % big["vms"], "%.3f s" % big["s"], big["s"] < 1.0))


if __name__ == "__main__":
    # `python benches/exporter.py [--quick]`: this section alone.
    found = []
    report_exporter(section_exporter("--quick" in sys.argv), print, found)
    for name, measured, met in found:
        print("| %s | %s | %s |" % (name, measured, "yes" if met else "**no**"))
