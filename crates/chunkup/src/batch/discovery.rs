//! One discovery per endpoint for a whole batch: 10,000 small files must not
//! cost 10,000 `OPTIONS` requests.

use chunkup_core::protocol::discovery;
use chunkup_core::{Capabilities, Protocol, RequestId, Upload, UploadConfig};

use super::BatchPolicy;
use crate::client::UploadOptions;
use crate::transport::Transport;

/// Asks `endpoint` what it supports: one `OPTIONS`, as the engine would send
/// it, with the caller's headers (an endpoint behind authentication answers
/// only with them). `None` when the answer is unusable: each upload then
/// discovers (and retries) on its own.
pub async fn discover<T: Transport>(
    transport: &T,
    endpoint: &str,
    options: &UploadOptions,
) -> Option<Capabilities> {
    // Only URLs every upload would accept.
    Upload::new(UploadConfig::create(endpoint, 0)).ok()?;
    let mut request = discovery::options_request(RequestId(0), endpoint, options.ietf_version);
    if options.protocol == Protocol::Tus {
        // The engine asks a tus endpoint without the IETF interop header.
        request.headers.clear();
    }
    for (name, value) in &options.headers {
        if !request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            request.headers.push((name.clone(), value.clone()));
        }
    }
    match transport.send(request, None).await {
        Ok(response) if (200..300).contains(&response.status) => {
            let capabilities = discovery::capabilities(&response);
            (capabilities.protocol != Protocol::Auto).then_some(capabilities)
        }
        _ => None,
    }
}

/// The capabilities of one endpoint, learned by the first file that needs
/// them and shared by every later one ([`super::for_batch`] applied).
#[derive(Debug, Default)]
pub struct DiscoveryCache {
    known: tokio::sync::Mutex<Option<Capabilities>>,
    policy: BatchPolicy,
}

impl DiscoveryCache {
    /// An empty cache for a batch run with `policy`.
    pub fn new(policy: &BatchPolicy) -> Self {
        DiscoveryCache {
            known: tokio::sync::Mutex::default(),
            policy: policy.clone(),
        }
    }

    /// Capabilities to put in [`UploadOptions::capabilities`]; the first
    /// caller asks the endpoint while the others wait for its answer. `None`
    /// when the protocol needs no discovery or the endpoint gave no usable
    /// answer (then the next caller asks again).
    pub async fn capabilities<T: Transport>(
        &self,
        transport: &T,
        endpoint: &str,
        options: &UploadOptions,
    ) -> Option<Capabilities> {
        if !super::needs_discovery(options.protocol) {
            return None;
        }
        let mut known = self.known.lock().await;
        if known.is_none() {
            *known = discover(transport, endpoint, options)
                .await
                .map(|caps| super::for_batch(caps, &self.policy));
        }
        known.clone()
    }

    /// What the cache holds, if anything.
    pub async fn known(&self) -> Option<Capabilities> {
        self.known.lock().await.clone()
    }
}
