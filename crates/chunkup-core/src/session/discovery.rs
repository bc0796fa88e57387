//! How a session settles the protocol: from the user's choice, a resume
//! record, or one `OPTIONS` to the endpoint.
//!
//! - A protocol the user named is never replaced by a guess. `OPTIONS` is
//!   then only asked to learn what the server supports (tus extensions,
//!   checksum, maximum size); any failure to answer falls back to what that
//!   protocol's servers support anyway ([`Capabilities::assumed`]).
//! - With `auto`, the answer decides: tus or IETF headers name the protocol;
//!   an answer without them (or a server that does not do `OPTIONS`) leaves
//!   the ranged protocol as a guess, which a later answer may still correct
//!   (a `412` with `Tus-Version` to the ranged creation). A server that
//!   cannot be asked ends the upload quickly with a typed error.
//! - The request carries only the user's headers: nothing that makes a
//!   browser's CORS preflight fail against a server that allows exactly its
//!   own protocol's headers.

use std::time::Duration;

use crate::protocol::announced;
use crate::retry::RetryState;
use crate::{
    Capabilities, Error, Method, RequestId, RequestKind, RequestSpec, ResolvedProtocol, Response,
    RetryPolicy, TransportError, TransportErrorKind,
};

/// Tries at discovery before an `auto` upload gives up: a server that
/// cannot say what it speaks is a configuration problem, not a bad link.
const DISCOVERY_ATTEMPTS: u32 = 3;
/// The longest wait between two tries, whatever `Retry-After` says.
const DISCOVERY_MAX_DELAY: Duration = Duration::from_secs(5);

/// What discovery concluded after an answer or a failure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Settled {
    /// The protocol is settled.
    Protocol(Capabilities),
    /// Ask again after this delay.
    AskAgain(Duration),
    /// The protocol cannot be learned: the upload fails.
    Failed(Error),
}

/// One endpoint's discovery.
#[derive(Debug)]
pub(crate) struct Discovery {
    url: String,
    headers: Vec<(String, String)>,
    /// The protocol the user named (`None` for `auto`).
    named: Option<ResolvedProtocol>,
    retry: RetryState,
    policy: RetryPolicy,
    /// The header provider can refresh credentials (one refresh after a
    /// 401/403).
    refreshable: bool,
    refresh_next: bool,
}

impl Discovery {
    /// Discovery of `url` for an upload that speaks `named` (or `auto`),
    /// sending the user's `headers`.
    pub(crate) fn new(
        url: String,
        named: Option<ResolvedProtocol>,
        headers: Vec<(String, String)>,
        policy: &RetryPolicy,
        seed: u64,
    ) -> Self {
        let policy = RetryPolicy {
            max_attempts: policy.max_attempts.min(DISCOVERY_ATTEMPTS - 1),
            max_delay: policy.max_delay.min(DISCOVERY_MAX_DELAY),
            max_retry_after: DISCOVERY_MAX_DELAY,
            ..policy.clone()
        };
        Discovery {
            url,
            headers,
            named,
            retry: RetryState::new(&policy, seed),
            policy,
            refreshable: false,
            refresh_next: false,
        }
    }

    /// Lets a 401/403 be asked again once with fresh credentials.
    pub(crate) fn refreshable(mut self, refreshable: bool) -> Self {
        self.refreshable = refreshable;
        self
    }

    /// The `OPTIONS` request.
    pub(crate) fn request(&mut self, id: RequestId) -> RequestSpec {
        RequestSpec {
            id,
            kind: RequestKind::Discover,
            method: Method::Options,
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: None,
            checksum: None,
            new_connection: false,
            refresh_credentials: std::mem::take(&mut self.refresh_next),
            payload: None,
            signing: None,
        }
    }

    /// What an answer to the `OPTIONS` means.
    pub(crate) fn on_response(&mut self, response: &Response) -> Settled {
        let status = response.status;
        if let Some(server) = announced(response) {
            return self.settle(Some(server));
        }
        match status {
            401 | 403 | 407 if self.refreshable => {
                // Fresh credentials, once.
                self.refreshable = false;
                self.refresh_next = true;
                Settled::AskAgain(Duration::ZERO)
            }
            200..=299 => self.settle(None),
            // Servers that do not do `OPTIONS` (or not at this path) say so.
            400 | 403 | 404 | 405 | 501 => self.settle(None),
            _ if self.named.is_some() => self.settle(None),
            401 | 407 => Settled::Failed(self.failed(
                Some(status),
                format!(
                    "the server refused the request (HTTP {status}): check the credentials sent with it"
                ),
            )),
            408 | 425 | 429 | 500..=599 => {
                let retry_after = response
                    .header("Retry-After")
                    .and_then(crate::protocol::headers::parse_retry_after);
                self.again(Some(status), format!("HTTP {status}"), retry_after)
            }
            _ => Settled::Failed(self.failed(
                Some(status),
                format!("it answered HTTP {status}: {}", response.body_excerpt()),
            )),
        }
    }

    /// What a request that got no answer means.
    pub(crate) fn on_transport_failure(&mut self, error: &TransportError) -> Settled {
        if self.named.is_some() {
            return self.settle(None);
        }
        if error.kind == TransportErrorKind::Blocked {
            return Settled::Failed(self.failed(None, error.to_string()));
        }
        self.again(None, error.to_string(), None)
    }

    /// The protocol from what the server `announced` (if anything): the
    /// user's choice wins over it, the ranged protocol is the guess when
    /// nothing was announced and nothing was named.
    fn settle(&self, server: Option<Capabilities>) -> Settled {
        let capabilities = match (self.named, server) {
            (Some(named), Some(server)) if server.protocol == named => server,
            (Some(named), _) => Capabilities::assumed(named),
            (None, Some(server)) => server,
            (None, None) => Capabilities::assumed(ResolvedProtocol::Ranged),
        };
        Settled::Protocol(capabilities)
    }

    fn again(
        &mut self,
        status: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    ) -> Settled {
        if !self.retry.record_failure(&self.policy) {
            let attempts = self.retry.failures;
            return Settled::Failed(self.failed(status, format!("{reason} ({attempts} tries)")));
        }
        let floor = retry_after
            .map(|d| d.min(self.policy.max_retry_after))
            .unwrap_or_default();
        Settled::AskAgain(self.retry.next_delay(floor).min(DISCOVERY_MAX_DELAY))
    }

    fn failed(&self, status: Option<u16>, reason: String) -> Error {
        Error::DiscoveryFailed {
            url: self.url.clone(),
            status,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery(named: Option<ResolvedProtocol>) -> Discovery {
        Discovery::new(
            "http://127.0.0.1:1/files".into(),
            named,
            vec![("Authorization".into(), "Bearer t".into())],
            &RetryPolicy::default(),
            1,
        )
    }

    fn protocol(settled: Settled) -> (ResolvedProtocol, bool) {
        match settled {
            Settled::Protocol(caps) => (caps.protocol, caps.assumed),
            other => panic!("not settled: {other:?}"),
        }
    }

    #[test]
    fn the_request_carries_only_the_users_headers() {
        let request = discovery(None).request(RequestId(3));
        assert_eq!(request.method, Method::Options);
        assert_eq!(
            request.headers,
            vec![("Authorization".to_string(), "Bearer t".to_string())]
        );
    }

    #[test]
    fn a_named_protocol_is_never_replaced() {
        let tus = Some(ResolvedProtocol::Tus);
        for answer in [
            Response::status(405),
            Response::status(503),
            Response::status(401),
            Response::status(204).with_header("Accept-Patch", "application/partial-upload"),
        ] {
            assert_eq!(
                protocol(discovery(tus).on_response(&answer)),
                (ResolvedProtocol::Tus, true),
                "{answer:?}"
            );
        }
        let reset = TransportError::new(TransportErrorKind::Reset, "reset");
        assert_eq!(
            protocol(discovery(tus).on_transport_failure(&reset)),
            (ResolvedProtocol::Tus, true)
        );
        let listed = Response::status(204)
            .with_header("Tus-Version", "1.0.0")
            .with_header("Tus-Extension", "creation,checksum");
        match discovery(tus).on_response(&listed) {
            Settled::Protocol(caps) => {
                assert!(!caps.assumed && caps.has_extension("checksum"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auto_guesses_ranged_only_when_nothing_is_announced() {
        assert_eq!(
            protocol(discovery(None).on_response(&Response::status(405))),
            (ResolvedProtocol::Ranged, true)
        );
        assert_eq!(
            protocol(discovery(None).on_response(&Response::status(204))),
            (ResolvedProtocol::Ranged, true)
        );
        let tus = Response::status(405).with_header("Tus-Version", "1.0.0");
        assert_eq!(
            protocol(discovery(None).on_response(&tus)),
            (ResolvedProtocol::Tus, false)
        );
    }

    #[test]
    fn auto_fails_fast_and_typed_when_the_server_cannot_be_asked() {
        let mut busy = discovery(None);
        let mut waited = Duration::ZERO;
        let failure = loop {
            match busy.on_response(&Response::status(503).with_header("Retry-After", "3600")) {
                Settled::AskAgain(delay) => {
                    assert!(delay <= DISCOVERY_MAX_DELAY);
                    waited += delay;
                }
                Settled::Failed(error) => break error,
                Settled::Protocol(caps) => panic!("{caps:?}"),
            }
        };
        assert!(waited <= DISCOVERY_MAX_DELAY * DISCOVERY_ATTEMPTS);
        assert!(matches!(
            failure,
            Error::DiscoveryFailed {
                status: Some(503),
                ..
            }
        ));
        let blocked = TransportError::new(TransportErrorKind::Blocked, "");
        match discovery(None).on_transport_failure(&blocked) {
            Settled::Failed(error) => {
                let text = error.to_string();
                assert!(text.contains("CORS"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            discovery(None).on_response(&Response::status(401)),
            Settled::Failed(Error::DiscoveryFailed {
                status: Some(401),
                ..
            })
        ));
    }
}
