//! Chaos soak: many uploads of mixed sizes (0 B to a few MiB) and protocols
//! (ranged, tus, IETF interop 6 and 8, auto-discovered) run concurrently
//! through the native client against reference servers injecting random
//! seeded faults — resets, 5xx, 503 bursts with `Retry-After`, stalls,
//! failed status polls — and against a failover pair (write-behind, two
//! servers on one store behind a `FailoverProxy`) that is crashed and
//! restarted over and over, leaving holes.
//!
//! Every upload must complete; the admin API's sha256 of every upload must
//! be the source's; each source file must map to exactly one upload on its
//! server (none created twice).
//!
//! `CHUNKUP_SOAK_UPLOADS` (default 100), `CHUNKUP_SOAK_CONCURRENCY`
//! (default 12), `CHUNKUP_SOAK_SEED` (default 1). `scripts/soak.sh N` runs
//! it with N uploads (1,000 by default) and prints the summary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chunkup::core::Protocol;
use chunkup::{ChunkSizing, RetryPolicy, UploadEvent as Event, UploadOptions};
use chunkup_core::IetfVersion;
use chunkup_e2e::*;
use chunkup_server::proxy::FailoverProxy;
use chunkup_server::{FaultCounts, RunningServer, ServerConfig};
use tokio::sync::{Mutex, Semaphore};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Faults of the plain server: about one chunk request in seven fails.
fn plain_faults(seed: u64) -> String {
    format!(
        "seed={seed},reset=0.05,error=0.03,busy=0.02,burst=3,retry-after=1,\
         stall=0.01,stall-secs=3,status-error=0.03"
    )
}

/// Faults of the failover pair, on top of the crashes.
fn failover_faults(seed: u64) -> String {
    format!("seed={seed},reset=0.02,error=0.01")
}

/// What the failover pair keeps in memory only: lost on each crash.
const WRITE_BEHIND: u64 = 128 * KIB;

/// How often the active failover server is crashed (and restarted).
const CRASH_EVERY: Duration = Duration::from_millis(800);

/// The server an upload goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Plain,
    Failover,
}

/// One planned upload.
#[derive(Debug, Clone)]
struct Plan {
    index: u64,
    size: u64,
    protocol: Protocol,
    ietf_version: IetfVersion,
    /// The endpoint path (`/ranged`, `/tus`, `/ietf`).
    route: &'static str,
    target: Target,
    chunking: ChunkSizing,
}

impl Plan {
    fn label(&self) -> String {
        match (self.protocol, self.ietf_version) {
            (Protocol::Ietf, v) => format!("ietf{}", v.interop()),
            (Protocol::Auto, _) => format!("auto{}", self.route),
            (p, _) => p.to_string(),
        }
    }
}

fn plan(index: u64, rng: &mut fastrand::Rng) -> Plan {
    let size = match rng.u32(0..100) {
        0..10 => 0,
        10..20 => 1,
        20..55 => rng.u64(2..64 * KIB),
        55..90 => rng.u64(64 * KIB..MIB),
        _ => rng.u64(MIB..5 * MIB),
    };
    let (protocol, ietf_version, route) = match rng.u32(0..5) {
        0 => (Protocol::Ranged, IetfVersion::Interop8, "/ranged"),
        1 => (Protocol::Tus, IetfVersion::Interop8, "/tus"),
        2 => (Protocol::Ietf, IetfVersion::Interop6, "/ietf"),
        3 => (Protocol::Ietf, IetfVersion::Interop8, "/ietf"),
        _ => {
            let route = ["/ranged", "/tus", "/ietf"][rng.usize(0..3)];
            (Protocol::Auto, IetfVersion::Interop8, route)
        }
    };
    let chunking = match rng.u32(0..3) {
        0 => ChunkSizing::Fixed(64 * KIB),
        1 => ChunkSizing::Fixed(256 * KIB),
        _ => ChunkSizing::Adaptive {
            initial: 64 * KIB,
            min: 32 * KIB,
            max: MIB,
            target_duration: Duration::from_millis(500),
        },
    };
    let target = if rng.u32(0..100) < 30 {
        Target::Failover
    } else {
        Target::Plain
    };
    Plan {
        index,
        size,
        protocol,
        ietf_version,
        route,
        target,
        chunking,
    }
}

/// Short delays so the soak is quick; a deep budget (progress refills it)
/// so every upload survives its faults.
fn soak_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 40,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(1),
        deadline: Some(Duration::from_secs(600)),
        // Below the servers' 3 s stalls, so the client detects them; well
        // above a loaded machine's slowest answer, so a slow creation is
        // not abandoned (that would leave an orphan upload).
        stall_timeout: Duration::from_secs(2),
        delays: Vec::new(),
    }
}

/// The failover pair: two servers on one store, one proxy in front, and a
/// task crashing the active one and restarting it on its address.
struct Failover {
    proxy: FailoverProxy,
    servers: Arc<Mutex<[Option<RunningServer>; 2]>>,
    crashes: Arc<AtomicU64>,
    /// Fault counts of crashed instances.
    counted: Arc<std::sync::Mutex<FaultCounts>>,
    stop: Arc<AtomicBool>,
    chaos: tokio::task::JoinHandle<()>,
}

fn failover_config(dir: &Path, seed: u64) -> ServerConfig {
    ServerConfig {
        dir: dir.to_path_buf(),
        faults: failover_faults(seed).parse().expect("valid faults"),
        write_behind: WRITE_BEHIND,
        admin: chunkup_server::AdminAccess::open(),
        ..ServerConfig::default()
    }
}

fn add(total: &mut FaultCounts, more: FaultCounts) {
    total.resets += more.resets;
    total.errors += more.errors;
    total.busy += more.busy;
    total.stalls += more.stalls;
}

impl Failover {
    async fn start(dir: PathBuf, seed: u64) -> Failover {
        let a = start_server_with(failover_config(&dir, seed)).await;
        let b = start_server_with(failover_config(&dir, seed + 1)).await;
        let addrs = [a.addr(), b.addr()];
        let proxy = FailoverProxy::start(loopback(), addrs.to_vec())
            .await
            .expect("the proxy starts");
        let servers = Arc::new(Mutex::new([Some(a), Some(b)]));
        let crashes = Arc::new(AtomicU64::new(0));
        let counted = Arc::new(std::sync::Mutex::new(FaultCounts::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let chaos = tokio::spawn(chaos(
            dir,
            seed,
            addrs,
            servers.clone(),
            crashes.clone(),
            counted.clone(),
            stop.clone(),
        ));
        Failover {
            proxy,
            servers,
            crashes,
            counted,
            stop,
            chaos,
        }
    }

    /// Stops crashing; returns the fault counts of every instance.
    async fn calm(&mut self) -> FaultCounts {
        self.stop.store(true, Ordering::SeqCst);
        (&mut self.chaos).await.expect("the chaos task ends");
        let mut total = *self.counted.lock().expect("counts");
        for server in self.servers.lock().await.iter().flatten() {
            add(&mut total, server.fault_counts());
        }
        total
    }
}

/// Alternately crashes server 0 and 1 (after the first crash, each crash
/// hits the one the proxy moved to) and restarts it at once on its address:
/// its write-behind bytes are lost, the other server meets the hole.
async fn chaos(
    dir: PathBuf,
    seed: u64,
    addrs: [SocketAddr; 2],
    servers: Arc<Mutex<[Option<RunningServer>; 2]>>,
    crashes: Arc<AtomicU64>,
    counted: Arc<std::sync::Mutex<FaultCounts>>,
    stop: Arc<AtomicBool>,
) {
    let mut victim = 0;
    let mut round = 0;
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(CRASH_EVERY).await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut servers = servers.lock().await;
        if let Some(server) = servers[victim].take() {
            add(&mut counted.lock().expect("counts"), server.fault_counts());
            server.crash();
            crashes.fetch_add(1, Ordering::SeqCst);
        }
        round += 1;
        let config = failover_config(&dir, seed + 10 * round);
        for attempt in 0.. {
            match chunkup_server::start(addrs[victim], config.clone()).await {
                Ok(server) => {
                    servers[victim] = Some(server);
                    break;
                }
                Err(e) if attempt < 50 => {
                    eprintln!("restarting a crashed server: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot restart the crashed server: {e}"),
            }
        }
        victim = 1 - victim;
    }
}

/// What one upload did.
#[derive(Debug)]
struct Done {
    plan: Plan,
    source_sha256: String,
    outcome: Result<chunkup::UploadReport, String>,
    seen: Seen,
}

async fn run_one(plan: Plan, endpoint: String, workdir: PathBuf, seed: u64) -> Done {
    // A unique file name: the server-side count of uploads per file uses it.
    let path = workdir.join(format!("soak-{:05}-{}.bin", plan.index, plan.size));
    let source_sha256 = write_random(&path, plan.size, seed ^ plan.index);
    let options = UploadOptions {
        protocol: Some(plan.protocol.into()),
        ietf_version: Some(match plan.ietf_version {
            IetfVersion::Interop6 => 6,
            _ => 8,
        }),
        progress_interval_ms: 50,
        ..UploadOptions::default()
    };
    let chunking = plan.chunking.clone();
    let mut seen = Seen::default();
    let outcome = client()
        .upload(options)
        .to(endpoint.as_str())
        .tune(move |settings| {
            settings.chunking = chunking;
            settings.retry = soak_retry();
        })
        .on_event(|event| match event {
            Event::Created { .. } => seen.created += 1,
            Event::Retrying { reason, status, .. } if seen.created == 0 => {
                seen.creation_retries.push(retry_kind(reason, *status))
            }
            Event::ServerRewound { .. } => seen.rewinds += 1,
            _ => {}
        })
        .file(&path)
        .await
        .map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&path);
    Done {
        plan,
        source_sha256,
        outcome,
        seen,
    }
}

/// What the client's events showed.
#[derive(Debug, Default)]
struct Seen {
    /// Uploads the client created (learned a URL for).
    created: u64,
    /// Retries before the first creation answer: a creation (or discovery)
    /// whose answer never came.
    creation_retries: Vec<String>,
    /// Times the server was found holding less than it had acknowledged.
    rewinds: u64,
}

fn retry_kind(reason: &str, status: Option<u16>) -> String {
    match (reason, status) {
        ("status", Some(s)) => format!("http {s}"),
        (other, _) => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_soak() {
    let uploads = env_or("CHUNKUP_SOAK_UPLOADS", 100);
    let concurrency = env_or("CHUNKUP_SOAK_CONCURRENCY", 12).max(1) as usize;
    let seed = env_or("CHUNKUP_SOAK_SEED", 1);
    let started = Instant::now();

    let plain_dir = tempfile::tempdir().expect("plain store");
    let failover_dir = tempfile::tempdir().expect("failover store");
    let workdir = tempfile::tempdir().expect("source files");
    let plain = start_server(plain_dir.path(), &plain_faults(seed)).await;
    let mut failover = Failover::start(failover_dir.path().to_path_buf(), seed + 1000).await;

    let mut rng = fastrand::Rng::with_seed(seed);
    let plans: Vec<Plan> = (0..uploads).map(|i| plan(i, &mut rng)).collect();
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans {
        let base = match plan.target {
            Target::Plain => plain.base_url(),
            Target::Failover => failover.proxy.url(),
        };
        let endpoint = format!("{base}{}", plan.route);
        let permit = limit.clone().acquire_owned().await.expect("semaphore");
        let workdir = workdir.path().to_path_buf();
        tasks.spawn(async move {
            let done = run_one(plan, endpoint, workdir, seed).await;
            drop(permit);
            done
        });
    }
    let mut done = Vec::new();
    while let Some(result) = tasks.join_next().await {
        done.push(result.expect("an upload task does not panic"));
    }
    let upload_time = started.elapsed();
    let failover_faults = failover.calm().await;
    let crashes = failover.crashes.load(Ordering::SeqCst);

    // Verify on the servers: sha256 of each completed upload, and how many
    // uploads each source file became.
    let mut failures = Vec::new();
    let mut mismatches = Vec::new();
    let mut bytes = 0;
    let mut retries: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_protocol: BTreeMap<String, u64> = BTreeMap::new();
    let failover_base = failover.proxy.url();
    for d in &done {
        *by_protocol.entry(d.plan.label()).or_default() += 1;
        let report = match &d.outcome {
            Ok(report) => report,
            Err(e) => {
                failures.push(format!(
                    "#{} {} {} B: {e}",
                    d.plan.index,
                    d.plan.label(),
                    d.plan.size
                ));
                continue;
            }
        };
        bytes += report.size;
        for r in &report.retries {
            *retries.entry(retry_kind(r.kind(), r.status())).or_default() += 1;
        }
        let base = match d.plan.target {
            Target::Plain => plain.base_url(),
            Target::Failover => failover_base.clone(),
        };
        let stored = Stored::fetch(&base, report.url()).await;
        if stored.sha256() != d.source_sha256
            || stored.stored() != d.plan.size
            || !stored.complete()
        {
            mismatches.push(format!(
                "#{} {}: {}",
                d.plan.index,
                d.plan.label(),
                stored.json
            ));
        }
    }
    let mut per_file: BTreeMap<(Target, String), Vec<serde_json::Value>> = BTreeMap::new();
    for (target, base) in [
        (Target::Plain, plain.base_url()),
        (Target::Failover, failover_base),
    ] {
        for upload in admin_uploads(&base).await {
            let name = upload["filename"].as_str().unwrap_or("?").to_string();
            per_file.entry((target, name)).or_default().push(upload);
        }
    }
    // Each file must be one upload. The only tolerated extra is an orphan:
    // an upload from a creation request whose answer never arrived (a crash
    // or broken connection cut it, or the client's stall timeout gave up on
    // it), so the client never learned its URL and could not continue it:
    // no protocol here names an upload before the creation answer. An
    // orphan that completed (the whole small file went with the creation)
    // must hold the exact bytes.
    let mut duplicates = Vec::new();
    let mut orphans = 0;
    let mut missing = Vec::new();
    let mut rewinds = 0;
    let base_of = |target| match target {
        Target::Plain => plain.base_url(),
        Target::Failover => failover.proxy.url(),
    };
    for d in &done {
        rewinds += d.seen.rewinds;
        let name = format!("soak-{:05}-{}.bin", d.plan.index, d.plan.size);
        let Some(on_server) = per_file.get(&(d.plan.target, name.clone())) else {
            missing.push(name);
            continue;
        };
        if d.seen.created > 1 {
            duplicates.push(format!(
                "{name}: the client created {} uploads",
                d.seen.created
            ));
        }
        let used = d
            .outcome
            .as_ref()
            .ok()
            .map(|r| upload_id(r.url()).to_string());
        for extra in on_server
            .iter()
            .filter(|u| u["id"].as_str() != used.as_deref())
        {
            // A creation with the whole (small) file in it completes on the
            // server even when its answer is lost: that orphan must at
            // least hold the exact bytes.
            let exact = extra["complete"] == false
                || Stored::fetch(&base_of(d.plan.target), extra["id"].as_str().unwrap_or("?"))
                    .await
                    .sha256()
                    == d.source_sha256;
            let orphan = !d.seen.creation_retries.is_empty() && exact;
            if orphan {
                orphans += 1;
                eprintln!(
                    "orphan of {name} ({:?}, {}): creation retried after {:?}",
                    d.plan.target,
                    d.plan.label(),
                    d.seen.creation_retries
                );
            } else {
                duplicates.push(format!(
                    "{name}: another upload {extra}; used {used:?}; before creation {:?}",
                    d.seen.creation_retries
                ));
            }
        }
    }

    let mut faults = plain.fault_counts();
    add(&mut faults, failover_faults);
    let retried: u64 = retries.values().sum();
    eprintln!("== chaos soak (seed {seed}, {concurrency} at once)");
    eprintln!(
        "uploads: {} ({} completed, {} failed), {:.1} MiB, by protocol {by_protocol:?}",
        done.len(),
        done.len() - failures.len(),
        failures.len(),
        bytes as f64 / MIB as f64
    );
    eprintln!(
        "faults injected: {} resets, {} 5xx, {} busy 503s, {} stalls, {} failover crashes",
        faults.resets, faults.errors, faults.busy, faults.stalls, crashes
    );
    eprintln!("retries: {retried} {retries:?}");
    eprintln!("server rewinds met (failover holes filled): {rewinds}");
    eprintln!(
        "sha256 mismatches: {}, uploads created twice: {}, files without an upload: {}, \
         orphans of creations whose answer never came: {orphans}",
        mismatches.len(),
        duplicates.len(),
        missing.len()
    );
    eprintln!(
        "wall time: {:.1}s ({:.1}s uploading)",
        started.elapsed().as_secs_f64(),
        upload_time.as_secs_f64()
    );
    assert!(failures.is_empty(), "uploads failed: {failures:#?}");
    assert!(
        mismatches.is_empty(),
        "stored bytes differ: {mismatches:#?}"
    );
    assert!(duplicates.is_empty(), "created twice: {duplicates:#?}");
    assert!(
        missing.is_empty(),
        "no upload on the server for: {missing:?}"
    );
    // The soak must really have been chaotic.
    if uploads >= 50 {
        assert!(
            faults.resets > 0 && faults.errors > 0 && crashes > 0,
            "{faults:?}"
        );
        assert!(retried > 0);
    }
    drop(failover);
}
