"""Where the bytes of the npm package's wasm go; `scripts/wasm.sh sizes` runs it.

    python3 scripts/wasm_breakdown.py PACKAGE_WASM TWIGGY_CSV

PACKAGE_WASM is the published (stripped) module: its sections are read here.
TWIGGY_CSV is `twiggy top --format csv` of a copy optimised the same way but
with its name section kept (the build makes both): each function and data
segment is counted in the crate its demangled name starts with.
"""
import csv
import gzip
import re
import sys
from collections import defaultdict

package_wasm, twiggy_csv = sys.argv[1:3]


def sections(path):
    """Section sizes of a wasm binary, by section name."""
    data = open(path, "rb").read()
    names = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table",
             5: "memory", 6: "global", 7: "export", 8: "start", 9: "element",
             10: "code", 11: "data", 12: "datacount", 13: "tag"}
    pos, out = 8, defaultdict(int)
    while pos < len(data):
        kind = data[pos]
        pos += 1
        size = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        out[names.get(kind, str(kind))] += size
        pos += size
    return out


PRIMITIVES = {"bool", "char", "str", "f32", "f64", "i8", "i16", "i32", "i64", "i128",
              "isize", "u8", "u16", "u32", "u64", "u128", "usize", "T", "_"}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def crate_of(path):
    """The crate a demangled path starts with, or None for a primitive."""
    path = path.lstrip("<&*([ ")
    for prefix in ("mut ", "dyn ", "const "):
        if path.startswith(prefix):
            path = path[len(prefix):].lstrip("<&*([ ")
    match = IDENT.match(path)
    if not match:
        return None
    if match.group(0) in PRIMITIVES:
        # `<str>::trim`, `<u64>::_fmt`: inherent methods of primitives.
        return "core" if path[match.end():].startswith(">::") else None
    return match.group(0)


def bucket(name):
    """Which crate (or kind of item) a twiggy row belongs to."""
    if name.startswith("data segment"):
        return "[data: strings, tables, panic locations]"
    if name.startswith(("export ", "import ")):
        return "[%s names]" % name.split(" ")[0]
    if "::" not in name:
        if name.startswith(("code[", "elem[", "type[", "table[", "global[", "memory[")) or \
                name.startswith("\"") or name in ("init",):
            return "[other: types, tables, unnamed]"
        return "[wasm-bindgen shims]"
    # Drop glue belongs to the type it drops.
    drop = re.match(r"core(\[[0-9a-f]+\])?::ptr::drop_in_place::<(.*)>$", name)
    if drop:
        name = drop.group(2)
    # <T as Trait>::f: T's crate, or the trait's for a primitive T.
    if name.startswith("<") and " as " in name:
        self_type, _, trait = name[1:].partition(" as ")
        return crate_of(self_type) or crate_of(trait) or "[other]"
    return crate_of(name) or "[other]"


rows = []
with open(twiggy_csv, newline="") as f:
    for row in csv.DictReader(f):
        name = row["Name"]
        if name.endswith("subsection") or name.startswith("custom section"):
            continue  # the name section: only in the analysis build
        rows.append((name, int(row["ShallowSize"])))

by_bucket = defaultdict(int)
for name, size in rows:
    by_bucket[bucket(name)] += size
analysed = sum(by_bucket.values())

package = sections(package_wasm)
total = sum(package.values())
print()
print("wasm sections of %s (bytes):" % package_wasm.rsplit("/", 1)[-1])
print("  " + ", ".join("%s %d" % (k, v) for k, v in sorted(package.items(), key=lambda kv: -kv[1]) if v))
print()
print("by crate (twiggy, shallow bytes of an unstripped copy: %d of the package's %d;" % (analysed, total))
print("generic code counted in the crate that defines it, drop glue in the type's crate):")
print("  %-44s %8s %6s" % ("crate", "bytes", "share"))
for name, size in sorted(by_bucket.items(), key=lambda kv: -kv[1]):
    if size * 1000 >= analysed * 2:  # at least 0.2 %
        print("  %-44s %8d %5.1f%%" % (name, size, 100.0 * size / analysed))
small = [(n, s) for n, s in by_bucket.items() if s * 1000 < analysed * 2]
if small:
    print("  %-44s %8d %5.1f%%" % ("(%d more, each < 0.2%%)" % len(small),
                                    sum(s for _, s in small), 100.0 * sum(s for _, s in small) / analysed))
std_modules = defaultdict(int)
for name, size in rows:
    if bucket(name) in ("core", "alloc", "std"):
        path = re.sub(r"\[[0-9a-f]{8,}\]", "", name).lstrip("<&")
        if " as " in path.split("::")[0] + "::":
            path = path.split(" as ", 1)[1]  # <f64 as core::fmt::Display>: core::fmt
        primitive = re.match(r"(\w+)>::", path)
        if primitive:
            path = "core::" + primitive.group(1)  # <str>::trim: core::str
        std_modules["::".join(path.split("::")[:2]).rstrip(">")] += size
print()
print("the standard library by module:")
print("  " + ", ".join("%s %d" % kv for kv in sorted(std_modules.items(), key=lambda kv: -kv[1])[:12]))
print()
print("largest functions:")
for name, size in sorted(rows, key=lambda r: -r[1])[:15]:
    short = re.sub(r"\[[0-9a-f]{8,}\]", "", name)
    print("  %7d  %s" % (size, short[:110]))
