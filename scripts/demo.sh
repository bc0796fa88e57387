#!/usr/bin/env bash
# The main job: `chunkup demo` (embedded reference server with faults on,
# a generated file uploaded with live progress, sha256 checked).
# Extra arguments go to `chunkup demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo run --release -p chunkup-cli -- demo "$@"
