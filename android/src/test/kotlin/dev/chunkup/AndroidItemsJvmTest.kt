// JVM tests of the Android items of issue #12 that run without an Android
// SDK: UrlConnectionTransport over tus (PATCH as an overridden POST) against
// tusd and `chunkup serve`, the ChunkupUpload constructor doing no file IO,
// and UploadWorker's input (UploadInput) mapped to a real upload that a
// cancelled run leaves resumable. scripts/ffi.sh passes CHUNKUP_TEST_BASE
// (its `chunkup serve` with faults) and CHUNKUP_TUSD (tusd v2.9.1, installed
// by scripts/test.sh into interop/peers/bin).
package dev.chunkup

import dev.chunkup.android.UploadInput
import dev.chunkup.ffi.HttpRequest
import dev.chunkup.ffi.HttpResponse
import dev.chunkup.ffi.Protocol
import dev.chunkup.ffi.Transport
import java.io.File
import java.io.FileNotFoundException
import java.net.HttpURLConnection
import java.net.InetAddress
import java.net.ProtocolException
import java.net.ServerSocket
import java.net.Socket
import java.net.URI
import java.security.MessageDigest
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.random.Random
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.AfterClass
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.BeforeClass
import org.junit.Test

class AndroidItemsJvmTest {
    companion object {
        private val base: String = System.getenv("CHUNKUP_TEST_BASE")
            ?: error("CHUNKUP_TEST_BASE is not set: run scripts/ffi.sh")
        private lateinit var dir: File

        @BeforeClass @JvmStatic fun setUp() {
            dir = kotlin.io.path.createTempDirectory("chunkup-android-jvm").toFile()
        }

        @AfterClass @JvmStatic fun tearDown() {
            dir.deleteRecursively()
        }
    }

    private fun sourceFile(name: String, size: Int, seed: Int): File =
        File(dir, name).apply { writeBytes(Random(seed).nextBytes(size)) }

    private fun sha256(bytes: ByteArray): String =
        MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }

    /** What `chunkup serve` holds for an upload (admin API), or null. */
    private fun serverUpload(uploadUrl: String): String? = try {
        URI("$base/_admin/uploads/${uploadUrl.trimEnd('/').substringAfterLast('/')}").toURL().readText()
    } catch (e: FileNotFoundException) {
        null
    }

    private fun field(json: String, name: String): String? =
        Regex("\"$name\"\\s*:\\s*\"?([^\",}]*)").find(json)?.groupValues?.get(1)

    private fun assertServeHoldsExactly(file: File, uploadUrl: String): String {
        val info = serverUpload(uploadUrl) ?: error("the server has no upload $uploadUrl")
        assertEquals("server sha256 ($info)", sha256(file.readBytes()), field(info, "sha256"))
        return info
    }

    /** UrlConnectionTransport, recording each request the engine asked for. */
    private class RecordingTransport : Transport {
        val inner = UrlConnectionTransport()
        val requests = CopyOnWriteArrayList<HttpRequest>()
        override suspend fun send(request: HttpRequest): HttpResponse {
            requests += request
            return inner.send(request)
        }
        fun methods() = requests.map { it.method }
    }

    /** tusd v2.9.1 on a free loopback port, with its own upload directory. */
    private class Tusd : AutoCloseable {
        val uploads: File = kotlin.io.path.createTempDirectory("tusd").toFile()
        private val log = File(uploads.parentFile, "${uploads.name}.log")
        private val port = ServerSocket(0, 1, InetAddress.getByName("127.0.0.1")).use { it.localPort }
        private val process: Process
        val endpoint = "http://127.0.0.1:$port/files/"

        init {
            val bin = System.getenv("CHUNKUP_TUSD")
                ?: error("CHUNKUP_TUSD is not set: run scripts/ffi.sh")
            check(File(bin).canExecute()) { "no tusd at $bin: scripts/test.sh installs it (interop peers)" }
            process = ProcessBuilder(
                bin, "-host", "127.0.0.1", "-port", port.toString(),
                "-base-path", "/files/", "-upload-dir", uploads.path,
            ).redirectErrorStream(true).redirectOutput(log).start()
            val deadline = System.nanoTime() + 20_000_000_000
            while (true) {
                try {
                    Socket("127.0.0.1", port).close()
                    break
                } catch (e: java.io.IOException) {
                    check(process.isAlive) { "tusd exited: ${log()}" }
                    check(System.nanoTime() < deadline) { "tusd does not listen on $port: ${log()}" }
                    Thread.sleep(50)
                }
            }
        }

        fun log(): String = log.takeIf { it.exists() }?.readText() ?: ""

        /** The bytes tusd stored for an upload URL. */
        fun stored(uploadUrl: String): ByteArray = File(uploads, uploadUrl.substringAfterLast('/')).readBytes()

        /** tusd's answer to a `HEAD` (its info file keeps the creation-time offset). */
        fun offset(uploadUrl: String): String? {
            val connection = URI(uploadUrl).toURL().openConnection() as HttpURLConnection
            try {
                connection.requestMethod = "HEAD"
                connection.setRequestProperty("Tus-Resumable", "1.0.0")
                check(connection.responseCode == 200) { "HEAD $uploadUrl: ${connection.responseCode}" }
                return connection.getHeaderField("Upload-Offset")
            } finally {
                connection.disconnect()
            }
        }

        /** tusd's `<id>.info` JSON. */
        fun info(uploadUrl: String): String = File(uploads, uploadUrl.substringAfterLast('/') + ".info").readText()

        override fun close() {
            process.destroy()
            process.waitFor()
            uploads.deleteRecursively()
            log.delete()
        }
    }

    /** The precondition of the transport tests: this JVM refuses PATCH. */
    private fun assertJvmRefusesPatch() {
        val connection = URI(base).toURL().openConnection() as HttpURLConnection
        try {
            connection.requestMethod = "PATCH"
            fail("this JVM's HttpURLConnection accepts PATCH: the override path is not exercised")
        } catch (expected: ProtocolException) {
        }
    }

    @Test fun urlConnectionTransportUploadsOverTusToTusd() = runBlocking {
        assertJvmRefusesPatch()
        val file = sourceFile("tusd.bin", 3 * 1024 * 1024 + 333, 21)
        val transport = RecordingTransport()
        Tusd().use { tusd ->
            val report = try {
                upload(
                    file.path, tusd.endpoint,
                    uploadOptions(
                        protocol = Protocol.TUS, chunkSizeBytes = 512 * 1024,
                        metadata = mapOf("filename" to "tusd.bin"),
                    ),
                    transport = transport,
                )
            } catch (e: ChunkupException) {
                throw AssertionError("upload to tusd failed: $e\ntusd log:\n${tusd.log()}", e)
            }
            val url = report.uploadUrl!!
            assertEquals("tusd's bytes", sha256(file.readBytes()), sha256(tusd.stored(url)))
            assertEquals("tusd's Upload-Offset", file.length().toString(), tusd.offset(url))
            val info = tusd.info(url)
            assertTrue("tusd's info: $info", info.contains("\"filename\":\"tusd.bin\""))
        }
        val patches = transport.methods().count { it == "PATCH" }
        assertTrue("PATCH requests sent: ${transport.methods()}", patches >= 7)
        assertTrue("creation: ${transport.methods()}", "POST" in transport.methods())
        println("tusd: ${transport.requests.size} requests through HttpURLConnection, $patches PATCH as POST + override")
    }

    @Test fun urlConnectionTransportUploadsOverTusToChunkupServeUnderFaults() = runBlocking {
        val file = sourceFile("serve-tus.bin", 4 * 1024 * 1024 + 5, 22)
        val transport = RecordingTransport()
        val report = upload(
            file.path, "$base/tus",
            uploadOptions(protocol = Protocol.TUS, chunkSizeBytes = 256 * 1024),
            transport = transport,
        )
        val info = assertServeHoldsExactly(file, report.uploadUrl!!)
        assertEquals("tus", field(info, "protocol"))
        assertTrue("PATCH requests: ${transport.methods()}", transport.methods().count { it == "PATCH" } >= 16)
    }

    /**
     * The constructor does not look at the file: made before the file
     * exists, it uploads what the file holds when [ChunkupUpload.start]
     * runs. (Before, the constructor resolved the path and threw.)
     */
    @Test fun constructorDoesNoFileIo() = runBlocking {
        val file = File(dir, "later.bin")
        assertTrue(!file.exists())
        ChunkupUpload(file.path, "$base/ranged", uploadOptions(chunkSizeBytes = 256 * 1024)).use { upload ->
            file.writeBytes(Random(23).nextBytes(1024 * 1024 + 17))
            val report = upload.start()
            assertEquals(file.length().toULong(), report.size)
            assertServeHoldsExactly(file, report.uploadUrl!!)
        }
        val missing = ChunkupUpload(File(dir, "missing.bin").path, "$base/ranged")
        try {
            missing.start()
            fail("a missing file was uploaded")
        } catch (e: ChunkupException) {
            assertEquals(ErrorKind.SOURCE, e.kind)
            assertTrue(e.message!!, e.message!!.startsWith("cannot read"))
        } finally {
            missing.close()
        }
    }

    /** A control called before [ChunkupUpload.start] still takes effect. */
    @Test fun stopBeforeStartIsKept() = runBlocking {
        val file = sourceFile("early-stop.bin", 1024 * 1024, 24)
        val transport = RecordingTransport()
        ChunkupUpload(file.path, "$base/ranged", uploadOptions(), transport = transport).use { upload ->
            upload.stop()
            try {
                upload.start()
                fail("an upload stopped before its start completed")
            } catch (e: ChunkupException) {
                assertEquals(ErrorKind.STOPPED, e.kind)
            }
        }
        assertTrue("requests after stop(): ${transport.methods()}", transport.requests.none { it.body != null })
    }

    @Test fun uploadInputMapsToAndFromWorkData() {
        val input = UploadInput(
            path = "/data/user/0/app/files/a b.bin",
            endpoint = "https://uploads.example/files/",
            protocol = Protocol.TUS,
            headers = mapOf("Authorization" to "Bearer t", "X-Trace" to "1"),
            metadata = mapOf("filename" to "a b.bin", "user" to "42"),
        )
        val data: Map<String, Any?> = input.toData() + mapOf("app-key" to 7)
        assertEquals(input, UploadInput.fromData(data))
        val options = input.options()
        assertEquals(Protocol.TUS, options.protocol)
        assertEquals(input.headers, options.headers.associate { it.key to it.value })
        assertEquals(input.metadata, options.metadata.associate { it.key to it.value })
        // Without a protocol, the Kotlin API's default is used.
        val plain = UploadInput.fromData(mapOf("path" to "/f", "endpoint" to "http://127.0.0.1/"))
        assertEquals(uploadOptions().protocol, plain.options().protocol)
        assertEquals(Protocol.AUTO, UploadInput.fromData(plain.toData() + ("protocol" to "Auto")).protocol)

        fun refused(data: Map<String, Any?>): String = try {
            UploadInput.fromData(data)
            fail("accepted $data")
            ""
        } catch (e: IllegalArgumentException) {
            e.message!!
        }
        assertEquals("input 'path' is missing", refused(mapOf("endpoint" to "http://127.0.0.1/")))
        assertEquals("input 'endpoint' is missing", refused(mapOf("path" to "/f")))
        assertEquals(
            "input 'protocol' is 'tusd', not one of ranged, tus, ietf, auto",
            refused(plain.toData() + ("protocol" to "tusd")),
        )
        assertEquals("input 'header:X' is not a string: 3", refused(plain.toData() + ("header:X" to 3)))
    }

    @Test fun notificationIdIsOnePerUpload() {
        val a = UploadInput("/files/a.bin", "http://127.0.0.1:1/tus")
        val ids = listOf(
            a,
            a.copy(path = "/files/b.bin"),
            a.copy(endpoint = "http://127.0.0.1:2/tus"),
        ).map { it.notificationId }
        assertEquals("ids $ids", 3, ids.toSet().size)
        assertTrue("ids $ids", ids.all { it > 0 })
        // Every run of one upload (its input read back from work data) shows the same notification.
        assertEquals(a.notificationId, UploadInput.fromData(a.toData() + ("header:X" to "y")).notificationId)
        assertNotEquals(a.workName, a.copy(path = "/files/b.bin").workName)
    }

    /**
     * What UploadWorker does, without WorkManager: its input read back from
     * work data gives the upload (tus, headers, metadata); a first run
     * cancelled part-way (WorkManager stopping the worker, or the cancel
     * action) keeps it; a second run from the same input continues from the
     * server's offset.
     */
    @Test fun workerInputRunsCancelledThenContinues() = runBlocking {
        val file = sourceFile("worker.bin", 16 * 1024 * 1024, 25)
        val input = UploadInput.fromData(
            UploadInput(
                file.path, "$base/tus", Protocol.TUS,
                headers = mapOf("X-Chunkup-Test" to "worker"),
                metadata = mapOf("filename" to "worker.bin", "owner" to "jvm"),
            ).toData(),
        )
        val state = File(dir, "worker-state")
        val options = input.options().copy(chunkSize = dev.chunkup.ffi.ChunkSize.Fixed((256L * 1024).toULong()))
        val first = RecordingTransport()
        ChunkupUpload(input.path, input.endpoint, options, DirectoryResumeStore(state), first).use { upload ->
            val job = launch { upload.start() }
            withTimeout(60_000) { upload.progress.first { it.acknowledged >= file.length() / 4 } }
            job.cancelAndJoin()
        }
        assertTrue(
            "every request carries the input's header",
            first.requests.all { r -> r.headers.any { it.key == "X-Chunkup-Test" && it.value == "worker" } },
        )
        val record = DirectoryResumeStore(state).records().single()
        val held = serverUpload(record.uploadUrl) ?: error("the cancelled run deleted the upload")
        val stored = field(held, "stored")!!.toLong()
        assertTrue("the server holds $stored", stored >= file.length() / 4 && stored < file.length())

        val report = ChunkupUpload(input.path, input.endpoint, options, DirectoryResumeStore(state))
            .use { it.start() }
        val resumedFrom = report.resumedFrom?.toLong()
        assertNotNull("the second run started from zero", resumedFrom)
        assertTrue("resumed from $resumedFrom, the server held $stored", resumedFrom!! >= stored)
        assertEquals(record.uploadUrl, report.uploadUrl)
        val info = assertServeHoldsExactly(file, report.uploadUrl!!)
        assertEquals("tus", field(info, "protocol"))
        assertTrue("metadata on the server: $info", info.contains("\"owner\":\"jvm\""))
        println("worker input: cancelled with $stored on the server, resumed from $resumedFrom")
    }
}
