"""vpoller-exporter against vmware_exporter 0.18.4, the program it replaces,
both scraping the same simulated vCenter: the same families (HELP and TYPE
too, also of families without samples), the same series, the same values
(the simulator's random performance values only as finite numbers), the
same answers to the endpoints and parameters, and scrapes of ours served
from memory: no SOAP call of their own."""

import contextlib
import math
import time

import pytest

import harness
from harness import (Simulator, compare, describe, own_up, our_exporter, reference_exporter, report, scratch,
                     soap_calls, summarize, undocumented, vsphere_env, wait_until_up, yaml_config)

# The simulator's inventories compared: its default one (4 hosts, 6 VMs, one
# with a non-ASCII name, one with three snapshots) and one with more VMs.
INVENTORIES = {"default": [], "vms20": ["-vms", "20"]}

# How long ours may take to have its first performance values once up (it
# reads them in the background, so its first scrapes may lack them).
SETTLE = 20

# vCenter's realtime performance interval, at which ours reads them again.
PERIOD = 20

# A second section of the configuration: datastores only.
LIMITED = dict(COLLECT_VMS="False", COLLECT_VMGUESTS="False", COLLECT_SNAPSHOTS="False", COLLECT_HOSTS="False")

# The long polls that keep ours' mirror up to date: not made for a scrape.
LONG_POLLS = ("WaitForUpdatesEx", "CancelWaitForUpdates", "WaitForUpdates")

# The performance keeper's chunk (src/agent/perf/latest.rs): at most this many entities
# in one QueryPerf, once per 20 s period.
PERF_CHUNK = 1000


class Pair(object):
    def __init__(self, inventory, simulator, reference, ours):
        self.inventory = inventory
        self.simulator = simulator
        self.reference = reference
        self.ours = ours
        # When ours first had every performance family, and the QueryPerf
        # calls it had counted by then (vpoller_exporter_soap_calls_total).
        self.perf_since = None
        self.perf_calls = None


@pytest.fixture(scope="module", params=sorted(INVENTORIES))
def pair(request):
    """A simulator with the inventory, and both exporters configured for it
    through VSPHERE_* (and a `limited` section through VSPHERE_LIMITED_*);
    ours up, with its performance values read."""
    with contextlib.ExitStack() as servers:
        directory = scratch(servers, "differential-" + request.param)
        simulator = servers.enter_context(Simulator(INVENTORIES[request.param], directory=directory))
        reference = servers.enter_context(reference_exporter(dict(
            vsphere_env(simulator, ours=False), **vsphere_env(simulator, ours=False, section="limited", **LIMITED)),
            directory))
        ours = servers.enter_context(our_exporter(dict(
            vsphere_env(simulator, ours=True), **vsphere_env(simulator, ours=True, section="limited", **LIMITED)),
            directory))
        pair = Pair(request.param, simulator, reference, ours)
        if not harness.reference_as_ours():
            _, took = wait_until_up(ours)
            report("%s: ours up %.2f s after answering /healthz" % (request.param, took))
        pair.perf_since, pair.perf_calls = wait_for_performance_values(ours)
        yield pair


def wait_for_performance_values(ours, params=None):
    """Waits (SETTLE seconds at most) until ours has samples in each
    performance family: the one part of its answer that may lag a mirror in
    sync, being read in the background. Returns when that was (None if
    never) and the QueryPerf calls ours had counted by then."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        mine = ours.scrape(params)
        if all(mine.family(name) for name in harness.PERF_FAMILIES):
            return time.monotonic(), soap_calls(mine).get("QueryPerf", 0)
        time.sleep(0.2)
    return None, None


@pytest.fixture(scope="module")
def unconfigured():
    """A simulator of its own, and both exporters with a -c YAML file that
    names no vsphere_host: the host comes from each scrape's parameters."""
    with contextlib.ExitStack() as servers:
        directory = scratch(servers, "unconfigured")
        simulator = servers.enter_context(Simulator(directory=directory))
        reference = servers.enter_context(reference_exporter(
            {}, directory, ["-c", yaml_config(directory, ["default"], simulator, ours=False)]))
        ours = servers.enter_context(our_exporter(
            {}, directory, ["-c", yaml_config(directory, ["default"], simulator, ours=True)]))
        yield Pair("default", simulator, reference, ours)


def compare_scrapes(reference, ours, params=None, label=""):
    """Scrapes both once and compares them; returns the differences and the
    two expositions."""
    theirs = reference.scrape(params)
    mine = ours.scrape(params)
    differences = compare(theirs, mine)
    if differences:
        report("%s: %s" % (label, summarize(differences)))
    return differences, theirs, mine


def test_same_families_series_and_values(pair):
    differences, theirs, mine = compare_scrapes(pair.reference, pair.ours, label=pair.inventory)
    # The harness itself: the reference served what the comparison needs.
    machines = theirs.family("vmware_vm_power_state")
    assert len(machines) >= (6 if pair.inventory == "default" else 60), machines
    for name in harness.PERF_FAMILIES:
        family = theirs.families.get(name)
        assert family is not None and family.help == name and family.samples, (name, family)
    assert not undocumented(differences), "ours differs from vmware_exporter 0.18.4 (%s inventory):\n%s" % (
        pair.inventory, describe(differences))
    if not harness.reference_as_ours():
        assert own_up(mine) == 1
    assert _media_type(mine.content_type) == _media_type(theirs.content_type), (
        mine.content_type, theirs.content_type)
    report("%s: %d vmware_* families, %d series compared, %d documented differences" % (
        pair.inventory, len([name for name in theirs.families if name.startswith("vmware_")]),
        len(theirs.samples("vmware_")), len(differences)))


def _media_type(content_type):
    """`text/plain; charset=utf-8` from a Content-Type, its parameters in
    lower case (charset=UTF-8 equals charset=utf-8)."""
    parts = [part.strip().lower() for part in (content_type or "").split(";")]
    return parts[0], sorted(part.replace(" ", "") for part in parts[1:] if part.startswith("charset"))


def test_unknown_section_falls_back_to_default(pair):
    differences, theirs, mine = compare_scrapes(pair.reference, pair.ours, {"section": "no-such-section"},
                                                   label=pair.inventory + " ?section=no-such-section")
    assert theirs.family("vmware_vm_power_state"), "the reference fell back to default"
    assert not undocumented(differences), describe(differences)


def test_a_section_of_its_own(pair):
    """?section=limited: only what that section collects (datastores)."""
    differences, theirs, mine = compare_scrapes(pair.reference, pair.ours, {"section": "limited"},
                                                   label=pair.inventory + " ?section=limited")
    assert theirs.family("vmware_datastore_capacity_size") and "vmware_vm_power_state" not in theirs.families
    assert not undocumented(differences), describe(differences)


def test_configured_host_wins_over_target(pair):
    """vmware_exporter takes the configured vsphere_host before ?target=: a
    target nothing serves changes nothing."""
    differences, theirs, mine = compare_scrapes(pair.reference, pair.ours, {"target": "127.0.0.254"},
                                                   label=pair.inventory + " ?target=127.0.0.254")
    assert theirs.family("vmware_vm_power_state")
    assert not undocumented(differences), describe(differences)


def test_healthz_and_index(pair):
    for exporter in (pair.reference, pair.ours):
        health = exporter.get("/healthz")
        assert (health.status, health.body) == (200, b"Server is UP"), (exporter.name, health.status, health.body)
        index = exporter.get("/")
        assert index.status == 200 and b'href="/metrics"' in index.body, (exporter.name, index.status, index.body)


def _own_value(exposition, name):
    """The value of ours' own gauge `name` (None when absent)."""
    samples = exposition.family(name)
    return samples[0].value if len(samples) == 1 else None


def test_scrapes_make_no_soap_calls(pair):
    """Once ours is up, a scrape is answered from its mirror: the simulator
    serves no call for it. Counted by the simulator (its `calls` command,
    every client but its control channel) around two scrapes made once one
    was answered from memory, by ours' vpoller_exporter_soap_calls_total,
    and by each scrape's own vpoller_exporter_scrape_soap_calls.
    Not scrape calls: the mirror's long polls (LONG_POLLS), and QueryPerf by
    the background performance refresher, at most one chunk of PERF_CHUNK
    entities each per 20 s period, so at most that many in this short window.
    (vmware_exporter calls vCenter only when scraped, and is not scraped
    here.)"""
    first = pair.ours.scrape()
    assert own_up(first) == 1, "ours is not up"
    # Its mirror takes over within a few scrapes: then a scrape makes no
    # SOAP call of its own (its vpoller_exporter_scrape_soap_calls).
    deadline = time.monotonic() + 60
    while _own_value(first, "vpoller_exporter_scrape_soap_calls") != 0:
        assert time.monotonic() < deadline, "no scrape of ours was answered from memory within 60 s"
        time.sleep(0.2)
        first = pair.ours.scrape()
    machines_on = sum(1 for sample in first.family("vmware_vm_power_state") if sample.value == 1)
    hosts = len(first.family("vmware_host_power_state"))
    perf_bound = math.ceil(machines_on / PERF_CHUNK) + math.ceil(hosts / PERF_CHUNK)

    # The background alone, for comparison (reported, not asserted).
    pair.simulator.reset_calls()
    time.sleep(1)
    background = pair.simulator.calls()

    pair.simulator.reset_calls()
    started = time.monotonic()
    second = pair.ours.scrape()
    third = pair.ours.scrape()
    window = time.monotonic() - started
    served = pair.simulator.calls()

    scrape_calls = {method: count for method, count in served.items() if method not in LONG_POLLS}
    perf = scrape_calls.pop("QueryPerf", 0)
    own_before, own_after = soap_calls(second), soap_calls(third)
    own_moved = {method: own_after.get(method, 0) - own_before.get(method, 0)
                 for method in set(own_before) | set(own_after)
                 if own_after.get(method, 0) != own_before.get(method, 0)}
    report("%s: two scrapes in %.2f s: simulator served %s (background alone for 1 s: %s); ours' "
           "vpoller_exporter_soap_calls_total moved by %d (%s); QueryPerf allowed to the refresher: %d" % (
               pair.inventory, window, served or "nothing", background or "nothing", sum(own_moved.values()),
               own_moved or "nothing", perf_bound))
    assert scrape_calls == {}, "the simulator served calls for two scrapes of ours: %s" % served
    assert [_own_value(second, "vpoller_exporter_scrape_soap_calls"),
            _own_value(third, "vpoller_exporter_scrape_soap_calls")] == [0, 0]
    assert perf <= perf_bound, "QueryPerf %d times in %.2f s: more than the refresher's %d chunks" % (
        perf, window, perf_bound)
    own_scrape = {method: count for method, count in own_moved.items() if method not in LONG_POLLS}
    own_perf = own_scrape.pop("QueryPerf", 0)
    assert own_scrape == {} and own_perf <= perf_bound, (
        "vpoller_exporter_soap_calls_total moved between two scrapes: %s" % own_moved)


def test_vsphere_host_parameter_when_no_host_is_configured(unconfigured):
    """?vsphere_host=HOST and ?target=HOST (the same host: one mirror)."""
    host = unconfigured.simulator.host
    found = {}
    for params in ({"vsphere_host": host}, {"target": host}):
        if not harness.reference_as_ours():
            wait_until_up(unconfigured.ours, params)
        wait_for_performance_values(unconfigured.ours, params)
        differences, theirs, mine = compare_scrapes(unconfigured.reference, unconfigured.ours, params,
                                                    label="unconfigured ?%s=" % list(params)[0])
        assert theirs.family("vmware_vm_power_state"), "the reference read the host of %s" % params
        found["?%s=%s" % list(params.items())[0]] = undocumented(differences)
    assert not any(found.values()), "\n".join("%s:\n%s" % (params, describe(differences))
                                              for params, differences in found.items() if differences)


def test_no_host_at_all_is_a_500(unconfigured):
    answers = {}
    for exporter in (unconfigured.reference, unconfigured.ours):
        answer = exporter.get("/metrics")
        answers[exporter.name] = (answer.status, answer.body)
    assert answers["vmware_exporter"] == (500, b"No vsphere_host or target defined!\n"), answers
    assert len(set(answers.values())) == 1, answers


def test_performance_values_are_read_again(pair):
    """Ours reads the performance values again every PERIOD seconds: it
    makes QueryPerf calls again within two periods of its first values (by
    its vpoller_exporter_soap_calls_total: the simulator's count has the
    reference's calls too), and every performance family keeps its series
    meanwhile. (Last in the module, so that the time the other tests took
    counts.)"""
    assert pair.perf_since is not None, "ours never had every performance family within %d s of being up" % SETTLE
    deadline = pair.perf_since + 2 * PERIOD + 5
    while True:
        mine = pair.ours.scrape()
        gone = sorted(name for name in harness.PERF_FAMILIES if not mine.family(name))
        assert not gone, "%.0f s after ours had them, %d performance families have no series: %s" % (
            time.monotonic() - pair.perf_since, len(gone), ", ".join(gone[:4]))
        again = soap_calls(mine).get("QueryPerf", 0) - pair.perf_calls
        if again > 0:
            break
        assert time.monotonic() < deadline, "no QueryPerf made in the %.0f s since ours had its first values" % (
            time.monotonic() - pair.perf_since)
        time.sleep(0.5)
    report("%s: ours called QueryPerf again %.1f s after its first performance values (%d calls)" % (
        pair.inventory, time.monotonic() - pair.perf_since, again))
