#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run).
#
# Works on a bare machine with rustup stable, Go, Java 17, Node 20 and
# Python 3.11; installs whatever else a step needs, and only when missing, so
# running it twice is safe. Each step is a function; add new ones (npm,
# chromium, kotlin for the bindings) the same way and call them from main.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

section() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- installs (idempotent: check first, install only what is missing) -------

ensure_rust() {
    section "toolchain"
    have cargo || die "cargo not found: install Rust with rustup (https://rustup.rs)"
    # rustfmt and clippy ship with the default rustup profile; add them if a
    # minimal profile left them out.
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        have rustup || die "rustfmt/clippy missing and rustup not found"
        rustup component add rustfmt clippy
    fi
    cargo --version
    cargo fmt --version
    cargo clippy --version
}

# Interop peers (interop/peers): servers and clients nobody here wrote, for
# the chunkup-interop tests. Each is installed only when missing or stale.
INTEROP_PEERS="$ROOT/interop/peers"
TUSD_MODULE="github.com/tus/tusd/v2/cmd/tusd@latest"

ensure_npm_peers() {
    have node && have npm || die "node and npm are needed for the interop peers"
    local stamp="$INTEROP_PEERS/node_modules/.chunkup-installed"
    if [[ -f "$INTEROP_PEERS/package-lock.json" ]]; then
        if [[ -f "$stamp" ]] && cmp -s "$stamp" "$INTEROP_PEERS/package-lock.json"; then
            echo "npm peers: up to date"
            return
        fi
        (cd "$INTEROP_PEERS" && npm ci --no-audit --no-fund)
    else
        (cd "$INTEROP_PEERS" && npm install --no-audit --no-fund)
    fi
    cp "$INTEROP_PEERS/package-lock.json" "$stamp"
}

ensure_python_peers() {
    have python3 || die "python3 is needed for the interop peers"
    local venv="$INTEROP_PEERS/.venv"
    local stamp="$venv/.chunkup-installed"
    if [[ -x "$venv/bin/python" && -f "$stamp" ]] \
        && cmp -s "$stamp" "$INTEROP_PEERS/requirements.txt"; then
        echo "python peers: up to date"
        return
    fi
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$INTEROP_PEERS/requirements.txt"
    cp "$INTEROP_PEERS/requirements.txt" "$stamp"
}

# tusd comes from the Go module proxy; where it cannot be had, the tusd tests
# are skipped (loudly) with the reason in CHUNKUP_TUSD_SKIP.
ensure_tusd() {
    if [[ -n "${CHUNKUP_TUSD:-}" && -x "${CHUNKUP_TUSD}" ]]; then
        echo "tusd: $CHUNKUP_TUSD (CHUNKUP_TUSD)"
        return
    fi
    if [[ -x "$INTEROP_PEERS/bin/tusd" ]]; then
        echo "tusd: $INTEROP_PEERS/bin/tusd"
        return
    fi
    local reason log
    if ! have go; then
        reason="go is not installed"
    else
        log="$(mktemp)"
        if GOBIN="$INTEROP_PEERS/bin" timeout 900 go install "$TUSD_MODULE" >"$log" 2>&1; then
            rm -f "$log"
            echo "tusd: installed $INTEROP_PEERS/bin/tusd"
            return
        fi
        reason="go install $TUSD_MODULE failed: $(grep -v '^\s*$' "$log" | tail -n 2 | tr '\n' ' ')"
        rm -f "$log"
    fi
    export CHUNKUP_TUSD_SKIP="$reason"
    echo "SKIPPED: tusd not installable: $reason"
}

ensure_interop_peers() {
    section "interop peers (npm, PyPI, tusd)"
    local started=$SECONDS
    ensure_npm_peers
    ensure_python_peers
    ensure_tusd
    echo "interop peers ready in $((SECONDS - started)) s"
}

# --- checks -----------------------------------------------------------------

check_fmt() {
    section "cargo fmt --check"
    cargo fmt --all -- --check
    # Workspaces of their own: the WASM bindings and the fuzz targets.
    cargo fmt --manifest-path bindings/wasm/Cargo.toml --all -- --check
    cargo fmt --manifest-path crates/chunkup-core/fuzz/Cargo.toml --all -- --check
}

check_clippy() {
    section "cargo clippy (warnings are errors)"
    cargo clippy --workspace --all-targets -- -D warnings
}

build_rust() {
    section "cargo build"
    cargo build --workspace --all-targets
}

test_rust() {
    section "cargo test"
    # The interop tests drive the `chunkup` binary.
    cargo build -p chunkup-cli
    cargo test --workspace
}

# The npm package: the web driver linted for wasm32, the package built
# (rustup's wasm target or Debian's rustc-web; wasm-bindgen, wasm-opt) and
# tested in Node 20 against `chunkup serve`.
test_wasm() {
    section "npm package chunkup (WASM): lint, build, Node tests"
    bash scripts/wasm.sh lint
    bash scripts/wasm.sh test
}

# The web demo over that package in Debian's headless Chromium.
test_browser() {
    section "web demo in headless Chromium"
    CHUNKUP_WASM_PKG="$ROOT/bindings/wasm/pkg" bash scripts/browser_test.sh
}

main() {
    local started=$SECONDS
    ensure_rust
    ensure_interop_peers
    check_fmt
    check_clippy
    build_rust
    test_rust
    bash scripts/ffi.sh
    test_wasm
    test_browser
    section "all checks passed in $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"
}

main "$@"
