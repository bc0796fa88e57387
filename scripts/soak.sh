#!/usr/bin/env bash
# Chaos soak: N uploads (default 1000) of mixed sizes and protocols through
# the native client against reference servers injecting random faults and a
# failover pair that keeps crashing. Fails unless every upload completes with
# the exact bytes and no file became two uploads. See docs/RELIABILITY.md.
#   scripts/soak.sh [N] [SEED] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
export CHUNKUP_SOAK_UPLOADS="${1:-1000}"
export CHUNKUP_SOAK_SEED="${2:-1}"
export CHUNKUP_SOAK_CONCURRENCY="${3:-12}"
# The crashed servers' warnings are expected noise here.
export RUST_LOG="${RUST_LOG:-error}"
cargo test -p chunkup-e2e --test soak -- --nocapture
