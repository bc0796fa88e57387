//! A link emulator: a TCP proxy on loopback that behaves like a bad network
//! link — bandwidth limit (token bucket per direction, shared by every
//! connection or per connection), one-way delay and jitter in each direction,
//! connection resets at random upload byte offsets and stalls of the whole
//! link. Random choices come from a seed, so a run repeats.
//!
//! `tc netem` is not available on the machines this project runs on; this
//! proxy shapes traffic in user space instead.
//!
//! Resets are placed on the link's *upload* byte stream (bytes from clients
//! to the upstream, all connections together): the distance between two
//! resets is drawn from an exponential distribution with the configured
//! mean, so the points depend only on the seed and on how many bytes went
//! up, not on timing. The connection whose bytes cross a reset point
//! delivers exactly the bytes before it to the upstream, then both of its
//! sockets are reset (RST). A stall pauses every connection of the link, in
//! both directions, for the configured time. Stalls are placed either on the
//! upload byte stream too (`stall_every`) or in time (`stall_interval`: the
//! link's own clock, from its start; exponential gaps between the end of
//! one stall and the start of the next). In time, a client that re-sends
//! more bytes does not meet more stalls for it — only for taking longer.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use chunkup_server::link::{LinkConfig, LinkEmulator};
//! let config = LinkConfig::profile("slow").expect("known profile").with_seed(7);
//! let link = LinkEmulator::start(
//!     "127.0.0.1:0".parse().expect("addr"),
//!     "127.0.0.1:8080".parse().expect("addr"),
//!     config,
//! )
//! .await?;
//! println!("shaped endpoint: {}", link.url());
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// How long the upstream may take to close its side after a cut.
const CUT_DRAIN: Duration = Duration::from_secs(2);

/// Names accepted by [`LinkConfig::profile`].
pub const PROFILES: [&str; 4] = ["fast", "slow", "lossy", "hostile"];

/// How the emulated link behaves. All limits are optional; the default is a
/// plain proxy (the `fast` profile).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Client → upstream bandwidth in bytes per second.
    pub rate_up: Option<u64>,
    /// Upstream → client bandwidth in bytes per second.
    pub rate_down: Option<u64>,
    /// One token bucket per direction for all connections (a link is
    /// shared); when false every connection gets its own buckets.
    pub shared: bool,
    /// One-way delay added in each direction (round trip = 2 × delay).
    pub delay: Duration,
    /// Up to this much extra delay, uniform, per forwarded segment (segments
    /// are never reordered).
    pub jitter: Duration,
    /// Mean upload bytes between two connection resets.
    pub reset_every: Option<u64>,
    /// Mean upload bytes between two stalls.
    pub stall_every: Option<u64>,
    /// Mean wall time between the end of a stall and the start of the next
    /// (the first counts from the link's start).
    pub stall_interval: Option<Duration>,
    /// How long a stall pauses the link.
    pub stall_for: Duration,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            rate_up: None,
            rate_down: None,
            shared: true,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reset_every: None,
            stall_every: None,
            stall_interval: None,
            stall_for: Duration::from_secs(10),
            seed: 0,
        }
    }
}

/// Bytes per second of `mbit` megabits (10^6 bits) per second.
const fn mbit(mbit: u64) -> u64 {
    mbit * 1_000_000 / 8
}

impl LinkConfig {
    /// A named profile (see [`PROFILES`]):
    ///
    /// - `fast`: no limit, no delay (loopback);
    /// - `slow`: 10 Mbit/s each way, 80 ms round trip;
    /// - `lossy`: 40 Mbit/s, 40 ms, a reset every ~10 MB uploaded;
    /// - `hostile`: 5 Mbit/s, 200 ms (±20 ms jitter), a reset every ~1 MB
    ///   uploaded and a 10 s stall after every ~8 s of link time.
    pub fn profile(name: &str) -> Option<LinkConfig> {
        let base = LinkConfig::default();
        Some(match name {
            "fast" => base,
            "slow" => LinkConfig {
                rate_up: Some(mbit(10)),
                rate_down: Some(mbit(10)),
                delay: Duration::from_millis(40),
                jitter: Duration::from_millis(2),
                ..base
            },
            "lossy" => LinkConfig {
                rate_up: Some(mbit(40)),
                rate_down: Some(mbit(40)),
                delay: Duration::from_millis(20),
                jitter: Duration::from_millis(2),
                reset_every: Some(10_000_000),
                ..base
            },
            "hostile" => LinkConfig {
                rate_up: Some(mbit(5)),
                rate_down: Some(mbit(5)),
                delay: Duration::from_millis(100),
                jitter: Duration::from_millis(20),
                reset_every: Some(1_000_000),
                // In time: one client's re-sent bytes must not buy it more
                // stalls than another's (8 s ~ the 4 MB this used to be
                // placed by, at 5 Mbit/s, plus the time lost to resets).
                stall_interval: Some(Duration::from_secs(8)),
                stall_for: Duration::from_secs(10),
                ..base
            },
            _ => return None,
        })
    }

    /// The same link with another seed.
    pub fn with_seed(mut self, seed: u64) -> LinkConfig {
        self.seed = seed;
        self
    }
}

/// Something the link did, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A connection was accepted and connected upstream.
    Opened {
        /// Connection number, from 0 in accept order.
        conn: u64,
    },
    /// A connection was reset after passing `conn_offset` upload bytes;
    /// `link_offset` is the reset point on the link's upload stream.
    Reset {
        /// Connection number.
        conn: u64,
        /// Upload bytes this connection delivered before the reset.
        conn_offset: u64,
        /// Upload bytes the link had carried at the reset point.
        link_offset: u64,
    },
    /// The link paused for `millis` when its upload stream reached
    /// `link_offset` bytes (while connection `conn` was sending; `None` for
    /// a stall placed in time).
    Stall {
        /// Connection number.
        conn: Option<u64>,
        /// Upload bytes the link had carried when it stalled.
        link_offset: u64,
        /// Length of the pause in milliseconds.
        millis: u64,
    },
    /// A connection ended (gracefully or by a reset).
    Closed {
        /// Connection number.
        conn: u64,
        /// Upload bytes it delivered upstream.
        up: u64,
        /// Download bytes it delivered to the client.
        down: u64,
    },
}

/// Totals since the link started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections accepted.
    pub connections: u64,
    /// Upload bytes delivered upstream.
    pub up: u64,
    /// Download bytes delivered to clients.
    pub down: u64,
    /// Connections reset by the emulator.
    pub resets: u64,
    /// Stalls.
    pub stalls: u64,
}

/// A running link emulator. Dropping it stops it.
#[derive(Debug)]
pub struct LinkEmulator {
    addr: SocketAddr,
    link: Arc<Link>,
    task: JoinHandle<()>,
}

impl LinkEmulator {
    /// Listens on `listen` and forwards every connection to `upstream`
    /// through the emulated link. Both must be loopback addresses
    /// (`InvalidInput` otherwise): this is test tooling, never a relay.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: LinkConfig,
    ) -> io::Result<LinkEmulator> {
        for (what, addr) in [("listen", listen), ("upstream", upstream)] {
            if !addr.ip().is_loopback() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the link emulator only uses loopback; {what} address {addr} is not"),
                ));
            }
        }
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let link = Arc::new(Link::new(config));
        let task = tokio::spawn(accept_loop(listener, upstream, link.clone()));
        Ok(LinkEmulator { addr, link, task })
    }

    /// The address the link listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` of the link.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &LinkConfig {
        &self.link.config
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<LinkEvent> {
        lock(&self.link.events).clone()
    }

    /// Events from now on (a lagging receiver loses the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<LinkEvent> {
        self.link.feed.subscribe()
    }

    /// Totals so far.
    pub fn stats(&self) -> LinkStats {
        let state = lock(&self.link.state);
        LinkStats {
            connections: self.link.conns.load(Ordering::SeqCst),
            up: state.up_total,
            down: self.link.down_total.load(Ordering::SeqCst),
            resets: state.resets,
            stalls: state.stalls,
        }
    }

    /// Stops accepting and drops every connection.
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for LinkEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A token bucket that lets a sender go into debt and then sleep it off, so
/// concurrent connections share the rate in the order they asked.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: u64) -> Arc<Bucket> {
        let rate = rate.max(1) as f64;
        // About 5 ms worth of bytes: bursts stay small against the delays.
        let burst = (rate / 200.0).max(1500.0);
        Arc::new(Bucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        })
    }

    /// Waits until `n` bytes may pass.
    async fn take(&self, n: usize) {
        let wait = {
            let mut state = lock(&self.state);
            let now = Instant::now();
            let (tokens, last) = *state;
            let refilled =
                (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
            let left = refilled - n as f64;
            *state = (left, now);
            if left < 0.0 {
                Duration::from_secs_f64(-left / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[derive(Debug)]
struct LinkState {
    up_total: u64,
    next_reset: Option<u64>,
    next_stall: Option<u64>,
    /// The next stall placed in time.
    next_stall_at: Option<Instant>,
    reset_rng: fastrand::Rng,
    stall_rng: fastrand::Rng,
    stalled_until: Option<Instant>,
    resets: u64,
    stalls: u64,
}

#[derive(Debug)]
struct Link {
    config: LinkConfig,
    up_bucket: Option<Arc<Bucket>>,
    down_bucket: Option<Arc<Bucket>>,
    state: Mutex<LinkState>,
    events: Mutex<Vec<LinkEvent>>,
    feed: broadcast::Sender<LinkEvent>,
    conns: AtomicU64,
    down_total: AtomicU64,
}

/// An exponential draw with mean `mean` (at least 1 byte).
fn exponential(rng: &mut fastrand::Rng, mean: u64) -> u64 {
    let u = rng.f64();
    ((-(1.0 - u).ln()) * mean as f64).max(1.0) as u64
}

/// An exponential draw with mean `mean`.
fn exponential_time(rng: &mut fastrand::Rng, mean: Duration) -> Duration {
    mean.mul_f64(-(1.0 - rng.f64()).ln())
}

/// What the link lets through of an upload segment.
enum Pass {
    All,
    /// Only this many bytes, then the connection is reset.
    ResetAfter(usize),
}

impl Link {
    fn new(config: LinkConfig) -> Link {
        // Separate streams, so resets and stalls do not shift each other.
        let mut reset_rng = fastrand::Rng::with_seed(config.seed);
        let mut stall_rng = fastrand::Rng::with_seed(config.seed ^ 0x5354_414c_4c00_0000);
        let next_reset = config.reset_every.map(|m| exponential(&mut reset_rng, m));
        let next_stall = config.stall_every.map(|m| exponential(&mut stall_rng, m));
        let next_stall_at = config
            .stall_interval
            .map(|m| Instant::now() + exponential_time(&mut stall_rng, m));
        let (up_bucket, down_bucket) = if config.shared {
            (
                config.rate_up.map(Bucket::new),
                config.rate_down.map(Bucket::new),
            )
        } else {
            (None, None)
        };
        Link {
            up_bucket,
            down_bucket,
            state: Mutex::new(LinkState {
                up_total: 0,
                next_reset,
                next_stall,
                next_stall_at,
                reset_rng,
                stall_rng,
                stalled_until: None,
                resets: 0,
                stalls: 0,
            }),
            events: Mutex::new(Vec::new()),
            feed: broadcast::channel(4096).0,
            conns: AtomicU64::new(0),
            down_total: AtomicU64::new(0),
            config,
        }
    }

    fn record(&self, event: LinkEvent) {
        tracing::debug!(?event, "link");
        lock(&self.events).push(event.clone());
        let _ = self.feed.send(event);
    }

    /// Counts `n` upload bytes of connection `conn` (which had delivered
    /// `conn_up` before) against the reset and stall points.
    fn count_up(&self, conn: u64, conn_up: u64, n: usize) -> Pass {
        let mut events = Vec::new();
        let pass = {
            let mut st = lock(&self.state);
            let start = st.up_total;
            let mut end = start + n as u64;
            let mut pass = Pass::All;
            if let Some(at) = st.next_reset.filter(|&at| at <= end) {
                let keep = at.saturating_sub(start);
                end = start + keep;
                pass = Pass::ResetAfter(keep as usize);
                let mean = self.config.reset_every.unwrap_or(1);
                let gap = exponential(&mut st.reset_rng, mean);
                st.next_reset = Some(at.max(start) + gap);
                st.resets += 1;
                events.push(LinkEvent::Reset {
                    conn,
                    conn_offset: conn_up + keep,
                    link_offset: end,
                });
            }
            if let Some(at) = st.next_stall.filter(|&at| at <= end) {
                let mean = self.config.stall_every.unwrap_or(1);
                let gap = exponential(&mut st.stall_rng, mean);
                st.next_stall = Some(at + gap);
                st.stalls += 1;
                st.stalled_until = Some(Instant::now() + self.config.stall_for);
                events.push(LinkEvent::Stall {
                    conn: Some(conn),
                    link_offset: at,
                    millis: self.config.stall_for.as_millis() as u64,
                });
            }
            st.up_total = end;
            pass
        };
        for event in events {
            self.record(event);
        }
        pass
    }

    /// When the next stall placed in time starts.
    fn next_stall_at(&self) -> Option<Instant> {
        lock(&self.state).next_stall_at
    }

    /// Starts the stall placed in time that is due now, and places the next.
    fn stall_now(&self) {
        let event = {
            let mut st = lock(&self.state);
            let (Some(mean), Some(_)) = (self.config.stall_interval, st.next_stall_at) else {
                return;
            };
            let until = Instant::now() + self.config.stall_for;
            st.stalled_until = Some(st.stalled_until.map_or(until, |t| t.max(until)));
            st.next_stall_at = Some(until + exponential_time(&mut st.stall_rng, mean));
            st.stalls += 1;
            LinkEvent::Stall {
                conn: None,
                link_offset: st.up_total,
                millis: self.config.stall_for.as_millis() as u64,
            }
        };
        self.record(event);
    }

    fn stalled_until(&self) -> Option<Instant> {
        lock(&self.state)
            .stalled_until
            .filter(|&t| t > Instant::now())
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, link: Arc<Link>) {
    let mut conns = JoinSet::new();
    loop {
        let stall_at = link.next_stall_at();
        tokio::select! {
            () = tokio::time::sleep_until(stall_at.unwrap_or_else(Instant::now)), if stall_at.is_some() => {
                link.stall_now();
            }
            res = listener.accept() => match res {
                Ok((client, _)) => {
                    let id = link.conns.fetch_add(1, Ordering::SeqCst);
                    conns.spawn(connection(link.clone(), id, client, upstream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "link: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Up,
    Down,
}

/// A segment on its way through the delay line.
enum Segment {
    Data(Bytes, Instant),
    /// The sender closed its side.
    End,
    /// The sender broke: abort the connection.
    Abort,
    /// The link's reset point: the upstream keeps what came before it.
    Cut,
}

/// How a connection ends when it does not end gracefully.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Breakage {
    None,
    /// A socket failed: reset both sides.
    Abort,
    /// The emulated reset: the client gets an RST at once; the upstream gets
    /// every byte before the reset point, then the end of the stream (an RST
    /// there would let the kernel drop bytes it had not delivered yet, and
    /// the point would no longer be exact).
    Cut,
}

async fn connection(link: Arc<Link>, id: u64, client: TcpStream, upstream: SocketAddr) {
    let upstream = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%upstream, error = %e, "link: upstream refused");
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
            return;
        }
    };
    link.record(LinkEvent::Opened { conn: id });
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (up_bucket, down_bucket) = if link.config.shared {
        (link.up_bucket.clone(), link.down_bucket.clone())
    } else {
        (
            link.config.rate_up.map(Bucket::new),
            link.config.rate_down.map(Bucket::new),
        )
    };
    let (reset_tx, _) = watch::channel(Breakage::None);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let up_bytes = Arc::new(AtomicU64::new(0));
    let down_bytes = Arc::new(AtomicU64::new(0));
    let up = direction(
        &link,
        id,
        Dir::Up,
        client_read,
        upstream_write,
        up_bucket,
        &reset_tx,
        &up_bytes,
    );
    let down = direction(
        &link,
        id,
        Dir::Down,
        upstream_read,
        client_write,
        down_bucket,
        &reset_tx,
        &down_bytes,
    );
    tokio::join!(up, down);
    let down = down_bytes.load(Ordering::SeqCst);
    link.down_total.fetch_add(down, Ordering::SeqCst);
    link.record(LinkEvent::Closed {
        conn: id,
        up: up_bytes.load(Ordering::SeqCst),
        down,
    });
}

/// One direction: a reader that takes tokens, counts and stamps segments,
/// and a writer that delivers them when their delay is over.
#[allow(clippy::too_many_arguments)]
async fn direction(
    link: &Link,
    id: u64,
    dir: Dir,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    bucket: Option<Arc<Bucket>>,
    reset: &watch::Sender<Breakage>,
    delivered: &AtomicU64,
) {
    let config = &link.config;
    let rate = match dir {
        Dir::Up => config.rate_up,
        Dir::Down => config.rate_down,
    };
    // Small reads on a slow link keep the bucket's steps fine-grained.
    let buffer_len = rate.map_or(64 * 1024, |r| (r / 200).clamp(1024, 64 * 1024)) as usize;
    let (tx, mut rx) = mpsc::channel::<Segment>(1024);
    let mut jitter_rng = fastrand::Rng::with_seed(config.seed ^ (id << 1) ^ (dir as u64));

    let reader = async {
        let mut buffer = vec![0u8; buffer_len];
        let mut sent_up = 0u64;
        let mut last = Instant::now();
        loop {
            let n = match from.read(&mut buffer).await {
                Ok(0) => {
                    let _ = tx.send(Segment::End).await;
                    return;
                }
                Ok(n) => n,
                Err(_) => {
                    let _ = tx.send(Segment::Abort).await;
                    return;
                }
            };
            if *reset.borrow() == Breakage::Cut {
                // The upstream's answer to a cut request: nobody reads it.
                continue;
            }
            if let Some(until) = link.stalled_until() {
                tokio::time::sleep_until(until).await;
            }
            if let Some(bucket) = &bucket {
                bucket.take(n).await;
            }
            let (keep, cut) = match dir {
                Dir::Down => (n, false),
                Dir::Up => match link.count_up(id, sent_up, n) {
                    Pass::All => (n, false),
                    Pass::ResetAfter(keep) => (keep, true),
                },
            };
            sent_up += keep as u64;
            let mut due = Instant::now() + config.delay;
            if !config.jitter.is_zero() {
                due += config.jitter.mul_f64(jitter_rng.f64());
            }
            // Never reorder: a segment leaves no earlier than the one before.
            last = last.max(due);
            if keep > 0 {
                let data = Bytes::copy_from_slice(&buffer[..keep]);
                if tx.send(Segment::Data(data, last)).await.is_err() {
                    return;
                }
            }
            if cut {
                let _ = tx.send(Segment::Cut).await;
                return;
            }
        }
    };

    let writer = async {
        let mut reset_rx = reset.subscribe();
        let pumped = async {
            while let Some(segment) = rx.recv().await {
                match segment {
                    Segment::Data(data, due) => {
                        tokio::time::sleep_until(due).await;
                        if to.write_all(&data).await.is_err() {
                            return Breakage::Abort;
                        }
                        delivered.fetch_add(data.len() as u64, Ordering::SeqCst);
                    }
                    Segment::End => return Breakage::None,
                    Segment::Abort => return Breakage::Abort,
                    Segment::Cut => return Breakage::Cut,
                }
            }
            Breakage::Abort
        };
        let outcome = tokio::select! {
            outcome = pumped => outcome,
            seen = reset_rx.wait_for(|b| *b != Breakage::None) => seen.map_or(Breakage::Abort, |b| *b),
        };
        match (outcome, dir) {
            (Breakage::None, _) => {
                let _ = to.shutdown().await;
            }
            (Breakage::Cut, Dir::Up) => {
                // Tell the client side first, then end the upstream's stream
                // after the bytes before the reset point.
                reset.send_replace(Breakage::Cut);
                let _ = to.shutdown().await;
            }
            (breakage, _) => {
                // RST, not FIN: once every half is dropped the socket is
                // closed with a zero linger.
                if *reset.borrow() == Breakage::None {
                    reset.send_replace(breakage);
                }
                let _ = socket2::SockRef::from(to.as_ref()).set_linger(Some(Duration::ZERO));
                to.forget();
            }
        }
    };

    let mut reset_rx = reset.subscribe();
    let reader = async {
        match dir {
            // After a cut, the upstream's side is drained (briefly) so it
            // reads every byte before the close.
            Dir::Down => {
                let mut cut_rx = reset.subscribe();
                tokio::select! {
                    () = reader => {}
                    _ = reset_rx.wait_for(|b| *b == Breakage::Abort) => {}
                    () = async {
                        let _ = cut_rx.wait_for(|b| *b == Breakage::Cut).await;
                        tokio::time::sleep(CUT_DRAIN).await;
                    } => {}
                }
            }
            Dir::Up => {
                tokio::select! {
                    () = reader => {}
                    _ = reset_rx.wait_for(|b| *b != Breakage::None) => {}
                }
            }
        }
    };
    tokio::join!(reader, writer);
}
