// An Android `content://` Uri as an upload source: the Android-only part
// (the ContentResolver query); the reading is InputStreamSource's, tested
// on the JVM.
package dev.chunkup.android

import android.content.ContentResolver
import android.net.Uri
import android.provider.DocumentsContract
import android.provider.OpenableColumns
import dev.chunkup.InputStreamSource
import dev.chunkup.SourceDescription
import dev.chunkup.UploadSource
import dev.chunkup.ffi.SourceException
import java.io.FileNotFoundException

/**
 * The bytes behind a `content://` [uri] (the Storage Access Framework's
 * picker, MediaStore, another app's FileProvider), for
 * `ChunkupUpload(ContentUriSource(resolver, uri), endpoint, ...)`.
 *
 * Nothing is read when it is built: when the upload starts it asks the
 * resolver for the name and size (`OpenableColumns`) and, where the
 * provider has one, the last-modified time
 * (`DocumentsContract.Document.COLUMN_LAST_MODIFIED`). Reads reopen the Uri
 * at the offset asked for (a file-backed provider skips by seeking).
 *
 * Resuming after an app restart needs an identity that changes when the
 * content does: the app's [fingerprint] if given, else the Uri with its
 * size and last-modified time. A provider that reports no size uploads
 * with a deferred length (tus, IETF); one that reports no last-modified
 * time (and no [fingerprint]) is uploaded but never continued after a
 * restart — resuming it could join the halves of two different contents.
 */
class ContentUriSource(
    private val resolver: ContentResolver,
    private val uri: Uri,
    private val fingerprint: String? = null,
) : UploadSource, AutoCloseable {
    @Volatile private var delegate: InputStreamSource? = null

    override fun describe(): SourceDescription {
        var name: String? = null
        var size: Long? = null
        var modified: Long? = null
        resolver.query(uri, null, null, null, null)?.use { row ->
            if (row.moveToFirst()) {
                fun column(column: String) = row.getColumnIndex(column).takeIf { it >= 0 && !row.isNull(it) }
                column(OpenableColumns.DISPLAY_NAME)?.let { name = row.getString(it) }
                column(OpenableColumns.SIZE)?.let { size = row.getLong(it) }
                column(DocumentsContract.Document.COLUMN_LAST_MODIFIED)?.let { modified = row.getLong(it) }
            }
        }
        val identity = fingerprint
            ?: if (size != null && modified != null) "content-uri:$uri size=$size modified=$modified" else null
        val source = InputStreamSource(name ?: uri.lastPathSegment ?: "upload.bin", size, identity) {
            resolver.openInputStream(uri) ?: throw FileNotFoundException("the provider of $uri gave no stream")
        }
        delegate?.close()
        delegate = source
        return source.describe()
    }

    override suspend fun read(offset: ULong, maxLength: UInt): ByteArray =
        (delegate ?: throw SourceException.Failed("read before describe")).read(offset, maxLength)

    override fun close() {
        delegate?.close()
    }
}
