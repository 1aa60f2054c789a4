//! Driving a `ManualClock` in step with the app: `Pacer` moves the clock a step at a time and, between steps,
//! waits on what the step caused (each named target's scheduled check of the new instant, on the event bus;
//! the writer's queue drained into rows) instead of sleeping, so a loaded machine cannot let the clock run
//! ahead of the probes, and an idle one does not wait for nothing. `dispatcher_settled` is the barrier before
//! asserting that alert delivery sent nothing more.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use hale::alerts::Dispatcher;
use hale::clock::{Clock, ManualClock};
use hale::events::{Event, Subscription};
use hale::records::CheckSource;
use hale::store::writer::CheckWriter;
use tokio::time::Instant;

use super::app::TestApp;
use super::DEADLINE;

/// Moves a `ManualClock` in steps (1 s unless told), settling after each one.
pub struct Pacer {
    clock: ManualClock,
    step: Duration,
    /// Subscribed before the clock first moves, so no check is missed.
    events: Option<Subscription>,
    /// Targets whose scheduled check of each new instant must have finished before the next step.
    targets: Vec<String>,
    /// The app's writer: each step waits until every queued row is written.
    writer: Option<CheckWriter>,
}

impl Pacer {
    /// A pacer for code that runs on `clock` without an app (a dispatcher, a supervisor): between steps it
    /// lets every task the step woke run.
    pub fn new(clock: &ManualClock) -> Self {
        Self {
            clock: clock.clone(),
            step: Duration::from_secs(1),
            events: None,
            targets: Vec::new(),
            writer: None,
        }
    }

    /// A pacer for an app on `clock`: between steps it also waits until the app's writer has written every
    /// row queued so far.
    pub fn for_app(app: &TestApp, clock: &ManualClock) -> Self {
        Self {
            events: Some(app.events("test-pacer")),
            writer: Some(app.core().writer.clone()),
            ..Self::new(clock)
        }
    }

    /// Between steps, also waits for the scheduled check of each of `targets` at the new instant (the app's
    /// probes take real time; the clock must not run ahead of them).
    pub fn checks_of(mut self, targets: &[&str]) -> Self {
        assert!(
            self.events.is_some(),
            "a pacer follows checks only with an app (Pacer::for_app)"
        );
        self.targets = targets.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// Moves the clock by `step` at a time (instead of 1 s).
    pub fn step(mut self, step: Duration) -> Self {
        assert!(!step.is_zero(), "a pacer's step must be longer than zero");
        self.step = step;
        self
    }

    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Moves the clock forward by `by`, one step at a time (the last one shorter if need be).
    pub async fn advance(&mut self, by: Duration) {
        let mut left = by;
        while !left.is_zero() {
            let step = left.min(self.step);
            self.clock.advance(step);
            left -= step;
            self.settle().await;
        }
    }

    /// `advance` by whole seconds.
    pub async fn advance_s(&mut self, seconds: u64) {
        self.advance(Duration::from_secs(seconds)).await;
    }

    /// Moves the clock a step at a time until `probe` answers true, at most `limit` of clock time. What a
    /// check leads to besides its row (an alert, a heal) is written a moment after it in real time, so the
    /// probe is asked a few times over some real milliseconds before each step.
    pub async fn advance_until<F, Fut>(&mut self, what: &str, limit: Duration, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = self.clock.now();
        let limit_at = start + limit;
        loop {
            for _ in 0..5 {
                if probe().await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                self.clock.now() < limit_at,
                "{what}: not within {limit:?} on the test clock (from {start})"
            );
            let step = self.step;
            self.advance(step).await;
        }
    }

    /// What each step waits for: the tasks it woke, each named target's check of the new instant, the rows.
    async fn settle(&mut self) {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        if !self.targets.is_empty() {
            self.wait_for_checks().await;
        }
        if let Some(writer) = &self.writer {
            let deadline = Instant::now() + DEADLINE;
            while writer.queued() > 0 {
                assert!(
                    Instant::now() < deadline,
                    "the writer still holds {} rows after {DEADLINE:?}",
                    writer.queued()
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    async fn wait_for_checks(&mut self) {
        let now = self.clock.now();
        let mut waiting: HashSet<&str> = self.targets.iter().map(String::as_str).collect();
        let events = self.events.as_mut().expect("checks_of needs events");
        let checked = tokio::time::timeout(DEADLINE, async {
            while !waiting.is_empty() {
                let Some(event) = events.recv().await else {
                    return;
                };
                if let Event::CheckFinished(check) = event.as_ref() {
                    if check.source == CheckSource::Monitor && check.at >= now {
                        waiting.remove(check.target.as_ref());
                    }
                }
            }
        })
        .await;
        assert!(
            checked.is_ok() && waiting.is_empty(),
            "no scheduled check of {waiting:?} at {now} within {DEADLINE:?}"
        );
    }
}

/// Waits until `dispatcher` has nothing to do at `clock`'s instant: every notice sent so far taken, no
/// attempt in flight, nothing due until a later instant (see `Progress::idle_at`). A test asserts that nothing
/// more was sent only after it, instead of sleeping and hoping the dispatcher had its turn.
pub async fn dispatcher_settled(dispatcher: &Dispatcher, clock: &ManualClock) {
    let now = clock.now();
    let mut progress = dispatcher.progress();
    let settled = tokio::time::timeout(DEADLINE, progress.wait_for(|p| p.idle_at(now)))
        .await
        .map(|waited| waited.is_ok());
    let last = *progress.borrow();
    assert!(
        settled == Ok(true),
        "the dispatcher is not idle at {now} after {DEADLINE:?}: {last:?}"
    );
}
