"""Tests of the installed `chunkup` wheel (run by scripts/ffi.sh from a fresh
venv, never from the source tree), against a real `chunkup serve` at
$CHUNKUP_TEST_BASE (faults on) and, for credentials and retries, a
token-checking proxy process in front of it (token_proxy.py):

    CHUNKUP_TEST_BASE=http://127.0.0.1:PORT .venv/bin/python -m unittest -v test_chunkup
"""

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

import chunkup
from support import BASE, HERE, server_upload, write_source

CHUNK = 256 * 1024


class Proxy:
    """token_proxy.py as a child process, stopped by close()."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "token_proxy.py"), BASE, *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith("listening "):
            self.close()
            raise RuntimeError(f"token_proxy.py did not start: {line!r}")
        self.base = line.split(" ", 1)[1]

    def token(self):
        with urllib.request.urlopen(f"{self.base}/_token", timeout=10) as reply:
            return reply.read().decode()

    def stats(self):
        with urllib.request.urlopen(f"{self.base}/_stats", timeout=10) as reply:
            return json.load(reply)

    def fail_next(self, count, status):
        request = urllib.request.Request(f"{self.base}/_fail?count={count}&status={status}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stdout.close()


class Case(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def proxy(self, *args):
        proxy = Proxy(*args)
        self.addCleanup(proxy.close)
        return proxy


class Options(unittest.TestCase):
    def test_keywords_are_the_records_fields_with_the_shared_defaults(self):
        defaults = chunkup.options()
        self.assertIsNone(defaults.protocol, "the protocol default is auto (None)")
        self.assertIsNone(defaults.chunk_size)
        self.assertEqual(defaults.max_attempts, 10)
        self.assertEqual(defaults.stall_timeout_ms, 30000)
        self.assertTrue(defaults.resume)
        opts = chunkup.options(protocol="tus", chunk_size=CHUNK, headers={"X-A": "1"}, retry_delays_ms=[0, 10])
        self.assertEqual(opts.protocol, chunkup.Protocol.TUS)
        self.assertEqual(opts.chunk_size, CHUNK)
        self.assertEqual(opts.headers, [chunkup.KeyValue(key="X-A", value="1")])
        with self.assertRaises(TypeError) as unknown:
            chunkup.options(chunksize=1)
        self.assertIn("chunk_size", str(unknown.exception))
        with self.assertRaises(ValueError):
            chunkup.options(protocol="ftp")


class Uploads(Case):
    async def test_typed_events_with_offsets(self):
        path, digest = write_source(self.dir, "events.bin", 3 * CHUNK + 5, 1)
        events = []
        report = await chunkup.upload_async(
            path, f"{BASE}/tus", protocol="tus", chunk_size=CHUNK, progress_interval_ms=0,
            on_event=events.append,
        )
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)
        kinds = [type(e).__name__ for e in events]
        self.assertIsInstance(events[0], chunkup.UploadEvent.DISCOVERED, kinds)
        self.assertEqual(events[0].protocol, chunkup.Protocol.TUS)
        created = [e for e in events if isinstance(e, chunkup.UploadEvent.CREATED)]
        self.assertEqual([e.upload_url for e in created], [report.upload_url])
        offsets = [e.offset for e in events if isinstance(e, chunkup.UploadEvent.CHUNK_ACKNOWLEDGED)]
        self.assertEqual(offsets, sorted(offsets), "acknowledged offsets went back")
        self.assertEqual(offsets[-1], report.size)
        self.assertGreaterEqual(len(offsets), 4 - 1, offsets)  # faults may merge none, split some
        progress = [e.progress for e in events if isinstance(e, chunkup.UploadEvent.PROGRESS)]
        self.assertTrue(progress, kinds)
        self.assertEqual(progress[-1].total, report.size)
        self.assertIsInstance(progress[-1].bytes_per_second, float)
        for retrying in (e for e in events if isinstance(e, chunkup.UploadEvent.RETRYING)):
            self.assertGreaterEqual(retrying.attempt, 1)
            self.assertIsInstance(retrying.reason, str)
        self.assertIsInstance(events[-1], chunkup.UploadEvent.COMPLETED, kinds)
        self.assertEqual(events[-1].upload_url, report.upload_url)

    def test_synchronous_upload(self):
        # Not inside the test's event loop: upload() runs its own.
        path, digest = write_source(self.dir, "sync.bin", 2 * CHUNK + 1, 2)
        result = {}

        def run():
            result["report"] = chunkup.upload(path, f"{BASE}/ranged", chunk_size=CHUNK)

        worker = threading.Thread(target=run)
        worker.start()
        worker.join(120)
        report = result["report"]
        self.assertEqual(report.size, 2 * CHUNK + 1)
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)

    async def test_sync_upload_refuses_to_run_inside_an_event_loop(self):
        with self.assertRaises(RuntimeError):
            chunkup.upload("/nonexistent", f"{BASE}/ranged")

    async def test_errors_carry_kind_status_and_retryable(self):
        path, _ = write_source(self.dir, "refused.bin", 1000, 3)
        with self.assertRaises(chunkup.UploadError) as refused:
            await chunkup.upload_async(path, f"{BASE}/no-such-endpoint", protocol="ranged")
        error = refused.exception
        self.assertIsInstance(error, (chunkup.UploadError.Rejected, chunkup.UploadError.UploadGone))
        self.assertEqual(error.status, 404)
        self.assertFalse(error.retryable)
        self.assertIn("404", error.reason)
        with self.assertRaises(chunkup.UploadError.Source) as missing:
            await chunkup.upload_async(os.path.join(self.dir, "missing.bin"), f"{BASE}/ranged")
        self.assertIsNone(missing.exception.status)


class FileObjects(Case):
    """Sources that are not paths: an open file, bytes, a pipe-like reader
    (through the bindings' UploadSource), with faults on."""

    async def test_an_open_file_from_its_position_over_ranged(self):
        path, _ = write_source(self.dir, "opened.bin", 5 * CHUNK + 7, 20)
        with open(path, "rb") as whole:
            expected = hashlib.sha256(whole.read()[100:]).hexdigest()
        with open(path, "rb") as readable:
            readable.seek(100)  # the upload starts where the file object is
            report = await chunkup.upload_async(readable, f"{BASE}/ranged", chunk_size=CHUNK)
        self.assertEqual(report.size, 5 * CHUNK + 7 - 100)
        stored = server_upload(report.upload_url)
        self.assertEqual(stored["sha256"], expected)
        self.assertTrue(stored["complete"])
        self.assertEqual(stored["filename"], "opened.bin", "the file object's name is announced")

    async def test_bytes_over_tus(self):
        data = os.urandom(3 * CHUNK + 11)
        report = await chunkup.upload_async(data, f"{BASE}/tus", protocol="tus", chunk_size=CHUNK)
        self.assertEqual(report.size, len(data))
        self.assertEqual(server_upload(report.upload_url)["sha256"], hashlib.sha256(data).hexdigest())

    async def test_a_reader_that_cannot_seek_announces_its_length_at_the_end(self):
        data = os.urandom(4 * CHUNK + 3)
        report = await chunkup.upload_async(
            OneWayReader(data), f"{BASE}/tus", protocol="tus", chunk_size=CHUNK
        )
        self.assertEqual(report.size, len(data))
        self.assertEqual(server_upload(report.upload_url)["sha256"], hashlib.sha256(data).hexdigest())

    async def test_a_reader_that_fails_ends_the_upload_with_a_source_error(self):
        reader = OneWayReader(os.urandom(4 * CHUNK), fail_after=2 * CHUNK)
        with self.assertRaises(chunkup.UploadError.Source) as failed:
            await chunkup.upload_async(reader, f"{BASE}/tus", protocol="tus", chunk_size=CHUNK)
        self.assertIn("the disk went away", failed.exception.reason)
        self.assertFalse(failed.exception.retryable)

    async def test_a_seekable_object_with_a_fingerprint_is_continued_and_only_by_it(self):
        store = chunkup.MemoryResumeStore()
        path, digest = write_source(self.dir, "fingerprinted.bin", 24 * CHUNK, 21)

        with open(path, "rb") as readable:
            first = chunkup.Upload(
                readable, f"{BASE}/tus", protocol="tus", chunk_size=CHUNK, store=store,
                fingerprint="movie-v1",
                on_event=lambda e: first.stop() if isinstance(e, chunkup.UploadEvent.CHUNK_ACKNOWLEDGED) else None,
            )
            with self.assertRaises(chunkup.UploadError.Stopped):
                await first.start()
        (kept,) = chunkup.remembered(store)
        self.assertGreater(kept.acknowledged, 0)
        # Another fingerprint is other content: a new upload, never this one.
        other = await chunkup.upload_async(os.urandom(24 * CHUNK), f"{BASE}/tus", protocol="tus",
                                           chunk_size=CHUNK, store=store, fingerprint="movie-v2")
        self.assertNotEqual(other.upload_url, kept.upload_url)
        with open(path, "rb") as readable:
            report = await chunkup.upload_async(readable, f"{BASE}/tus", protocol="tus", chunk_size=CHUNK,
                                                store=store, fingerprint="movie-v1")
        self.assertEqual(report.upload_url, kept.upload_url)
        self.assertGreaterEqual(report.resumed_from, kept.acknowledged)
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)

    def test_anything_else_is_a_type_error(self):
        with self.assertRaises(TypeError):
            chunkup.Upload(42, f"{BASE}/tus")


class OneWayReader:
    """A pipe-like reader: read() only, no seek; optionally fails part-way."""

    def __init__(self, data, fail_after=None):
        self._data = data
        self._at = 0
        self._fail_after = fail_after

    def seekable(self):
        return False

    def read(self, size=-1):
        if self._fail_after is not None and self._at >= self._fail_after:
            raise OSError("the disk went away")
        end = len(self._data) if size < 0 else min(len(self._data), self._at + size)
        piece = self._data[self._at:end]
        self._at = end
        return piece


class Credentials(Case):
    async def test_expired_token_is_refreshed_once_and_the_upload_completes(self):
        # The proxy's tokens expire after 3 requests: a 12-chunk upload
        # meets several expiries mid-upload.
        proxy = self.proxy("--expire-after", "3")
        path, digest = write_source(self.dir, "auth.bin", 12 * CHUNK, 4)
        seen = []
        token = {"value": None}

        async def provider(request):
            seen.append((request.method, request.url, request.refresh))
            if request.refresh or token["value"] is None:
                token["value"] = await asyncio.to_thread(proxy.token)
            return {"Authorization": f"Bearer {token['value']}"}

        report = await chunkup.upload_async(
            path, f"{proxy.base}/tus", protocol="tus", chunk_size=CHUNK, header_provider=provider,
        )
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)
        stats = proxy.stats()
        self.assertGreaterEqual(stats["refused"], 3, stats)
        self.assertEqual(stats["tokens_issued"], 1 + stats["refused"], stats)
        refreshes = [s for s in seen if s[2]]
        self.assertEqual(len(refreshes), stats["refused"], "one refresh per expiry")
        self.assertIn("PATCH", {method for method, _, _ in seen})
        self.assertTrue(all(url.startswith(proxy.base) for _, url, _ in seen))

    async def test_a_second_refusal_is_final_and_typed(self):
        proxy = self.proxy("--expire-after", "1000")
        path, _ = write_source(self.dir, "denied.bin", CHUNK, 5)
        asked = []

        def provider(request):  # a plain function works too
            asked.append(request.refresh)
            return {"Authorization": "Bearer never-issued"}

        with self.assertRaises(chunkup.UploadError.Rejected) as refused:
            await chunkup.upload_async(path, f"{proxy.base}/tus", protocol="tus", header_provider=provider)
        self.assertEqual(refused.exception.status, 401)
        self.assertFalse(refused.exception.retryable)
        # Each refused request is asked for once, refreshed once, then given
        # up (discovery, when the engine asks the endpoint first, gives up
        # without failing the upload; the creation then fails it).
        self.assertEqual(asked[-2:], [False, True])
        self.assertEqual(asked, [False, True] * (len(asked) // 2), "more than one refresh per request")
        self.assertEqual(proxy.stats()["refused"], len(asked))

    async def test_a_failing_provider_fails_requests_not_the_process(self):
        proxy = self.proxy("--open")
        path, _ = write_source(self.dir, "broken.bin", CHUNK, 6)

        def provider(request):
            raise ConnectionError("token service down")

        with self.assertRaises(chunkup.UploadError) as failed:
            await chunkup.upload_async(
                path, f"{proxy.base}/tus", protocol="tus", header_provider=provider,
                max_attempts=2, retry_delays_ms=[0],
            )
        self.assertIn("token service down", failed.exception.reason)
        self.assertEqual(proxy.stats()["forwarded"], 0)


class Retries(Case):
    async def test_declining_a_retry_fails_with_retry_declined(self):
        proxy = self.proxy("--open")
        path, _ = write_source(self.dir, "declined.bin", 4 * CHUNK, 7)
        asked = []

        async def should_retry(problem, attempt):
            asked.append((problem.reason, problem.status, attempt))
            return False

        # Two failures: the first may go to discovery (OPTIONS), which is
        # not retried; the next request's is asked about.
        proxy.fail_next(2, 503)
        with self.assertRaises(chunkup.UploadError.RetryDeclined) as declined:
            await chunkup.upload_async(
                path, f"{proxy.base}/tus", protocol="tus", chunk_size=CHUNK, should_retry=should_retry,
            )
        # Asked once, at the first failure (the injected 503, or one of the
        # server's own faults if it came first), and the "no" ended it.
        (reason, status, attempt), = asked
        self.assertEqual((reason, attempt), ("status", 1))
        self.assertGreaterEqual(status, 500)
        self.assertIn(str(status), declined.exception.reason)
        self.assertIn(proxy.stats()["injected"], (1, 2))

    async def test_accepting_retries_with_explicit_delays_completes(self):
        proxy = self.proxy("--open")
        path, digest = write_source(self.dir, "accepted.bin", 4 * CHUNK, 8)
        asked = []
        events = []

        def should_retry(problem, attempt):
            asked.append(attempt)
            return True

        proxy.fail_next(3, 503)
        report = await chunkup.upload_async(
            path, f"{proxy.base}/tus", protocol="tus", chunk_size=CHUNK, should_retry=should_retry,
            retry_delays_ms=[0, 50], on_event=events.append,
        )
        self.assertEqual(server_upload(report.upload_url)["sha256"], digest)
        # The injected 503s come first (one may go to discovery, which is not
        # retried; the server's own faults may add retries later).
        self.assertEqual(asked[:2], [1, 2])
        retrying = [e for e in events if isinstance(e, chunkup.UploadEvent.RETRYING)]
        self.assertEqual([(e.status, e.delay_ms) for e in retrying[:2]], [(503, 0), (503, 50)])
        self.assertEqual(len(retrying), len(asked), "a retry went ahead without asking")
        self.assertEqual(proxy.stats()["injected"], 3)


class Remembered(Case):
    async def test_list_continue_and_forget(self):
        store = chunkup.FileResumeStore(os.path.join(self.dir, "state"))
        path, digest = write_source(self.dir, "remembered.bin", 32 * CHUNK, 9)
        upload = chunkup.Upload(
            path, f"{BASE}/tus", protocol="tus", chunk_size=CHUNK, store=store,
            metadata={"owner": "test"},
            on_event=lambda e: upload.stop() if isinstance(e, chunkup.UploadEvent.CHUNK_ACKNOWLEDGED) else None,
        )
        with self.assertRaises(chunkup.UploadError.Stopped):
            await upload.start()
        (kept,) = chunkup.remembered(store)
        self.assertEqual(kept.file_name, "remembered.bin")
        self.assertEqual(kept.size, 32 * CHUNK)
        self.assertEqual(kept.protocol, chunkup.Protocol.TUS)
        self.assertEqual(kept.endpoint, f"{BASE}/tus")
        self.assertGreater(kept.acknowledged, 0)
        self.assertGreater(kept.updated_ms, 0)
        self.assertIn(chunkup.KeyValue(key="owner", value="test"), kept.metadata)
        self.assertIsNotNone(server_upload(kept.upload_url))
        # The records are the CLI's: one JSON file per upload.
        self.assertEqual(os.listdir(store.directory), [f"{kept.key}.json"])

        # Continue the chosen one by its URL, with a fresh store.
        report = await chunkup.upload_async(path, protocol="tus", upload_url=kept.upload_url, chunk_size=CHUNK)
        self.assertEqual(report.upload_url, kept.upload_url)
        self.assertGreaterEqual(report.resumed_from, kept.acknowledged)
        self.assertEqual(server_upload(kept.upload_url)["sha256"], digest)

        chunkup.forget(kept, store)
        self.assertEqual(chunkup.remembered(store), [])
        self.assertEqual(os.listdir(store.directory), [])


class Signing(Case):
    async def test_the_signer_signs_every_s3_request(self):
        fake = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fake_s3.py")], stdout=subprocess.PIPE, text=True
        )
        self.addCleanup(lambda: (fake.terminate(), fake.wait(10), fake.stdout.close()))
        base = fake.stdout.readline().strip().split(" ", 1)[1]
        path, digest = write_source(self.dir, "s3.bin", 3 * 5 * 1024 * 1024 + 7, 10)
        signed = []

        async def signer(request):
            signed.append((request.operation, request.part_number))
            separator = "&" if "?" in request.url else "?"
            return f"{request.url}{separator}X-Signature=ok-{len(signed)}"

        report = await chunkup.upload_async(
            path, f"{base}/bucket/s3.bin", protocol="s3", signer=signer, chunk_size=5 * 1024 * 1024,
        )
        with urllib.request.urlopen(f"{base}/_object/bucket/s3.bin", timeout=10) as reply:
            self.assertEqual(json.load(reply)["sha256"], digest)
        operations = [op for op, _ in signed]
        self.assertEqual(operations[0], chunkup.S3Operation.CREATE_MULTIPART_UPLOAD)
        self.assertEqual(operations[-1], chunkup.S3Operation.COMPLETE_MULTIPART_UPLOAD)
        parts = sorted(n for op, n in signed if op == chunkup.S3Operation.UPLOAD_PART)
        self.assertEqual(parts[0], 1)
        self.assertEqual(parts[-1], 4)
        self.assertEqual(report.size, 3 * 5 * 1024 * 1024 + 7)

    async def test_unsigned_s3_requests_are_refused_by_the_server(self):
        fake = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fake_s3.py")], stdout=subprocess.PIPE, text=True
        )
        self.addCleanup(lambda: (fake.terminate(), fake.wait(10), fake.stdout.close()))
        base = fake.stdout.readline().strip().split(" ", 1)[1]
        path, _ = write_source(self.dir, "unsigned.bin", 1000, 11)

        def bad_signer(request):
            return request.url  # no signature

        with self.assertRaises(chunkup.UploadError) as refused:
            await chunkup.upload_async(path, f"{base}/bucket/u.bin", protocol="s3", signer=bad_signer)
        self.assertEqual(refused.exception.status, 403)


if __name__ == "__main__":
    print(f"chunkup {chunkup.__version__} from {os.path.dirname(chunkup.__file__)} against {BASE}")
    unittest.main()
