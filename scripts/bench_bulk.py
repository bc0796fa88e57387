#!/usr/bin/env python3
"""Bulk benchmark: many small files, chunkup against tus-js-client.

Not a test. Builds the release CLI, writes N files of SIZE bytes (default
10,000 x 16 KiB) in nested directories, then for each round and client
starts a fresh `chunkup serve` (empty store, so earlier rounds cannot slow
the server's directory down) and uploads every file to its /tus endpoint
with the same parallelism:

  chunkup        chunkup upload DIR --to .../tus --protocol tus --parallel P
                 (defaults: one discovery, create then send, batch journal)
  chunkup-cwu    the same with --creation-with-upload (small files travel
                 in the creation request: one request per file)
  tus-js-client  a Node script: P workers, one tus.Upload per file
                 (POST then PATCH, tus-js-client's default)

Reports per client: files/s (median of rounds), CPU seconds (user + sys of
the client process, from wait4), peak RSS, and the server's CPU seconds
(from /proc). Before each run the script syncs and waits --settle seconds so
one run's writeback does not land on the next. Every run is checked: the server must hold exactly N complete
uploads, and a sample of them must hash to the source.

    scripts/bench_bulk.py                         # 10,000 x 16 KiB, -P 8, 3 rounds
    scripts/bench_bulk.py --files 2000 --rounds 1
    scripts/bench_bulk.py --rounds 1 --clients tus-js-client   # one client

On the 2-core machines every run after the first in one invocation is
slower for every client (the server's file system after a 200 MB run), so
compare clients on separate invocations (docs/BENCHMARKS.md does).

tus-js-client is taken from interop/peers/node_modules, else installed with
`npm install --prefix /tmp/bulkpeers tus-js-client@4`. Python 3 standard
library only.
"""

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "chunkup"
PEERS = [ROOT / "interop" / "peers" / "node_modules" / "tus-js-client",
         Path("/tmp/bulkpeers/node_modules/tus-js-client")]

# Never send loopback traffic through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

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


def child_env(home):
    """No proxies, no CHUNKUP_* settings, a private HOME."""
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and not k.startswith("CHUNKUP_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env[var] = str(home / var.lower())
    return env


def sample_hwm(pid, peak, done):
    """Keeps peak[0] at the highest VmHWM (KiB) seen for pid until done."""
    while not done.is_set():
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
                        break
        except OSError:
            pass
        done.wait(0.01)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chunkup-bulk-", dir=args.tmpdir))
        self.server = None
        self.sample = {}

    def cleanup(self):
        self.stop_server()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def build(self):
        print("==> cargo build --release -p chunkup-cli", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "chunkup-cli"], cwd=ROOT, check=True)

    def tus_js_client(self):
        for candidate in PEERS:
            if (candidate / "package.json").exists():
                return candidate
        print("==> npm install --prefix /tmp/bulkpeers tus-js-client@4", flush=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", "/tmp/bulkpeers", "tus-js-client@4"],
                       check=True)
        return PEERS[-1]

    def make_files(self):
        args = self.args
        self.data = self.tmp / "dataset"
        print(f"==> writing {args.files} files of {args.size} bytes under {self.data}", flush=True)
        rng = random.Random(1)
        sample = set(rng.sample(range(args.files), min(args.verify, args.files)))
        per_dir = 100
        for i in range(args.files):
            rel = f"d{i // per_dir:03}/f{i:05}.bin"
            path = self.data / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            data = os.urandom(args.size)
            path.write_bytes(data)
            if i in sample:
                self.sample[f"dataset/{rel}"] = hashlib.sha256(data).hexdigest()

    def start_server(self, name):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        store = self.tmp / f"store-{name}"
        shutil.rmtree(store, ignore_errors=True)
        log = open(self.tmp / "server.log", "ab")
        cmd = [str(BINARY), "serve", "--addr", f"127.0.0.1:{port}", "--admin", "--dir", str(store)]
        self.server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                       env=child_env(self.tmp / "home-server"))
        self.store = store
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                sys.exit(f"error: server exited with {self.server.returncode}")
            try:
                self.admin_get("/_admin/uploads")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        sys.exit("error: the server did not answer within 30 s")

    def stop_server(self):
        if self.server is not None and self.server.returncode is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
        self.server = None

    def admin_get(self, path):
        with _opener.open(self.base + path, timeout=300) as reply:
            return json.load(reply)

    def measure(self, cmd, env):
        """Runs cmd; returns (wall s, cpu s, peak RSS KiB) of that process."""
        with tempfile.TemporaryFile(dir=self.tmp) as out, tempfile.TemporaryFile(dir=self.tmp) as err:
            floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.monotonic()
            child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
            sampled = [0]
            done = threading.Event()
            sampler = threading.Thread(target=sample_hwm, args=(child.pid, sampled, done))
            sampler.start()
            try:
                _, status, usage = os.wait4(child.pid, 0)
            finally:
                done.set()
                sampler.join()
            wall = time.monotonic() - start
            child.returncode = code = os.waitstatus_to_exitcode(status)
            if code != 0:
                err.seek(0)
                raise RuntimeError(f"{' '.join(cmd)} exited with {code}:\n"
                                   + err.read().decode(errors="replace")[-2000:])
        # A child's ru_maxrss starts at this script's peak; below it, use VmHWM.
        peak = usage.ru_maxrss if usage.ru_maxrss > floor + 1024 else sampled[0]
        return wall, usage.ru_utime + usage.ru_stime, peak

    def verify(self, client):
        uploads = self.admin_get("/_admin/uploads")
        complete = {}
        for upload in uploads:
            if upload.get("complete"):
                name = upload.get("metadata", {}).get("relativePath", "")
                complete.setdefault(name, []).append(upload["id"])
        if len(complete) != self.args.files or any(len(v) != 1 for v in complete.values()):
            raise RuntimeError(f"{client}: {len(complete)} distinct complete files on the server "
                               f"({len(uploads)} uploads), expected {self.args.files} exactly once")
        for name, sha in self.sample.items():
            ids = complete.get(name)
            info = self.admin_get(f"/_admin/uploads/{ids[0]}") if ids else {}
            if info.get("sha256") != sha:
                raise RuntimeError(f"{client}: {name} differs on the server")

    def run(self, client, round_no, tus_js):
        args = self.args
        # Every run writes ~200 MB into the server's store: let the kernel
        # write the last run's (and the dataset's) dirty pages back first, or
        # the next run pays for them in the server's file system calls.
        os.sync()
        time.sleep(args.settle)
        self.start_server(f"{client}-{round_no}")
        endpoint = f"{self.base}/tus"
        env = child_env(self.tmp / f"home-{client}-{round_no}")
        if client.startswith("chunkup"):
            cmd = [str(BINARY), "upload", str(self.data), "--to", endpoint, "--protocol", "tus",
                   "--parallel", str(args.parallel), "--json",
                   "--state-dir", str(self.tmp / f"state-{client}-{round_no}")]
            if client == "chunkup-cwu":
                cmd.append("--creation-with-upload")
        else:
            script = self.tmp / "tus-bulk.cjs"
            script.write_text(NODE_SCRIPT)
            env["TUS_JS_CLIENT"] = str(tus_js)
            cmd = ["node", str(script), str(self.data), endpoint, str(args.parallel)]
        server_before = cpu_seconds(self.server.pid)
        wall, cpu, peak = self.measure(cmd, env)
        server_cpu = cpu_seconds(self.server.pid) - server_before
        self.verify(client)
        self.stop_server()
        shutil.rmtree(self.store, ignore_errors=True)
        result = {"files_per_s": args.files / wall, "wall": wall, "cpu": cpu,
                  "rss_mib": peak / 1024, "server_cpu": server_cpu}
        print(f"    {client:14} round {round_no}: {result['files_per_s']:7.0f} files/s, "
              f"{wall:6.2f} s wall, CPU {cpu:5.2f} s, peak RSS {peak / 1024:6.1f} MiB, "
              f"server CPU {server_cpu:5.2f} s", flush=True)
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=16 * 1024, help="bytes per file (default 16384)")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--verify", type=int, default=100, help="files whose sha256 is checked per run")
    parser.add_argument("--clients", default="chunkup,chunkup-cwu,tus-js-client")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to wait after sync before each run")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    bench = Bench(args)
    try:
        if not args.no_build:
            bench.build()
        tus_js = bench.tus_js_client()
        bench.make_files()
        clients = args.clients.split(",")
        results = {c: [] for c in clients}
        for round_no in range(1, args.rounds + 1):
            order = clients if round_no % 2 else list(reversed(clients))
            for client in order:
                results[client].append(bench.run(client, round_no, tus_js))
        base = statistics.median(r["files_per_s"] for r in results.get("tus-js-client", [])) \
            if results.get("tus-js-client") else None
        print()
        print(f"{args.files} files x {args.size} B, --parallel {args.parallel}, "
              f"{args.rounds} rounds (median), {os.cpu_count()} CPUs")
        print("| client | files/s | wall s | client CPU s | peak RSS MiB | server CPU s | vs tus-js-client |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for client, runs in results.items():
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            ratio = f"{med['files_per_s'] / base:.2f}x" if base else "-"
            print(f"| {client} | {med['files_per_s']:.0f} | {med['wall']:.2f} | {med['cpu']:.2f} | "
                  f"{med['rss_mib']:.1f} | {med['server_cpu']:.2f} | {ratio} |")
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
