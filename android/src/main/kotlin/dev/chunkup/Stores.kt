package dev.chunkup

import dev.chunkup.ffi.Protocol
import dev.chunkup.ffi.ResumeRecord
import dev.chunkup.ffi.ResumeStore
import dev.chunkup.ffi.StoreException
import java.io.File
import java.io.IOException
import java.util.Properties
import java.util.concurrent.ConcurrentHashMap

/** Resume records in memory (tests, short-lived processes). */
class MemoryResumeStore : ResumeStore {
    private val records = ConcurrentHashMap<String, ResumeRecord>()
    override fun load(fingerprint: String): ResumeRecord? = records[fingerprint]
    override fun save(record: ResumeRecord) { records[record.fingerprint] = record }
    override fun remove(fingerprint: String) { records.remove(fingerprint) }
    override fun list(): List<ResumeRecord> = records.values.toList()
}

/**
 * Resume records as one properties file per upload in [dir], written
 * atomically (temporary file, then rename). Survives a killed process; on
 * Android use a directory under `context.filesDir`.
 */
class DirectoryResumeStore(private val dir: File) : ResumeStore {
    private fun fileFor(fingerprint: String): File? =
        if (fingerprint.isNotEmpty() && fingerprint.length <= 128 && fingerprint.all { it.isLetterOrDigit() })
            File(dir, "$fingerprint.properties") else null

    override fun load(fingerprint: String): ResumeRecord? {
        val file = fileFor(fingerprint) ?: return null
        if (!file.isFile) return null
        return try {
            val p = Properties().apply { file.inputStream().use { load(it) } }
            ResumeRecord(
                fingerprint = p.getProperty("fingerprint"),
                uploadUrl = p.getProperty("upload_url"),
                protocol = Protocol.valueOf(p.getProperty("protocol")),
                offset = p.getProperty("offset").toULong(),
                total = p.getProperty("total").toULong(),
                updatedMs = p.getProperty("updated_ms").toLong(),
                expiresMs = p.getProperty("expires_ms")?.toLong(),
            ).takeIf { it.fingerprint == fingerprint }
        } catch (e: Exception) {
            null // a damaged record only costs the resume
        }
    }

    override fun save(record: ResumeRecord) {
        val file = fileFor(record.fingerprint)
            ?: throw StoreException.Failed("not a fingerprint: ${record.fingerprint}")
        val p = Properties()
        p["fingerprint"] = record.fingerprint
        p["upload_url"] = record.uploadUrl
        p["protocol"] = record.protocol.name
        p["offset"] = record.offset.toString()
        p["total"] = record.total.toString()
        p["updated_ms"] = record.updatedMs.toString()
        record.expiresMs?.let { p["expires_ms"] = it.toString() }
        try {
            dir.mkdirs()
            val tmp = File(dir, "${file.name}.tmp")
            tmp.outputStream().use { out -> p.store(out, null); out.fd.sync() }
            if (!tmp.renameTo(file)) throw IOException("cannot rename $tmp to $file")
        } catch (e: IOException) {
            throw StoreException.Failed("cannot write $file: ${e.message}")
        }
    }

    override fun remove(fingerprint: String) {
        fileFor(fingerprint)?.delete()
    }

    override fun list(): List<ResumeRecord> =
        (dir.listFiles() ?: emptyArray())
            .filter { it.name.endsWith(".properties") }
            .mapNotNull { load(it.name.removeSuffix(".properties")) }
}
