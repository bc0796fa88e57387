package dev.chunkup

import dev.chunkup.ffi.HttpRequest
import dev.chunkup.ffi.HttpResponse
import dev.chunkup.ffi.Transport
import dev.chunkup.ffi.TransportException
import java.io.IOException
import java.io.RandomAccessFile
import java.net.ConnectException
import java.net.HttpURLConnection
import java.net.ProtocolException
import java.net.SocketTimeoutException
import java.net.URI
import java.net.UnknownHostException
import javax.net.ssl.SSLException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/**
 * A foreign [Transport] over `HttpURLConnection`: the app sends the chunks,
 * the Rust engine decides what to send. It streams the body range straight
 * from the file (never the whole file in memory); an upload from an
 * [UploadSource] has no file, and hands each chunk over as the request's
 * `payload`, which is sent as it is.
 *
 * **`PATCH` (tus, IETF).** Where `HttpURLConnection` refuses `PATCH` (the
 * desktop JVM's does), a `PATCH` is sent as `POST` with
 * `X-HTTP-Method-Override: PATCH`, which tus servers accept (tusd, chunkup
 * serve, tus-node-server): tus works through this transport. A server that
 * ignores the override (most IETF-draft servers, S3 and other object
 * stores) answers such a `POST` with an error — never a wrong upload. For
 * those, leave the transport out (chunkup's built-in one sends real
 * `PATCH`es) or use one over OkHttp (same shape: read `request.body` from
 * `path` at `offset`).
 *
 * The blocking exchange runs on [Dispatchers.IO]. When the upload ends
 * first (stopped, cancelled), the engine cancels the call and ignores its
 * answer; the exchange under way finishes on its IO thread.
 */
class UrlConnectionTransport(
    private val connectTimeoutMs: Int = 15_000,
    private val readTimeoutMs: Int = 60_000,
) : Transport {
    override suspend fun send(request: HttpRequest): HttpResponse =
        withContext(Dispatchers.IO) { exchange(request) }

    private fun exchange(request: HttpRequest): HttpResponse {
        try {
            val connection = URI(request.url).toURL().openConnection() as HttpURLConnection
            try {
                connection.instanceFollowRedirects = false
                connection.connectTimeout = connectTimeoutMs
                connection.readTimeout = readTimeoutMs
                setMethod(connection, request.method, request.headers)
                connection.useCaches = false
                for (header in request.headers) connection.addRequestProperty(header.key, header.value)
                val body = request.body
                val payload = request.payload
                if (payload != null) {
                    // The body's bytes: a chunk of an UploadSource, or a
                    // small body of the engine's own (S3's part list).
                    connection.doOutput = true
                    connection.setFixedLengthStreamingMode(payload.size)
                    connection.outputStream.use { it.write(payload) }
                } else if (body != null) {
                    connection.doOutput = true
                    connection.setFixedLengthStreamingMode(body.length.toLong())
                    RandomAccessFile(body.path, "r").use { file ->
                        file.seek(body.offset.toLong())
                        val buffer = ByteArray(256 * 1024)
                        var left = body.length.toLong()
                        connection.outputStream.use { out ->
                            while (left > 0) {
                                val n = file.read(buffer, 0, minOf(buffer.size.toLong(), left).toInt())
                                if (n < 0) throw IOException("${body.path} is shorter than expected")
                                out.write(buffer, 0, n)
                                left -= n
                            }
                        }
                    }
                }
                val status = connection.responseCode
                val headers = connection.headerFields
                    .filterKeys { it != null }
                    .flatMap { (name, values) -> values.map { KeyValue(name, it) } }
                val stream = if (status >= 400) connection.errorStream else connection.inputStream
                val bytes = stream?.use { it.readNBytes(64 * 1024) } ?: ByteArray(0)
                return HttpResponse(status.toUShort(), headers, bytes)
            } finally {
                connection.disconnect()
            }
        } catch (e: ConnectException) {
            throw TransportException.Connect(e.toString())
        } catch (e: UnknownHostException) {
            throw TransportException.Dns(e.toString())
        } catch (e: SSLException) {
            throw TransportException.Tls(e.toString())
        } catch (e: SocketTimeoutException) {
            throw TransportException.Timeout(e.toString())
        } catch (e: IOException) {
            throw TransportException.Reset(e.toString())
        }
    }

    /**
     * Sets [method], or — for a `PATCH` this `HttpURLConnection` refuses —
     * `POST` with `X-HTTP-Method-Override: PATCH` (unless the request names
     * an override itself).
     */
    private fun setMethod(connection: HttpURLConnection, method: String, headers: List<KeyValue>) {
        try {
            connection.requestMethod = method
        } catch (refused: ProtocolException) {
            // Not a break to retry: this method can never be sent here.
            if (method != "PATCH") throw TransportException.Other("HttpURLConnection cannot send $method: $refused")
            connection.requestMethod = "POST"
            if (headers.none { it.key.equals(METHOD_OVERRIDE, ignoreCase = true) }) {
                connection.setRequestProperty(METHOD_OVERRIDE, method)
            }
        }
    }

    private companion object {
        const val METHOD_OVERRIDE = "X-HTTP-Method-Override"
    }
}
