//! What a protocol requires of chunk sizes, and the size nearest a wish that
//! obeys it.
//!
//! Offset-based protocols (tus, IETF, ranged) take any size the server's
//! limits allow. Object-storage protocols do not: a Google-style resumable
//! session takes chunks in multiples of 256 KiB, and an S3 multipart upload
//! takes parts of 5 MiB to 5 GiB, at most 10,000 of them — so for a file of
//! 5 TiB every part must be at least ~524 MiB, whatever the link would like.
//! Every rule here spares the last chunk, which is whatever is left.

use std::fmt;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// What a protocol requires of every chunk (part) but the last.
///
/// Constraints are rules, not preferences: they override the sizer's own
/// range (`ChunkSizing::Adaptive { min, max, .. }`) and a `Fixed` size. Set
/// them with `ChunkSizer::set_constraints`, then ask
/// `ChunkSizer::next_part` for each part; an error from either means the
/// upload cannot go on (the engine fails it with that reason).
///
/// ```
/// use chunkup_core::{ChunkConstraints, ChunkSizer, ChunkSizing, SizingError};
///
/// let mut sizer = ChunkSizer::new(ChunkSizing::default());
/// sizer.set_constraints(ChunkConstraints::S3_MULTIPART)?;
/// // 5 TiB: every part at least ceil(5 TiB / 10,000) bytes.
/// let total = 5u64 << 40;
/// let first = sizer.next_part(total, 0)?;
/// assert_eq!(first, total.div_ceil(10_000));
/// // A small file: 5 MiB parts (the adaptive 1 MiB start is raised), the
/// // last part whatever is left.
/// assert_eq!(sizer.next_part(12 << 20, 0)?, 5 << 20);
/// assert_eq!(sizer.next_part(2 << 20, 2)?, 2 << 20);
/// // A 413 for an 8 MiB part: half of it is below 5 MiB, so no part fits.
/// assert!(matches!(
///     sizer.on_too_large(8 << 20),
///     Err(SizingError::NoSizeFits { .. })
/// ));
/// # Ok::<(), SizingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConstraints {
    /// Every chunk but the last is a multiple of this many bytes (1: any).
    pub granularity: u64,
    /// Every chunk but the last is at least this large.
    pub min_part: u64,
    /// No chunk, the last included, is larger than this.
    pub max_part: u64,
    /// The whole upload is at most this many chunks (`None`: no limit).
    pub max_parts: Option<u64>,
}

impl ChunkConstraints {
    /// No rule: any size from 1 byte.
    pub const NONE: ChunkConstraints = ChunkConstraints {
        granularity: 1,
        min_part: 1,
        max_part: u64::MAX,
        max_parts: None,
    };

    /// An S3 multipart upload: parts of 5 MiB to 5 GiB (the last may be
    /// smaller), at most 10,000 parts.
    pub const S3_MULTIPART: ChunkConstraints = ChunkConstraints {
        granularity: 1,
        min_part: 5 * MIB,
        max_part: 5 * GIB,
        max_parts: Some(10_000),
    };

    /// A Google-style resumable session: every chunk but the last a multiple
    /// of 256 KiB.
    pub const RESUMABLE_SESSION: ChunkConstraints = ChunkConstraints {
        granularity: 256 * KIB,
        min_part: 256 * KIB,
        max_part: u64::MAX,
        max_parts: None,
    };

    /// Checks the constraints can be met at all (whatever the file size).
    pub fn validate(&self) -> Result<(), SizingError> {
        let problem = if self.granularity == 0 {
            "the granularity is 0"
        } else if self.min_part == 0 {
            "the minimum part size is 0"
        } else if self.max_parts == Some(0) {
            "the maximum number of parts is 0"
        } else if round_up(self.min_part, self.granularity)
            > round_down(self.max_part, self.granularity)
        {
            "no multiple of the granularity lies between the minimum and maximum part size"
        } else {
            return Ok(());
        };
        Err(SizingError::InvalidConstraints(problem))
    }
}

impl Default for ChunkConstraints {
    fn default() -> Self {
        ChunkConstraints::NONE
    }
}

/// Why no chunk size can obey the rules. The engine fails the upload with
/// it: sending a chunk the server must refuse only wastes the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizingError {
    /// The constraints contradict themselves.
    #[error("invalid chunk constraints: {0}")]
    InvalidConstraints(&'static str),
    /// Chunks must be at least `min` bytes (in multiples of `granularity`),
    /// but the server accepts at most `max` (its announced limit, or what a
    /// 413 left).
    #[error(
        "no chunk size fits: parts must be at least {min} bytes{}, but the server accepts at most {max}",
        granularity_note(*.granularity)
    )]
    NoSizeFits {
        /// The smallest size allowed for a chunk that is not the last.
        min: u64,
        /// The largest size the server accepts.
        max: u64,
        /// Chunks but the last are multiples of this.
        granularity: u64,
    },
    /// The bytes left cannot fit in the parts left.
    #[error(
        "{remaining} bytes left do not fit in the {parts_left} parts left of at most {max_part} bytes"
    )]
    PartsExhausted {
        /// Bytes still to send.
        remaining: u64,
        /// Parts the upload may still use.
        parts_left: u64,
        /// The largest part allowed.
        max_part: u64,
    },
}

fn granularity_note(granularity: u64) -> GranularityNote {
    GranularityNote(granularity)
}

struct GranularityNote(u64);

impl fmt::Display for GranularityNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > 1 {
            write!(f, " in multiples of {}", self.0)
        } else {
            Ok(())
        }
    }
}

/// The sizes every chunk must keep to: the constraints, the server's
/// announced limits and what 413s taught, together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// Chunks but the last are multiples of this.
    pub granularity: u64,
    /// The smallest chunk but the last (a multiple of the granularity).
    pub lo: u64,
    /// The largest chunk but the last (a multiple of the granularity; may be
    /// below `lo`, or 0, when only a last chunk can be sent).
    pub hi: u64,
    /// The largest chunk, the last included.
    pub ceiling: u64,
    /// At most this many chunks in all.
    pub max_parts: Option<u64>,
}

impl Bounds {
    /// Combines the constraints (already validated) with the server's limits:
    /// chunks of at least `floor` bytes (but the last), at most `ceiling`.
    pub fn new(constraints: &ChunkConstraints, floor: u64, ceiling: u64) -> Bounds {
        let granularity = constraints.granularity.max(1);
        let ceiling = ceiling.min(constraints.max_part).max(1);
        Bounds {
            granularity,
            lo: round_up(floor.max(constraints.min_part).max(1), granularity),
            hi: round_down(ceiling, granularity),
            ceiling,
            max_parts: constraints.max_parts,
        }
    }

    /// Whether some chunk that is not the last can be sent.
    pub fn has_middle_size(&self) -> bool {
        self.hi > 0 && self.lo <= self.hi
    }

    /// The error for "no chunk but the last can be sent".
    pub fn no_size_fits(&self) -> SizingError {
        SizingError::NoSizeFits {
            min: self.lo,
            max: self.ceiling,
            granularity: self.granularity,
        }
    }

    /// The size of the next chunk when `remaining` bytes are left and
    /// `parts_done` parts were used: `wish` (the sizer's choice) moved to the
    /// nearest size that keeps every rule, or the whole rest as the last
    /// chunk when `wish` reaches it.
    ///
    /// With a part budget every part is at least the rest divided by the
    /// parts left (rounded up to the granularity), so the bytes always fit
    /// and the required size never grows along the way.
    pub fn fit(&self, wish: u64, remaining: u64, parts_done: u64) -> Result<u64, SizingError> {
        if remaining == 0 {
            return Ok(0);
        }
        let parts_left = self.max_parts.map(|max| max.saturating_sub(parts_done));
        let exhausted = |parts_left: u64| SizingError::PartsExhausted {
            remaining,
            parts_left,
            max_part: self.ceiling,
        };
        let last_fits = remaining <= self.ceiling;
        match parts_left {
            Some(0) => return Err(exhausted(0)),
            Some(1) if last_fits => return Ok(remaining),
            Some(1) => return Err(exhausted(1)),
            _ => {}
        }
        if !self.has_middle_size() {
            return if last_fits {
                Ok(remaining)
            } else {
                Err(self.no_size_fits())
            };
        }
        let mut lo = self.lo;
        if let Some(parts_left) = parts_left {
            // What the parts after this one can hold at most.
            let after = (parts_left - 2)
                .saturating_mul(self.hi)
                .saturating_add(self.ceiling);
            if remaining > after.saturating_add(self.hi) {
                return Err(exhausted(parts_left));
            }
            let even = round_up(remaining.div_ceil(parts_left), self.granularity).min(self.hi);
            let needed = round_up(remaining.saturating_sub(after), self.granularity);
            lo = lo.max(even).max(needed);
        }
        let size = round_down(wish, self.granularity).clamp(lo, self.hi);
        if size >= remaining && last_fits {
            Ok(remaining)
        } else {
            Ok(size)
        }
    }
}

/// `value` rounded down to a multiple of `step` (≥ 1).
pub(crate) fn round_down(value: u64, step: u64) -> u64 {
    value - value % step.max(1)
}

/// `value` rounded up to a multiple of `step` (≥ 1), saturating at the
/// largest multiple below `u64::MAX`.
pub(crate) fn round_up(value: u64, step: u64) -> u64 {
    let step = step.max(1);
    match value % step {
        0 => value,
        rest => value
            .checked_add(step - rest)
            .unwrap_or_else(|| round_down(u64::MAX, step)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIB: u64 = 1024 * GIB;

    fn s3() -> Bounds {
        Bounds::new(&ChunkConstraints::S3_MULTIPART, 1, u64::MAX)
    }

    #[test]
    fn presets_are_valid_and_nonsense_is_not() {
        for preset in [
            ChunkConstraints::NONE,
            ChunkConstraints::S3_MULTIPART,
            ChunkConstraints::RESUMABLE_SESSION,
        ] {
            assert_eq!(preset.validate(), Ok(()));
        }
        let bad = [
            ChunkConstraints {
                granularity: 0,
                ..ChunkConstraints::NONE
            },
            ChunkConstraints {
                max_parts: Some(0),
                ..ChunkConstraints::NONE
            },
            ChunkConstraints {
                min_part: 10,
                max_part: 9,
                ..ChunkConstraints::NONE
            },
            // 300..=400 holds no multiple of 256.
            ChunkConstraints {
                granularity: 256,
                min_part: 300,
                max_part: 400,
                max_parts: None,
            },
        ];
        for constraints in bad {
            assert!(
                matches!(
                    constraints.validate(),
                    Err(SizingError::InvalidConstraints(_))
                ),
                "{constraints:?}"
            );
        }
    }

    #[test]
    fn granularity_rounds_down_and_spares_the_last_chunk() {
        let bounds = Bounds::new(&ChunkConstraints::RESUMABLE_SESSION, 1, u64::MAX);
        assert_eq!(bounds.fit(MIB + 1000, 10 * MIB, 0), Ok(MIB));
        // Below one granule: one granule.
        assert_eq!(bounds.fit(1000, 10 * MIB, 0), Ok(256 * KIB));
        // The wish reaches the end: the rest, whatever its size.
        assert_eq!(bounds.fit(4 * MIB, 3 * MIB + 7, 0), Ok(3 * MIB + 7));
        assert_eq!(bounds.fit(MIB, 100, 0), Ok(100));
    }

    #[test]
    fn s3_parts_are_at_least_5_mib_and_grow_with_a_5_tib_file() {
        assert_eq!(s3().fit(MIB, 100 * MIB, 0), Ok(5 * MIB));
        // 5 TiB in 10,000 parts: at least ceil(5 TiB / 10,000) each.
        let total = 5 * TIB;
        let even = total.div_ceil(10_000);
        assert_eq!(s3().fit(64 * MIB, total, 0), Ok(even));
        // Half-way through, with the parts half used, the same.
        let part = s3().fit(64 * MIB, total - 5_000 * even, 5_000);
        assert!(part.as_ref().is_ok_and(|&p| p <= even), "{part:?}");
        // A bigger wish is kept (below 5 GiB).
        assert_eq!(s3().fit(GIB, total, 0), Ok(GIB));
        assert_eq!(s3().fit(64 * GIB, total, 0), Ok(5 * GIB));
    }

    #[test]
    fn the_last_parts_must_hold_the_rest() {
        // 3 parts left of at most 5 GiB: 15 GiB fit, one byte more does not.
        let bounds = s3();
        assert_eq!(bounds.fit(5 * MIB, 15 * GIB, 9_997), Ok(5 * GIB));
        assert_eq!(
            bounds.fit(5 * MIB, 15 * GIB + 1, 9_997),
            Err(SizingError::PartsExhausted {
                remaining: 15 * GIB + 1,
                parts_left: 3,
                max_part: 5 * GIB,
            })
        );
        // The last part takes the rest, even below 5 MiB.
        assert_eq!(bounds.fit(5 * MIB, 3, 9_999), Ok(3));
        assert!(matches!(
            bounds.fit(5 * MIB, 3, 10_000),
            Err(SizingError::PartsExhausted { parts_left: 0, .. })
        ));
    }

    #[test]
    fn a_server_limit_below_the_minimum_leaves_only_a_last_chunk() {
        // The server takes at most 4 MiB, S3 wants 5 MiB parts.
        let bounds = Bounds::new(&ChunkConstraints::S3_MULTIPART, 1, 4 * MIB);
        assert_eq!(bounds.fit(MIB, 3 * MIB, 0), Ok(3 * MIB));
        assert_eq!(
            bounds.fit(MIB, 30 * MIB, 0),
            Err(SizingError::NoSizeFits {
                min: 5 * MIB,
                max: 4 * MIB,
                granularity: 1,
            })
        );
        // A maximum below the granularity.
        let bounds = Bounds::new(&ChunkConstraints::RESUMABLE_SESSION, 1, 100 * KIB);
        assert!(matches!(
            bounds.fit(MIB, MIB, 0),
            Err(SizingError::NoSizeFits { .. })
        ));
        let message = bounds.no_size_fits().to_string();
        assert!(message.contains("multiples of 262144"), "{message}");
    }

    #[test]
    fn rounding_saturates() {
        assert_eq!(round_up(u64::MAX, 256), round_down(u64::MAX, 256));
        assert_eq!(round_up(0, 256), 0);
        assert_eq!(round_up(257, 256), 512);
        assert_eq!(round_down(511, 256), 256);
    }
}
