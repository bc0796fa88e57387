#!/usr/bin/env python3
"""Link-profile benchmark matrix: adaptive chunk sizing vs fixed sizes vs tus-js-client.

Not a test. Starts `chunkup serve` (tus endpoint) and, for every cell, a
fresh `chunkup link` with the cell's profile and the round's seed in front of
it, so every client of a round meets the same link: the same reset points on
the link's upload byte stream, the same stall times from the link's start.
Profiles (crates/chunkup-server/src/link.rs):

  fast     loopback, no limit
  slow     10 Mbit/s, 80 ms round trip
  lossy    40 Mbit/s, 40 ms, a reset every ~10 MB uploaded (exponential)
  hostile  5 Mbit/s, 200 ms (+-20 ms jitter), a reset every ~1 MB, a 10 s stall
           after every ~8 s of link time (exponential)
  hostile+checksum  the hostile link, chunkup with --checksum (tus checksum: the
           server keeps nothing of a broken PATCH, so a break costs the chunk)

Servers (--server): `keeps` (the default `chunkup serve`: a PATCH cut by a
reset keeps every byte that arrived, as the tus spec asks) and `atomic`
(`chunkup serve --atomic-appends`: a request whose body breaks off stores
nothing, like servers that buffer or verify whole chunks); `both` runs every
profile against each, in the same rounds.

Clients (all tus 1.0.0 against the same server):

  adaptive       chunkup upload FILE --to EP --protocol tus --json --no-resume
  fixed-256KiB   the same with --chunk-size 256KiB (and 2MiB, 16MiB)
  tus-js-client  tus-js-client 4.x in Node with its defaults: chunkSize Infinity
                 (one PATCH), retryDelays [0, 1000, 3000, 5000] (reset after
                 progress)

Rounds interleave everything: each round runs every profile, and the order of
the clients rotates from round to round. A cell that does not finish within
its profile's time box is killed and reported as DNF with how far it got.

Per cell: completion time (wall time of the client process), bytes re-sent as
the server counts them (bytes_received - size, /_admin/uploads), upload bytes
the link carried beyond the file (link up - size: re-sent bytes plus HTTP
headers, including bytes the server dropped at a reset), resets and stalls
the link injected, and the ratio of the time to the ideal (size / bandwidth).
Writes a table (stdout and --markdown), JSON and CSV of every cell and a PNG
plot (matplotlib in scripts/.venv, installed on first use).

    scripts/bench_matrix.py                     # 2 rounds, default sizes
    scripts/bench_matrix.py --rounds 3 --profiles hostile,lossy
    scripts/bench_matrix.py --server both --profiles fast,slow,lossy,hostile

Needs tus-js-client under interop/peers/node_modules (scripts/test.sh, or
`cd interop/peers && npm ci`) and builds the release CLI.
"""

import argparse
import csv
import hashlib
import json
import os
import re
import resource
import shutil
import signal
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
PEERS = ROOT / "interop" / "peers"
VENV = ROOT / "scripts" / ".venv"
BINARY = ROOT / "target" / "release" / "chunkup"
MIB = 1024 * 1024
PROFILES = {
    # name: (upload bandwidth bytes/s or None, default file size, time box s)
    "fast": (None, 512 * MIB, 120),
    "slow": (1_250_000, 16 * MIB, 120),
    "lossy": (5_000_000, 32 * MIB, 150),
    "hostile": (625_000, 8 * MIB, 240),
    # The hostile link with tus checksums on: the server keeps nothing of a
    # broken checksummed PATCH, so a break costs the chunk (tus-js-client
    # has no checksums and sits this one out).
    "hostile+checksum": (625_000, 8 * MIB, 120),
}
# Time boxes against the all-or-nothing server, where a too-big chunk may
# never get through: long enough for the best fixed size several times over.
ATOMIC_BOX = {"lossy": 60, "hostile": 120, "hostile+checksum": 120}
SERVERS = {"keeps": [], "atomic": ["--atomic-appends"]}
FIXED = ["fixed-256KiB", "fixed-2MiB", "fixed-16MiB"]
CLIENTS = ["adaptive", *FIXED, "tus-js-client"]
# Clients not run by default: any fixed-SIZE, and adaptive-baseline (the
# adaptive sizer of another build, --baseline-bin: A/B on the same links).
EXTRA_CLIENTS = ["adaptive-baseline"]


def fixed_size(client):
    """The --chunk-size of a fixed-SIZE client (fixed-64MiB -> 64MiB), else None."""
    match = re.fullmatch(r"fixed-(\d+(?:KiB|MiB|GiB))", client)
    return match.group(1) if match else None
TUS_JS = r"""
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
const require = createRequire(process.env.PEERS_PACKAGE)
const tus = require('tus-js-client')
const [endpoint, file] = process.argv.slice(2)
const size = fs.statSync(file).size
let best = 0
const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  metadata: { filename: path.basename(file) },
  onProgress(sent) { best = Math.max(best, sent) },
  onError(error) {
    console.log(JSON.stringify({ error: String(error), upload_url: upload.url, sent: best }))
    process.exit(1)
  },
  onSuccess() { console.log(JSON.stringify({ upload_url: upload.url, size })) },
})
upload.start()
"""

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(method, url, headers=None, timeout=60):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def child_env(home):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("CHUNKUP_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env[var] = str(home / var.lower())
    env["PEERS_PACKAGE"] = str(PEERS / "package.json")
    return env


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Link:
    """One `chunkup link` process; counts the events it prints."""

    def __init__(self, binary, upstream, profile, seed, env, log):
        self.proc = subprocess.Popen(
            [str(binary), "link", "--upstream", upstream, "--profile", profile, "--seed", str(seed), "--events"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env)
        line = self.proc.stdout.readline().decode()
        match = re.match(r"listening on (http://\S+)", line)
        if not match:
            stop(self.proc)
            raise RuntimeError(f"chunkup link did not start: {line!r}")
        self.url = match.group(1)
        self.lock = threading.Lock()
        self.up = self.resets = self.stalls = self.open = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            with self.lock:
                kind = event.get("event")
                if kind == "opened":
                    self.open += 1
                elif kind == "closed":
                    self.open -= 1
                    self.up += event["up"]
                elif kind == "reset":
                    self.resets += 1
                elif kind == "stall":
                    self.stalls += 1

    def totals(self, settle=3.0):
        """Waits (a little) for the client's connections to close."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with self.lock:
                if self.open <= 0:
                    break
            time.sleep(0.05)
        with self.lock:
            return self.up, self.resets, self.stalls

    def close(self):
        stop(self.proc)


class Matrix:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chunkup-bench-matrix-", dir=args.tmpdir))
        self.servers = {}
        self.files = {}

    def cleanup(self):
        for server in self.servers.values():
            stop(server["proc"])
        shutil.rmtree(self.tmp, ignore_errors=True)

    def build(self):
        if self.args.chunkup_bin:
            self.binary = Path(self.args.chunkup_bin)
            return
        print("==> cargo build --release -p chunkup-cli", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "chunkup-cli"], cwd=ROOT, check=True)
        self.binary = BINARY

    def make_file(self, size):
        if size in self.files:
            return self.files[size]
        path = self.tmp / f"payload-{size}.bin"
        digest = hashlib.sha256()
        with open(path, "wb") as out:
            left = size
            while left:
                data = os.urandom(min(MIB, left))
                digest.update(data)
                out.write(data)
                left -= len(data)
        self.files[size] = (path, digest.hexdigest())
        return self.files[size]

    def start_server(self, mode):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(self.tmp / f"serve-{mode}.log", "ab")
        proc = subprocess.Popen(
            [str(self.binary), "serve", "--addr", f"127.0.0.1:{port}", "--admin", "--dir", str(self.tmp / f"store-{mode}"),
             *SERVERS[mode]],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=child_env(self.tmp / f"home-serve-{mode}"))
        self.servers[mode] = {"proc": proc, "base": base, "upstream": f"127.0.0.1:{port}"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if request("GET", f"{base}/_admin/uploads", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"error: chunkup serve ({mode}) did not start (see serve-{mode}.log)")

    def uploads(self):
        status, body = request("GET", f"{self.base}/_admin/uploads")
        if status != 200:
            raise RuntimeError(f"/_admin/uploads answered {status}")
        return {u["id"]: u for u in json.loads(body)}

    def command(self, client, endpoint, path, checksum=False):
        if client == "tus-js-client":
            script = self.tmp / "tus-js-matrix.mjs"
            if not script.exists():
                script.write_text(TUS_JS)
            return ["node", str(script), endpoint, str(path)]
        binary = self.args.baseline_bin if client == "adaptive-baseline" else self.binary
        cmd = [str(binary), "upload", str(path), "--to", endpoint, "--protocol", "tus",
               "--json", "--no-resume"]
        if fixed_size(client):
            cmd += ["--chunk-size", fixed_size(client)]
        if checksum:
            cmd.append("--checksum")
        return cmd

    def cell(self, round_no, mode, profile, client, seed):
        self.base, self.upstream = self.servers[mode]["base"], self.servers[mode]["upstream"]
        rate, size, box = PROFILES[profile]
        size = self.args.size.get(profile, size)
        if mode == "atomic":
            box = ATOMIC_BOX.get(profile, box)
        box = self.args.time_box or box
        path, sha = self.make_file(size)
        tag = f"r{round_no}-{mode}-{profile}-{client}"
        env = child_env(self.tmp / f"home-{tag}")
        before = set(self.uploads())
        link_profile, _, variant = profile.partition("+")
        with open(self.tmp / f"link-{tag}.log", "wb") as link_log:
            link = Link(self.binary, self.upstream, link_profile, seed, env, link_log)
            try:
                out_path = self.tmp / f"{tag}.out"
                with open(out_path, "wb") as out, open(self.tmp / f"{tag}.err", "wb") as err:
                    # CPU of the client alone: the only child reaped in between.
                    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
                    started = time.monotonic()
                    proc = subprocess.Popen(self.command(client, f"{link.url}/tus", path, variant == "checksum"),
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
                    try:
                        code = proc.wait(timeout=box)
                        finished = code == 0
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                        code, finished = None, False
                    wall = time.monotonic() - started
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
                link_up, resets, stalls = link.totals()
            finally:
                link.close()
        new = [u for i, u in self.uploads().items() if i not in before]
        stored = max((u.get("stored", 0) for u in new), default=0)
        received = sum(u.get("bytes_received", 0) for u in new)
        complete = [u for u in new if u.get("complete")]
        ok = False
        if finished and len(complete) == 1:
            status, body = request("GET", f"{self.base}/_admin/uploads/{complete[0]['id']}")
            ok = status == 200 and json.loads(body).get("sha256") == sha
            if not ok:
                raise RuntimeError(f"{tag}: stored bytes differ from the source")
        for upload in new:
            request("DELETE", f"{self.base}/tus/{upload['id']}", {"Tus-Resumable": "1.0.0"})
        result = {
            "round": round_no, "server": mode, "profile": profile, "client": client, "seed": seed, "size": size,
            "finished": bool(finished and ok), "exit": code, "seconds": round(wall, 3), "cpu": round(cpu, 3),
            "load": round(os.getloadavg()[0], 2),
            "time_box": box, "stored": stored, "uploads_created": len(new),
            "server_resent": received - size if finished else received - stored,
            "link_extra": link_up - size, "resets": resets, "stalls": stalls,
            "ideal": round(size / rate, 3) if rate else None,
        }
        result["ratio_ideal"] = round(wall / result["ideal"], 3) if rate and result["finished"] else None
        return result

    def run(self):
        if "tus-js-client" in self.args.clients and not (PEERS / "node_modules" / "tus-js-client").exists():
            sys.exit("error: tus-js-client missing: run `cd interop/peers && npm ci` (or scripts/test.sh)")
        self.build()
        for mode in self.args.servers:
            self.start_server(mode)
        print(f"==> {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load {os.getloadavg()[0]:.2f}, "
              f"servers {', '.join(self.args.servers)}, {self.args.rounds} round(s)", flush=True)
        results = []
        clients = self.args.clients
        for round_no in range(1, self.args.rounds + 1):
            seed = self.args.seed + round_no - 1
            shift = (round_no - 1) % len(clients)
            order = clients[shift:] + clients[:shift]
            for mode, profile in self.panels():
                for client in order:
                    if client == "tus-js-client" and profile.endswith("+checksum"):
                        continue
                    r = self.cell(round_no, mode, profile, client, seed)
                    results.append(r)
                    state = "ok " if r["finished"] else f"DNF (stored {r['stored'] / MIB:.1f} MiB)"
                    print(f"  round {round_no} {mode:6} {profile:8} {client:14} {r['seconds']:8.2f} s "
                          f"cpu {r['cpu']:5.2f} s {state} "
                          f"resets {r['resets']:3} stalls {r['stalls']} server re-sent "
                          f"{r['server_resent'] / MIB:6.2f} MiB link extra {r['link_extra'] / MIB:6.2f} MiB",
                          flush=True)
                    self.save(results)
        self.report(results)

    def panels(self, results=None):
        """(server, profile) pairs in run order; with results, those present."""
        pairs = [(m, p) for m in self.args.servers for p in self.args.profiles]
        if results is not None:
            seen = {(r.get("server", "keeps"), r["profile"]) for r in results}
            pairs = [pair for pair in pairs if pair in seen]
        return pairs

    @staticmethod
    def label(mode, profile):
        return profile if mode == "keeps" else f"{profile} ({mode})"

    def save(self, results):
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
        with open(out.with_suffix(".csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(results[0]))
            writer.writeheader()
            writer.writerows(results)

    def summary(self, results):
        rows = []
        for mode, profile in self.panels(results):
            cells = {c: [r for r in results if r.get("server", "keeps") == mode and r["profile"] == profile
                         and r["client"] == c]
                     for c in self.args.clients}
            medians = {c: statistics.median(r["seconds"] for r in rs)
                       for c, rs in cells.items() if rs and all(r["finished"] for r in rs)}
            fixed = [medians[c] for c in self.args.clients if fixed_size(c) and c in medians]
            best_fixed = min(fixed) if fixed else None
            # Per round (same seed, same link): the client's time over the
            # best fixed size's time in that round -- a paired comparison.
            by_round = {}
            for c, rs in cells.items():
                for r in rs:
                    by_round.setdefault(r["round"], {})[c] = r
            best_name = min((c for c in self.args.clients if fixed_size(c) and c in medians),
                            key=medians.get, default=None)
            for client, rs in cells.items():
                if not rs:
                    continue
                done = [r for r in rs if r["finished"]]
                paired = [r["seconds"] / by_round[r["round"]][best_name]["seconds"] for r in rs
                          if best_name and r["finished"] and by_round[r["round"]].get(best_name, {}).get("finished")]
                rows.append({
                    "server": mode, "profile": profile, "label": self.label(mode, profile), "client": client, "runs": len(rs), "finished": len(done),
                    "size_mib": rs[0]["size"] / MIB,
                    "median_s": medians.get(client),
                    "times": [r["seconds"] if r["finished"] else None for r in rs],
                    "resent_mib": statistics.median(r["server_resent"] for r in rs) / MIB,
                    "link_extra_mib": statistics.median(r["link_extra"] for r in rs) / MIB,
                    "resets": statistics.median(r["resets"] for r in rs),
                    "ideal_s": rs[0]["ideal"],
                    "vs_best_fixed": medians[client] / best_fixed if client in medians and best_fixed else None,
                    "best_fixed": best_name,
                    "paired": paired,
                    "cpu_s": statistics.median(r.get("cpu", 0.0) for r in rs),
                    "stored_mib": min(r["stored"] for r in rs) / MIB,
                    "time_box": rs[0]["time_box"],
                    # Runs that ended before the time box without finishing (the client gave up).
                    "gave_up": sum(1 for r in rs if not r["finished"] and r["exit"] is not None),
                })
        return rows

    def report(self, results):
        rows = self.summary(results)
        md = ["| server | profile | client | file MiB | finished | time s (median) | runs s | ratio to ideal | vs best fixed "
              "| per round vs best fixed | client CPU s | server re-sent MiB | link extra MiB | resets |",
              "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for r in rows:
            if r["median_s"] is not None:
                med = f"{r['median_s']:.2f}"
            elif r["gave_up"] == r["runs"]:
                med = "DNF (gave up)"
            else:
                med = f"DNF (> {r['time_box']:g} s)"
            runs = ", ".join(f"{t:.1f}" if t is not None else "DNF" for t in r["times"])
            ratio = f"{r['median_s'] / r['ideal_s']:.2f}" if r["ideal_s"] and r["median_s"] else "n/a"
            vs = f"{r['vs_best_fixed']:.2f}x" if r["vs_best_fixed"] else "n/a"
            paired = ", ".join(f"{x:.2f}" for x in r["paired"]) or "n/a"
            md.append(f"| {r['server']} | {r['profile']} | {r['client']} | {r['size_mib']:.0f} | {r['finished']}/{r['runs']} "
                      f"| {med} | {runs} | {ratio} | {vs} | {paired} | {r['cpu_s']:.2f} | {r['resent_mib']:.2f} "
                      f"| {r['link_extra_mib']:.2f} | {r['resets']:g} |")
        print()
        print("\n".join(md))
        if self.args.markdown:
            Path(self.args.markdown).write_text("\n".join(md) + "\n")
        self.goal(rows)
        if not self.args.no_plot:
            self.plot(rows)

    def goal(self, rows):
        """The issue's goal: adaptive within 5% of the best fixed size on every
        profile, every fixed size at least 20% worse than the best on some
        profile -- over the issue's four profiles, then with the extras."""
        print()
        for mode in self.args.servers:
            mine = [r for r in rows if r["server"] == mode]
            for profile in self.args.profiles:
                a = next((r for r in mine if r["profile"] == profile and r["client"] == "adaptive"), None)
                if a is None:
                    continue
                if a["vs_best_fixed"] is None:
                    print(f"goal {mode} {profile}: adaptive did not finish every run (MISSED)")
                    continue
                verdict = "met" if a["vs_best_fixed"] <= 1.05 else "MISSED"
                paired = ", ".join(f"{x:.2f}" for x in a["paired"])
                print(f"goal {mode} {profile}: adaptive {a['vs_best_fixed']:.3f}x the best fixed size "
                      f"({a['best_fixed']}; within 5%: {verdict}); per round {paired}")
            issue = [p for p in self.args.profiles if "+" not in p]
            for label, profiles in (("issue profiles", issue), ("all profiles", self.args.profiles)):
                if label == "all profiles" and profiles == issue:
                    continue
                for client in [c for c in self.args.clients if fixed_size(c)]:
                    ratios = [(r["vs_best_fixed"] or float("inf"), r["profile"]) for r in mine
                              if r["client"] == client and r["profile"] in profiles]
                    if ratios:
                        worst, where = max(ratios)
                        verdict = "met" if worst >= 1.2 else "MISSED"
                        print(f"goal {mode} {client} ({label}): worst {worst:.3f}x the best fixed, on {where} "
                              f"(at least 20% worse somewhere: {verdict})")

    def plot(self, rows):
        python = VENV / "bin" / "python"
        if not python.exists():
            print("==> creating scripts/.venv with matplotlib", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        probe = subprocess.run([str(python), "-c", "import matplotlib"], capture_output=True)
        if probe.returncode != 0:
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
        data = self.tmp / "plot.json"
        data.write_text(json.dumps({"rows": rows, "profiles": [self.label(*p) for p in self.panels(rows)],
                                    "clients": self.args.clients}))
        code = r"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
spec = json.load(open(sys.argv[1]))
rows, profiles, clients = spec["rows"], spec["profiles"], spec["clients"]
columns = min(len(profiles), 4)
lines = -(-len(profiles) // columns)
fig, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 3.4 * lines), squeeze=False)
axes = [ax for line in axes for ax in line]
for ax in axes[len(profiles):]:
    ax.set_visible(False)
palette = dict(zip(["adaptive", "adaptive-baseline", "fixed-256KiB", "fixed-2MiB", "fixed-16MiB", "tus-js-client"],
                   ["#1b9e77", "#a6cee3", "#7570b3", "#e7298a", "#66a61e", "#d95f02"]))
for ax, profile in zip(axes, profiles):
    by = {r["client"]: r for r in rows if r["label"] == profile}
    names, values, hatch, colors = [], [], [], []
    for c in clients:
        r = by.get(c)
        if r is None:
            continue
        names.append(c.replace("fixed-", "").replace("tus-js-client", "tus-js").replace("adaptive-baseline", "adaptive (before)"))
        colors.append(palette.get(c, "grey"))
        ref = r["ideal_s"]
        if r["median_s"] is None:
            values.append(r["time_box"] / ref if ref else r["time_box"]); hatch.append(True)
        else:
            values.append(r["median_s"] / ref if ref else r["median_s"]); hatch.append(False)
    bars = ax.bar(names, values, color=colors)
    for bar, dnf in zip(bars, hatch):
        if dnf:
            bar.set_hatch("//"); bar.set_alpha(0.4)
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), "DNF", ha="center", va="bottom", fontsize=7)
    first = by.get(clients[0])
    ideal = first and first["ideal_s"]
    ax.set_title(f"{profile}, {first['size_mib']:.0f} MiB" if first else profile, fontsize=9)
    ax.set_ylabel("time / ideal" if ideal else "seconds", fontsize=9)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.tick_params(axis="y", labelsize=8)
    if ideal:
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
fig.suptitle("chunkup adaptive vs fixed chunk sizes vs tus-js-client (median completion time)", fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)
"""
        subprocess.run([str(python), "-c", code, str(data), str(self.args.plot)], check=True)
        print(f"==> plot: {self.args.plot}")


def parse_sizes(text):
    sizes = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, value = item.partition("=")
        match = re.fullmatch(r"(\d+)(MiB|KiB|GiB)?", value.strip())
        if name not in PROFILES or not match:
            raise argparse.ArgumentTypeError(f"bad size {item!r} (e.g. hostile=8MiB)")
        unit = {"KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB, None: 1}[match.group(2)]
        sizes[name] = int(match.group(1)) * unit
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7, help="link seed of round 1 (round n: seed + n - 1)")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--server", choices=["keeps", "atomic", "both"], default="keeps",
                        help="keeps: the server keeps the bytes of a broken request; atomic: "
                             "--atomic-appends (it stores none of them); both: each, same rounds")
    parser.add_argument("--size", type=parse_sizes, default={},
                        help="per-profile file sizes, e.g. fast=128MiB,hostile=8MiB")
    parser.add_argument("--time-box", type=float, help="seconds per cell for every profile")
    parser.add_argument("--chunkup-bin", help="use this chunkup binary instead of building the release one")
    parser.add_argument("--baseline-bin",
                        help="another chunkup binary, run as the client adaptive-baseline (A/B on the same links)")
    parser.add_argument("--out", default=str(ROOT / "target" / "bench-matrix" / "results.json"),
                        help="JSON results (a .csv goes beside it)")
    parser.add_argument("--markdown", help="also write the Markdown table to this file")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "bench-matrix.png"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--tmpdir")
    parser.add_argument("--replot", metavar="RESULTS_JSON",
                        help="run nothing: print the table, the goal check and the plot of an earlier run")
    args = parser.parse_args()
    args.profiles = [p for p in args.profiles.split(",") if p]
    args.clients = [c for c in args.clients.split(",") if c]
    args.servers = ["keeps", "atomic"] if args.server == "both" else [args.server]
    bad = [p for p in args.profiles if p not in PROFILES] + [
        c for c in args.clients if c not in CLIENTS + EXTRA_CLIENTS and not fixed_size(c)]
    if "adaptive-baseline" in args.clients and not args.baseline_bin:
        parser.error("the client adaptive-baseline needs --baseline-bin")
    if bad or args.rounds < 1:
        parser.error(f"unknown profile/client {bad} or bad --rounds")
    matrix = Matrix(args)
    if args.replot:
        results = json.loads(Path(args.replot).read_text())
        seen = {r["profile"] for r in results}
        args.profiles = [p for p in args.profiles if p in seen]
        modes = {r.get("server", "keeps") for r in results}
        args.servers = [m for m in SERVERS if m in modes]
        try:
            matrix.report(results)
        finally:
            matrix.cleanup()
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        matrix.run()
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        matrix.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
