"""Ours follows vCenter: a VM powered off, created or destroyed through the
vSphere API shows in its next scrapes (the goal: within GOAL seconds), and
when vCenter is gone ours says so (vpoller_exporter_up 0) and serves no
vSphere series rather than the last ones it had.

As in tests/mirror_freshness.rs, a change is waited for by scraping until
it shows, and the time it took is reported (see the terminal summary); the
assertion bounds it generously (BOUND), so that a loaded machine does not
fail the test while a change that never shows still does. The simulator
listens on a port other than 443 here, given to ours as HOST:PORT (which
vmware_exporter cannot do)."""

import contextlib
import time

import pytest

import harness
from harness import Simulator, own_up, our_exporter, report, scratch, vsphere_env, wait_until_up

# vCenter's changes show within this (the goal, reported against).
GOAL = 2.0
# What the assertions allow (a loaded machine), ten times the goal.
BOUND = 10 * GOAL
# When vCenter is gone, ours says so within this (asserted).
GONE = 30.0

VM = "DC0_H0_VM0"
NEW_VM = "fresh-vm"


@contextlib.contextmanager
def _servers():
    """A controllable simulator and ours configured for it."""
    with contextlib.ExitStack() as servers:
        directory = scratch(servers, "freshness")
        # On port 443 when the reference stands in for ours (it knows no other port).
        simulator = servers.enter_context(Simulator(https=harness.reference_as_ours(), directory=directory))
        ours = servers.enter_context(our_exporter(vsphere_env(simulator, ours=True), directory))
        if not harness.reference_as_ours():
            wait_until_up(ours)
        yield simulator, ours


@pytest.fixture(scope="module")
def followed():
    """Shared by the tests that change the inventory and change it back."""
    with _servers() as pair:
        yield pair


def _series_of(exposition, vm, prefix="vmware_vm_"):
    return [sample for sample in exposition.samples(prefix) if sample.label("vm_name") == vm]


def _power_state(exposition, vm):
    values = [sample.value for sample in exposition.family("vmware_vm_power_state") if sample.label("vm_name") == vm]
    return values[0] if len(values) == 1 else None


def _change(simulator, ours, command, done, what):
    """Sends command to the simulator, then scrapes ours until
    done(exposition); returns that exposition. The time is taken from just
    before the command (as mirror_freshness.rs does); the time from the
    simulator's answer (the change made: its task done) is reported too."""
    changed = time.monotonic()
    simulator.command(command)
    answered = time.monotonic()
    scrapes = 0
    while True:
        exposition = ours.scrape(timeout=30)
        scrapes += 1
        took = time.monotonic() - changed
        if done(exposition):
            report("freshness: %s shown %.3f s after the command, %.3f s after the simulator's answer, "
                   "%d scrapes (%s the %.0f s goal)" % (what, took, time.monotonic() - answered, scrapes,
                                                         "within" if took <= GOAL else "OVER", GOAL))
            return exposition
        assert took < BOUND, "%s: not shown %.0f s after the change; ours' log:\n%s" % (
            what, BOUND, ours.process.log())
        time.sleep(0.01)


def test_power_off_and_on_show(followed):
    simulator, ours = followed
    assert _power_state(ours.scrape(), VM) == 1
    exposition = _change(simulator, ours, "poweroff %s" % VM, lambda exposition: _power_state(exposition, VM) == 0,
                         "%s powered off" % VM)
    # vmware_exporter reads performance values of powered-on VMs only.
    perf = [sample for sample in _series_of(exposition, VM) if sample.name in harness.PERF_FAMILIES]
    assert not perf, "%s powered off, yet in %d performance series, e.g. %s" % (VM, len(perf), perf[0])
    _change(simulator, ours, "poweron %s" % VM, lambda exposition: _power_state(exposition, VM) == 1,
            "%s powered on" % VM)


def test_created_vm_appears_and_destroyed_vm_disappears(followed):
    simulator, ours = followed
    assert not _series_of(ours.scrape(), NEW_VM)
    exposition = _change(simulator, ours, "create %s" % NEW_VM,
                         lambda exposition: _power_state(exposition, NEW_VM) is not None, "%s created" % NEW_VM)
    # Created powered off, with 1 CPU and 64 MB (the simulator's create).
    assert _power_state(exposition, NEW_VM) == 0
    for family, value in (("vmware_vm_num_cpu", 1), ("vmware_vm_memory_max", 64)):
        assert [sample.value for sample in exposition.family(family) if sample.label("vm_name") == NEW_VM] == [
            value], family
    _change(simulator, ours, "destroy %s" % NEW_VM,
            lambda exposition: not _series_of(exposition, NEW_VM, "vmware_"), "%s destroyed" % NEW_VM)


def test_vcenter_gone_shows_and_no_values_are_frozen():
    """The simulator killed: within GONE seconds ours scrapes with
    vpoller_exporter_up 0 and no vmware_* series (the last values it had
    would be frozen ones), answering 200 all the while (a Prometheus stores
    nothing of a scrape answered otherwise, vpoller_exporter_up included),
    and stays so."""
    with _servers() as (simulator, ours):
        before = ours.scrape()
        assert own_up(before) == 1 and _series_of(before, VM)
        killed = time.monotonic()
        simulator.kill()
        slowest = 0.0
        seen = []
        while True:
            started = time.monotonic()
            exposition = ours.scrape(timeout=GONE)
            slowest = max(slowest, time.monotonic() - started)
            up = own_up(exposition)
            left = exposition.samples("vmware_")
            seen.append((round(time.monotonic() - killed, 2), up, len(left)))
            if up == 0:
                assert not left, "vpoller_exporter_up 0, yet %d vmware_* series, e.g. %s" % (
                    len(left), left[0])
                break
            assert time.monotonic() - killed < GONE, (
                "vCenter gone for %.0f s, ours still says vpoller_exporter_up %s; scrapes (s, up, vmware_* series): "
                "%s" % (GONE, up, seen))
            time.sleep(0.1)
        took = time.monotonic() - killed
        # And so it stays: no flapping back to the old values.
        for _ in range(5):
            time.sleep(0.2)
            exposition = ours.scrape(timeout=GONE)
            assert own_up(exposition) == 0 and not exposition.samples("vmware_"), seen
        report("vCenter gone: vpoller_exporter_up 0 and no vmware_* series %.2f s after the simulator was killed "
               "(%d scrapes, the slowest %.2f s)" % (took, len(seen), slowest))
