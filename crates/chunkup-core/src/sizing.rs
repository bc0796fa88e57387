//! Chunk sizing: fixed, or adaptive from what the link shows.
//!
//! Big chunks lose much on each break and give coarse progress; small chunks
//! pay a round trip each. With a break rate of `λ` per byte and a per-request
//! cost of `c` bytes (throughput × round-trip time), the expected completion
//! time is smallest near `sqrt(2c/λ)`. The adaptive sizer estimates the three
//! quantities as it goes and aims there, clamped to a target chunk duration,
//! to `[min, max]` and to the server's limits, growing at most 2× per clean
//! chunk and halving at once on a break.

use std::time::Duration;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Weight of the newest sample in the fast throughput average.
const FAST_ALPHA: f64 = 0.5;
/// Weight of the newest sample in the slow throughput average.
const SLOW_ALPHA: f64 = 0.15;
/// Weight of the newest round-trip sample.
const RTT_ALPHA: f64 = 0.3;
/// Each new observation keeps this share of the break history, so the rate
/// follows a link that got better or worse.
const HISTORY_DECAY: f64 = 0.97;
/// Prior belief before anything broke: one break per this many bytes...
const PRIOR_BYTES_PER_BREAK: f64 = 8.0 * 1024.0 * MIB as f64;
/// ...with the weight of this many breaks.
const PRIOR_BREAKS: f64 = 0.25;
/// Round-trip time assumed before one was measured.
const DEFAULT_RTT: Duration = Duration::from_millis(50);

/// How chunk sizes are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkSizing {
    /// Every chunk has this size (the last may be smaller); a server limit or
    /// a 413 still lowers it.
    Fixed(u64),
    /// Sizes follow measured throughput, round-trip time and break rate.
    Adaptive {
        /// The first chunk's size.
        initial: u64,
        /// Never smaller than this (unless the server demands it).
        min: u64,
        /// Never larger than this.
        max: u64,
        /// Aim for chunks that take about this long at the measured
        /// throughput (bounds the loss on a break and keeps progress lively).
        target_duration: Duration,
    },
}

impl Default for ChunkSizing {
    fn default() -> Self {
        ChunkSizing::Adaptive {
            initial: MIB,
            min: 256 * KIB,
            max: 64 * MIB,
            target_duration: Duration::from_secs(4),
        }
    }
}

/// Decides the size of the next chunk from what the upload has seen.
#[derive(Debug, Clone)]
pub struct ChunkSizer {
    sizing: ChunkSizing,
    current: u64,
    fast_throughput: Option<f64>,
    slow_throughput: Option<f64>,
    rtt: Option<f64>,
    bytes_seen: f64,
    breaks_seen: f64,
    server_min: u64,
    server_max: u64,
}

impl ChunkSizer {
    /// A sizer following `sizing`.
    pub fn new(sizing: ChunkSizing) -> Self {
        let current = match &sizing {
            ChunkSizing::Fixed(size) => (*size).max(1),
            ChunkSizing::Adaptive {
                initial, min, max, ..
            } => (*initial).clamp((*min).max(1), (*max).max(1)),
        };
        ChunkSizer {
            sizing,
            current,
            fast_throughput: None,
            slow_throughput: None,
            rtt: None,
            bytes_seen: 0.0,
            breaks_seen: 0.0,
            server_min: 1,
            server_max: u64::MAX,
        }
    }

    /// The size of the next chunk when `remaining` bytes are left.
    pub fn next_chunk(&self, remaining: u64) -> u64 {
        self.current
            .clamp(self.server_min, self.server_max)
            .min(remaining)
    }

    /// The current target size, before clamping to what remains.
    pub fn current(&self) -> u64 {
        self.current
    }

    /// Throughput estimate in bytes per second (the lower of a fast and a
    /// slow moving average, as adaptive-bitrate players do).
    pub fn throughput(&self) -> Option<f64> {
        match (self.fast_throughput, self.slow_throughput) {
            (Some(fast), Some(slow)) => Some(fast.min(slow)),
            _ => None,
        }
    }

    /// Estimated breaks per byte sent.
    pub fn break_rate(&self) -> f64 {
        (self.breaks_seen + PRIOR_BREAKS) / (self.bytes_seen + PRIOR_BREAKS * PRIOR_BYTES_PER_BREAK)
    }

    /// Limits the server announced (tus max size, IETF `Upload-Limit`, ...).
    pub fn set_server_limits(&mut self, min: Option<u64>, max: Option<u64>) {
        self.server_min = min.unwrap_or(1).max(1);
        self.server_max = max.unwrap_or(u64::MAX).max(self.server_min);
    }

    /// A request without a body took `elapsed`: a round-trip sample.
    pub fn on_round_trip(&mut self, elapsed: Duration) {
        let sample = elapsed.as_secs_f64();
        self.rtt = Some(match self.rtt {
            Some(rtt) => rtt + RTT_ALPHA * (sample - rtt),
            None => sample,
        });
    }

    /// A chunk of `len` bytes was sent and acknowledged in `elapsed`.
    pub fn on_chunk_acked(&mut self, len: u64, elapsed: Duration) {
        self.remember(len as f64, 0.0);
        // Throughput of this chunk, with the round trip taken out when known,
        // so small chunks on a long link are not mistaken for a slow link.
        let rtt = self.rtt.unwrap_or(0.0);
        let transfer = (elapsed.as_secs_f64() - rtt).max(elapsed.as_secs_f64() / 2.0);
        if transfer > 0.0 && len > 0 {
            let sample = len as f64 / transfer;
            self.fast_throughput = Some(ewma(self.fast_throughput, sample, FAST_ALPHA));
            self.slow_throughput = Some(ewma(self.slow_throughput, sample, SLOW_ALPHA));
        }
        if let ChunkSizing::Adaptive { .. } = self.sizing {
            let grown = self.current.saturating_mul(2);
            self.current = self.model_size().min(grown).max(self.min_size());
        }
    }

    /// The connection broke after `sent` bytes of a chunk.
    pub fn on_break(&mut self, sent: u64) {
        self.remember(sent as f64, 1.0);
        if let ChunkSizing::Adaptive { .. } = self.sizing {
            self.current = self.model_size().min(self.current / 2).max(self.min_size());
        }
    }

    /// The server refused a chunk of `len` bytes as too large (413). Returns
    /// false when no smaller chunk is allowed.
    pub fn on_too_large(&mut self, len: u64) -> bool {
        let smaller = len / 2;
        if smaller < self.min_size().max(self.server_min) || smaller == 0 {
            return false;
        }
        self.server_max = self.server_max.min(smaller);
        self.current = self.current.min(smaller);
        true
    }

    fn remember(&mut self, bytes: f64, breaks: f64) {
        self.bytes_seen = self.bytes_seen * HISTORY_DECAY + bytes;
        self.breaks_seen = self.breaks_seen * HISTORY_DECAY + breaks;
    }

    fn min_size(&self) -> u64 {
        match &self.sizing {
            ChunkSizing::Fixed(_) => 1,
            ChunkSizing::Adaptive { min, .. } => (*min).max(1),
        }
    }

    /// The size that minimises expected completion time, clamped.
    fn model_size(&self) -> u64 {
        let (min, max, target) = match &self.sizing {
            ChunkSizing::Fixed(size) => return *size,
            ChunkSizing::Adaptive {
                min,
                max,
                target_duration,
                ..
            } => (*min, *max, *target_duration),
        };
        let Some(throughput) = self.throughput() else {
            return self.current;
        };
        let rtt = self.rtt.unwrap_or(DEFAULT_RTT.as_secs_f64());
        let request_cost = throughput * rtt;
        let optimum = (2.0 * request_cost / self.break_rate()).sqrt();
        let by_duration = throughput * target.as_secs_f64();
        let size = optimum.min(by_duration);
        (size as u64).clamp(min.max(1), max.max(min).max(1))
    }
}

fn ewma(previous: Option<f64>, sample: f64, alpha: f64) -> f64 {
    match previous {
        Some(value) => value + alpha * (sample - value),
        None => sample,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive() -> ChunkSizer {
        ChunkSizer::new(ChunkSizing::default())
    }

    #[test]
    fn fixed_stays_fixed() {
        let mut sizer = ChunkSizer::new(ChunkSizing::Fixed(5 * MIB));
        sizer.on_chunk_acked(5 * MIB, Duration::from_millis(10));
        sizer.on_break(MIB);
        assert_eq!(sizer.next_chunk(u64::MAX), 5 * MIB);
        assert_eq!(sizer.next_chunk(100), 100);
    }

    #[test]
    fn grows_quickly_on_a_clean_fast_link() {
        let mut sizer = adaptive();
        sizer.on_round_trip(Duration::from_micros(300));
        for _ in 0..10 {
            let size = sizer.next_chunk(u64::MAX);
            // 1 GB/s
            sizer.on_chunk_acked(size, Duration::from_secs_f64(size as f64 / 1e9));
        }
        assert_eq!(sizer.next_chunk(u64::MAX), 64 * MIB);
    }

    #[test]
    fn growth_is_at_most_double_per_chunk() {
        let mut sizer = adaptive();
        sizer.on_round_trip(Duration::from_millis(1));
        sizer.on_chunk_acked(MIB, Duration::from_millis(1));
        assert_eq!(sizer.current(), 2 * MIB);
    }

    #[test]
    fn target_duration_bounds_a_slow_link() {
        let mut sizer = adaptive();
        sizer.on_round_trip(Duration::from_millis(80));
        // 1.25 MB/s (10 Mbit/s)
        for _ in 0..20 {
            let size = sizer.next_chunk(u64::MAX);
            let secs = 0.08 + size as f64 / 1.25e6;
            sizer.on_chunk_acked(size, Duration::from_secs_f64(secs));
        }
        let size = sizer.current() as f64;
        assert!(size <= 1.25e6 * 4.0 * 1.05, "{size}");
        assert!(size >= 1.25e6 * 2.0, "{size}");
    }

    #[test]
    fn breaks_shrink_at_once_and_frequent_breaks_keep_chunks_small() {
        let mut sizer = adaptive();
        sizer.on_round_trip(Duration::from_millis(200));
        // 625 KB/s with a break every ~1 MB.
        for round in 0..60 {
            let size = sizer.next_chunk(u64::MAX);
            if round % 2 == 0 {
                let before = sizer.current();
                sizer.on_break(size / 2);
                assert!(sizer.current() <= before.max(256 * KIB));
            } else {
                let secs = 0.2 + size as f64 / 625e3;
                sizer.on_chunk_acked(size, Duration::from_secs_f64(secs));
            }
        }
        let size = sizer.current();
        assert!(size <= 2 * MIB, "{size}");
        assert!(size >= 256 * KIB, "{size}");
    }

    #[test]
    fn server_limits_and_413_bound_the_size() {
        let mut sizer = adaptive();
        sizer.set_server_limits(None, Some(300 * KIB));
        assert_eq!(sizer.next_chunk(u64::MAX), 300 * KIB);
        let mut sizer = ChunkSizer::new(ChunkSizing::Fixed(8 * MIB));
        assert!(sizer.on_too_large(8 * MIB));
        assert_eq!(sizer.next_chunk(u64::MAX), 4 * MIB);
        let mut tiny = ChunkSizer::new(ChunkSizing::Fixed(1));
        assert!(!tiny.on_too_large(1));
    }
}
