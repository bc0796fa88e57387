#!/usr/bin/env python3
"""Loopback benchmark: chunkup's client CPU and throughput against curl's,
every protocol, side by side in one run.

Not a test. Builds the release CLI, installs what is missing (tusd v2.9.1,
tus-js-client, tuspy), writes a file of random bytes, starts the servers on
127.0.0.1 and runs interleaved rounds (the order of the cells rotates from
round to round) of these cells:

  ranged    chunkup serve /ranged
            chunkup        chunkup upload FILE --to EP --json (ranged, auto chunks)
            curl           POST (create), then the whole file in one POST -T
  tusd      tusd v2.9.1 -enable-experimental-protocol, /files/
            chunkup-tus    ... --protocol tus (auto chunks)
            chunkup-ietf6  ... --protocol ietf --ietf-version 6 (draft -05, auto chunks)
            tus-js-client  tus-js-client 4.3.1 (Node), --peer-chunk 8MiB chunks
            tuspy          tuspy 1.1.0, --peer-chunk 8MiB chunks
            curl           POST (creation), then one PATCH -T of the whole file
  checksum  chunkup serve /tus (it verifies Upload-Checksum; tusd 2.9.1 has no
            checksum extension)
            chunkup-tus    ... --protocol tus
            chunkup-sum    ... --protocol tus --checksum
            curl           POST, then one PATCH -T

Per cell: wall throughput, client CPU (user + sys of the client process from
wait4; curl's two processes are summed), peak RSS, and the server's CPU
during the upload (/proc). Every upload is checked (the stored bytes' sha256
equals the file's, and chunkup's server received every byte: nothing was
resumed) and deleted. The report gives medians, and each ratio to curl on
the same server.

Then, unless --no-instructions, each chunkup cell and curl's upload request
run once more under `valgrind --tool=callgrind` with a smaller file
(--instructions-size, 64 MiB): user-space instructions repeat within 0.1%
from run to run, where CPU seconds of a short process on a shared machine
do not. Note: under valgrind the CPU reports no SHA extensions, so hashing
is counted in its slower portable form there.

    scripts/bench_loopback.py                         # 1 GiB, 5 rounds, all groups
    scripts/bench_loopback.py --size 256MiB --rounds 3 --groups tusd
    scripts/bench_loopback.py --chunkup-bin target/release/chunkup --no-instructions

Python 3 standard library only (scripts/benchlib.py).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib as lib

GROUPS = {
    "ranged": ["chunkup", "curl"],
    "tusd": ["chunkup-tus", "chunkup-ietf6", "tus-js-client", "tuspy", "curl"],
    "checksum": ["chunkup-tus", "chunkup-sum", "curl"],
}
# chunkup's arguments per client (after `upload FILE --to EP --json`).
CHUNKUP_ARGS = {
    "chunkup": [],
    "chunkup-tus": ["--protocol", "tus"],
    "chunkup-ietf6": ["--protocol", "ietf", "--ietf-version", "6"],
    "chunkup-sum": ["--protocol", "tus", "--checksum"],
}


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chunkup-bench-loopback-", dir=args.tmpdir))
        self.servers = {}

    def cleanup(self):
        for server in self.servers.values():
            server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- setup -------------------------------------------------------------

    def setup(self):
        args = self.args
        self.binary = lib.build_release(args.chunkup_bin)
        if "tusd" in args.groups:
            self.tusd = lib.ensure_tusd()
            lib.ensure_node_peers()
            self.python = lib.ensure_python_peers()
        self.file = self.tmp / "payload.bin"
        print(f"==> writing {args.size / lib.MIB:.0f} MiB of random data", flush=True)
        self.sha256 = lib.write_random_file(self.file, args.size)
        if "ranged" in args.groups or "checksum" in args.groups:
            self.servers["chunkup"] = lib.start_chunkup_serve(self.binary, self.tmp / "chunkup-store", self.tmp)
        if "tusd" in args.groups:
            self.tusd_store = self.tmp / "tusd-store"
            self.servers["tusd"] = lib.start_tusd(self.tusd, self.tusd_store, self.tmp)
        for name, server in self.servers.items():
            print(f"==> {server.name}: {server.endpoint}", flush=True)

    def endpoint(self, group):
        if group == "ranged":
            return self.servers["chunkup"].base + "/ranged"
        if group == "checksum":
            return self.servers["chunkup"].base + "/tus"
        return self.servers["tusd"].endpoint

    def server_of(self, group):
        return self.servers["tusd" if group == "tusd" else "chunkup"]

    # -- one upload --------------------------------------------------------

    def chunkup_cmd(self, client, file, endpoint):
        return [str(self.binary), "upload", str(file), "--to", endpoint, "--json", *CHUNKUP_ARGS[client]]

    def peer_cmd(self, client, file, endpoint):
        chunk = str(self.args.peer_chunk)
        if client == "tus-js-client":
            return ["node", str(lib.PEERS / "tus-js-upload.mjs"), endpoint, str(file), "--chunk-size", chunk]
        return [str(self.python), str(lib.PEERS / "tuspy_upload.py"), endpoint, str(file), "--chunk-size", chunk]

    def run_cell(self, group, client, tag):
        """(wall, cpu, rss KiB, upload URL) of one upload of the payload."""
        env = lib.child_env(self.tmp / f"home-{tag}")
        endpoint = self.endpoint(group)
        if client == "curl":
            return self.run_curl(group, endpoint, env, tag)
        cmd = (self.chunkup_cmd(client, self.file, endpoint) if client.startswith("chunkup")
               else self.peer_cmd(client, self.file, endpoint))
        out_path = self.tmp / f"{tag}.out"
        with open(out_path, "wb") as out:
            wall, cpu, rss = lib.measure(cmd, env, out, self.tmp)
        return wall, cpu, rss, upload_url_in(out_path)

    def curl_create(self, group, endpoint, env, tag, size):
        """curl's creation request: (wall, cpu, rss, upload URL)."""
        headers = (["-H", f"X-Upload-Content-Length: {size}"] if group == "ranged"
                   else ["-H", "Tus-Resumable: 1.0.0", "-H", f"Upload-Length: {size}"])
        head_path = self.tmp / f"{tag}.headers"
        with open(head_path, "wb") as out:
            wall, cpu, rss = lib.measure(["curl", "-s", "-D", "-", "-o", "/dev/null", "-X", "POST",
                                          *headers, endpoint], env, out, self.tmp)
        match = re.search(r"^location:\s*(\S+)", head_path.read_text(), re.I | re.M)
        if not match:
            raise RuntimeError(f"curl create: no Location (see {head_path})")
        url = match.group(1)
        if not url.startswith("http"):
            url = re.match(r"http://[^/]+", endpoint).group(0) + url
        return wall, cpu, rss, url

    def curl_upload_cmd(self, group, url, file, size):
        """curl's one request carrying the whole file (streamed with -T)."""
        if group == "ranged":
            headers = ["-X", "POST", "-H", f"Content-Range: bytes 0-{size - 1}/{size}",
                       "-H", "Content-Type: application/octet-stream"]
        else:
            headers = ["-X", "PATCH", "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                       "-H", "Content-Type: application/offset+octet-stream"]
        return ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:",
                "-T", str(file), *headers, url]

    def run_curl(self, group, endpoint, env, tag):
        c_wall, c_cpu, c_rss, url = self.curl_create(group, endpoint, env, tag, self.args.size)
        code_path = self.tmp / f"{tag}.code"
        with open(code_path, "wb") as out:
            u_wall, u_cpu, u_rss = lib.measure(self.curl_upload_cmd(group, url, self.file, self.args.size),
                                               env, out, self.tmp)
        status = code_path.read_text().strip()
        if status not in ("200", "201", "204"):
            raise RuntimeError(f"curl upload to {url} answered HTTP {status}")
        return c_wall + u_wall, c_cpu + u_cpu, max(c_rss, u_rss), url

    def verify_and_delete(self, group, client, url, size, sha256):
        upload_id = url.rstrip("/").rsplit("/", 1)[-1]
        if group == "tusd":
            stored = self.tusd_store / upload_id
            actual = lib.sha256_file(stored) if stored.exists() else "missing"
            if actual != sha256 or stored.stat().st_size != size:
                raise RuntimeError(f"{client} -> tusd: stored {stored} sha256 {actual}, expected {sha256}")
            for path in (stored, stored.with_name(upload_id + ".info"), stored.with_name(upload_id + ".lock")):
                path.unlink(missing_ok=True)
            return
        server = self.servers["chunkup"]
        _, _, body = lib.request("GET", f"{server.base}/_admin/uploads/{upload_id}")
        info = json.loads(body)
        if not info.get("complete") or info.get("sha256") != sha256:
            raise RuntimeError(f"{client} -> chunkup serve: stored {info}, expected sha256 {sha256}")
        if info.get("bytes_received", size) < size:
            raise RuntimeError(f"{client}: the server received only {info['bytes_received']} bytes "
                               "(the upload was resumed, not measured)")
        headers = {} if group == "ranged" else {"Tus-Resumable": "1.0.0"}
        status, _, _ = lib.request("DELETE", url, headers)
        if status not in (200, 204):
            raise RuntimeError(f"DELETE {url} answered {status}")

    # -- the run -----------------------------------------------------------

    def cells(self):
        return [(g, c) for g in self.args.groups for c in GROUPS[g]]

    def run(self):
        self.setup()
        cells = self.cells()
        size_mib = self.args.size / lib.MIB
        print(f"==> {self.args.rounds} round(s) of {len(cells)} cells, {size_mib:.0f} MiB, "
              f"sha256 {self.sha256[:16]}…, load {os.getloadavg()[0]:.2f}", flush=True)
        results = {}
        for round_no in range(1, self.args.rounds + 1):
            shift = (round_no - 1) % len(cells)
            for group, client in cells[shift:] + cells[:shift]:
                tag = f"r{round_no}-{group}-{client}"
                server = self.server_of(group)
                before = server.cpu()
                wall, cpu, rss, url = self.run_cell(group, client, tag)
                server_cpu = server.cpu() - before
                self.verify_and_delete(group, client, url, self.args.size, self.sha256)
                results.setdefault((group, client), []).append((wall, cpu, rss, server_cpu))
                print(f"  round {round_no} {group:8} {client:13} {wall:6.2f} s {size_mib / wall:7.1f} MiB/s  "
                      f"cpu {cpu:5.2f} s  rss {rss / 1024:5.1f} MiB  server cpu {server_cpu:5.2f} s  ok",
                      flush=True)
        instructions = self.instructions() if self.args.instructions else {}
        self.report(results, instructions)

    def instructions(self):
        """callgrind instruction counts: {(group, client): n}."""
        if shutil.which("valgrind") is None:
            print("==> valgrind not found: no instruction counts", flush=True)
            return {}
        size = self.args.instructions_size
        small = self.tmp / "small.bin"
        sha = lib.write_random_file(small, size)
        print(f"==> user-space instructions (callgrind), {size / lib.MIB:.0f} MiB", flush=True)
        counts = {}
        for group, client in self.cells():
            if client not in CHUNKUP_ARGS and client != "curl":
                continue  # the peers' runtimes are not what this measures
            tag = f"cg-{group}-{client}"
            env = lib.child_env(self.tmp / f"home-{tag}")
            endpoint = self.endpoint(group)
            if client == "curl":
                # Only the request that carries the file, as curl users send it.
                _, _, _, url = self.curl_create(group, endpoint, env, tag, size)
                n = lib.callgrind(self.curl_upload_cmd(group, url, small, size), env, self.tmp, tag)
            else:
                out_path = self.tmp / f"{tag}.out"
                with open(out_path, "wb") as out:
                    n = lib.callgrind(self.chunkup_cmd(client, small, endpoint), env, self.tmp, tag, out)
                url = upload_url_in(out_path)
            self.verify_and_delete(group, client, url, size, sha)
            counts[(group, client)] = n
            print(f"  {group:8} {client:13} {n / 1e6:8.1f} M instructions", flush=True)
        return counts

    def report(self, results, instructions):
        size_mib = self.args.size / lib.MIB
        medians = {}
        for key, samples in results.items():
            tputs = [size_mib / s[0] for s in samples]
            medians[key] = {
                "tput": statistics.median(tputs), "min": min(tputs), "max": max(tputs),
                "cpu": statistics.median(s[1] for s in samples),
                "rss": max(s[2] for s in samples) / 1024,
                "server": statistics.median(s[3] for s in samples),
                "n": len(samples),
            }
        md = ["| server | client | MiB/s (median) | min-max | client CPU s | peak RSS MiB | server CPU s "
              "| MiB/s vs curl | CPU vs curl | instructions (M) | instr. vs curl |",
              "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        server_names = {"ranged": "chunkup serve (ranged)", "tusd": f"tusd {lib.TUSD_VERSION}",
                        "checksum": "chunkup serve (tus)"}
        for group in self.args.groups:
            curl = medians.get((group, "curl"))
            curl_instr = instructions.get((group, "curl"))
            for client in GROUPS[group]:
                m = medians.get((group, client))
                if m is None:
                    continue
                ratio_t = f"{m['tput'] / curl['tput']:.2f}x" if curl else "n/a"
                ratio_c = f"{m['cpu'] / curl['cpu']:.2f}x" if curl and curl["cpu"] > 0 else "n/a"
                instr = instructions.get((group, client))
                instr_s = f"{instr / 1e6:.1f}" if instr else "-"
                if instr and client == "chunkup-sum":
                    instr_s += " (portable SHA)"
                ratio_i = f"{instr / curl_instr:.2f}x" if instr and curl_instr else "-"
                md.append(f"| {server_names[group]} | {client} | {m['tput']:.0f} | {m['min']:.0f}-{m['max']:.0f} "
                          f"| {m['cpu']:.2f} | {m['rss']:.0f} | {m['server']:.2f} | {ratio_t} | {ratio_c} "
                          f"| {instr_s} | {ratio_i} |")
        lines = ["", f"{self.args.rounds} rounds of {size_mib:.0f} MiB (medians); instructions: "
                 f"{self.args.instructions_size / lib.MIB:.0f} MiB, one run each", ""] + md + [""]
        if instructions.get(("checksum", "chunkup-sum")):
            lines.append("(portable SHA): valgrind's CPU has no SHA extensions, so callgrind counts the "
                         "portable SHA-256 code, not the SHA-NI one the timed runs use.")
        tus, ietf = medians.get(("tusd", "chunkup-tus")), medians.get(("tusd", "chunkup-ietf6"))
        if tus and ietf:
            i_tus, i_ietf = instructions.get(("tusd", "chunkup-tus")), instructions.get(("tusd", "chunkup-ietf6"))
            extra = f", instructions {i_ietf / i_tus:.2f}x" if i_tus and i_ietf else ""
            lines.append(f"IETF interop 6 / tus on tusd: client CPU {ietf['cpu'] / tus['cpu']:.2f}x, "
                         f"throughput {ietf['tput'] / tus['tput']:.2f}x{extra}")
        plain, summed = medians.get(("checksum", "chunkup-tus")), medians.get(("checksum", "chunkup-sum"))
        if plain and summed:
            lines.append(f"checksums on / off (chunkup serve): throughput {summed['tput'] / plain['tput']:.2f}x, "
                         f"client CPU {summed['cpu'] / plain['cpu']:.2f}x, "
                         f"server CPU {summed['server'] / plain['server']:.2f}x")
        print("\n".join(lines))
        if self.args.markdown:
            Path(self.args.markdown).write_text("\n".join(lines) + "\n")


def upload_url_in(out_path):
    """The last upload_url in a client's JSON lines."""
    url = None
    for line in Path(out_path).read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("upload_url"):
            url = event["upload_url"]
    if url is None:
        raise RuntimeError(f"no upload_url printed (see {out_path})")
    return url


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    size = lambda text: lib.parse_size(text)  # noqa: E731 (argparse wants a callable)
    parser.add_argument("--size", type=size, default=1 << 30, help="file size (default 1GiB)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"subset of {','.join(GROUPS)}")
    parser.add_argument("--peer-chunk", type=size, default=8 * lib.MIB,
                        help="tus-js-client's and tuspy's chunk size (default 8MiB)")
    parser.add_argument("--no-instructions", dest="instructions", action="store_false",
                        help="skip the callgrind instruction counts")
    parser.add_argument("--instructions-size", type=size, default=64 * lib.MIB,
                        help="file size under callgrind (default 64MiB)")
    parser.add_argument("--chunkup-bin", help="use this chunkup binary instead of building the release one")
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument("--tmpdir", help="where the file and the stores go (default: system temp)")
    args = parser.parse_args()
    args.groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s): {', '.join(unknown)}")
    if args.rounds < 1 or args.size < 1:
        parser.error("--rounds and --size must be positive")

    print(f"==> {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {lib.machine()}, chunkup {lib.git_commit()}")
    print(f"==> {lib.version(['curl', '--version'])}; node {lib.version(['node', '--version'])}")
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
