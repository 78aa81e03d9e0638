"""The harness's parser of the text exposition format, and its comparison,
on hand-written input: the differential tests are only as good as these."""

import math

import pytest

from harness import DOCUMENTED_DIFFERENCES, ROOT, ParseError, compare, parse

EXPOSITION = r'''# HELP vmware_vm_power_state VMWare VM Power state (On / Off)
# TYPE vmware_vm_power_state gauge
vmware_vm_power_state{dc_name="DC0",vm_name="a \"quoted\" back\\slash\nnewline"} 1.0
vmware_vm_power_state{dc_name="DC0",vm_name="Zürich-ВМ-虚拟机"} 0.0
# HELP with_escapes A help with a back\\slash and a\nnewline
# TYPE with_escapes gauge
with_escapes 1e+16
with_escapes{kind="nan"} NaN
with_escapes{kind="inf"} +Inf
with_escapes{kind="minus-inf"} -Inf
with_escapes{kind="int",} 42 1700000000000
# an ordinary comment
# HELP empty_family Declared, no samples
# TYPE empty_family gauge
# HELP calls_total Calls
# TYPE calls_total counter
calls_total{method="Login"} 3.0
# HELP requests Requests, the family named without _total
# TYPE requests counter
requests_total 7
'''


def test_samples_labels_and_escapes():
    exposition = parse(EXPOSITION)
    assert list(exposition.families) == ["vmware_vm_power_state", "with_escapes", "empty_family", "calls_total",
                                         "requests"]
    power = exposition.families["vmware_vm_power_state"]
    assert power.help == "VMWare VM Power state (On / Off)"
    assert power.type == "gauge"
    assert [dict(sample.labels)["vm_name"] for sample in power.samples] == [
        'a "quoted" back\\slash\nnewline', "Zürich-ВМ-虚拟机"]
    assert [sample.value for sample in power.samples] == [1.0, 0.0]
    escapes = exposition.families["with_escapes"]
    assert escapes.help == "A help with a back\\slash and a\nnewline"
    values = [sample.value for sample in escapes.samples]
    assert values[0] == 1e16 and math.isnan(values[1]) and values[2] == math.inf and values[3] == -math.inf
    assert escapes.samples[4].value == 42 and escapes.samples[4].timestamp == 1700000000000
    assert exposition.families["empty_family"].samples == []
    assert exposition.families["empty_family"].help == "Declared, no samples"
    assert exposition.family("calls_total")[0].label("method") == "Login"
    assert exposition.family("requests")[0].name == "requests_total"


@pytest.mark.parametrize("line", [
    'm{a="unterminated} 1',
    'm{a="bad \\t escape"} 1',
    'm{a=unquoted} 1',
    'm{a="1",a="2"} 1',
    'm{1a="x"} 1',
    'm 1.0.0',
    'm one',
    'm',
    'm 1 2 3',
    '# TYPE m sometype',
])
def test_malformed_lines_are_refused(line):
    with pytest.raises(ParseError):
        parse(line + "\n")


def test_repeated_help_type_and_late_type_are_refused():
    with pytest.raises(ParseError):
        parse("# HELP m x\n# HELP m y\n")
    with pytest.raises(ParseError):
        parse("# TYPE m gauge\n# TYPE m gauge\n")
    with pytest.raises(ParseError):
        parse("m 1\n# TYPE m gauge\n")


def test_comparison_finds_each_kind_of_difference():
    reference = parse(
        "# HELP vmware_a A\n# TYPE vmware_a gauge\nvmware_a{x=\"1\"} 1.0\nvmware_a{x=\"2\"} 2.0\n"
        "# HELP vmware_gone Gone\n# TYPE vmware_gone gauge\n"
        "# HELP vmware_vm_cpu_usage_average vmware_vm_cpu_usage_average\n"
        "# TYPE vmware_vm_cpu_usage_average gauge\nvmware_vm_cpu_usage_average{x=\"1\"} 5.0\n")
    ours = parse(
        "# HELP vmware_a A.\n# TYPE vmware_a untyped\nvmware_a{x=\"1\"} 1\nvmware_a{x=\"3\"} 2.0\n"
        "# HELP vmware_new New\n# TYPE vmware_new gauge\n"
        "# HELP vmware_vm_cpu_usage_average vmware_vm_cpu_usage_average\n"
        "# TYPE vmware_vm_cpu_usage_average gauge\nvmware_vm_cpu_usage_average{x=\"1\"} NaN\n"
        "# HELP vpoller_exporter_up Up\n# TYPE vpoller_exporter_up gauge\nvpoller_exporter_up 1\n"
        "# HELP process_cpu CPU\n# TYPE process_cpu gauge\nprocess_cpu 1\n")
    kinds = sorted((difference.family, difference.kind) for difference in compare(reference, ours))
    assert kinds == [("process_cpu", "foreign-family"),
                     ("vmware_a", "help"), ("vmware_a", "series-extra"), ("vmware_a", "series-missing"),
                     ("vmware_a", "type"),
                     ("vmware_gone", "family-missing"), ("vmware_new", "family-extra"),
                     ("vmware_vm_cpu_usage_average", "not-finite")]
    # A random (performance) value compares only as finite; others exactly.
    ours_values = parse(
        "# HELP vmware_a A\n# TYPE vmware_a gauge\nvmware_a{x=\"1\"} 1.0\nvmware_a{x=\"2\"} 2.5\n"
        "# HELP vmware_gone Gone\n# TYPE vmware_gone gauge\n"
        "# HELP vmware_vm_cpu_usage_average vmware_vm_cpu_usage_average\n"
        "# TYPE vmware_vm_cpu_usage_average gauge\nvmware_vm_cpu_usage_average{x=\"1\"} 77\n")
    differences = compare(reference, ours_values)
    assert [(difference.family, difference.kind) for difference in differences] == [("vmware_a", "value")]
    assert 'vmware_a{x="2"} vmware_exporter 2.0, ours 2.5' in differences[0].detail
    assert compare(reference, reference) == []


def test_documented_differences_are_in_the_readme():
    """Each accepted difference has its entry in README.md."""
    with open("%s/README.md" % ROOT, encoding="utf-8") as readme:
        text = readme.read()
    for entry in DOCUMENTED_DIFFERENCES:
        assert entry.readme and entry.readme in text, "%s: README.md lacks %r" % (entry, entry.readme)
