use std::collections::VecDeque;
use std::time::Duration;

use crate::Instant;

/// How far an upload is. `acknowledged` counts only bytes the server
/// confirmed and never goes backwards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Bytes the server has acknowledged (the high-water mark).
    pub acknowledged: u64,
    /// Acknowledged bytes plus the bytes of the current request already
    /// handed to the network: smoother, for byte-level progress bars.
    pub sent: u64,
    /// Size of the upload.
    pub total: u64,
    /// Recent speed in bytes per second.
    pub bytes_per_second: f64,
    /// Estimated time to completion at the recent speed.
    pub eta: Option<Duration>,
}

/// How much history the speed is averaged over.
const SPEED_WINDOW: Duration = Duration::from_secs(5);

/// Throttles progress reports and estimates speed.
#[derive(Debug)]
pub(crate) struct ProgressTracker {
    interval: Duration,
    last_emit: Option<Instant>,
    samples: VecDeque<(Instant, u64)>,
}

impl ProgressTracker {
    pub(crate) fn new(interval: Duration) -> Self {
        ProgressTracker {
            interval,
            last_emit: None,
            samples: VecDeque::new(),
        }
    }

    /// Records where the upload stands and returns a report when one is due
    /// (`force` for milestones such as completion).
    pub(crate) fn update(
        &mut self,
        now: Instant,
        acknowledged: u64,
        sent: u64,
        total: u64,
        force: bool,
    ) -> Option<Progress> {
        if self.samples.back().is_none_or(|&(_, s)| s != sent) {
            self.samples.push_back((now, sent));
        }
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|&(t, _)| now.saturating_since(t) > SPEED_WINDOW)
        {
            self.samples.pop_front();
        }
        let due = self
            .last_emit
            .is_none_or(|last| now.saturating_since(last) >= self.interval);
        if !(due || force) {
            return None;
        }
        self.last_emit = Some(now);
        let bytes_per_second = self.speed();
        let remaining = total.saturating_sub(acknowledged);
        let eta = if remaining == 0 {
            Some(Duration::ZERO)
        } else if bytes_per_second > 0.0 {
            Some(Duration::from_secs_f64(remaining as f64 / bytes_per_second))
        } else {
            None
        };
        Some(Progress {
            acknowledged,
            sent: sent.max(acknowledged).min(total),
            total,
            bytes_per_second,
            eta,
        })
    }

    fn speed(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 && b1 >= b0 => {
                (b1 - b0) as f64 / t1.saturating_since(t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_elapsed(Duration::from_millis(ms))
    }

    #[test]
    fn throttles_and_measures_speed() {
        let mut tracker = ProgressTracker::new(Duration::from_millis(100));
        assert!(tracker.update(at(0), 0, 0, 1000, false).is_some());
        assert!(tracker.update(at(50), 100, 100, 1000, false).is_none());
        let report = tracker.update(at(1000), 500, 500, 1000, false);
        let report = report.expect("due after the interval");
        assert!((report.bytes_per_second - 500.0).abs() < 1e-6);
        assert_eq!(report.eta, Some(Duration::from_secs(1)));
        assert!(tracker.update(at(1001), 600, 600, 1000, true).is_some());
    }
}
