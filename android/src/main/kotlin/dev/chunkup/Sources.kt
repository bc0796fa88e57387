// Sources of bytes other than a file path (plain JVM Kotlin: tested on the
// JVM). The Android `content://` source, dev.chunkup.android.ContentUriSource,
// is this class over a ContentResolver.
package dev.chunkup

import dev.chunkup.ffi.SourceException
import java.io.IOException
import java.io.InputStream
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext

/** Where an upload's bytes come from when they are not a file at a path. */
typealias UploadSource = dev.chunkup.ffi.UploadSource
/** What an [UploadSource] says about itself: length, name, identity, seekable. */
typealias SourceDescription = dev.chunkup.ffi.SourceDescription

/**
 * An [UploadSource] over an `InputStream`, in two kinds:
 *
 * - **Reopenable** (`InputStreamSource(fileName, length, fingerprint) { open() }`):
 *   [open] gives a fresh stream of the same bytes each time, so a read at
 *   any offset reopens and skips to it (`FileInputStream` and most
 *   `ContentResolver` streams skip by seeking). With a [length] it is
 *   read range by range: a server that lost bytes is answered, and with a
 *   [fingerprint] (stable for the same content, different for other
 *   content) a later upload over the same store continues from the
 *   server's offset after an app restart.
 * - **One-shot** (`InputStreamSource(stream, fileName, length)`): read once,
 *   in order. Only the bytes the server has not acknowledged are kept
 *   (about two chunks), so breaks are survived, but a server that loses
 *   bytes it acknowledged ends the upload with [ErrorKind.SOURCE], and it
 *   is never continued after a restart.
 *
 * Without a [length] the length is deferred (learned at the end): tus
 * (creation-defer-length), IETF and Google-style sessions take it; ranged
 * and S3 refuse it with [ErrorKind.INVALID_CONFIG] before sending. A
 * stream that fails ends the upload with [ErrorKind.SOURCE] (not
 * retried); one shorter than its [length] with [ErrorKind.SOURCE_CHANGED].
 * Bytes past the [length] are not read. Reads run on [Dispatchers.IO]; the
 * source closes the streams it reopens ([close] the last one when done).
 */
class InputStreamSource private constructor(
    private val open: (() -> InputStream)?,
    private var stream: InputStream?,
    private val length: Long?,
    private val fileName: String,
    private val fingerprint: String?,
) : UploadSource, AutoCloseable {
    /** A reopenable source: [open] gives a fresh stream from byte 0. */
    constructor(
        fileName: String,
        length: Long? = null,
        fingerprint: String? = null,
        open: () -> InputStream,
    ) : this(open, null, length, fileName, fingerprint)

    /** A one-shot source: [stream] is read once, in order. */
    constructor(stream: InputStream, fileName: String, length: Long? = null) :
        this(null, stream, length, fileName, null)

    init {
        require(length == null || length >= 0) { "negative length $length" }
    }

    private val lock = Mutex()
    private var position = 0L

    override fun describe(): SourceDescription =
        SourceDescription(length?.toULong(), fileName, fingerprint, seekable = open != null)

    override suspend fun read(offset: ULong, maxLength: UInt): ByteArray = lock.withLock {
        withContext(Dispatchers.IO) { readAt(offset.toLong(), maxLength.toInt()) }
    }

    override fun close() {
        stream?.close()
        stream = null
    }

    private fun readAt(offset: Long, maxLength: Int): ByteArray = try {
        val input = positionedAt(offset)
        val buffer = ByteArray(maxLength)
        var filled = 0
        while (filled < maxLength) {
            val n = input.read(buffer, filled, maxLength - filled)
            if (n < 0) break
            filled += n
        }
        position = offset + filled
        if (filled == maxLength) buffer else buffer.copyOf(filled)
    } catch (e: SourceException) {
        throw e
    } catch (e: IOException) {
        throw SourceException.Failed(e.toString())
    }

    /** The stream, at [offset]: skipped forward, or reopened and skipped. */
    private fun positionedAt(offset: Long): InputStream {
        val current = stream
        if (current != null && offset == position) return current
        if (current != null && offset > position) {
            skipFully(current, offset - position)
            position = offset
            return current
        }
        val reopen = open ?: throw SourceException.Failed(
            "$fileName is a one-shot stream: it cannot be read again from byte $offset (it is at $position)",
        )
        current?.close()
        stream = null
        val fresh = reopen()
        stream = fresh
        position = 0
        skipFully(fresh, offset)
        position = offset
        return fresh
    }

    private fun skipFully(input: InputStream, count: Long) {
        var left = count
        while (left > 0) {
            val skipped = input.skip(left)
            if (skipped > 0) {
                left -= skipped
            } else if (input.read() >= 0) {
                left -= 1
            } else {
                throw SourceException.Changed("$fileName ended ${count - left} bytes into a skip of $count")
            }
        }
    }
}
