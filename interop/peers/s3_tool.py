"""boto3 as the S3 peer of chunkup's interop harness.

    python s3_tool.py ENDPOINT create-bucket BUCKET
    python s3_tool.py ENDPOINT put-cors BUCKET        (CORS rules as JSON on stdin)
    python s3_tool.py ENDPOINT presign                (requests as JSON on stdin)

Credentials and region come from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION), as for any AWS SDK. Addressing is
path-style (`ENDPOINT/BUCKET/KEY`) and signatures are SigV4, which is what
SeaweedFS and most S3-compatible stores accept on a plain host:port.

`presign` reads a JSON array of `{"method": <boto3 client method, e.g.
"upload_part">, "params": {...}, "expires": <seconds>}` and prints a JSON
array of the presigned URLs, in order: SigV4 query-string presigning, which
a plain HTTP client (curl, reqwest, a browser) can use without any SDK.

`put-cors` reads a JSON array of CORS rules in boto3's shape
(`AllowedOrigins`, `AllowedMethods`, `AllowedHeaders`, `ExposeHeaders`,
`MaxAgeSeconds`).
"""

import json
import sys

import boto3
from botocore.config import Config

HTTP_METHODS = {
    "create_multipart_upload": "POST",
    "upload_part": "PUT",
    "list_parts": "GET",
    "complete_multipart_upload": "POST",
    "abort_multipart_upload": "DELETE",
    "put_object": "PUT",
    "get_object": "GET",
    "head_object": "HEAD",
}


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    endpoint, command = argv[1], argv[2]
    s3 = client(endpoint)
    if command == "create-bucket" and len(argv) == 4:
        s3.create_bucket(Bucket=argv[3])
    elif command == "put-cors" and len(argv) == 4:
        rules = json.load(sys.stdin)
        s3.put_bucket_cors(Bucket=argv[3], CORSConfiguration={"CORSRules": rules})
    elif command == "presign" and len(argv) == 3:
        urls = []
        for request in json.load(sys.stdin):
            method = request["method"]
            urls.append(
                s3.generate_presigned_url(
                    ClientMethod=method,
                    Params=request["params"],
                    ExpiresIn=request.get("expires", 3600),
                    HttpMethod=HTTP_METHODS.get(method),
                )
            )
        json.dump(urls, sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
