"""chunkup — resumable uploads that survive broken links.

Keyword-argument options (the fields of :class:`UploadOptions`, declared once
for every chunkup surface), a synchronous :func:`upload` beside the asyncio
API (:func:`upload_async`, :class:`Upload`), typed events and errors, hooks
(header provider, retry decision, S3 signer) and a file-based resume store::

    import chunkup

    report = chunkup.upload(
        "video.mp4", "https://example.com/files/",
        chunk_size=8 * 1024 * 1024,
        headers={"Authorization": "Bearer …"},
        on_event=print,
    )

    async def main():
        upload = chunkup.Upload("video.mp4", "https://example.com/files/",
                                store=chunkup.FileResumeStore())
        report = await upload.start()     # upload.pause() / stop() / terminate()
"""

from ._native import (
    ErrorKind,
    HookError,
    HttpRequest,
    HttpResponse,
    BodyRange,
    KeyValue,
    Progress,
    Protocol,
    RememberedUpload,
    RequestInfo,
    RetryProblem,
    S3Operation,
    SignRequest,
    SignedRequest,
    SourceDescription,
    SourceError,
    StoreError,
    Transport,
    TransportError,
    UploadError,
    UploadEvent,
    UploadOptions,
    UploadReport,
    UploadSource,
    chunkup_version,
)
from ._api import (
    Upload,
    forget,
    options,
    remembered,
    upload,
    upload_async,
)
from ._stores import FileResumeStore, MemoryResumeStore, ResumeStore

__version__ = chunkup_version()


def _error_kind(error):
    """The :class:`ErrorKind` of an :class:`UploadError` (its subclass)."""
    name = type(error).__name__
    screaming = "".join("_" + c if c.isupper() and i else c for i, c in enumerate(name)).upper()
    return ErrorKind[screaming]


# The generated exception renders its fields as `reason=…, status=…`: show
# the reason, as every other surface does, and name the kind.
UploadError.__str__ = lambda error: error.reason
UploadError.kind = property(_error_kind)

__all__ = [
    "BodyRange",
    "ErrorKind",
    "FileResumeStore",
    "HookError",
    "HttpRequest",
    "HttpResponse",
    "KeyValue",
    "MemoryResumeStore",
    "Progress",
    "Protocol",
    "RememberedUpload",
    "RequestInfo",
    "ResumeStore",
    "RetryProblem",
    "S3Operation",
    "SignRequest",
    "SignedRequest",
    "StoreError",
    "Transport",
    "TransportError",
    "Upload",
    "UploadError",
    "UploadEvent",
    "UploadOptions",
    "UploadReport",
    "forget",
    "options",
    "remembered",
    "upload",
    "upload_async",
]
