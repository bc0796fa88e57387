// The Kotlin API over the generated bindings (package dev.chunkup.ffi).
// Plain JVM Kotlin + kotlinx.coroutines: it runs on Android and, for tests,
// on a desktop JVM through JNA. Android-only helpers live in dev.chunkup.android.
package dev.chunkup

import dev.chunkup.ffi.ChunkSize
import dev.chunkup.ffi.EventKind
import dev.chunkup.ffi.KeyValue
import dev.chunkup.ffi.ProgressListener
import dev.chunkup.ffi.Protocol
import dev.chunkup.ffi.ResumeStore
import dev.chunkup.ffi.Transport
import dev.chunkup.ffi.Upload
import dev.chunkup.ffi.UploadException
import dev.chunkup.ffi.UploadOptions
import dev.chunkup.ffi.UploadReport
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

/** How far an upload is: bytes the server acknowledged, never decreasing. */
data class Progress(val acknowledged: Long, val total: Long, val bytesPerSecond: Double) {
    val fraction: Double get() = if (total == 0L) 1.0 else acknowledged.toDouble() / total
}

/** Anything else that happened (created, resumed, retrying, paused, stopped, ...). */
data class UploadEvent(val kind: EventKind, val message: String)

/** Stable error kinds; [ChunkupException.kind] is one of them. */
enum class ErrorKind {
    INVALID_URL, INVALID_CONFIG, REJECTED, UPLOAD_GONE, PROTOCOL_VIOLATION,
    RETRIES_EXHAUSTED, WRONG_PROTOCOL, DISCOVERY_FAILED, DEADLINE_EXCEEDED,
    SOURCE, SOURCE_CHANGED, STORE, HTTP, STOPPED, TERMINATED, ALREADY_STARTED,
    INTERNAL,
}

/** The stable kind of a generated [UploadException]. */
val UploadException.kind: ErrorKind
    get() = when (this) {
        is UploadException.InvalidUrl -> ErrorKind.INVALID_URL
        is UploadException.InvalidConfig -> ErrorKind.INVALID_CONFIG
        is UploadException.Rejected -> ErrorKind.REJECTED
        is UploadException.UploadGone -> ErrorKind.UPLOAD_GONE
        is UploadException.ProtocolViolation -> ErrorKind.PROTOCOL_VIOLATION
        is UploadException.RetriesExhausted -> ErrorKind.RETRIES_EXHAUSTED
        is UploadException.WrongProtocol -> ErrorKind.WRONG_PROTOCOL
        is UploadException.DiscoveryFailed -> ErrorKind.DISCOVERY_FAILED
        is UploadException.DeadlineExceeded -> ErrorKind.DEADLINE_EXCEEDED
        is UploadException.Source -> ErrorKind.SOURCE
        is UploadException.SourceChanged -> ErrorKind.SOURCE_CHANGED
        is UploadException.Store -> ErrorKind.STORE
        is UploadException.Http -> ErrorKind.HTTP
        is UploadException.Stopped -> ErrorKind.STOPPED
        is UploadException.Terminated -> ErrorKind.TERMINATED
        is UploadException.AlreadyStarted -> ErrorKind.ALREADY_STARTED
        is UploadException.Internal -> ErrorKind.INTERNAL
    }

/** Why an upload did not complete: a stable [kind] and a readable message. */
class ChunkupException(val kind: ErrorKind, message: String, cause: Throwable? = null) :
    Exception(message, cause)

/** Options with Kotlin defaults (see the generated [UploadOptions]). */
fun uploadOptions(
    protocol: Protocol = Protocol.RANGED,
    chunkSizeBytes: Long? = null,
    headers: Map<String, String> = emptyMap(),
    metadata: Map<String, String> = emptyMap(),
    maxAttempts: Int = 10,
    stallTimeoutMs: Long = 30_000,
    contentType: String? = null,
    fingerprint: String? = null,
    uploadUrl: String? = null,
): UploadOptions = UploadOptions(
    protocol = protocol,
    chunkSize = chunkSizeBytes?.let { ChunkSize.Fixed(it.toULong()) } ?: ChunkSize.Auto,
    headers = headers.map { KeyValue(it.key, it.value) },
    metadata = metadata.map { KeyValue(it.key, it.value) },
    maxAttempts = maxAttempts.toUInt(),
    stallTimeoutMs = stallTimeoutMs.toULong(),
    contentType = contentType,
    fingerprint = fingerprint,
    uploadUrl = uploadUrl,
)

/**
 * One file upload. Collect [progress] (a [Flow], conflated, never going
 * backwards) and call [start] from a coroutine.
 *
 * Two ways to end it early, the same on every platform:
 * - [stop] — or cancelling the coroutine running [start] (a WorkManager
 *   stop, a closed screen's scope) — keeps the upload on the server and its
 *   record in the [ResumeStore]: a new `ChunkupUpload` of the same file over
 *   the same store continues from the server's offset.
 * - [terminate] removes the upload from the server where the protocol
 *   allows (tus termination, ranged `DELETE`) and forgets its record.
 *
 * The constructor does no file IO (safe on the main thread): the file is
 * looked at when [start] runs, so a missing file fails [start].
 */
class ChunkupUpload(
    private val path: String,
    private val endpoint: String,
    private val options: UploadOptions = uploadOptions(),
    private val store: ResumeStore? = null,
    private val transport: Transport? = null,
) : AutoCloseable {
    private val progressState = MutableStateFlow<Progress?>(null)
    private val eventFlow = MutableSharedFlow<UploadEvent>(
        extraBufferCapacity = 256,
        onBufferOverflow = BufferOverflow.DROP_OLDEST,
    )

    /** The latest progress (null before the first report). */
    val progressNow: StateFlow<Progress?> = progressState.asStateFlow()

    /** Progress reports; a slow collector sees the latest. */
    val progress: Flow<Progress> = progressNow.filterNotNull()

    /** Other events (hot: collect before [start] to see them all). */
    val events: SharedFlow<UploadEvent> = eventFlow.asSharedFlow()

    private val listener = object : ProgressListener {
        override fun onProgress(acknowledged: ULong, total: ULong, bytesPerSecond: Double) {
            val next = Progress(acknowledged.toLong(), total.toLong(), bytesPerSecond)
            // The engine never reports less; keep the Flow monotonic anyway.
            progressState.update { old ->
                if (old == null || next.acknowledged >= old.acknowledged) next else old
            }
        }

        override fun onEvent(kind: EventKind, message: String) {
            eventFlow.tryEmit(UploadEvent(kind, message))
        }
    }

    // The generated Upload resolves the file's path (file IO): it is made
    // by start(), on Dispatchers.IO, never on the constructor's thread (the
    // main thread, often). Controls called before that are kept, in order,
    // and applied to it as it is made.
    private val lock = Any()
    private var upload: Upload? = null
    private val pendingControls = mutableListOf<(Upload) -> Unit>()
    private var closed = false

    private fun control(action: (Upload) -> Unit) {
        val made = synchronized(lock) {
            if (upload == null) pendingControls += action
            upload
        }
        made?.let(action)
    }

    /** The generated upload, made once (on the calling thread: IO). */
    private fun made(): Upload {
        synchronized(lock) { upload }?.let { return it }
        val fresh = Upload(path, endpoint, options, listener, store, transport)
        synchronized(lock) {
            val existing = upload
            if (existing != null || closed) {
                fresh.close()
                return existing ?: throw IllegalStateException("this ChunkupUpload was closed")
            }
            upload = fresh
            pendingControls.forEach { it(fresh) }
            pendingControls.clear()
            return fresh
        }
    }

    /**
     * Runs the upload to its end; throws [ChunkupException] when it fails,
     * is stopped ([ErrorKind.STOPPED]) or terminated
     * ([ErrorKind.TERMINATED]). The upload runs in this coroutine (on
     * [Dispatchers.IO], where the store and the transport are called):
     * cancelling it stops the upload before `start` returns, and nothing is
     * called back afterwards.
     */
    suspend fun start(): UploadReport = try {
        withContext(Dispatchers.IO) { made().start() }
    } catch (e: UploadException) {
        throw ChunkupException(e.kind, e.message ?: e.toString(), e)
    }

    fun pause() = control { it.pause() }
    fun resume() = control { it.resume() }

    /** Ends the upload, keeping it on the server and in the store (resumable). */
    fun stop() = control { it.stop() }

    /**
     * Ends the upload and removes it from the server and the store. Called
     * before [start], [start] removes the upload of this file that the store
     * remembers (see [discard]).
     */
    fun terminate() = control { it.terminate() }

    override fun close() {
        synchronized(lock) {
            closed = true
            upload
        }?.close()
    }
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
    ChunkupUpload(path, endpoint, options.copy(protocol = Protocol.AUTO), store, transport).use { upload ->
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
    onProgress: suspend (Progress) -> Unit = {},
): UploadReport = coroutineScope {
    ChunkupUpload(path, endpoint, options, store, transport).use { upload ->
        val collector = launch { upload.progress.collect(onProgress) }
        try {
            upload.start()
        } finally {
            collector.cancel()
        }
    }
}
