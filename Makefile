# Veil: `make run`, `make test`, `make bench`.
# Every entry point runs scripts/bootstrap first (fast when nothing is missing).

CARGO ?= cargo

.PHONY: all bootstrap run run-cli ui test lint fmt build bench app-metrics bindings icons clean \
	package cross-check wine-test fuzz soak

all: test

bootstrap:
	scripts/bootstrap

# The window's files (ui/dist), built into the app binary.
ui: bootstrap
	cd ui && npm run build

# The desktop app: the engine, the window and the tray.
run: ui
	$(CARGO) run --release -p veil-app

# The engine without a window.
run-cli: bootstrap
	$(CARGO) run --release -p veil-cli --bin veil -- run

# Format check, the UI's type check and tests, lints, then every Rust test.
# The end-to-end tests spawn the debug `veil` and `veil-app` binaries, so they
# are built before `cargo test`; the GUI tests drive `veil-app` under Xvfb.
# Then Windows and macOS: the checks, and the Windows tests under Wine.
test: ui
	$(CARGO) fmt --all -- --check
	cd ui && npm run check && npm test
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build -p veil-cli -p veil-app
	scripts/package --debug
	$(CARGO) test --workspace
	scripts/fuzz smoke
	scripts/cross check
	scripts/cross wine-test

# Windows and macOS from this machine (scripts/cross; README, "Windows and
# macOS from this machine"): clippy with warnings as errors for
# x86_64-pc-windows-gnu, aarch64-apple-darwin and x86_64-apple-darwin.
cross-check:
	scripts/cross check

# The engine's, system crate's and CLI's unit tests built for Windows and run
# under Wine, then Linux curl through veil.exe under Wine.
wine-test:
	scripts/cross wine-test

lint: bootstrap
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build: ui
	$(CARGO) build -p veil-cli -p veil-app

# The Debian package (release): the app, `veil` in /usr/bin, a desktop entry
# and icons, built by the Tauri bundler; the path is printed last.
package: ui
	scripts/package

# Writes ui/src/bindings.ts from the Rust types (a test fails when it drifts).
bindings:
	VEIL_UPDATE_BINDINGS=1 $(CARGO) test -p veil-app --lib bindings

# Regenerates every icon from icons/veil.svg.
icons: bootstrap
	scripts/icons

# Veil against direct, Squid, Privoxy and tinyproxy on loopback; the table
# is printed and written to bench-out/latest.md. Then the cache's memory
# bound: a stream of cacheable responses with 256 KiB of headers (not
# stored) and with 60 KiB (stored), peak RSS against memory_mb + 32 MiB.
bench: bootstrap
	$(CARGO) build --release -p veil-cli
	scripts/bench
	scripts/cache-memory
	HEADER_KIB=60 scripts/cache-memory

# The desktop app's release size, start-up times and idle memory (with
# WebKit's processes), measured under Xvfb in a private session.
app-metrics: ui
	$(CARGO) build --release -p veil-app
	scripts/app-metrics

# Every fuzz target (fuzz/, cargo-fuzz) for FUZZ_SECONDS (600) each; `make
# test` runs each for 25 s. cargo-fuzz needs nightly flags: they run on the
# stable toolchain with RUSTC_BOOTSTRAP=1 (scripts/fuzz). Crashes land in
# fuzz/artifacts/ and fail the run.
fuzz: bootstrap
	scripts/fuzz run

# The soak: 10,000 idle tunnels, an upstream killed mid-download, the cache
# on a full disk, SOAK_MINUTES (30) of mixed traffic; loopback only, stops
# by itself. The table is printed and written to soak-out/latest.md.
soak: bootstrap
	$(CARGO) build --release -p veil-cli
	scripts/soak

clean:
	$(CARGO) clean
	rm -rf bench-out soak-out ui/dist
