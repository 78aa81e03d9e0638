"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes ours every
second, in two jobs: one exporter with the vSphere host configured, one
with none configured that is given the host by the job's `params`
(vsphere_host). Its own parser takes the exposition (the target is up,
no scrape error), and PromQL finds the VMs' power state by name, the
non-ASCII name too."""

import contextlib
import time

import pytest

from harness import Prometheus, Simulator, our_exporter, report, scratch, vsphere_env

# Jobs of the Prometheus configuration.
CONFIGURED = "vpoller_configured"
BY_PARAM = "vpoller_by_param"

# A named VM of the simulator's default inventory, and the one it renames
# (vcsim's -rename default) to a name in three scripts.
VMS = ("DC0_H0_VM0", "Zürich-ВМ-虚拟机")

# The bound on waiting for the first samples (Prometheus starts, reads its
# configuration, scrapes every second; ours must be up). The time it took
# is reported.
BOUND = 90


@pytest.fixture(scope="module")
def prometheus():
    with contextlib.ExitStack() as servers:
        directory = scratch(servers, "prometheus")
        simulator = servers.enter_context(Simulator(directory=directory))
        configured = servers.enter_context(our_exporter(vsphere_env(simulator, ours=True), directory))
        unconfigured = servers.enter_context(our_exporter(vsphere_env(simulator, ours=True, host=False), directory))
        server = servers.enter_context(Prometheus([
            {"job_name": CONFIGURED, "targets": ["127.0.0.1:%d" % configured.port]},
            {"job_name": BY_PARAM, "targets": ["127.0.0.1:%d" % unconfigured.port],
             "params": {"vsphere_host": [simulator.host]}},
        ], directory))
        server.started = time.monotonic()
        # What each job scrapes, to scrape it directly too.
        server.exporters = {CONFIGURED: (configured, None), BY_PARAM: (unconfigured, {"vsphere_host": simulator.host})}
        yield server


def _wait_for(prometheus, promql, want, what):
    """Queries until the answer is `want` ([(labels subset, value)...]
    matched in order), at most until BOUND seconds after Prometheus started;
    returns the seconds since it started."""
    while True:
        answer = prometheus.query(promql)
        if len(answer) == len(want) and all(
                value == wanted_value and all(labels.get(k) == v for k, v in wanted_labels.items())
                for (labels, value), (wanted_labels, wanted_value) in zip(answer, want)):
            return time.monotonic() - prometheus.started
        if time.monotonic() - prometheus.started > BOUND:
            targets = prometheus.api("/api/v1/targets")
            raise AssertionError("%s: %s answered %s, not %s, %d s after Prometheus started; targets: %s\n%s" % (
                what, promql, answer, want, BOUND, targets, prometheus.process.log()))
        time.sleep(0.5)


@pytest.mark.parametrize("job", [CONFIGURED, BY_PARAM])
def test_prometheus_reads_the_power_state_by_vm_name(prometheus, job):
    took = _wait_for(prometheus, 'up{job="%s"}' % job, [({"job": job}, 1.0)], "the target is up")
    for vm in VMS:
        promql = 'vmware_vm_power_state{job="%s",vm_name="%s"}' % (job, vm)
        took = max(took, _wait_for(prometheus, promql, [({"vm_name": vm, "dc_name": "DC0"}, 1.0)], vm))
    # Every VM of the inventory (2 on each of 2 hosts, 2 in the cluster).
    _wait_for(prometheus, 'count(vmware_vm_power_state{job="%s"})' % job, [({}, 6.0)], "the VM count")
    report("prometheus %s: up and vmware_vm_power_state of both VMs by name %.1f s after it started" % (job, took))
    # Prometheus's own parser took the whole exposition: no scrape error.
    targets = [target for target in prometheus.api("/api/v1/targets")["activeTargets"]
               if target["labels"]["job"] == job]
    assert [(target["health"], target["lastError"]) for target in targets] == [("up", "")], targets
    # It took every sample: at least the vmware_* ones a direct scrape has.
    exporter, params = prometheus.exporters[job]
    direct = len(exporter.scrape(params).samples("vmware_"))
    samples = prometheus.query('scrape_samples_scraped{job="%s"}' % job)
    assert samples and samples[0][1] >= direct, (samples, direct)
