package dev.chunkup

import dev.chunkup.ffi.ResumeRecord
import dev.chunkup.ffi.ResumeStore
import dev.chunkup.ffi.StoreException
import dev.chunkup.ffi.parseResumeRecord
import java.io.File
import java.io.IOException
import java.util.concurrent.ConcurrentHashMap

/** Resume records in memory (tests, short-lived processes). */
class MemoryResumeStore : ResumeStore {
    private val records = ConcurrentHashMap<String, String>()
    override fun load(key: String): String? = records[key]
    override fun save(key: String, record: String) { records[key] = record }
    override fun remove(key: String) { records.remove(key) }
    override fun list(): List<String> = records.values.toList()
}

/**
 * Resume records as one JSON file per upload in [dir] (the same JSON as the
 * native client's store), written atomically (temporary file, fsync,
 * rename). Survives a killed process; on Android use a directory under
 * `context.filesDir`.
 */
class DirectoryResumeStore(private val dir: File) : ResumeStore {
    // Keys are hex digests; anything else is refused rather than used as a path.
    private fun fileFor(key: String): File? =
        if (key.isNotEmpty() && key.length <= 128 && key.all { it.isLetterOrDigit() })
            File(dir, "$key.json") else null

    override fun load(key: String): String? {
        val file = fileFor(key) ?: return null
        return try {
            if (file.isFile) file.readText() else null
        } catch (e: IOException) {
            throw StoreException.Failed("cannot read $file: ${e.message}")
        }
    }

    override fun save(key: String, record: String) {
        val file = fileFor(key) ?: throw StoreException.Failed("not a resume key: $key")
        try {
            dir.mkdirs()
            val tmp = File(dir, "${file.name}.tmp")
            tmp.outputStream().use { out -> out.write(record.toByteArray()); out.fd.sync() }
            if (!tmp.renameTo(file)) throw IOException("cannot rename $tmp to $file")
        } catch (e: IOException) {
            throw StoreException.Failed("cannot write $file: ${e.message}")
        }
    }

    override fun remove(key: String) {
        fileFor(key)?.delete()
    }

    override fun list(): List<String> =
        (dir.listFiles() ?: emptyArray())
            .filter { it.name.endsWith(".json") }
            .mapNotNull { load(it.name.removeSuffix(".json")) }
}

/** The remembered uploads of this store, readable (unreadable entries are skipped). */
fun ResumeStore.records(): List<ResumeRecord> =
    list().mapNotNull { json -> runCatching { parseResumeRecord(json) }.getOrNull() }
