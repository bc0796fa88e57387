//! Chunk-size constraints (granularity, minimum and maximum part size, a
//! part budget) under random uploads of up to 5 TiB and random sequences of
//! acknowledgements, breaks, 413s and server limits: every chunk but the last
//! keeps every rule, the part count never exceeds the maximum, and the sizer
//! reports an impossible combination instead of producing a size that breaks
//! a rule.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chunkup_core::{ChunkConstraints, ChunkSizer, ChunkSizing, SizingError};
use proptest::prelude::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

fn constraints() -> impl Strategy<Value = ChunkConstraints> {
    prop_oneof![
        Just(ChunkConstraints::S3_MULTIPART),
        Just(ChunkConstraints::RESUMABLE_SESSION),
        // Anything valid: a granularity, a minimum, a maximum that leaves a
        // multiple of the granularity, maybe a part budget.
        (
            1u64..=4 * MIB,
            1u64..=64 * MIB,
            1u64..=64,
            prop::option::of(1u64..=20_000)
        )
            .prop_map(|(granularity, min_part, spread, max_parts)| {
                let lo = min_part.div_ceil(granularity) * granularity;
                ChunkConstraints {
                    granularity,
                    min_part,
                    max_part: lo + granularity * (spread - 1),
                    max_parts,
                }
            }),
    ]
}

fn sizing() -> impl Strategy<Value = ChunkSizing> {
    prop_oneof![
        Just(ChunkSizing::default()),
        (1u64..=256 * MIB).prop_map(ChunkSizing::Fixed),
        (1u64..=8 * MIB, 1u64..=8 * MIB, 1u64..=1024 * MIB).prop_map(|(initial, min, max)| {
            ChunkSizing::Adaptive {
                initial,
                min,
                max,
                target_duration: Duration::from_secs(4),
            }
        }),
    ]
}

fn total() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..=64 * MIB, 0u64..=5 * TIB, Just(5 * TIB)]
}

/// The rules every chunk but the last must keep, tracked by the test from
/// what it told the sizer (not from the sizer).
#[derive(Debug, Clone, Copy)]
struct Rules {
    granularity: u64,
    /// At least this (the constraints' minimum part).
    min: u64,
    /// The constraints' maximum part.
    max_part: u64,
    /// The server's announced maximum (the latest announcement counts).
    server_max: u64,
    /// Half of the smallest chunk refused with 413, to the granularity.
    refused: u64,
    max_parts: Option<u64>,
}

impl Rules {
    /// The largest chunk, the last included.
    fn max(&self) -> u64 {
        self.max_part.min(self.server_max).min(self.refused)
    }

    /// The largest chunk but the last.
    fn middle_max(&self) -> u64 {
        self.max() - self.max() % self.granularity
    }

    /// The smallest chunk but the last.
    fn middle_min(&self) -> u64 {
        self.min.div_ceil(self.granularity) * self.granularity
    }

    /// Whether `remaining` bytes can still be sent in the parts left.
    fn feasible(&self, remaining: u64, parts_done: u64) -> bool {
        if remaining == 0 {
            return true;
        }
        let parts_left = self
            .max_parts
            .map_or(u64::MAX, |max| max.saturating_sub(parts_done));
        if parts_left == 0 {
            return false;
        }
        if remaining <= self.max() {
            return true;
        }
        let middle = self.middle_min() <= self.middle_max() && self.middle_max() > 0;
        middle
            && remaining
                <= (parts_left - 1)
                    .saturating_mul(self.middle_max())
                    .saturating_add(self.max())
    }

    fn check(&self, size: u64, remaining: u64) -> Result<(), TestCaseError> {
        prop_assert!(size >= 1 && size <= remaining, "{size} of {remaining}");
        prop_assert!(
            size <= self.max(),
            "{size} above the maximum {}",
            self.max()
        );
        if size < remaining {
            prop_assert_eq!(size % self.granularity, 0, "{} not a multiple", size);
            prop_assert!(size >= self.min, "{size} below the minimum {}", self.min);
        }
        Ok(())
    }
}

/// What happens to the next chunk.
#[derive(Debug, Clone, Copy)]
enum Step {
    Ack,
    /// Broke after this share (per mille) of the chunk.
    Break(u16),
    TooLarge,
    /// The server announces a maximum of this share (per mille) of the
    /// chunk (maybe below the minimum part size: then only a last chunk can
    /// go, and the sizer must say so; maybe above it).
    ServerMax(u16),
}

/// The next step; 413s and server limits only when `squeezes`.
fn step(rng: &mut fastrand::Rng, squeezes: bool) -> Step {
    match rng.u32(0..1000) {
        0..=849 => Step::Ack,
        850..=997 => Step::Break(rng.u16(0..1000)),
        _ if !squeezes => Step::Ack,
        998 => Step::TooLarge,
        // Mostly a limit a little below or above the chunk, now and then
        // far below it.
        _ => Step::ServerMax(rng.u16(1..2000)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_chunk_keeps_the_rules_and_the_parts_fit(
        constraints in constraints(),
        sizing in sizing(),
        total in total(),
        throughput in 1e5f64..1e10,
        rtt_ms in 0u64..500,
        seed in any::<u64>(),
        squeezes in prop::bool::weighted(0.3),
    ) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut sizer = ChunkSizer::new(sizing);
        prop_assert_eq!(sizer.set_constraints(constraints), Ok(()));
        let mut rules = Rules {
            granularity: constraints.granularity,
            min: constraints.min_part,
            max_part: constraints.max_part,
            server_max: u64::MAX,
            refused: u64::MAX,
            max_parts: constraints.max_parts,
        };
        let feasible_at_start = rules.feasible(total, 0);
        // Parts protocols (a part budget) drop a broken part and send it
        // again under its number; offset protocols keep what arrived.
        let parts_protocol = constraints.max_parts.is_some();
        let rtt = Duration::from_millis(rtt_ms);
        sizer.on_round_trip(rtt);
        let (mut offset, mut parts_done) = (0u64, 0u64);
        // Only a server limit or a 413 may make the rules impossible.
        let mut squeezed = false;
        let mut steps = 0;
        while offset < total {
            steps += 1;
            if steps > 30_000 {
                // Only an upload without a part budget can be this long.
                prop_assert!(rules.max_parts.is_none());
                break;
            }
            let remaining = total - offset;
            let size = match sizer.next_part(remaining, parts_done) {
                Ok(size) => size,
                Err(error) => {
                    prop_assert!(squeezed || !feasible_at_start, "{error} with nothing squeezing the sizes");
                    prop_assert!(!rules.feasible(remaining, parts_done), "{error}, yet {rules:?} fit {remaining} bytes");
                    break;
                }
            };
            rules.check(size, remaining)?;
            if let Some(max) = rules.max_parts {
                prop_assert!(parts_done < max);
            }
            let elapsed = rtt + Duration::from_secs_f64(size as f64 / throughput);
            match step(&mut rng, squeezes) {
                Step::Ack => {
                    sizer.on_chunk_acked(size, elapsed);
                    offset += size;
                    parts_done += 1;
                }
                Step::Break(per_mille) => {
                    let sent = size * u64::from(per_mille) / 1000;
                    sizer.on_break(sent, elapsed.mul_f64(f64::from(per_mille) / 1000.0));
                    sizer.on_round_trip(rtt);
                    let kept = if parts_protocol { 0 } else { rng.u64(0..=sent) };
                    sizer.on_resynced(kept);
                    offset += kept;
                }
                Step::TooLarge => match sizer.on_too_large(size) {
                    Ok(()) => {
                        let half = size / 2 - size / 2 % rules.granularity;
                        prop_assert!(half >= rules.middle_min());
                        rules.refused = rules.refused.min(half);
                        squeezed = true;
                    }
                    Err(SizingError::NoSizeFits { min, max, .. }) => {
                        // Half of it (to the granularity) is below the floor.
                        prop_assert!(max < min && max <= size / 2, "{min} {max} {size}");
                        break;
                    }
                    Err(other) => prop_assert!(false, "{other}"),
                },
                Step::ServerMax(per_mille) => {
                    let max = (size * u64::from(per_mille) / 1000).max(1);
                    sizer.set_server_limits(None, Some(max));
                    rules.server_max = max;
                    squeezed = true;
                }
            }
        }
        if let Some(max) = rules.max_parts {
            prop_assert!(parts_done <= max, "{parts_done} parts of at most {max}");
        }
    }

    /// Without constraints a size always exists (the engine's `next_chunk`
    /// relies on it), whatever the server's limits and 413s.
    #[test]
    fn without_constraints_a_size_always_exists(
        sizing in sizing(),
        min in prop::option::of(1u64..=64 * MIB),
        max in prop::option::of(1u64..=64 * MIB),
        refused in prop::collection::vec(1u64..=256 * MIB, 0..4),
        remaining in 1u64..=5 * TIB,
    ) {
        let mut sizer = ChunkSizer::new(sizing);
        sizer.set_server_limits(min, max);
        for len in refused {
            let _ = sizer.on_too_large(len);
        }
        let size = sizer.next_part(remaining, 0);
        prop_assert!(size.is_ok(), "{size:?}");
        prop_assert_eq!(size.unwrap(), sizer.next_chunk(remaining));
    }
}

#[test]
fn a_413_below_the_minimum_part_size_is_reported() {
    let mut sizer = ChunkSizer::new(ChunkSizing::default());
    sizer
        .set_constraints(ChunkConstraints::S3_MULTIPART)
        .unwrap();
    assert_eq!(sizer.next_part(100 * MIB, 0), Ok(5 * MIB));
    // Half of 8 MiB is below 5 MiB: no part can be smaller.
    assert_eq!(
        sizer.on_too_large(8 * MIB),
        Err(SizingError::NoSizeFits {
            min: 5 * MIB,
            max: 4 * MIB,
            granularity: 1,
        })
    );
    // Nothing changed.
    assert_eq!(sizer.next_part(100 * MIB, 0), Ok(5 * MIB));
}

#[test]
fn a_server_maximum_below_the_granularity_is_reported() {
    let mut sizer = ChunkSizer::new(ChunkSizing::default());
    sizer.set_server_limits(None, Some(100 * KIB));
    assert!(matches!(
        sizer.set_constraints(ChunkConstraints::RESUMABLE_SESSION),
        Err(SizingError::NoSizeFits { .. })
    ));
    // A last chunk under the maximum can still go; a bigger rest cannot.
    assert_eq!(sizer.next_part(50 * KIB, 0), Ok(50 * KIB));
    assert!(matches!(
        sizer.next_part(MIB, 0),
        Err(SizingError::NoSizeFits { .. })
    ));
}

#[test]
fn a_5_tib_file_fits_in_10000_s3_parts_from_the_first_part_on() {
    let mut sizer = ChunkSizer::new(ChunkSizing::default());
    sizer
        .set_constraints(ChunkConstraints::S3_MULTIPART)
        .unwrap();
    let total = 5 * TIB;
    let (mut offset, mut parts) = (0, 0);
    while offset < total {
        let size = sizer.next_part(total - offset, parts).unwrap();
        // At least the rest over the parts left: ceil(5 TiB / 10,000) =
        // 549,755,814 bytes for the first.
        if offset + size < total {
            assert!(size >= (total - offset).div_ceil(10_000 - parts), "{size}");
        }
        sizer.on_chunk_acked(size, Duration::from_secs(5));
        offset += size;
        parts += 1;
    }
    assert!(parts <= 10_000, "{parts}");
}
