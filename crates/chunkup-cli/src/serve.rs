//! `chunkup serve`: the reference server until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use chunkup_server::{FaultSpec, ServerConfig};
use clap::Args;

use crate::exit;
use crate::size::parse_size;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where uploads are stored.
    #[arg(long, default_value = "./chunkup-data")]
    dir: PathBuf,
    /// Faults to inject, e.g. "seed=1,reset=0.05,error=0.05,busy=0.05" (see docs/SERVER.md).
    #[arg(long, default_value = "none")]
    faults: String,
    /// Largest upload accepted.
    #[arg(long, default_value = "64GiB", value_parser = parse_size)]
    max_size: u64,
    /// Keep this many acknowledged bytes per upload in memory only (failover emulation).
    #[arg(long, default_value = "0", value_parser = parse_write_behind)]
    write_behind: u64,
}

fn parse_write_behind(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        Ok(0)
    } else {
        parse_size(text)
    }
}

pub(crate) async fn run(args: ServeArgs) -> u8 {
    let faults: FaultSpec = match args.faults.parse() {
        Ok(faults) => faults,
        Err(error) => {
            eprintln!("chunkup serve: bad --faults: {error}");
            return exit::USAGE;
        }
    };
    let config = ServerConfig {
        dir: args.dir.clone(),
        max_size: args.max_size,
        faults,
        write_behind: args.write_behind,
        ..ServerConfig::default()
    };
    let server = match chunkup_server::start(args.addr, config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("chunkup serve: cannot listen on {}: {error}", args.addr);
            return exit::FAILED;
        }
    };
    eprintln!(
        "chunkup serve: listening on {} (store {}); endpoints: ranged {}, tus {}, ietf {}",
        server.base_url(),
        args.dir.display(),
        server.ranged_endpoint(),
        server.tus_endpoint(),
        server.ietf_endpoint()
    );
    wait_for_shutdown_signal().await;
    eprintln!("chunkup serve: shutting down");
    server.shutdown().await;
    0
}

async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
