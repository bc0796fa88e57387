//! Upload expiration (tus `expiration`, `Upload-Limit` `expires` /
//! `max-age` for the IETF draft, GCS sessions): unfinished tus, IETF and
//! GCS uploads expire [`crate::ServerConfig::expire_after`] after their
//! creation or last append. An expired upload is deleted the next time a
//! tus, IETF or GCS request names it, and answered `410 Gone` from then on.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::AppState;
use crate::store::{Gone, Upload};

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The expiry of an upload touched now, or `None` when uploads never expire.
pub(crate) fn deadline(expire_after: Option<Duration>) -> Option<u64> {
    let after = u64::try_from(expire_after?.as_millis()).unwrap_or(u64::MAX);
    Some(now_ms().saturating_add(after))
}

/// An RFC 9110 IMF-fixdate (`Wed, 25 Jun 2014 16:00:00 GMT`).
pub(crate) fn http_date(at_ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(at_ms))
}

/// Whole seconds left until `at_ms` (0 when past).
pub(crate) fn seconds_left(at_ms: u64) -> u64 {
    at_ms.saturating_sub(now_ms()) / 1000
}

/// How a lookup by id ended.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A live upload.
    Found(Arc<Upload>),
    /// No such upload (or an invalid id).
    Missing,
    /// The upload expired (deleted now, or earlier by this instance), or
    /// its GCS session was cancelled.
    Gone(Gone),
    /// The store failed.
    Failed(std::io::Error),
}

/// Looks `id` up, deleting it when it has expired.
pub(crate) async fn lookup(app: &AppState, id: &str) -> Lookup {
    if let Some(why) = app.store.gone(id) {
        return Lookup::Gone(why);
    }
    let upload = match app.store.get(id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Lookup::Missing,
        Err(e) => return Lookup::Failed(e),
    };
    if !upload.snapshot().is_expired(now_ms()) {
        return Lookup::Found(upload);
    }
    match app.store.expire(id).await {
        Ok(()) => Lookup::Gone(Gone::Expired),
        Err(e) => Lookup::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(1_403_712_000_999),
            "Wed, 25 Jun 2014 16:00:00 GMT"
        );
        assert!(deadline(None).is_none());
        let d = deadline(Some(Duration::from_secs(10))).expect("deadline");
        assert!((9..=10).contains(&seconds_left(d)));
    }
}
