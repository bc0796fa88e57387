"""An application's signing backend for S3 uploads, for chunkup's JS tests.

    python s3_signer.py ENDPOINT BUCKET

Creates BUCKET at ENDPOINT (retrying while the S3 store starts), then serves
HTTP on a free 127.0.0.1 port and prints one line, `listening
http://127.0.0.1:PORT`, on stdout. Exits when stdin closes. Credentials and
region come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION), as for any AWS SDK; they never leave this process.

`POST /sign` is what a page's or a Node program's `sign` option calls (any
origin may: `Access-Control-Allow-Origin: *`, no credentials involved). Its
JSON body is chunkup's sign request, `{method, url, action, uploadId,
partNumber}`, optionally with `"expired": true`; it answers `{url}`, the
URL presigned with boto3 (SigV4, query string, path-style), as a backend
behind Uppy's `signPart` would. The bucket, key and query come from the
unsigned URL and must agree with the request's fields (400 otherwise), so a
test sees a wrong field. `"expired": true` hands out a URL that has already
expired by the time it is answered (valid 1 s, answered 2.2 s later: S3
counts whole seconds from `X-Amz-Date`).

For the tests (not for pages):
- `POST /cors`: the bucket's CORS rules (JSON array in boto3's shape) are
  set to the body (`put_bucket_cors`);
- `GET /object?key=K`: `{size, sha256}` of the object, or 404;
- `GET /parts?key=K&uploadId=U`: `{status, parts: [{number, size}]}` or
  `{status, code}` (ListParts' error, e.g. 404 `NoSuchUpload`).
"""

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# What a SeaweedFS that is still starting may take to create a bucket.
READY_TIMEOUT_S = 90
# An "expired" URL: valid this long, answered after EXPIRED_DELAY_S.
EXPIRED_VALID_S = 1
EXPIRED_DELAY_S = 2.2

# chunkup's S3 actions: the boto3 method, the HTTP method, and which query
# keys of the unsigned URL become which boto3 parameters.
ACTIONS = {
    "CreateMultipartUpload": ("create_multipart_upload", "POST", {}),
    "UploadPart": ("upload_part", "PUT", {"uploadId": "UploadId", "partNumber": "PartNumber"}),
    "ListParts": (
        "list_parts",
        "GET",
        {"uploadId": "UploadId", "max-parts": "MaxParts", "part-number-marker": "PartNumberMarker"},
    ),
    "CompleteMultipartUpload": ("complete_multipart_upload", "POST", {"uploadId": "UploadId"}),
    "AbortMultipartUpload": ("abort_multipart_upload", "DELETE", {"uploadId": "UploadId"}),
}
INTEGER_PARAMS = {"PartNumber", "MaxParts", "PartNumberMarker"}


class BadRequest(Exception):
    pass


def presign(s3, bucket, request):
    """The presigned URL for chunkup's sign request `request`."""
    action = request.get("action")
    if action not in ACTIONS:
        raise BadRequest(f"unknown action {action!r}")
    method, http_method, query_params = ACTIONS[action]
    if request.get("method") != http_method:
        raise BadRequest(f"{action} is a {http_method}, not {request.get('method')!r}")
    url = urlsplit(request.get("url", ""))
    prefix = f"/{bucket}/"
    if not url.path.startswith(prefix) or len(url.path) == len(prefix):
        raise BadRequest(f"{url.path!r} is not an object of bucket {bucket}")
    params = {"Bucket": bucket, "Key": unquote(url.path[len(prefix):])}
    query = parse_qs(url.query, keep_blank_values=True)
    for key, values in query.items():
        if key == "uploads" and action == "CreateMultipartUpload":
            continue
        if key not in query_params:
            raise BadRequest(f"{action}: unexpected query {key!r}")
        name = query_params[key]
        params[name] = int(values[0]) if name in INTEGER_PARAMS else values[0]
    if params.get("UploadId") != (request.get("uploadId") or None) and action != "CreateMultipartUpload":
        raise BadRequest(f"uploadId {request.get('uploadId')!r} is not the URL's")
    if params.get("PartNumber") != request.get("partNumber"):
        raise BadRequest(f"partNumber {request.get('partNumber')!r} is not the URL's")
    expired = request.get("expired") is True
    signed = s3.generate_presigned_url(
        ClientMethod=method,
        Params=params,
        ExpiresIn=EXPIRED_VALID_S if expired else 3600,
        HttpMethod=http_method,
    )
    if expired:
        time.sleep(EXPIRED_DELAY_S)
    return signed


def handler(s3, bucket):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self):
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, POST")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
            self.send_header("Access-Control-Max-Age", "600")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"null")

        def do_POST(self):
            try:
                if self.path == "/sign":
                    self.answer(200, {"url": presign(s3, bucket, self.body())})
                elif self.path == "/cors":
                    rules = self.body()
                    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
                    self.answer(200, {})
                else:
                    self.answer(404, {"error": "no such route"})
            except (BadRequest, ValueError) as error:
                self.answer(400, {"error": str(error)})

        def do_GET(self):
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                if url.path == "/object":
                    data = s3.get_object(Bucket=bucket, Key=query["key"])["Body"].read()
                    self.answer(200, {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
                elif url.path == "/parts":
                    listed = s3.list_parts(Bucket=bucket, Key=query["key"], UploadId=query["uploadId"])
                    parts = [{"number": p["PartNumber"], "size": p["Size"]} for p in listed.get("Parts", [])]
                    self.answer(200, {"status": 200, "parts": parts})
                else:
                    self.answer(404, {"error": "no such route"})
            except ClientError as error:
                status = error.response["ResponseMetadata"]["HTTPStatusCode"]
                self.answer(status, {"status": status, "code": error.response["Error"]["Code"]})
            except KeyError as error:
                self.answer(400, {"error": f"missing {error}"})

    return Handler


def create_bucket(s3, bucket):
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            s3.create_bucket(Bucket=bucket)
            return
        except Exception as error:  # not listening yet, filer not ready, ...
            if time.monotonic() > deadline:
                sys.exit(f"cannot create bucket {bucket} within {READY_TIMEOUT_S} s: {error}")
            time.sleep(0.3)


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    endpoint, bucket = argv[1], argv[2]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(s3, bucket))
    create_bucket(s3, bucket)
    print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the test's end of stdin (or its death)


if __name__ == "__main__":
    main(sys.argv)
