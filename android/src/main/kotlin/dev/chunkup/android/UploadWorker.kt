package dev.chunkup.android

import android.content.Context
import android.content.pm.ServiceInfo
import android.os.Build
import androidx.core.app.NotificationCompat
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.CoroutineWorker
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
import dev.chunkup.uploadOptions
import dev.chunkup.discard as discardUpload
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
 * The app creates the notification channel [CHANNEL] at startup.
 */
class UploadWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {

    override suspend fun doWork(): Result = coroutineScope {
        val path = inputData.getString(KEY_PATH) ?: return@coroutineScope Result.failure()
        val endpoint = inputData.getString(KEY_ENDPOINT) ?: return@coroutineScope Result.failure()
        setForeground(foregroundInfo(0))
        val upload = ChunkupUpload(
            path, endpoint, uploadOptions(),
            store = SharedPreferencesResumeStore(applicationContext),
        )
        upload.use {
            val reporter = launch {
                upload.progress.collectLatest { p ->
                    setProgress(workDataOf(KEY_ACKNOWLEDGED to p.acknowledged, KEY_TOTAL to p.total))
                    setForeground(foregroundInfo((p.fraction * 100).toInt()))
                }
            }
            try {
                // A cancellation of this coroutine (WorkManager stopping the
                // worker) propagates from here: the upload is stopped and
                // kept, and the next run continues it.
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

    private fun foregroundInfo(percent: Int): ForegroundInfo {
        val notification = NotificationCompat.Builder(applicationContext, CHANNEL)
            .setSmallIcon(android.R.drawable.stat_sys_upload)
            .setContentTitle("Uploading")
            .setProgress(100, percent, false)
            .setOngoing(true)
            .build()
        return if (Build.VERSION.SDK_INT >= 29) {
            ForegroundInfo(NOTIFICATION_ID, notification, ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC)
        } else {
            ForegroundInfo(NOTIFICATION_ID, notification)
        }
    }

    companion object {
        const val CHANNEL = "uploads"
        const val KEY_PATH = "path"
        const val KEY_ENDPOINT = "endpoint"
        const val KEY_ACKNOWLEDGED = "acknowledged"
        const val KEY_TOTAL = "total"
        const val KEY_UPLOAD_URL = "upload_url"
        const val KEY_ERROR = "error"
        const val KEY_ERROR_KIND = "error_kind"
        private const val NOTIFICATION_ID = 4711

        /** Enqueues the upload of [path] (one unique work per file). */
        fun enqueue(context: Context, path: String, endpoint: String) {
            val request = OneTimeWorkRequestBuilder<UploadWorker>()
                .setInputData(workDataOf(KEY_PATH to path, KEY_ENDPOINT to endpoint))
                .setConstraints(Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build())
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
                .build()
            WorkManager.getInstance(context)
                .enqueueUniqueWork(workName(path), ExistingWorkPolicy.KEEP, request)
        }

        /**
         * Gives the upload of [path] up: cancels its work, then removes the
         * upload from the server and its record from the store. (A running
         * worker stops asynchronously; a record it still writes while
         * stopping is harmless: a later upload of the file finds the upload
         * gone and starts a new one.)
         */
        suspend fun discard(context: Context, path: String, endpoint: String) {
            WorkManager.getInstance(context).cancelUniqueWork(workName(path))
            discardUpload(path, endpoint, SharedPreferencesResumeStore(context))
        }

        private fun workName(path: String) = "chunkup:$path"
    }
}
