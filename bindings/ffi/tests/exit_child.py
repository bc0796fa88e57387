"""One child process of the exit matrix in test_ffi.py (issue #11, fault 6).

    python3 exit_child.py SCENARIO PATH ENDPOINT [listener|quiet]

Runs one upload of PATH to ENDPOINT under asyncio and ends the way SCENARIO
says, then lets the interpreter finalize normally (no os._exit):

- complete: the upload completes; exit 0.
- timeout:  asyncio.wait_for times out mid-upload; exit 0.
- stop:     the upload is stopped from the progress listener (or, quiet,
            from another task) after the first progress; exit 0.
- sigint:   prints "uploading" once bytes are acknowledged and waits for
            the parent's SIGINT; the KeyboardInterrupt is not caught, so
            Python ends as interrupted (killed by SIGINT, shell code 130).

Exit 3 means the scenario did not happen as planned (the upload completed
before the timeout, say): a test failure, not a crash. A crash shows as
SIGABRT (shell code 134, "FATAL: exception not rethrown").

Written against the bindings' public API only, so the same script runs the
matrix on an older build (where stop() was cancel()).
"""

import asyncio
import signal
import sys

import chunkup_ffi as c

NOT_AS_PLANNED = 3


class Listener(c.ProgressListener):
    """Counts progress; may stop the upload from inside the callback."""

    def __init__(self, loop, first_progress, stop_upload=None):
        self.loop = loop
        self.first_progress = first_progress
        self.stop_upload = stop_upload
        self.acknowledged = 0

    def on_progress(self, acknowledged, total, bytes_per_second):
        self.acknowledged = acknowledged
        if acknowledged > 0:
            if self.stop_upload is not None:
                self.stop_upload()
                self.stop_upload = None
            # Thread-safe: older builds call listeners from their own threads.
            self.loop.call_soon_threadsafe(self.first_progress.set)

    def on_event(self, kind, message):
        pass


def stop_of(upload):
    # `cancel` on builds before stop/terminate existed.
    return getattr(upload, "stop", None) or upload.cancel


def options():
    opts = c.default_upload_options()
    opts.chunk_size = c.ChunkSize.FIXED(64 * 1024)
    opts.progress_interval_ms = 0
    return opts


async def run(scenario, path, endpoint, with_listener):
    loop = asyncio.get_running_loop()
    first_progress = asyncio.Event()
    listener = Listener(loop, first_progress) if with_listener else None
    upload = c.Upload(path, endpoint, options(), listener, None, None)

    if scenario == "complete":
        report = await upload.start()
        print(f"completed {report.size} bytes")
        return 0

    if scenario == "timeout":
        try:
            await asyncio.wait_for(upload.start(), timeout=0.5)
        except asyncio.TimeoutError:
            print("timed out")
            return 0
        print("the upload completed before the timeout")
        return NOT_AS_PLANNED

    if scenario == "stop":
        if listener is not None:
            listener.stop_upload = stop_of(upload)
            running = asyncio.ensure_future(upload.start())
        else:
            running = asyncio.ensure_future(upload.start())
            await asyncio.sleep(0.3)
            stop_of(upload)()
        try:
            await running
        except c.UploadError as error:
            print(f"ended: {type(error).__name__}: {error}")
            return 0
        print("the upload completed despite the stop")
        return NOT_AS_PLANNED

    if scenario == "sigint":
        running = asyncio.ensure_future(upload.start())
        if listener is not None:
            await asyncio.wait(
                [running, asyncio.ensure_future(first_progress.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        else:
            await asyncio.sleep(0.3)
        print("uploading", flush=True)
        await running  # interrupted by the parent's SIGINT
        print("the upload completed before the interrupt")
        return NOT_AS_PLANNED

    raise SystemExit(f"unknown scenario {scenario}")


def main():
    # What an interactive program has: Ctrl-C raises KeyboardInterrupt (and
    # asyncio.run turns it into a cancellation), even when this process was
    # started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    scenario, path, endpoint = sys.argv[1:4]
    with_listener = sys.argv[4:5] != ["quiet"]
    sys.exit(asyncio.run(run(scenario, path, endpoint, with_listener)))


if __name__ == "__main__":
    main()
