//! `--bwlimit`: one token bucket (governor's GCRA) shared by every upload of
//! the process, applied to request bodies as they are streamed.

use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;
use chunkup::core::{RequestSpec, Response, TransportError};
use chunkup::{ReqwestTransport, Transport};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

type Body = BoxStream<'static, std::io::Result<Bytes>>;

/// The bucket: `rate` bytes per second, bursts of `burst` bytes.
#[derive(Debug)]
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
}

/// The native transport, with request bodies held to a shared byte rate.
#[derive(Debug, Clone)]
pub(crate) struct Throttled {
    inner: ReqwestTransport,
    bucket: Option<Arc<Bucket>>,
}

impl Throttled {
    /// `bytes_per_second = None`: no limit.
    pub(crate) fn new(inner: ReqwestTransport, bytes_per_second: Option<u64>) -> Self {
        let bucket = bytes_per_second.map(|rate| {
            let rate = u32::try_from(rate).unwrap_or(u32::MAX).max(1);
            // Bursts of an eighth of a second (between 4 KiB and 1 MiB) keep
            // the rate smooth without a wake-up per packet.
            let burst = (rate / 8).clamp(4096, 1 << 20).min(rate);
            let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
            Arc::new(Bucket {
                limiter: RateLimiter::direct(quota),
                burst,
            })
        });
        Throttled { inner, bucket }
    }
}

fn throttle(body: Body, bucket: Arc<Bucket>) -> Body {
    let burst = bucket.burst as usize;
    body.flat_map(move |item| {
        let pieces: Vec<std::io::Result<Bytes>> = match item {
            Ok(mut bytes) => {
                let mut pieces = Vec::with_capacity(bytes.len() / burst + 1);
                while bytes.len() > burst {
                    pieces.push(Ok(bytes.split_to(burst)));
                }
                pieces.push(Ok(bytes));
                pieces
            }
            Err(e) => vec![Err(e)],
        };
        futures_util::stream::iter(pieces)
    })
    .then(move |item| {
        let bucket = Arc::clone(&bucket);
        async move {
            if let Ok(bytes) = &item {
                let cells = u32::try_from(bytes.len()).ok().and_then(NonZeroU32::new);
                if let Some(cells) = cells {
                    // Pieces are never above the burst, so capacity suffices.
                    let _ = bucket.limiter.until_n_ready(cells).await;
                }
            }
            item
        }
    })
    .boxed()
}

impl Transport for Throttled {
    fn send(
        &self,
        spec: RequestSpec,
        body: Option<Body>,
    ) -> impl Future<Output = Result<Response, TransportError>> + Send {
        let body = match (body, &self.bucket) {
            (Some(body), Some(bucket)) => Some(throttle(body, Arc::clone(bucket))),
            (body, _) => body,
        };
        self.inner.send(spec, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_held_to_the_rate() {
        let transport =
            Throttled::new(ReqwestTransport::new().expect("transport"), Some(64 * 1024));
        let Some(bucket) = transport.bucket.clone() else {
            panic!("a bucket");
        };
        let data = Bytes::from(vec![7u8; 160 * 1024]);
        let body: Body = futures_util::stream::once(async move { Ok(data) }).boxed();
        let started = std::time::Instant::now();
        let pieces: Vec<_> = throttle(body, bucket).collect().await;
        let total: usize = pieces
            .iter()
            .map(|p| p.as_ref().map_or(0, Bytes::len))
            .sum();
        assert_eq!(total, 160 * 1024);
        // 160 KiB at 64 KiB/s with an 8 KiB burst: about 2.4 s.
        let elapsed = started.elapsed().as_secs_f64();
        assert!((2.0..4.0).contains(&elapsed), "{elapsed}");
    }
}
