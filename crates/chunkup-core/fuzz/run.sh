#!/usr/bin/env bash
# Runs fuzz targets one after another for SECONDS each (default 600),
# niced, one at a time. Needs cargo-fuzz; on stable rustc RUSTC_BOOTSTRAP=1
# stands in for nightly. Builds once (debug assertions and overflow checks
# on), then runs the binaries in fork mode so a finding is saved to
# artifacts/<target>/ and fuzzing goes on. Logs: logs/<target>.log.
#   crates/chunkup-core/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(upload_machine content_range last_known_byte offset_length upload_limit tus_headers location status_body)
fi
export RUSTC_BOOTSTRAP=1
# The code is safe Rust: AddressSanitizer adds cost and little else.
sanitizer="${FUZZ_SANITIZER:-none}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
mkdir -p logs
nice cargo fuzz build -a --sanitizer "$sanitizer"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t" "artifacts/$t"
  echo "== $t: ${seconds}s from $(date -u +%H:%M:%S)"
  # The regressions are extra seeds (read only: new inputs go to corpus/).
  nice "target/$triple/release/$t" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" "regressions/$t" \
    >"logs/$t.log" 2>&1 || echo "!! $t exited $?"
  tail -n 3 "logs/$t.log"
  ls "artifacts/$t"
done
echo "== done $(date -u +%H:%M:%S)"
