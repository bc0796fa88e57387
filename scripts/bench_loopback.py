#!/usr/bin/env python3
"""Loopback benchmark: `chunkup upload` against curl, one large file each.

Not a test. Builds the release CLI, starts `chunkup serve` on 127.0.0.1, then
alternates N rounds of

  chunkup  chunkup upload FILE --to http://127.0.0.1:PORT/ranged --json
  curl     POST /ranged (create), then one POST of the whole file (-T, streamed)

and reports, per client, wall time, CPU time (user + sys of the client
process, from wait4) and peak RSS (ru_maxrss). Every upload is checked: the
server's sha256 (GET /_admin/uploads/{id}) must equal the file's.

    scripts/bench_loopback.py                      # 1 GiB, 3 rounds
    scripts/bench_loopback.py --size 256MiB --rounds 2

Python 3 standard library only.
"""

import argparse
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
BINARY = ROOT / "target" / "release" / "chunkup"
MIB = 1024 * 1024
UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1000, "m": MIB, "mib": MIB,
         "mb": 1000**2, "g": 1 << 30, "gib": 1 << 30, "gb": 1000**3}

# Never send loopback traffic through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parse_size(text):
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 1GiB, 256MiB, 1048576)")
    return int(match.group(1)) * UNITS[match.group(2).lower()]


def child_env(home):
    """The environment for clients: no proxies, and a fresh HOME/XDG dirs so a
    resume store from an earlier round cannot turn an upload into a no-op."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("CHUNKUP_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env[var] = str(home / var.lower())
    return env


def sample_hwm(pid, peak, done):
    """Keeps peak[0] at the highest VmHWM (KiB) seen for pid until done."""
    path = f"/proc/{pid}/status"
    while not done.is_set():
        try:
            with open(path) as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
                        break
        except OSError:
            pass
        done.wait(0.01)


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chunkup-bench-", dir=args.tmpdir))
        self.server = None
        self.child = None
        self.port = None

    # -- lifecycle ---------------------------------------------------------

    def cleanup(self):
        for proc in (self.child, self.server):
            if proc is not None and proc.returncode is None:
                try:
                    proc.terminate()
                    proc.wait(timeout=10)
                except (subprocess.TimeoutExpired, ChildProcessError):
                    proc.kill()
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- setup -------------------------------------------------------------

    def build(self):
        print("==> cargo build --release -p chunkup-cli", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "chunkup-cli"], cwd=ROOT, check=True)
        if not BINARY.exists():
            sys.exit(f"error: {BINARY} missing after the build")

    def make_file(self):
        size = self.args.size
        path = self.tmp / "payload.bin"
        print(f"==> writing {size / MIB:.0f} MiB of random data to {path}", flush=True)
        digest = hashlib.sha256()
        block = MIB  # small blocks keep this script's own RSS (see measure) low
        with open(path, "wb") as out:
            left = size
            while left:
                data = os.urandom(min(block, left))
                digest.update(data)
                out.write(data)
                left -= len(data)
        self.file = path
        self.sha256 = digest.hexdigest()

    def start_server(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        log = open(self.tmp / "server.log", "wb")
        cmd = [str(BINARY), "serve", "--addr", f"127.0.0.1:{self.port}", "--admin", "--dir", str(self.tmp / "store")]
        print("==> " + " ".join(cmd), flush=True)
        self.server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                       env=child_env(self.tmp / "home-server"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                sys.exit(f"error: server exited with {self.server.returncode}; see {self.tmp}/server.log:\n"
                         + (self.tmp / "server.log").read_text(errors="replace")[-2000:])
            try:
                self.admin_get("/_admin/uploads")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        sys.exit("error: server did not answer GET /_admin/uploads within 30 s")

    def admin_get(self, path):
        with _opener.open(self.base + path, timeout=120) as reply:
            return json.load(reply)

    # -- measuring ---------------------------------------------------------

    def measure(self, cmd, stdout, env):
        """Runs cmd; returns (wall s, cpu s, peak RSS KiB) of that process.

        Linux starts a child's ru_maxrss at its parent's peak RSS (the mm it
        was forked from is accounted at exec), so ru_maxrss is exact only
        above this script's own peak. Below it, the child's VmHWM, sampled
        from /proc while it runs, is used instead."""
        with tempfile.TemporaryFile(dir=self.tmp) as err:
            floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.monotonic()
            self.child = subprocess.Popen(cmd, stdout=stdout, stderr=err, env=env)
            sampled = [0]
            done = threading.Event()
            sampler = threading.Thread(target=sample_hwm, args=(self.child.pid, sampled, done))
            sampler.start()
            try:
                _, status, usage = os.wait4(self.child.pid, 0)
            finally:
                done.set()
                sampler.join()
            wall = time.monotonic() - start
            self.child.returncode = code = os.waitstatus_to_exitcode(status)
            self.child = None
            if code != 0:
                err.seek(0)
                stderr = err.read().decode(errors="replace")
                raise RuntimeError(f"{' '.join(cmd)} exited with {code}:\n{stderr[-2000:]}")
        peak = usage.ru_maxrss if usage.ru_maxrss > floor + 1024 else sampled[0]
        return wall, usage.ru_utime + usage.ru_stime, peak

    def verify(self, upload_id, client):
        info = self.admin_get(f"/_admin/uploads/{upload_id}")
        if not info.get("complete") or info.get("sha256") != self.sha256:
            raise RuntimeError(f"{client}: server holds {info}, expected sha256 {self.sha256}")
        if info.get("bytes_received", self.args.size) < self.args.size:
            raise RuntimeError(f"{client}: server received only {info['bytes_received']} bytes "
                               "(the upload was resumed, not measured)")
        # Free the disk for the next round.
        request = urllib.request.Request(f"{self.base}/ranged/{upload_id}", method="DELETE")
        _opener.open(request, timeout=30).close()

    def run_chunkup(self, round_no):
        out_path = self.tmp / f"chunkup-{round_no}.ndjson"
        cmd = [str(BINARY), "upload", str(self.file), "--to", f"{self.base}/ranged", "--json"]
        if self.args.chunk_size:
            cmd += ["--chunk-size", self.args.chunk_size]
        with open(out_path, "wb") as out:
            sample = self.measure(cmd, out, child_env(self.tmp / f"home-{round_no}"))
        upload_url = None
        for line in out_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("upload_url"):
                upload_url = event["upload_url"]
                break
        if upload_url is None:
            raise RuntimeError(f"chunkup printed no JSON line with upload_url (see {out_path})")
        self.verify(upload_url.rstrip("/").rsplit("/", 1)[-1], "chunkup")
        return sample

    def run_curl(self, round_no):
        size = self.args.size
        env = child_env(self.tmp / "home-curl")
        headers_path = self.tmp / f"curl-{round_no}.headers"
        create = ["curl", "-s", "-D", "-", "-o", "/dev/null", "-X", "POST",
                  "-H", f"X-Upload-Content-Length: {size}", f"{self.base}/ranged"]
        with open(headers_path, "wb") as out:
            c_wall, c_cpu, c_rss = self.measure(create, out, env)
        match = re.search(r"^location:\s*(\S+)", headers_path.read_text(), re.I | re.M)
        if not match:
            raise RuntimeError(f"curl create: no Location header (see {headers_path})")
        location = match.group(1)
        url = location if location.startswith("http") else self.base + location
        body_path = self.tmp / f"curl-{round_no}.body"
        upload = ["curl", "-s", "-o", str(body_path), "-w", "%{http_code}",
                  "-T", str(self.file), "-X", "POST",
                  "-H", f"Content-Range: bytes 0-{size - 1}/{size}",
                  "-H", "Content-Type: application/octet-stream", url]
        code_path = self.tmp / f"curl-{round_no}.code"
        with open(code_path, "wb") as out:
            u_wall, u_cpu, u_rss = self.measure(upload, out, env)
        status = code_path.read_text().strip()
        if status not in ("200", "201"):
            raise RuntimeError(f"curl upload answered HTTP {status}")
        self.verify(location.rstrip("/").rsplit("/", 1)[-1], "curl")
        return c_wall + u_wall, c_cpu + u_cpu, max(c_rss, u_rss)

    # -- the run -----------------------------------------------------------

    def run(self):
        self.build()
        self.make_file()
        self.start_server()
        results = {"chunkup": [], "curl": []}
        runners = {"chunkup": self.run_chunkup, "curl": self.run_curl}
        size_mib = self.args.size / MIB
        print(f"==> {self.args.rounds} rounds, {size_mib:.0f} MiB each, sha256 {self.sha256[:16]}…")
        for round_no in range(1, self.args.rounds + 1):
            for client, runner in runners.items():
                wall, cpu, rss = runner(round_no)
                results[client].append((wall, cpu, rss))
                print(f"  round {round_no} {client:8} {wall:7.2f} s  {size_mib / wall:8.1f} MiB/s  "
                      f"cpu {cpu:6.2f} s  rss {rss / 1024:7.1f} MiB  sha256 ok", flush=True)
        self.report(results)

    def report(self, results):
        size_mib = self.args.size / MIB
        summary = {}
        for client, samples in results.items():
            summary[client] = (
                statistics.median(size_mib / wall for wall, _, _ in samples),
                statistics.median(cpu for _, cpu, _ in samples),
                max(rss for _, _, rss in samples) / 1024,
            )
        target = 2 * self.args.max_chunk / MIB + 32
        print()
        print(f"{'client':8} | {'MiB/s (median)':>14} | {'CPU s (median)':>14} | {'peak RSS MiB (max)':>18}")
        print(f"{'-' * 8}-|-{'-' * 14}-|-{'-' * 14}-|-{'-' * 18}")
        for client, (tput, cpu, rss) in summary.items():
            print(f"{client:8} | {tput:14.1f} | {cpu:14.2f} | {rss:18.1f}")
        (c_tput, c_cpu, c_rss), (k_tput, k_cpu, _) = summary["chunkup"], summary["curl"]
        print()
        print(f"chunkup/curl throughput: {c_tput / k_tput:.2f}x")
        print(f"chunkup/curl CPU:        {c_cpu / k_cpu:.2f}x" if k_cpu > 0 else "chunkup/curl CPU: n/a")
        verdict = "within" if c_rss <= target else "OVER"
        print(f"chunkup peak RSS:        {c_rss:.1f} MiB vs target 2 x {self.args.max_chunk / MIB:.0f} MiB "
              f"+ 32 MiB = {target:.0f} MiB ({verdict})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=1 << 30, help="file size (default 1GiB)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per client (default 3)")
    parser.add_argument("--max-chunk", type=parse_size, default=64 * MIB,
                        help="chunkup's largest chunk, for the RSS target (default 64MiB)")
    parser.add_argument("--chunk-size", help="passed to chunkup upload --chunk-size (default: its own)")
    parser.add_argument("--tmpdir", help="where the file and the server store go (default: system temp)")
    args = parser.parse_args()
    if args.rounds < 1 or args.size < 1:
        parser.error("--rounds and --size must be positive")

    bench = Bench(args)
    # SIGTERM cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (RuntimeError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
