"""What the Python test files share: the `chunkup serve` under test
($CHUNKUP_TEST_BASE, faults on; scripts/ffi.sh starts it), what it stored,
and source files of known content. Not a test module (unittest discovers
only test_*.py)."""

import hashlib
import json
import os
import urllib.error
import urllib.request

BASE = os.environ["CHUNKUP_TEST_BASE"]
HERE = os.path.dirname(os.path.abspath(__file__))


def server_upload(upload_url):
    """What the server holds for an upload (its admin API), or None when it
    has no such upload."""
    upload_id = upload_url.rstrip("/").rsplit("/", 1)[-1]
    try:
        with urllib.request.urlopen(f"{BASE}/_admin/uploads/{upload_id}", timeout=10) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def write_source(directory, name, size, seed):
    """Writes `size` bytes derived from `seed` to directory/name; returns
    the path and the content's sha256."""
    path = os.path.join(directory, name)
    block = hashlib.sha256(str(seed).encode()).digest() * 32768  # 1 MiB
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return path, digest.hexdigest()
