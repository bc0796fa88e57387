//! Splitting one big file into parts uploaded in parallel (tus
//! concatenation): whether to, and where the cuts go.

use crate::{ByteRange, Capabilities, ResolvedProtocol};

/// Parts smaller than this are not worth a request of their own.
pub const MIN_PART: u64 = 8 * 1024 * 1024;

/// The byte ranges of the parts to upload in parallel, or `None` when the
/// file should go as one upload: the server must speak tus with the
/// concatenation extension, more than one connection must be allowed, and
/// every part must be at least [`MIN_PART`].
pub fn plan_parts(
    capabilities: &Capabilities,
    total: u64,
    parallel: usize,
) -> Option<Vec<ByteRange>> {
    let concatenation = capabilities.protocol == ResolvedProtocol::Tus
        && capabilities.has_extension("concatenation");
    let parts = (parallel as u64).min(total / MIN_PART);
    if !concatenation || parts < 2 {
        return None;
    }
    let size = total.div_ceil(parts);
    Some(
        (0..parts)
            .map(|i| ByteRange {
                start: i * size,
                end: ((i + 1) * size).min(total),
            })
            .filter(|r| !r.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(extensions: &[&str]) -> Capabilities {
        Capabilities {
            protocol: ResolvedProtocol::Tus,
            extensions: extensions.iter().map(|e| e.to_string()).collect(),
            ..Capabilities::default()
        }
    }

    #[test]
    fn splits_only_when_worth_it_and_allowed() {
        let total = 100 * 1024 * 1024 + 3;
        let parts = plan_parts(&caps(&["concatenation"]), total, 4).expect("split");
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].start, 0);
        assert_eq!(parts[3].end, total);
        assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(plan_parts(&caps(&["creation"]), total, 4), None);
        assert_eq!(plan_parts(&caps(&["concatenation"]), total, 1), None);
        assert_eq!(plan_parts(&caps(&["concatenation"]), MIN_PART, 4), None);
        let ietf = Capabilities {
            protocol: ResolvedProtocol::Ietf,
            ..caps(&["concatenation"])
        };
        assert_eq!(plan_parts(&ietf, total, 4), None);
    }
}
