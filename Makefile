# libvpoller: build, test, install. `make help` lists the targets.

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
# Where `make install` puts the Zabbix module (LoadModulePath).
ZABBIX_MODULEDIR ?= $(LIBDIR)/zabbix/modules
DESTDIR    ?=

CARGO      ?= cargo
CC         ?= cc
CFLAGS     ?= -O2 -g -Wall -Wextra -Werror -std=c99
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

RELEASE    := target/release
LIB_SO     := $(RELEASE)/libvpoller.so
LIB_A      := $(RELEASE)/libvpoller.a
SONAME_LINK := $(RELEASE)/libvpoller.so.0
C_OUT      := target/c
C_LINK     := -L$(RELEASE) -Wl,-rpath,$(abspath $(RELEASE)) -lvpoller
ZABBIX_MODULE := target/zabbix/vpoller.so
C_PROGRAMS := $(C_OUT)/hello $(C_OUT)/local $(C_OUT)/vpoller-cclient $(C_OUT)/abi_test $(C_OUT)/agent_abi_test $(C_OUT)/interop-runner
RUST_SRC   := $(shell find src tests/standin tests/interop/runners benches/rust examples/rust -name '*.rs') build.rs src/vsphere/typetable.txt \
              Cargo.toml Cargo.lock tests/standin/Cargo.toml cbindgen.toml .cargo/config.toml
# One cargo invocation builds the library, the stand-in proxy and the interop
# runner, so that they share one feature resolution (and one libzmq build).
CARGO_BUILD := $(CARGO) build --release --locked --workspace --lib --bins --examples
STANDIN    := $(RELEASE)/vpoller-standin
VENV       := .venv
# vmware_exporter 0.18.4, the reference of vpoller-exporter's tests and benchmarks
# (Twisted before 23: with later ones its every collection fails).
EXPORTER_VENV := .venv-exporter
PYTHON     ?= python3

.PHONY: dll test-windows typetable exporter-venv exporter-test bench bench-programs bench-baseline all lib c-programs header test rust-test ruby-test python-test interop-test demo demo-py lint \
	install uninstall pkg-config-check deps venv standin vcsim interop-runners clean help fuzz

all: lib c-programs ## Build the library and the C examples

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

deps: ## Install the system packages the build and tests need (as root on Debian)
	@scripts/install-deps.sh

lib: $(LIB_SO) $(SONAME_LINK) ## Build libvpoller.so and libvpoller.a (target/release)

$(LIB_SO) $(LIB_A): $(RUST_SRC)
	$(CARGO_BUILD)

# Programs linked here look the library up by its soname. A target of its
# own, so that it is made also when cargo built the library first.
$(SONAME_LINK): $(LIB_SO)
	ln -sf libvpoller.so $@

header: ## Regenerate include/vpoller.h from src/capi
	VPOLLER_UPDATE_HEADER=1 $(CARGO_BUILD)
	ln -sf libvpoller.so $(SONAME_LINK)

c-programs: $(C_PROGRAMS) $(ZABBIX_MODULE) ## Build the C examples, the C ABI test programs and the Zabbix module

# The Zabbix loadable module (bindings/zabbix); no Zabbix source needed.
$(ZABBIX_MODULE): bindings/zabbix/vpoller_module.c include/vpoller.h $(LIB_SO) $(SONAME_LINK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -Iinclude -o $@ $< $(C_LINK)

$(C_OUT)/%: examples/c/%.c include/vpoller.h $(LIB_SO) $(SONAME_LINK)
	@mkdir -p $(C_OUT)
	$(CC) $(CFLAGS) -Iinclude -o $@ $< $(C_LINK)

$(C_OUT)/interop-runner: tests/interop/runners/runner.c include/vpoller.h $(LIB_SO) $(SONAME_LINK)
	@mkdir -p $(C_OUT)
	$(CC) $(CFLAGS) -Iinclude -o $@ $< $(C_LINK)

# py-vpoller's old C client's wire behaviour, on the system's libzmq as that client is.
$(C_OUT)/legacy-cclient: tests/interop/runners/legacy_cclient.c
	@mkdir -p $(C_OUT)
	$(CC) $(CFLAGS) -o $@ $< -lzmq

$(C_OUT)/abi_test $(C_OUT)/agent_abi_test: $(C_OUT)/%: tests/c/%.c tests/c/check.h include/vpoller.h $(LIB_SO) $(SONAME_LINK)
	@mkdir -p $(C_OUT)
	$(CC) $(CFLAGS) -Iinclude -o $@ $< $(C_LINK) -lpthread

test: deps lint pkg-config-check rust-test ruby-test python-test interop-test exporter-test ## Run every test

rust-test: c-programs vcsim ## Rust tests, the C programs and the C ABI under valgrind
	VPOLLER_C_PROGRAMS=$(abspath $(C_OUT)) $(CARGO) test --release --locked

standin: lib ## The stand-in vPoller Proxy that the Ruby and Python tests run (built with the library)

ruby-test: lib standin vcsim ## The Ruby binding's minitest suites (client and agent)
	ruby -I bindings/ruby/lib -e 'ARGV.each { |test| require File.expand_path(test) }' \
	    bindings/ruby/test/test_client.rb bindings/ruby/test/test_agent.rb

exporter-venv: $(EXPORTER_VENV)/.ready ## The Python venv with vmware_exporter 0.18.4 and pytest (.venv-exporter)

$(EXPORTER_VENV)/.ready:
	$(PYTHON) -m venv $(EXPORTER_VENV)
	$(EXPORTER_VENV)/bin/pip install --quiet --upgrade pip
	$(EXPORTER_VENV)/bin/pip install --quiet 'vmware-exporter==0.18.4' 'twisted<23' requests pytz pytest
	touch $@

exporter-test: lib vcsim exporter-venv ## vpoller-exporter against vmware_exporter 0.18.4, and scraped by Prometheus (needs root: port 443)
	$(EXPORTER_VENV)/bin/pytest -q tests/exporter

venv: $(VENV)/.ready ## The Python venv with pytest and the vpoller_ffi package

# pytest, this project's vpoller_ffi, and py-vpoller 0.7.3 for the interop stack and tests.
$(VENV)/.ready: bindings/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet pytest vpoller==0.7.3
	$(VENV)/bin/pip install --quiet --editable bindings/python
	touch $@

VCSIM := target/interop/vcsim

vcsim: $(VCSIM) ## The vSphere simulator (govmomi from Debian's golang-github-vmware-govmomi-dev)

$(VCSIM): tests/interop/vcsim/main.go
	@mkdir -p $(dir $@)
	GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE=$(abspath target/interop/go-cache) \
	    go build -o $@ $<

interop-runners: lib c-programs $(C_OUT)/legacy-cclient ## The interop tests' runners (Rust one built with the library)

interop-test: interop-runners venv vcsim ## Every client against py-vpoller 0.7.3 and the simulator (needs root)
	cd tests/interop && ../../$(VENV)/bin/pytest -q .

BENCH_OUT   := target/bench
BENCH_PROGS := $(BENCH_OUT)/loop_vpoller $(BENCH_OUT)/threads $(BENCH_OUT)/big_reply

bench-programs: $(BENCH_PROGS) $(BENCH_OUT)/loop_rawzmq $(BENCH_OUT)/agentloop

# The floor of the agent's benchmark: a govmomi loop (Debian's govmomi source, as the simulator).
$(BENCH_OUT)/agentloop: benches/go/agentloop.go
	@mkdir -p $(BENCH_OUT)
	GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE=$(abspath target/interop/go-cache) \
	    go build -o $@ benches/go/agentloop.go

$(BENCH_OUT)/%: benches/c/%.c benches/c/bench.h include/vpoller.h $(LIB_SO)
	@mkdir -p $(BENCH_OUT)
	$(CC) $(CFLAGS) -Iinclude -o $@ $< $(C_LINK) -lpthread

# The floor: the same loop on the system's libzmq (Debian's libzmq3-dev), no libvpoller.
$(BENCH_OUT)/loop_rawzmq: benches/c/loop_rawzmq.c benches/c/bench.h
	@mkdir -p $(BENCH_OUT)
	$(CC) $(CFLAGS) -o $@ $< -lzmq

# Section 10's "before the mirror": the proxy and worker of the last commit
# before the live mirror, built once from git in a tree of their own.
BASELINE     := af70a88
BASELINE_OUT := $(BENCH_OUT)/baseline

$(BASELINE_OUT)/vpoller-worker:
	rm -rf $(BASELINE_OUT)-src
	mkdir -p $(BASELINE_OUT)-src $(BASELINE_OUT)
	git archive $(BASELINE) | tar -x -C $(BASELINE_OUT)-src
	cd $(BASELINE_OUT)-src && $(CARGO) build --release --locked --bins
	cp $(BASELINE_OUT)-src/target/release/vpoller-proxy $(BASELINE_OUT)/
	cp $(BASELINE_OUT)-src/target/release/vpoller-worker $(BASELINE_OUT)/

bench-baseline: $(BASELINE_OUT)/vpoller-worker ## Build the proxy and worker before the live mirror (for section 10 of make bench)

bench: deps lib c-programs bench-programs bench-baseline venv exporter-venv vcsim ## Benchmarks (see BENCHMARKS.md); BENCH_ARGS=--quick for a smoke run; BENCH_ARGS="--only mirror" (or exporter) for section 10 (or 11) alone
	$(VENV)/bin/python benches/run.py $(BENCH_ARGS)

demo: deps lib c-programs venv vcsim ## Start a local vPoller (simulator, vpoller-proxy, vpoller-worker) and run the documented examples
	scripts/demo-stack.sh scripts/demo.sh

demo-py: deps lib c-programs venv vcsim ## The same examples against py-vpoller 0.7.3's proxy and worker (needs root: port 443)
	$(VENV)/bin/python tests/interop/stack.py run -- scripts/demo.sh

python-test: lib standin venv vcsim ## The Python binding's pytest suite
	$(VENV)/bin/pytest -q bindings/python

dll: ## The Windows x86_64 vpoller.dll (+ import library, header, test programs) in target/windows/dist, cross-built
	@scripts/install-deps.sh windows
	scripts/build-dll.sh

test-windows: dll standin ## The DLL's C ABI test program and hello.c under Wine against the stand-in proxy
	scripts/test-windows.sh

lint: ## rustfmt, clippy and rustdoc, warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --locked --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --locked --no-deps -p vpoller

# Fuzzing: the cargo-fuzz targets of fuzz/ (one per function of
# src/fuzzing.rs), each run by libFuzzer for FUZZ_SECONDS, one after the
# other, from the seeds of fuzz/corpus/NAME and fuzz/regressions/NAME into a
# scratch corpus (fuzz/target/corpus/NAME). A crash input is left in
# fuzz/artifacts/NAME/ and named at the end; once the bug is fixed, it is
# kept as fuzz/regressions/NAME/<what-it-caught>, which `cargo test` runs.
# FUZZ_LIST: every target as NAME:MAX_LEN, the longest input in bytes.
FUZZ_LIST := \
	zmtp:8192 \
	soap_xml:16384 \
	request:4096 \
	server_config:4096 \
	exporter_config:4096 \
	registry_row:4096 \
	zabbix_key:4096 \
	curve:4096 \
	zmtp_curve:4096
FUZZ_TARGETS ?= $(foreach target,$(FUZZ_LIST),$(firstword $(subst :, ,$(target))))
FUZZ_SECONDS ?= 600
# libFuzzer's limit of the process's memory (MB), and of one input's time (s).
FUZZ_RSS_MB  ?= 2048
FUZZ_TIMEOUT ?= 10

fuzz: ## Fuzz FUZZ_TARGETS (default: all) for FUZZ_SECONDS (600) each, in turn; crash inputs in fuzz/artifacts (keep them in fuzz/regressions once fixed)
	@scripts/install-deps.sh fuzz
	FUZZ_LIST="$(FUZZ_LIST)" FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_SECONDS="$(FUZZ_SECONDS)" \
	    FUZZ_RSS_MB="$(FUZZ_RSS_MB)" FUZZ_TIMEOUT="$(FUZZ_TIMEOUT)" fuzz/run.sh

install: lib ## Install header, libraries (stripped; debug info in .debug/), pkg-config file, vpoller-cclient, vpoller-proxy, vpoller-worker, vpoller-exporter and the Zabbix module under PREFIX
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/.debug
	install -m 644 include/vpoller.h $(DESTDIR)$(INCLUDEDIR)/vpoller.h
	@# The library stripped, its debug info beside it in .debug/ (found by gdb through the debuglink).
	objcopy --only-keep-debug --compress-debug-sections $(LIB_SO) $(DESTDIR)$(LIBDIR)/.debug/libvpoller.so.$(VERSION).debug
	objcopy --strip-unneeded --add-gnu-debuglink=$(DESTDIR)$(LIBDIR)/.debug/libvpoller.so.$(VERSION).debug \
	    $(LIB_SO) $(DESTDIR)$(LIBDIR)/libvpoller.so.$(VERSION)
	chmod 755 $(DESTDIR)$(LIBDIR)/libvpoller.so.$(VERSION)
	chmod 644 $(DESTDIR)$(LIBDIR)/.debug/libvpoller.so.$(VERSION).debug
	ln -sf libvpoller.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libvpoller.so.0
	ln -sf libvpoller.so.0 $(DESTDIR)$(LIBDIR)/libvpoller.so
	objcopy --strip-debug $(LIB_A) $(DESTDIR)$(LIBDIR)/libvpoller.a
	chmod 644 $(DESTDIR)$(LIBDIR)/libvpoller.a
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    vpoller.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/vpoller.pc
	$(CC) $(CFLAGS) -s -I$(DESTDIR)$(INCLUDEDIR) -o $(DESTDIR)$(BINDIR)/vpoller-cclient \
	    examples/c/vpoller-cclient.c -L$(DESTDIR)$(LIBDIR) -Wl,-rpath,$(LIBDIR) -lvpoller
	install -s -m 755 $(RELEASE)/vpoller-proxy $(RELEASE)/vpoller-worker $(RELEASE)/vpoller-exporter $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(ZABBIX_MODULEDIR)
	$(CC) $(CFLAGS) -s -fPIC -shared -I$(DESTDIR)$(INCLUDEDIR) -o $(DESTDIR)$(ZABBIX_MODULEDIR)/vpoller.so \
	    bindings/zabbix/vpoller_module.c -L$(DESTDIR)$(LIBDIR) -Wl,-rpath,$(LIBDIR) -lvpoller

uninstall: ## Remove what `make install` put under PREFIX
	rm -f $(DESTDIR)$(INCLUDEDIR)/vpoller.h $(DESTDIR)$(LIBDIR)/libvpoller.so* \
	    $(DESTDIR)$(LIBDIR)/.debug/libvpoller.so.$(VERSION).debug \
	    $(DESTDIR)$(LIBDIR)/libvpoller.a $(DESTDIR)$(LIBDIR)/pkgconfig/vpoller.pc \
	    $(DESTDIR)$(BINDIR)/vpoller-cclient $(DESTDIR)$(BINDIR)/vpoller-proxy $(DESTDIR)$(BINDIR)/vpoller-worker $(DESTDIR)$(BINDIR)/vpoller-exporter \
	    $(DESTDIR)$(ZABBIX_MODULEDIR)/vpoller.so

pkg-config-check: lib ## Install into a scratch prefix and build the C examples with pkg-config
	scripts/pkg-config-check.sh

typetable: venv ## Regenerate src/vsphere/typetable.txt from pyVmomi's type information (in .venv)
	$(VENV)/bin/python scripts/gen-typetable.py $$(ls -d $(VENV)/lib/python3*/site-packages/pyVmomi) > src/vsphere/typetable.txt

clean: ## Remove build outputs
	$(CARGO) clean
