#!/usr/bin/env bash
# FFI overhead: the same file uploaded by the native CLI and through the
# UniFFI bindings (Python), to one `chunkup serve` on loopback, no faults,
# adaptive chunks, no resume store. Client wall time, CPU (user + sys) and
# peak RSS from GNU time. Run scripts/ffi.sh first (it builds and generates).
#   bash bindings/ffi/bench/ffi_vs_cli.sh [SIZE_MIB=1024] [ROUNDS=3]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
SIZE_MIB="${1:-1024}"
ROUNDS="${2:-3}"
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
EP="http://127.0.0.1:$PORT/ranged"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/src.bin"
"$ROOT/target/release/chunkup" serve --addr "127.0.0.1:$PORT" --dir "$WORK/store" --faults none \
    > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 1
echo "$SIZE_MIB MiB, $ROUNDS rounds, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$ROUNDS"); do
    /usr/bin/time -f "native wall=%es user=%Us sys=%Ss rss=%MKB" \
        "$ROOT/target/release/chunkup" upload "$WORK/src.bin" --to "$EP" --no-resume --json > /dev/null
    rm -rf "$WORK/store"/*
    PYTHONPATH="$ROOT/bindings/ffi/generated/python" \
        /usr/bin/time -f "ffi-python wall=%es user=%Us sys=%Ss rss=%MKB" \
        python3 "$ROOT/bindings/ffi/bench/ffi_upload.py" "$WORK/src.bin" "$EP"
    rm -rf "$WORK/store"/*
done
