//! Runs an upload's future on the caller's executor (a Kotlin coroutine, a
//! Swift task, asyncio), not as a task of the bindings.
//!
//! The foreign side polls [`OnCallerExecutor`]; each poll enters the
//! bindings' tokio runtime so that reqwest and tokio's timers find their
//! reactor (its worker threads only run the IO driver, timers and reqwest's
//! connection tasks, none of which holds a foreign object). Consequences:
//!
//! - Every listener, store and transport call happens inside a poll, on the
//!   thread that polls.
//! - Cancelling the foreign call (a cancelled coroutine or task, an asyncio
//!   timeout, Ctrl-C) makes UniFFI drop this future on the caller's thread:
//!   the upload ends there and then, and every foreign object it held is
//!   released before the cancelled call returns. A dropped upload sends
//!   nothing more, so it is a *stop*: the upload stays on the server and in
//!   the resume store.
//!
//! One kind of call still comes from a runtime thread: a *wake* (a socket
//! became readable, a timer fired), which UniFFI forwards to the foreign
//! continuation callback. Wakes pass through a [`Fence`]: when the future is
//! dropped the fence closes, waits for any wake already on its way to the
//! foreign side, and lets none through afterwards. So once the foreign call
//! has returned, no thread of the bindings calls into the foreign runtime —
//! which is what an interpreter that is shutting down needs (a Rust thread
//! entering a finalizing Python is killed mid-call, and the process aborts).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};

use tokio::runtime::Runtime;

/// `inner`, polled by whoever polls this, inside `runtime`'s context.
pub(crate) struct OnCallerExecutor<F> {
    inner: Option<Pin<Box<F>>>,
    fence: Arc<Fence>,
    runtime: &'static Runtime,
}

impl<F: Future> OnCallerExecutor<F> {
    pub(crate) fn new(runtime: &'static Runtime, inner: F) -> Self {
        OnCallerExecutor {
            inner: Some(Box::pin(inner)),
            fence: Arc::new(Fence::default()),
            runtime,
        }
    }
}

impl<F: Future> Future for OnCallerExecutor<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            // Never polled again after it was ready (UniFFI drops it then).
            return Poll::Pending;
        };
        this.fence.forward_to(cx.waker());
        let _context = this.runtime.enter();
        let waker = Waker::from(this.fence.clone());
        let outcome = inner.as_mut().poll(&mut Context::from_waker(&waker));
        if outcome.is_ready() {
            // Release the upload (and the foreign objects it holds) now, on
            // this thread, rather than whenever the foreign side frees us.
            this.close();
        }
        outcome
    }
}

impl<F> OnCallerExecutor<F> {
    fn close(&mut self) {
        self.fence.close();
        let _context = self.runtime.enter();
        self.inner = None;
    }
}

impl<F> Drop for OnCallerExecutor<F> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Forwards wakes to the foreign continuation until closed.
#[derive(Default)]
struct Fence {
    state: Mutex<FenceState>,
    settled: Condvar,
}

#[derive(Default)]
struct FenceState {
    closed: bool,
    /// The waker of the latest poll (UniFFI's, which calls the foreign
    /// continuation).
    target: Option<Waker>,
    /// Threads forwarding a wake right now.
    delivering: Vec<ThreadId>,
}

impl Fence {
    fn lock(&self) -> MutexGuard<'_, FenceState> {
        // The state stays consistent whatever panicked while it was held.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forward_to(&self, waker: &Waker) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        match &state.target {
            Some(target) if target.will_wake(waker) => {}
            _ => state.target = Some(waker.clone()),
        }
    }

    /// No wake reaches the foreign side once this returns. Waits for wakes
    /// being delivered by other threads (a foreign continuation callback
    /// only schedules work: it never waits for the thread dropping us). A
    /// delivery by this very thread — a foreign executor that resumed the
    /// caller inside the callback — is not waited for, which would deadlock.
    fn close(&self) {
        let me = thread::current().id();
        let mut state = self.lock();
        state.closed = true;
        let target = state.target.take();
        while state.delivering.iter().any(|&id| id != me) {
            state = self
                .settled
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(state);
        drop(target);
    }
}

impl Wake for Fence {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let me = thread::current().id();
        let target = {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            let Some(target) = state.target.clone() else {
                return;
            };
            state.delivering.push(me);
            target
        };
        // Unregisters this delivery even if the wake unwinds.
        let _delivered = Delivered {
            fence: self,
            thread: me,
        };
        target.wake();
    }
}

struct Delivered<'a> {
    fence: &'a Fence,
    thread: ThreadId,
}

impl Drop for Delivered<'_> {
    fn drop(&mut self) {
        let mut state = self.fence.lock();
        if let Some(at) = state.delivering.iter().position(|&id| id == self.thread) {
            state.delivering.swap_remove(at);
        }
        drop(state);
        self.fence.settled.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    fn runtime() -> &'static Runtime {
        crate::runtime().expect("runtime")
    }

    /// A waker that counts wakes and can be made slow (a foreign runtime
    /// busy taking its lock).
    struct Foreign {
        wakes: AtomicUsize,
        entered: Mutex<Option<mpsc::Sender<()>>>,
        release: Mutex<Option<mpsc::Receiver<()>>>,
    }

    impl Wake for Foreign {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            if let Some(entered) = self.entered.lock().unwrap().take() {
                entered.send(()).unwrap();
                let release = self.release.lock().unwrap().take().unwrap();
                release.recv().unwrap();
            }
            self.wakes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// For a slow foreign side: learn that a wake entered it, then let it go on.
    type Gate = (mpsc::Receiver<()>, mpsc::Sender<()>);

    fn foreign(slow: bool) -> (Arc<Foreign>, Option<Gate>) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let foreign = Arc::new(Foreign {
            wakes: AtomicUsize::new(0),
            entered: Mutex::new(slow.then_some(entered_tx)),
            release: Mutex::new(slow.then_some(release_rx)),
        });
        (foreign, slow.then_some((entered_rx, release_tx)))
    }

    /// A pending future that hands out the waker it was polled with.
    fn pending_with_waker(tx: mpsc::Sender<Waker>) -> impl Future<Output = ()> {
        std::future::poll_fn(move |cx| {
            let _ = tx.send(cx.waker().clone());
            Poll::Pending
        })
    }

    #[test]
    fn polls_inside_the_runtime_on_the_calling_thread() {
        let caller = thread::current().id();
        let mut future = std::pin::pin!(OnCallerExecutor::new(runtime(), async move {
            assert_eq!(thread::current().id(), caller);
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(thread::current().id(), caller);
            7
        }));
        let (foreign, _) = foreign(false);
        let waker = Waker::from(foreign.clone());
        let mut cx = Context::from_waker(&waker);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let value = loop {
            if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                break value;
            }
            assert!(std::time::Instant::now() < deadline, "never woke");
            thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(value, 7);
        assert!(
            foreign.wakes.load(Ordering::SeqCst) >= 1,
            "the timer woke no one"
        );
    }

    #[test]
    fn no_wake_reaches_the_foreign_side_after_drop() {
        let (tx, rx) = mpsc::channel();
        let mut future = Box::pin(OnCallerExecutor::new(runtime(), pending_with_waker(tx)));
        let (foreign, _) = foreign(false);
        let waker = Waker::from(foreign.clone());
        assert!(
            future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let inner_waker = rx.recv().unwrap();
        inner_waker.wake_by_ref();
        assert_eq!(foreign.wakes.load(Ordering::SeqCst), 1);
        drop(future);
        inner_waker.wake_by_ref();
        inner_waker.wake();
        assert_eq!(
            foreign.wakes.load(Ordering::SeqCst),
            1,
            "a wake crossed after drop"
        );
    }

    #[test]
    fn drop_waits_for_a_wake_on_its_way() {
        let (tx, rx) = mpsc::channel();
        let mut future = Box::pin(OnCallerExecutor::new(runtime(), pending_with_waker(tx)));
        let (foreign, handles) = foreign(true);
        let (entered, release) = handles.unwrap();
        let waker = Waker::from(foreign.clone());
        assert!(
            future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let inner_waker = rx.recv().unwrap();
        // Another thread starts delivering a wake and is held inside the
        // foreign callback.
        let waking = thread::spawn(move || inner_waker.wake());
        entered.recv().unwrap();
        let (dropped_tx, dropped_rx) = mpsc::channel();
        let dropping = thread::spawn(move || {
            drop(future);
            dropped_tx
                .send(foreign.wakes.load(Ordering::SeqCst))
                .unwrap();
        });
        assert!(
            dropped_rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "drop returned while a wake was still on its way"
        );
        release.send(()).unwrap();
        let wakes_when_dropped = dropped_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            wakes_when_dropped, 1,
            "drop returned before the wake finished"
        );
        waking.join().unwrap();
        dropping.join().unwrap();
    }

    #[test]
    fn a_wake_that_drops_the_future_on_its_own_thread_does_not_deadlock() {
        // A foreign executor may resume the caller inside the continuation
        // callback (Kotlin's Dispatchers.Unconfined): the drop then happens
        // within the delivery, on the same thread.
        let (tx, rx) = mpsc::channel();
        type Slot<T> = Arc<Mutex<Option<T>>>;
        struct DropsOnWake<T>(Slot<T>);
        impl<T: Send> Wake for DropsOnWake<T> {
            fn wake(self: Arc<Self>) {
                drop(self.0.lock().unwrap().take());
            }
        }
        let mut future = Box::pin(OnCallerExecutor::new(runtime(), pending_with_waker(tx)));
        let slot: Slot<_> = Arc::new(Mutex::new(None));
        let waker = Waker::from(Arc::new(DropsOnWake(slot.clone())));
        assert!(
            future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        *slot.lock().unwrap() = Some(future);
        let inner_waker = rx.recv().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        thread::spawn(move || {
            inner_waker.wake();
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("deadlocked");
        assert!(slot.lock().unwrap().is_none());
    }
}
