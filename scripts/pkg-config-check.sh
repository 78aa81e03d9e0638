#!/usr/bin/env bash
# Installs libvpoller into a scratch prefix and builds the C examples against
# it with pkg-config only, the way a user's program would.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

make --no-print-directory install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs vpoller)
for example in hello vpoller-cclient; do
    ${CC:-cc} -O2 -Wall -Wextra -Werror -std=c99 -o "$prefix/$example" "examples/c/$example.c" \
        $flags -Wl,-rpath,"$prefix/lib"
done
# The installed libraries resolve: the binaries start, and the static library links.
"$prefix/vpoller-cclient" -h >/dev/null
"$prefix/bin/vpoller-cclient" -h >/dev/null
static_libs=$(pkg-config --static --libs-only-l vpoller | sed 's/-lvpoller//')
${CC:-cc} -std=c99 -o "$prefix/hello-static" examples/c/hello.c \
    $(pkg-config --cflags vpoller) "$prefix/lib/libvpoller.a" $static_libs
readelf -d "$prefix/hello-static" | grep -q 'NEEDED.*libvpoller' \
    && { echo "hello-static should not need libvpoller.so" >&2; exit 1; }
readelf -d "$prefix/hello" | grep -q 'NEEDED.*libvpoller.so.0' \
    || { echo "hello does not link libvpoller.so.0" >&2; exit 1; }
# Installed stripped, with the debug info split off and linked.
library="$prefix/lib/libvpoller.so.$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
readelf -S "$library" | grep -q '\.debug_info' && { echo "$library is not stripped" >&2; exit 1; }
readelf -S "$library" | grep -q '\.gnu_debuglink' || { echo "$library has no debuglink" >&2; exit 1; }
readelf -S "$prefix/lib/.debug/$(basename "$library").debug" | grep -q '\.debug_info' \
    || { echo "the split debug info is missing" >&2; exit 1; }
readelf -S "$prefix/lib/libvpoller.a" | grep -q '\.debug_info' && { echo "libvpoller.a keeps debug info" >&2; exit 1; }
# Any build order works: without the soname link (as after a plain
# `cargo build --release`), make makes it and the C programs start.
rm -f target/release/libvpoller.so.0
make --no-print-directory c-programs >/dev/null
target/c/vpoller-cclient -h >/dev/null
echo "pkg-config check: installed library (stripped, debug info split), header and vpoller.pc work (prefix $prefix)"
