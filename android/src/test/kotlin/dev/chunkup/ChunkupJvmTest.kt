// JVM tests of the Kotlin API, through JNA, against `chunkup serve` with
// faults on (scripts/ffi.sh starts it and passes CHUNKUP_TEST_BASE).
package dev.chunkup

import dev.chunkup.ffi.EventKind
import dev.chunkup.ffi.HttpRequest
import dev.chunkup.ffi.HttpResponse
import dev.chunkup.ffi.ProgressListener
import dev.chunkup.ffi.Protocol
import dev.chunkup.ffi.Transport
import dev.chunkup.ffi.Upload
import dev.chunkup.ffi.UploadException
import java.io.File
import java.net.URI
import java.security.MessageDigest
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicInteger
import kotlin.random.Random
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.async
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.AfterClass
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.BeforeClass
import org.junit.Test

class ChunkupJvmTest {
    companion object {
        private val base: String = System.getenv("CHUNKUP_TEST_BASE")
            ?: error("CHUNKUP_TEST_BASE is not set: run scripts/ffi.sh")
        private lateinit var dir: File

        @BeforeClass @JvmStatic fun setUp() {
            dir = kotlin.io.path.createTempDirectory("chunkup-jvm").toFile()
        }

        @AfterClass @JvmStatic fun tearDown() {
            dir.deleteRecursively()
        }
    }

    private fun sourceFile(name: String, size: Int, seed: Int): File =
        File(dir, name).apply { writeBytes(Random(seed).nextBytes(size)) }

    private fun sha256(bytes: ByteArray): String =
        MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }

    private fun admin(uploadUrl: String): String =
        URI("$base/_admin/uploads/${uploadUrl.trimEnd('/').substringAfterLast('/')}").toURL().readText()

    private fun field(json: String, name: String): String? =
        Regex("\"$name\"\\s*:\\s*\"?([^\",}]*)").find(json)?.groupValues?.get(1)

    private fun assertStoredExactly(file: File, uploadUrl: String) {
        val info = admin(uploadUrl)
        assertEquals("server sha256 ($info)", sha256(file.readBytes()), field(info, "sha256"))
    }

    private fun assertNonDecreasing(values: List<Long>) {
        values.zipWithNext().forEach { (a, b) -> assertTrue("progress went back: $a -> $b", b >= a) }
    }

    @Test fun exactBytesUnderFaults() = runBlocking {
        val file = sourceFile("exact.bin", 6 * 1024 * 1024 + 123, 1)
        val seen = CopyOnWriteArrayList<Long>()
        val report = upload(
            file.path, "$base/ranged",
            uploadOptions(chunkSizeBytes = 256 * 1024),
        ) { seen.add(it.acknowledged) }
        assertEquals(file.length().toULong(), report.size)
        assertStoredExactly(file, report.uploadUrl)
        assertNonDecreasing(seen)
        println("exact bytes: ${report.retries.size} retries survived: ${report.retries.take(3)}")
    }

    @Test fun tusUnderFaultsWithChecksums() = runBlocking {
        val file = sourceFile("tus.bin", 5 * 1024 * 1024 + 7, 2)
        val report = upload(
            file.path, "$base/tus",
            uploadOptions(protocol = Protocol.TUS, chunkSizeBytes = 512 * 1024, metadata = mapOf("user" to "jvm"))
                .copy(checksum = true),
        )
        assertStoredExactly(file, report.uploadUrl)
    }

    /** The raw listener (not the wrapper's monotonic Flow) never sees progress go back. */
    @Test fun progressNeverGoesBackwards() = runBlocking {
        val file = sourceFile("monotonic.bin", 8 * 1024 * 1024, 3)
        val seen = CopyOnWriteArrayList<Long>()
        val totals = CopyOnWriteArrayList<Long>()
        val listener = object : ProgressListener {
            override fun onProgress(acknowledged: ULong, total: ULong, bytesPerSecond: Double) {
                seen.add(acknowledged.toLong()); totals.add(total.toLong())
            }
            override fun onEvent(kind: EventKind, message: String) {}
        }
        val options = uploadOptions(chunkSizeBytes = 128 * 1024).copy(progressIntervalMs = 0u)
        Upload(file.path, "$base/ranged", options, listener, null, null).use { upload ->
            val report = upload.start()
            assertStoredExactly(file, report.uploadUrl)
        }
        assertTrue("progress reports: ${seen.size}", seen.size >= 10)
        assertNonDecreasing(seen)
        assertEquals(file.length(), seen.last())
        assertTrue(totals.all { it == file.length() })
    }

    @Test fun cancelStopsTheUpload() = runBlocking {
        val file = sourceFile("cancel.bin", 32 * 1024 * 1024, 4)
        ChunkupUpload(file.path, "$base/ranged", uploadOptions(chunkSizeBytes = 64 * 1024)).use { upload ->
            val running = async {
                try {
                    upload.start(); null
                } catch (e: ChunkupException) {
                    e
                }
            }
            upload.progress.first { it.acknowledged > 0 }
            upload.cancel()
            val error = withTimeout(10_000) { running.await() }
            assertNotNull("the upload completed despite cancel", error)
            assertEquals(ErrorKind.CANCELLED, error!!.kind)
            assertEquals("the upload was cancelled", error.message)
        }
    }

    @Test fun coroutineCancellationCancelsTheUpload() = runBlocking {
        val file = sourceFile("coroutine.bin", 32 * 1024 * 1024, 5)
        ChunkupUpload(file.path, "$base/ranged", uploadOptions(chunkSizeBytes = 64 * 1024)).use { upload ->
            val cancelled = CompletableDeferred<Unit>()
            val watcher = launch {
                upload.events.first { it.kind == EventKind.CANCELLED }
                cancelled.complete(Unit)
            }
            val job = launch { upload.start() }
            upload.progress.first { it.acknowledged > 0 }
            job.cancelAndJoin()
            withTimeout(10_000) { cancelled.await() }
            watcher.cancel()
            assertTrue(upload.progressNow.value!!.acknowledged < file.length())
        }
    }

    @Test fun newUploadOverTheSameStoreResumesAfterRestart() = runBlocking {
        val file = sourceFile("resume.bin", 12 * 1024 * 1024, 6)
        val state = File(dir, "state")
        val stopAt = file.length() * 4 / 10
        // First process: a child JVM that dies abruptly (Runtime.halt, no
        // cleanup, like a killed app) once 40% is acknowledged. Cancelling
        // instead would discard the upload on the server, as it should.
        val java = File(System.getProperty("java.home"), "bin/java").path
        val child = ProcessBuilder(
            java, "-Djna.library.path=" + System.getProperty("jna.library.path"),
            "-cp", System.getProperty("java.class.path"), "dev.chunkup.KilledUpload",
            file.path, "$base/ranged", state.path, stopAt.toString(),
        ).redirectErrorStream(true).start()
        val output = child.inputStream.bufferedReader().readText()
        assertEquals("child output: $output", 137, child.waitFor())
        // Second process (this one): a new store object over the same
        // directory and a new upload of the same file.
        val store = DirectoryResumeStore(state)
        assertEquals(1, store.list().size)
        val options = uploadOptions(chunkSizeBytes = 256 * 1024)
        val report = upload(file.path, "$base/ranged", options, store)
        val resumedFrom = report.resumedFrom?.toLong()
        assertNotNull("the second run started from zero", resumedFrom)
        assertTrue("resumed from $resumedFrom", resumedFrom!! >= stopAt / 2)
        assertStoredExactly(file, report.uploadUrl)
        val received = field(admin(report.uploadUrl), "bytes_received")!!.toLong()
        assertTrue("server received $received bytes for ${file.length()}", received < file.length() * 3 / 2)
        assertTrue("a completed upload leaves no record", store.list().isEmpty())
        println("resumed at $resumedFrom of ${file.length()} after the child was killed at >= $stopAt")
    }

    @Test fun foreignTransportSendsTheChunks() = runBlocking {
        val file = sourceFile("foreign.bin", 4 * 1024 * 1024 + 1, 7)
        val requests = AtomicInteger()
        val maxBody = AtomicInteger()
        val inner = UrlConnectionTransport()
        val counting = object : Transport {
            override fun send(request: HttpRequest): HttpResponse {
                requests.incrementAndGet()
                request.body?.let { body ->
                    assertEquals(file.canonicalPath, body.path)
                    maxBody.accumulateAndGet(body.length.toInt(), ::maxOf)
                }
                return inner.send(request)
            }
        }
        val report = upload(
            file.path, "$base/ranged", uploadOptions(chunkSizeBytes = 256 * 1024), transport = counting,
        )
        assertStoredExactly(file, report.uploadUrl)
        assertTrue("requests through the foreign transport: ${requests.get()}", requests.get() >= 16)
        assertTrue(maxBody.get() <= 256 * 1024)
    }

    @Test fun errorsHaveAKindAndAReadableMessage() = runBlocking {
        try {
            ChunkupUpload(File(dir, "missing.bin").path, "$base/ranged")
            fail("a missing file was accepted")
        } catch (e: ChunkupException) {
            assertEquals(ErrorKind.SOURCE, e.kind)
            assertTrue(e.message!!, e.message!!.startsWith("cannot read"))
        }
        val file = sourceFile("rejected.bin", 1000, 8)
        try {
            upload(file.path, "$base/no-such-endpoint")
            fail("a 404 endpoint was accepted")
        } catch (e: ChunkupException) {
            assertTrue("${e.kind}", e.kind == ErrorKind.REJECTED || e.kind == ErrorKind.UPLOAD_GONE)
            assertTrue(e.message!!, e.message!!.contains("HTTP 404"))
            assertFalse(e.message!!, e.message!!.contains("reason="))
        }
    }
}

/** The "first process" of the restart test: uploads, then halts at 40%. */
object KilledUpload {
    @JvmStatic fun main(args: Array<String>) {
        val (path, endpoint, state, stopAt) = args
        val listener = object : ProgressListener {
            override fun onProgress(acknowledged: ULong, total: ULong, bytesPerSecond: Double) {
                if (acknowledged.toLong() >= stopAt.toLong()) {
                    println("halting at $acknowledged")
                    System.out.flush()
                    Runtime.getRuntime().halt(137)
                }
            }
            override fun onEvent(kind: EventKind, message: String) {}
        }
        // Records are saved at creation and then at most once a second.
        val options = uploadOptions(chunkSizeBytes = 256 * 1024).copy(progressIntervalMs = 0u)
        runBlocking {
            Upload(path, endpoint, options, listener, DirectoryResumeStore(File(state)), null).start()
        }
        println("the upload completed before it could be killed")
    }
}
