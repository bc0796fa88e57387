"""A scripted S3 multipart server that refuses unsigned requests: for the
signer tests (SeaweedFS is the real peer; this one checks that every request
carries the app signer's mark). Prints `listening http://127.0.0.1:PORT`.

- Every request but `/_object/…` needs an `X-Signature` query parameter
  (else 403 `AccessDenied`, as S3 answers a bad signature).
- `POST <key>?uploads`, `PUT <key>?partNumber=N&uploadId=U`,
  `GET <key>?uploadId=U` (ListParts), `POST <key>?uploadId=U` (complete,
  the parts the XML names, in order), `DELETE <key>?uploadId=U`.
- `GET /_object/<key>` is JSON `{"size", "sha256"}` of a completed object.
"""

import hashlib
import json
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
UPLOADS = {}  # upload id -> {"key": str, "parts": {number: bytes}}
OBJECTS = {}  # key -> bytes
NEXT_ID = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def xml(self, status, text):
        self.reply(status, text.encode(), [("Content-Type", "application/xml")])

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        key = urllib.parse.unquote(url.path.lstrip("/"))
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if key.startswith("_object/") and self.command == "GET":
            data = OBJECTS.get(key[len("_object/"):])
            if data is None:
                return self.reply(404)
            info = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            return self.reply(200, json.dumps(info).encode(), [("Content-Type", "application/json")])
        if "X-Signature" not in query:
            return self.xml(403, "<Error><Code>AccessDenied</Code><Message>no signature</Message></Error>")
        upload_id = query.get("uploadId", [None])[0]
        with LOCK:
            if self.command == "POST" and "uploads" in query:
                NEXT_ID[0] += 1
                upload_id = f"u{NEXT_ID[0]}"
                UPLOADS[upload_id] = {"key": key, "parts": {}}
                return self.xml(200, f"<InitiateMultipartUploadResult><Key>{key}</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")
            upload = UPLOADS.get(upload_id)
            if upload is None or upload["key"] != key:
                return self.xml(404, "<Error><Code>NoSuchUpload</Code></Error>")
            if self.command == "PUT" and "partNumber" in query:
                number = int(query["partNumber"][0])
                upload["parts"][number] = body
                return self.reply(200, headers=[("ETag", f'"{hashlib.md5(body).hexdigest()}"')])
            if self.command == "GET":
                parts = "".join(
                    f"<Part><PartNumber>{n}</PartNumber><ETag>&quot;{hashlib.md5(p).hexdigest()}&quot;</ETag><Size>{len(p)}</Size></Part>"
                    for n, p in sorted(upload["parts"].items())
                )
                return self.xml(200, f"<ListPartsResult><UploadId>{upload_id}</UploadId>{parts}<IsTruncated>false</IsTruncated></ListPartsResult>")
            if self.command == "POST":
                numbers = [int(n) for n in re.findall(rb"<PartNumber>(\d+)</PartNumber>", body)]
                if not numbers or any(n not in upload["parts"] for n in numbers):
                    return self.xml(400, "<Error><Code>InvalidPart</Code></Error>")
                OBJECTS[key] = b"".join(upload["parts"][n] for n in numbers)
                del UPLOADS[upload_id]
                return self.xml(200, f"<CompleteMultipartUploadResult><Key>{key}</Key><ETag>\"done\"</ETag></CompleteMultipartUploadResult>")
            if self.command == "DELETE":
                del UPLOADS[upload_id]
                return self.reply(204)
        return self.xml(400, "<Error><Code>InvalidRequest</Code></Error>")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
