"""A token-checking proxy in front of `chunkup serve`, for the auth-refresh
tests: a server whose tokens expire mid-upload.

    python3 token_proxy.py http://127.0.0.1:UPSTREAM [--expire-after N] [--open]

Prints `listening http://127.0.0.1:PORT` once it accepts connections.

- `GET /_token` issues a fresh token (`tok-1`, `tok-2`, …): the token
  service. Only the newest token is valid, for N requests (default 5); the
  next request with it is answered 401, as an expired token would be.
- Every other request needs `Authorization: Bearer <valid token>` (unless
  `--open`) and is forwarded upstream (the `Host` is kept, so the server's
  `Location`s point back here).
- `POST /_fail?count=K&status=S` answers the next K forwarded requests with
  status S instead of forwarding them (a failing server, for retry tests).
- `GET /_stats` is JSON: tokens issued, 401s sent, requests forwarded,
  failures injected, and the methods forwarded.
"""

import argparse
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class State:
    def __init__(self, expire_after, open_access):
        self.lock = threading.Lock()
        self.expire_after = expire_after
        self.open = open_access
        self.issued = 0
        self.current = None
        self.uses = 0
        self.refused = 0
        self.forwarded = 0
        self.injected = 0
        self.fail_left = 0
        self.fail_status = 503
        self.methods = []

    def issue(self):
        with self.lock:
            self.issued += 1
            self.current = f"tok-{self.issued}"
            self.uses = 0
            return self.current

    def admit(self, authorization):
        """None to forward, else the status to answer with."""
        with self.lock:
            if self.fail_left > 0:
                self.fail_left -= 1
                self.injected += 1
                return self.fail_status
            if not self.open:
                valid = self.current is not None and authorization == f"Bearer {self.current}"
                if not valid or self.uses >= self.expire_after:
                    self.refused += 1
                    return 401
                self.uses += 1
            self.forwarded += 1
            return None

    def stats(self):
        with self.lock:
            return {
                "tokens_issued": self.issued,
                "refused": self.refused,
                "forwarded": self.forwarded,
                "injected": self.injected,
                "methods": list(self.methods),
            }


def make_handler(upstream, state):
    target = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def answer(self, status, body=b"", headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def handle_any(self):
            body = self.read_body()
            path = urllib.parse.urlsplit(self.path)
            if path.path == "/_token" and self.command == "GET":
                return self.answer(200, state.issue().encode(), [("Content-Type", "text/plain")])
            if path.path == "/_stats" and self.command == "GET":
                return self.answer(200, json.dumps(state.stats()).encode(), [("Content-Type", "application/json")])
            if path.path == "/_fail" and self.command == "POST":
                query = urllib.parse.parse_qs(path.query)
                with state.lock:
                    state.fail_left = int(query.get("count", ["1"])[0])
                    state.fail_status = int(query.get("status", ["503"])[0])
                return self.answer(204)
            refusal = state.admit(self.headers.get("Authorization"))
            if refusal is not None:
                return self.answer(refusal, headers=[("Cache-Control", "no-store")])
            with state.lock:
                state.methods.append(self.command)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers.pop("Authorization", None)
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                connection.request(self.command, self.path, body=body or None, headers=headers)
                reply = connection.getresponse()
                data = reply.read()
                kept = [(k, v) for k, v in reply.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
                self.answer(reply.status, data, kept)
            except OSError as error:
                self.answer(502, str(error).encode())
            finally:
                connection.close()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("upstream")
    parser.add_argument("--expire-after", type=int, default=5)
    parser.add_argument("--open", action="store_true")
    args = parser.parse_args()
    state = State(args.expire_after, args.open)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(args.upstream, state))
    server.daemon_threads = True
    print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
