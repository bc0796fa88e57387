#!/usr/bin/env bash
# The UniFFI bindings, end to end, from one script:
#   1. build the `chunkup` Python wheel with maturin (bindings/python): the
#      one release build of the cdylib (bindings/ffi). Kotlin and the
#      generated layer load the very library the wheel ships;
#   2. generate the Kotlin, Swift and Python bindings into
#      bindings/ffi/generated/ (wiped first: the output is reproducible) with
#      `uniffi-bindgen` (bindings/ffi/bindgen, a debug build maturin made);
#   3. compile the Kotlin API (android/src/main, JVM-only files) and its JVM
#      tests with kotlinc, run them with JUnit + JNA (every
#      android/src/test/kotlin/**/*JvmTest.kt);
#   4. install the wheel into a fresh venv and run the Python tests against
#      the installed package, from outside the source tree
#      (bindings/python/tests: the Pythonic API, hooks against a
#      token-checking proxy and a scripted S3 server, the generated layer,
#      and a matrix of child processes that must exit normally after
#      completion, timeout, stop and SIGINT; CHUNKUP_EXIT_RUNS repetitions,
#      default 10);
# 3 and 4 run against a `chunkup serve` on 127.0.0.1 with faults on, started
# and stopped here.
#
# Installs what it needs, only when missing (safe to run twice):
#   apt-get install -y libjna-java junit4            (if the jars are missing)
#   npm install kotlin-compiler@2.4.20 into bindings/ffi/.tools (gitignored)
#   pip install maturin==1.16.0 into bindings/ffi/.tools/venv (gitignored)
# Swift is generated only: no Swift toolchain exists on these machines.
# CHUNKUP_BIN=/path/to/chunkup serves the tests with an already built CLI
# (scripts/test.sh passes its debug build; otherwise one is built here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

KOTLIN_VERSION=2.4.20
MATURIN_VERSION=1.16.0
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
    if ! "$TOOLS/venv/bin/maturin" --version 2>/dev/null | grep -qx "maturin $MATURIN_VERSION"; then
        python3 -m venv "$TOOLS/venv"
        "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "maturin==$MATURIN_VERSION"
    fi
    java -version 2>&1 | head -1
    echo "kotlinc $KOTLIN_VERSION at $KOTLINC_HOME"
    "$TOOLS/venv/bin/maturin" --version
}

# The `chunkup` binary whose `serve` the tests run against: built here,
# unless CHUNKUP_BIN names one already built (another checkout's).
CHUNKUP_BIN="${CHUNKUP_BIN:-}"

build_server() {
    if [ -z "$CHUNKUP_BIN" ]; then
        section "cargo build (chunkup-cli, for chunkup serve)"
        cargo build -p chunkup-cli
        CHUNKUP_BIN="$ROOT/target/debug/chunkup"
    fi
}

# The release cdylib, as the wheel ships it.
NATIVE="$BUILD/native"

python_wheel() {
    section "Python: build the chunkup wheel (maturin: the release build of chunkup-ffi)"
    rm -rf "$BUILD/wheels" "$NATIVE"
    (cd "$ROOT/bindings/python" && "$TOOLS/venv/bin/maturin" build --release --quiet -o "$BUILD/wheels")
    local wheel
    wheel="$(find "$BUILD/wheels" -name 'chunkup-*.whl' | head -1)"
    [ -n "$wheel" ] || die "maturin built no wheel"
    WHEEL="$wheel"
    mkdir -p "$NATIVE"
    python3 - "$wheel" "$NATIVE" <<'PY'
import sys, zipfile, os
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    libs = [n for n in z.namelist() if os.path.basename(n) == "libchunkup_ffi.so"]
    if len(libs) != 1:
        sys.exit(f"expected one libchunkup_ffi.so in {wheel}, found {libs}")
    with z.open(libs[0]) as src, open(os.path.join(out, "libchunkup_ffi.so"), "wb") as dst:
        dst.write(src.read())
PY
    echo "built $(basename "$wheel")"
}

generate() {
    section "generate Kotlin, Swift and Python bindings"
    # Built as maturin's `cargo run --bin uniffi-bindgen` built it (the same
    # package selection, so the same features): nothing to do after maturin.
    cargo build --bin uniffi-bindgen
    rm -rf "$GEN"
    local lang
    for lang in kotlin python swift; do
        "$ROOT/target/debug/uniffi-bindgen" generate "$NATIVE/libchunkup_ffi.so" \
            -l "$lang" --no-format -o "$GEN/$lang"
    done
    # Python loads the library from beside its module.
    cp "$NATIVE/libchunkup_ffi.so" "$GEN/python/"
    find "$GEN" -type f | sort
}

# Kotlin sources that run on a plain JVM: all but those that import the
# Android SDK (the WorkManager worker, the SharedPreferences store).
kotlin_main_sources() {
    find "$ROOT/android/src/main/kotlin" -name '*.kt' -print0 | sort -z \
        | xargs -0 grep -L -E '^import (android|androidx)\.'
}

# dev.chunkup.FooJvmTest for each android/src/test/kotlin/**/FooJvmTest.kt
# (each declares `package dev.chunkup`).
kotlin_test_classes() {
    find "$ROOT/android/src/test/kotlin" -name '*JvmTest.kt' -printf 'dev.chunkup.%f\n' \
        | sed 's/\.kt$//' | sort
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
    # HooksJvmTest starts the Python servers of bindings/python/tests (a
    # token-checking proxy, a scripted S3 server); tusd (a peer for
    # UrlConnectionTransport over tus) comes from scripts/test.sh's interop
    # peers.
    CHUNKUP_TEST_BASE="$BASE" CHUNKUP_PY_TESTS="$ROOT/bindings/python/tests" \
        CHUNKUP_TUSD="$ROOT/interop/peers/bin/tusd" \
        java -Djna.library.path="$NATIVE" \
        -cp "$BUILD/chunkup-tests.jar:$BUILD/chunkup.jar:$cp:$libs/kotlin-stdlib.jar" \
        org.junit.runner.JUnitCore $(kotlin_test_classes)
}

python_install() {
    section "Python: install the wheel into a fresh venv"
    rm -rf "$BUILD/venv"
    python3 -m venv "$BUILD/venv"
    "$BUILD/venv/bin/pip" install --quiet --disable-pip-version-check --no-index "$WHEEL"
    echo "installed $(basename "$WHEEL")"
}

python_test() {
    section "Python: tests against the installed wheel, and the exit matrix"
    # From a scratch directory, so `import chunkup` can only find the
    # installed package, never bindings/python/python.
    local scratch
    scratch="$(mktemp -d)"
    (cd "$scratch" && CHUNKUP_TEST_BASE="$BASE" PYTHONDONTWRITEBYTECODE=1 "$BUILD/venv/bin/python" -c \
        'import chunkup, sys; assert "site-packages" in chunkup.__file__, chunkup.__file__; print("chunkup", chunkup.__version__, "from", chunkup.__file__)')
    local status=0
    (cd "$scratch" && CHUNKUP_TEST_BASE="$BASE" PYTHONDONTWRITEBYTECODE=1 \
        "$BUILD/venv/bin/python" -m unittest discover -v -s "$ROOT/bindings/python/tests" -p 'test_*.py') \
        || status=$?
    rm -rf "$scratch"
    return "$status"
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
    "$CHUNKUP_BIN" serve --addr "127.0.0.1:$port" --dir "$DATA/store" \
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
    build_server
    python_wheel
    generate
    python_install
    trap stop_server EXIT
    start_server
    kotlin_test
    python_test
    stop_server
    section "bindings passed in $((SECONDS - started)) s (Swift generated only: no toolchain here)"
}

main "$@"
