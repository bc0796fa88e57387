// The Kotlin API over the generated bindings (packages dev.chunkup.api: the
// shared types declared once in crates/chunkup-api; dev.chunkup.ffi: the
// upload object and the traits the app implements). Plain JVM Kotlin +
// kotlinx.coroutines: it runs on Android and, for tests, on a desktop JVM
// through JNA. Android-only helpers live in dev.chunkup.android.
package dev.chunkup

import dev.chunkup.api.UploadEvent
import dev.chunkup.api.UploadException
import dev.chunkup.ffi.HeaderProvider
import dev.chunkup.ffi.HookException
import dev.chunkup.ffi.RetryDecision
import dev.chunkup.ffi.Signer
import dev.chunkup.ffi.Upload
import dev.chunkup.ffi.UploadListener
import kotlin.coroutines.cancellation.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asSharedFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.filterNotNull
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

// The shared types, under this package's names. Kotlin cannot reach a
// nested class through a typealias, so the sealed UploadEvent (whose
// subclasses apps match on) is imported from dev.chunkup.api itself.

/** Options of one upload; every field has the default every surface shares. */
typealias UploadOptions = dev.chunkup.api.UploadOptions
/** The stable kind of a [ChunkupException]. */
typealias ErrorKind = dev.chunkup.api.ErrorKind
/** The upload protocol (`null` in [UploadOptions.protocol]: ask the endpoint). */
typealias Protocol = dev.chunkup.api.Protocol
/** A header or metadata entry. */
typealias KeyValue = dev.chunkup.api.KeyValue
/** An upload a [ResumeStore] remembers ([remembered], [forget]). */
typealias RememberedUpload = dev.chunkup.api.RememberedUpload
/** What a completed upload did. */
typealias UploadReport = dev.chunkup.ffi.UploadReport
/** Where resume records are kept ([DirectoryResumeStore], [MemoryResumeStore]). */
typealias ResumeStore = dev.chunkup.ffi.ResumeStore
/** Sends the engine's requests (default: chunkup's own HTTP client). */
typealias Transport = dev.chunkup.ffi.Transport
/** A request about to be sent, as a header provider sees it. */
typealias RequestInfo = dev.chunkup.ffi.RequestInfo
/** The problem a retry would follow, as a retry decision sees it. */
typealias RetryProblem = dev.chunkup.ffi.RetryProblem
/** An S3 request to sign. */
typealias SignRequest = dev.chunkup.ffi.SignRequest
/** A signed S3 request. */
typealias SignedRequest = dev.chunkup.ffi.SignedRequest
/** The S3 operation of a [SignRequest]. */
typealias S3Operation = dev.chunkup.ffi.S3Operation

/**
 * How far an upload is: bytes the server acknowledged (never decreasing),
 * bytes handed to the network, the size, the speed and the estimated time
 * left. (Not `dev.chunkup.api.Progress`, the generated record it is made from.)
 */
data class Progress(
    val acknowledged: Long,
    val total: Long,
    val bytesPerSecond: Double,
    val sent: Long = acknowledged,
    val etaMs: Long? = null,
) {
    val fraction: Double get() = if (total == 0L) 1.0 else acknowledged.toDouble() / total
}

/**
 * Why an upload did not complete: a stable [kind], a readable [message], the
 * HTTP [status] it came with (if any), and whether trying the same upload
 * again later may succeed ([retryable]).
 */
class ChunkupException(
    val kind: ErrorKind,
    message: String,
    cause: Throwable? = null,
    val status: Int? = null,
    val retryable: Boolean = false,
) : Exception(message, cause)

/** The generated exception's kind, reason, status and retryability. */
private data class Fields(val kind: ErrorKind, val reason: String, val status: UShort?, val retryable: Boolean)

private fun UploadException.fields(): Fields = when (this) {
    is UploadException.InvalidUrl -> Fields(ErrorKind.INVALID_URL, reason, status, retryable)
    is UploadException.InvalidConfig -> Fields(ErrorKind.INVALID_CONFIG, reason, status, retryable)
    is UploadException.Rejected -> Fields(ErrorKind.REJECTED, reason, status, retryable)
    is UploadException.UploadGone -> Fields(ErrorKind.UPLOAD_GONE, reason, status, retryable)
    is UploadException.ProtocolViolation -> Fields(ErrorKind.PROTOCOL_VIOLATION, reason, status, retryable)
    is UploadException.RetriesExhausted -> Fields(ErrorKind.RETRIES_EXHAUSTED, reason, status, retryable)
    is UploadException.DeadlineExceeded -> Fields(ErrorKind.DEADLINE_EXCEEDED, reason, status, retryable)
    is UploadException.WrongProtocol -> Fields(ErrorKind.WRONG_PROTOCOL, reason, status, retryable)
    is UploadException.DiscoveryFailed -> Fields(ErrorKind.DISCOVERY_FAILED, reason, status, retryable)
    is UploadException.ServerSetup -> Fields(ErrorKind.SERVER_SETUP, reason, status, retryable)
    is UploadException.RetryDeclined -> Fields(ErrorKind.RETRY_DECLINED, reason, status, retryable)
    is UploadException.Source -> Fields(ErrorKind.SOURCE, reason, status, retryable)
    is UploadException.SourceChanged -> Fields(ErrorKind.SOURCE_CHANGED, reason, status, retryable)
    is UploadException.Store -> Fields(ErrorKind.STORE, reason, status, retryable)
    is UploadException.Stopped -> Fields(ErrorKind.STOPPED, reason, status, retryable)
    is UploadException.Terminated -> Fields(ErrorKind.TERMINATED, reason, status, retryable)
    is UploadException.Environment -> Fields(ErrorKind.ENVIRONMENT, reason, status, retryable)
    is UploadException.Http -> Fields(ErrorKind.HTTP, reason, status, retryable)
    is UploadException.Internal -> Fields(ErrorKind.INTERNAL, reason, status, retryable)
}

/** The stable kind of a generated [UploadException]. */
val UploadException.kind: ErrorKind get() = fields().kind

/** The generated exception as a [ChunkupException]. */
fun UploadException.toChunkupException(): ChunkupException {
    val f = fields()
    return ChunkupException(f.kind, f.reason, this, f.status?.toInt(), f.retryable)
}

/**
 * Options with Kotlin defaults (the same as every other surface's; see
 * [UploadOptions] for each field). Sizes are bytes, durations milliseconds.
 */
fun uploadOptions(
    protocol: Protocol? = null,
    chunkSizeBytes: Long? = null,
    headers: Map<String, String> = emptyMap(),
    metadata: Map<String, String> = emptyMap(),
    maxAttempts: Int = 10,
    retryDelaysMs: List<Long> = emptyList(),
    stallTimeoutMs: Long = 30_000,
    deadlineMs: Long? = null,
    contentType: String? = null,
    fileName: String? = null,
    fingerprint: String? = null,
    uploadUrl: String? = null,
    resume: Boolean = true,
    parallel: Int = 1,
    checksum: Boolean = false,
    progressIntervalMs: Long = 100,
): UploadOptions = UploadOptions(
    protocol = protocol,
    chunkSize = chunkSizeBytes?.toULong(),
    headers = headers.map { KeyValue(it.key, it.value) },
    metadata = metadata.map { KeyValue(it.key, it.value) },
    maxAttempts = maxAttempts.toUInt(),
    retryDelaysMs = retryDelaysMs.map { it.toULong() },
    stallTimeoutMs = stallTimeoutMs.toULong(),
    deadlineMs = deadlineMs?.toULong(),
    contentType = contentType,
    fileName = fileName,
    fingerprint = fingerprint,
    uploadUrl = uploadUrl,
    resume = resume,
    parallel = parallel.toUInt(),
    checksum = checksum,
    progressIntervalMs = progressIntervalMs.toULong(),
)

/** Headers for each request; asked again with `refresh = true` after a 401/403. */
typealias HeaderProviderFn = suspend (RequestInfo) -> Map<String, String>
/** Whether to retry after [RetryProblem], at attempt (1 for the first failure in a row). */
typealias ShouldRetryFn = suspend (problem: RetryProblem, attempt: Int) -> Boolean
/** Signs an S3 request (usually: asks the app's backend for a presigned URL). */
typealias SignerFn = suspend (SignRequest) -> SignedRequest

/** A hook's failure as the bindings take it (cancellation is passed on). */
private inline fun <T> hook(which: String, call: () -> T): T = try {
    call()
} catch (e: CancellationException) {
    throw e
} catch (e: HookException) {
    throw e
} catch (e: Exception) {
    throw HookException.Failed("$which failed: $e")
}

private class HeaderProviderHook(val provider: HeaderProviderFn) : HeaderProvider {
    override suspend fun headers(request: RequestInfo): List<KeyValue> =
        hook("the header provider") { provider(request).map { KeyValue(it.key, it.value) } }
}

private class RetryDecisionHook(val decide: ShouldRetryFn) : RetryDecision {
    override suspend fun shouldRetry(problem: RetryProblem, attempt: UInt): Boolean =
        hook("the retry decision") { decide(problem, attempt.toInt()) }
}

private class SignerHook(val sign: SignerFn) : Signer {
    override suspend fun sign(request: SignRequest): SignedRequest = hook("the signer") { sign.invoke(request) }
}

/**
 * One file upload (a path, or an [UploadSource] such as
 * [InputStreamSource]). Collect [progress] (a [Flow], conflated, never going
 * backwards) or [events] (every typed [UploadEvent]) and call [start] from a
 * coroutine. The constructor does no IO: a missing file fails [start].
 *
 * Hooks are suspend lambdas: [headerProvider] is asked before every request
 * (a 401/403 asks it once more with `refresh = true`), [shouldRetry] before
 * every retry (`false` fails with [ErrorKind.RETRY_DECLINED]), [signer] signs
 * S3 requests.
 *
 * Two ways to end it early, the same on every platform:
 * - [stop] — or cancelling the coroutine running [start] (a WorkManager
 *   stop, a closed screen's scope) — keeps the upload on the server and its
 *   record in the [ResumeStore]: a new `ChunkupUpload` of the same file over
 *   the same store continues from the server's offset.
 * - [terminate] removes the upload from the server where the protocol
 *   allows (tus termination, ranged `DELETE`, S3 abort) and forgets its record.
 */
class ChunkupUpload private constructor(
    input: Any,
    endpoint: String,
    options: UploadOptions,
    store: ResumeStore?,
    transport: Transport?,
    headerProvider: HeaderProviderFn?,
    shouldRetry: ShouldRetryFn?,
    signer: SignerFn?,
) : AutoCloseable {
    /** An upload of the file at [path]. */
    constructor(
        path: String,
        endpoint: String,
        options: UploadOptions = uploadOptions(),
        store: ResumeStore? = null,
        transport: Transport? = null,
        headerProvider: HeaderProviderFn? = null,
        shouldRetry: ShouldRetryFn? = null,
        signer: SignerFn? = null,
    ) : this(path as Any, endpoint, options, store, transport, headerProvider, shouldRetry, signer)

    /**
     * An upload of what [source] reads: an [InputStreamSource], an Android
     * `ContentUriSource`, or the app's own [UploadSource]. With a
     * [transport], each body reaches it as the request's `payload`.
     */
    constructor(
        source: UploadSource,
        endpoint: String,
        options: UploadOptions = uploadOptions(),
        store: ResumeStore? = null,
        transport: Transport? = null,
        headerProvider: HeaderProviderFn? = null,
        shouldRetry: ShouldRetryFn? = null,
        signer: SignerFn? = null,
    ) : this(source as Any, endpoint, options, store, transport, headerProvider, shouldRetry, signer)

    private val progressState = MutableStateFlow<Progress?>(null)
    private val eventFlow = MutableSharedFlow<UploadEvent>(
        extraBufferCapacity = 256,
        onBufferOverflow = BufferOverflow.DROP_OLDEST,
    )

    /** The latest progress (null before the first report). */
    val progressNow: StateFlow<Progress?> = progressState.asStateFlow()

    /** Progress reports; a slow collector sees the latest. */
    val progress: Flow<Progress> = progressNow.filterNotNull()

    /** Every event, typed (hot: collect before [start] to see them all). */
    val events: SharedFlow<UploadEvent> = eventFlow.asSharedFlow()

    private val listener = object : UploadListener {
        override fun onEvent(event: UploadEvent) {
            if (event is UploadEvent.Progress) {
                val p = event.progress
                val next = Progress(
                    p.acknowledged.toLong(), p.total.toLong(), p.bytesPerSecond,
                    p.sent.toLong(), p.etaMs?.toLong(),
                )
                // The engine never reports less; keep the Flow monotonic anyway.
                progressState.update { old ->
                    if (old == null || next.acknowledged >= old.acknowledged) next else old
                }
            }
            eventFlow.tryEmit(event)
        }
    }

    private val upload: Upload = when (input) {
        is UploadSource -> Upload.fromSource(
            input, endpoint, options, listener, store, transport,
            headerProvider?.let(::HeaderProviderHook),
            shouldRetry?.let(::RetryDecisionHook),
            signer?.let(::SignerHook),
        )
        else -> Upload(
            input as String, endpoint, options, listener, store, transport,
            headerProvider?.let(::HeaderProviderHook),
            shouldRetry?.let(::RetryDecisionHook),
            signer?.let(::SignerHook),
        )
    }

    /**
     * Runs the upload to its end; throws [ChunkupException] when it fails,
     * is stopped ([ErrorKind.STOPPED]) or terminated
     * ([ErrorKind.TERMINATED]). The upload runs in this coroutine (on
     * [Dispatchers.IO], where the store, the transport and the hooks are
     * called): cancelling it stops the upload before `start` returns, and
     * nothing is called back afterwards.
     */
    suspend fun start(): UploadReport = try {
        withContext(Dispatchers.IO) { upload.start() }
    } catch (e: UploadException) {
        throw e.toChunkupException()
    }

    fun pause() = upload.pause()
    fun resume() = upload.resume()

    /** Ends the upload, keeping it on the server and in the store (resumable). */
    fun stop() = upload.stop()

    /**
     * Ends the upload and removes it from the server and the store. Called
     * before [start], [start] removes the upload of this file that the store
     * remembers (see [discard]).
     */
    fun terminate() = upload.terminate()

    override fun close() = upload.close()
}

/**
 * Removes the upload of the file at [path] that [store] remembers, from the
 * server (where the protocol allows) and from the store: what an app does
 * when the user gives up an upload that was stopped earlier. It asks
 * nothing of the server when the store remembers no upload of the file
 * (the protocol is left to discovery, which the termination cuts short).
 */
suspend fun discard(
    path: String,
    endpoint: String,
    store: ResumeStore,
    options: UploadOptions = uploadOptions(),
    transport: Transport? = null,
) {
    ChunkupUpload(path, endpoint, options.copy(protocol = null), store, transport).use { upload ->
        upload.terminate()
        try {
            upload.start()
        } catch (e: ChunkupException) {
            if (e.kind != ErrorKind.TERMINATED) throw e
        }
    }
}

/**
 * Uploads the file at [path] to [endpoint], reporting progress to
 * [onProgress]; returns when the server holds every byte. Cancelling the
 * calling coroutine stops the upload (kept, resumable over the same store).
 */
suspend fun upload(
    path: String,
    endpoint: String,
    options: UploadOptions = uploadOptions(),
    store: ResumeStore? = null,
    transport: Transport? = null,
    headerProvider: HeaderProviderFn? = null,
    shouldRetry: ShouldRetryFn? = null,
    signer: SignerFn? = null,
    onProgress: suspend (Progress) -> Unit = {},
): UploadReport = runToEnd(
    ChunkupUpload(path, endpoint, options, store, transport, headerProvider, shouldRetry, signer), onProgress,
)

/**
 * Uploads what [source] reads (an [InputStreamSource], an Android
 * `ContentUriSource`) to [endpoint], as [upload] of a path does.
 */
suspend fun upload(
    source: UploadSource,
    endpoint: String,
    options: UploadOptions = uploadOptions(),
    store: ResumeStore? = null,
    transport: Transport? = null,
    headerProvider: HeaderProviderFn? = null,
    shouldRetry: ShouldRetryFn? = null,
    signer: SignerFn? = null,
    onProgress: suspend (Progress) -> Unit = {},
): UploadReport = runToEnd(
    ChunkupUpload(source, endpoint, options, store, transport, headerProvider, shouldRetry, signer), onProgress,
)

private suspend fun runToEnd(upload: ChunkupUpload, onProgress: suspend (Progress) -> Unit): UploadReport =
    coroutineScope {
        upload.use {
            val collector = launch { upload.progress.collect(onProgress) }
            try {
                upload.start()
            } finally {
                collector.cancel()
            }
        }
    }
