"""pytest setup for the exporter tests: the harness on the import path, and
the measurements the tests made printed at the end of every run (latencies,
SOAP call counts, differences found), passed or not.

The servers themselves are started by fixtures in the test modules, each in
a contextlib.ExitStack so that whatever was started is stopped by pid at
teardown, also when the test or the fixture's own setup fails."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def pytest_report_header(config):
    mode = " (vmware_exporter standing in for ours: a check of the harness)" if harness.reference_as_ours() else ""
    return "exporter under test: %s%s; reference: %s" % (harness.OURS, mode, harness.REFERENCE)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if harness.REPORT:
        terminalreporter.section("exporter measurements")
        for line in harness.REPORT:
            terminalreporter.write_line(line)
