// JVM tests of the #12 API in Kotlin: typed events, typed errors, the header
// provider with credential refresh against a server whose tokens expire
// mid-upload (token_proxy.py in front of `chunkup serve`), the retry
// decision, remembered uploads, and the S3 signer (fake_s3.py, which
// refuses unsigned requests). scripts/ffi.sh passes CHUNKUP_TEST_BASE and
// CHUNKUP_PY_TESTS (the directory of the two Python servers).
package dev.chunkup

import dev.chunkup.api.UploadEvent
import java.io.File
import java.io.FileNotFoundException
import java.net.HttpURLConnection
import java.net.URI
import java.security.MessageDigest
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.random.Random
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test

class HooksJvmTest {
    private val base: String = System.getenv("CHUNKUP_TEST_BASE")
        ?: error("CHUNKUP_TEST_BASE is not set: run scripts/ffi.sh")
    private val scripts = File(System.getenv("CHUNKUP_PY_TESTS") ?: error("CHUNKUP_PY_TESTS is not set"))
    private lateinit var dir: File
    private val children = mutableListOf<Process>()

    @Before fun setUp() {
        dir = kotlin.io.path.createTempDirectory("chunkup-hooks").toFile()
    }

    @After fun tearDown() {
        children.forEach { it.destroy(); it.waitFor() }
        dir.deleteRecursively()
    }

    /** Starts a Python server script; its first line names its base URL. */
    private fun pythonServer(script: String, vararg args: String): String {
        val process = ProcessBuilder(listOf("python3", File(scripts, script).path) + args)
            .redirectError(ProcessBuilder.Redirect.INHERIT).start()
        children += process
        val line = process.inputStream.bufferedReader().readLine() ?: error("$script did not start")
        check(line.startsWith("listening ")) { "$script: $line" }
        return line.removePrefix("listening ")
    }

    private fun get(url: String): String = URI(url).toURL().readText()

    private fun post(url: String) {
        val connection = URI(url).toURL().openConnection() as HttpURLConnection
        connection.requestMethod = "POST"
        check(connection.responseCode in 200..299)
        connection.disconnect()
    }

    private fun field(json: String, name: String): String? =
        Regex("\"$name\"\\s*:\\s*\"?([^\",}]*)").find(json)?.groupValues?.get(1)

    private fun sourceFile(name: String, size: Int, seed: Int): File =
        File(dir, name).apply { writeBytes(Random(seed).nextBytes(size)) }

    private fun sha256(bytes: ByteArray): String =
        MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }

    private fun serverSha256(uploadUrl: String): String? = try {
        field(get("$base/_admin/uploads/${uploadUrl.trimEnd('/').substringAfterLast('/')}"), "sha256")
    } catch (e: FileNotFoundException) {
        null
    }

    private val chunk = 256 * 1024L

    @Test fun typedEventsSeenThroughTheFlow() = runBlocking {
        val file = sourceFile("flow.bin", 3 * chunk.toInt() + 5, 2)
        val seen = CopyOnWriteArrayList<UploadEvent>()
        ChunkupUpload(
            file.path, "$base/tus",
            uploadOptions(protocol = Protocol.TUS, chunkSizeBytes = chunk, progressIntervalMs = 0),
        ).use { upload ->
            val collector = launchCollector(upload, seen)
            val report = upload.start()
            kotlinx.coroutines.delay(50)
            collector.cancel()
            assertEquals(sha256(file.readBytes()), serverSha256(report.uploadUrl!!))
            val discovered = seen.filterIsInstance<UploadEvent.Discovered>().first()
            assertEquals(Protocol.TUS, discovered.protocol)
            assertEquals(listOf(report.uploadUrl), seen.filterIsInstance<UploadEvent.Created>().map { it.uploadUrl })
            val offsets = seen.filterIsInstance<UploadEvent.ChunkAcknowledged>().map { it.offset.toLong() }
            assertEquals(offsets.sorted(), offsets)
            assertEquals(file.length(), offsets.last())
            val last = seen.last()
            assertTrue("last event: $last", last is UploadEvent.Completed)
            assertEquals(report.uploadUrl, (last as UploadEvent.Completed).uploadUrl)
            assertTrue(seen.any { it is UploadEvent.Progress })
        }
    }

    private fun CoroutineScope.launchCollector(
        upload: ChunkupUpload,
        into: MutableList<UploadEvent>,
    ) = launch(start = CoroutineStart.UNDISPATCHED) {
        upload.events.collect { into.add(it) }
    }

    @Test fun expiredTokensAreRefreshedAndTheUploadCompletes() = runBlocking {
        val proxy = pythonServer("token_proxy.py", base, "--expire-after", "3")
        val file = sourceFile("auth.bin", 12 * chunk.toInt(), 3)
        val asked = CopyOnWriteArrayList<RequestInfo>()
        var token: String? = null
        val report = upload(
            file.path, "$proxy/tus", uploadOptions(protocol = Protocol.TUS, chunkSizeBytes = chunk),
            headerProvider = { request ->
                asked += request
                if (request.refresh || token == null) token = withContext(Dispatchers.IO) { get("$proxy/_token") }
                mapOf("Authorization" to "Bearer $token")
            },
        )
        assertEquals(sha256(file.readBytes()), serverSha256(report.uploadUrl!!))
        val stats = get("$proxy/_stats")
        val refused = field(stats, "refused")!!.toInt()
        assertTrue("tokens expired mid-upload: $stats", refused >= 3)
        assertEquals(stats, refused + 1, field(stats, "tokens_issued")!!.toInt())
        assertEquals("one refresh per expiry", refused, asked.count { it.refresh })
        assertTrue(asked.any { it.method == "PATCH" && it.url.startsWith(proxy) })
    }

    @Test fun aSecondRefusalIsFinalWithStatus401() = runBlocking {
        val proxy = pythonServer("token_proxy.py", base)
        val file = sourceFile("denied.bin", chunk.toInt(), 4)
        val refreshes = CopyOnWriteArrayList<Boolean>()
        try {
            upload(
                file.path, "$proxy/tus", uploadOptions(protocol = Protocol.TUS),
                headerProvider = { request ->
                    refreshes += request.refresh
                    mapOf("Authorization" to "Bearer never-issued")
                },
            )
            fail("a refused token was accepted")
        } catch (e: ChunkupException) {
            assertEquals(ErrorKind.REJECTED, e.kind)
            assertEquals(401, e.status)
            assertFalse(e.retryable)
        }
        // Each refused request: asked once, refreshed once, then given up.
        val asked = refreshes.toList()
        assertEquals(listOf(false, true), asked.takeLast(2))
        assertEquals(List(asked.size / 2) { listOf(false, true) }.flatten(), asked)
    }

    @Test fun decliningARetryFailsWithRetryDeclined() = runBlocking {
        val proxy = pythonServer("token_proxy.py", base, "--open")
        val file = sourceFile("declined.bin", 4 * chunk.toInt(), 5)
        val asked = CopyOnWriteArrayList<Triple<String, Int?, Int>>()
        // Two failures: the first may go to discovery (OPTIONS), which is
        // not retried; the next request's is asked about.
        post("$proxy/_fail?count=2&status=503")
        try {
            upload(
                file.path, "$proxy/tus", uploadOptions(protocol = Protocol.TUS, chunkSizeBytes = chunk),
                shouldRetry = { problem, attempt ->
                    asked += Triple(problem.reason, problem.status?.toInt(), attempt)
                    false
                },
            )
            fail("the upload went on after the retry was declined")
        } catch (e: ChunkupException) {
            assertEquals(ErrorKind.RETRY_DECLINED, e.kind)
        }
        // Asked once, at the first failure (the injected 503, or one of the
        // server's own faults if it came first), and the "no" ended it.
        val (reason, status, attempt) = asked.single()
        assertEquals("status", reason)
        assertEquals(1, attempt)
        assertTrue("status $status", status!! >= 500)
    }

    @Test fun rememberedUploadsAreListedContinuedAndForgotten() = runBlocking {
        val store = DirectoryResumeStore(File(dir, "state"))
        val file = sourceFile("remembered.bin", 32 * chunk.toInt(), 6)
        val options = uploadOptions(protocol = Protocol.TUS, chunkSizeBytes = chunk, metadata = mapOf("owner" to "jvm"))
        ChunkupUpload(file.path, "$base/tus", options, store).use { upload ->
            val running = async { runCatching { upload.start() } }
            upload.events.first { it is UploadEvent.ChunkAcknowledged }
            upload.stop()
            val outcome = running.await()
            assertEquals(ErrorKind.STOPPED, (outcome.exceptionOrNull() as ChunkupException).kind)
        }
        val kept = store.remembered().single()
        assertEquals("remembered.bin", kept.fileName)
        assertEquals(file.length().toULong(), kept.size)
        assertEquals(Protocol.TUS, kept.protocol)
        assertEquals("$base/tus", kept.endpoint)
        assertTrue(kept.acknowledged > 0u)
        assertTrue(kept.metadata.contains(KeyValue("owner", "jvm")))
        val report = upload(file.path, "", options.copy(uploadUrl = kept.uploadUrl))
        assertEquals(kept.uploadUrl, report.uploadUrl)
        assertEquals(sha256(file.readBytes()), serverSha256(kept.uploadUrl))
        store.forget(kept.key)
        assertTrue(store.remembered().isEmpty())
        assertNotNull("forget leaves the upload on the server", serverSha256(kept.uploadUrl))
    }

    @Test fun theSignerSignsEveryS3Request() = runBlocking {
        val s3 = pythonServer("fake_s3.py")
        val size = 3 * 5 * 1024 * 1024 + 7
        val file = sourceFile("s3.bin", size, 7)
        val signed = CopyOnWriteArrayList<SignRequest>()
        val report = upload(
            file.path, "$s3/bucket/s3.bin", uploadOptions(protocol = Protocol.S3, chunkSizeBytes = 5L * 1024 * 1024),
            signer = { request ->
                signed += request
                val separator = if ('?' in request.url) '&' else '?'
                SignedRequest("${request.url}${separator}X-Signature=kotlin-${signed.size}", emptyList())
            },
        )
        assertEquals(size.toULong(), report.size)
        assertEquals(sha256(file.readBytes()), field(get("$s3/_object/bucket/s3.bin"), "sha256"))
        assertEquals(S3Operation.CREATE_MULTIPART_UPLOAD, signed.first().operation)
        assertEquals(S3Operation.COMPLETE_MULTIPART_UPLOAD, signed.last().operation)
        val parts = signed.filter { it.operation == S3Operation.UPLOAD_PART }.mapNotNull { it.partNumber?.toInt() }
        assertEquals((1..4).toList(), parts.distinct().sorted())
    }

    /** The completion's part list (a payload, not a file range) goes out through UrlConnectionTransport too. */
    @Test fun s3OverUrlConnectionTransportSendsTheCompletionBody() = runBlocking {
        val s3 = pythonServer("fake_s3.py")
        val size = 2 * 5 * 1024 * 1024 + 11
        val file = sourceFile("s3-url.bin", size, 9)
        val report = upload(
            file.path, "$s3/bucket/s3-url.bin", uploadOptions(protocol = Protocol.S3, chunkSizeBytes = 5L * 1024 * 1024),
            transport = UrlConnectionTransport(),
            signer = { request ->
                val separator = if ('?' in request.url) '&' else '?'
                SignedRequest("${request.url}${separator}X-Signature=url-connection", emptyList())
            },
        )
        assertEquals(size.toULong(), report.size)
        assertEquals(sha256(file.readBytes()), field(get("$s3/_object/bucket/s3-url.bin"), "sha256"))
    }
}
