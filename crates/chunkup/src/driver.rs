//! The IO loop around a session: perform what it asks (requests, store
//! reads and writes, the application's hooks), feed back what happened,
//! sleep when it says so. No decisions are made here.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use chunkup_core::session::{Outcome, SessionInput, SessionOutput};
use chunkup_core::{
    Event, Instant, RequestId, RequestSpec, Response, Session, TransportError, TransportErrorKind,
};
use futures_util::future::{AbortHandle, Abortable};
use futures_util::stream::FuturesUnordered;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use crate::Error;
use crate::hooks::{HookFuture, Hooks, RetryQuestion};
use crate::source::{BodyStream, Source, counted};
use crate::store::ResumeStore;
use crate::transport::Transport;

type Pending<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// A request's outcome, or `None` when it was aborted.
type Answer = (RequestId, Option<Result<Sent, TransportError>>);

/// What became of a request that was not aborted.
enum Sent {
    /// The server answered.
    Answered(Response),
    /// Preparing its body, the source (a stream) was found to end at this
    /// byte: the request was not sent.
    SourceEnded(u64),
}

/// What the driver performs requests with.
pub(crate) struct Io<'a, T, S> {
    pub transport: &'a T,
    pub source: &'a S,
    pub store: Option<&'a dyn ResumeStore>,
    pub hooks: &'a Hooks,
    /// The options' headers (a header provider may replace them).
    pub user_headers: &'a [(String, String)],
}

/// Runs `session` to its end. An error is returned only when the source
/// itself failed (retrying cannot help, and must not upload a changed file);
/// every other ending is the session's [`Outcome`].
pub(crate) async fn drive<T: Transport, S: Source>(
    session: &mut Session,
    io: Io<'_, T, S>,
    mut control: Option<mpsc::UnboundedReceiver<SessionInput>>,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<Outcome, Error> {
    let Io {
        transport,
        source,
        store,
        hooks,
        user_headers,
    } = io;
    let origin = tokio::time::Instant::now();
    let now = || Instant::from_elapsed(origin.elapsed());
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<(RequestId, u64)>();
    let mut in_flight: FuturesUnordered<Pending<'_>> = FuturesUnordered::new();
    let mut aborts: HashMap<RequestId, AbortHandle> = HashMap::new();
    let mut questions: FuturesUnordered<HookFuture<'_, (u64, bool)>> = FuturesUnordered::new();

    loop {
        match session.poll_output(now()) {
            SessionOutput::Send(spec) => {
                let id = spec.id;
                let tx = sent_tx.clone();
                let report = move |bytes| {
                    let _ = tx.send((id, bytes));
                };
                let request = async move {
                    // Signed and given fresh headers right before it goes,
                    // so a retry is signed again.
                    let spec = hooks.prepare(spec, user_headers).await?;
                    if let Some(range) = spec.body {
                        let filled = source.fill(range).await.map_err(|e| {
                            TransportError::new(TransportErrorKind::Body, e.to_string())
                        })?;
                        if let Some(at) = filled {
                            return Ok(Sent::SourceEnded(at));
                        }
                    }
                    let (spec, body) = prepare_body(spec, source).await?;
                    let body = body.map(|b| Box::pin(counted(b, report)) as BodyStream);
                    transport.send(spec, body).await.map(Sent::Answered)
                };
                let (handle, registration) = AbortHandle::new_pair();
                aborts.insert(id, handle);
                in_flight.push(Box::pin(async move {
                    (id, Abortable::new(request, registration).await.ok())
                }));
            }
            SessionOutput::Abort(id) => {
                if let Some(handle) = aborts.remove(&id) {
                    handle.abort();
                }
            }
            SessionOutput::Load(key) => {
                let record = match store.map(|s| s.load(&key)).transpose() {
                    Ok(record) => record.flatten(),
                    Err(error) => {
                        store_failed(session, now(), &error);
                        None
                    }
                };
                session.handle_input(now(), SessionInput::Loaded { key, record });
            }
            SessionOutput::Persist(record) => {
                if let Some(Err(error)) = store.map(|s| s.save(&record)) {
                    store_failed(session, now(), &error);
                }
            }
            SessionOutput::Forget(key) => {
                if let Some(Err(error)) = store.map(|s| s.remove(&key)) {
                    store_failed(session, now(), &error);
                }
            }
            SessionOutput::Event(event) => on_event(&event),
            SessionOutput::AskRetry {
                question,
                attempt,
                reason,
            } => match &hooks.retry {
                // Asked without holding up the other parts of the upload.
                Some(decision) => {
                    let asked = decision.should_retry(RetryQuestion::from((attempt, &reason)));
                    questions.push(Box::pin(async move { (question, asked.await) }));
                }
                None => session.handle_input(
                    now(),
                    SessionInput::RetryAnswer {
                        question,
                        retry: true,
                    },
                ),
            },
            SessionOutput::Done(outcome) => return Ok(outcome),
            SessionOutput::Wait(until) => {
                let sleep = until.map(|at| origin + at.elapsed_since_origin());
                tokio::select! {
                    Some((id, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                        aborts.remove(&id);
                        let Some(result) = answer else { continue };
                        let input = match result {
                            Ok(Sent::Answered(response)) => SessionInput::Response { id, response },
                            Ok(Sent::SourceEnded(at)) => SessionInput::SourceEnded { id, at },
                            Err(error) => {
                                if let Some(failure) = source.take_failure() {
                                    return Err(failure);
                                }
                                SessionInput::TransportFailed { id, error }
                            }
                        };
                        session.handle_input(now(), input);
                    }
                    Some((question, retry)) = questions.next(), if !questions.is_empty() => {
                        session.handle_input(now(), SessionInput::RetryAnswer { question, retry });
                    }
                    Some((id, bytes)) = sent_rx.recv() => {
                        // Only the newest count of each request matters.
                        let mut latest = HashMap::from([(id, bytes)]);
                        while let Ok((id, bytes)) = sent_rx.try_recv() {
                            latest.insert(id, bytes);
                        }
                        for (id, bytes) in latest {
                            session.handle_input(now(), SessionInput::BodySent { id, bytes });
                        }
                    }
                    command = async {
                        match control.as_mut() {
                            Some(rx) => rx.recv().await,
                            None => std::future::pending().await,
                        }
                    } => match command {
                        Some(input) => session.handle_input(now(), input),
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
        }
    }
}

/// A store that fails costs the resume, never the upload: the session
/// reports it as an event.
fn store_failed(session: &mut Session, now: Instant, error: &Error) {
    tracing::warn!(%error, "the resume store failed; this upload may not be resumable later");
    let message = error.to_string();
    session.handle_input(now, SessionInput::StoreFailed { message });
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
