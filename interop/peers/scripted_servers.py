"""Small HTTP/1.1 servers that behave like real ones the client met, on
127.0.0.1, standard library only. Each stores what it receives under DIR
(one file per upload, named by its id) so a test can check the bytes.

    python scripted_servers.py MODE PORT DIR

Modes:

early-413  A tus server that, like rustus 0.5.10, refuses a PATCH larger
           than 256 KiB with 413 and then never answers another request on
           that connection: it reads and drops whatever arrives (rustus
           answers before reading the body, which then sits in the socket;
           RFC 9112 9.3 says it should close the connection). A client that
           reuses the connection waits for nothing.

ietf-complete-no-location
           A strict IETF resumable-upload server (draft -11, interop 8)
           that completes an upload sent whole in its creation request
           (`Upload-Complete: ?1`) and answers 200 without `Location`,
           which the draft allows (Location is required only for `?0`).
           Incomplete creations get 201 + Location; HEAD and PATCH work.

Prints `listening PORT` once it accepts connections.
"""

import os
import socket
import sys
import threading

LIMIT = 256 * 1024


def read_head(conn, buffer):
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buffer += data
    head, rest = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return (method, path, headers), rest


def read_body(conn, rest, length):
    body = rest
    while len(body) < length:
        data = conn.recv(min(1 << 20, length - len(body)))
        if not data:
            raise ConnectionError("body cut short")
        body += data
    return body[:length], body[length:]


def respond(conn, status, reason, headers=(), body=b""):
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


class Store:
    def __init__(self, root):
        self.root = root
        self.lock = threading.Lock()
        self.next = 0
        self.lengths = {}

    def create(self, length):
        with self.lock:
            self.next += 1
            upload = f"u{self.next}"
        open(os.path.join(self.root, upload), "wb").close()
        self.lengths[upload] = length
        return upload

    def path(self, upload):
        return os.path.join(self.root, os.path.basename(upload))

    def exists(self, upload):
        return os.path.exists(self.path(upload))

    def size(self, upload):
        return os.path.getsize(self.path(upload))

    def append(self, upload, data):
        with open(self.path(upload), "ab") as f:
            f.write(data)


def early_413(conn, store):
    buffer = b""
    while True:
        request, buffer = read_head(conn, buffer)
        if request is None:
            return
        method, path, headers = request
        length = int(headers.get("content-length", "0"))
        tus = [("Tus-Resumable", "1.0.0")]
        upload = path.rsplit("/", 1)[-1]
        if method == "OPTIONS":
            respond(conn, 204, "No Content",
                    tus + [("Tus-Version", "1.0.0"), ("Tus-Extension", "creation,termination")])
        elif method == "POST":
            _, buffer = read_body(conn, buffer, length)
            created = store.create(int(headers.get("upload-length", "0")))
            respond(conn, 201, "Created", tus + [("Location", f"/files/{created}")])
        elif method == "HEAD":
            if not store.exists(upload):
                respond(conn, 404, "Not Found", tus)
                continue
            respond(conn, 200, "OK", tus + [
                ("Upload-Offset", str(store.size(upload))),
                ("Upload-Length", str(store.lengths.get(upload, 0))),
                ("Cache-Control", "no-store"),
            ])
        elif method == "PATCH" and length > LIMIT:
            # The body is taken in (as the socket would) but not stored; the
            # refusal follows, then silence on this connection.
            _, buffer = read_body(conn, buffer, length)
            respond(conn, 413, "Payload Too Large", tus)
            while conn.recv(65536):
                pass
            return
        elif method == "PATCH":
            body, buffer = read_body(conn, buffer, length)
            if int(headers.get("upload-offset", "-1")) != store.size(upload):
                respond(conn, 409, "Conflict", tus)
                continue
            store.append(upload, body)
            respond(conn, 204, "No Content", tus + [("Upload-Offset", str(store.size(upload)))])
        elif method == "DELETE":
            respond(conn, 204, "No Content", tus)
        else:
            respond(conn, 405, "Method Not Allowed")


def ietf_complete_no_location(conn, store):
    buffer = b""
    interop = [("Upload-Draft-Interop-Version", "8")]
    while True:
        request, buffer = read_head(conn, buffer)
        if request is None:
            return
        method, path, headers = request
        length = int(headers.get("content-length", "0"))
        upload = path.rsplit("/", 1)[-1]
        complete = headers.get("upload-complete") == "?1"
        if method == "OPTIONS":
            respond(conn, 204, "No Content", interop + [
                ("Accept-Patch", "application/partial-upload"),
                ("Upload-Limit", "max-size=1000000000"),
            ])
        elif method == "POST":
            body, buffer = read_body(conn, buffer, length)
            created = store.create(int(headers.get("upload-length", "0")))
            store.append(created, body)
            if complete:
                # Done: the final response, no Location (draft -11 allows it).
                respond(conn, 200, "OK", interop, b"stored")
            else:
                respond(conn, 201, "Created", interop + [
                    ("Location", f"/files/{created}"),
                    ("Upload-Offset", str(store.size(created))),
                    ("Upload-Complete", "?0"),
                ])
        elif method == "HEAD":
            if not store.exists(upload):
                respond(conn, 404, "Not Found", interop)
                continue
            respond(conn, 204, "No Content", interop + [
                ("Upload-Offset", str(store.size(upload))),
                ("Upload-Complete", "?0"),
                ("Cache-Control", "no-store"),
            ])
        elif method == "PATCH":
            body, buffer = read_body(conn, buffer, length)
            if int(headers.get("upload-offset", "-1")) != store.size(upload):
                respond(conn, 409, "Conflict", interop + [("Upload-Offset", str(store.size(upload)))])
                continue
            store.append(upload, body)
            respond(conn, 204, "No Content", interop + [
                ("Upload-Offset", str(store.size(upload))),
                ("Upload-Complete", "?1" if complete else "?0"),
            ])
        elif method == "DELETE":
            respond(conn, 204, "No Content", interop)
        else:
            respond(conn, 405, "Method Not Allowed")


MODES = {"early-413": early_413, "ietf-complete-no-location": ietf_complete_no_location}


def main():
    mode, port, root = MODES[sys.argv[1]], int(sys.argv[2]), sys.argv[3]
    store = Store(root)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    print(f"listening {port}", flush=True)

    def serve(conn):
        with conn:
            try:
                mode(conn, store)
            except (ConnectionError, OSError):
                pass

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
