// JVM tests of uploads from an UploadSource (InputStreamSource: the logic
// under Android's ContentUriSource), through JNA, against `chunkup serve`
// with faults on (scripts/ffi.sh starts it and passes CHUNKUP_TEST_BASE).
// The server's admin API says what it stored.
package dev.chunkup

import java.io.ByteArrayInputStream
import java.io.FileNotFoundException
import java.io.IOException
import java.io.InputStream
import java.net.URI
import java.security.MessageDigest
import java.util.concurrent.atomic.AtomicInteger
import kotlin.random.Random
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class SourcesJvmTest {
    private val base: String = System.getenv("CHUNKUP_TEST_BASE")
        ?: error("CHUNKUP_TEST_BASE is not set: run scripts/ffi.sh")

    private fun sha256(bytes: ByteArray): String =
        MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }

    private fun serverUpload(uploadUrl: String): String? = try {
        URI("$base/_admin/uploads/${uploadUrl.trimEnd('/').substringAfterLast('/')}").toURL().readText()
    } catch (e: FileNotFoundException) {
        null
    }

    private fun field(json: String, name: String): String? =
        Regex("\"$name\"\\s*:\\s*\"?([^\",}]*)").find(json)?.groupValues?.get(1)

    private fun assertStoredExactly(data: ByteArray, uploadUrl: String) {
        val info = serverUpload(uploadUrl) ?: error("the server has no upload $uploadUrl")
        assertEquals("server sha256 ($info)", sha256(data), field(info, "sha256"))
    }

    private suspend fun failure(block: suspend () -> Unit): ChunkupException {
        try {
            block()
        } catch (e: ChunkupException) {
            return e
        }
        fail("the upload succeeded")
        error("unreachable")
    }

    /** A reopenable source counts how often it was opened. */
    private class Opener(private val data: ByteArray) {
        val opened = AtomicInteger()
        fun open(): InputStream {
            opened.incrementAndGet()
            return ByteArrayInputStream(data)
        }
    }

    @Test fun aReopenableSourceArrivesExactlyUnderFaults() = runBlocking {
        val data = Random(21).nextBytes(6 * 1024 * 1024 + 321)
        val opener = Opener(data)
        val source = InputStreamSource("reopenable.bin", data.size.toLong()) { opener.open() }
        val report = upload(
            source, "$base/ranged", uploadOptions(protocol = Protocol.RANGED, chunkSizeBytes = 256 * 1024),
        )
        assertEquals(data.size.toULong(), report.size)
        assertStoredExactly(data, report.uploadUrl!!)
        println("reopenable source: ${report.retries.size} retries survived, opened ${opener.opened} times")
    }

    /** A one-shot stream through the app's own transport: each chunk goes as the request's payload. */
    @Test fun aOneShotStreamThroughUrlConnectionTransport() = runBlocking {
        val data = Random(22).nextBytes(5 * 1024 * 1024 + 5)
        val source = InputStreamSource(ByteArrayInputStream(data), "oneshot.bin", data.size.toLong())
        val report = upload(
            source, "$base/tus", uploadOptions(protocol = Protocol.TUS, chunkSizeBytes = 512 * 1024),
            transport = UrlConnectionTransport(),
        )
        assertEquals(data.size.toULong(), report.size)
        assertStoredExactly(data, report.uploadUrl!!)
        println("one-shot stream over UrlConnectionTransport: ${report.retries.size} retries survived")
    }

    @Test fun aStreamOfDeferredLength() = runBlocking {
        val data = Random(23).nextBytes(3 * 1024 * 1024 + 77)
        val source = InputStreamSource(ByteArrayInputStream(data), "deferred.bin")
        val report = upload(source, "$base/tus", uploadOptions(protocol = Protocol.TUS, chunkSizeBytes = 256 * 1024))
        assertEquals(data.size.toULong(), report.size)
        assertStoredExactly(data, report.uploadUrl!!)
        // A protocol that needs the length up front refuses before sending.
        val refused = failure {
            upload(
                InputStreamSource(ByteArrayInputStream(data), "deferred.bin"), "$base/ranged",
                uploadOptions(protocol = Protocol.RANGED),
            )
        }
        assertEquals(refused.message, ErrorKind.INVALID_CONFIG, refused.kind)
    }

    @Test fun aStreamThatThrowsMidwayIsATypedSourceError() = runBlocking {
        val data = Random(24).nextBytes(4 * 1024 * 1024)
        val broken = object : InputStream() {
            var at = 0
            override fun read(): Int = if (at >= 1024 * 1024) throw IOException("the disk went away") else data[at++].toInt() and 0xff
            override fun read(b: ByteArray, off: Int, len: Int): Int {
                if (at >= 1024 * 1024) throw IOException("the disk went away")
                val n = minOf(len, 1024 * 1024 - at)
                System.arraycopy(data, at, b, off, n)
                at += n
                return n
            }
        }
        for ((name, transport) in listOf("reqwest" to null, "UrlConnectionTransport" to UrlConnectionTransport())) {
            val error = failure {
                withTimeout(60_000) {
                    upload(
                        InputStreamSource(broken.also { it.at = 0 }, "broken.bin", data.size.toLong()), "$base/tus",
                        uploadOptions(protocol = Protocol.TUS, chunkSizeBytes = 256 * 1024), transport = transport,
                    )
                }
            }
            assertEquals("$name: ${error.message}", ErrorKind.SOURCE, error.kind)
            assertTrue("$name: ${error.message}", error.message!!.contains("the disk went away"))
            assertTrue(!error.retryable)
        }
        // A reopenable source that ends before its length: not the content announced.
        val short = failure {
            upload(
                InputStreamSource("short.bin", data.size.toLong() + 10) { ByteArrayInputStream(data) }, "$base/ranged",
                uploadOptions(protocol = Protocol.RANGED, chunkSizeBytes = 1024 * 1024),
            )
        }
        assertEquals(short.message, ErrorKind.SOURCE_CHANGED, short.kind)
    }

    /**
     * A reopenable source with a fingerprint is continued after a stop by a
     * new upload over the same store; a source with another fingerprint
     * (same size, other bytes) and one without any never are (issue #11,
     * fault 1: two anonymous sources once continued each other's upload).
     */
    @Test fun onlyTheSameFingerprintContinuesAStoppedUpload() = runBlocking {
        val size = 16 * 1024 * 1024
        val first = Random(25).nextBytes(size)
        val other = Random(26).nextBytes(size)
        val store = MemoryResumeStore()
        val options = uploadOptions(protocol = Protocol.RANGED, chunkSizeBytes = 128 * 1024)
        fun source(data: ByteArray, fingerprint: String?) =
            InputStreamSource("photo.jpg", size.toLong(), fingerprint) { ByteArrayInputStream(data) }

        suspend fun stopAtAQuarter(source: UploadSource) =
            ChunkupUpload(source, "$base/ranged", options, store).use { upload ->
                val running = async { try { upload.start(); null } catch (e: ChunkupException) { e } }
                withTimeout(60_000) { upload.progress.first { it.acknowledged >= size / 4 } }
                upload.stop()
                assertEquals(ErrorKind.STOPPED, withTimeout(10_000) { running.await() }?.kind)
            }

        // An anonymous source is never remembered: nothing another one could continue.
        stopAtAQuarter(source(first, null))
        assertTrue("an anonymous source was remembered", store.list().isEmpty())
        stopAtAQuarter(source(first, "content://media/1 v1"))
        val stopped = store.remembered().single()
        assertEquals("photo.jpg", stopped.fileName)

        val anonymous = upload(source(other, null), "$base/ranged", options, store)
        assertNull("an anonymous source continued an upload", anonymous.resumedFrom)
        assertStoredExactly(other, anonymous.uploadUrl!!)
        val another = upload(source(other, "content://media/2 v1"), "$base/ranged", options, store)
        assertNull("another fingerprint continued the upload", another.resumedFrom)
        assertStoredExactly(other, another.uploadUrl!!)

        val resumed = upload(source(first, "content://media/1 v1"), "$base/ranged", options, store)
        assertNotNull("the same fingerprint started from zero", resumed.resumedFrom)
        assertTrue("resumed from ${resumed.resumedFrom}", resumed.resumedFrom!!.toLong() >= size / 4)
        assertEquals(stopped.uploadUrl, resumed.uploadUrl)
        assertStoredExactly(first, resumed.uploadUrl!!)
        println("fingerprinted source resumed from ${resumed.resumedFrom} of $size")
    }

    /** A fingerprint in the options cannot make a one-shot stream resumable. */
    @Test fun aOneShotStreamWithAFingerprintIsRefused() = runBlocking {
        val error = failure {
            upload(
                InputStreamSource(ByteArrayInputStream(ByteArray(10)), "x.bin", 10), "$base/tus",
                uploadOptions(protocol = Protocol.TUS, fingerprint = "x"), store = MemoryResumeStore(),
            )
        }
        assertEquals(error.message, ErrorKind.INVALID_CONFIG, error.kind)
    }
}
