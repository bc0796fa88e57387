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

# Go peers, pinned, built from the Go module proxy into interop/peers/bin:
# tusd (the reference tus server), SeaweedFS (`weed`: a distributed object
# store with an S3 gateway) and fake-gcs-server (Google Cloud Storage's
# JSON API with resumable uploads). A peer that cannot be built fails the run.
GO_PEERS_BIN="$INTEROP_PEERS/bin"
TUSD_PACKAGE="github.com/tus/tusd/v2/cmd/tusd"
TUSD_VERSION="v2.9.1"
FAKE_GCS_PACKAGE="github.com/fsouza/fake-gcs-server"
FAKE_GCS_VERSION="v1.56.1"
SEAWEEDFS_MODULE="github.com/seaweedfs/seaweedfs"
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"
# A cold build of SeaweedFS took 12 min on 2 busy cores; a build that takes
# 40 min is hung (on the module proxy, say), not slow.
GO_BUILD_TIMEOUT=2400

# Runs a command with its output in a log (go prints a line per module it
# downloads); on failure shows the log's tail and stops the run.
quietly() {
    local what=$1 log
    shift
    log="$(mktemp)"
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        die "$what failed"
    fi
    rm -f "$log"
}

# The main module's version recorded in a Go binary ("" if unreadable).
go_binary_version() {
    go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# `go install PACKAGE@VERSION` into $GO_PEERS_BIN unless NAME is there at
# that version.
ensure_go_install() {
    local name=$1 package=$2 version=$3
    local bin="$GO_PEERS_BIN/$name" started=$SECONDS
    if [[ -x "$bin" && "$(go_binary_version "$bin")" == "$version" ]]; then
        echo "$name: $version up to date"
        return
    fi
    echo "$name: go install $package@$version"
    rm -f "$bin"
    quietly "go install $package@$version" \
        timeout "$GO_BUILD_TIMEOUT" env GOBIN="$GO_PEERS_BIN" go install "$package@$version"
    [[ "$(go_binary_version "$bin")" == "$version" ]] \
        || die "$bin does not report version $version after go install"
    echo "$name: installed $version in $((SECONDS - started)) s"
}

# SeaweedFS's go.mod has replace directives, so `go install` refuses it:
# build it from the module's source instead (`go mod download` puts that in
# the module cache, read-only, so it is built from a writable copy). The
# binary records no version then; a stamp beside it does.
ensure_seaweedfs() {
    local bin="$GO_PEERS_BIN/weed" stamp="$GO_PEERS_BIN/weed.version"
    local started=$SECONDS
    if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$SEAWEEDFS_VERSION" ]]; then
        echo "weed (SeaweedFS): $SEAWEEDFS_VERSION up to date"
        return
    fi
    echo "weed (SeaweedFS): building $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION"
    rm -f "$bin" "$stamp"
    local source work
    source="$(timeout "$GO_BUILD_TIMEOUT" go mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" \
        || die "go mod download $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION failed"
    work="$(mktemp -d)"
    cp -r "$source" "$work/seaweedfs"
    chmod -R u+w "$work/seaweedfs"
    # -trimpath: the copy's path changes every time; without it no build
    # cache entry would be reused.
    quietly "go build of SeaweedFS $SEAWEEDFS_VERSION" \
        timeout "$GO_BUILD_TIMEOUT" go -C "$work/seaweedfs" build -trimpath -o "$bin" ./weed
    rm -rf "$work"
    echo "$SEAWEEDFS_VERSION" >"$stamp"
    echo "weed (SeaweedFS): built $SEAWEEDFS_VERSION in $((SECONDS - started)) s"
}

# In the foreground on purpose: overlapping a cold Go build with a cold cargo
# build saved nothing on 2 cores (2026-11-30: fake-gcs-server then
# chunkup-cli 223 + 270 = 493 s; both at once 507 s). Both are CPU-bound.
# Where Go's caches are warm, all three take about a minute from a fresh
# checkout.
ensure_go_peers() {
    have go || die "go is needed to build the Go interop peers (tusd, SeaweedFS, fake-gcs-server)"
    mkdir -p "$GO_PEERS_BIN"
    ensure_go_install tusd "$TUSD_PACKAGE" "$TUSD_VERSION"
    ensure_go_install fake-gcs-server "$FAKE_GCS_PACKAGE" "$FAKE_GCS_VERSION"
    ensure_seaweedfs
}

ensure_interop_peers() {
    section "interop peers (npm, PyPI, Go)"
    local started=$SECONDS
    ensure_npm_peers
    ensure_python_peers
    ensure_go_peers
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
    # The bindings' tests are served by the CLI test_rust built.
    CHUNKUP_BIN="$ROOT/target/debug/chunkup" bash scripts/ffi.sh
    test_wasm
    test_browser
    section "all checks passed in $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"
}

main "$@"
