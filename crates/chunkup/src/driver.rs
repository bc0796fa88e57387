//! The IO loop around the engine: perform what it asks, feed back what
//! happened, sleep when it says so. No decisions are made here.

use std::future::Future;
use std::pin::Pin;

use chunkup_core::{
    Event, Input, Instant, Output, RequestId, RequestSpec, Response, TransportError,
    TransportErrorKind, Upload,
};
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

use crate::Error;
use crate::source::{BodyStream, Source, counted};
use crate::transport::Transport;

type Pending<'a> = Pin<Box<dyn Future<Output = Result<Response, TransportError>> + Send + 'a>>;

/// Runs `upload` to its end. Returns the upload URL on completion.
pub(crate) async fn drive<T: Transport, S: Source>(
    upload: &mut Upload,
    transport: &T,
    source: &S,
    mut control: Option<mpsc::UnboundedReceiver<Input>>,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<String, Error> {
    let origin = tokio::time::Instant::now();
    let now = || Instant::from_elapsed(origin.elapsed());
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<(RequestId, u64)>();
    let mut in_flight: Option<(RequestId, Pending<'_>)> = None;
    let mut outcome: Option<Result<String, Error>> = None;

    loop {
        match upload.poll_output(now()) {
            Output::Send(spec) => {
                let id = spec.id;
                let tx = sent_tx.clone();
                let report = move |bytes| {
                    let _ = tx.send((id, bytes));
                };
                let request = async move {
                    let (spec, body) = prepare_body(spec, source).await?;
                    let body = body.map(|b| Box::pin(counted(b, report)) as BodyStream);
                    transport.send(spec, body).await
                };
                in_flight = Some((id, Box::pin(request)));
            }
            Output::Abort(id) => {
                if in_flight
                    .as_ref()
                    .is_some_and(|(current, _)| *current == id)
                {
                    in_flight = None;
                }
            }
            Output::Event(event) => {
                match &event {
                    Event::Completed { upload_url } => outcome = Some(Ok(upload_url.clone())),
                    Event::Failed(error) => outcome = Some(Err(error.clone().into())),
                    Event::Cancelled => outcome = Some(Err(Error::Cancelled)),
                    _ => {}
                }
                on_event(&event);
            }
            Output::Wait(until) => {
                let sleep = until.map(|at| origin + at.elapsed_since_origin());
                tokio::select! {
                    result = async {
                        match in_flight.as_mut() {
                            Some((_, pending)) => pending.await,
                            None => std::future::pending().await,
                        }
                    } => {
                        let Some((id, _)) = in_flight.take() else { continue };
                        let input = match result {
                            Ok(response) => Input::Response { id, response },
                            Err(error) => {
                                // A source at fault is not the network's: retrying
                                // cannot help, and must not upload a changed file.
                                if let Some(failure) = source.take_failure() {
                                    return Err(failure);
                                }
                                Input::TransportFailed { id, error }
                            }
                        };
                        upload.handle_input(now(), input);
                    }
                    Some((id, bytes)) = sent_rx.recv() => {
                        // Only the newest count matters.
                        let mut latest = (id, bytes);
                        while let Ok(next) = sent_rx.try_recv() {
                            latest = next;
                        }
                        upload.handle_input(now(), Input::BodySent { id: latest.0, bytes: latest.1 });
                    }
                    command = async {
                        match control.as_mut() {
                            Some(rx) => rx.recv().await,
                            None => std::future::pending().await,
                        }
                    } => match command {
                        Some(input) => upload.handle_input(now(), input),
                        None => control = None,
                    },
                    () = async {
                        match sleep {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
            }
            Output::Done => {
                return outcome.unwrap_or_else(|| {
                    Err(Error::Upload(chunkup_core::Error::InvalidConfig(
                        "the upload ended without an outcome".into(),
                    )))
                });
            }
        }
    }
}

/// The body for a request. When the engine asked for a checksum, the
/// `Upload-Checksum` header must precede the body (no server we meet takes
/// it as a trailer: tusd 2.9.1 has no checksum extension at all, chunkup's
/// server and the tus spec's base want the header), so the range is read
/// twice: once to hash it, piece by piece, once to send it. Memory stays a
/// few read blocks whatever the chunk size, and the second read comes from
/// the page cache.
async fn prepare_body<S: Source>(
    mut spec: RequestSpec,
    source: &S,
) -> Result<(RequestSpec, Option<BodyStream>), TransportError> {
    let Some(range) = spec.body else {
        return Ok((spec, None));
    };
    if let Some(algorithm) = spec.checksum {
        let mut hasher = algorithm.hasher();
        let mut pass = source.stream(range);
        while let Some(piece) = pass
            .try_next()
            .await
            .map_err(|e| TransportError::new(TransportErrorKind::Body, e.to_string()))?
        {
            hasher.update(&piece);
        }
        spec.headers
            .push(("Upload-Checksum".into(), hasher.header_value()));
    }
    Ok((spec, Some(source.stream(range))))
}
