#!/usr/bin/env bash
# Builds the npm package `chunkup` (Rust -> wasm32 -> wasm-bindgen -> wasm-opt)
# into bindings/wasm/pkg/, and with `test` runs its Node tests.
#
#   scripts/wasm.sh          build bindings/wasm/pkg and print its sizes
#   scripts/wasm.sh test     build, then run bindings/wasm/tests (node --test; Node 20
#                            and, for object storage, headless Chromium)
#   scripts/wasm.sh sizes    print the sizes of an existing build and where its
#                            bytes go (sections, crates, largest functions: twiggy)
#   scripts/wasm.sh lint     clippy -D warnings on the web driver and the bindings (wasm32);
#                            fails when js/generated/api.d.ts (the TypeScript types
#                            generated from crates/chunkup-api) is stale
#   scripts/wasm.sh bundler  build, then bundle an app with webpack 5 and upload from
#                            it in headless Chromium (Debian chromium, playwright-core)
#
# Idempotent; installs what it needs. Uses rustup's wasm32-unknown-unknown
# target when it is installed, else Debian's rustc-web with std built from
# source (-Zbuild-std). No wasm-pack: the package is assembled here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE="${1:-build}"
WASM_DIR="$ROOT/bindings/wasm"
PKG="$WASM_DIR/pkg"
TOOLS="$WASM_DIR/.tools"          # gitignored: binaryen (wasm-opt) from npm
BINARYEN_VERSION="132.0.0"
TWIGGY_VERSION="0.8.0"            # code size profiler, cargo-installed into $TOOLS/cargo
ESBUILD_VERSION="0.28.2"          # minifies the package's JS (npm, into $TOOLS)
TARGET=wasm32-unknown-unknown
PROFILE=wasm-release
export CARGO_TARGET_DIR="${CHUNKUP_WASM_TARGET_DIR:-$ROOT/target-wasm}"
GEN="$CARGO_TARGET_DIR/chunkup-pkg"  # wasm-bindgen's output and the analysis copy

log() { printf 'wasm.sh: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

sizes() {
    local files=("$PKG/chunkup_wasm_bg.wasm" "$PKG/chunkup_wasm.js" "$PKG/index.js")
    local raw_total=0 gz_total=0
    printf '%-28s %10s %10s\n' "file" "raw" "gzip -9"
    for f in "${files[@]}"; do
        local raw gz
        raw=$(wc -c <"$f")
        gz=$(gzip -9 -c "$f" | wc -c)
        raw_total=$((raw_total + raw))
        gz_total=$((gz_total + gz))
        printf '%-28s %10d %10d\n' "$(basename "$f")" "$raw" "$gz"
    done
    printf '%-28s %10d %10d  (%d KiB gzipped; goal <= 60 KB, issue #15)\n' \
        "total (wasm + JS)" "$raw_total" "$gz_total" $((gz_total / 1024))
    breakdown
}

# Where the wasm's bytes go: twiggy over the copy that kept its names.
breakdown() {
    local named="$GEN/chunkup_wasm_bg.names.wasm"
    if ! [ -f "$named" ]; then
        log "no ${named#"$ROOT"/}: build first for the per-crate breakdown"
        return 0
    fi
    local twiggy="$TOOLS/cargo/bin/twiggy"
    if ! "$twiggy" --version 2>/dev/null | grep -qx "twiggy-opt $TWIGGY_VERSION"; then
        if [ "$MODE" != sizes ]; then
            # Builds (and CI) do not wait for a cargo install of twiggy.
            log "scripts/wasm.sh sizes installs twiggy and prints where the bytes go"
            return 0
        fi
        log "installing twiggy $TWIGGY_VERSION into $TOOLS/cargo"
        env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_DIR \
            cargo install --locked --force --root "$TOOLS/cargo" twiggy --version "$TWIGGY_VERSION"
    fi
    "$twiggy" top -n 1000000 --format csv "$named" >"$GEN/twiggy.csv"
    python3 "$ROOT/scripts/wasm_breakdown.py" "$PKG/chunkup_wasm_bg.wasm" "$GEN/twiggy.csv"
}

if [ "$MODE" = sizes ]; then
    sizes
    exit 0
fi

# --- the Rust toolchain for wasm32 -------------------------------------------
CARGO_BUILD=()
SIZE_RUSTFLAGS=""
if command -v rustup >/dev/null 2>&1 &&
    rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    log "using rustup's $TARGET target"
    CARGO_BUILD=(cargo build)
    CARGO_CLIPPY=(cargo clippy)
else
    log "no rustup $TARGET target: Debian rustc-web with -Zbuild-std"
    # rust-web-llvm (a Recommends of rustc-web) brings /usr/bin/rust-lld.
    DEBS=(rustc-web cargo-web rust-web-src rust-web-llvm)
    if ! dpkg-query -W -f='${Status}\n' "${DEBS[@]}" 2>/dev/null |
        grep -c 'install ok installed' | grep -qx "${#DEBS[@]}"; then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${DEBS[@]}"
    fi
    # rust-web-llvm's /usr/bin/rust-lld links to lld-NN, a package of its own
    # that nothing pulls in: install it when the link dangles.
    if [ -L /usr/bin/rust-lld ] && ! [ -e /usr/bin/rust-lld ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(basename "$(readlink /usr/bin/rust-lld)")" ||
            log "could not install $(readlink /usr/bin/rust-lld); looking for rustup's rust-lld"
    fi
    # The linker: Debian's rust-lld, else one from a rustup toolchain.
    LINKER="$(command -v rust-lld || true)"
    if [ -z "$LINKER" ] && [ -d "$HOME/.rustup" ]; then
        LINKER="$(find "$HOME/.rustup" -name rust-lld -type f 2>/dev/null | sort | head -n1)"
    fi
    if [ -z "$LINKER" ]; then
        log "no rust-lld found (expected /usr/bin/rust-lld from rust-web-llvm)"
        exit 1
    fi
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$LINKER"
    # std's `optimize_for_size`: its smaller variants of sorting, integer
    # formatting and float parsing (the same results).
    CARGO_BUILD=(/usr/bin/cargo build -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size)
    # Size settings that need std built from source (unstable, hence only on
    # this path; docs/BENCHMARKS.md "npm package size" has their measures):
    # a panic traps at once, with no message formatted and no hook run (the
    # engine's errors are typed values: a panic is a bug either way), no
    # file/line strings are kept for panic locations, and `{:?}` prints
    # nothing (no message quotes with it: they use `Quoted`).
    SIZE_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none"
    CARGO_CLIPPY=(/usr/bin/cargo-clippy clippy -Zbuild-std=std,panic_abort -Zbuild-std-features=)
    if [ "$MODE" = lint ] && ! [ -x /usr/bin/cargo-clippy ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rust-web-clippy
    fi
fi

if [ "$MODE" = lint ]; then
    # The driver is linted from the main workspace, the bindings from theirs.
    "${CARGO_CLIPPY[@]}" -p chunkup --no-default-features --features web --target "$TARGET" -- -D warnings
    "${CARGO_CLIPPY[@]}" --manifest-path "$WASM_DIR/Cargo.toml" --target "$TARGET" -- -D warnings
    log "clippy: clean"
    # The package's shared TypeScript types are generated from chunkup-api
    # (ts-rs, its `typescript` feature): the test fails when the file in the
    # tree is not what the declarations generate. Native, host toolchain.
    env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_DIR \
        cargo clippy -q -p chunkup-api --features typescript --all-targets -- -D warnings
    env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_DIR \
        cargo test -q -p chunkup-api --features typescript --test typescript
    log "generated TypeScript (bindings/wasm/js/generated/api.d.ts): current"
    exit 0
fi

# --- wasm-bindgen-cli, exactly the version in Cargo.lock ---------------------
# bindings/wasm is a workspace of its own (see its Cargo.toml): its lockfile.
MANIFEST="$WASM_DIR/Cargo.toml"
LOCK="$WASM_DIR/Cargo.lock"
if ! [ -f "$LOCK" ]; then
    cp "$ROOT/Cargo.lock" "$LOCK" # start from the native versions; cargo prunes it
fi
BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$LOCK")"
if [ -z "$BINDGEN_VERSION" ]; then
    log "wasm-bindgen is not in Cargo.lock"; exit 1
fi
BINDGEN="$(command -v wasm-bindgen || echo "$HOME/.cargo/bin/wasm-bindgen")"
if ! "$BINDGEN" --version 2>/dev/null | grep -qx "wasm-bindgen $BINDGEN_VERSION"; then
    log "installing wasm-bindgen-cli $BINDGEN_VERSION"
    # With the host's own toolchain (not the RUSTC override above); --force:
    # cargo's own record may name a binary that is gone or another version.
    env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_DIR \
        cargo install --force wasm-bindgen-cli --version "$BINDGEN_VERSION"
    BINDGEN="$HOME/.cargo/bin/wasm-bindgen"
fi

# --- wasm-opt from npm's binaryen ---------------------------------------------
WASM_OPT="$TOOLS/node_modules/.bin/wasm-opt"
if ! [ -x "$WASM_OPT" ] || ! "$WASM_OPT" --version 2>/dev/null | grep -q "version ${BINARYEN_VERSION%%.*}"; then
    log "installing binaryen $BINARYEN_VERSION (wasm-opt) into $TOOLS"
    mkdir -p "$TOOLS"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS" "binaryen@$BINARYEN_VERSION" >/dev/null
fi

# --- build ----------------------------------------------------------------------
# Panic locations name source files: no home directory or checkout path in the
# published wasm.
# Only this build gets them: the server built for the tests is native.
WASM_RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}/registry/src=/cargo --remap-path-prefix=$ROOT=/chunkup $SIZE_RUSTFLAGS"
log "cargo build (bindings/wasm) --profile $PROFILE --target $TARGET"
RUSTFLAGS="$WASM_RUSTFLAGS" "${CARGO_BUILD[@]}" --manifest-path "$MANIFEST" --profile "$PROFILE" --target "$TARGET"
RAW="$CARGO_TARGET_DIR/$TARGET/$PROFILE/chunkup_wasm.wasm"

rm -rf "$GEN"
"$BINDGEN" "$RAW" --target web --out-dir "$GEN" --out-name chunkup_wasm
# The features rustc 1.96 enables for wasm32 (wasm-opt must accept them).
WASM_FEATURES=(--enable-bulk-memory --enable-reference-types --enable-nontrapping-float-to-int
    --enable-sign-ext --enable-mutable-globals --enable-multivalue)
# -Oz until nothing changes; the low 1 KiB of memory is never used (rustc's
# stack starts at 1 MiB and grows down, data lies above it).
OPT_FLAGS=(-Oz --converge --low-memory-unused)
"$WASM_OPT" "${OPT_FLAGS[@]}" --strip-debug --strip-producers "${WASM_FEATURES[@]}" \
    "$GEN/chunkup_wasm_bg.wasm" -o "$GEN/chunkup_wasm_bg.opt.wasm"
# The same optimisation keeping the function names, for `sizes` (twiggy).
"$WASM_OPT" "${OPT_FLAGS[@]}" -g --strip-producers "${WASM_FEATURES[@]}" \
    "$GEN/chunkup_wasm_bg.wasm" -o "$GEN/chunkup_wasm_bg.names.wasm"

# --- esbuild from npm, to minify the package's JS ---------------------------------
ESBUILD="$TOOLS/node_modules/.bin/esbuild"
if ! [ -x "$ESBUILD" ] || [ "$("$ESBUILD" --version 2>/dev/null)" != "$ESBUILD_VERSION" ]; then
    log "installing esbuild $ESBUILD_VERSION into $TOOLS"
    mkdir -p "$TOOLS"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS" "esbuild@$ESBUILD_VERSION" >/dev/null
fi

# --- assemble the package -------------------------------------------------------
rm -rf "$PKG"
mkdir -p "$PKG"
cp "$GEN/chunkup_wasm_bg.opt.wasm" "$PKG/chunkup_wasm_bg.wasm"
# The JS minified (what a bundler's minifier would do; names of exports and
# of the wasm's imports are kept): -3.2 KB gzipped. The readable sources are
# bindings/wasm/js/index.js and wasm-bindgen's output in $GEN.
"$ESBUILD" "$GEN/chunkup_wasm.js" --minify --log-level=warning --outfile="$PKG/chunkup_wasm.js"
"$ESBUILD" "$WASM_DIR/js/index.js" --minify --log-level=warning --outfile="$PKG/index.js"
cp "$WASM_DIR/js/index.d.ts" "$PKG/"
mkdir -p "$PKG/generated" # the types generated from crates/chunkup-api, which index.d.ts imports
cp "$WASM_DIR/js/generated/api.d.ts" "$PKG/generated/"
cp "$WASM_DIR/README.md" "$PKG/README.md"
VERSION="$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)"
sed "s/\"version\": \"0.0.0\"/\"version\": \"$VERSION\"/" "$WASM_DIR/js/package.json" >"$PKG/package.json"
log "package assembled in ${PKG#"$ROOT"/}"
sizes

if [ "$MODE" = test ]; then
    log "building the reference server (chunkup serve) for the tests"
    env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_DIR \
        cargo build -q -p chunkup-cli --bin chunkup
    # An IndexedDB in JavaScript, to test the store's fallback under Node.
    # and TypeScript, to compile a consumer against the declarations.
    if ! [ -f "$TOOLS/node_modules/fake-indexeddb/package.json" ] ||
        ! [ -f "$TOOLS/node_modules/typescript/package.json" ]; then
        npm install --silent --no-audit --no-fund --prefix "$TOOLS" \
            "fake-indexeddb@6.2.8" "typescript@5.9.3" >/dev/null
    fi
    # playwright-core and Debian's chromium, for the object-storage test in
    # Chromium (SeaweedFS and its signing backend come from scripts/test.sh's
    # interop peers).
    if ! [ -f "$TOOLS/node_modules/playwright-core/package.json" ]; then
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
            --prefix "$TOOLS" playwright-core@1.65.1 >/dev/null
    fi
    if ! [ -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    fi
    export PLAYWRIGHT_CORE="$TOOLS/node_modules/playwright-core/index.mjs"
    export CHUNKUP_BIN="$ROOT/target/debug/chunkup" CHUNKUP_PKG="$PKG" CHUNKUP_TEST_TOOLS="$TOOLS"
    node --test --test-reporter=spec "$WASM_DIR/tests/"
fi

if [ "$MODE" = bundler ]; then
    if ! [ -f "$TOOLS/node_modules/webpack-cli/package.json" ]; then
        npm install --silent --no-audit --no-fund --prefix "$TOOLS" webpack@5.112.2 webpack-cli@7.3.1 >/dev/null
    fi
    PW="$ROOT/web-demo/node_modules/playwright-core/index.mjs" # the web demo's pinned copy
    if ! [ -f "$PW" ]; then
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
            --prefix "$TOOLS" playwright-core@1.65.1 >/dev/null
        PW="$TOOLS/node_modules/playwright-core/index.mjs"
    fi
    if ! [ -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    fi
    env -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP -u CARGO_TARGET_DIR \
        cargo build -q -p chunkup-cli --bin chunkup
    CHUNKUP_BIN="$ROOT/target/debug/chunkup" CHUNKUP_PKG="$PKG" CHUNKUP_TEST_TOOLS="$TOOLS" \
        PLAYWRIGHT_CORE="$PW" node "$WASM_DIR/tests/bundler/check.mjs"
fi
