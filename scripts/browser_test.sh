#!/usr/bin/env bash
# The web demo's tests in headless Chromium (web-demo/tests/*.test.mjs):
# uploads under injected faults, resume after a reload, cross-origin (CORS),
# pause/resume/stop/cancel, offline/online, localStorage full; and the npm
# package driven from a page: which upload a Blob or File is (identity), and
# stock @tus/server 2.4.5 (interop/peers) on another origin.
#
#   scripts/browser_test.sh              install what is missing, build, test
#   scripts/browser_test.sh reload       only the test files matching "reload"
#   WEB_DEMO_SCREENSHOT=docs/web-demo.png scripts/browser_test.sh faults
#                                        also refresh the committed screenshot
#
# Idempotent; on a bare machine it installs Debian's chromium (never a
# browser downloaded by playwright), playwright-core from
# web-demo/package-lock.json, the npm interop peers from
# interop/peers/package-lock.json, builds the npm package (scripts/wasm.sh)
# and the chunkup binary. Environment: CHROMIUM (default /usr/bin/chromium),
# WEB_DEMO_SCREENSHOT (default target/web-demo.png; 0: none),
# CHUNKUP_WASM_PKG (a package built elsewhere; skips scripts/wasm.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEMO="$ROOT/web-demo"

log() { printf 'browser_test.sh: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
command -v node >/dev/null && command -v npm >/dev/null || {
    log "node (20+) and npm are needed"
    exit 1
}

# Debian's chromium: playwright's own browser download does not work here.
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    log "installing chromium (apt)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

# playwright-core, pinned by the lock file; reinstalled only when it changed.
stamp="$DEMO/node_modules/.chunkup-installed"
if [ -f "$stamp" ] && cmp -s "$stamp" "$DEMO/package-lock.json"; then
    log "playwright-core: up to date"
else
    (cd "$DEMO" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
    cp "$DEMO/package-lock.json" "$stamp"
fi

# @tus/server for tus-peer.test.mjs; the same install (and stamp) as
# scripts/test.sh's interop peers.
PEERS="$ROOT/interop/peers"
peer_stamp="$PEERS/node_modules/.chunkup-installed"
if [ -f "$peer_stamp" ] && cmp -s "$peer_stamp" "$PEERS/package-lock.json"; then
    log "interop peers: up to date"
else
    (cd "$PEERS" && npm ci --no-audit --no-fund)
    cp "$PEERS/package-lock.json" "$peer_stamp"
fi

# The npm package the page imports (wasm.sh is incremental) and the server.
if [ -z "${CHUNKUP_WASM_PKG:-}" ]; then
    bash "$ROOT/scripts/wasm.sh"
fi
cargo build -p chunkup-cli

# One file at a time: each test runs its own server and browser, and the
# machine may have only two cores.
tests=("$DEMO"/tests/*.test.mjs)
if [ $# -gt 0 ]; then
    tests=()
    for pattern in "$@"; do
        tests+=("$DEMO"/tests/*"$pattern"*.test.mjs)
    done
fi
log "running ${#tests[@]} test file(s) in $CHROMIUM"
node --test --test-concurrency=1 --test-timeout=300000 "${tests[@]}"
