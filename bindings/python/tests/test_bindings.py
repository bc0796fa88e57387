"""Tests of the generated UniFFI layer of the installed wheel
(`chunkup._native`; run by scripts/ffi.sh from a fresh venv).

Real uploads to the `chunkup serve` at $CHUNKUP_TEST_BASE (faults on), with
the server's sha256 as the judge, and a matrix of child processes that must
all exit normally (issue #11, fault 6). Plain unittest, no os._exit:

    CHUNKUP_TEST_BASE=http://127.0.0.1:PORT .venv/bin/python -m unittest -v test_bindings

$CHUNKUP_EXIT_RUNS sets the repetitions of each exit scenario (default 10);
$CHUNKUP_EXIT_ONLY=NAME runs only that scenario (complete, timeout, stop,
sigint).
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.error
import urllib.request

from chunkup import _native as c
from support import BASE, HERE, server_upload, write_source

EXIT_RUNS = int(os.environ.get("CHUNKUP_EXIT_RUNS", "10"))
EXIT_ONLY = os.environ.get("CHUNKUP_EXIT_ONLY")


def options(**changes):
    opts = c.default_upload_options()
    opts.protocol = c.Protocol.RANGED
    opts.chunk_size = 256 * 1024
    opts.progress_interval_ms = 0
    for key, value in changes.items():
        setattr(opts, key, value)
    return opts


class Recorder(c.UploadListener):
    def __init__(self):
        self.acknowledged = []
        self.events = []
        self.threads = set()
        self.first_progress = asyncio.Event()

    def on_event(self, event):
        self.threads.add(threading.get_ident())
        if isinstance(event, c.UploadEvent.PROGRESS):
            self.acknowledged.append(event.progress.acknowledged)
            if event.progress.acknowledged > 0:
                self.first_progress.set()  # on the loop's thread: see test_exact_bytes
        else:
            self.events.append(event)


class DictStore(c.ResumeStore):
    """The app's resume store: a key-value store of the core's JSON."""

    def __init__(self):
        self.records = {}

    def load(self, key):
        return self.records.get(key)

    def save(self, key, record):
        self.records[key] = record

    def remove(self, key):
        self.records.pop(key, None)

    def list(self):
        return list(self.records.values())

    def parsed(self):
        return c.remembered(self)


class FileStore(DictStore):
    """A store that survives the process: one JSON file of records."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        if os.path.exists(path):
            with open(path) as f:
                self.records = json.load(f)

    def _flush(self):
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.records, f)
        os.replace(self.path + ".tmp", self.path)

    def save(self, key, record):
        super().save(key, record)
        self._flush()

    def remove(self, key):
        super().remove(key)
        self._flush()


class UrllibTransport(c.Transport):
    """A foreign transport: the engine decides, urllib sends (in a worker
    thread of asyncio, so the event loop stays free)."""

    def __init__(self):
        self.requests = 0

    async def send(self, request):
        self.requests += 1
        return await asyncio.to_thread(self._exchange, request)

    @staticmethod
    def _exchange(request):
        body = None
        if request.body is not None:
            with open(request.body.path, "rb") as f:
                f.seek(request.body.offset)
                body = f.read(request.body.length)
        http = urllib.request.Request(request.url, data=body, method=request.method)
        for header in request.headers:
            http.add_header(header.key, header.value)
        try:
            try:
                reply = urllib.request.urlopen(http, timeout=30)
            except urllib.error.HTTPError as error:
                reply = error
            with reply:
                headers = [c.KeyValue(key=k, value=v) for k, v in reply.headers.items()]
                return c.HttpResponse(status=reply.status, headers=headers, body=reply.read(65536))
        except OSError as error:
            raise c.TransportError.Reset(detail=str(error)) from error


class Uploads(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    async def test_exact_bytes_and_callbacks_on_the_polling_thread(self):
        path, digest = write_source(self.dir, "exact.bin", 6 * 1024 * 1024 + 5, 1)
        listener = Recorder()
        upload = c.Upload(path, f"{BASE}/ranged", options(), listener, None, None)
        report = await upload.start()
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)
        self.assertEqual(listener.acknowledged, sorted(listener.acknowledged), "progress went back")
        self.assertEqual(listener.acknowledged[-1], report.size)
        # The upload runs on the caller's executor: every callback came on
        # the thread running this event loop.
        self.assertEqual(listener.threads, {threading.get_ident()})

    async def test_tus_under_faults(self):
        path, digest = write_source(self.dir, "tus.bin", 3 * 1024 * 1024 + 9, 2)
        upload = c.Upload(path, f"{BASE}/tus", options(protocol=c.Protocol.TUS), None, None, None)
        report = await upload.start()
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)

    async def test_stop_keeps_the_upload_and_a_new_upload_continues_it(self):
        path, digest = write_source(self.dir, "stop.bin", 16 * 1024 * 1024, 4)
        store = DictStore()
        listener = Recorder()
        upload = c.Upload(path, f"{BASE}/ranged", options(), listener, store, None)
        running = asyncio.ensure_future(upload.start())
        await asyncio.wait_for(listener.first_progress.wait(), 60)
        upload.stop()
        with self.assertRaises(c.UploadError.Stopped) as stopped:
            await running
        self.assertEqual(stopped.exception.reason, "the upload was stopped; it can be continued later")
        self.assertIsInstance(listener.events[-1], c.UploadEvent.STOPPED)
        (record,) = store.parsed()
        self.assertIsNotNone(server_upload(record.upload_url), "stop() removed the upload")
        report = await c.Upload(path, f"{BASE}/ranged", options(), None, store, None).start()
        self.assertGreater(report.resumed_from or 0, 0)
        self.assertEqual(report.upload_url, record.upload_url)
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)
        self.assertEqual(store.list(), [])

    async def test_asyncio_cancellation_is_a_stop(self):
        """Issue #11, fault 5, in Python: a cancelled task keeps the upload."""
        path, digest = write_source(self.dir, "cancel.bin", 16 * 1024 * 1024, 5)
        store = DictStore()
        listener = Recorder()
        upload = c.Upload(path, f"{BASE}/ranged", options(), listener, store, None)
        running = asyncio.ensure_future(upload.start())
        await asyncio.wait_for(listener.first_progress.wait(), 60)
        running.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await running
        calls_when_cancelled = len(listener.acknowledged) + len(listener.events)
        (record,) = store.parsed()
        held = server_upload(record.upload_url)
        self.assertIsNotNone(held, "cancelling the task deleted the upload on the server")
        self.assertGreater(held["stored"], 0)
        await asyncio.sleep(0.5)
        self.assertEqual(
            len(listener.acknowledged) + len(listener.events),
            calls_when_cancelled,
            "the listener was called after the cancelled call returned",
        )
        report = await c.Upload(path, f"{BASE}/ranged", options(), None, store, None).start()
        self.assertGreaterEqual(report.resumed_from or 0, held["stored"])
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)

    async def test_terminate_removes_the_upload(self):
        path, _ = write_source(self.dir, "terminate.bin", 16 * 1024 * 1024, 6)
        store = DictStore()
        listener = Recorder()
        upload = c.Upload(path, f"{BASE}/ranged", options(), listener, store, None)
        running = asyncio.ensure_future(upload.start())
        await asyncio.wait_for(listener.first_progress.wait(), 60)
        (record,) = store.parsed()
        upload.terminate()
        with self.assertRaises(c.UploadError.Terminated):
            await running
        self.assertIsNone(server_upload(record.upload_url), "the server still has the upload")
        self.assertEqual(store.list(), [])

    async def test_resume_after_a_killed_process(self):
        path, digest = write_source(self.dir, "resume.bin", 8 * 1024 * 1024, 3)
        state = os.path.join(self.dir, "state.json")
        stop_at = 3 * 1024 * 1024
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--killed-child", path, state, str(stop_at)
        )
        self.assertEqual(await child.wait(), -signal.SIGKILL, "the child was not killed")
        store = FileStore(state)
        self.assertEqual(len(store.list()), 1)
        report = await c.Upload(path, f"{BASE}/ranged", options(), None, store, None).start()
        self.assertGreater(report.resumed_from or 0, 0)
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)
        self.assertEqual(store.list(), [])

    async def test_foreign_async_transport(self):
        path, digest = write_source(self.dir, "foreign.bin", 2 * 1024 * 1024 + 1, 7)
        transport = UrllibTransport()
        upload = c.Upload(path, f"{BASE}/ranged", options(), None, None, transport)
        report = await upload.start()
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)
        self.assertGreaterEqual(transport.requests, 8)

    async def test_errors_have_a_kind_and_a_readable_message(self):
        # The constructor does no IO: the missing file fails start().
        missing_file = c.Upload(os.path.join(self.dir, "missing.bin"), f"{BASE}/ranged", options(), None, None, None)
        with self.assertRaises(c.UploadError.Source) as missing:
            await missing_file.start()
        self.assertIn("missing.bin", missing.exception.reason)
        self.assertIsNone(missing.exception.status)
        path, _ = write_source(self.dir, "rejected.bin", 1000, 8)
        upload = c.Upload(path, f"{BASE}/no-such-endpoint", options(), None, None, None)
        with self.assertRaises((c.UploadError.Rejected, c.UploadError.UploadGone)) as refused:
            await upload.start()
        self.assertIn("HTTP 404", refused.exception.reason)
        self.assertEqual(refused.exception.status, 404)


class Exits(unittest.TestCase):
    """Issue #11, fault 6: the interpreter ends normally after completion,
    an asyncio timeout, a stop and Ctrl-C, with and without a listener.
    Before the fix most timeouts with a listener aborted (SIGABRT, 134)."""

    SCENARIOS = [
        # (scenario, listener?, expected return code)
        ("complete", True, 0),
        ("complete", False, 0),
        ("timeout", True, 0),
        ("timeout", False, 0),
        ("stop", True, 0),
        ("stop", False, 0),
        ("sigint", True, -signal.SIGINT),
        ("sigint", False, -signal.SIGINT),
    ]

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.small, _ = write_source(cls.tmp.name, "small.bin", 2 * 1024 * 1024, 11)
        cls.big, _ = write_source(cls.tmp.name, "big.bin", 64 * 1024 * 1024, 12)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_child(self, scenario, listener):
        path = self.small if scenario == "complete" else self.big
        command = [
            sys.executable,
            os.path.join(HERE, "exit_child.py"),
            scenario,
            path,
            f"{BASE}/ranged",
            "listener" if listener else "quiet",
        ]
        child = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            if scenario == "sigint":
                line = child.stdout.readline()
                if line.strip() == "uploading":
                    child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
            return "hung", err
        if scenario == "sigint" and "KeyboardInterrupt" not in err and child.returncode == -signal.SIGINT:
            return "no KeyboardInterrupt", err
        return child.returncode, err

    def test_every_child_exits_normally(self):
        outcomes = {}
        failures = []
        for scenario, listener, expected in self.SCENARIOS:
            if EXIT_ONLY and scenario != EXIT_ONLY:
                continue
            name = f"{scenario}/{'listener' if listener else 'quiet'}"
            for _ in range(EXIT_RUNS):
                code, err = self.run_child(scenario, listener)
                outcomes.setdefault(name, {}).setdefault(code, 0)
                outcomes[name][code] += 1
                if code != expected or "FATAL" in err:
                    failures.append(f"{name}: exit {code}\n{err.strip()[-600:]}")
        table = "\n".join(
            f"  {name:18} {', '.join(f'exit {code}: {n}' for code, n in sorted(counts.items(), key=str))}"
            for name, counts in outcomes.items()
        )
        print(f"\nexit matrix ({EXIT_RUNS} runs each):\n{table}", file=sys.stderr)
        self.assertEqual(failures[:3], [], f"{len(failures)} abnormal exits:\n{table}")


def killed_child(path, state, stop_at):
    """The first process of test_resume_after_a_killed_process: uploads,
    then is killed (SIGKILL, no cleanup) once `stop_at` bytes are stored."""

    class Killer(c.UploadListener):
        def on_event(self, event):
            if isinstance(event, c.UploadEvent.PROGRESS) and event.progress.acknowledged >= stop_at:
                os.kill(os.getpid(), signal.SIGKILL)

    upload = c.Upload(path, f"{BASE}/ranged", options(), Killer(), FileStore(state), None)
    asyncio.run(upload.start())
    sys.exit("the upload completed before it could be killed")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--killed-child"]:
        killed_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    print(f"chunkup {c.chunkup_version()} against {BASE}")
    unittest.main()
