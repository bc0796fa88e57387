//! `chunkup`: resumable uploads from the command line, the reference server,
//! and a demo that shows both surviving faults.

mod bulk;
mod demo;
mod link;
mod report;
mod serve;
mod single;
mod size;
mod status;
mod throttle;
mod upload;
mod uploads;
mod view;
mod walk;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Resumable uploads that survive broken links.
#[derive(Debug, Parser)]
#[command(name = "chunkup", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload files, directories or globs as one resumable batch (a re-run
    /// skips finished files and resumes the others).
    Upload(upload::UploadArgs),
    /// Run the reference server (all protocols, fault injection).
    Serve(serve::ServeArgs),
    /// Start an embedded server with faults on and upload a test file to it.
    Demo(demo::DemoArgs),
    /// List batches and uploads that can be resumed.
    Status(status::StatusArgs),
    /// List or forget remembered uploads (`uploads list`, `uploads forget KEY`).
    Uploads(uploads::UploadsArgs),
    /// Emulate a bad network link (bandwidth, latency, resets, stalls) in
    /// front of a server on loopback.
    Link(link::LinkArgs),
}

/// Exit codes: 0 success, 1 an upload failed, 2 bad arguments, 130 interrupted.
pub(crate) mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const INTERRUPTED: u8 = 130;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tears its servers down on purpose; their warnings about it
    // would only clutter the result.
    let default_level = match cli.command {
        Command::Demo(_) => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHUNKUP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chunkup: cannot start the async runtime: {error}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Upload(args) => upload::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Status(args) => status::status(args),
            Command::Uploads(args) => uploads::run(args),
            Command::Link(args) => link::run(args).await,
        }
    });
    ExitCode::from(code)
}
