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
import java.io.File
import java.io.FileNotFoundException
import java.net.URI
import java.security.MessageDigest
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicInteger
import kotlin.random.Random
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
import org.junit.Assert.assertNull
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

    /**
     * What the server holds for an upload (its admin API), or null when it
     * has no such upload. The only use of `/_admin`.
     */
    private fun serverUpload(uploadUrl: String): String? = try {
        URI("$base/_admin/uploads/${uploadUrl.trimEnd('/').substringAfterLast('/')}").toURL().readText()
    } catch (e: FileNotFoundException) {
        null // 404
    }

    private fun admin(uploadUrl: String): String =
        serverUpload(uploadUrl) ?: error("the server has no upload $uploadUrl")

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
        assertStoredExactly(file, report.uploadUrl!!)
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
        assertStoredExactly(file, report.uploadUrl!!)
    }

    /**
     * The raw listener (not the wrapper's monotonic Flow) never sees progress
     * go back, and every callback comes on the thread that polls `start()`
     * (here runBlocking's): the upload runs on the caller's executor.
     */
    @Test fun progressNeverGoesBackwardsAndCallbacksComeOnThePollingThread() = runBlocking {
        val file = sourceFile("monotonic.bin", 8 * 1024 * 1024, 3)
        val seen = CopyOnWriteArrayList<Long>()
        val totals = CopyOnWriteArrayList<Long>()
        val threads = CopyOnWriteArrayList<String>()
        val listener = object : ProgressListener {
            override fun onProgress(acknowledged: ULong, total: ULong, bytesPerSecond: Double) {
                seen.add(acknowledged.toLong()); totals.add(total.toLong())
                threads.add(Thread.currentThread().name)
            }
            override fun onEvent(kind: EventKind, message: String) {
                threads.add(Thread.currentThread().name)
            }
        }
        val caller = Thread.currentThread().name
        val options = uploadOptions(chunkSizeBytes = 128 * 1024).copy(progressIntervalMs = 0u)
        Upload(file.path, "$base/ranged", options, listener, null, null).use { upload ->
            val report = upload.start()
            assertStoredExactly(file, report.uploadUrl!!)
        }
        assertTrue("progress reports: ${seen.size}", seen.size >= 10)
        assertNonDecreasing(seen)
        assertEquals(file.length(), seen.last())
        assertTrue(totals.all { it == file.length() })
        assertEquals("callback threads", setOf(caller), threads.toSet())
    }

    /** A started upload stopped part-way: the coroutine runs [ChunkupUpload.start] until [stop] takes effect. */
    private suspend fun kotlinx.coroutines.CoroutineScope.startAndWaitForProgress(
        upload: ChunkupUpload,
        atLeast: Long,
    ): kotlinx.coroutines.Deferred<ChunkupException?> {
        val running = async {
            try {
                upload.start(); null
            } catch (e: ChunkupException) {
                e
            }
        }
        withTimeout(60_000) { upload.progress.first { it.acknowledged >= atLeast } }
        return running
    }

    private fun rangedOptions() = uploadOptions(chunkSizeBytes = 128 * 1024)

    @Test fun stopKeepsTheUploadForALaterRun() = runBlocking {
        val file = sourceFile("stop.bin", 24 * 1024 * 1024, 4)
        val store = MemoryResumeStore()
        ChunkupUpload(file.path, "$base/ranged", rangedOptions(), store).use { upload ->
            val running = startAndWaitForProgress(upload, 1)
            upload.stop()
            val error = withTimeout(10_000) { running.await() }
            assertNotNull("the upload completed despite stop()", error)
            assertEquals(ErrorKind.STOPPED, error!!.kind)
            assertEquals("the upload was stopped; it can be continued later", error.message)
        }
        val record = store.records().single()
        assertNotNull("stop() removed the upload from the server", serverUpload(record.uploadUrl))
        val report = upload(file.path, "$base/ranged", rangedOptions(), store)
        assertTrue("resumed from ${report.resumedFrom}", (report.resumedFrom ?: 0u) > 0u)
        assertStoredExactly(file, report.uploadUrl!!)
    }

    /**
     * Issue #11, fault 5: cancelling the coroutine (what WorkManager does
     * when it stops a worker) must not delete the upload. It stays on the
     * server and in the store, and a new upload of the same file over the
     * same store continues from the server's offset.
     */
    @Test fun coroutineCancellationKeepsTheUploadAndANewUploadContinuesIt() = runBlocking {
        val file = sourceFile("coroutine.bin", 24 * 1024 * 1024, 5)
        val state = File(dir, "cancel-state")
        val quarter = file.length() / 4
        ChunkupUpload(file.path, "$base/ranged", rangedOptions(), DirectoryResumeStore(state)).use { upload ->
            val job = launch { upload.start() }
            withTimeout(60_000) { upload.progress.first { it.acknowledged >= quarter } }
            job.cancelAndJoin()
            assertTrue(upload.progressNow.value!!.acknowledged < file.length())
        }
        // A new store object over the same directory, as in a later process.
        val store = DirectoryResumeStore(state)
        val record = store.records().single()
        val held = serverUpload(record.uploadUrl)
        assertNotNull("cancelling the coroutine deleted the upload on the server", held)
        val stored = field(held!!, "stored")!!.toLong()
        assertTrue("the server holds $stored bytes", stored >= quarter)
        val report = upload(file.path, "$base/ranged", rangedOptions(), store)
        val resumedFrom = report.resumedFrom?.toLong()
        assertNotNull("the second run started from zero", resumedFrom)
        assertTrue("resumed from $resumedFrom, the server held $stored", resumedFrom!! >= stored)
        assertEquals("the same upload was continued", record.uploadUrl, report.uploadUrl)
        assertStoredExactly(file, report.uploadUrl!!)
        assertTrue("a completed upload leaves no record", store.list().isEmpty())
        println("cancelled at >= $quarter, the server kept $stored, resumed from $resumedFrom")
    }

    @Test fun terminateRemovesTheUploadFromTheServerAndTheStore() = runBlocking {
        val file = sourceFile("terminate.bin", 24 * 1024 * 1024, 9)
        val store = DirectoryResumeStore(File(dir, "terminate-state"))
        ChunkupUpload(file.path, "$base/ranged", rangedOptions(), store).use { upload ->
            val running = startAndWaitForProgress(upload, file.length() / 4)
            val uploadUrl = store.records().single().uploadUrl
            assertNotNull(serverUpload(uploadUrl))
            upload.terminate()
            val error = withTimeout(30_000) { running.await() }
            assertEquals(ErrorKind.TERMINATED, error?.kind)
            assertNull("the server still has the upload", serverUpload(uploadUrl))
        }
        assertTrue("terminate() left a record", store.list().isEmpty())
    }

    /** A stopped upload is given up later, by another `ChunkupUpload`: [discard]. */
    @Test fun discardRemovesARememberedUpload() = runBlocking {
        val file = sourceFile("discard.bin", 24 * 1024 * 1024, 10)
        val store = DirectoryResumeStore(File(dir, "discard-state"))
        ChunkupUpload(file.path, "$base/ranged", rangedOptions(), store).use { upload ->
            val job = launch { upload.start() }
            withTimeout(60_000) { upload.progress.first { it.acknowledged > 0 } }
            job.cancelAndJoin()
        }
        val uploadUrl = store.records().single().uploadUrl
        assertNotNull(serverUpload(uploadUrl))
        withTimeout(30_000) { discard(file.path, "$base/ranged", store, rangedOptions()) }
        assertNull("discard left the upload on the server", serverUpload(uploadUrl))
        assertTrue("discard left a record", store.list().isEmpty())
    }

    @Test fun newUploadOverTheSameStoreResumesAfterRestart() = runBlocking {
        val file = sourceFile("resume.bin", 12 * 1024 * 1024, 6)
        val state = File(dir, "state")
        val stopAt = file.length() * 4 / 10
        // First process: a child JVM that dies abruptly (Runtime.halt, no
        // cleanup, like a killed app) once 40% is acknowledged.
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
        assertStoredExactly(file, report.uploadUrl!!)
        val received = field(admin(report.uploadUrl!!), "bytes_received")!!.toLong()
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
            override suspend fun send(request: HttpRequest): HttpResponse {
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
        assertStoredExactly(file, report.uploadUrl!!)
        assertTrue("requests through the foreign transport: ${requests.get()}", requests.get() >= 16)
        assertTrue(maxBody.get() <= 256 * 1024)
    }

    @Test fun errorsHaveAKindAndAReadableMessage() = runBlocking {
        try {
            // The constructor does no file IO: start() finds the file missing.
            ChunkupUpload(File(dir, "missing.bin").path, "$base/ranged").use { it.start() }
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
