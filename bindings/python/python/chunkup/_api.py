"""The Pythonic layer over the generated bindings: keyword options, plain
callables as hooks (sync or async), a synchronous upload()."""

import asyncio
import inspect
import os

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


class Upload:
    """One file to upload. ``await start()`` once; ``pause()``,
    ``resume()``, ``stop()`` and ``terminate()`` from anywhere.

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
        path,
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
        self.path = os.fspath(path)
        self.endpoint = endpoint
        self.options = options(**option_fields)
        self._native = _native.Upload(
            self.path,
            endpoint,
            self.options,
            _wrap(on_event, _Listener, _native.UploadListener),
            store,
            transport,
            _wrap(header_provider, _HeaderProvider, _native.HeaderProvider),
            _wrap(should_retry, _RetryDecision, _native.RetryDecision),
            _wrap(signer, _Signer, _native.Signer),
        )

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
        return f"Upload({self.path!r}, {self.endpoint!r})"


async def upload_async(path, endpoint="", **kwargs):
    """Uploads the file at `path` (asyncio); the keywords of :class:`Upload`."""
    return await Upload(path, endpoint, **kwargs).start()


def upload(path, endpoint="", **kwargs):
    """Uploads the file at `path` and returns its :class:`UploadReport`,
    blocking (runs its own event loop: use :func:`upload_async` inside one).
    Ctrl-C stops the upload; it stays resumable over the same store."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(upload_async(path, endpoint, **kwargs))
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
