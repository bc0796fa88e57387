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

# --- checks -----------------------------------------------------------------

check_fmt() {
    section "cargo fmt --check"
    cargo fmt --all -- --check
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
    cargo test --workspace
}

main() {
    ensure_rust
    check_fmt
    check_clippy
    build_rust
    test_rust
    section "all checks passed"
}

main "$@"
