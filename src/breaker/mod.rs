//! Circuit breaker: a pure state machine (`Breaker`, no I/O, time passed in) and a thread-safe wrapper (`SharedBreaker`).
//!
//! States and rules:
//! - **Closed** admits every call. A failure adds one to `consecutive_failures`, a success resets it to 0; when it
//!   reaches `failure_threshold` the breaker opens with `retry_at = now + open_timeout`.
//! - **Open** rejects every on-demand call with its `retry_at` until `now >= retry_at`; the first admission
//!   attempt at or after `retry_at` moves it to half-open and admits that call as the trial.
//! - **HalfOpen** admits one trial at a time and rejects the rest. `success_threshold` trial successes close it
//!   (counters reset); one trial failure reopens it with a fresh `retry_at`. An abandoned trial (`abandon()`)
//!   frees the slot without counting either way.
//!
//! Those rules are for on-demand calls (`admit`). A scheduled call (`admit_scheduled`: the owner's own check at
//! its fixed cadence, which bounds its rate) is never rejected, in any state; while the breaker is not Closed it
//! is a trial:
//! - in **Open** it leaves the state as it is while in flight. Its success is the first trial success: the
//!   breaker moves to HalfOpen, or straight to Closed when `success_threshold` is 1 (reason
//!   `scheduled_check_succeeded`). Its failure keeps the breaker Open, without a transition, and moves
//!   `retry_at` to `now + open_timeout`: a target the schedule just saw fail gets no on-demand trial;
//! - in **HalfOpen** it counts like any trial, and is admitted even while another trial is in flight.
//!
//! While a scheduled trial is in flight in Open, on-demand calls are rejected even past `retry_at`.
//!
//! Late results (a call admitted in an older state) never corrupt the machine:
//! - while Open or HalfOpen, a result only counts when a trial is in flight; so while Open with no scheduled
//!   trial in flight, successes and failures are ignored (a late failure does not extend `retry_at`, a late
//!   success does not close it). The core cannot tell the trial's report from a late one; `SharedBreaker`'s
//!   `Permit` can, and drops any report or abandon made after the breaker changed state since the permit was
//!   granted.
//!
//! Thresholds of 0 behave like 1. Every state change returns a `Transition`; the caller logs, counts and persists it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::{add_saturating, Clock};

/// The three breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "closed")]
pub enum BreakerState {
    /// Every call admitted.
    Closed,
    /// Every call rejected until `retry_at`.
    Open,
    /// One trial call at a time.
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half_open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// Value for a state gauge: closed 0, half-open 1, open 2.
    pub fn gauge_value(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    /// The inverse of `as_str`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "closed" => Some(Self::Closed),
            "open" => Some(Self::Open),
            "half_open" => Some(Self::HalfOpen),
            _ => None,
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionReason {
    /// Closed -> Open: `failure_threshold` consecutive failures.
    FailureThreshold,
    /// Open -> HalfOpen: a call arrived at or after `retry_at`.
    OpenTimeoutElapsed,
    /// HalfOpen -> Closed: `success_threshold` trial successes.
    TrialSucceeded,
    /// HalfOpen -> Open: a trial failed.
    TrialFailed,
    /// Open -> HalfOpen at restore: the persisted `retry_at` had passed while the process was down.
    Restored,
    /// Open -> HalfOpen (or Closed when `success_threshold` is 1): a scheduled check made while open succeeded.
    ScheduledCheckSucceeded,
}

impl TransitionReason {
    /// Snake-case name, e.g. `"failure_threshold"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailureThreshold => "failure_threshold",
            Self::OpenTimeoutElapsed => "open_timeout_elapsed",
            Self::TrialSucceeded => "trial_succeeded",
            Self::TrialFailed => "trial_failed",
            Self::Restored => "restored",
            Self::ScheduledCheckSucceeded => "scheduled_check_succeeded",
        }
    }
}

impl std::fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state change. `retry_at` is set when `to` is `Open`, `None` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// State before the change.
    pub from: BreakerState,
    /// State after the change.
    pub to: BreakerState,
    /// When it changed.
    pub at: DateTime<Utc>,
    /// When an Open breaker will allow a trial (`to == Open` only).
    pub retry_at: Option<DateTime<Utc>>,
    /// Why it changed.
    pub reason: TransitionReason,
}

/// Tuning for one breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures in Closed that open the breaker (default 5).
    pub failure_threshold: u32,
    /// Trial successes in HalfOpen that close the breaker (default 2).
    pub success_threshold: u32,
    /// How long the breaker stays Open before a trial is allowed (default 60 s).
    pub open_timeout: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            success_threshold: 2,
            open_timeout: Duration::from_secs(60),
        }
    }
}

/// What `Breaker::admit` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead, then report `on_success`, `on_failure` or `abandon`.
    Admitted,
    /// Do not call. `retry_at` is when an Open breaker will allow a trial; `None` when a trial is already in
    /// flight (half-open, or a scheduled trial of an open breaker past its `retry_at`).
    Rejected { retry_at: Option<DateTime<Utc>> },
}

/// Persisted form of a breaker. `updated_at` is the instant the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    /// Failures in a row (Closed), or the run that opened the breaker plus failed trials (Open, HalfOpen).
    pub consecutive_failures: u32,
    /// Trial successes so far (HalfOpen only; 0 otherwise).
    pub consecutive_successes: u32,
    /// Some exactly when `state` is Open.
    pub retry_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// The pure circuit breaker: no I/O, no clock of its own, every method takes `now`.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    state: BreakerState,
    consecutive_failures: u32,
    consecutive_successes: u32,
    /// Some exactly while Open.
    retry_at: Option<DateTime<Utc>>,
    /// Trials admitted and not reported yet: on-demand or scheduled ones in HalfOpen, scheduled ones in Open.
    /// Always 0 in Closed.
    trials_in_flight: u32,
    /// Bumped on every state change; lets a `Permit` recognise a report from an older state.
    generation: u64,
}

impl Breaker {
    /// A closed breaker with no failures.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            consecutive_successes: 0,
            retry_at: None,
            trials_in_flight: 0,
            generation: 0,
        }
    }

    /// The current state (an Open breaker past its `retry_at` stays Open until the next `admit`).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    /// Decides whether an on-demand call may go ahead at `now`. An Open breaker whose `retry_at` has come moves
    /// to HalfOpen here (the returned transition) and admits this call as the trial, unless a scheduled trial is
    /// in flight.
    pub fn admit(&mut self, now: DateTime<Utc>) -> (Admission, Option<Transition>) {
        match self.state {
            BreakerState::Closed => (Admission::Admitted, None),
            BreakerState::Open => match self.retry_at {
                Some(retry_at) if now < retry_at => (
                    Admission::Rejected {
                        retry_at: Some(retry_at),
                    },
                    None,
                ),
                _ if self.trials_in_flight > 0 => (Admission::Rejected { retry_at: None }, None),
                _ => {
                    let transition =
                        self.enter_half_open(now, TransitionReason::OpenTimeoutElapsed);
                    self.trials_in_flight = 1;
                    (Admission::Admitted, Some(transition))
                }
            },
            BreakerState::HalfOpen if self.trials_in_flight > 0 => {
                (Admission::Rejected { retry_at: None }, None)
            }
            BreakerState::HalfOpen => {
                self.trials_in_flight = 1;
                (Admission::Admitted, None)
            }
        }
    }

    /// Admits a scheduled call: always, and without a state change. While the breaker is Open or HalfOpen the
    /// call is a trial, reported like any other with `on_success`, `on_failure` or `abandon`.
    pub fn admit_scheduled(&mut self) {
        if self.state != BreakerState::Closed {
            self.trials_in_flight = self.trials_in_flight.saturating_add(1);
        }
    }

    /// Reports a successful call. Closed: resets the failure count. HalfOpen with a trial in flight: counts a
    /// trial success and closes at `success_threshold`. Open with a scheduled trial in flight: the first trial
    /// success, so HalfOpen (or Closed at a `success_threshold` of 1). Otherwise ignored.
    pub fn on_success(&mut self, now: DateTime<Utc>) -> Option<Transition> {
        match self.state {
            BreakerState::Closed => {
                self.consecutive_failures = 0;
                None
            }
            BreakerState::Open => {
                if !self.take_trial() {
                    return None;
                }
                if self.settings.success_threshold > 1 {
                    let transition =
                        self.enter_half_open(now, TransitionReason::ScheduledCheckSucceeded);
                    self.consecutive_successes = 1;
                    return Some(transition);
                }
                Some(self.enter_closed(now, TransitionReason::ScheduledCheckSucceeded))
            }
            BreakerState::HalfOpen => {
                if !self.take_trial() {
                    return None;
                }
                self.consecutive_successes = self.consecutive_successes.saturating_add(1);
                if self.consecutive_successes < self.settings.success_threshold {
                    return None;
                }
                Some(self.enter_closed(now, TransitionReason::TrialSucceeded))
            }
        }
    }

    /// Reports a failed call. Closed: counts it and opens at `failure_threshold`. HalfOpen with a trial in
    /// flight: reopens with a fresh timeout. Open with a scheduled trial in flight: counts it and moves
    /// `retry_at` to `now + open_timeout`, without a transition. Otherwise ignored (a late failure never extends
    /// `retry_at`).
    pub fn on_failure(&mut self, now: DateTime<Utc>) -> Option<Transition> {
        match self.state {
            BreakerState::Closed => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures < self.settings.failure_threshold {
                    return None;
                }
                Some(self.enter_open(now, TransitionReason::FailureThreshold))
            }
            BreakerState::Open => {
                if self.take_trial() {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                    self.retry_at = Some(add_saturating(now, self.settings.open_timeout));
                }
                None
            }
            BreakerState::HalfOpen => {
                if !self.take_trial() {
                    return None;
                }
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                Some(self.enter_open(now, TransitionReason::TrialFailed))
            }
        }
    }

    /// The admitted call will never report (e.g. its future was cancelled): frees its trial slot without
    /// counting a success or a failure. No effect in Closed.
    pub fn abandon(&mut self) {
        self.take_trial();
    }

    /// Ends one trial in flight; false when there was none (the report is a late one).
    fn take_trial(&mut self) -> bool {
        if self.trials_in_flight == 0 {
            return false;
        }
        self.trials_in_flight -= 1;
        true
    }

    /// The persisted form; `updated_at` is `now`. A trial in flight is not recorded (it cannot survive a restart).
    pub fn snapshot(&self, now: DateTime<Utc>) -> BreakerSnapshot {
        BreakerSnapshot {
            state: self.state,
            consecutive_failures: self.consecutive_failures,
            consecutive_successes: self.consecutive_successes,
            retry_at: self.retry_at,
            updated_at: now,
        }
    }

    /// Rebuilds a breaker after a restart.
    /// - Closed comes back Closed with its failure count.
    /// - Open comes back Open with the same absolute `retry_at` (neither reset nor extended); if that instant has
    ///   passed by `now` it comes back HalfOpen instead, with a `Restored` transition. An Open snapshot without a
    ///   `retry_at` uses `updated_at + open_timeout`.
    /// - HalfOpen comes back HalfOpen with its trial successes and no trial in flight.
    pub fn restore(
        settings: BreakerSettings,
        snap: &BreakerSnapshot,
        now: DateTime<Utc>,
    ) -> (Self, Option<Transition>) {
        let mut breaker = Self::new(settings);
        breaker.consecutive_failures = snap.consecutive_failures;
        match snap.state {
            BreakerState::Closed => (breaker, None),
            BreakerState::HalfOpen => {
                breaker.state = BreakerState::HalfOpen;
                breaker.consecutive_successes = snap.consecutive_successes;
                (breaker, None)
            }
            BreakerState::Open => {
                let retry_at = snap
                    .retry_at
                    .unwrap_or_else(|| add_saturating(snap.updated_at, settings.open_timeout));
                breaker.state = BreakerState::Open;
                breaker.retry_at = Some(retry_at);
                if now < retry_at {
                    return (breaker, None);
                }
                let transition = breaker.enter_half_open(now, TransitionReason::Restored);
                (breaker, Some(transition))
            }
        }
    }

    fn enter_open(&mut self, now: DateTime<Utc>, reason: TransitionReason) -> Transition {
        let from = self.state;
        let retry_at = add_saturating(now, self.settings.open_timeout);
        self.state = BreakerState::Open;
        self.consecutive_successes = 0;
        self.retry_at = Some(retry_at);
        self.trials_in_flight = 0;
        self.generation = self.generation.wrapping_add(1);
        Transition {
            from,
            to: BreakerState::Open,
            at: now,
            retry_at: Some(retry_at),
            reason,
        }
    }

    fn enter_closed(&mut self, now: DateTime<Utc>, reason: TransitionReason) -> Transition {
        let from = self.state;
        self.state = BreakerState::Closed;
        self.consecutive_failures = 0;
        self.consecutive_successes = 0;
        self.retry_at = None;
        self.trials_in_flight = 0;
        self.generation = self.generation.wrapping_add(1);
        Transition {
            from,
            to: BreakerState::Closed,
            at: now,
            retry_at: None,
            reason,
        }
    }

    fn enter_half_open(&mut self, now: DateTime<Utc>, reason: TransitionReason) -> Transition {
        let from = self.state;
        self.state = BreakerState::HalfOpen;
        self.consecutive_successes = 0;
        self.retry_at = None;
        self.trials_in_flight = 0;
        self.generation = self.generation.wrapping_add(1);
        Transition {
            from,
            to: BreakerState::HalfOpen,
            at: now,
            retry_at: None,
            reason,
        }
    }
}

/// A call refused by `SharedBreaker::try_acquire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// When an Open breaker will allow a trial; `None` while a trial is in flight.
    pub retry_at: Option<DateTime<Utc>>,
    /// The state that refused the call.
    pub state: BreakerState,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.retry_at {
            Some(retry_at) => write!(
                f,
                "circuit breaker is {}, retry at {}",
                self.state,
                retry_at.to_rfc3339()
            ),
            None => write!(
                f,
                "circuit breaker is {}, a trial call is in flight",
                self.state
            ),
        }
    }
}

impl std::error::Error for Rejected {}

/// A named `Breaker` behind a mutex, reading time from a `Clock`. Clones share the same breaker.
#[derive(Debug, Clone)]
pub struct SharedBreaker {
    name: String,
    inner: Arc<Mutex<Breaker>>,
    clock: Arc<dyn Clock>,
}

impl SharedBreaker {
    /// A closed breaker.
    pub fn new(name: impl Into<String>, settings: BreakerSettings, clock: Arc<dyn Clock>) -> Self {
        Self::from_breaker(name.into(), Breaker::new(settings), clock)
    }

    /// A breaker restored from a snapshot at the clock's current time (see `Breaker::restore`).
    pub fn from_snapshot(
        name: impl Into<String>,
        settings: BreakerSettings,
        snap: &BreakerSnapshot,
        clock: Arc<dyn Clock>,
    ) -> (Self, Option<Transition>) {
        let (breaker, transition) = Breaker::restore(settings, snap, clock.now());
        (Self::from_breaker(name.into(), breaker, clock), transition)
    }

    fn from_breaker(name: String, breaker: Breaker, clock: Arc<dyn Clock>) -> Self {
        Self {
            name,
            inner: Arc::new(Mutex::new(breaker)),
            clock,
        }
    }

    /// The name it was built with (e.g. the target it guards).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state()
    }

    /// The persisted form, stamped with the clock's current time.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = self.clock.now();
        self.lock().snapshot(now)
    }

    /// Asks to make one call. On success, report the outcome through the `Permit`; dropping it unreported
    /// abandons the call. The transition, if any, is Open -> HalfOpen.
    pub fn try_acquire(&self) -> Result<(Permit, Option<Transition>), Rejected> {
        let now = self.clock.now();
        let mut breaker = self.lock();
        let (admission, transition) = breaker.admit(now);
        match admission {
            Admission::Admitted => {
                let permit = Permit {
                    breaker: self.clone(),
                    generation: breaker.generation,
                    reported: false,
                };
                Ok((permit, transition))
            }
            Admission::Rejected { retry_at } => Err(Rejected {
                retry_at,
                state: breaker.state(),
            }),
        }
    }

    /// Makes one scheduled call: never refused (see `Breaker::admit_scheduled`); report the outcome through the
    /// `Permit` as with `try_acquire`.
    pub fn acquire_scheduled(&self) -> Permit {
        let mut breaker = self.lock();
        breaker.admit_scheduled();
        Permit {
            breaker: self.clone(),
            generation: breaker.generation,
            reported: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Breaker> {
        // Every Breaker method leaves the value consistent before it could panic, so a poisoned lock still holds
        // a usable breaker.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The right to make one call through a `SharedBreaker`. Report with `success()` or `failure()`; dropping it
/// unreported abandons the call and frees the half-open trial slot. A report or abandon made after the breaker
/// changed state since this permit was granted is ignored.
#[derive(Debug)]
#[must_use = "report the call with success() or failure(); dropping the permit abandons it"]
pub struct Permit {
    breaker: SharedBreaker,
    generation: u64,
    reported: bool,
}

impl Permit {
    /// The call succeeded.
    pub fn success(mut self) -> Option<Transition> {
        self.report(Breaker::on_success)
    }

    /// The call failed.
    pub fn failure(mut self) -> Option<Transition> {
        self.report(Breaker::on_failure)
    }

    fn report(
        &mut self,
        apply: fn(&mut Breaker, DateTime<Utc>) -> Option<Transition>,
    ) -> Option<Transition> {
        self.reported = true;
        let now = self.breaker.clock.now();
        let mut breaker = self.breaker.lock();
        if breaker.generation != self.generation {
            return None;
        }
        apply(&mut breaker, now)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.reported {
            return;
        }
        let mut breaker = self.breaker.lock();
        if breaker.generation == self.generation {
            breaker.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::clock::ManualClock;

    fn t0() -> DateTime<Utc> {
        // 2023-11-14T22:13:20Z is a valid timestamp, so this always returns Some.
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn clock() -> ManualClock {
        ManualClock::new(t0())
    }

    fn shared(clock: &ManualClock) -> SharedBreaker {
        SharedBreaker::new(
            "upstream",
            BreakerSettings::default(),
            Arc::new(clock.clone()),
        )
    }

    /// Drives a default core breaker to Open at the clock's current time and returns the opening transition.
    fn open_core(breaker: &mut Breaker, clock: &ManualClock) -> Transition {
        for _ in 0..4 {
            assert_eq!(breaker.on_failure(clock.now()), None);
        }
        breaker
            .on_failure(clock.now())
            .expect("the fifth failure opens the breaker")
    }

    fn open_shared(breaker: &SharedBreaker) {
        for _ in 0..5 {
            let (permit, _) = breaker.try_acquire().expect("closed breaker admits");
            permit.failure();
        }
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn defaults_are_five_failures_two_successes_sixty_seconds() {
        let s = BreakerSettings::default();
        assert_eq!(s.failure_threshold, 5);
        assert_eq!(s.success_threshold, 2);
        assert_eq!(s.open_timeout, secs(60));
    }

    #[test]
    fn state_names_gauges_and_parse_agree() {
        let all = [
            (BreakerState::Closed, "closed", 0),
            (BreakerState::HalfOpen, "half_open", 1),
            (BreakerState::Open, "open", 2),
        ];
        for (state, name, gauge) in all {
            assert_eq!(state.as_str(), name);
            assert_eq!(state.to_string(), name);
            assert_eq!(state.gauge_value(), gauge);
            assert_eq!(BreakerState::parse(name), Some(state));
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{name}\"")
            );
        }
        assert_eq!(BreakerState::parse("HALF_OPEN"), None);
        assert_eq!(BreakerState::parse("halfopen"), None);
        assert_eq!(
            serde_json::to_string(&TransitionReason::OpenTimeoutElapsed).unwrap(),
            "\"open_timeout_elapsed\""
        );
        assert_eq!(
            TransitionReason::FailureThreshold.as_str(),
            "failure_threshold"
        );
        assert_eq!(TransitionReason::TrialSucceeded.as_str(), "trial_succeeded");
        assert_eq!(TransitionReason::TrialFailed.as_str(), "trial_failed");
        assert_eq!(TransitionReason::Restored.as_str(), "restored");
        assert_eq!(
            TransitionReason::ScheduledCheckSucceeded.as_str(),
            "scheduled_check_succeeded"
        );
    }

    #[test]
    fn opens_after_exactly_five_consecutive_failures() {
        let clock = clock();
        let mut breaker = Breaker::new(BreakerSettings::default());
        for n in 1..=4 {
            assert_eq!(breaker.admit(clock.now()), (Admission::Admitted, None));
            assert_eq!(breaker.on_failure(clock.now()), None, "failure {n}");
            assert_eq!(breaker.state(), BreakerState::Closed, "after failure {n}");
        }
        clock.advance(secs(3));
        let transition = breaker.on_failure(clock.now()).expect("fifth failure");
        assert_eq!(
            transition,
            Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open,
                at: clock.now(),
                retry_at: Some(clock.now() + TimeDelta::seconds(60)),
                reason: TransitionReason::FailureThreshold,
            }
        );
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn a_success_in_between_resets_the_failure_count() {
        let clock = clock();
        let mut breaker = Breaker::new(BreakerSettings::default());
        for _ in 0..4 {
            assert_eq!(breaker.on_failure(clock.now()), None);
        }
        assert_eq!(breaker.on_success(clock.now()), None);
        assert_eq!(breaker.snapshot(clock.now()).consecutive_failures, 0);
        for _ in 0..4 {
            assert_eq!(breaker.on_failure(clock.now()), None);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.on_failure(clock.now()).is_some());
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn rejects_fast_while_open_and_reports_retry_at() {
        let clock = clock();
        let mut breaker = Breaker::new(BreakerSettings::default());
        open_core(&mut breaker, &clock);
        let retry_at = t0() + TimeDelta::seconds(60);
        clock.advance(secs(10));
        assert_eq!(
            breaker.admit(clock.now()),
            (
                Admission::Rejected {
                    retry_at: Some(retry_at)
                },
                None
            )
        );

        let clock = ManualClock::new(t0());
        let shared = shared(&clock);
        open_shared(&shared);
        clock.advance(secs(59));
        let rejected = shared.try_acquire().expect_err("open breaker rejects");
        assert_eq!(
            rejected,
            Rejected {
                retry_at: Some(retry_at),
                state: BreakerState::Open
            }
        );
        assert_eq!(
            rejected.to_string(),
            "circuit breaker is open, retry at 2023-11-14T22:14:20+00:00"
        );
    }

    #[test]
    fn goes_half_open_only_at_or_after_the_timeout() {
        let clock = clock();
        let mut breaker = Breaker::new(BreakerSettings::default());
        open_core(&mut breaker, &clock);
        clock.advance(secs(60) - Duration::from_millis(1));
        assert!(matches!(
            breaker.admit(clock.now()),
            (Admission::Rejected { .. }, None)
        ));
        assert_eq!(breaker.state(), BreakerState::Open);

        clock.advance(Duration::from_millis(1));
        let (admission, transition) = breaker.admit(clock.now());
        assert_eq!(admission, Admission::Admitted);
        assert_eq!(
            transition,
            Some(Transition {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen,
                at: t0() + TimeDelta::seconds(60),
                retry_at: None,
                reason: TransitionReason::OpenTimeoutElapsed,
            })
        );
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn half_open_admits_one_trial_at_a_time() {
        let clock = clock();
        let mut breaker = Breaker::new(BreakerSettings::default());
        open_core(&mut breaker, &clock);
        clock.advance(secs(60));
        assert_eq!(breaker.admit(clock.now()).0, Admission::Admitted);
        assert_eq!(
            breaker.admit(clock.now()),
            (Admission::Rejected { retry_at: None }, None)
        );
        assert_eq!(breaker.on_success(clock.now()), None, "1 of 2 successes");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.admit(clock.now()), (Admission::Admitted, None));
        assert_eq!(
            breaker.admit(clock.now()),
            (Admission::Rejected { retry_at: None }, None)
        );

        let clock = ManualClock::new(t0());
        let shared = shared(&clock);
        open_shared(&shared);
        clock.advance(secs(60));
        let (trial, transition) = shared.try_acquire().expect("trial admitted");
        assert_eq!(transition.map(|t| t.to), Some(BreakerState::HalfOpen));
        let rejected = shared.try_acquire().expect_err("second caller rejected");
        assert_eq!(rejected.state, BreakerState::HalfOpen);
        assert_eq!(rejected.retry_at, None);
        assert_eq!(
            rejected.to_string(),
            "circuit breaker is half_open, a trial call is in flight"
        );
        assert_eq!(trial.success(), None);
        assert!(shared.try_acquire().is_ok(), "slot free after the report");
    }

    #[test]
    fn closes_after_two_trial_successes_not_one() {
        let clock = clock();
        let shared = shared(&clock);
        open_shared(&shared);
        clock.advance(secs(60));

        let (trial, _) = shared.try_acquire().expect("first trial");
        assert_eq!(trial.success(), None);
        assert_eq!(shared.state(), BreakerState::HalfOpen);
        assert_eq!(shared.snapshot().consecutive_successes, 1);

        clock.advance(secs(1));
        let (trial, transition) = shared.try_acquire().expect("second trial");
        assert_eq!(transition, None);
        assert_eq!(
            trial.success(),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed,
                at: t0() + TimeDelta::seconds(61),
                retry_at: None,
                reason: TransitionReason::TrialSucceeded,
            })
        );
        assert_eq!(shared.state(), BreakerState::Closed);
        let snap = shared.snapshot();
        assert_eq!(
            (
                snap.consecutive_failures,
                snap.consecutive_successes,
                snap.retry_at
            ),
            (0, 0, None)
        );
    }

    #[test]
    fn a_half_open_failure_reopens_with_a_fresh_timeout() {
        let clock = clock();
        let shared = shared(&clock);
        open_shared(&shared);
        clock.advance(secs(60));
        let (trial, _) = shared.try_acquire().expect("trial");
        assert_eq!(trial.success(), None);
        let (trial, _) = shared.try_acquire().expect("second trial");
        clock.advance(secs(5));
        let fresh_retry_at = t0() + TimeDelta::seconds(65 + 60);
        assert_eq!(
            trial.failure(),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Open,
                at: t0() + TimeDelta::seconds(65),
                retry_at: Some(fresh_retry_at),
                reason: TransitionReason::TrialFailed,
            })
        );
        let rejected = shared.try_acquire().expect_err("reopened");
        assert_eq!(rejected.retry_at, Some(fresh_retry_at));
        assert_eq!(
            shared.snapshot().consecutive_successes,
            0,
            "trial progress lost"
        );
    }

    #[test]
    fn dropping_a_permit_frees_the_half_open_slot() {
        let clock = clock();
        let shared = shared(&clock);
        open_shared(&shared);
        clock.advance(secs(60));
        let (trial, _) = shared.try_acquire().expect("trial");
        assert!(shared.try_acquire().is_err());
        drop(trial);
        assert_eq!(
            shared.state(),
            BreakerState::HalfOpen,
            "abandon counts neither way"
        );
        assert_eq!(shared.snapshot().consecutive_successes, 0);
        let (trial, transition) = shared.try_acquire().expect("slot freed by the drop");
        assert_eq!(transition, None);
        assert_eq!(trial.success(), None);

        let mut core = Breaker::new(BreakerSettings::default());
        open_core(&mut core, &clock);
        clock.advance(secs(60));
        assert_eq!(core.admit(clock.now()).0, Admission::Admitted);
        core.abandon();
        assert_eq!(core.admit(clock.now()).0, Admission::Admitted);
    }

    #[test]
    fn late_results_from_an_older_state_are_ignored() {
        let clock = clock();
        let mut core = Breaker::new(BreakerSettings::default());
        open_core(&mut core, &clock);
        clock.advance(secs(30));
        assert_eq!(core.on_success(clock.now()), None);
        assert_eq!(core.on_failure(clock.now()), None);
        let snap = core.snapshot(clock.now());
        assert_eq!(snap.state, BreakerState::Open);
        assert_eq!(
            snap.retry_at,
            Some(t0() + TimeDelta::seconds(60)),
            "not extended"
        );

        // Through the wrapper: a permit granted while Closed reports after the breaker went half-open; it must
        // neither consume the trial's slot nor count as the trial's result.
        let clock = ManualClock::new(t0());
        let shared = shared(&clock);
        let (late, _) = shared.try_acquire().expect("closed admits");
        open_shared(&shared);
        clock.advance(secs(60));
        let (trial, _) = shared.try_acquire().expect("trial");
        assert_eq!(late.failure(), None);
        assert_eq!(shared.state(), BreakerState::HalfOpen);
        assert!(shared.try_acquire().is_err(), "trial still holds the slot");
        assert_eq!(trial.success(), None);
        assert_eq!(shared.snapshot().consecutive_successes, 1);
    }

    #[test]
    fn restore_keeps_the_absolute_retry_at_of_an_open_breaker() {
        let clock = clock();
        let mut core = Breaker::new(BreakerSettings::default());
        open_core(&mut core, &clock);
        let retry_at = t0() + TimeDelta::seconds(60);
        let snap = core.snapshot(clock.now());
        assert_eq!(snap.retry_at, Some(retry_at));

        // Restarted 20 s later: still open until the same instant, not now + 60 s and not closed.
        clock.advance(secs(20));
        let (mut restored, transition) =
            Breaker::restore(BreakerSettings::default(), &snap, clock.now());
        assert_eq!(transition, None);
        assert_eq!(restored.state(), BreakerState::Open);
        assert_eq!(restored.snapshot(clock.now()).retry_at, Some(retry_at));
        assert_eq!(restored.snapshot(clock.now()).consecutive_failures, 5);
        clock.advance(secs(39));
        assert_eq!(
            restored.admit(clock.now()),
            (
                Admission::Rejected {
                    retry_at: Some(retry_at)
                },
                None
            )
        );
        clock.advance(secs(1));
        let (admission, transition) = restored.admit(clock.now());
        assert_eq!(admission, Admission::Admitted);
        assert_eq!(
            transition.map(|t| t.reason),
            Some(TransitionReason::OpenTimeoutElapsed)
        );

        let clock = ManualClock::new(t0() + TimeDelta::seconds(20));
        let (shared, transition) = SharedBreaker::from_snapshot(
            "upstream",
            BreakerSettings::default(),
            &snap,
            Arc::new(clock.clone()),
        );
        assert_eq!(transition, None);
        assert_eq!(shared.name(), "upstream");
        assert_eq!(
            shared.try_acquire().expect_err("still open").retry_at,
            Some(retry_at)
        );
    }

    #[test]
    fn restore_past_due_gives_half_open_with_a_restored_transition() {
        let clock = clock();
        let mut core = Breaker::new(BreakerSettings::default());
        open_core(&mut core, &clock);
        let snap = core.snapshot(clock.now());

        clock.advance(secs(60));
        let (mut restored, transition) =
            Breaker::restore(BreakerSettings::default(), &snap, clock.now());
        assert_eq!(
            transition,
            Some(Transition {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen,
                at: clock.now(),
                retry_at: None,
                reason: TransitionReason::Restored,
            })
        );
        assert_eq!(restored.state(), BreakerState::HalfOpen);
        assert_eq!(restored.admit(clock.now()), (Admission::Admitted, None));
        assert_eq!(
            restored.admit(clock.now()),
            (Admission::Rejected { retry_at: None }, None)
        );
    }

    #[test]
    fn restore_half_open_has_no_trial_in_flight_and_closed_keeps_its_count() {
        let clock = clock();
        let mut core = Breaker::new(BreakerSettings::default());
        open_core(&mut core, &clock);
        clock.advance(secs(60));
        assert_eq!(core.admit(clock.now()).0, Admission::Admitted);
        assert_eq!(core.on_success(clock.now()), None);
        assert_eq!(core.admit(clock.now()).0, Admission::Admitted);
        let snap = core.snapshot(clock.now());
        assert_eq!(snap.state, BreakerState::HalfOpen);

        let (mut restored, transition) =
            Breaker::restore(BreakerSettings::default(), &snap, clock.now());
        assert_eq!(transition, None);
        assert_eq!(restored.admit(clock.now()), (Admission::Admitted, None));
        let closed = restored
            .on_success(clock.now())
            .expect("second trial success closes");
        assert_eq!(closed.reason, TransitionReason::TrialSucceeded);

        let mut closed = Breaker::new(BreakerSettings::default());
        for _ in 0..3 {
            assert_eq!(closed.on_failure(clock.now()), None);
        }
        let snap = closed.snapshot(clock.now());
        let (mut restored, transition) =
            Breaker::restore(BreakerSettings::default(), &snap, clock.now());
        assert_eq!(transition, None);
        assert_eq!(restored.state(), BreakerState::Closed);
        assert_eq!(restored.on_failure(clock.now()), None, "fourth failure");
        assert_eq!(
            restored.on_failure(clock.now()).map(|t| t.reason),
            Some(TransitionReason::FailureThreshold),
            "fifth failure counts the three from before the restart"
        );
    }

    #[test]
    fn snapshot_round_trips_through_serde_json() {
        let clock = clock();
        let shared = shared(&clock);
        open_shared(&shared);
        clock.advance(secs(7));
        let snap = shared.snapshot();
        assert_eq!(
            snap,
            BreakerSnapshot {
                state: BreakerState::Open,
                consecutive_failures: 5,
                consecutive_successes: 0,
                retry_at: Some(t0() + TimeDelta::seconds(60)),
                updated_at: t0() + TimeDelta::seconds(7),
            }
        );
        let json = serde_json::to_string(&snap).unwrap();
        assert!(json.contains("\"state\":\"open\""), "{json}");
        let back: BreakerSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
    }

    #[test]
    fn transitions_carry_the_right_from_to_and_reason() {
        let clock = clock();
        let shared = shared(&clock);
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (permit, t) = shared.try_acquire().expect("closed");
            seen.extend(t);
            seen.extend(permit.failure());
        }
        clock.advance(secs(60));
        let (permit, t) = shared.try_acquire().expect("trial");
        seen.extend(t);
        seen.extend(permit.failure());
        clock.advance(secs(60));
        for _ in 0..2 {
            let (permit, t) = shared.try_acquire().expect("trial");
            seen.extend(t);
            seen.extend(permit.success());
        }
        let got: Vec<_> = seen.iter().map(|t| (t.from, t.to, t.reason)).collect();
        use BreakerState::{Closed, HalfOpen, Open};
        assert_eq!(
            got,
            vec![
                (Closed, Open, TransitionReason::FailureThreshold),
                (Open, HalfOpen, TransitionReason::OpenTimeoutElapsed),
                (HalfOpen, Open, TransitionReason::TrialFailed),
                (Open, HalfOpen, TransitionReason::OpenTimeoutElapsed),
                (HalfOpen, Closed, TransitionReason::TrialSucceeded),
            ]
        );
        assert!(seen
            .iter()
            .all(|t| t.retry_at.is_some() == (t.to == BreakerState::Open)));
    }

    #[test]
    fn a_scheduled_check_is_admitted_while_open_and_moves_nothing_by_itself() {
        let clock = clock();
        let mut core = Breaker::new(BreakerSettings::default());
        core.admit_scheduled();
        assert_eq!(
            core.on_failure(clock.now()),
            None,
            "closed: an ordinary call"
        );
        assert_eq!(core.snapshot(clock.now()).consecutive_failures, 1);

        let mut core = Breaker::new(BreakerSettings::default());
        open_core(&mut core, &clock);
        let retry_at = t0() + TimeDelta::seconds(60);
        clock.advance(secs(30));
        core.admit_scheduled();
        let snap = core.snapshot(clock.now());
        assert_eq!(
            (snap.state, snap.retry_at, snap.consecutive_successes),
            (BreakerState::Open, Some(retry_at), 0)
        );
        assert_eq!(
            core.admit(clock.now()),
            (
                Admission::Rejected {
                    retry_at: Some(retry_at)
                },
                None
            ),
            "on-demand calls are still refused before retry_at"
        );
    }

    #[test]
    fn a_scheduled_success_while_open_half_opens_and_the_next_one_closes() {
        let clock = clock();
        let shared = shared(&clock);
        open_shared(&shared);
        clock.advance(secs(30));
        let trial = shared.acquire_scheduled();
        assert_eq!(
            trial.success(),
            Some(Transition {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen,
                at: t0() + TimeDelta::seconds(30),
                retry_at: None,
                reason: TransitionReason::ScheduledCheckSucceeded,
            }),
            "well before retry_at"
        );
        let snap = shared.snapshot();
        assert_eq!(
            (snap.state, snap.consecutive_successes, snap.retry_at),
            (BreakerState::HalfOpen, 1, None),
            "the scheduled success is the first trial success"
        );

        clock.advance(secs(30));
        let trial = shared.acquire_scheduled();
        assert_eq!(
            trial.success(),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed,
                at: t0() + TimeDelta::seconds(60),
                retry_at: None,
                reason: TransitionReason::TrialSucceeded,
            })
        );
        let snap = shared.snapshot();
        assert_eq!(
            (
                snap.consecutive_failures,
                snap.consecutive_successes,
                snap.retry_at
            ),
            (0, 0, None)
        );
    }

    #[test]
    fn with_a_success_threshold_of_one_a_scheduled_success_closes_an_open_breaker() {
        let clock = clock();
        let settings = BreakerSettings {
            success_threshold: 1,
            ..BreakerSettings::default()
        };
        let mut core = Breaker::new(settings);
        open_core(&mut core, &clock);
        clock.advance(secs(5));
        core.admit_scheduled();
        assert_eq!(
            core.on_success(clock.now()),
            Some(Transition {
                from: BreakerState::Open,
                to: BreakerState::Closed,
                at: t0() + TimeDelta::seconds(5),
                retry_at: None,
                reason: TransitionReason::ScheduledCheckSucceeded,
            })
        );
        let snap = core.snapshot(clock.now());
        assert_eq!(
            (
                snap.state,
                snap.consecutive_failures,
                snap.consecutive_successes,
                snap.retry_at
            ),
            (BreakerState::Closed, 0, 0, None)
        );
        assert_eq!(core.admit(clock.now()), (Admission::Admitted, None));
    }

    #[test]
    fn a_scheduled_failure_while_open_keeps_it_open_and_moves_retry_at() {
        let clock = clock();
        let mut core = Breaker::new(BreakerSettings::default());
        open_core(&mut core, &clock);
        clock.advance(secs(50));
        core.admit_scheduled();
        assert_eq!(core.on_failure(clock.now()), None, "no transition");
        let fresh_retry_at = t0() + TimeDelta::seconds(50 + 60);
        let snap = core.snapshot(clock.now());
        assert_eq!(
            (snap.state, snap.retry_at, snap.consecutive_failures),
            (BreakerState::Open, Some(fresh_retry_at), 6)
        );
        // At the old retry_at an on-demand call is still refused: the schedule has just seen the target fail.
        clock.advance(secs(10));
        assert_eq!(
            core.admit(clock.now()),
            (
                Admission::Rejected {
                    retry_at: Some(fresh_retry_at)
                },
                None
            )
        );
        // A late failure (no trial in flight) still moves nothing.
        assert_eq!(core.on_failure(clock.now()), None);
        assert_eq!(core.snapshot(clock.now()).retry_at, Some(fresh_retry_at));
        assert_eq!(core.snapshot(clock.now()).consecutive_failures, 6);
    }

    #[test]
    fn on_demand_calls_are_refused_while_a_scheduled_trial_of_an_open_breaker_is_in_flight() {
        let clock = clock();
        let shared = shared(&clock);
        open_shared(&shared);
        clock.advance(secs(60));
        let scheduled = shared.acquire_scheduled();
        let rejected = shared
            .try_acquire()
            .expect_err("a trial is in flight, past retry_at");
        assert_eq!(
            rejected,
            Rejected {
                retry_at: None,
                state: BreakerState::Open
            }
        );
        assert_eq!(
            rejected.to_string(),
            "circuit breaker is open, a trial call is in flight"
        );
        drop(scheduled);
        assert_eq!(
            shared.state(),
            BreakerState::Open,
            "abandon counts neither way"
        );
        let (trial, transition) = shared
            .try_acquire()
            .expect("slot freed by the dropped scheduled permit");
        assert_eq!(
            transition.map(|t| t.reason),
            Some(TransitionReason::OpenTimeoutElapsed)
        );
        assert_eq!(trial.success(), None);
    }

    #[test]
    fn a_scheduled_check_in_half_open_is_admitted_beside_an_on_demand_trial() {
        let clock = clock();
        let shared = shared(&clock);
        open_shared(&shared);
        clock.advance(secs(60));
        let (on_demand, _) = shared.try_acquire().expect("the on-demand trial");
        assert!(
            shared.try_acquire().is_err(),
            "one on-demand trial at a time"
        );
        let scheduled = shared.acquire_scheduled();
        assert_eq!(scheduled.success(), None, "1 of 2 successes");
        assert_eq!(shared.state(), BreakerState::HalfOpen);
        assert!(
            shared.try_acquire().is_err(),
            "the on-demand trial still holds its slot"
        );
        assert_eq!(
            on_demand.success().map(|t| (t.to, t.reason)),
            Some((BreakerState::Closed, TransitionReason::TrialSucceeded))
        );

        // A failed scheduled trial in half-open reopens it like any trial.
        open_shared(&shared);
        clock.advance(secs(60));
        let (trial, _) = shared.try_acquire().expect("trial");
        assert_eq!(trial.success(), None);
        let scheduled = shared.acquire_scheduled();
        assert_eq!(
            scheduled.failure().map(|t| (t.from, t.to, t.reason)),
            Some((
                BreakerState::HalfOpen,
                BreakerState::Open,
                TransitionReason::TrialFailed
            ))
        );
    }

    #[test]
    fn a_late_report_is_not_taken_for_a_scheduled_trial_of_an_open_breaker() {
        let clock = clock();
        let shared = shared(&clock);
        let (late, _) = shared.try_acquire().expect("closed admits");
        open_shared(&shared);
        clock.advance(secs(10));
        let scheduled = shared.acquire_scheduled();
        assert_eq!(late.success(), None);
        assert_eq!(
            shared.state(),
            BreakerState::Open,
            "a late success closes nothing"
        );
        assert_eq!(
            scheduled.success().map(|t| t.to),
            Some(BreakerState::HalfOpen)
        );

        // The core alone: a report with no trial in flight is late and ignored while open.
        let mut core = Breaker::new(BreakerSettings::default());
        open_core(&mut core, &clock);
        core.admit_scheduled();
        core.abandon();
        assert_eq!(core.on_success(clock.now()), None);
        assert_eq!(core.state(), BreakerState::Open);
    }

    #[test]
    fn a_poisoned_mutex_does_not_panic_the_breaker() {
        let clock = clock();
        let shared = shared(&clock);
        let poisoner = shared.clone();
        let joined = std::thread::spawn(move || {
            let _guard = poisoner.inner.lock();
            panic!("poison the breaker mutex on purpose");
        })
        .join();
        assert!(joined.is_err());
        assert!(shared.inner.is_poisoned());
        assert_eq!(shared.state(), BreakerState::Closed);
        let (permit, _) = shared.try_acquire().expect("still usable");
        assert_eq!(permit.failure(), None);
        assert_eq!(shared.snapshot().consecutive_failures, 1);
    }
}
