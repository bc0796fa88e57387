"""boto3's managed upload (`S3Client.upload_file`) as a reference S3 client.

    python boto3_upload.py ENDPOINT FILE BUCKET KEY

Default TransferConfig (multipart above 8 MiB, 8 MiB parts, 10 threads), as
an application calling `upload_file` gets it. Credentials and region come
from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION);
addressing is path-style, which S3-compatible stores on host:port need.
Prints one JSON line: {"bucket", "key", "size"}.
"""

import json
import os
import sys

import boto3
from botocore.config import Config


def main(argv):
    if len(argv) != 5:
        sys.exit(__doc__)
    endpoint, path, bucket, key = argv[1:]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    s3.upload_file(path, bucket, key)
    json.dump({"bucket": bucket, "key": key, "size": os.path.getsize(path)}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
