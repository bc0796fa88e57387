package dev.chunkup.android

import android.content.Context
import android.content.SharedPreferences
import dev.chunkup.ffi.Protocol
import dev.chunkup.ffi.ResumeRecord
import dev.chunkup.ffi.ResumeStore
import org.json.JSONObject

/**
 * Resume records in SharedPreferences (one JSON string per fingerprint):
 * an upload survives the app being killed. `commit()` is used so a record is
 * on disk before the upload continues (calls come from a worker thread).
 */
class SharedPreferencesResumeStore(context: Context, name: String = "chunkup-uploads") : ResumeStore {
    private val prefs: SharedPreferences = context.getSharedPreferences(name, Context.MODE_PRIVATE)

    override fun load(fingerprint: String): ResumeRecord? =
        prefs.getString(fingerprint, null)?.let { decode(it) }

    override fun save(record: ResumeRecord) {
        prefs.edit().putString(record.fingerprint, encode(record)).commit()
    }

    override fun remove(fingerprint: String) {
        prefs.edit().remove(fingerprint).commit()
    }

    override fun list(): List<ResumeRecord> =
        prefs.all.values.mapNotNull { (it as? String)?.let(::decode) }

    private fun encode(r: ResumeRecord): String = JSONObject()
        .put("fingerprint", r.fingerprint)
        .put("upload_url", r.uploadUrl)
        .put("protocol", r.protocol.name.lowercase())
        .put("offset", r.offset.toLong())
        .put("total", r.total.toLong())
        .put("updated_ms", r.updatedMs)
        .apply { r.expiresMs?.let { put("expires_ms", it) } }
        .toString()

    private fun decode(json: String): ResumeRecord? = try {
        val o = JSONObject(json)
        ResumeRecord(
            fingerprint = o.getString("fingerprint"),
            uploadUrl = o.getString("upload_url"),
            protocol = Protocol.valueOf(o.getString("protocol").uppercase()),
            offset = o.getLong("offset").toULong(),
            total = o.getLong("total").toULong(),
            updatedMs = o.getLong("updated_ms"),
            expiresMs = if (o.has("expires_ms")) o.getLong("expires_ms") else null,
        )
    } catch (e: Exception) {
        null // a damaged record only costs the resume
    }
}
