// JVM tests of the Android items of issue #12 that run without an Android
// SDK: UrlConnectionTransport over tus (PATCH as an overridden POST) against
// tusd and `chunkup serve`, and the ChunkupUpload constructor doing no file
// IO. scripts/ffi.sh passes CHUNKUP_TEST_BASE
// (its `chunkup serve` with faults) and CHUNKUP_TUSD (tusd v2.9.1, installed
// by scripts/test.sh into interop/peers/bin).
package dev.chunkup

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
}
