#!/usr/bin/env bash
# The UniFFI bindings, end to end, from one script:
#   1. build the cdylib (bindings/ffi) and the `chunkup` CLI (for `serve`);
#   2. generate the Kotlin, Swift and Python bindings into
#      bindings/ffi/generated/ (wiped first: the output is reproducible);
#   3. compile the Kotlin API (android/src/main, JVM-only files) and its JVM
#      tests with kotlinc, run them with JUnit + JNA;
#   4. run the Python tests (bindings/ffi/tests/test_ffi.py: uploads, and a
#      matrix of child processes that must exit normally after completion,
#      timeout, stop and SIGINT; CHUNKUP_EXIT_RUNS repetitions, default 10);
# 3 and 4 run against a `chunkup serve` on 127.0.0.1 with faults on, started
# and stopped here.
#
# Installs what it needs, only when missing (safe to run twice):
#   apt-get install -y libjna-java junit4            (if the jars are missing)
#   npm install kotlin-compiler@2.4.20 into bindings/ffi/.tools (gitignored)
# Swift is generated only: no Swift toolchain exists on these machines.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

KOTLIN_VERSION=2.4.20
FFI="$ROOT/bindings/ffi"
TOOLS="$FFI/.tools"
GEN="$FFI/generated"
BUILD="$FFI/.build"
KOTLINC_HOME="$TOOLS/node_modules/kotlin-compiler"
JAVA_LIBS=/usr/share/java
FAULTS="${CHUNKUP_FFI_FAULTS:-seed=11,reset=0.05,error=0.05,busy=0.03,retry-after=1}"

section() { printf '\n==> ffi: %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

ensure_tools() {
    section "tools"
    have java || die "java not found (Java 17 expected)"
    if [ ! -f "$JAVA_LIBS/jna.jar" ] || [ ! -f "$JAVA_LIBS/junit4.jar" ] \
        || [ ! -f "$JAVA_LIBS/hamcrest-core.jar" ]; then
        have apt-get || die "JNA/JUnit jars missing and no apt-get"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get install -y libjna-java junit4 \
            || { $sudo apt-get update && $sudo apt-get install -y libjna-java junit4; }
    fi
    if [ ! -x "$KOTLINC_HOME/bin/kotlinc" ] \
        || ! grep -q "\"version\": \"$KOTLIN_VERSION\"" "$KOTLINC_HOME/package.json"; then
        have npm || die "npm not found (needed for kotlin-compiler)"
        mkdir -p "$TOOLS"
        npm install --no-audit --no-fund --prefix "$TOOLS" "kotlin-compiler@$KOTLIN_VERSION"
    fi
    java -version 2>&1 | head -1
    echo "kotlinc $KOTLIN_VERSION at $KOTLINC_HOME"
}

build_native() {
    section "cargo build --release (chunkup-ffi, chunkup-cli)"
    cargo build --release -p chunkup-ffi -p chunkup-cli
}

generate() {
    section "generate Kotlin, Swift and Python bindings"
    rm -rf "$GEN"
    local lang
    for lang in kotlin python swift; do
        "$ROOT/target/release/uniffi-bindgen" generate "$ROOT/target/release/libchunkup_ffi.so" \
            -l "$lang" --no-format -o "$GEN/$lang"
    done
    # Python loads the library from beside its module.
    cp "$ROOT/target/release/libchunkup_ffi.so" "$GEN/python/"
    find "$GEN" -type f | sort
}

# Kotlin sources that run on a plain JVM: all but those that import the
# Android SDK (the WorkManager worker, the SharedPreferences store).
kotlin_main_sources() {
    find "$ROOT/android/src/main/kotlin" -name '*.kt' -print0 | sort -z \
        | xargs -0 grep -L -E '^import (android|androidx)\.'
}

kotlin_test() {
    section "Kotlin: compile (kotlinc) and run the JVM tests (JUnit + JNA)"
    local libs="$KOTLINC_HOME/lib"
    local cp="$JAVA_LIBS/jna.jar:$libs/kotlinx-coroutines-core-jvm.jar:$JAVA_LIBS/junit4.jar:$JAVA_LIBS/hamcrest-core.jar:$libs/kotlin-test.jar:$libs/kotlin-test-junit.jar"
    mkdir -p "$BUILD"
    local main_src test_src
    main_src="$(find "$GEN/kotlin" -name '*.kt' | sort; kotlin_main_sources)"
    test_src="$(find "$ROOT/android/src/test/kotlin" -name '*.kt' | sort)"
    # Recompile only when a source changed (kotlinc takes ~a minute here).
    local stamp
    stamp="$(cat $main_src $test_src | sha256sum | cut -c1-16)-$KOTLIN_VERSION"
    if [ "$(cat "$BUILD/kotlin.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$BUILD/chunkup-tests.jar" ]; then
        rm -f "$BUILD/chunkup.jar" "$BUILD/chunkup-tests.jar"
        # shellcheck disable=SC2086
        "$KOTLINC_HOME/bin/kotlinc" -nowarn -jvm-target 17 -cp "$cp" \
            $main_src -d "$BUILD/chunkup.jar"
        # shellcheck disable=SC2086
        "$KOTLINC_HOME/bin/kotlinc" -nowarn -jvm-target 17 -cp "$cp:$BUILD/chunkup.jar" \
            $test_src -d "$BUILD/chunkup-tests.jar"
        echo "$stamp" > "$BUILD/kotlin.stamp"
    else
        echo "Kotlin sources unchanged: reusing $BUILD/*.jar"
    fi
    # tusd (a peer for UrlConnectionTransport over tus) comes from
    # scripts/test.sh's interop peers.
    CHUNKUP_TEST_BASE="$BASE" CHUNKUP_TUSD="$ROOT/interop/peers/bin/tusd" \
        java -Djna.library.path="$ROOT/target/release" \
        -cp "$BUILD/chunkup-tests.jar:$BUILD/chunkup.jar:$cp:$libs/kotlin-stdlib.jar" \
        org.junit.runner.JUnitCore dev.chunkup.ChunkupJvmTest dev.chunkup.AndroidItemsJvmTest
}

python_test() {
    section "Python: tests and the exit matrix"
    CHUNKUP_TEST_BASE="$BASE" PYTHONPATH="$GEN/python" PYTHONDONTWRITEBYTECODE=1 \
        python3 "$FFI/tests/test_ffi.py" -v
}

SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
    [ -z "${DATA:-}" ] || rm -rf "$DATA"
}

start_server() {
    section "chunkup serve with faults: $FAULTS"
    DATA="$(mktemp -d)"
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    "$ROOT/target/release/chunkup" serve --addr "127.0.0.1:$port" --dir "$DATA/store" \
        --admin --faults "$FAULTS" > "$DATA/server.log" 2>&1 &
    SERVER_PID=$!
    BASE="http://127.0.0.1:$port"
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request as u; u.urlopen('$BASE/_admin/faults', timeout=1)" 2>/dev/null; then
            echo "listening at $BASE (pid $SERVER_PID)"
            return
        fi
        sleep 0.1
    done
    cat "$DATA/server.log" >&2
    die "chunkup serve did not start"
}

main() {
    local started=$SECONDS
    ensure_tools
    build_native
    generate
    trap stop_server EXIT
    start_server
    kotlin_test
    python_test
    stop_server
    section "bindings passed in $((SECONDS - started)) s (Swift generated only: no toolchain here)"
}

main "$@"
