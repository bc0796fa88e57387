#!/usr/bin/env python3
"""Bulk benchmark: many small files, chunkup against tus-js-client, and where
the time goes.

Not a test. Builds the release CLI, installs what is missing (tusd v2.9.1,
tus-js-client), writes N files of SIZE bytes (default 2,000 x 16 KiB) in
nested directories, then for each round and client starts a fresh server
(empty store) and uploads every file to it with the same parallelism:

  chunkup        chunkup upload DIR --to EP --protocol tus --parallel P --json
                 (one discovery, then per file a creation POST and one PATCH,
                 every state change in the batch journal)
  chunkup-cwu    the same with --creation-with-upload (each file travels in
                 its creation request: one request per file)
  tus-js-client  a Node script: P workers, one tus.Upload per file (POST,
                 then PATCH, tus-js-client's default)

Servers (--server): tusd v2.9.1 (default, endpoint /files/) or chunkup serve
(/tus). Per run: files/s, the client's CPU (user + sys from wait4) and peak
RSS, the server's CPU (/proc), and from them where the time goes: each
process's share of the machine's cores over the run, CPU per file, and the
time each of the P request slots spends per request (wall x P / requests).
When client + server CPU fill the cores, the run is CPU-bound and the split
says whose; when they do not, the rest is waiting on round trips.

Every run is checked: the server holds exactly N complete uploads, one per
file (by `relativePath`), and a sample of them hash to the source.

    scripts/bench_bulk.py                                  # tusd, 2,000 x 16 KiB, -P 8, 3 rounds
    scripts/bench_bulk.py --server chunkup --files 10000 --rounds 1
    scripts/bench_bulk.py --clients chunkup,tus-js-client --chunkup-bin target/release/chunkup

Python 3 standard library only (scripts/benchlib.py).
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchlib as lib

CLIENTS = ["chunkup", "chunkup-cwu", "tus-js-client"]
# Requests per file once the upload is under way (the one OPTIONS of a
# chunkup batch aside).
REQUESTS_PER_FILE = {"chunkup": 2, "chunkup-cwu": 1, "tus-js-client": 2}

NODE_SCRIPT = r"""
// Uploads every file under DIR with tus-js-client, PARALLEL at a time.
const path = require('node:path');
const fs = require('node:fs');
const tus = require(process.env.TUS_JS_CLIENT);
const [dir, endpoint, parallelText] = process.argv.slice(2);
const parallel = Number(parallelText);
function* walk(d) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) yield* walk(p); else if (e.isFile()) yield p;
  }
}
const files = walk(dir);
let done = 0, failed = 0;
function uploadOne(file) {
  return new Promise((resolve) => {
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint,
      uploadSize: fs.statSync(file).size,
      chunkSize: Infinity,
      retryDelays: [0, 200, 1000, 3000],
      metadata: { filename: path.basename(file), relativePath: path.relative(path.dirname(dir), file) },
      onError: (e) => { failed++; console.error(String(e)); resolve(); },
      onSuccess: () => { done++; resolve(); },
    });
    upload.start();
  });
}
async function worker() {
  for (;;) { const next = files.next(); if (next.done) return; await uploadOne(next.value); }
}
Promise.all(Array.from({ length: parallel }, worker)).then(() => {
  console.log(JSON.stringify({ done, failed }));
  process.exit(failed ? 1 : 0);
});
"""


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chunkup-bulk-", dir=args.tmpdir))
        self.server = None
        self.sample = {}

    def cleanup(self):
        self.stop_server()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def setup(self):
        args = self.args
        self.binary = lib.build_release(args.chunkup_bin)
        if args.server == "tusd":
            self.tusd = lib.ensure_tusd()
        if "tus-js-client" in args.clients:
            lib.ensure_node_peers()
        self.make_files()

    def make_files(self):
        args = self.args
        self.data = self.tmp / "dataset"
        print(f"==> writing {args.files} files of {args.size} bytes under {self.data}", flush=True)
        rng = random.Random(1)
        sample = set(rng.sample(range(args.files), min(args.verify, args.files)))
        for i in range(args.files):
            rel = f"d{i // 100:03}/f{i:05}.bin"
            path = self.data / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            data = os.urandom(args.size)
            path.write_bytes(data)
            if i in sample:
                self.sample[f"dataset/{rel}"] = hashlib.sha256(data).hexdigest()

    # -- servers -----------------------------------------------------------

    def start_server(self, tag):
        self.store = self.tmp / f"store-{tag}"
        if self.args.server == "tusd":
            self.server = lib.start_tusd(self.tusd, self.store, self.tmp)
            self.endpoint = self.server.endpoint
        else:
            self.server = lib.start_chunkup_serve(self.binary, self.store, self.tmp)
            self.endpoint = self.server.base + "/tus"

    def stop_server(self):
        if self.server is not None:
            self.server.stop()
            self.server = None

    def stored_uploads(self):
        """{relativePath: [(complete, sha256 or None)]} as the server holds them."""
        found = {}
        if self.args.server == "tusd":
            for info_path in self.store.glob("*.info"):
                info = json.loads(info_path.read_text())
                data = info_path.with_suffix("")
                complete = data.exists() and data.stat().st_size == info.get("Size")
                name = (info.get("MetaData") or {}).get("relativePath", "")
                sha = lib.sha256_file(data) if complete and name in self.sample else None
                found.setdefault(name, []).append((complete, sha))
            return found
        _, _, body = lib.request("GET", f"{self.server.base}/_admin/uploads")
        for upload in json.loads(body):
            name = upload.get("metadata", {}).get("relativePath", "")
            sha = None
            if upload.get("complete") and name in self.sample:
                _, _, one = lib.request("GET", f"{self.server.base}/_admin/uploads/{upload['id']}")
                sha = json.loads(one).get("sha256")
            found.setdefault(name, []).append((bool(upload.get("complete")), sha))
        return found

    def verify(self, client):
        found = self.stored_uploads()
        complete = {name: v for name, v in found.items() if any(c for c, _ in v)}
        extra = sum(len(v) for v in found.values()) - len(found)
        if len(complete) != self.args.files or extra:
            raise RuntimeError(f"{client}: {len(complete)} distinct complete files on the server "
                               f"({extra} duplicates), expected {self.args.files} exactly once")
        for name, sha in self.sample.items():
            if not any(s == sha for _, s in complete.get(name, [])):
                raise RuntimeError(f"{client}: {name} differs on the server")

    # -- one run -----------------------------------------------------------

    def run(self, client, round_no, tus_js):
        args = self.args
        # Every run writes the files' bytes into the server's store: let the
        # kernel write the last run's dirty pages back first, or the next run
        # pays for them in the server's file-system calls.
        os.sync()
        time.sleep(args.settle)
        tag = f"{client}-{round_no}"
        self.start_server(tag)
        env = lib.child_env(self.tmp / f"home-{tag}")
        if client.startswith("chunkup"):
            cmd = [str(self.binary), "upload", str(self.data), "--to", self.endpoint, "--protocol", "tus",
                   "--parallel", str(args.parallel), "--json", "--state-dir", str(self.tmp / f"state-{tag}")]
            if client == "chunkup-cwu":
                cmd.append("--creation-with-upload")
        else:
            script = self.tmp / "tus-bulk.cjs"
            script.write_text(NODE_SCRIPT)
            env["TUS_JS_CLIENT"] = str(tus_js)
            cmd = ["node", str(script), str(self.data), self.endpoint, str(args.parallel)]
        server_before = self.server.cpu()
        wall, cpu, peak = lib.measure(cmd, env, tmp=self.tmp)
        server_cpu = self.server.cpu() - server_before
        self.verify(client)
        self.stop_server()
        shutil.rmtree(self.store, ignore_errors=True)
        cores = os.cpu_count() or 1
        requests = args.files * REQUESTS_PER_FILE[client]
        result = {
            "files_per_s": args.files / wall, "wall": wall, "cpu": cpu, "rss_mib": peak / 1024,
            "server_cpu": server_cpu,
            "client_share": cpu / wall / cores, "server_share": server_cpu / wall / cores,
            "client_ms_per_file": 1000 * cpu / args.files,
            "server_ms_per_file": 1000 * server_cpu / args.files,
            "slot_ms_per_request": 1000 * wall * args.parallel / requests,
        }
        print(f"    {client:14} round {round_no}: {result['files_per_s']:6.0f} files/s, {wall:6.2f} s wall, "
              f"client CPU {cpu:5.2f} s ({result['client_share']:4.0%} of {cores} cores), "
              f"server CPU {server_cpu:5.2f} s ({result['server_share']:4.0%}), "
              f"peak RSS {peak / 1024:5.1f} MiB, {result['slot_ms_per_request']:.2f} ms per request slot",
              flush=True)
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--server", choices=["tusd", "chunkup"], default="tusd")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=16 * 1024, help="bytes per file (default 16384)")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--verify", type=int, default=100, help="files whose sha256 is checked per run")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait after sync before each run")
    parser.add_argument("--chunkup-bin", help="use this chunkup binary instead of building the release one")
    parser.add_argument("--markdown", help="also write the summary table to this file")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = [c for c in args.clients if c not in CLIENTS]
    if unknown:
        parser.error(f"unknown client(s): {', '.join(unknown)}")

    print(f"==> {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {lib.machine()}, chunkup {lib.git_commit()}")
    bench = Bench(args)
    try:
        bench.setup()
        tus_js = lib.PEERS / "node_modules" / "tus-js-client"
        results = {c: [] for c in args.clients}
        for round_no in range(1, args.rounds + 1):
            # Alternate the order: later runs in one invocation meet a busier disk.
            order = args.clients if round_no % 2 else list(reversed(args.clients))
            for client in order:
                results[client].append(bench.run(client, round_no, tus_js))
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()

    base = statistics.median(r["files_per_s"] for r in results["tus-js-client"]) \
        if results.get("tus-js-client") else None
    server = f"tusd {lib.TUSD_VERSION}" if args.server == "tusd" else "chunkup serve"
    lines = ["", f"{args.files} files x {args.size} B to {server}, --parallel {args.parallel}, "
             f"{args.rounds} rounds (medians), {os.cpu_count()} cores", "",
             "| client | files/s | vs tus-js-client | wall s | client CPU s | server CPU s | client share "
             "of cores | server share | client CPU ms/file | server CPU ms/file | ms per request slot "
             "| peak RSS MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for client, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        ratio = f"{med['files_per_s'] / base:.2f}x" if base else "-"
        lines.append(f"| {client} | {med['files_per_s']:.0f} | {ratio} | {med['wall']:.2f} | {med['cpu']:.2f} "
                     f"| {med['server_cpu']:.2f} | {med['client_share']:.0%} | {med['server_share']:.0%} "
                     f"| {med['client_ms_per_file']:.2f} | {med['server_ms_per_file']:.2f} "
                     f"| {med['slot_ms_per_request']:.2f} | {max(r['rss_mib'] for r in runs):.1f} |")
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
