#!/usr/bin/env bash
# Tests the Windows DLL (`make test-windows`, after `make dll`) under Wine:
# the cross-built C ABI test program and hello.c against the stand-in vPoller
# Proxy (target/release/vpoller-standin) on loopback: real round trips,
# threads, timeouts and retries, through vpoller.dll.
set -euo pipefail
cd "$(dirname "$0")/.."

dist=target/windows/dist
wine=/usr/lib/wine/wine64
for file in "$dist/vpoller.dll" "$dist/abi_test.exe" "$dist/hello.exe" target/release/vpoller-standin "$wine"; do
    [ -e "$file" ] || { echo "$file is missing: run make dll (and scripts/install-deps.sh windows)" >&2; exit 1; }
done
export WINEPREFIX=$PWD/target/windows/wineprefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="

out=$(mktemp -d)
standin=
cleanup() {
    local status=$?
    if [ -n "$standin" ]; then
        kill "$standin" 2>/dev/null || true
        wait "$standin" 2>/dev/null || true
    fi
    rm -rf "$out"
    exit "$status"
}
trap cleanup EXIT
target/release/vpoller-standin --workers 2 >"$out/endpoint" &
standin=$!
for _ in $(seq 50); do [ -s "$out/endpoint" ] && break; sleep 0.1; done
endpoint=$(head -n 1 "$out/endpoint")
case "$endpoint" in tcp://*) ;; *) echo "the stand-in proxy did not start" >&2; exit 1 ;; esac

"$wine" "$dist/abi_test.exe" "$endpoint" >"$out/abi" 2>"$out/abi.err" || { cat "$out/abi" "$out/abi.err" >&2; exit 1; }
grep -q ' passed, 0 failed' "$out/abi" || { cat "$out/abi" >&2; exit 1; }
echo "abi_test.exe under Wine: $(tail -n 1 "$out/abi")"

"$wine" "$dist/hello.exe" "$endpoint" vc01.example.org >"$out/hello" 2>/dev/null
grep -q 'Received reply from vPoller: {"success": 0' "$out/hello" || { cat "$out/hello" >&2; exit 1; }
echo "hello.exe under Wine: $(tail -n 1 "$out/hello")"
