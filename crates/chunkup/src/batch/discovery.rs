//! One discovery per endpoint for a whole batch: 10,000 small files must not
//! cost 10,000 `OPTIONS` requests.
//!
//! Discovery itself is the session's (one implementation, in the core).
//! This cache only orders it: the first file's session asks while the
//! others wait, and what it learned is handed to every later file as known
//! capabilities.

use std::path::Path;
use std::sync::Mutex;

use chunkup_core::{Capabilities, Event};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{Error, Transport, UploadReport, UploadRequest};

/// What the endpoint of a batch speaks, learned by the first file.
#[derive(Debug)]
pub struct DiscoveryCache {
    known: Mutex<Option<Capabilities>>,
    /// One file at a time may discover.
    asking: Semaphore,
}

impl Default for DiscoveryCache {
    fn default() -> Self {
        DiscoveryCache {
            known: Mutex::new(None),
            asking: Semaphore::new(1),
        }
    }
}

/// The file whose session discovers for the batch; it passes every event
/// of its upload to [`Asker::observe`]. Dropping it (the file's upload
/// ended, discovered or not) lets the next file go.
#[derive(Debug)]
pub(crate) struct Asker<'a> {
    cache: &'a DiscoveryCache,
    permit: Option<SemaphorePermit<'a>>,
}

impl Asker<'_> {
    /// Learns from the file's events: a settled protocol is kept for the
    /// batch, and once the server itself said what it speaks the other
    /// files go on without waiting for this one to end.
    pub(crate) fn observe(&mut self, event: &Event) {
        if let Event::Discovered(capabilities) = event {
            *self.cache.lock() = Some(capabilities.clone());
            if !capabilities.assumed {
                self.permit = None;
            }
        }
    }
}

impl DiscoveryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uploads the file at `path` with what the batch learned of its
    /// endpoint: the first file's session discovers while the others wait,
    /// and they are then sent without asking again.
    pub async fn upload_file<T: Transport>(
        &self,
        request: UploadRequest<'_, T>,
        path: &Path,
    ) -> Result<UploadReport, Error> {
        let (known, mut asker) = self.turn().await;
        let mut request = request;
        request.known = known;
        if asker.is_some() {
            request.observe = Some(Box::new(move |event: &Event| {
                if let Some(asker) = asker.as_mut() {
                    asker.observe(event);
                }
            }));
        }
        // The asker (in the observer) is dropped when the upload ends.
        request.file(path).await
    }

    /// The capabilities the next file is sent with, or — when none are
    /// known yet — the turn to discover them (other callers wait until the
    /// asker learned them or gave up).
    pub(crate) async fn turn(&self) -> (Option<Capabilities>, Option<Asker<'_>>) {
        // What the server said is final; a guess is trusted only once the
        // file that made it is done (it may still learn better).
        if let Some(known) = self.known().filter(|k| !k.assumed) {
            return (Some(known), None);
        }
        let permit = self.asking.acquire().await.ok();
        match self.known() {
            Some(known) => (Some(known), None),
            None => (
                None,
                Some(Asker {
                    cache: self,
                    permit,
                }),
            ),
        }
    }

    /// What the cache holds, if anything.
    pub fn known(&self) -> Option<Capabilities> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Capabilities>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chunkup_core::ResolvedProtocol;
    use std::future::Future;
    use std::pin::Pin;

    async fn still_waiting(turn: Pin<&mut impl Future>) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), turn)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn the_first_file_asks_and_the_others_wait_for_its_answer() {
        let cache = DiscoveryCache::new();
        let (known, asker) = cache.turn().await;
        assert!(known.is_none());
        let mut asker = asker.expect("the first file asks");
        // A second file waits while the first asks.
        let second = cache.turn();
        tokio::pin!(second);
        assert!(
            still_waiting(second.as_mut()).await,
            "the second file waits"
        );
        let tus = Capabilities {
            protocol: ResolvedProtocol::Tus,
            ..Capabilities::default()
        };
        asker.observe(&Event::Discovered(tus.clone()));
        let (known, asker) = second.await;
        assert_eq!(known, Some(tus));
        assert!(asker.is_none());
    }

    #[tokio::test]
    async fn a_guess_holds_the_others_until_the_asker_ends() {
        let cache = DiscoveryCache::new();
        let (_, asker) = cache.turn().await;
        let mut asker = asker.expect("asks");
        asker.observe(&Event::Discovered(Capabilities::assumed(
            ResolvedProtocol::Ranged,
        )));
        let second = cache.turn();
        tokio::pin!(second);
        assert!(still_waiting(second.as_mut()).await);
        drop(asker);
        let (known, _) = second.await;
        assert!(known.is_some_and(|k| k.assumed));
    }
}
