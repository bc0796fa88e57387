#!/usr/bin/env python3
"""tus clients side by side: chunkup, tus-js-client, tuspy and curl.

Not a test. Uploads the same file to the same tus server with each client, N
rounds, the order of the clients rotating from round to round, against two
servers on 127.0.0.1:

  @tus/server  @tus/server 2.x + @tus/file-store (interop/peers/tus-server.mjs)
  chunkup      chunkup's reference server, `chunkup serve`, endpoint /tus

Clients:

  chunkup        chunkup upload FILE --to EP --protocol tus --json --no-resume
                 (adaptive chunks; no checksums, the default)
  chunkup-checksum  the same with --checksum (only where checksums are offered)
  tus-js-client  interop/peers/tus-js-upload.mjs (Node; chunkSize left at its
                 default, Infinity: one PATCH streamed from an fs.ReadStream)
  tuspy          interop/peers/tuspy_upload.py (chunk_size left at its default,
                 sys.maxsize: one PATCH whose body is read into memory)
  curl           POST (creation), then one PATCH of the whole file with -T
                 (streamed); both curl processes are counted

Per client: wall throughput (MiB/s), client CPU seconds (user + sys from
os.wait4 of the client process; none of the clients starts processes of its
own), peak RSS, and the server's CPU seconds during the upload (from
/proc/PID/stat). Every upload is checked (sha256 of the stored bytes: the
file store's file for @tus/server, GET /_admin/uploads/{id} for chunkup) and
then terminated (DELETE) to free the disk.

    scripts/bench_tus.py                          # 1 GiB, 3 rounds
    scripts/bench_tus.py --size 256MiB --rounds 1

Needs the interop peers (scripts/test.sh installs them) and builds the
release CLI. Python 3 standard library only.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    BINARY,
    MIB,
    PEERS,
    ROOT,
    child_env,
    cpu_seconds,
    machine,
    parse_size,
    request,
    sample_hwm,
    version,
)

CLIENTS = ["chunkup", "chunkup-checksum", "tus-js-client", "tuspy", "curl"]
SERVERS = ["@tus/server", "chunkup"]


class Server:
    """One server process on 127.0.0.1 with its store."""

    def __init__(self, name, cmd, env, log, endpoint_of, store):
        self.name = name
        self.store = store
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.endpoint = None
        deadline = time.monotonic() + 30
        lines = []
        # Both servers print their URL on one of their first lines.
        while time.monotonic() < deadline and self.endpoint is None:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            lines.append(line)
            self.endpoint = endpoint_of(line)
        if self.endpoint is None:
            self.stop()
            sys.exit(f"error: {name} did not start:\n{''.join(lines)}")
        # Keep draining its output into the log so it never blocks on a pipe.
        self.log = open(log, "ab")
        threading.Thread(target=shutil.copyfileobj, args=(self.proc.stdout, self.log), daemon=True).start()
        self.base = re.match(r"http://[^/]+", self.endpoint).group(0)

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chunkup-bench-tus-", dir=args.tmpdir))
        self.servers = {}
        self.child = None

    def cleanup(self):
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait()
        for server in self.servers.values():
            server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- setup -------------------------------------------------------------

    def check_peers(self):
        missing = [p for p in (PEERS / "node_modules" / "@tus" / "server",
                               PEERS / "node_modules" / "tus-js-client",
                               PEERS / ".venv" / "bin" / "python") if not p.exists()]
        if missing:
            sys.exit("error: interop peers missing (" + ", ".join(map(str, missing))
                     + "): run scripts/test.sh once, or npm ci + the venv in interop/peers")

    def build(self):
        if self.args.chunkup_bin:
            self.binary = Path(self.args.chunkup_bin)
            return
        print("==> cargo build --release -p chunkup-cli", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "chunkup-cli"], cwd=ROOT, check=True)
        self.binary = BINARY

    def make_file(self):
        size = self.args.size
        path = self.tmp / "payload.bin"
        print(f"==> writing {size / MIB:.0f} MiB of random data to {path}", flush=True)
        digest = hashlib.sha256()
        with open(path, "wb") as out:
            left = size
            while left:
                data = os.urandom(min(MIB, left))  # small blocks keep our RSS low
                digest.update(data)
                out.write(data)
                left -= len(data)
        self.file = path
        self.sha256 = digest.hexdigest()

    def start_servers(self):
        if "@tus/server" in self.args.servers:
            store = self.tmp / "tus-node-store"
            self.servers["@tus/server"] = Server(
                "@tus/server", ["node", str(PEERS / "tus-server.mjs"), "0", str(store)],
                child_env(self.tmp / "home-tus-node"), self.tmp / "tus-node.log",
                lambda line: line.split()[1] if line.startswith("listening ") else None, store)
        if "chunkup" in self.args.servers:
            store = self.tmp / "chunkup-store"
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            self.servers["chunkup"] = Server(
                "chunkup", [str(self.binary), "serve", "--addr", f"127.0.0.1:{port}", "--admin", "--dir", str(store)],
                child_env(self.tmp / "home-chunkup-serve"), self.tmp / "chunkup-serve.log",
                lambda line: f"http://127.0.0.1:{port}/tus" if "listening" in line else None, store)
        for server in self.servers.values():
            print(f"==> {server.name}: {server.endpoint}", flush=True)

    # -- measuring ---------------------------------------------------------

    def measure(self, cmd, stdout, env):
        """Runs cmd; returns (wall s, cpu s, peak RSS KiB) of that process.
        Linux starts a child's ru_maxrss at its parent's peak RSS, so below
        this script's own peak the child's sampled VmHWM is used instead."""
        with tempfile.TemporaryFile(dir=self.tmp) as err:
            floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.monotonic()
            self.child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, env=env)
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
                raise RuntimeError(f"{' '.join(cmd)} exited with {code}:\n"
                                   + err.read().decode(errors="replace")[-2000:])
        peak = usage.ru_maxrss if usage.ru_maxrss > floor + 1024 else sampled[0]
        return wall, usage.ru_utime + usage.ru_stime, peak

    def verify_and_delete(self, server, upload_url, client):
        upload_id = upload_url.rstrip("/").rsplit("/", 1)[-1]
        if server.name == "chunkup":
            _, _, body = request("GET", f"{server.base}/_admin/uploads/{upload_id}")
            info = json.loads(body)
            ok = info.get("complete") and info.get("sha256") == self.sha256
            received = info.get("bytes_received", self.args.size)
            if received < self.args.size:
                raise RuntimeError(f"{client}: the server received only {received} bytes")
        else:
            stored = server.store / upload_id
            digest = hashlib.sha256()
            with open(stored, "rb") as data:
                while block := data.read(8 * MIB):
                    digest.update(block)
            info = {"file": str(stored), "size": stored.stat().st_size, "sha256": digest.hexdigest()}
            ok = info["sha256"] == self.sha256
        if not ok:
            raise RuntimeError(f"{client} -> {server.name}: stored {info}, expected sha256 {self.sha256}")
        status, _, _ = request("DELETE", upload_url, {"Tus-Resumable": "1.0.0"})
        if status not in (200, 204):
            raise RuntimeError(f"DELETE {upload_url} answered {status}")

    def run_client(self, client, server, tag):
        env = child_env(self.tmp / f"home-{tag}")
        out_path = self.tmp / f"{tag}.out"
        ep = server.endpoint
        if client.startswith("chunkup"):
            cmd = [str(self.binary), "upload", str(self.file), "--to", ep, "--protocol", "tus",
                   "--json", "--no-resume"]
            if client == "chunkup-checksum":
                cmd.append("--checksum")
        elif client == "tus-js-client":
            cmd = ["node", str(PEERS / "tus-js-upload.mjs"), ep, str(self.file)]
        elif client == "tuspy":
            cmd = [str(PEERS / ".venv" / "bin" / "python"), str(PEERS / "tuspy_upload.py"), ep, str(self.file)]
        elif client == "curl":
            return self.run_curl(server, tag, env)
        else:
            raise ValueError(client)
        with open(out_path, "wb") as out:
            sample = self.measure(cmd, out, env)
        url = None
        for line in out_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("upload_url"):
                url = event["upload_url"]
        if url is None:
            raise RuntimeError(f"{client} printed no upload_url (see {out_path})")
        return sample, url

    def run_curl(self, server, tag, env):
        size = self.args.size
        head_path = self.tmp / f"{tag}.headers"
        create = ["curl", "-s", "-D", "-", "-o", "/dev/null", "-X", "POST",
                  "-H", "Tus-Resumable: 1.0.0", "-H", f"Upload-Length: {size}", server.endpoint]
        with open(head_path, "wb") as out:
            c_wall, c_cpu, c_rss = self.measure(create, out, env)
        match = re.search(r"^location:\s*(\S+)", head_path.read_text(), re.I | re.M)
        if not match:
            raise RuntimeError(f"curl create: no Location (see {head_path})")
        url = match.group(1)
        if not url.startswith("http"):
            url = server.base + url
        code_path = self.tmp / f"{tag}.code"
        patch = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(self.file), "-X", "PATCH",
                 "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0", "-H", "Expect:",
                 "-H", "Content-Type: application/offset+octet-stream", url]
        with open(code_path, "wb") as out:
            p_wall, p_cpu, p_rss = self.measure(patch, out, env)
        status = code_path.read_text().strip()
        if status != "204":
            raise RuntimeError(f"curl PATCH answered HTTP {status}")
        return (c_wall + p_wall, c_cpu + p_cpu, max(c_rss, p_rss)), url

    # -- the run -----------------------------------------------------------

    def clients_for(self, server):
        clients = [c for c in self.args.clients if c in CLIENTS]
        if server.name != "chunkup":
            # @tus/server offers no checksum: chunkup-checksum would equal chunkup.
            clients = [c for c in clients if c != "chunkup-checksum"]
        return clients

    def run(self):
        self.check_peers()
        self.build()
        self.make_file()
        self.start_servers()
        size_mib = self.args.size / MIB
        results = {}
        print(f"==> {self.args.rounds} round(s), {size_mib:.0f} MiB, sha256 {self.sha256[:16]}…, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        for round_no in range(1, self.args.rounds + 1):
            for server in self.servers.values():
                clients = self.clients_for(server)
                shift = (round_no - 1) % len(clients)
                for client in clients[shift:] + clients[:shift]:
                    tag = f"r{round_no}-{server.name.strip('@').replace('/', '-')}-{client}"
                    before = server.cpu()
                    (wall, cpu, rss), url = self.run_client(client, server, tag)
                    server_cpu = server.cpu() - before
                    self.verify_and_delete(server, url, client)
                    results.setdefault((server.name, client), []).append((wall, cpu, rss, server_cpu))
                    print(f"  round {round_no} {server.name:11} {client:13} {wall:7.2f} s "
                          f"{size_mib / wall:8.1f} MiB/s  cpu {cpu:6.2f} s  rss {rss / 1024:7.1f} MiB  "
                          f"server cpu {server_cpu:6.2f} s  sha256 ok", flush=True)
        self.report(results)

    def report(self, results):
        size_mib = self.args.size / MIB
        lines = [
            f"{'server':11} | {'client':13} | {'MiB/s':>7} | {'(min-max)':>13} | {'CPU s':>6} | "
            f"{'RSS MiB':>7} | {'server CPU s':>12} | {'MiB/s vs curl':>13} | {'CPU vs curl':>11}",
        ]
        lines.append("-" * len(lines[0]))
        md = ["| server | client | MiB/s (median) | MiB/s min-max | client CPU s | peak RSS MiB | "
              "server CPU s | MiB/s vs curl | CPU vs curl |",
              "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
        for server in self.servers:
            rows = {c: s for (srv, c), s in results.items() if srv == server}
            curl = rows.get("curl")
            c_tput = statistics.median(size_mib / s[0] for s in curl) if curl else None
            c_cpu = statistics.median(s[1] for s in curl) if curl else None
            for client, samples in rows.items():
                tputs = [size_mib / s[0] for s in samples]
                tput = statistics.median(tputs)
                cpu = statistics.median(s[1] for s in samples)
                rss = max(s[2] for s in samples) / 1024
                scpu = statistics.median(s[3] for s in samples)
                r_tput = f"{tput / c_tput:.2f}x" if c_tput else "n/a"
                r_cpu = f"{cpu / c_cpu:.2f}x" if c_cpu else "n/a"
                spread = f"{min(tputs):.0f}-{max(tputs):.0f}"
                lines.append(f"{server:11} | {client:13} | {tput:7.1f} | {spread:>13} | {cpu:6.2f} | "
                             f"{rss:7.1f} | {scpu:12.2f} | {r_tput:>13} | {r_cpu:>11}")
                md.append(f"| {server} | {client} | {tput:.0f} | {spread} | {cpu:.2f} | {rss:.0f} | "
                          f"{scpu:.2f} | {r_tput} | {r_cpu} |")
        print()
        print("\n".join(lines))
        print()
        print("\n".join(md))
        if self.args.markdown:
            Path(self.args.markdown).write_text("\n".join(md) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=1 << 30, help="file size (default 1GiB)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--clients", default=",".join(CLIENTS),
                        help=f"comma-separated subset of {','.join(CLIENTS)}")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--chunkup-bin", help="use this chunkup binary instead of building the release one")
    parser.add_argument("--markdown", help="also write the Markdown table to this file")
    parser.add_argument("--tmpdir", help="where the file and the stores go (default: system temp)")
    args = parser.parse_args()
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [c for c in args.clients if c not in CLIENTS] + [s for s in args.servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown client/server: {', '.join(unknown)}")
    if args.rounds < 1 or args.size < 1:
        parser.error("--rounds and --size must be positive")

    print(f"==> {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {machine()}")
    print(f"==> node {version(['node', '--version'])}, {version(['curl', '--version'])}")
    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
