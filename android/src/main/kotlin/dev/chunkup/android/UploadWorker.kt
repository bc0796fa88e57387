package dev.chunkup.android

import android.content.Context
import android.content.pm.ServiceInfo
import android.os.Build
import androidx.core.app.NotificationCompat
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.CoroutineWorker
import androidx.work.Data
import androidx.work.ExistingWorkPolicy
import androidx.work.ForegroundInfo
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import androidx.work.workDataOf
import dev.chunkup.ChunkupException
import dev.chunkup.ErrorKind
import dev.chunkup.ChunkupUpload
import dev.chunkup.discard as discardUpload
import java.io.File
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.flow.collectLatest
import kotlinx.coroutines.launch
import kotlinx.coroutines.coroutineScope

/**
 * Example: keeps an upload going while the app is in the background (a
 * foreground worker with a progress notification).
 *
 * Whenever this run ends early, the upload is *stopped*, never deleted: it
 * stays on the server and its record stays in the SharedPreferences store,
 * so the next run continues from the server's offset. That covers the
 * process being killed, and WorkManager stopping the worker (constraints
 * no longer met, quota, a system stop, or the work cancelled): WorkManager
 * cancels the coroutine, and a cancelled [ChunkupUpload.start] is a stop.
 * WorkManager runs a stopped worker again when it may (a cancelled work is
 * not run again until it is enqueued anew). To give an upload up for good
 * — removed from the server and the store — cancel its work and call
 * [discard].
 *
 * Its input is an [UploadInput] (file, endpoint, protocol, headers,
 * metadata): [enqueue] it. Each upload has its own notification, with a
 * cancel action (a stop: the upload stays resumable).
 *
 * The app creates the notification channel [CHANNEL] at startup (and, on
 * Android 13+, asks for POST_NOTIFICATIONS to see it).
 */
class UploadWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {

    override suspend fun doWork(): Result = coroutineScope {
        val input = try {
            UploadInput.fromData(inputData.keyValueMap)
        } catch (e: IllegalArgumentException) {
            return@coroutineScope Result.failure(workDataOf(KEY_ERROR to e.message, KEY_ERROR_KIND to "INPUT"))
        }
        setForeground(foregroundInfo(input, 0))
        val upload = ChunkupUpload(
            input.path, input.endpoint, input.options(),
            store = SharedPreferencesResumeStore(applicationContext),
        )
        upload.use {
            val reporter = launch {
                var shownPercent = 0
                upload.progress.collectLatest { p ->
                    setProgress(workDataOf(KEY_ACKNOWLEDGED to p.acknowledged, KEY_TOTAL to p.total))
                    // The notification changes only with the percentage
                    // (Android sheds an app's too frequent updates).
                    val percent = (p.fraction * 100).toInt()
                    if (percent != shownPercent) {
                        setForeground(foregroundInfo(input, percent))
                        shownPercent = percent
                    }
                }
            }
            try {
                // A cancellation of this coroutine (WorkManager stopping the
                // worker, or the notification's cancel action) propagates
                // from here: the upload is stopped and kept, and a later run
                // continues it.
                val report = upload.start()
                Result.success(workDataOf(KEY_UPLOAD_URL to report.uploadUrl))
            } catch (e: ChunkupException) {
                when (e.kind) {
                    // The network stayed bad for the whole retry budget: try
                    // again later (the next run resumes).
                    ErrorKind.RETRIES_EXHAUSTED, ErrorKind.DEADLINE_EXCEEDED, ErrorKind.HTTP -> Result.retry()
                    // Stopped by the app (ChunkupUpload.stop): kept; run again later.
                    ErrorKind.STOPPED -> Result.retry()
                    else -> Result.failure(workDataOf(KEY_ERROR to e.message, KEY_ERROR_KIND to e.kind.name))
                }
            } finally {
                reporter.cancel()
            }
        }
    }

    /**
     * The upload's own notification ([UploadInput.notificationId]: several
     * uploads show several), with a cancel action: WorkManager cancels this
     * work, which stops the upload and keeps it (enqueue it again to
     * continue). The service type is dataSync, as the manifest declares.
     */
    private fun foregroundInfo(input: UploadInput, percent: Int): ForegroundInfo {
        val cancel = WorkManager.getInstance(applicationContext).createCancelPendingIntent(id)
        val notification = NotificationCompat.Builder(applicationContext, CHANNEL)
            .setSmallIcon(android.R.drawable.stat_sys_upload)
            .setContentTitle(File(input.path).name)
            .setContentText("Uploading: $percent%")
            .setProgress(100, percent, false)
            .setOngoing(true)
            .setOnlyAlertOnce(true)
            .addAction(android.R.drawable.ic_menu_close_clear_cancel, "Cancel", cancel)
            .build()
        return if (Build.VERSION.SDK_INT >= 29) {
            ForegroundInfo(input.notificationId, notification, ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC)
        } else {
            ForegroundInfo(input.notificationId, notification)
        }
    }

    companion object {
        const val CHANNEL = "uploads"
        const val KEY_ACKNOWLEDGED = "acknowledged"
        const val KEY_TOTAL = "total"
        const val KEY_UPLOAD_URL = "upload_url"
        const val KEY_ERROR = "error"
        const val KEY_ERROR_KIND = "error_kind"

        /**
         * Enqueues [input] as unique work ([UploadInput.workName]: one per
         * file and endpoint; while it is pending or running, enqueueing it
         * again changes nothing). Enqueueing a stopped or cancelled upload
         * again continues it from the server's offset.
         */
        fun enqueue(context: Context, input: UploadInput) {
            val request = OneTimeWorkRequestBuilder<UploadWorker>()
                .setInputData(Data.Builder().putAll(input.toData()).build())
                .setConstraints(Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build())
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
                .build()
            WorkManager.getInstance(context)
                .enqueueUniqueWork(input.workName, ExistingWorkPolicy.KEEP, request)
        }

        /** Enqueues the upload of [path] to [endpoint] with default options. */
        fun enqueue(context: Context, path: String, endpoint: String) =
            enqueue(context, UploadInput(path, endpoint))

        /**
         * Gives the upload of [path] up: cancels its work, then removes the
         * upload from the server and its record from the store. (A running
         * worker stops asynchronously; a record it still writes while
         * stopping is harmless: a later upload of the file finds the upload
         * gone and starts a new one.)
         */
        suspend fun discard(context: Context, path: String, endpoint: String) {
            WorkManager.getInstance(context).cancelUniqueWork(UploadInput(path, endpoint).workName)
            discardUpload(path, endpoint, SharedPreferencesResumeStore(context))
        }
    }
}
