"""Upload one file with tuspy (the tus Python client).

    python tuspy_upload.py ENDPOINT FILE [--chunk-size BYTES] [--metadata key=value]...

The chunk size defaults to tuspy's own default (sys.maxsize: one PATCH with
the whole file, read into memory). Prints {"upload_url": ..., "size": ...}
on stdout on success; exits 1 with the error on stderr otherwise.
"""

import argparse
import json
import os
import sys

from tusclient import client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("file")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--metadata", action="append", default=[])
    args = parser.parse_args()

    metadata = {"filename": os.path.basename(args.file)}
    for item in args.metadata:
        key, _, value = item.partition("=")
        metadata[key] = value
    options = {"metadata": metadata, "retries": 2, "retry_delay": 0.2}
    if args.chunk_size:
        options["chunk_size"] = args.chunk_size
    try:
        uploader = client.TusClient(args.endpoint).uploader(args.file, **options)
        uploader.upload()
    except Exception as error:  # report any failure the same way
        print(f"tuspy: {error!r}", file=sys.stderr)
        return 1
    print(json.dumps({"upload_url": uploader.url, "size": os.path.getsize(args.file)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
