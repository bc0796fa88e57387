"""Python smoke test of the UniFFI bindings (run by scripts/ffi.sh).

Uploads under the faults of the `chunkup serve` at $CHUNKUP_TEST_BASE and
checks the server's sha256; prints `N passed, M failed` and exits non-zero
on a failure.
"""

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import threading
import traceback
import urllib.request

import chunkup_ffi as c

BASE = os.environ["CHUNKUP_TEST_BASE"]


def admin(upload_url):
    upload_id = upload_url.rstrip("/").rsplit("/", 1)[-1]
    with urllib.request.urlopen(f"{BASE}/_admin/uploads/{upload_id}", timeout=10) as reply:
        return json.load(reply)


def source(tmp, name, size, seed):
    path = os.path.join(tmp, name)
    block = hashlib.sha256(str(seed).encode()).digest() * 32768  # 1 MiB
    with open(path, "wb") as f:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            f.write(piece)
            left -= len(piece)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return path, digest


class Recorder(c.ProgressListener):
    def __init__(self, stop_at=None):
        self.acked = []
        self.events = []
        self.stop_at = stop_at
        self.upload = None
        self.lock = threading.Lock()

    def on_progress(self, acknowledged, total, bytes_per_second):
        with self.lock:
            self.acked.append(acknowledged)
        if self.stop_at is not None and acknowledged >= self.stop_at and self.upload:
            self.upload.cancel()

    def on_event(self, kind, message):
        with self.lock:
            self.events.append((kind, message))


class DictStore(c.ResumeStore):
    """The app's resume store: here a dict (it could be a file, a database)."""

    def __init__(self):
        self.records = {}

    def load(self, fingerprint):
        return self.records.get(fingerprint)

    def save(self, record):
        self.records[record.fingerprint] = record

    def remove(self, fingerprint):
        self.records.pop(fingerprint, None)

    def list(self):
        return list(self.records.values())


def options(**changes):
    opts = c.default_upload_options()
    opts.chunk_size = c.ChunkSize.FIXED(256 * 1024)
    opts.progress_interval_ms = 0
    for key, value in changes.items():
        setattr(opts, key, value)
    return opts


async def test_exact_bytes_under_faults(tmp):
    path, digest = source(tmp, "py-exact.bin", 6 * 1024 * 1024 + 5, 1)
    listener = Recorder()
    upload = c.Upload(path, f"{BASE}/ranged", options(), listener, None, None)
    report = await upload.start()
    assert admin(report.upload_url)["sha256"] == digest, "sha256 differs"
    assert listener.acked == sorted(listener.acked), "progress went back"
    assert listener.acked[-1] == report.size
    print(f"  survived {len(report.retries)} faults: {report.retries[:3]}")


async def test_tus_under_faults(tmp):
    path, digest = source(tmp, "py-tus.bin", 3 * 1024 * 1024 + 9, 2)
    upload = c.Upload(path, f"{BASE}/tus", options(protocol=c.Protocol.TUS), None, None, None)
    report = await upload.start()
    assert admin(report.upload_url)["sha256"] == digest, "sha256 differs"


class FileStore(DictStore):
    """A store that survives the process: one JSON file."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        if os.path.exists(path):
            with open(path) as f:
                for r in json.load(f):
                    r["protocol"] = getattr(c.Protocol, r["protocol"])
                    self.records[r["fingerprint"]] = c.ResumeRecord(**r)

    def _flush(self):
        rows = [dict(vars(r), protocol=r.protocol.name) for r in self.records.values()]
        with open(self.path + ".tmp", "w") as f:
            json.dump(rows, f)
        os.replace(self.path + ".tmp", self.path)

    def save(self, record):
        super().save(record)
        self._flush()

    def remove(self, fingerprint):
        super().remove(fingerprint)
        self._flush()


async def killed_child(path, state, stop_at):
    """The first process: uploads, then dies abruptly (os._exit) at stop_at."""

    class Killer(c.ProgressListener):
        def on_progress(self, acknowledged, total, bytes_per_second):
            if acknowledged >= stop_at:
                os._exit(137)

        def on_event(self, kind, message):
            pass

    upload = c.Upload(path, f"{BASE}/ranged", options(), Killer(), FileStore(state), None)
    await upload.start()


async def test_cancel_works(tmp):
    path, _ = source(tmp, "py-cancel.bin", 16 * 1024 * 1024, 4)
    stop = Recorder(stop_at=1)
    upload = c.Upload(path, f"{BASE}/ranged", options(), stop, None, None)
    stop.upload = upload
    try:
        await upload.start()
        raise AssertionError("the upload was not cancelled")
    except c.UploadError.Cancelled as e:
        assert str(e) == "the upload was cancelled", str(e)


async def test_resume_after_a_killed_process(tmp):
    path, digest = source(tmp, "py-resume.bin", 8 * 1024 * 1024, 3)
    state = os.path.join(tmp, "py-state.json")
    stop_at = 3 * 1024 * 1024
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--killed-child", path, state, str(stop_at)
    )
    assert await child.wait() == 137, "the child was not killed"
    store = FileStore(state)
    assert len(store.list()) == 1, store.list()
    report = await c.Upload(path, f"{BASE}/ranged", options(), None, store, None).start()
    assert report.resumed_from is not None and report.resumed_from > 0, report.resumed_from
    assert admin(report.upload_url)["sha256"] == digest, "sha256 differs"
    assert store.list() == []
    print(f"  resumed at {report.resumed_from} of {report.size}")


async def main():
    tests = [
        test_exact_bytes_under_faults,
        test_tus_under_faults,
        test_cancel_works,
        test_resume_after_a_killed_process,
    ]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for test in tests:
            try:
                await asyncio.wait_for(test(tmp), timeout=120)
                passed += 1
                print(f"ok   {test.__name__}")
            except Exception:
                failed += 1
                print(f"FAIL {test.__name__}")
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--killed-child"]:
        _, _, child_path, child_state, child_stop = sys.argv
        asyncio.run(killed_child(child_path, child_state, int(child_stop)))
        sys.exit("the upload completed before it could be killed")
    print(f"chunkup_ffi {c.chunkup_version()} against {BASE}")
    code = asyncio.run(main())
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: a bindings worker thread that calls back
    # into Python while the interpreter shuts down is stopped with
    # pthread_exit, whose forced unwind through Rust aborts the process
    # ("FATAL: exception not rethrown", seen intermittently at exit).
    os._exit(code)
