# deskproof build and test entry points. Everything works offline once the Rust crates,
# the wasm target and wasm-bindgen-cli are present; `make demo` and `make test` install them.
SHELL := /bin/bash
CARGO ?= cargo
SITE := target/site
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;}' Cargo.lock)
# wasm-split-cli, which splits the admin pages off the WebAssembly module, matches the
# wasm_split_helpers that leptos builds in.
WASM_SPLIT_VERSION := 0.2.4
DEMO_DIR ?= data/demo

.PHONY: demo test bench build site site-release tools e2e-deps browser clean fmt lint fuzz

# The simulators live in memory, so every demo starts from a fresh database.
demo: build
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	DESKPROOF_DATABASE_URL=sqlite://$(DEMO_DIR)/deskproof.db DESKPROOF_SITE_ROOT=$(SITE) \
		./target/debug/deskproof demo

# Storage, flow and multi-process tests also run on a throw-away PostgreSQL server.
PG_TESTS := --test storage --test flow --test directory --test replicas --test push_policy --test pod --test sweep \
	--test verification_push --test duo_msp

# The fuzz crate is not in the workspace; checking it (seconds once built) keeps the libFuzzer
# targets compiling, while the short run in the tests exercises their bodies.
test: build e2e-deps
	$(CARGO) test --workspace
	$(CARGO) check --manifest-path fuzz/Cargo.toml --bins
	.ci/with-postgres $(CARGO) test --workspace $(PG_TESTS)
	cd end2end && DESKPROOF_BIN=../target/debug/deskproof DESKPROOF_SITE_ROOT=../$(SITE) node --test --test-concurrency=1 tests/

# Speed, memory and size against the simulators, as one table (see the README). Release
# builds; PostgreSQL runs with fsync on so its figures are real.
bench: site-release
	PG_FSYNC=on .ci/with-postgres env BENCH_SITE=target/site-release \
		$(CARGO) bench -p deskproof --bench speed

# The browser half as it is shipped: optimized for size, without the function names section.
site-release: tools
	$(CARGO) build -p app --lib --target wasm32-unknown-unknown --profile wasm-release \
		--no-default-features --features hydrate
	$(call pack,wasm-release,target/site-release,--remove-name-section --remove-producers-section)

build: site
	$(CARGO) build -p deskproof

# The browser half: WebAssembly built with the pinned wasm-bindgen, plus CSS and images.
site: tools
	$(CARGO) build -p app --lib --target wasm32-unknown-unknown --no-default-features --features hydrate
	$(call pack,debug,$(SITE),)

# $(call pack,PROFILE,SITE,BINDGEN_FLAGS): wasm-split moves the admin pages' code into chunks
# fetched on first use, wasm-bindgen makes the JS glue for the main module, and the chunks
# (without their names sections: wasm-strip) and their loader go beside it in SITE/pkg.
SPLIT_DIR = target/wasm-split/$(1)
define pack
	rm -rf $(SPLIT_DIR) $(2)/pkg && mkdir -p $(2)/pkg
	wasm-split-cli --target web --out-name deskproof \
		target/wasm32-unknown-unknown/$(1)/app.wasm $(SPLIT_DIR)
	wasm-bindgen --target web --no-typescript --keep-lld-exports --no-demangle $(3) \
		--out-name deskproof --out-dir $(2)/pkg $(SPLIT_DIR)/deskproof.wasm
	find $(SPLIT_DIR) -name '*.wasm' ! -name deskproof.wasm -exec cp {} $(2)/pkg/ \;
	find $(2)/pkg -name '*.wasm' ! -name deskproof_bg.wasm -exec wasm-strip {} \;
	cp $(SPLIT_DIR)/__wasm_split.js $(2)/pkg/
	cp style/main.css $(2)/pkg/deskproof.css
	cp -r public/. $(2)/
endef

tools:
	@command -v wasm-strip >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wabt; }
	@rustup target list --installed | grep -qx wasm32-unknown-unknown \
		|| rustup target add wasm32-unknown-unknown
	@if [ "$$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$(WASM_BINDGEN_VERSION)" ]; then \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION)"; \
		$(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi
	@if ! $(CARGO) install --list | grep -qx "wasm_split_cli_support v$(WASM_SPLIT_VERSION):"; then \
		echo "installing wasm-split-cli $(WASM_SPLIT_VERSION)"; \
		$(CARGO) install --locked wasm_split_cli_support --version $(WASM_SPLIT_VERSION) \
			--features build-binary; \
	fi

browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

e2e-deps: browser
	@cd end2end && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund; }

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Fuzzing: each target runs for FUZZ_SECONDS (libFuzzer, no sanitizer: the code is safe Rust,
# the search is for panics, hangs and runaway memory). Stable Rust needs RUSTC_BOOTSTRAP for the
# fuzzing instrumentation flags.
FUZZ_SECONDS ?= 60
# FUZZ_RUNS, when set, also ends each target after that many executions.
FUZZ_RUNS ?=
FUZZ_TARGETS := connectwise_callback duo_response verify_link psa_webhooks
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS)) -rss_limit_mb=2048 \
			-timeout=10 > fuzz/$$t.log 2>&1 \
			|| { tail -40 fuzz/$$t.log; exit 1; }; \
		echo "$$t: $$(grep -E '^Done' fuzz/$$t.log)"; \
	done

clean:
	$(CARGO) clean
	rm -rf data end2end/node_modules
