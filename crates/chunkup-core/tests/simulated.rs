//! Thousands of random fault sequences against a simulated ranged server:
//! every upload completes with exactly the source's bytes, progress never
//! goes backwards, and simulated time stays bounded.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use chunkup_core::{
    ChunkSizing, Event, RequestKind, RequestSpec, Response, RetryPolicy, UploadConfig,
};
use proptest::prelude::*;
use support::{Harness, created, ok_lkb, range_of};

fn source_byte(i: u64) -> u8 {
    (i.wrapping_mul(7).wrapping_add(13) % 251) as u8
}

/// What the simulated server does to one chunk request.
#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    /// Break after this share (per mille) of the body arrived; keep those bytes.
    Reset(u16),
    /// Take a share of the body, then hang.
    Stall(u16),
    ServerError(u16),
    Busy(u64),
    /// A failover lost (a share of) the newest, still-buffered bytes; the
    /// chunk meets the hole.
    Failover(u16),
    /// Answers 416 without saying what it has.
    BareRangeError,
    /// The status poll fails.
    StatusError,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        10 => Just(Fault::None),
        2 => (0u16..1000).prop_map(Fault::Reset),
        1 => (0u16..1000).prop_map(Fault::Stall),
        1 => prop::sample::select(vec![500u16, 502, 504, 408]).prop_map(Fault::ServerError),
        1 => (0u64..5).prop_map(Fault::Busy),
        1 => (0u16..1000).prop_map(Fault::Failover),
        1 => Just(Fault::BareRangeError),
        1 => Just(Fault::StatusError),
    ]
}

/// How many of the newest bytes a failover can lose (the write-behind buffer).
const FAILOVER_BUFFER: usize = 16 * 1024;

struct SimServer {
    total: u64,
    stored: Vec<u8>,
}

impl SimServer {
    fn write(&mut self, start: u64, len: u64) {
        assert!(start <= self.stored.len() as u64, "a chunk skipped bytes");
        for i in start..start + len {
            let byte = source_byte(i);
            match self.stored.get(i as usize) {
                Some(old) => assert_eq!(*old, byte, "overlapping resend differs"),
                None => self.stored.push(byte),
            }
        }
    }

    fn lkb(&self) -> Response {
        ok_lkb(self.stored.len() as i64 - 1)
    }

    /// Plays one request; `None` when the connection broke or hung.
    fn handle(&mut self, h: &mut Harness, request: &RequestSpec, fault: Fault) {
        match request.kind {
            RequestKind::Create => h.respond(request, created("/ranged/sim")),
            RequestKind::Status => match fault {
                Fault::StatusError => h.respond(request, Response::status(503)),
                _ => {
                    let response = self.lkb();
                    h.respond(request, response)
                }
            },
            RequestKind::Chunk => self.chunk(h, request, fault),
            RequestKind::Terminate | RequestKind::Discover => unreachable!(),
        }
    }

    fn chunk(&mut self, h: &mut Harness, request: &RequestSpec, fault: Fault) {
        let (s, e, total) = range_of(request);
        let body = request.body.unwrap();
        assert_eq!((body.start, body.end - 1, total), (s, e, self.total));
        let len = e - s + 1;
        if s > self.stored.len() as u64 {
            let response = Response::status(416).with_header(
                "X-Last-Known-Byte",
                (self.stored.len() as i64 - 1).to_string(),
            );
            return h.respond(request, response);
        }
        let share = |per_mille: u16| len * u64::from(per_mille) / 1000;
        match fault {
            Fault::None | Fault::StatusError => {
                self.write(s, len);
                let response = self.lkb();
                h.respond(request, response);
            }
            Fault::Reset(p) => {
                self.write(s, share(p));
                h.break_connection(request);
            }
            Fault::Stall(p) => {
                self.write(s, share(p));
                // No answer: the engine's stall timer must fire.
            }
            Fault::ServerError(status) => h.respond(request, Response::status(status)),
            Fault::Busy(secs) => h.respond(
                request,
                Response::status(503).with_header("Retry-After", secs.to_string()),
            ),
            Fault::Failover(p) => {
                // A server buffers about a chunk or two before it syncs.
                let buffered = self.stored.len().min(FAILOVER_BUFFER).min(2 * len as usize);
                let keep = self.stored.len() - buffered * usize::from(p) / 1000;
                self.stored.truncate(keep);
                let response = Response::status(416)
                    .with_header("X-Last-Known-Byte", (keep as i64 - 1).to_string());
                h.respond(request, response);
            }
            Fault::BareRangeError => h.respond(request, Response::status(416)),
        }
    }
}

fn run(total: u64, sizing: ChunkSizing, faults: &[Fault], seed: u64, budget: u32) -> Harness {
    let mut h = Harness::new(
        UploadConfig::create("http://127.0.0.1:9/ranged", total).with_settings(|s| {
            s.chunking = sizing;
            s.retry = RetryPolicy {
                max_attempts: budget,
                stall_timeout: Duration::from_secs(20),
                ..RetryPolicy::default()
            };
            s.seed = seed;
        }),
    );
    let mut server = SimServer {
        total,
        stored: Vec::new(),
    };
    let mut faults = faults.iter().copied().cycle();
    let mut requests = 0;
    while let Some(request) = h.next_request() {
        requests += 1;
        assert!(requests < 20_000, "runaway upload");
        let fault = faults.next().unwrap_or(Fault::None);
        server.handle(&mut h, &request, fault);
    }
    if !h.completed() {
        // The only acceptable way to stop short: a spent retry budget.
        assert!(
            matches!(
                h.failure(),
                Some(chunkup_core::Error::RetriesExhausted { .. })
            ),
            "{:?}",
            h.failure()
        );
        return h;
    }
    assert_eq!(server.stored.len() as u64, total);
    assert!(
        server
            .stored
            .iter()
            .enumerate()
            .all(|(i, b)| *b == source_byte(i as u64)),
        "stored bytes differ from the source"
    );
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn every_fault_sequence_ends_complete_and_exact_or_out_of_budget(
        total in 1u64..120_000,
        chunk in prop_oneof![Just(None), (512u64..40_000).prop_map(Some)],
        // Mostly clean with faults sprinkled in: a sequence of 40 cycles.
        mut faults in prop::collection::vec(fault(), 40),
        seed in any::<u64>(),
    ) {
        // Make sure progress is possible: at least one clean slot per cycle
        // stretch, as any real server eventually lets a chunk through.
        faults[0] = Fault::None;
        faults[20] = Fault::None;
        let sizing = match chunk {
            Some(size) => ChunkSizing::Fixed(size),
            None => ChunkSizing::Adaptive {
                initial: 16 * 1024,
                min: 2048,
                max: 1 << 20,
                target_duration: Duration::from_secs(2),
            },
        };
        // With a practically endless budget every sequence completes.
        let h = run(total, sizing.clone(), &faults, seed, 100_000);
        prop_assert!(h.completed());
        let progress = h.progress_values();
        prop_assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress went back: {:?}", progress);
        prop_assert_eq!(progress.last().copied(), Some(total));
        let ends = h.events.iter().filter(|e| matches!(e, Event::Completed { .. })).count();
        prop_assert_eq!(ends, 1);
        prop_assert!(h.now.elapsed_since_origin() < Duration::from_secs(24 * 3600));
        // With the default-sized budget: complete, or a typed give-up.
        run(total, sizing, &faults, seed, 12);
    }
}
