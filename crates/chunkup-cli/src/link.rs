//! `chunkup link`: the link emulator (bandwidth, latency, jitter, resets,
//! stalls) between a client and a server on loopback, until Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use chunkup_server::link::{LinkConfig, LinkEmulator, LinkEvent, PROFILES};
use clap::Args;
use std::io::Write;

use crate::exit;
use crate::size::parse_size;

#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    /// Address to listen on (loopback only; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where connections go (loopback only), e.g. a `chunkup serve`.
    #[arg(long)]
    upstream: SocketAddr,
    /// Named link: fast, slow (10 Mbit/s, 80 ms), lossy (40 Mbit/s, 40 ms,
    /// a reset every ~10 MB), hostile (5 Mbit/s, 200 ms, a reset every
    /// ~1 MB, a 10 s stall after every ~8 s). The options below override it.
    #[arg(long, default_value = "fast")]
    profile: String,
    /// Seed of every random choice (same seed, same resets and stalls).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bandwidth each way, per second: bytes (8MiB, 1MB) or bits (10mbit).
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    rate: Option<u64>,
    /// Upload bandwidth (client -> upstream), overrides --rate.
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    rate_up: Option<u64>,
    /// Download bandwidth (upstream -> client), overrides --rate.
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    rate_down: Option<u64>,
    /// Each connection gets its own bandwidth instead of sharing the link's.
    #[arg(long)]
    per_connection: bool,
    /// Round-trip time added, in milliseconds (half of it each way).
    #[arg(long, value_name = "MS")]
    rtt_ms: Option<u64>,
    /// Extra random delay per segment, up to this many milliseconds.
    #[arg(long, value_name = "MS")]
    jitter_ms: Option<u64>,
    /// Mean upload bytes between connection resets (0: none).
    #[arg(long, value_parser = parse_size_or_zero, value_name = "SIZE")]
    reset_every: Option<u64>,
    /// Mean upload bytes between stalls (0: none).
    #[arg(long, value_parser = parse_size_or_zero, value_name = "SIZE")]
    stall_every: Option<u64>,
    /// Mean seconds of link time between stalls, placed in time rather than
    /// in upload bytes (0: none).
    #[arg(long, value_name = "SECS")]
    stall_interval: Option<f64>,
    /// Length of a stall in seconds.
    #[arg(long, value_name = "SECS")]
    stall_secs: Option<f64>,
    /// Print every reset, stall and closed connection as a JSON line on stdout.
    #[arg(long)]
    events: bool,
}

/// A rate: a size per second, or bits per second with `kbit`/`mbit`/`gbit`.
fn parse_rate(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    for (unit, factor) in [("kbit", 1e3), ("mbit", 1e6), ("gbit", 1e9)] {
        if let Some(number) = lower.strip_suffix(unit) {
            let n: f64 = number
                .trim()
                .parse()
                .map_err(|_| format!("{text:?} is not a rate (try 10mbit or 2MiB)"))?;
            let bytes = n * factor / 8.0;
            return if bytes >= 1.0 {
                Ok(bytes as u64)
            } else {
                Err(format!("{text:?} is too slow"))
            };
        }
    }
    parse_size(text)
}

fn parse_size_or_zero(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        Ok(0)
    } else {
        parse_size(text)
    }
}

fn config(args: &LinkArgs) -> Result<LinkConfig, String> {
    let mut config = LinkConfig::profile(&args.profile).ok_or_else(|| {
        format!(
            "unknown profile {:?} (one of {})",
            args.profile,
            PROFILES.join(", ")
        )
    })?;
    config.seed = args.seed;
    if let Some(rate) = args.rate {
        config.rate_up = Some(rate);
        config.rate_down = Some(rate);
    }
    if let Some(rate) = args.rate_up {
        config.rate_up = Some(rate);
    }
    if let Some(rate) = args.rate_down {
        config.rate_down = Some(rate);
    }
    if args.per_connection {
        config.shared = false;
    }
    if let Some(rtt) = args.rtt_ms {
        config.delay = Duration::from_millis(rtt) / 2;
    }
    if let Some(jitter) = args.jitter_ms {
        config.jitter = Duration::from_millis(jitter);
    }
    if let Some(every) = args.reset_every {
        config.reset_every = (every > 0).then_some(every);
    }
    if let Some(every) = args.stall_every {
        config.stall_every = (every > 0).then_some(every);
    }
    if let Some(secs) = args.stall_interval {
        let mean = Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("bad --stall-interval {secs}"))?;
        config.stall_interval = (!mean.is_zero()).then_some(mean);
    }
    if let Some(secs) = args.stall_secs {
        config.stall_for =
            Duration::try_from_secs_f64(secs).map_err(|_| format!("bad --stall-secs {secs}"))?;
    }
    Ok(config)
}

fn event_json(event: &LinkEvent) -> serde_json::Value {
    match event {
        LinkEvent::Opened { conn } => serde_json::json!({"event": "opened", "conn": conn}),
        LinkEvent::Reset {
            conn,
            conn_offset,
            link_offset,
        } => serde_json::json!({
            "event": "reset", "conn": conn, "conn_offset": conn_offset, "link_offset": link_offset
        }),
        LinkEvent::Stall {
            conn,
            link_offset,
            millis,
        } => serde_json::json!({
            "event": "stall", "conn": conn, "link_offset": link_offset, "millis": millis
        }),
        LinkEvent::Closed { conn, up, down } => {
            serde_json::json!({"event": "closed", "conn": conn, "up": up, "down": down})
        }
    }
}

pub(crate) async fn run(args: LinkArgs) -> u8 {
    let config = match config(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("chunkup link: {error}");
            return exit::USAGE;
        }
    };
    let link = match LinkEmulator::start(args.listen, args.upstream, config).await {
        Ok(link) => link,
        Err(error) => {
            eprintln!("chunkup link: cannot listen on {}: {error}", args.listen);
            return if error.kind() == std::io::ErrorKind::InvalidInput {
                exit::USAGE
            } else {
                exit::FAILED
            };
        }
    };
    let mut feed = link.subscribe();
    // The first line is what scripts wait for.
    println!("listening on {} -> {}", link.url(), args.upstream);
    let _ = std::io::stdout().flush();
    eprintln!(
        "chunkup link: profile {} seed {}: {:?}",
        args.profile,
        args.seed,
        link.config()
    );
    let printer = async {
        loop {
            match feed.recv().await {
                Ok(event) if args.events => {
                    let mut stdout = std::io::stdout().lock();
                    let _ = writeln!(stdout, "{}", event_json(&event));
                    let _ = stdout.flush();
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("chunkup link: {n} events not printed (output too slow)");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    tokio::select! {
        () = printer => {}
        () = shutdown_signal() => {}
    }
    let stats = link.stats();
    eprintln!(
        "chunkup link: {} connections, {} bytes up, {} down, {} resets, {} stalls",
        stats.connections, stats.up, stats.down, stats.resets, stats.stalls
    );
    link.shutdown().await;
    0
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10mbit"), Ok(1_250_000));
        assert_eq!(parse_rate("5 Mbit"), Ok(625_000));
        assert_eq!(parse_rate("2MiB"), Ok(2 << 20));
        assert!(parse_rate("fast").is_err());
    }
}
