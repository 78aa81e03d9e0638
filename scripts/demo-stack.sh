#!/usr/bin/env bash
# Runs COMMAND against a local vPoller made of this project's programs only:
# govmomi's vSphere simulator (target/interop/vcsim), vpoller-proxy and
# vpoller-worker (target/release), on free loopback ports, with the simulator
# registered in a fresh host registry. COMMAND sees VPOLLER_ENDPOINT (the
# proxy's frontend), VPOLLER_VSPHERE_HOST (the simulator as host[:port], the
# name requests use) and VPOLLER_VSPHERE_CA (the PEM file of its CA). Every
# process started here is stopped on exit, also after a failure.
#
# Usage: scripts/demo-stack.sh COMMAND [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -gt 0 ] || { echo "usage: scripts/demo-stack.sh COMMAND [ARGS...]" >&2; exit 64; }
release=target/release
for program in target/interop/vcsim $release/vpoller-proxy $release/vpoller-worker; do
    [ -x "$program" ] || { echo "$program is missing: run make lib vcsim" >&2; exit 1; }
done

dir=$(mktemp -d -t vpoller-demo.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

# A loopback port nothing listens on.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

target/interop/vcsim -listen 127.0.0.1:0 -ca-out "$dir/ca.pem" >"$dir/vcsim.out" 2>"$dir/vcsim.log" &
pids+=($!)
for _ in $(seq 100); do
    [ -s "$dir/vcsim.out" ] && break
    sleep 0.1
done
url=$(head -n 1 "$dir/vcsim.out")
case "$url" in https://*) ;; *) echo "the vSphere simulator did not start" >&2; cat "$dir/vcsim.log" >&2; exit 1 ;; esac
host=${url#*@}
host=${host%%/*}

frontend=tcp://127.0.0.1:$(free_port)
backend=tcp://127.0.0.1:$(free_port)
proxy_mgmt=tcp://127.0.0.1:$(free_port)
worker_mgmt=tcp://127.0.0.1:$(free_port)
cat >"$dir/vpoller.conf" <<CONF
[proxy]
frontend = $frontend
backend = $backend
mgmt = $proxy_mgmt

[worker]
db = $dir/vconnector.db
proxy = $backend
mgmt = $worker_mgmt
helpers = vpoller.helpers.zabbix, vpoller.helpers.czabbix, vpoller.helpers.cclient
tasks = vpoller.vsphere.tasks

[cache]
enabled = yes
ttl = 300
CONF

VPOLLER_PASSWORD=simulator $release/vpoller-worker -f "$dir/vpoller.conf" hosts add -H "$host" -U root \
    --ca-file "$dir/ca.pem"
$release/vpoller-proxy -f "$dir/vpoller.conf" start 2>"$dir/proxy.log" &
pids+=($!)
$release/vpoller-worker -f "$dir/vpoller.conf" start 2>"$dir/worker.log" &
pids+=($!)
for endpoint in "$proxy_mgmt" "$worker_mgmt"; do
    program=$release/vpoller-proxy
    [ "$endpoint" = "$worker_mgmt" ] && program=$release/vpoller-worker
    for attempt in $(seq 50); do
        if "$program" -e "$endpoint" status 2>/dev/null | grep -q '"running"'; then
            break
        fi
        [ "$attempt" -lt 50 ] || { echo "$program did not start:" >&2; cat "$dir"/*.log >&2; exit 1; }
        sleep 0.1
    done
done
echo "vPoller is up (vpoller-proxy and vpoller-worker): endpoint $frontend, vSphere host $host"

status=0
VPOLLER_ENDPOINT=$frontend VPOLLER_VSPHERE_HOST=$host VPOLLER_VSPHERE_CA=$dir/ca.pem "$@" || status=$?
exit "$status"
