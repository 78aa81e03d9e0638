"""The pieces the exporter tests are built from: the vSphere simulator, the
two exporters (vmware_exporter 0.18.4, the reference, and this project's
vpoller-exporter, "ours"), a Prometheus server, a parser of the Prometheus
text exposition format, and the comparison of two expositions.

Every server is started on loopback, on a port picked free at start, in a
process group of its own, and is stopped by its process group id (SIGTERM,
then SIGKILL) by whoever started it, also when a test fails: the fixtures of
the test modules hold them in a contextlib.ExitStack for that.

Which program is "ours" can be changed with VPOLLER_EXPORTER: a path to
another build, or `vmware_exporter` to run the reference against itself (a
check of this harness: the comparison must then find no difference; the
tests of vpoller-exporter's own metrics fail in that mode, as they should).
"""

import collections
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "interop"))
from stack import ROOT, VCSIM, free_https_address, free_port  # noqa: E402

BIN = os.path.dirname(sys.executable)
REFERENCE = os.path.join(BIN, "vmware_exporter")
OURS = os.environ.get("VPOLLER_EXPORTER", os.path.join(ROOT, "target", "release", "vpoller-exporter"))
PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")

# The simulator's login (govmomi's simulator takes any non-empty pair; these
# are the ones its SDK URL shows).
USER = "user"
PASSWORD = "pass"

# Lines for the end of the run (conftest.py prints them in the terminal
# summary): measured latencies and call counts, so that they are seen also
# when every test passes.
REPORT = []


def report(line):
    REPORT.append(line)


class Failure(AssertionError):
    """A prerequisite or a server that did not come up: the test fails."""


# -- processes ------------------------------------------------------------


def child_environment(extra=None):
    """This process's environment without VSPHERE_* (each exporter gets the
    configuration its test gives it, nothing inherited) and without proxy
    settings (every address here is on loopback), plus extra."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("VSPHERE_") and not key.lower().endswith("_proxy")}
    env.update(extra or {})
    return env


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


class Process(object):
    """One program started in a process group of its own, its standard
    error (and standard output unless piped) in NAME.log in directory."""

    def __init__(self, name, argv, directory, env=None, stdin=False, stdout=False):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(directory, name + ".log")
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv, cwd=directory, env=env, start_new_session=True,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout else log, stderr=log)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log(self, tail=4000):
        try:
            with open(self.log_path, "rb") as log:
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return text[-tail:]

    def signal(self, sig):
        """Sends sig to the whole process group (if any of it is left)."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace=5.0):
        """SIGTERM to the group, SIGKILL after grace seconds; reaps the
        leader and closes the pipes. Safe to call more than once."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not _group_alive(self.pid):
                break
            self.signal(sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.popen.poll()  # reap the leader, so that only live members count
                if not _group_alive(self.pid):
                    break
                time.sleep(0.05)
        self.popen.wait()
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def new_directory(prefix):
    return tempfile.mkdtemp(prefix="vpoller-exporter-test-%s-" % prefix)


def scratch(servers, prefix):
    """A new temporary directory for the logs, files and data of servers
    (a contextlib.ExitStack), removed when it closes, after the servers in
    it stopped (unless VPOLLER_EXPORTER_KEEP is set: then kept, and named
    in the report)."""
    directory = new_directory(prefix)
    if os.environ.get("VPOLLER_EXPORTER_KEEP"):
        report("kept: %s" % directory)
    else:
        servers.callback(shutil.rmtree, directory, True)
    return directory


# -- the vSphere simulator ------------------------------------------------


class Simulator(object):
    """tests/interop/vcsim on loopback, with its control channel (standard
    input; answers on standard output, read by a thread).

    https=True: on port 443 of a free 127.0.0.x address (vmware_exporter
    always connects to port 443); else on 127.0.0.1 and a free port.
    `host` is what VSPHERE_HOST takes: the address alone for port 443, else
    ADDRESS:PORT (which only ours understands)."""

    def __init__(self, args=(), https=True, directory=None):
        self.args = list(args)
        self.https = https
        self.directory = directory or new_directory("vcsim")
        self.ca = os.path.join(self.directory, "vcsim-ca.pem")
        self.process = None
        self._lines = queue.Queue()
        self._lock = threading.Lock()
        self._before_reset = {}  # calls counted before the last reset_calls()

    def start(self, timeout=90):
        if not os.access(VCSIM, os.X_OK):
            raise Failure("%s is missing: run `make vcsim`" % VCSIM)
        for attempt in range(3):  # a port picked free can be taken before vcsim binds it
            if self.https:
                try:
                    address = free_https_address()
                except SystemExit as error:  # stack.py's way of saying "needs root"
                    raise Failure(str(error))
                self.address, self.port = address, 443
                self.host = address
            else:
                self.address, self.port = "127.0.0.1", free_port()
                self.host = "%s:%d" % (self.address, self.port)
            tmp = os.path.join(self.directory, "tmp-%d" % attempt)  # the simulator writes a file per VM
            os.makedirs(tmp)
            self.process = Process("vcsim", [VCSIM, "-listen", "%s:%d" % (self.address, self.port),
                                             "-ca-out", self.ca] + self.args,
                                   self.directory, env=child_environment({"TMPDIR": tmp}),
                                   stdin=True, stdout=True)
            threading.Thread(target=self._read, args=(self.process.popen.stdout,), daemon=True).start()
            url = self._line(timeout)
            if url and url.startswith("https://"):
                self.url = url
                return self
            log = self.process.log()
            self.process.stop()
            if "address already in use" not in log:
                break
        raise Failure("the vSphere simulator did not start (%r):\n%s" % (url, log))

    def _read(self, stdout):
        for line in iter(stdout.readline, b""):
            self._lines.put(line.decode("utf-8", "replace").strip())
        self._lines.put(None)

    def _line(self, timeout):
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def command(self, text, timeout=120):
        """Sends one control command; returns the answer's text after `ok`.
        Fails on `error ...`, on no answer within timeout, or when the
        simulator is gone."""
        with self._lock:
            if not self.process.alive():
                raise Failure("the simulator is not running:\n" + self.process.log())
            self.process.popen.stdin.write(text.encode("utf-8") + b"\n")
            self.process.popen.stdin.flush()
            answer = self._line(timeout)
        if answer is None:
            raise Failure("the simulator did not answer %r:\n%s" % (text, self.process.log()))
        if answer == "ok" or answer.startswith("ok "):
            return answer[3:]
        raise Failure("the simulator answered %r to %r" % (answer, text))

    def calls(self):
        """The SOAP calls served (to every client but the control channel's)
        since the last reset_calls(): {METHOD: COUNT}."""
        return {method: int(count) for method, count in
                (pair.split("=", 1) for pair in self.command("calls").split())}

    def reset_calls(self):
        # Kept for total_calls(); a call served between the two commands is
        # lost there, so totals are lower bounds.
        for method, count in self.calls().items():
            self._before_reset[method] = self._before_reset.get(method, 0) + count
        self.command("calls reset")

    def total_calls(self):
        """The SOAP calls served since the start, resets or not."""
        total = dict(self._before_reset)
        for method, count in self.calls().items():
            total[method] = total.get(method, 0) + count
        return total

    def kill(self):
        """Ends the simulator at once (SIGKILL): vCenter gone, connections
        cut without a goodbye."""
        self.process.signal(signal.SIGKILL)
        self.process.stop()

    def stop(self):
        if self.process is not None:
            self.process.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


# -- HTTP -------------------------------------------------------------------

# Straight to loopback, whatever proxy the environment names.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Response(object):
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8")


def http_get(url, timeout=30):
    """GET url: a Response also for 4xx/5xx answers."""
    try:
        with _OPENER.open(url, timeout=timeout) as answer:
            return Response(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read())


def with_params(url, params):
    if not params:
        return url
    return url + "?" + urllib.parse.urlencode(params)


# -- exporters ----------------------------------------------------------------


class Exporter(object):
    """One exporter process, listening on 127.0.0.1 and a free port."""

    def __init__(self, name, argv, env, directory):
        self.name = name
        self.argv = argv
        self.env = env
        self.directory = directory
        self.process = None

    def start(self, timeout=60):
        for attempt in range(3):  # the free port may be taken before the exporter binds it
            self.port = free_port()
            self.base = "http://127.0.0.1:%d" % self.port
            self.process = Process(self.name, self.argv + ["-a", "127.0.0.1", "-p", str(self.port)],
                                   self.directory, env=self.env)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.alive():
                try:
                    if http_get(self.base + "/healthz", timeout=5).status == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.1)
            log = self.process.log()
            self.process.stop()
            if "in use" not in log.lower():
                break
        raise Failure("%s did not answer /healthz within %d s:\n%s" % (self.name, timeout, log))

    def get(self, path="/metrics", params=None, timeout=60):
        return http_get(with_params(self.base + path, params), timeout=timeout)

    def scrape(self, params=None, timeout=60):
        """/metrics, which must answer 200: the exposition parsed."""
        answer = self.get("/metrics", params, timeout)
        if answer.status != 200:
            raise AssertionError("%s /metrics %s answered %d:\n%s\n%s" % (
                self.name, params or "", answer.status, answer.body[:2000], self.process.log()))
        exposition = parse(answer.text)
        exposition.content_type = answer.headers.get("Content-Type")
        return exposition

    def stop(self):
        if self.process is not None:
            self.process.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def vsphere_env(simulator, ours, section=None, host=True, **settings):
    """The VSPHERE_* (or VSPHERE_<SECTION>_*) variables that point an
    exporter at simulator: the reference skips certificate checks (it has
    no way to be given a CA), ours verifies the simulator's certificate
    with its CA. host=False leaves the host out (it then comes from the
    scrape's ?target= or ?vsphere_host=). settings: more keys, e.g.
    COLLECT_VMS="False"."""
    prefix = "VSPHERE_" if section is None else "VSPHERE_%s_" % section.upper()
    env = {prefix + "USER": USER, prefix + "PASSWORD": PASSWORD}
    if host:
        env[prefix + "HOST"] = simulator.host
    if ours and not reference_as_ours():
        env[prefix + "CA_FILE"] = simulator.ca
    else:
        env[prefix + "IGNORE_SSL"] = "True"
    env.update({prefix + key: value for key, value in settings.items()})
    return env


def yaml_config(directory, sections, simulator, ours):
    """A -c configuration file in vmware_exporter's YAML format (every key
    it reads, since it indexes them directly), with no vsphere_host:
    sections is a list of section names. Returns its path."""
    lines = []
    for section in sections:
        lines += ["%s:" % section,
                  "  vsphere_user: %s" % USER,
                  "  vsphere_password: %s" % PASSWORD]
        if ours and not reference_as_ours():
            lines += ["  ignore_ssl: false", "  ca_file: %s" % json.dumps(simulator.ca)]
        else:
            lines += ["  ignore_ssl: true"]
        lines += ["  specs_size: 5000",
                  "  fetch_custom_attributes: false",
                  "  fetch_tags: false",
                  "  fetch_alarms: false",
                  "  collect_only:",
                  "    vms: true",
                  "    vmguests: true",
                  "    datastores: true",
                  "    hosts: true",
                  "    snapshots: true"]
    path = os.path.join(directory, "config-%s.yml" % ("ours" if ours else "reference"))
    with open(path, "w") as config:
        config.write("\n".join(lines) + "\n")
    return path


def reference_as_ours():
    return os.path.basename(OURS) == "vmware_exporter"


def reference_exporter(env, directory, args=()):
    if not os.access(REFERENCE, os.X_OK):
        raise Failure("%s is missing: run `make exporter-venv` and run the tests with its pytest" % REFERENCE)
    return Exporter("vmware_exporter", [REFERENCE] + list(args),
                    child_environment(dict(env, PYTHONUNBUFFERED="1")), directory)


def our_exporter(env, directory, args=()):
    if reference_as_ours():
        exporter = reference_exporter(env, directory, args)
        exporter.name = "vmware_exporter-as-ours"
        return exporter
    if not os.access(OURS, os.X_OK):
        raise Failure("%s is missing: build it (`make lib`)" % OURS)
    return Exporter("vpoller-exporter", [OURS] + list(args), child_environment(env), directory)


def own_up(exposition):
    """vpoller_exporter_up's value in exposition (None when absent)."""
    family = exposition.families.get("vpoller_exporter_up")
    if family is None or len(family.samples) != 1:
        return None
    return family.samples[0].value


def wait_until_up(exporter, params=None, timeout=60):
    """Scrapes exporter until vpoller_exporter_up is 1 (the mirror read);
    returns that exposition and the seconds it took."""
    start = time.monotonic()
    last = None
    while True:
        try:
            last = exporter.scrape(params, timeout=30)
            if own_up(last) == 1:
                return last, time.monotonic() - start
        except (AssertionError, OSError, ValueError) as error:
            last = error
        if time.monotonic() - start > timeout:
            raise Failure("%s did not report vpoller_exporter_up 1 within %d s; last: %s\n%s" % (
                exporter.name, timeout, _short(last), exporter.process.log()))
        if not exporter.process.alive():
            raise Failure("%s exited:\n%s" % (exporter.name, exporter.process.log()))
        time.sleep(0.2)


def _short(thing):
    if isinstance(thing, Exposition):
        up = own_up(thing)
        return "a scrape with vpoller_exporter_up %s and %d families" % (up, len(thing.families))
    return repr(thing)[:500]


# -- Prometheus -------------------------------------------------------------


class Prometheus(object):
    """/usr/bin/prometheus with the given scrape jobs, every second, on a
    TSDB of its own in a temporary directory."""

    def __init__(self, jobs, directory):
        """jobs: a list of {"job_name": ..., "targets": ["127.0.0.1:PORT"],
        "params": {...} (optional)}."""
        self.jobs = jobs
        self.directory = directory
        self.process = None

    def start(self, timeout=90):
        if not os.access(PROMETHEUS, os.X_OK):
            raise Failure("%s is missing: install Debian's prometheus (scripts/install-deps.sh)" % PROMETHEUS)
        config = os.path.join(self.directory, "prometheus.yml")
        scrape_configs = []
        for job in self.jobs:
            entry = {"job_name": job["job_name"], "scrape_interval": "1s", "scrape_timeout": "1s",
                     "metrics_path": "/metrics", "static_configs": [{"targets": job["targets"]}]}
            if job.get("params"):
                entry["params"] = job["params"]
            scrape_configs.append(entry)
        with open(config, "w") as out:
            # JSON is YAML: no YAML writer needed.
            json.dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                       "scrape_configs": scrape_configs}, out, indent=1)
        for attempt in range(3):
            self.port = free_port()
            self.base = "http://127.0.0.1:%d" % self.port
            data = os.path.join(self.directory, "data-%d" % attempt)
            self.process = Process("prometheus", [
                PROMETHEUS, "--config.file=" + config, "--storage.tsdb.path=" + data,
                "--web.listen-address=127.0.0.1:%d" % self.port], self.directory, env=child_environment())
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.alive():
                try:
                    if http_get(self.base + "/-/ready", timeout=5).status == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.2)
            log = self.process.log()
            self.process.stop()
            if "address already in use" not in log:
                break
        raise Failure("Prometheus did not become ready within %d s:\n%s" % (timeout, log))

    def api(self, path, params=None):
        answer = http_get(with_params(self.base + path, params), timeout=30)
        reply = json.loads(answer.body)
        if reply.get("status") != "success":
            raise AssertionError("Prometheus %s %s: %s" % (path, params, reply))
        return reply["data"]

    def query(self, promql):
        """An instant query: [(labels, value), ...]."""
        data = self.api("/api/v1/query", {"query": promql})
        assert data["resultType"] == "vector", data
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def stop(self):
        if self.process is not None:
            self.process.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


# -- the text exposition format ---------------------------------------------

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
# Sample names that belong to a family of another name.
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created")}


class Sample(collections.namedtuple("Sample", "name labels value timestamp")):
    """labels: a tuple of (name, value) pairs, sorted (hashable, for sets)."""

    def label(self, name):
        return dict(self.labels).get(name)


class Family(object):
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.samples = []

    def __repr__(self):
        return "Family(%r, help=%r, type=%r, %d samples)" % (self.name, self.help, self.type, len(self.samples))


class Exposition(object):
    """A parsed exposition: families by name, in their order."""

    def __init__(self):
        self.families = collections.OrderedDict()
        self.content_type = None

    def samples(self, prefix=""):
        return [sample for family in self.families.values() if family.name.startswith(prefix)
                for sample in family.samples]

    def family(self, name):
        family = self.families.get(name)
        return family.samples if family is not None else []


class ParseError(ValueError):
    pass


def parse(text):
    """Parses Prometheus's text exposition format (version 0.0.4) strictly:
    a malformed line, a HELP or TYPE given twice, a TYPE after the family's
    samples or an unknown escape raises ParseError naming the line. Values
    are floats (`1.0`, `1e+16`, `NaN`, `+Inf`, `-Inf`)."""
    exposition = Exposition()
    typed_late = set()  # families whose samples came before any TYPE line
    for number, line in enumerate(text.split("\n"), 1):
        try:
            if not line.strip():
                continue
            if line.startswith("#"):
                _comment(exposition, line, typed_late)
            else:
                sample = _sample(line)
                family = _family_of(exposition, sample.name)
                family.samples.append(sample)
                if family.type is None:
                    typed_late.add(family.name)
        except ParseError as error:
            raise ParseError("line %d: %s: %r" % (number, error, line[:300]))
    return exposition


_HELP_OR_TYPE = re.compile(r"#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t](.*))?$")


def _comment(exposition, line, typed_late):
    match = _HELP_OR_TYPE.match(line)
    if not match:
        return  # an ordinary comment
    keyword, name, rest = match.group(1), match.group(2), match.group(3) or ""
    if not _METRIC_NAME.fullmatch(name):
        raise ParseError("bad metric name in %s" % keyword)
    family = exposition.families.setdefault(name, Family(name))
    if keyword == "HELP":
        if family.help is not None:
            raise ParseError("a second HELP for %s" % name)
        family.help = _unescape(rest, "\\n")
    else:
        if family.type is not None:
            raise ParseError("a second TYPE for %s" % name)
        if family.samples or name in typed_late:
            raise ParseError("TYPE for %s after its samples" % name)
        if rest.strip() not in _TYPES:
            raise ParseError("unknown type %r" % rest.strip())
        family.type = rest.strip()


def _family_of(exposition, sample_name):
    """The family a sample belongs to: the one of its name, or of its name
    less a suffix that family's type gives its samples (a counter's
    _total...); else a new untyped one."""
    if sample_name in exposition.families:
        return exposition.families[sample_name]
    for family in exposition.families.values():
        for suffix in _SUFFIXES.get(family.type, ()):
            if sample_name == family.name + suffix:
                return family
    return exposition.families.setdefault(sample_name, Family(sample_name))


def _unescape(text, escapes):
    """Undoes the format's backslash escapes: `\\\\` and the ones whose
    second character is in escapes (`n`, and `"` in label values)."""
    if "\\" not in text:
        return text
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        if index + 1 >= len(text):
            raise ParseError("a backslash at the end")
        following = text[index + 1]
        if following == "\\":
            out.append("\\")
        elif following == "n" and "n" in escapes:
            out.append("\n")
        elif following == '"' and '"' in escapes:
            out.append('"')
        else:
            raise ParseError("unknown escape \\%s" % following)
        index += 2
    return "".join(out)


def _sample(line):
    match = _METRIC_NAME.match(line)
    if not match:
        raise ParseError("bad metric name")
    name = match.group(0)
    index = match.end()
    labels = {}
    if index < len(line) and line[index] == "{":
        index = _labels(line, index + 1, labels)
    rest = line[index:]
    if not rest[:1] in (" ", "\t"):
        raise ParseError("no blank before the value")
    fields = rest.split()
    if len(fields) not in (1, 2):
        raise ParseError("want a value and at most a timestamp")
    value = _value(fields[0])
    timestamp = None
    if len(fields) == 2:
        if not re.fullmatch(r"-?[0-9]+", fields[1]):
            raise ParseError("bad timestamp")
        timestamp = int(fields[1])
    return Sample(name, tuple(sorted(labels.items())), value, timestamp)


def _labels(line, index, labels):
    """Reads `name="value",...}` from index; returns the index after `}`."""
    while True:
        while index < len(line) and line[index] in " \t":
            index += 1
        if index < len(line) and line[index] == "}":
            return index + 1
        match = _LABEL_NAME.match(line, index)
        if not match:
            raise ParseError("bad label name at column %d" % (index + 1))
        label = match.group(0)
        index = match.end()
        while index < len(line) and line[index] in " \t":
            index += 1
        if line[index:index + 2] != '="':
            raise ParseError("want =\" after label %s" % label)
        index += 2
        start = index
        while True:
            if index >= len(line):
                raise ParseError("unterminated value of label %s" % label)
            if line[index] == "\\":
                index += 2
                continue
            if line[index] == '"':
                break
            index += 1
        if label in labels:
            raise ParseError("label %s given twice" % label)
        labels[label] = _unescape(line[start:index], '\\n"')
        index += 1
        while index < len(line) and line[index] in " \t":
            index += 1
        if index < len(line) and line[index] == ",":
            index += 1
        elif index < len(line) and line[index] == "}":
            return index + 1
        else:
            raise ParseError("want , or } after label %s" % label)


def _value(text):
    # Go's ParseFloat forms that expositions use; Python's float() takes
    # them all (and "nan"/"inf" spellings, which are accepted too).
    if not re.fullmatch(r"[+-]?(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+\.(?:[eE][+-]?[0-9]+)?|Inf|inf|NaN|nan)",
                        text):
        raise ParseError("bad value %r" % text)
    return float(text)


# -- comparing two expositions ------------------------------------------------

# vmware_exporter 0.18.4's performance families (its two perf_list tables):
# the simulator makes their values up at random on every QueryPerf, so only
# their series, and that their values are finite numbers, compare.
VM_PERF = ["cpu.ready.summation", "cpu.maxlimited.summation", "cpu.usage.average", "cpu.usagemhz.average",
           "cpu.costop.summation", "cpu.idle.summation", "cpu.demand.average", "mem.usage.average",
           "mem.consumed.average", "mem.active.average", "mem.swapped.average", "mem.vmmemctl.average",
           "disk.maxTotalLatency.latest", "disk.usage.average", "disk.read.average", "disk.write.average",
           "net.received.average", "net.transmitted.average", "net.multicastRx.summation",
           "net.multicastTx.summation", "net.broadcastTx.summation", "net.broadcastRx.summation",
           "net.droppedRx.summation", "net.droppedTx.summation"]
HOST_PERF = ["cpu.costop.summation", "cpu.demand.average", "cpu.idle.summation", "cpu.ready.summation",
             "cpu.swapwait.summation", "cpu.usage.average", "cpu.usagemhz.average", "cpu.used.summation",
             "disk.read.average", "disk.write.average", "mem.active.average", "mem.latency.average",
             "mem.swapin.average", "mem.swapinRate.average", "mem.swapout.average", "mem.swapoutRate.average",
             "mem.vmmemctl.average", "net.bytesRx.average", "net.bytesTx.average", "net.droppedRx.summation",
             "net.droppedTx.summation", "net.errorsRx.summation", "net.errorsTx.summation", "net.usage.average"]
PERF_FAMILIES = frozenset(["vmware_vm_" + counter.replace(".", "_") for counter in VM_PERF]
                          + ["vmware_host_" + counter.replace(".", "_") for counter in HOST_PERF])

# Families of ours that the comparison leaves out: its own.
OWN_PREFIX = "vpoller_exporter_"


class Documented(collections.namedtuple("Documented", "family kind readme match")):
    """A difference that README.md documents: family, kind (one of
    Difference's kinds), readme, a phrase that README.md contains (the
    entry that documents it; test_documented_differences_are_in_the_readme
    checks that it is there), and match, a pattern (regular expression)
    the difference's detail must contain, so that only that case is
    accepted."""


# Differences from vmware_exporter 0.18.4 that are intended: each entry
# matches an entry in README.md's list of differences from vmware_exporter
# (its `readme` phrase occurs there), so that no difference is accepted by
# the tests alone.
DOCUMENTED_DIFFERENCES = [
    # vmware_exporter joins sensors into one text with commas and splits it
    # again, losing every sensor whose name holds a comma; ours keeps them.
    Documented("vmware_host_sensor_state", "series-extra", "a sensor whose name holds a comma",
               r'[{,]name="[^"]*,[^"]*"'),
]


class Difference(collections.namedtuple("Difference", "family kind detail")):
    """kind: family-missing, family-extra, help, type, series-missing,
    series-extra, value, not-finite, foreign-family."""

    def __str__(self):
        return "%s [%s]: %s" % (self.family, self.kind, self.detail)

    def documented(self, table=None):
        # A difference is accepted when every series it lists matches.
        return any(entry.family == self.family and entry.kind == self.kind
                   and (entry.match is None or _all_match(entry.match, self.detail))
                   for entry in (DOCUMENTED_DIFFERENCES if table is None else table))


def _all_match(pattern, detail):
    """Whether every series a difference's detail lists matches pattern
    (compare() reports the series an entry accepts apart from the rest)."""
    listed = detail.split(": ", 1)[-1].split("; ")
    listed = [series for series in listed if not re.match(r"and \d+ more$", series)]
    return bool(listed) and all(re.search(pattern, series) for series in listed)


def _accepted(family, kind, key):
    """Whether a documented entry accepts the series `key` (sample name,
    labels) as a difference of `kind` in `family`."""
    text = key[0] + format_labels(key[1])
    return any(entry.family == family and entry.kind == kind and entry.match is not None
               and re.search(entry.match, text) for entry in DOCUMENTED_DIFFERENCES)


def format_labels(labels):
    return "{" + ",".join('%s="%s"' % (name, value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"'))
                          for name, value in labels) + "}"


def _series(family):
    """{(sample name, labels): [values...]} (a list: a series may repeat)."""
    series = collections.OrderedDict()
    for sample in family.samples:
        series.setdefault((sample.name, sample.labels), []).append(sample.value)
    return series


def _same_value(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


def _examples(keys, limit=3):
    shown = ["%s%s" % (name, format_labels(labels)) for name, labels in list(keys)[:limit]]
    more = len(keys) - limit
    return "; ".join(shown) + ("; and %d more" % more if more > 0 else "")


def compare(reference, ours, prefix="vmware_"):
    """The differences of ours from reference among the families whose
    names start with prefix: their names, HELP and TYPE (families without
    samples too), their series (name and label set, counted), their values
    (equal; for PERF_FAMILIES only finite, on both sides). Families of ours
    named vpoller_exporter_* are left out; any other family of ours outside
    prefix is a foreign-family difference. Returns a list of Difference."""
    differences = []
    wanted = [name for name in reference.families if name.startswith(prefix)]
    theirs = [name for name in ours.families if name.startswith(prefix)]
    for name in wanted:
        if name not in ours.families:
            differences.append(Difference(name, "family-missing", "%d series in vmware_exporter, family absent in ours"
                                          % len(reference.families[name].samples)))
    for name in theirs:
        if name not in reference.families:
            differences.append(Difference(name, "family-extra", "in ours only (%d series, e.g. %s)" % (
                len(ours.families[name].samples),
                _examples([(s.name, s.labels) for s in ours.families[name].samples], 1) or "none")))
    for name in ours.families:
        if not name.startswith(prefix) and not name.startswith(OWN_PREFIX) and prefix == "vmware_":
            differences.append(Difference(name, "foreign-family", "ours serves a family that is neither vmware_* "
                                          "nor vpoller_exporter_*"))
    for name in wanted:
        if name not in ours.families:
            continue
        want, have = reference.families[name], ours.families[name]
        if want.help != have.help:
            differences.append(Difference(name, "help", "vmware_exporter %r, ours %r" % (want.help, have.help)))
        if want.type != have.type:
            differences.append(Difference(name, "type", "vmware_exporter %r, ours %r" % (want.type, have.type)))
        want_series, have_series = _series(want), _series(have)
        missing = [key for key in want_series if key not in have_series]
        extra = [key for key in have_series if key not in want_series]
        if missing:
            differences.append(Difference(name, "series-missing", "%d of %d vmware_exporter series not in ours: %s"
                                          % (len(missing), len(want_series), _examples(missing))))
        # Extra series a documented entry accepts are reported apart from
        # the others, so that the entry accepts them only.
        accepted = [key for key in extra if _accepted(name, "series-extra", key)]
        others = [key for key in extra if key not in accepted]
        for group in (accepted, others):
            if group:
                differences.append(Difference(name, "series-extra", "%d series of ours not in vmware_exporter: %s"
                                              % (len(group), _examples(group))))
        counted = [key for key in want_series if key in have_series
                   and len(want_series[key]) != len(have_series[key])]
        if counted:
            differences.append(Difference(name, "series-missing" if len(want_series[counted[0]]) > len(
                have_series[counted[0]]) else "series-extra", "series repeated %d times in vmware_exporter, %d in "
                "ours: %s" % (len(want_series[counted[0]]), len(have_series[counted[0]]), _examples(counted))))
        if name in PERF_FAMILIES:
            bad = [(key, value) for key, values in list(have_series.items()) + list(want_series.items())
                   for value in values if not math.isfinite(value)]
            if bad:
                differences.append(Difference(name, "not-finite", "%d values not finite, e.g. %s%s %r" % (
                    len(bad), bad[0][0][0], format_labels(bad[0][0][1]), bad[0][1])))
            continue
        unequal = []
        for key, values in want_series.items():
            other = have_series.get(key)
            if other is None or len(other) != len(values):
                continue
            if not all(_same_value(a, b) for a, b in zip(sorted(values), sorted(other))):
                unequal.append((key, values, other))
        if unequal:
            examples = "; ".join("%s%s vmware_exporter %s, ours %s" % (
                key[0], format_labels(key[1]), _values(values), _values(other)) for key, values, other in unequal[:3])
            more = len(unequal) - 3
            differences.append(Difference(name, "value", "%d of %d series differ: %s%s" % (
                len(unequal), len(want_series), examples, "; and %d more" % more if more > 0 else "")))
    return differences


def _values(values):
    return " ".join(repr(value) for value in values) if len(values) > 1 else repr(values[0])


def undocumented(differences):
    return [difference for difference in differences if not difference.documented()]


def describe(differences, limit=40):
    """One line per difference (the first limit of them)."""
    lines = ["  " + str(difference) + ("  (documented)" if difference.documented() else "")
             for difference in differences[:limit]]
    if len(differences) > limit:
        lines.append("  and %d more" % (len(differences) - limit))
    return "\n".join(lines)


def summarize(differences, width=400):
    """The differences grouped by kind, one line: `KIND in N families (NAMES):
    FIRST DETAIL`, the detail cut to width characters."""
    groups = collections.OrderedDict()
    for difference in differences:
        groups.setdefault(difference.kind, []).append(difference)
    parts = []
    for kind, group in groups.items():
        names = [difference.family for difference in group]
        shown = ", ".join(names[:4]) + (", ... (%d more)" % (len(names) - 4) if len(names) > 4 else "")
        detail = group[0].detail
        if len(detail) > width:
            detail = detail[:width] + "..."
        parts.append("%s in %d famil%s (%s), e.g. %s: %s" % (
            kind, len(group), "y" if len(group) == 1 else "ies", shown, group[0].family, detail))
    return " | ".join(parts)


def soap_calls(exposition):
    """vpoller_exporter_soap_calls_total by method."""
    return {sample.label("method"): sample.value
            for sample in exposition.family("vpoller_exporter_soap_calls_total")}


def until(condition, timeout, interval=0.05, describe_last=None):
    """Calls condition() until it returns a true value, at most timeout
    seconds (it is always called once more after the deadline is passed, so
    that a slow last call still counts); returns (value, seconds taken).
    Fails with describe_last(last value) when it never held."""
    start = time.monotonic()
    while True:
        value = condition()
        elapsed = time.monotonic() - start
        if value:
            return value, elapsed
        if elapsed > timeout:
            raise AssertionError("not within %.0f s%s" % (
                timeout, ": " + describe_last() if describe_last else ""))
        time.sleep(interval)
