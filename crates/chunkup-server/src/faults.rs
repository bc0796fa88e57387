//! Fault injection: the [`FaultSpec`] a server runs with, its text syntax, and
//! the seeded decision engine that turns it into faults for chunk requests.
//!
//! Syntax: a comma-separated `key=value` list, or `none` / the empty string
//! for no faults. See [`FaultSpec`] for the keys.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// What the server should do wrong, and how often.
///
/// Parsed from (and displayed as) a comma-separated `key=value` list:
///
/// | key | value | meaning |
/// | --- | --- | --- |
/// | `seed` | u64, default 0 | seed of the fault RNG |
/// | `reset` | probability | persist a random prefix of the chunk body, then reset the TCP connection |
/// | `error` | probability | drain the body, answer 500, 502 or 504, store nothing |
/// | `busy` | probability | drain the body, answer 503 with `Retry-After` |
/// | `retry-after` | seconds (u64), default 1 | the `Retry-After` of `busy` |
/// | `burst` | count >= 1, default 1 | each busy fault also hits the next `burst - 1` chunk requests |
/// | `stall` | probability | persist a random prefix, stop reading for `stall-secs`, then reset |
/// | `stall-secs` | seconds (may be fractional), default 30 | how long a stall lasts |
/// | `status-error` | probability | a `GET` status poll answers 503 (no `Retry-After`) |
/// | `script` | `i:kind[@n];...` | deterministic faults by chunk-request index |
///
/// Script entries are `INDEX:KIND` separated by `;`, with `KIND` one of
/// `reset`, `reset@N` (after N body bytes), `stall`, `stall@N`, `busy`,
/// `error`, `error@STATUS` (a 5xx status). Example:
/// `seed=7,reset=0.1,busy=0.05,retry-after=2,script=0:reset@1000;3:busy`.
///
/// `Display` writes the canonical form (`none` when nothing is set), which
/// parses back to an equal value.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Seed of the fault RNG.
    pub seed: u64,
    /// Probability that a chunk request is reset mid-body.
    pub reset: f64,
    /// Probability that a chunk request is answered 500/502/504.
    pub error: f64,
    /// Probability that a chunk request is answered 503 + `Retry-After`.
    pub busy: f64,
    /// `Retry-After` value of busy replies, in seconds.
    pub retry_after: u64,
    /// Length of a busy burst (1 = a single 503).
    pub burst: u64,
    /// Probability that a chunk request stalls (then resets).
    pub stall: f64,
    /// How long a stall lasts before the connection is reset.
    pub stall_secs: f64,
    /// Probability that a `GET` status poll answers 503.
    pub status_error: f64,
    /// Deterministic faults by chunk-request index; they win over random ones.
    pub script: Vec<ScriptedFault>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            seed: 0,
            reset: 0.0,
            error: 0.0,
            busy: 0.0,
            retry_after: 1,
            burst: 1,
            stall: 0.0,
            stall_secs: 30.0,
            status_error: 0.0,
            script: Vec::new(),
        }
    }
}

impl FaultSpec {
    /// No faults at all (same as `Default`).
    pub fn none() -> Self {
        Self::default()
    }

    /// True when this spec can never inject a fault.
    pub fn is_none(&self) -> bool {
        self.reset == 0.0
            && self.error == 0.0
            && self.busy == 0.0
            && self.stall == 0.0
            && self.status_error == 0.0
            && self.script.is_empty()
    }
}

/// One entry of a fault script: at chunk request `index` (0-based, counted
/// per server instance since the faults were last set), inject `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptedFault {
    /// 0-based index of the chunk request.
    pub index: u64,
    /// The fault to inject.
    pub kind: FaultKind,
}

/// A fault that can be scripted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Reset the connection after `after` body bytes (random when `None`).
    Reset {
        /// Body bytes read and persisted before the reset.
        after: Option<u64>,
    },
    /// Stall after `after` body bytes (random when `None`), then reset.
    Stall {
        /// Body bytes read and persisted before the stall.
        after: Option<u64>,
    },
    /// Answer with a 5xx `status` (random among 500/502/504 when `None`).
    Error {
        /// The status code to answer with.
        status: Option<u16>,
    },
    /// Answer 503 with `Retry-After`.
    Busy,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Reset { after: None } => f.write_str("reset"),
            FaultKind::Reset { after: Some(n) } => write!(f, "reset@{n}"),
            FaultKind::Stall { after: None } => f.write_str("stall"),
            FaultKind::Stall { after: Some(n) } => write!(f, "stall@{n}"),
            FaultKind::Error { status: None } => f.write_str("error"),
            FaultKind::Error { status: Some(s) } => write!(f, "error@{s}"),
            FaultKind::Busy => f.write_str("busy"),
        }
    }
}

/// Why a fault spec did not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultSpecError {
    /// An item had no `=`.
    #[error("invalid fault spec item `{0}`: expected key=value")]
    MissingValue(String),
    /// A key is not one of the known keys.
    #[error(
        "unknown fault spec key `{0}` (known: seed, reset, error, busy, retry-after, burst, stall, stall-secs, status-error, script)"
    )]
    UnknownKey(String),
    /// A key appeared twice.
    #[error("fault spec key `{0}` given more than once")]
    DuplicateKey(String),
    /// A value did not parse or is out of range.
    #[error("invalid value `{value}` for fault spec key `{key}`: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The offending value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A script entry did not parse.
    #[error(
        "invalid fault script entry `{entry}`: {reason} (expected INDEX:KIND with KIND reset, reset@N, stall, stall@N, busy, error or error@STATUS)"
    )]
    BadScript {
        /// The offending entry.
        entry: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// The random fault probabilities add up to more than 1.
    #[error("fault probabilities reset+error+busy+stall add up to {0}, more than 1")]
    ProbabilitySum(f64),
}

fn invalid(key: &str, value: &str, reason: &'static str) -> FaultSpecError {
    FaultSpecError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

fn parse_probability(key: &str, value: &str) -> Result<f64, FaultSpecError> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(invalid(
            key,
            value,
            "expected a probability between 0 and 1",
        )),
    }
}

fn parse_u64(key: &str, value: &str) -> Result<u64, FaultSpecError> {
    value
        .parse::<u64>()
        .map_err(|_| invalid(key, value, "expected a non-negative integer"))
}

fn parse_script(value: &str) -> Result<Vec<ScriptedFault>, FaultSpecError> {
    let mut script = Vec::new();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |reason| FaultSpecError::BadScript {
            entry: entry.to_owned(),
            reason,
        };
        let (index, kind) = entry.split_once(':').ok_or_else(|| bad("missing `:`"))?;
        let index: u64 = index
            .trim()
            .parse()
            .map_err(|_| bad("the index is not a non-negative integer"))?;
        let (name, arg) = match kind.trim().split_once('@') {
            Some((name, arg)) => (name, Some(arg)),
            None => (kind.trim(), None),
        };
        let arg_u64 = |arg: &str| {
            arg.parse::<u64>()
                .map_err(|_| bad("the value after `@` is not a non-negative integer"))
        };
        let kind = match (name, arg) {
            ("reset", None) => FaultKind::Reset { after: None },
            ("reset", Some(a)) => FaultKind::Reset {
                after: Some(arg_u64(a)?),
            },
            ("stall", None) => FaultKind::Stall { after: None },
            ("stall", Some(a)) => FaultKind::Stall {
                after: Some(arg_u64(a)?),
            },
            ("busy", None) => FaultKind::Busy,
            ("busy", Some(_)) => return Err(bad("`busy` takes no `@` value")),
            ("error", None) => FaultKind::Error { status: None },
            ("error", Some(a)) => match a.parse::<u16>() {
                Ok(s) if (500..=599).contains(&s) => FaultKind::Error { status: Some(s) },
                _ => return Err(bad("the status after `error@` must be 500..=599")),
            },
            _ => return Err(bad("unknown fault kind")),
        };
        if script.iter().any(|s: &ScriptedFault| s.index == index) {
            return Err(bad("this index is scripted twice"));
        }
        script.push(ScriptedFault { index, kind });
    }
    script.sort_by_key(|s| s.index);
    Ok(script)
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut spec = FaultSpec::default();
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(spec);
        }
        let mut seen: Vec<String> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| FaultSpecError::MissingValue(item.to_owned()))?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "seed" => spec.seed = parse_u64(key, value)?,
                "reset" => spec.reset = parse_probability(key, value)?,
                "error" => spec.error = parse_probability(key, value)?,
                "busy" => spec.busy = parse_probability(key, value)?,
                "stall" => spec.stall = parse_probability(key, value)?,
                "status-error" => spec.status_error = parse_probability(key, value)?,
                "retry-after" => spec.retry_after = parse_u64(key, value)?,
                "burst" => {
                    spec.burst = parse_u64(key, value)?;
                    if spec.burst == 0 {
                        return Err(invalid(key, value, "a burst is at least 1"));
                    }
                }
                "stall-secs" => {
                    spec.stall_secs = match value.parse::<f64>() {
                        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => v,
                        _ => {
                            return Err(invalid(
                                key,
                                value,
                                "expected seconds between 0 and 86400",
                            ));
                        }
                    }
                }
                "script" => spec.script = parse_script(value)?,
                _ => return Err(FaultSpecError::UnknownKey(key.to_owned())),
            }
            if seen.iter().any(|k| k == key) {
                return Err(FaultSpecError::DuplicateKey(key.to_owned()));
            }
            seen.push(key.to_owned());
        }
        let sum = spec.reset + spec.error + spec.busy + spec.stall;
        if sum > 1.0 + 1e-9 {
            return Err(FaultSpecError::ProbabilitySum(sum));
        }
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = FaultSpec::default();
        let mut items: Vec<String> = Vec::new();
        if self.seed != d.seed {
            items.push(format!("seed={}", self.seed));
        }
        for (key, p) in [
            ("reset", self.reset),
            ("error", self.error),
            ("busy", self.busy),
        ] {
            if p != 0.0 {
                items.push(format!("{key}={p}"));
            }
        }
        if self.retry_after != d.retry_after {
            items.push(format!("retry-after={}", self.retry_after));
        }
        if self.burst != d.burst {
            items.push(format!("burst={}", self.burst));
        }
        if self.stall != 0.0 {
            items.push(format!("stall={}", self.stall));
        }
        if self.stall_secs != d.stall_secs {
            items.push(format!("stall-secs={}", self.stall_secs));
        }
        if self.status_error != 0.0 {
            items.push(format!("status-error={}", self.status_error));
        }
        if !self.script.is_empty() {
            let entries: Vec<String> = self
                .script
                .iter()
                .map(|s| format!("{}:{}", s.index, s.kind))
                .collect();
            items.push(format!("script={}", entries.join(";")));
        }
        if items.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&items.join(","))
        }
    }
}

/// How many faults of each kind a server injected since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Connections reset mid-body (`reset`).
    pub resets: u64,
    /// 5xx answers: `error` on chunks and `status-error` on status polls.
    pub errors: u64,
    /// 503 + `Retry-After` answers (`busy`, each reply of a burst counts).
    pub busy: u64,
    /// Stalls (each also ends in a reset, counted here only).
    pub stalls: u64,
}

/// A fault decided for one chunk request, with every random choice made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkFault {
    /// Persist `after` body bytes, then reset.
    Reset { after: u64 },
    /// Persist `after` body bytes, stall for `secs`, then reset.
    Stall { after: u64, secs: Duration },
    /// Drain the body and answer `status`.
    Error { status: u16 },
    /// Drain the body and answer 503 with `Retry-After: retry_after`.
    Busy { retry_after: u64 },
}

#[derive(Debug)]
struct InjectorState {
    spec: FaultSpec,
    rng: fastrand::Rng,
    next_index: u64,
    busy_left: u64,
    counts: FaultCounts,
}

/// The per-server fault engine: one seeded RNG behind a mutex.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    state: Mutex<InjectorState>,
}

impl FaultInjector {
    pub(crate) fn new(spec: FaultSpec) -> Self {
        FaultInjector {
            state: Mutex::new(InjectorState {
                rng: fastrand::Rng::with_seed(spec.seed),
                spec,
                next_index: 0,
                busy_left: 0,
                counts: FaultCounts::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InjectorState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the spec: reseeds the RNG and restarts the chunk-request
    /// counter the script refers to. Counts are kept.
    pub(crate) fn set(&self, spec: FaultSpec) {
        let mut st = self.lock();
        st.rng = fastrand::Rng::with_seed(spec.seed);
        st.spec = spec;
        st.next_index = 0;
        st.busy_left = 0;
    }

    pub(crate) fn spec(&self) -> FaultSpec {
        self.lock().spec.clone()
    }

    pub(crate) fn counts(&self) -> FaultCounts {
        self.lock().counts
    }

    /// Decides the fault (if any) for the next chunk request, whose body is
    /// `len` bytes long (`len >= 1`).
    pub(crate) fn decide_chunk(&self, len: u64) -> Option<ChunkFault> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let index = st.next_index;
        st.next_index += 1;
        if st.spec.is_none() {
            return None;
        }
        // Always draw, so scripted entries do not shift the random sequence.
        let u = st.rng.f64();
        let len = len.max(1);
        let scripted = st
            .spec
            .script
            .iter()
            .find(|s| s.index == index)
            .map(|s| s.kind);
        let kind = if let Some(kind) = scripted {
            Some(kind)
        } else if st.busy_left > 0 {
            st.busy_left -= 1;
            return Some(Self::busy(st, index, true));
        } else {
            let s = &st.spec;
            let edges = [
                (s.reset, FaultKind::Reset { after: None }),
                (s.error, FaultKind::Error { status: None }),
                (s.busy, FaultKind::Busy),
                (s.stall, FaultKind::Stall { after: None }),
            ];
            let mut edge = 0.0;
            edges.into_iter().find_map(|(p, kind)| {
                edge += p;
                (p > 0.0 && u < edge).then_some(kind)
            })
        };
        let fault = match kind? {
            FaultKind::Reset { after } => {
                let after = after.unwrap_or_else(|| st.rng.u64(0..len));
                st.counts.resets += 1;
                ChunkFault::Reset { after }
            }
            FaultKind::Stall { after } => {
                let after = after.unwrap_or_else(|| st.rng.u64(0..len));
                st.counts.stalls += 1;
                ChunkFault::Stall {
                    after,
                    secs: Duration::from_secs_f64(st.spec.stall_secs),
                }
            }
            FaultKind::Error { status } => {
                let status = status.unwrap_or_else(|| [500, 502, 504][st.rng.usize(0..3)]);
                st.counts.errors += 1;
                ChunkFault::Error { status }
            }
            FaultKind::Busy => {
                st.busy_left = st.spec.burst.saturating_sub(1);
                return Some(Self::busy(st, index, false));
            }
        };
        tracing::info!(index, ?fault, "injecting fault on chunk request");
        Some(fault)
    }

    fn busy(st: &mut InjectorState, index: u64, in_burst: bool) -> ChunkFault {
        st.counts.busy += 1;
        let fault = ChunkFault::Busy {
            retry_after: st.spec.retry_after,
        };
        tracing::info!(index, in_burst, ?fault, "injecting fault on chunk request");
        fault
    }

    /// Decides whether the next status poll fails with 503.
    pub(crate) fn decide_status(&self) -> bool {
        let mut st = self.lock();
        if st.spec.status_error <= 0.0 {
            return false;
        }
        let hit = st.rng.f64() < st.spec.status_error;
        if hit {
            st.counts.errors += 1;
            tracing::info!("injecting fault on status poll: 503");
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_decisions_repeat() {
        let spec: FaultSpec = "seed=3,reset=0.2,error=0.2,busy=0.2,stall=0.1"
            .parse()
            .expect("valid");
        let a = FaultInjector::new(spec.clone());
        let b = FaultInjector::new(spec);
        let da: Vec<_> = (0..200).map(|_| a.decide_chunk(1000)).collect();
        let db: Vec<_> = (0..200).map(|_| b.decide_chunk(1000)).collect();
        assert_eq!(da, db);
        assert!(da.iter().any(Option::is_none));
        assert!(
            da.iter()
                .any(|f| matches!(f, Some(ChunkFault::Reset { after }) if *after < 1000))
        );
        let c = a.counts();
        assert_eq!(
            c.resets + c.errors + c.busy + c.stalls,
            da.iter().filter(|f| f.is_some()).count() as u64
        );
    }

    #[test]
    fn script_and_burst() {
        let inj = FaultInjector::new(
            "burst=3,retry-after=4,script=1:busy;5:reset@7;6:error@502"
                .parse()
                .expect("valid"),
        );
        let got: Vec<_> = (0..8).map(|_| inj.decide_chunk(100)).collect();
        let busy = Some(ChunkFault::Busy { retry_after: 4 });
        assert_eq!(
            got,
            vec![
                None,
                busy,
                busy,
                busy,
                None,
                Some(ChunkFault::Reset { after: 7 }),
                Some(ChunkFault::Error { status: 502 }),
                None
            ]
        );
        assert_eq!(inj.counts().busy, 3);
        inj.set("script=0:error".parse().expect("valid"));
        assert!(matches!(
            inj.decide_chunk(1),
            Some(ChunkFault::Error {
                status: 500 | 502 | 504
            })
        ));
        assert_eq!(inj.decide_chunk(1), None);
        assert_eq!(inj.counts().errors, 2);
    }
}
