"""tuspyserver (a FastAPI tus server nobody here wrote) on 127.0.0.1.

    python tuspy_server.py PORT FILES_DIR

Serves tus at /files. Like a stock deployment, `OPTIONS /files` is answered
405 (the router registers OPTIONS only on `/files/`): a client must not give
up tus, or guess another protocol, because of that. Prints `listening PORT`
once it accepts connections.
"""

import socket
import sys
import threading
import time

import uvicorn
from fastapi import FastAPI
from tuspyserver import create_tus_router

port, files_dir = int(sys.argv[1]), sys.argv[2]
app = FastAPI()
app.include_router(create_tus_router(prefix="files", files_dir=files_dir))


def announce():
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            print(f"listening {port}", flush=True)
            return
        except OSError:
            time.sleep(0.05)


threading.Thread(target=announce, daemon=True).start()
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
