#!/usr/bin/env python3
"""S3 multipart clients side by side on one SeaweedFS: chunkup, `aws s3 cp`
and boto3's `upload_file`.

Not a test. Starts SeaweedFS (`weed server -s3`, interop/peers/bin/weed,
auth on with random keys, every port on 127.0.0.1), writes one random file,
then uploads it N rounds with each client, the order of the clients
rotating from round to round:

  chunkup      chunkup upload FILE --to http://127.0.0.1:PORT/BUCKET/KEY
               --protocol s3 --json --no-resume (SigV4 from the environment,
               adaptive part size) plus --parts N (default 4 connections)
  aws-cli      aws s3 cp FILE s3://BUCKET/KEY --endpoint-url ... (awscli
               1.46.3, its defaults: 8 MiB parts, 10 concurrent requests)
  boto3        interop/peers/boto3_upload.py: S3Client.upload_file with the
               default TransferConfig (8 MiB parts, 10 threads)

Per client: wall throughput (MiB/s), client CPU seconds (user + sys of the
client process and its children, from wait4), peak RSS, and SeaweedFS's CPU
seconds during the upload. Every upload is checked (sha256 of the object as
the filer serves it) and then deleted; SeaweedFS is vacuumed between
uploads so the disk does not fill.

    scripts/bench_s3.py                          # 2 GiB, 3 rounds
    scripts/bench_s3.py --size 512MiB --rounds 1

Needs interop/peers/bin/weed (scripts/test.sh builds it) and the Python
peers' venv (created here when missing); builds the release CLI unless
--chunkup-bin is given. Python 3 standard library only.
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchlib import MIB, PEERS  # noqa: E402

CLIENTS = ["chunkup", "aws-cli", "boto3"]
BUCKET = "bench"


class SeaweedFs:
    """`weed server` with master, volume server, filer and S3 gateway."""

    def __init__(self, weed, tmp, python):
        self.tmp = tmp
        data = tmp / "weed-data"
        logs = tmp / "weed-logs"
        data.mkdir()
        logs.mkdir()
        self.env = {
            "AWS_ACCESS_KEY_ID": "CHUNKUPBENCH" + secrets.token_hex(4).upper(),
            "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            # Nothing from the machine: no shared files, no instance metadata.
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
        identities = tmp / "s3.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "bench",
            "credentials": [{"accessKey": self.env["AWS_ACCESS_KEY_ID"],
                             "secretKey": self.env["AWS_SECRET_ACCESS_KEY"]}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))
        port = {name: benchlib.free_port() for name in
                ("master", "volume", "filer", "s3", "master.grpc", "volume.grpc", "filer.grpc", "s3.grpc")}
        self.master = f"http://127.0.0.1:{port['master']}"
        self.filer = f"http://127.0.0.1:{port['filer']}"
        self.s3 = f"http://127.0.0.1:{port['s3']}"
        self.sockets = [Path(f"/tmp/seaweedfs-{service}-grpc-{port[service + '.grpc']}.sock")
                        for service in ("master", "volume", "filer", "s3")]
        cmd = [str(weed), f"-logdir={logs}", "server", f"-dir={data}",
               "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-master.port={port['master']}", "-master.volumeSizeLimitMB=1024",
               f"-volume.port={port['volume']}", "-filer", f"-filer.port={port['filer']}",
               f"-filer.localSocket={tmp / 'filer.sock'}",
               "-s3", f"-s3.port={port['s3']}", f"-s3.localSocket={tmp / 's3.sock'}",
               "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={identities}"]
        cmd += [f"-{service}.port.grpc={port[service + '.grpc']}"
                for service in ("master", "volume", "filer", "s3")]
        self.log = open(tmp / "weed.log", "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=benchlib.child_env(tmp / "home-weed"))
        # The gateway answers before the filer behind it does: retry the
        # bucket's creation until it works.
        deadline = time.monotonic() + 120
        while True:
            made = subprocess.run([str(python), str(PEERS / "s3_tool.py"), self.s3, "create-bucket", BUCKET],
                                  capture_output=True, text=True, env=self.client_env(tmp / "home-admin"))
            if made.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"error: SeaweedFS did not start (see {tmp / 'weed.log'}):\n{made.stderr[-1500:]}")
            time.sleep(0.5)

    def client_env(self, home):
        return {**benchlib.child_env(home), **self.env}

    def cpu(self):
        return benchlib.cpu_seconds(self.proc.pid)

    def object_sha256(self, key):
        """sha256 of the object as the filer serves it (not through S3)."""
        import hashlib
        import urllib.request
        digest = hashlib.sha256()
        url = f"{self.filer}/buckets/{BUCKET}/{urllib.parse.quote(key)}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        size = 0
        with opener.open(url, timeout=600) as reply:
            while block := reply.read(8 * MIB):
                digest.update(block)
                size += len(block)
        return digest.hexdigest(), size

    def delete(self, key):
        status, _, body = benchlib.request("DELETE", f"{self.filer}/buckets/{BUCKET}/{urllib.parse.quote(key)}")
        if status not in (200, 202, 204):
            raise RuntimeError(f"DELETE {key} from the filer answered {status}: {body[:300]!r}")
        # Give the space back now rather than in 15 minutes.
        benchlib.request("GET", f"{self.master}/vol/vacuum?garbageThreshold=0.0001")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for socket_path in self.sockets:
            socket_path.unlink(missing_ok=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=benchlib.parse_size, default=2 << 30, help="file size (default 2GiB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset of " + ",".join(CLIENTS))
    parser.add_argument("--parts", type=int, default=4, help="chunkup's connections for the file (--parts)")
    parser.add_argument("--chunkup-bin", help="use this chunkup binary instead of a release build")
    parser.add_argument("--tmpdir", help="where the file and SeaweedFS's data go (default: the system's)")
    args = parser.parse_args()
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        sys.exit(f"error: unknown clients {sorted(unknown)}")

    weed = PEERS / "bin" / "weed"
    if not weed.exists():
        sys.exit(f"error: {weed} missing: run scripts/test.sh once (it builds the pinned SeaweedFS)")
    python = benchlib.ensure_python_peers()
    aws = python.with_name("aws")
    binary = benchlib.build_release(args.chunkup_bin) if "chunkup" in clients else None
    tmp = Path(tempfile.mkdtemp(prefix="chunkup-bench-s3-", dir=args.tmpdir))
    store = None
    try:
        source = tmp / "payload.bin"
        print(f"==> writing {args.size / MIB:.0f} MiB of random data to {source}", flush=True)
        sha256 = benchlib.write_random_file(source, args.size)
        store = SeaweedFs(weed, tmp, python)
        print(f"==> SeaweedFS: S3 {store.s3}, filer {store.filer}", flush=True)

        def command(client, key):
            if client == "chunkup":
                return [str(binary), "upload", str(source), "--to", f"{store.s3}/{BUCKET}/{key}",
                        "--protocol", "s3", "--parts", str(args.parts), "--json", "--no-resume"]
            if client == "aws-cli":
                return [str(aws), "--endpoint-url", store.s3, "s3", "cp", "--only-show-errors",
                        str(source), f"s3://{BUCKET}/{key}"]
            return [str(python), str(PEERS / "boto3_upload.py"), store.s3, str(source), BUCKET, key]

        # The first write to a fresh SeaweedFS grows volumes (seconds):
        # not part of any client's figures.
        warmup = tmp / "warmup.bin"
        benchlib.write_random_file(warmup, 16 * MIB)
        subprocess.run([str(aws), "--endpoint-url", store.s3, "s3", "cp", "--only-show-errors", str(warmup),
                        f"s3://{BUCKET}/warmup.bin"], env=store.client_env(tmp / "home-warmup"), check=True)
        store.delete("warmup.bin")

        results = {client: [] for client in clients}
        for round_number in range(args.rounds):
            order = clients[round_number % len(clients):] + clients[:round_number % len(clients)]
            for client in order:
                key = f"round{round_number}/{client}.bin"
                env = store.client_env(tmp / f"home-{client}-{round_number}")
                server_before = store.cpu()
                wall, cpu, rss = benchlib.measure(command(client, key), env, tmp=tmp)
                server_cpu = store.cpu() - server_before
                digest, size = store.object_sha256(key)
                if digest != sha256 or size != args.size:
                    raise RuntimeError(f"{client}: stored {size} bytes with sha256 {digest}, expected {sha256}")
                store.delete(key)
                results[client].append((wall, cpu, rss, server_cpu))
                print(f"round {round_number + 1} {client:8} {args.size / MIB / wall:8.1f} MiB/s "
                      f"cpu {cpu:6.2f} s  rss {rss / 1024:7.1f} MiB  server cpu {server_cpu:6.2f} s", flush=True)

        print()
        print(f"# {args.size / MIB:.0f} MiB to SeaweedFS (weed {benchlib.version([str(weed), 'version'])}) "
              f"on 127.0.0.1, {args.rounds} rounds, medians; chunkup {benchlib.git_commit()} --parts {args.parts}, "
              f"{benchlib.version([str(aws), '--version'])}")
        print(f"# {benchlib.machine()}")
        header = f"{'client':10} {'MiB/s':>8} {'CPU s':>7} {'RSS MiB':>8} {'server CPU s':>13}"
        reference = "aws-cli" if "aws-cli" in results else None
        if reference:
            header += f" {'throughput x':>13} {'CPU x':>7} {'RSS x':>7}"
        print(header)
        medians = {}
        for client in clients:
            rows = results[client]
            medians[client] = (
                args.size / MIB / statistics.median(r[0] for r in rows),
                statistics.median(r[1] for r in rows),
                statistics.median(r[2] for r in rows) / 1024,
                statistics.median(r[3] for r in rows),
            )
        for client in clients:
            speed, cpu, rss, server = medians[client]
            line = f"{client:10} {speed:8.1f} {cpu:7.2f} {rss:8.1f} {server:13.2f}"
            if reference:
                ref = medians[reference]
                line += f" {speed / ref[0]:13.2f} {cpu / ref[1]:7.2f} {rss / ref[2]:7.2f}"
            print(line)
        if reference and "chunkup" in medians:
            speed, cpu = medians["chunkup"][0] / medians[reference][0], medians["chunkup"][1] / medians[reference][1]
            verdict = "met" if speed >= 1.0 and cpu <= 0.5 else "missed"
            print(f"# goal (>= aws-cli throughput at <= half its CPU): {verdict} "
                  f"(throughput x{speed:.2f}, CPU x{cpu:.2f})")
    finally:
        if store is not None:
            store.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
