//! `chunkup upload -` (standard input, length learned at its end) and
//! `chunkup upload FILE --upload-url URL` (continue a known upload): one
//! upload, outside of any batch.

use std::path::PathBuf;

use chunkup::{Client, FileResumeStore, Hooks, UploadOptions};

use crate::exit;
use crate::report::{FileReporter, Output};

/// What one upload sends.
#[derive(Debug)]
pub(crate) enum Input {
    /// Standard input, read once.
    Stdin,
    /// A file.
    File(PathBuf),
}

/// One upload and how it is shown.
#[derive(Debug)]
pub(crate) struct Single {
    pub(crate) input: Input,
    pub(crate) endpoint: Option<String>,
    pub(crate) options: UploadOptions,
    pub(crate) hooks: Hooks,
    pub(crate) json: bool,
    /// The resume store (none with `--no-resume`).
    pub(crate) store: Option<FileResumeStore>,
}

pub(crate) async fn run(single: Single) -> u8 {
    let mut client = match Client::new() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("chunkup: {error}");
            return exit::FAILED;
        }
    };
    if let Some(store) = single.store {
        client = client.with_resume_store(store);
    }
    let output = Output::new(single.json);
    let (shown, size) = match &single.input {
        Input::Stdin => ("stdin".to_string(), 0),
        Input::File(path) => (
            path.display().to_string(),
            std::fs::metadata(path).map_or(0, |m| m.len()),
        ),
    };
    let reporter = FileReporter::new(&output, &shown, size);
    let mut request = client
        .upload(single.options)
        .hooks(single.hooks)
        .on_event(|event| reporter.on_event(event));
    if let Some(endpoint) = single.endpoint {
        request = request.to(endpoint);
    }
    let upload = async {
        match &single.input {
            Input::Stdin => request.stream(tokio::io::stdin(), "stdin").await,
            Input::File(path) => request.file(path).await,
        }
    };
    // Ctrl-C drops the upload: a stop, never a removal.
    let result = tokio::select! {
        result = upload => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: the upload is kept on the server");
            return exit::INTERRUPTED;
        }
    };
    reporter.finish(&result);
    match result {
        Ok(_) => 0,
        Err(_) => exit::FAILED,
    }
}
