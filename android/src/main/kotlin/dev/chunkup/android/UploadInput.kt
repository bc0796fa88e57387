// What UploadWorker uploads, as plain Kotlin (no Android import): the
// mapping to and from WorkManager's input data is tested on the JVM.
package dev.chunkup.android

import dev.chunkup.ffi.Protocol
import dev.chunkup.ffi.UploadOptions
import dev.chunkup.uploadOptions

/**
 * One upload for [UploadWorker]: the file at [path] to [endpoint], with the
 * [protocol] (null: [uploadOptions]' default), request [headers] and
 * [metadata] (tus `Upload-Metadata`, IETF/ranged equivalents).
 *
 * It travels as WorkManager input data ([toData], [fromData]), which
 * WorkManager keeps in its database, unencrypted, and limits to 10 KB:
 * headers that carry long-lived secrets do not belong there.
 */
data class UploadInput(
    val path: String,
    val endpoint: String,
    val protocol: Protocol? = null,
    val headers: Map<String, String> = emptyMap(),
    val metadata: Map<String, String> = emptyMap(),
) {
    /** WorkManager's unique work name: one work per file and endpoint. */
    val workName: String get() = "chunkup:$endpoint $path"

    /**
     * The id of this upload's notification, derived from [workName]: the
     * same for every run of one upload, different for another upload (but
     * for a 1 in 2^31 collision), never 0 (which a foreground service
     * refuses). Apps whose own ids are small keep clear of it.
     */
    val notificationId: Int get() = (workName.hashCode() and Int.MAX_VALUE).takeIf { it != 0 } ?: 1

    /** The options of the upload. */
    fun options(): UploadOptions = uploadOptions(headers = headers, metadata = metadata)
        .let { defaults -> if (protocol == null) defaults else defaults.copy(protocol = protocol) }

    /** WorkManager input data (`Data.Builder().putAll(toData())`). */
    fun toData(): Map<String, Any> = buildMap {
        put(KEY_PATH, path)
        put(KEY_ENDPOINT, endpoint)
        protocol?.let { put(KEY_PROTOCOL, it.name.lowercase()) }
        headers.forEach { (name, value) -> put(HEADER_PREFIX + name, value) }
        metadata.forEach { (name, value) -> put(METADATA_PREFIX + name, value) }
    }

    companion object {
        const val KEY_PATH = "path"
        const val KEY_ENDPOINT = "endpoint"
        /** `ranged`, `tus`, `ietf` or `auto` (any case). */
        const val KEY_PROTOCOL = "protocol"
        /** A key `header:NAME` holds the value of header NAME. */
        const val HEADER_PREFIX = "header:"
        /** A key `metadata:NAME` holds the value of metadata NAME. */
        const val METADATA_PREFIX = "metadata:"

        /**
         * The upload that WorkManager input data (`Data.keyValueMap`)
         * describes; [IllegalArgumentException] naming what is missing or
         * wrong. Keys it does not know are left alone (the app's own).
         */
        fun fromData(data: Map<String, Any?>): UploadInput {
            fun string(key: String): String? = when (val value = data[key]) {
                null -> null
                is String -> value
                else -> throw IllegalArgumentException("input '$key' is not a string: $value")
            }
            fun prefixed(prefix: String): Map<String, String> = data.keys
                .filter { it.startsWith(prefix) }
                .associate { key -> key.removePrefix(prefix) to string(key)!! }
            val protocol = string(KEY_PROTOCOL)?.let { name ->
                Protocol.values().firstOrNull { it.name.equals(name, ignoreCase = true) }
                    ?: throw IllegalArgumentException(
                        "input '$KEY_PROTOCOL' is '$name', not one of " +
                            Protocol.values().joinToString { it.name.lowercase() },
                    )
            }
            return UploadInput(
                path = string(KEY_PATH) ?: throw IllegalArgumentException("input '$KEY_PATH' is missing"),
                endpoint = string(KEY_ENDPOINT) ?: throw IllegalArgumentException("input '$KEY_ENDPOINT' is missing"),
                protocol = protocol,
                headers = prefixed(HEADER_PREFIX),
                metadata = prefixed(METADATA_PREFIX),
            )
        }
    }
}
