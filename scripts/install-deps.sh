#!/usr/bin/env bash
# Installs the Debian packages that building and testing libvpoller needs,
# when they are missing. Needs root (or sudo) only when something is missing.
set -euo pipefail

# Build and C tests; the Ruby binding's tests; the Python venv; the vSphere
# simulator; the system libzmq for the benchmarks' raw loop and the old C client's replica
# in the interop tests; ffi-rzmq for the benchmarks; zabbix_agentd
# for the Zabbix module's tests; Prometheus, which scrapes vpoller-exporter in its tests.
packages=(gcc g++ make pkg-config valgrind ruby ruby-ffi ruby-minitest python3 python3-venv
          golang-go golang-github-vmware-govmomi-dev libzmq3-dev ruby-ffi-rzmq zabbix-agent
          prometheus)
# `install-deps.sh windows`: the Windows DLL's cross build (Debian's Rust with
# its library source, for -Zbuild-std; MinGW-w64) and its test under Wine.
if [ "${1:-}" = windows ]; then
    packages=(rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 wine64)
fi
# `install-deps.sh fuzz`: `make fuzz`, the C and C++ compilers that build
# libFuzzer (libfuzzer-sys) and the C parts of the library, then cargo-fuzz.
if [ "${1:-}" = fuzz ]; then
    packages=(gcc g++ make)
fi
# The cargo-fuzz release that `make fuzz` installs when there is none.
CARGO_FUZZ_VERSION=0.13.2

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: install a Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi

if [ ${#missing[@]} -ne 0 ]; then
    echo "Installing missing packages: ${missing[*]}"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "${1:-}" = fuzz ] && ! cargo fuzz --version >/dev/null 2>&1; then
    echo "Installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
