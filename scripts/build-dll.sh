#!/usr/bin/env bash
# Cross-builds the Windows x86_64 DLL on Debian (`make dll`): vpoller.dll,
# its import library libvpoller.dll.a and the same include/vpoller.h, plus the
# C ABI test program and hello.c as .exe files for `make test-windows`.
#
# Debian's Rust (rustc-web, cargo-web) builds the standard library for the
# target from rust-web-src (-Zbuild-std); rustup's toolchain has no Windows
# standard library here. The target is x86_64-win7-windows-gnu: it loads on
# Windows 7 and later and on stock Wine (the -pc- target's standard library
# needs bcryptprimitives.dll's ProcessPrng, which Wine 8 lacks). libzmq
# (zeromq-src 0.2.6, MSVC-minded) needs a few settings for MinGW: Windows
# definitions for its empty platform.hpp, the Win32 condition variable, gcc
# for its one C file, forwarding headers for the MSVC spellings of system
# headers, and a statically linked C++ runtime. Output: target/windows/dist/.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-win7-windows-gnu
triple=${target//-/_}
shim=$PWD/target/windows/shim
out=$PWD/target/windows/dist
for tool in /usr/bin/rustc /usr/bin/cargo x86_64-w64-mingw32-gcc x86_64-w64-mingw32-g++; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh windows" >&2; exit 1; }
done
[ -d /usr/lib/rustlib/src/rust/library ] || { echo "rust-web-src is missing: run scripts/install-deps.sh windows" >&2; exit 1; }

mkdir -p "$shim/include/sys" "$out"
for pair in WinSock2.h:winsock2.h WS2tcpip.h:ws2tcpip.h Windows.h:windows.h Mstcpip.h:mstcpip.h \
            sys/socket.h:winsock2.h sys/un.h:afunix.h; do
    echo "#include <${pair#*:}>" >"$shim/include/${pair%%:*}"
done
cat >"$shim/cxx" <<'WRAPPER'
#!/bin/sh
# libzmq's sources are C++ but for wepoll.c: compile that one with gcc.
for arg in "$@"; do
    case "$arg" in *.c) exec x86_64-w64-mingw32-gcc "$@" ;; esac
done
exec x86_64-w64-mingw32-g++ "$@"
WRAPPER
chmod +x "$shim/cxx"

upper=$(echo "$triple" | tr '[:lower:]' '[:upper:]')
# These flags replace .cargo/config.toml's [build] rustflags, so they repeat
# its poly1305_force_soft (Poly1305's portable backend; see there).
env RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    "CARGO_TARGET_${upper}_LINKER=x86_64-w64-mingw32-gcc" \
    "CARGO_TARGET_${upper}_RUSTFLAGS=-C link-arg=-ladvapi32 --cfg poly1305_force_soft" \
    "CC_${triple}=x86_64-w64-mingw32-gcc" \
    "AR_${triple}=x86_64-w64-mingw32-ar" \
    "CXX_${triple}=$shim/cxx" \
    "CXXFLAGS_${triple}=-DZMQ_HAVE_WINDOWS -DZMQ_USE_CV_IMPL_WIN32API -I$shim/include" \
    "CXXSTDLIB_STATIC_${triple}=1" \
    /usr/bin/cargo build --release --locked --lib --target "$target" -Zbuild-std --target-dir target/windows

built=target/windows/$target/release
x86_64-w64-mingw32-strip -o "$out/vpoller.dll" "$built/vpoller.dll"
cp "$built/libvpoller.dll.a" "$out/libvpoller.dll.a"
cp include/vpoller.h "$out/vpoller.h"

# The DLL imports Windows system DLLs only and exports the C API only.
imports=$(x86_64-w64-mingw32-objdump -p "$out/vpoller.dll" | sed -n 's/^\tDLL Name: //p')
echo "$imports" | grep -viE '^(advapi32|bcrypt|iphlpapi|kernel32|msvcrt|ntdll|userenv|ws2_32|crypt32|secur32)\.dll$' \
    && { echo "vpoller.dll imports a non-system DLL (above)" >&2; exit 1; }
exports=$(x86_64-w64-mingw32-objdump -p "$out/vpoller.dll" \
    | sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | awk 'NF >= 2 {print $NF}' | grep -v 'Table$')
echo "$exports" | grep -v '^vpoller_' && { echo "vpoller.dll exports more than vpoller_* (above)" >&2; exit 1; }

# The test programs, statically linked but for vpoller.dll.
for program in examples/c/hello.c tests/c/abi_test.c; do
    name=$(basename "$program" .c)
    x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -std=c99 -Iinclude -static \
        -o "$out/$name.exe" "$program" "$out/libvpoller.dll.a" -lpthread
done
echo "built $out/vpoller.dll ($(du -h "$out/vpoller.dll" | cut -f1) stripped), libvpoller.dll.a, vpoller.h, hello.exe, abi_test.exe"
