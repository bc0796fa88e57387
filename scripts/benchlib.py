"""Shared pieces of the loopback benchmarks (scripts/bench_*.py).

Measuring a client process (wall time, user + sys CPU from wait4, peak RSS),
starting servers on 127.0.0.1, installing the peers the benchmarks compare
against (tusd v2.9.1, tus-js-client, tuspy) when they are missing, and
counting user-space instructions with callgrind. Python 3 standard library
only.
"""

import hashlib
import os
import platform
import re
import resource
import shutil
import socket
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
BINARY = ROOT / "target" / "release" / "chunkup"
MIB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")
UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1000, "m": MIB, "mib": MIB,
         "mb": 1000**2, "g": 1 << 30, "gib": 1 << 30, "gb": 1000**3}

# The tusd every benchmark compares against (pinned: results must not move
# with tusd's releases).
TUSD_VERSION = "v2.9.1"
TUSD_MODULE = f"github.com/tus/tusd/v2/cmd/tusd@{TUSD_VERSION}"

# Never send loopback traffic through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parse_size(text):
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS:
        raise ValueError(f"bad size {text!r} (e.g. 1GiB, 256MiB, 1048576)")
    return int(match.group(1)) * UNITS[match.group(2).lower()]


def child_env(home):
    """No proxies, no CHUNKUP_* settings, a fresh HOME and XDG dirs (so no
    resume state from an earlier round can turn an upload into a no-op)."""
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and not k.startswith("CHUNKUP_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env[var] = str(home / var.lower())
    return env


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(method, url, headers=None, timeout=600):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=timeout) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def cpu_seconds(pid):
    """user + sys CPU seconds of a running process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


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


def measure(cmd, env, stdout=subprocess.DEVNULL, tmp=None):
    """Runs cmd; returns (wall s, cpu s, peak RSS KiB) of that process.

    Linux starts a child's ru_maxrss at its parent's peak RSS (the mm it was
    forked from is accounted at exec), so ru_maxrss is exact only above this
    script's own peak; below it, the child's VmHWM sampled from /proc is used.
    A non-zero exit raises RuntimeError with the end of its stderr."""
    with tempfile.TemporaryFile(dir=tmp) as err:
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.monotonic()
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, env=env)
        sampled = [0]
        done = threading.Event()
        sampler = threading.Thread(target=sample_hwm, args=(child.pid, sampled, done))
        sampler.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:
            child.kill()
            child.wait()
            raise
        finally:
            done.set()
            sampler.join()
        wall = time.monotonic() - start
        child.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(map(str, cmd))} exited with {code}:\n"
                               + err.read().decode(errors="replace")[-2000:])
    peak = usage.ru_maxrss if usage.ru_maxrss > floor + 1024 else sampled[0]
    return wall, usage.ru_utime + usage.ru_stime, peak


def callgrind(cmd, env, out_dir, tag, stdout=subprocess.DEVNULL):
    """User-space instructions of cmd (all threads) under callgrind."""
    out = Path(out_dir) / f"callgrind.{tag}.out"
    log = Path(out_dir) / f"callgrind.{tag}.log"
    full = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--log-file={log}"] + list(cmd)
    code = subprocess.run(full, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                          env=env).returncode
    text = log.read_text(errors="replace")
    match = re.search(r"Collected\s*:\s*(\d+)", text)
    if code != 0 or not match:
        raise RuntimeError(f"callgrind of {' '.join(map(str, cmd))} failed ({code}):\n{text[-2000:]}")
    return int(match.group(1))


def write_random_file(path, size):
    """size random bytes at path, written in small blocks (this script's own
    RSS stays low, see measure); returns their hex sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            data = os.urandom(min(MIB, left))
            digest.update(data)
            out.write(data)
            left -= len(data)
    return digest.hexdigest()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while block := data.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} x {cpu}, {mem:.0f} GiB RAM"


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def git_commit():
    out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


# -- what the benchmarks need ------------------------------------------------

def build_release(chunkup_bin=None):
    """The chunkup binary: the given one, or a fresh release build."""
    if chunkup_bin:
        return Path(chunkup_bin)
    print("==> cargo build --release -p chunkup-cli", flush=True)
    subprocess.run(["cargo", "build", "--release", "-p", "chunkup-cli"], cwd=ROOT, check=True)
    if not BINARY.exists():
        sys.exit(f"error: {BINARY} missing after the build")
    return BINARY


def _tusd_version(path):
    out = subprocess.run(["go", "version", "-m", str(path)], capture_output=True, text=True)
    match = re.search(r"^\s*mod\s+github\.com/tus/tusd/v2\s+(\S+)", out.stdout, re.M)
    return match.group(1) if match else None


def ensure_tusd():
    """tusd v2.9.1: interop/peers/bin/tusd when it is that version, else
    `go install` of that version into target/bench-tools/bin."""
    if shutil.which("go") is None:
        sys.exit("error: go is needed to install tusd " + TUSD_VERSION)
    for candidate in (PEERS / "bin" / "tusd", ROOT / "target" / "bench-tools" / "bin" / "tusd"):
        if candidate.exists() and _tusd_version(candidate) == TUSD_VERSION:
            return candidate
    gobin = ROOT / "target" / "bench-tools" / "bin"
    gobin.mkdir(parents=True, exist_ok=True)
    print(f"==> go install {TUSD_MODULE} (into {gobin})", flush=True)
    subprocess.run(["go", "install", TUSD_MODULE], env={**os.environ, "GOBIN": str(gobin)}, check=True)
    return gobin / "tusd"


def ensure_node_peers():
    """tus-js-client (and @tus/server) in interop/peers/node_modules."""
    if not (PEERS / "node_modules" / "tus-js-client").exists():
        print("==> npm ci in interop/peers", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEERS, check=True)


def ensure_python_peers():
    """tuspy in the venv interop/peers/.venv; returns its python."""
    python = PEERS / ".venv" / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import tusclient"], capture_output=True) \
        if python.exists() else None
    if probe is None or probe.returncode != 0:
        print("==> python venv with tuspy in interop/peers/.venv", flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEERS / ".venv")], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(PEERS / "requirements.txt")], check=True)
    return python


class Server:
    """A server process on 127.0.0.1 whose output names its URL (matched by
    `ready`, which returns the endpoint or None for each line)."""

    def __init__(self, name, cmd, env, log, ready, timeout=30):
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.endpoint = None
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.endpoint is None:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            lines.append(line)
            self.endpoint = ready(line)
        if self.endpoint is None:
            self.stop()
            raise RuntimeError(f"{name} did not start:\n{''.join(lines)}")
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


def start_chunkup_serve(binary, store, tmp, extra=()):
    port = free_port()
    return Server("chunkup serve",
                  [str(binary), "serve", "--addr", f"127.0.0.1:{port}", "--admin", "--dir", str(store), *extra],
                  child_env(tmp / "home-chunkup-serve"), tmp / "chunkup-serve.log",
                  lambda line: f"http://127.0.0.1:{port}" if "listening" in line else None)


def start_tusd(tusd, store, tmp):
    """tusd with the IETF draft on (interop version 6), endpoint /files/."""
    port = free_port()
    return Server(f"tusd {TUSD_VERSION}",
                  [str(tusd), "-host", "127.0.0.1", "-port", str(port), "-base-path", "/files/",
                   "-upload-dir", str(store), "-enable-experimental-protocol"],
                  child_env(tmp / "home-tusd"), tmp / "tusd.log",
                  lambda line: (m.group(1) if (m := re.search(r"upload files to: (\S+)", line)) else None))
