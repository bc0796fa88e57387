"""The Pythonic layer over the generated bindings: keyword options, plain
callables as hooks (sync or async), a synchronous upload()."""

import asyncio
import inspect
import io
import os
import threading

from . import _native
from ._stores import FileResumeStore


def _pairs(value, name):
    """Headers or metadata as the bindings take them: a dict, or pairs."""
    if value is None:
        return []
    items = value.items() if hasattr(value, "items") else value
    pairs = []
    for item in items:
        if isinstance(item, _native.KeyValue):
            pairs.append(item)
            continue
        try:
            key, val = item
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected a dict or (name, value) pairs, got {item!r}") from None
        pairs.append(_native.KeyValue(key=str(key), value=str(val)))
    return pairs


def _protocol(value):
    if value is None or isinstance(value, _native.Protocol):
        return value
    try:
        return _native.Protocol[str(value).upper()]
    except KeyError:
        names = ", ".join(p.name.lower() for p in _native.Protocol)
        raise ValueError(f"unknown protocol {value!r} (one of: {names})") from None


def _option_names():
    """The record's fields, as its constructor names them."""
    parameters = inspect.signature(_native.UploadOptions.__init__).parameters
    return [name for name in parameters if name != "self"]


def options(**fields):
    """:class:`UploadOptions` from keyword arguments: every field has its
    default (the same on every chunkup surface); `headers` and `metadata`
    take a dict, `protocol` a :class:`Protocol` or its name (`"tus"`). An
    unknown name is a :class:`TypeError`."""
    opts = _native.default_upload_options()
    known = _option_names()
    for name, value in fields.items():
        if name not in known:
            raise TypeError(f"unknown upload option {name!r} (options: {', '.join(known)})")
        if name in ("headers", "metadata"):
            value = _pairs(value, name)
        elif name == "protocol":
            value = _protocol(value)
        elif name == "retry_delays_ms":
            value = [int(v) for v in value]
        setattr(opts, name, value)
    return opts


async def _call(function, *args):
    """Calls a hook that may be sync or async."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _hook_failed(error):
    if isinstance(error, _native.HookError):
        return error
    return _native.HookError.Failed(f"{type(error).__name__}: {error}")


class _HeaderProvider(_native.HeaderProvider):
    def __init__(self, provider):
        self._provider = provider

    async def headers(self, request):
        try:
            return _pairs(await _call(self._provider, request), "header_provider")
        except Exception as error:
            raise _hook_failed(error) from error


class _RetryDecision(_native.RetryDecision):
    def __init__(self, decide):
        self._decide = decide

    async def should_retry(self, problem, attempt):
        try:
            return bool(await _call(self._decide, problem, attempt))
        except Exception as error:
            raise _hook_failed(error) from error


class _Signer(_native.Signer):
    def __init__(self, sign):
        self._sign = sign

    async def sign(self, request):
        try:
            signed = await _call(self._sign, request)
        except Exception as error:
            raise _hook_failed(error) from error
        if isinstance(signed, str):
            return _native.SignedRequest(url=signed, headers=[])
        if isinstance(signed, _native.SignedRequest):
            return signed
        url, headers = signed
        return _native.SignedRequest(url=url, headers=_pairs(headers, "signer headers"))


class _Listener(_native.UploadListener):
    def __init__(self, on_event):
        self._on_event = on_event

    def on_event(self, event):
        self._on_event(event)


def _wrap(hook, adapter, base):
    if hook is None or isinstance(hook, base):
        return hook
    return adapter(hook)


class _FileObjectSource(_native.UploadSource):
    """A binary file object (or bytes) as the bindings' UploadSource.

    Seekable objects are read at any offset (their length is measured from
    their position when the upload starts); others are read once, in order,
    with the length unknown until the end (tus, IETF and Google-style
    sessions take that; ranged and S3 refuse it). Reads run in a worker
    thread, so a slow pipe does not block the event loop."""

    def __init__(self, readable, file_name):
        self._readable = readable
        self._file_name = file_name
        self._lock = threading.Lock()
        self._start = None

    def describe(self):
        try:
            seekable = bool(self._readable.seekable())
            length = None
            if seekable:
                self._start = self._readable.tell()
                length = self._readable.seek(0, io.SEEK_END) - self._start
        except (OSError, ValueError) as error:
            raise _native.SourceError.Failed(f"{type(error).__name__}: {error}") from error
        return _native.SourceDescription(
            length=length, file_name=self._file_name, fingerprint=None, seekable=seekable
        )

    def _read_at(self, offset, max_length):
        with self._lock:
            if self._start is not None:
                self._readable.seek(self._start + offset)
            return bytes(self._readable.read(max_length) or b"")

    async def read(self, offset, max_length):
        try:
            return await asyncio.to_thread(self._read_at, offset, max_length)
        except Exception as error:
            raise _native.SourceError.Failed(f"{type(error).__name__}: {error}") from error


def _source_name(readable):
    name = getattr(readable, "name", None)
    return os.path.basename(name) if isinstance(name, str) and name else "upload"


class Upload:
    """One upload. ``await start()`` once; ``pause()``, ``resume()``,
    ``stop()`` and ``terminate()`` from anywhere.

    `source` is a path (``str`` or ``os.PathLike``; read by chunkup itself,
    remembered by path, size and modification time), ``bytes``, or a binary
    file object (``open(..., "rb")``, ``io.BytesIO``, a pipe: anything with
    ``read()``). A seekable object is read at any offset and survives a
    server that lost bytes; pass ``fingerprint=`` (your identity for the
    content) to resume it after a restart. Anything else is read once, in
    order, with its length announced at the end (tus, IETF, Google-style;
    ranged and S3 need the length up front: give them a seekable object).

    - `store`: a :class:`ResumeStore` (e.g. :class:`FileResumeStore`); a new
      `Upload` of the same file over the same store continues it.
      ``store=True`` uses ``FileResumeStore()`` (the CLI's directory).
    - `on_event(event)`: every :class:`UploadEvent` (``UploadEvent.PROGRESS``,
      ``CREATED``, ``CHUNK_ACKNOWLEDGED``, ``RETRYING``, …), on the thread
      running the event loop.
    - `header_provider(request) -> dict`: asked before every request
      (:class:`RequestInfo`: ``url``, ``method``, ``refresh``); after a 401
      or 403 it is asked once more with ``refresh=True``.
    - `should_retry(problem, attempt) -> bool`: asked before every retry;
      ``False`` fails the upload with ``ErrorKind.RETRY_DECLINED``.
    - `signer(request) -> url | (url, headers)`: signs S3 requests
      (:class:`SignRequest`).
    - `transport`: a :class:`Transport` to send requests with (default:
      chunkup's own HTTP client).
    - every other keyword is an upload option (see :func:`options`).

    Hooks may be plain functions or coroutines functions. Cancelling the
    task awaiting :meth:`start` (an asyncio timeout, Ctrl-C) is a stop: the
    upload stays on the server and in the store.
    """

    def __init__(
        self,
        source,
        endpoint="",
        *,
        store=None,
        on_event=None,
        header_provider=None,
        should_retry=None,
        signer=None,
        transport=None,
        **option_fields,
    ):
        if store is True:
            store = FileResumeStore()
        self.endpoint = endpoint
        self.options = options(**option_fields)
        hooks = (
            _wrap(on_event, _Listener, _native.UploadListener),
            store,
            transport,
            _wrap(header_provider, _HeaderProvider, _native.HeaderProvider),
            _wrap(should_retry, _RetryDecision, _native.RetryDecision),
            _wrap(signer, _Signer, _native.Signer),
        )
        if isinstance(source, (str, os.PathLike)):
            self.path = os.fspath(source)
            self._native = _native.Upload(self.path, endpoint, self.options, *hooks)
            return
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(bytes(source))
        elif not callable(getattr(source, "read", None)):
            raise TypeError(
                f"source: expected a path, bytes or a binary file object, got {type(source).__name__}"
            )
        self.path = None
        self._source = source
        adapter = _FileObjectSource(source, _source_name(source))
        self._native = _native.Upload.from_source(adapter, endpoint, self.options, *hooks)

    async def start(self):
        """Runs the upload to its end: an :class:`UploadReport`, or an
        :class:`UploadError` (``.reason``, ``.status``, ``.retryable``)."""
        return await self._native.start()

    def pause(self):
        self._native.pause()

    def resume(self):
        self._native.resume()

    def stop(self):
        """Ends the upload, keeping it on the server and in the store."""
        self._native.stop()

    def terminate(self):
        """Ends the upload and removes it from the server (where the
        protocol allows) and from the store."""
        self._native.terminate()

    def __repr__(self):
        source = self.path if self.path is not None else type(self._source).__name__
        return f"Upload({source!r}, {self.endpoint!r})"


async def upload_async(source, endpoint="", **kwargs):
    """Uploads `source` (a path, bytes or a binary file object; see
    :class:`Upload`) under asyncio; the keywords of :class:`Upload`."""
    return await Upload(source, endpoint, **kwargs).start()


def upload(source, endpoint="", **kwargs):
    """Uploads `source` (a path, bytes or a binary file object; see
    :class:`Upload`) and returns its :class:`UploadReport`,
    blocking (runs its own event loop: use :func:`upload_async` inside one).
    Ctrl-C stops the upload; it stays resumable over the same store."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(upload_async(source, endpoint, **kwargs))
    raise RuntimeError("chunkup.upload() blocks: inside an event loop, await chunkup.upload_async()")


def remembered(store=None):
    """The uploads `store` remembers (default: the CLI's directory), newest
    first: :class:`RememberedUpload` (``key``, ``file_name``, ``size``,
    ``upload_url``, ``protocol``, ``acknowledged``, …). Continue one by
    uploading the same file with ``upload_url=...``."""
    return _native.remembered(store if store is not None else FileResumeStore())


def forget(key, store=None):
    """Forgets the upload remembered under `key` (it stays on the server)."""
    if isinstance(key, _native.RememberedUpload):
        key = key.key
    _native.forget(store if store is not None else FileResumeStore(), key)
