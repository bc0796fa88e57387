"""Resume stores: where chunkup remembers uploads so that running the same
upload again (after a crash, a Ctrl-C, a reboot) continues it."""

import os
import re
import tempfile
import threading

from . import _native

ResumeStore = _native.ResumeStore

# Keys are the engine's hex digests; anything else is refused rather than
# used as a file name.
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def default_directory():
    """Where the native client and the CLI keep resume records:
    $CHUNKUP_STATE_DIR, else $XDG_STATE_HOME/chunkup, else
    ~/.local/state/chunkup."""
    if os.environ.get("CHUNKUP_STATE_DIR"):
        return os.environ["CHUNKUP_STATE_DIR"]
    if os.environ.get("XDG_STATE_HOME"):
        return os.path.join(os.environ["XDG_STATE_HOME"], "chunkup")
    return os.path.join(os.path.expanduser("~"), ".local", "state", "chunkup")


class FileResumeStore(_native.ResumeStore):
    """One JSON file per remembered upload in `directory` (default: the
    CLI's, see :func:`default_directory`), written atomically (temporary
    file, fsync, rename): it survives a killed process, and the CLI and the
    Rust client read the same records."""

    def __init__(self, directory=None):
        self.directory = os.fspath(directory) if directory is not None else default_directory()

    def _path(self, key):
        if not _KEY.match(key):
            raise _native.StoreError.Failed(f"not a resume key: {key!r}")
        return os.path.join(self.directory, key + ".json")

    def load(self, key):
        try:
            with open(self._path(key), encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _native.StoreError.Failed(f"cannot read the record {key}: {error}") from error

    def save(self, key, record):
        path = self._path(key)
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(record)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as error:
            raise _native.StoreError.Failed(f"cannot write {path}: {error}") from error

    def remove(self, key):
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as error:
            raise _native.StoreError.Failed(f"cannot remove the record {key}: {error}") from error

    def list(self):
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise _native.StoreError.Failed(f"cannot list {self.directory}: {error}") from error
        records = []
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                record = self.load(name[: -len(".json")])
                if record is not None:
                    records.append(record)
        return records

    def __repr__(self):
        return f"FileResumeStore({self.directory!r})"


class MemoryResumeStore(_native.ResumeStore):
    """Records in memory (tests, one process)."""

    def __init__(self):
        self._records = {}
        self._lock = threading.Lock()

    def load(self, key):
        with self._lock:
            return self._records.get(key)

    def save(self, key, record):
        with self._lock:
            self._records[key] = record

    def remove(self, key):
        with self._lock:
            self._records.pop(key, None)

    def list(self):
        with self._lock:
            return list(self._records.values())
