package dev.chunkup.android

import android.content.Context
import android.content.SharedPreferences
import dev.chunkup.ffi.ResumeStore

/**
 * Resume records in SharedPreferences (the core's JSON, one string per
 * upload): an upload survives the app being killed. `commit()` is used so a
 * record is on disk before the upload continues (calls come from the thread
 * running the upload, `Dispatchers.IO` with [dev.chunkup.ChunkupUpload]).
 */
class SharedPreferencesResumeStore(context: Context, name: String = "chunkup-uploads") : ResumeStore {
    private val prefs: SharedPreferences = context.getSharedPreferences(name, Context.MODE_PRIVATE)

    override fun load(key: String): String? = prefs.getString(key, null)

    override fun save(key: String, record: String) {
        prefs.edit().putString(key, record).commit()
    }

    override fun remove(key: String) {
        prefs.edit().remove(key).commit()
    }

    override fun list(): List<String> = prefs.all.values.mapNotNull { it as? String }
}
