//! The IO loop around the engine: perform what it asks, feed back what
//! happened, sleep when it says so. No decisions are made here.

use std::future::Future;
use std::pin::Pin;

use chunkup_core::{Event, Input, Instant, Output, RequestId, Response, TransportError, Upload};
use tokio::sync::mpsc;

use crate::Error;
use crate::source::{Source, counted};
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
                let body = spec.body.map(|range| {
                    let tx = sent_tx.clone();
                    let stream = counted(source.stream(range), move |bytes| {
                        let _ = tx.send((id, bytes));
                    });
                    Box::pin(stream) as crate::source::BodyStream
                });
                in_flight = Some((id, Box::pin(transport.send(spec, body))));
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
