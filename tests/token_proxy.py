#!/usr/bin/env python3
"""A token-checking reverse proxy for the auth-refresh tests (tests/native_api.rs).

    token_proxy.py UPSTREAM_URL USES_PER_TOKEN [ALLOWED_ORIGIN]

Listens on 127.0.0.1 (a free port, printed as `listening on http://127.0.0.1:PORT`).
`POST /token` issues a new bearer token; it expires after USES_PER_TOKEN
proxied requests, mid-upload. Every other request must carry
`Authorization: Bearer <the newest token>`; otherwise it is answered 401
without reaching the upstream. `GET /_stats` reports what happened:
{"issued", "forwarded", "refused", "methods"}.

With ALLOWED_ORIGIN (a page's origin, for the headless Chromium tests) it
answers CORS as a gateway would: preflights itself (they carry no
credentials), and every answer, refusals included, readable by that origin.
"""

import http.client
import http.server
import json
import secrets
import sys
import threading
import urllib.parse

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
USES_PER_TOKEN = int(sys.argv[2])
ALLOWED_ORIGIN = sys.argv[3] if len(sys.argv) > 3 else None

lock = threading.Lock()
state = {"token": None, "uses": 0, "issued": 0, "forwarded": 0, "refused": 0, "methods": []}

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if ALLOWED_ORIGIN:
            self.send_header("Access-Control-Allow-Origin", ALLOWED_ORIGIN)
            self.send_header("Access-Control-Expose-Headers", "*")
            self.send_header("Vary", "Origin")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        body = self.body()
        if ALLOWED_ORIGIN and self.command == "OPTIONS" and "Access-Control-Request-Method" in self.headers:
            return self.reply(204, headers=[
                ("Access-Control-Allow-Methods", "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", self.headers.get("Access-Control-Request-Headers", "")),
                ("Access-Control-Max-Age", "0"),
            ])
        if self.path == "/token" and self.command == "POST":
            with lock:
                state["token"] = secrets.token_hex(16)
                state["uses"] = 0
                state["issued"] += 1
                token = state["token"]
            return self.reply(200, json.dumps({"token": token}).encode(),
                              [("Content-Type", "application/json")])
        if self.path == "/_stats":
            with lock:
                stats = {k: state[k] for k in ("issued", "forwarded", "refused", "methods")}
            return self.reply(200, json.dumps(stats).encode(), [("Content-Type", "application/json")])
        given = self.headers.get("Authorization", "")
        with lock:
            valid = (state["token"] is not None and given == f"Bearer {state['token']}"
                     and state["uses"] < USES_PER_TOKEN)
            if valid:
                state["uses"] += 1
                state["forwarded"] += 1
                state["methods"].append(self.command)
            else:
                state["refused"] += 1
        if not valid:
            return self.reply(401, b"token expired or missing\n",
                              [("WWW-Authenticate", 'Bearer error="invalid_token"')])
        upstream = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP_BY_HOP and k.lower() not in ("authorization", "host")}
        headers["Host"] = f"{UPSTREAM.hostname}:{UPSTREAM.port}"
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        own = f"http://{UPSTREAM.hostname}:{UPSTREAM.port}"
        mine = f"http://127.0.0.1:{self.server.server_address[1]}"
        out = []
        for name, value in answer.getheaders():
            if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                continue
            if ALLOWED_ORIGIN and name.lower().startswith("access-control-"):
                continue  # this gateway answers CORS itself
            if name.lower() == "location":
                value = value.replace(own, mine)
            out.append((name, value))
        upstream.close()
        self.reply(answer.status, data, out)

    do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = do_DELETE = do_OPTIONS = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
