# Veil: `make run`, `make test`, `make bench`.
# Every entry point runs scripts/bootstrap first (fast when nothing is missing).

CARGO ?= cargo

.PHONY: all bootstrap run test lint fmt build bench clean

all: test

bootstrap:
	scripts/bootstrap

run: bootstrap
	$(CARGO) run --release -p veil-cli --bin veil -- run

# Format check, lints, then every test. The end-to-end tests spawn the debug
# `veil` binary, so it is built before `cargo test`.
test: bootstrap
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build -p veil-cli
	$(CARGO) test --workspace

lint: bootstrap
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build: bootstrap
	$(CARGO) build -p veil-cli

# Veil against direct, Squid, Privoxy and tinyproxy on loopback; the table
# is printed and written to bench-out/latest.md.
bench: bootstrap
	$(CARGO) build --release -p veil-cli
	scripts/bench

clean:
	$(CARGO) clean
	rm -rf bench-out
