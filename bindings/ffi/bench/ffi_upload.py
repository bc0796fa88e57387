"""Uploads one file through the Python bindings (no listener, no store), for ffi_vs_cli.sh."""

import asyncio
import sys
import time

import chunkup_ffi as c


async def main(path, endpoint):
    started = time.monotonic()
    upload = c.Upload(path, endpoint, c.default_upload_options(), None, None, None)
    report = await upload.start()
    print(f"ffi: {report.size} bytes in {time.monotonic() - started:.2f}s -> {report.upload_url}")


asyncio.run(main(sys.argv[1], sys.argv[2]))
