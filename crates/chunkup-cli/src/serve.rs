//! `chunkup serve`: the reference server until Ctrl-C, optionally with the
//! web demo page (`--web-demo`). Safe by default: the admin API is closed
//! unless `--admin`/`--admin-token` opens it, only known `Host` names are
//! answered, resources are limited, and listening beyond loopback prints
//! what that exposes (docs/SERVER.md, "Security").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use chunkup_server::web_demo::{self, WebDemo};
use chunkup_server::{AdminAccess, FaultSpec, ServerConfig};
use clap::Args;
use tokio::net::TcpListener;

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
    #[arg(long, default_value = "0", value_parser = parse_size_or_zero)]
    write_behind: u64,
    /// All-or-nothing appends: a chunk or PATCH whose body breaks off stores
    /// none of its bytes (like servers that buffer or verify whole chunks).
    #[arg(long)]
    atomic_appends: bool,
    /// Also serve the web demo page and the npm package (bindings/wasm/pkg).
    #[arg(long)]
    web_demo: bool,
    /// The demo page's directory [default: web-demo/ in the current directory
    /// or above the chunkup binary].
    #[arg(long, requires = "web_demo")]
    web_demo_dir: Option<PathBuf>,
    /// The built npm package (scripts/wasm.sh) [default: bindings/wasm/pkg
    /// beside the demo directory].
    #[arg(long, requires = "web_demo")]
    wasm_pkg: Option<PathBuf>,
    /// Serve the page on this second address instead of --addr, so the page's
    /// origin differs from the upload server's (cross-origin, CORS).
    #[arg(long, requires = "web_demo")]
    web_demo_addr: Option<SocketAddr>,
    /// Open the admin API (/_admin: every upload's name, metadata and
    /// sha256, and the fault switch) to programs on this machine. Closed by
    /// default; never open to pages of other origins.
    #[arg(long)]
    admin: bool,
    /// Open the admin API to requests with `Authorization: Bearer TOKEN`
    /// only (implies --admin).
    #[arg(
        long,
        env = "CHUNKUP_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
    /// Also answer requests for this Host name (repeatable). IP addresses
    /// and localhost are always answered; other names are refused, which
    /// stops DNS rebinding.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Most bytes the store holds, counting unfinished uploads at their
    /// declared length; creations beyond get 507.
    #[arg(long, default_value = "100GiB", value_parser = parse_size)]
    max_total_size: u64,
    /// Most unfinished uploads at once; creations beyond get 503 +
    /// Retry-After.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    max_unfinished: u64,
    /// Free disk space to keep: a creation that would leave less gets 507,
    /// an append while less is free 503 + Retry-After (0: no check).
    #[arg(long, default_value = "1GiB", value_parser = parse_size_or_zero)]
    min_free_disk: u64,
    /// Largest tus Upload-Metadata; longer gets 431.
    #[arg(long, default_value = "8KiB", value_parser = parse_size)]
    max_metadata_size: u64,
    /// Largest request head (header names and values); larger gets 431.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    max_header_size: u64,
}

/// A size, or `0` (off).
fn parse_size_or_zero(text: &str) -> Result<u64, String> {
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
    let site = if args.web_demo {
        match locate_web_demo(&args) {
            Ok(site) => Some(site),
            Err(error) => {
                eprintln!("chunkup serve: {error}");
                return exit::USAGE;
            }
        }
    } else {
        None
    };
    let admin = match admin_access(&args) {
        Ok(admin) => admin,
        Err(error) => {
            eprintln!("chunkup serve: {error}");
            return exit::USAGE;
        }
    };
    let (same_origin, cross_origin) = match (site, args.web_demo_addr) {
        (Some(site), Some(addr)) => (None, Some((site, addr))),
        (site, _) => (site, None),
    };
    let demo_here = same_origin.is_some();
    let mut config = ServerConfig {
        dir: args.dir.clone(),
        max_size: args.max_size,
        faults,
        write_behind: args.write_behind,
        atomic_appends: args.atomic_appends,
        web_demo: same_origin,
        admin,
        allowed_hosts: args.allow_hosts.clone(),
        max_total_size: args.max_total_size,
        max_unfinished: args.max_unfinished,
        min_free_disk: args.min_free_disk,
        max_metadata_size: usize::try_from(args.max_metadata_size).unwrap_or(usize::MAX),
        max_header_size: usize::try_from(args.max_header_size).unwrap_or(usize::MAX),
        ..ServerConfig::default()
    };
    // A page on its own port: bound first, so the upload server knows the
    // page's origin (for the fault switch's CORS) and its token.
    let mut cross_page = None;
    if let Some((site, addr)) = cross_origin {
        let listener = match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("chunkup serve: cannot listen on {addr}: {error}");
                return exit::FAILED;
            }
        };
        let (token, origins) = match (chunkup_server::random_token(), listener.local_addr()) {
            (Ok(token), Ok(local)) => (token, page_origins(local)),
            (Err(error), _) | (_, Err(error)) => {
                eprintln!("chunkup serve: cannot set up the web demo's fault switch: {error}");
                return exit::FAILED;
            }
        };
        config.admin.fault_switch_token = Some(token.clone());
        config.admin.origins.extend(origins);
        let site = site
            .with_fault_switch_token(token)
            .with_allowed_hosts(args.allow_hosts.clone());
        cross_page = Some((listener, site));
    }
    let admin_line = admin_summary(&config.admin);
    let warning = exposure_warning(&args, &config);
    let server = match chunkup_server::start(args.addr, config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!(
                "chunkup serve: cannot start on {} with the store {}: {error}",
                args.addr,
                args.dir.display()
            );
            return exit::FAILED;
        }
    };
    eprintln!(
        "chunkup serve: listening on {} (store {}); endpoints: ranged {}, tus {}, ietf {}, gcs {}",
        server.base_url(),
        args.dir.display(),
        server.ranged_endpoint(),
        server.tus_endpoint(),
        server.ietf_endpoint(),
        server.gcs_endpoint()
    );
    eprintln!("chunkup serve: {admin_line}");
    if let Some(warning) = warning {
        eprintln!("chunkup serve: WARNING: {warning}");
    }
    let mut page_server = None;
    if demo_here {
        eprintln!(
            "chunkup serve: web demo: {}/ (the page gets the fault switch)",
            server.base_url()
        );
    } else if let Some((listener, site)) = cross_page {
        let addr = listener.local_addr().ok();
        match web_demo::start_on(listener, site.with_upload_server(server.base_url())) {
            Ok(page) => {
                eprintln!(
                    "chunkup serve: web demo: {} (uploads cross-origin to {})",
                    page.url(),
                    server.base_url()
                );
                page_server = Some(page);
            }
            Err(error) => {
                eprintln!("chunkup serve: cannot serve the web demo on {addr:?}: {error}");
                server.shutdown().await;
                return exit::FAILED;
            }
        }
    }
    wait_for_shutdown_signal().await;
    eprintln!("chunkup serve: shutting down");
    if let Some(page) = page_server {
        page.shutdown().await;
    }
    server.shutdown().await;
    0
}

/// The admin API the flags ask for. Refused: an empty or malformed token,
/// and an admin API without a token on an address beyond loopback (it
/// would hand every upload's name and sha256, and the fault switch, to
/// anyone who can reach the port).
fn admin_access(args: &ServeArgs) -> Result<AdminAccess, String> {
    if let Some(token) = &args.admin_token
        && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(
            "--admin-token must be printable ASCII without spaces (e.g. 32 hex digits)".to_owned(),
        );
    }
    let open = args.admin || args.admin_token.is_some();
    if open && args.admin_token.is_none() && !args.addr.ip().is_loopback() {
        return Err(format!(
            "--admin without --admin-token on {}, beyond loopback, would open the upload list \
             and the fault switch to anyone who can reach it: add --admin-token TOKEN \
             (or CHUNKUP_ADMIN_TOKEN), or listen on 127.0.0.1",
            args.addr
        ));
    }
    Ok(AdminAccess {
        open,
        token: args.admin_token.clone(),
        ..AdminAccess::default()
    })
}

/// One line on the state of the admin API.
fn admin_summary(admin: &AdminAccess) -> String {
    match (admin.open, &admin.token) {
        (false, _) => "admin API: closed (--admin or --admin-token opens it)".to_owned(),
        (true, None) => "admin API: open, without a token, to programs on this machine \
                         (never to pages of other origins)"
            .to_owned(),
        (true, Some(_)) => "admin API: open to requests with its token".to_owned(),
    }
}

/// What listening beyond loopback exposes, or `None` on loopback.
fn exposure_warning(args: &ServeArgs, config: &ServerConfig) -> Option<String> {
    let page_exposed = args
        .web_demo_addr
        .filter(|_| args.web_demo)
        .is_some_and(|a| !a.ip().is_loopback());
    if args.addr.ip().is_loopback() && !page_exposed {
        return None;
    }
    let mut text = format!(
        "listening beyond loopback ({}). Anyone who can reach it can create uploads \
         (up to {} bytes each, {} in all, in {}), and append to or delete any upload \
         whose URL they learn.",
        args.addr,
        config.max_size,
        config.max_total_size,
        args.dir.display()
    );
    if config.admin.open {
        text.push_str(
            " The admin API (every upload's name, metadata and sha256; the fault switch) \
             answers whoever has its token.",
        );
    }
    if args.web_demo {
        text.push_str(" The web demo page, and its fault switch, are open to anyone who loads it.");
    }
    let names = if args.allow_hosts.is_empty() {
        "none yet".to_owned()
    } else {
        args.allow_hosts.join(", ")
    };
    text.push_str(&format!(
        " Requests are answered only when their Host is an IP address, localhost or a \
         name given with --allow-host ({names}): add the names clients use to reach it."
    ));
    Some(text)
}

/// The origins a page listening on `addr` has in a browser: its address
/// (loopback when unspecified) and `localhost`, on its port.
fn page_origins(addr: SocketAddr) -> Vec<String> {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let port = addr.port();
    vec![
        format!("http://{}", SocketAddr::new(ip, port)),
        format!("http://localhost:{port}"),
    ]
}

/// The demo page and package from the flags, or found by convention: a
/// `web-demo/` holding `index.html` in the current directory or in a
/// directory above the binary (`target/debug/chunkup` in a checkout), and the
/// package at `bindings/wasm/pkg` beside it.
fn locate_web_demo(args: &ServeArgs) -> Result<WebDemo, String> {
    let page_dir = match &args.web_demo_dir {
        Some(dir) => dir.clone(),
        None => find_page_dir().ok_or(
            "cannot find the web demo (web-demo/index.html) in the current directory or \
             above the chunkup binary; pass --web-demo-dir",
        )?,
    };
    let pkg_dir = match &args.wasm_pkg {
        Some(dir) => dir.clone(),
        None => page_dir
            .parent()
            .unwrap_or(Path::new("."))
            .join("bindings/wasm/pkg"),
    };
    WebDemo::new(page_dir, pkg_dir).map_err(|e| e.to_string())
}

fn find_page_dir() -> Option<PathBuf> {
    let is_page = |dir: &Path| dir.join("index.html").is_file();
    let here = PathBuf::from("web-demo");
    if is_page(&here) {
        return Some(here);
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .map(|dir| dir.join("web-demo"))
        .find(|dir| is_page(dir))
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["serve"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).expect("valid flags").serve
    }

    fn config(args: &ServeArgs) -> ServerConfig {
        ServerConfig {
            admin: admin_access(args).expect("admin"),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn the_admin_api_opens_only_when_asked() {
        assert_eq!(admin_access(&args(&[])), Ok(AdminAccess::default()));
        assert_eq!(admin_access(&args(&["--admin"])), Ok(AdminAccess::open()));
        let with_token = admin_access(&args(&["--admin-token", "s3cret"])).expect("token");
        assert!(with_token.open);
        assert_eq!(with_token.token.as_deref(), Some("s3cret"));
        assert!(admin_access(&args(&["--admin-token", "two words"])).is_err());
        assert!(admin_access(&args(&["--admin-token", ""])).is_err());
        // Beyond loopback only with a token.
        let err = admin_access(&args(&["--addr", "0.0.0.0:8080", "--admin"])).expect_err("refused");
        assert!(err.contains("--admin-token"), "{err}");
        assert!(admin_access(&args(&["--addr", "0.0.0.0:8080", "--admin-token", "t"])).is_ok());
        assert!(admin_access(&args(&["--addr", "[::1]:8080", "--admin"])).is_ok());
    }

    #[test]
    fn listening_beyond_loopback_says_what_is_exposed() {
        let local = args(&["--addr", "127.0.0.1:8080", "--admin"]);
        assert_eq!(exposure_warning(&local, &config(&local)), None);
        let everywhere = args(&["--addr", "0.0.0.0:8080", "--allow-host", "box.lan"]);
        let text = exposure_warning(&everywhere, &config(&everywhere)).expect("a warning");
        for part in [
            "0.0.0.0:8080",
            "create uploads",
            "delete",
            "--allow-host (box.lan)",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(!text.contains("admin API"), "{text}");
        let admin = args(&["--addr", "192.0.2.7:8080", "--admin-token", "t"]);
        let text = exposure_warning(&admin, &config(&admin)).expect("a warning");
        assert!(
            text.contains("admin API") && text.contains("token"),
            "{text}"
        );
        assert!(text.contains("none yet"), "{text}");
    }

    #[test]
    fn limits_have_flags_and_defaults() {
        let defaults = args(&[]);
        let lib = ServerConfig::default();
        assert_eq!(defaults.max_size, lib.max_size);
        assert_eq!(defaults.max_total_size, lib.max_total_size);
        assert_eq!(defaults.max_unfinished, lib.max_unfinished);
        assert_eq!(defaults.min_free_disk, lib.min_free_disk);
        assert_eq!(defaults.max_metadata_size as usize, lib.max_metadata_size);
        assert_eq!(defaults.max_header_size as usize, lib.max_header_size);
        let set = args(&[
            "--max-total-size",
            "1MiB",
            "--max-unfinished",
            "3",
            "--min-free-disk",
            "0",
            "--max-metadata-size",
            "1KiB",
            "--max-header-size",
            "16KiB",
        ]);
        assert_eq!(
            (set.max_total_size, set.max_unfinished, set.min_free_disk),
            (1 << 20, 3, 0)
        );
        assert_eq!(
            (set.max_metadata_size, set.max_header_size),
            (1 << 10, 16 << 10)
        );
        let parsed = Cli::try_parse_from(["serve", "--max-unfinished", "0"]);
        assert!(parsed.is_err(), "no uploads at all is not a limit");
    }

    #[test]
    fn page_origins_are_loopback_names() {
        assert_eq!(
            page_origins("0.0.0.0:8081".parse().expect("addr")),
            ["http://127.0.0.1:8081", "http://localhost:8081"]
        );
        assert_eq!(
            page_origins("[::1]:8081".parse().expect("addr")),
            ["http://[::1]:8081", "http://localhost:8081"]
        );
    }
}
