#!/usr/bin/env bash
# The vPoller API documentation's examples against the running stack
# (started by `make demo` through scripts/demo-stack.sh, or `make demo-py`
# through tests/interop/stack.py, which set VPOLLER_ENDPOINT,
# VPOLLER_VSPHERE_HOST and VPOLLER_VSPHERE_CA): vm.discover,
# and vm.get of runtime.powerState, through the C, Ruby and Python clients and
# the proxy; then the same tasks run locally by the vSphere agent (no proxy, no
# worker, no Python) from C, Ruby and Python; and vpoller-exporter, the
# Prometheus exporter, scraped twice.
set -euo pipefail
cd "$(dirname "$0")/.."

endpoint=${VPOLLER_ENDPOINT:?run through scripts/demo-stack.sh}
host=${VPOLLER_VSPHERE_HOST:?run through scripts/demo-stack.sh}
ca=${VPOLLER_VSPHERE_CA:?run through scripts/demo-stack.sh}
vm=DC0_H0_VM0
python=${PYTHON:-.venv/bin/python}

step() { printf '\n== %s\n' "$*"; }

step "C: vpoller-cclient -m vm.discover -V $host"
target/c/vpoller-cclient -e "$endpoint" -m vm.discover -V "$host"

step "C: vpoller-cclient -m vm.get -V $host -n $vm -p runtime.powerState"
target/c/vpoller-cclient -e "$endpoint" -m vm.get -V "$host" -n "$vm" -p runtime.powerState

step "C: the same through the Zabbix helper"
target/c/vpoller-cclient -e "$endpoint" -m vm.get -V "$host" -n "$vm" -p runtime.powerState \
    -H vpoller.helpers.zabbix

step "Ruby: examples/ruby/discover.rb"
ruby -I bindings/ruby/lib examples/ruby/discover.rb "$endpoint" "$host"

step "Ruby: examples/ruby/vm_get.rb"
ruby -I bindings/ruby/lib examples/ruby/vm_get.rb "$endpoint" "$host" "$vm"

step "Python: examples/python/discover.py"
"$python" examples/python/discover.py "$endpoint" "$host"

step "Python: examples/python/vm_get.py"
"$python" examples/python/vm_get.py "$endpoint" "$host" "$vm"

step "C, local: examples/c/local.c (the vSphere agent in this process)"
target/c/local "$host" root simulator "$ca" '{"method": "vm.discover"}' \
    "{\"method\": \"vm.get\", \"name\": \"$vm\", \"properties\": [\"runtime.powerState\"]}"

step "Ruby, local: examples/ruby/local.rb"
ruby -I bindings/ruby/lib examples/ruby/local.rb "$host" root simulator "$ca"

step "Python, local: examples/python/local.py"
"$python" examples/python/local.py "$host" root simulator "$ca"

step "Prometheus: vpoller-exporter (vmware_exporter's metrics from the mirror), /metrics twice"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
VSPHERE_HOST=$host VSPHERE_USER=root VSPHERE_PASSWORD=simulator VSPHERE_CA_FILE=$ca \
    target/release/vpoller-exporter -a 127.0.0.1 -p "$port" -l WARNING &
exporter=$!
trap 'kill "$exporter" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null && break
    sleep 0.1
done
for scrape in first second; do
    echo "-- $scrape scrape:"
    "$python" - "$port" "$vm" <<'PY'
import sys, urllib.request
port, vm = sys.argv[1], sys.argv[2]
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port).read().decode()
lines = text.splitlines()
for line in lines:
    if (line.startswith("vmware_vm_power_state{") and 'vm_name="%s"' % vm in line) or \
            line.startswith(("vpoller_exporter_up ", "vpoller_exporter_scrape_soap_calls ",
                             "vpoller_exporter_scrape_duration_seconds ")):
        print(line)
print("(%d vmware_* samples)" % sum(1 for line in lines if line.startswith("vmware_")))
PY
    sleep 1
done
kill "$exporter"
wait "$exporter" 2>/dev/null || true
