//! The monitor as a background `Worker`: one scheduler task keeps every target's next due time in a queue and
//! wakes once per due slot (`SLOT` wide), starting every probe of that slot as a short task of its own, rather
//! than one long-lived task and one timer per target: at 1,000 checks/s that is 50 timer wake-ups a second,
//! not 1,000, while the probes still spread over every runtime worker. Each target's first probe comes at a
//! random point of its interval, so targets do not all fire at once; after that it is probed every interval,
//! one probe of a target at a time. The score gauge ticks beside it. Both run on the monitor's `Clock`, so a
//! test moves them with a `ManualClock`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{add_saturating, Ticker};
use crate::probe::Monitor;
use crate::records::CheckSource;
use crate::worker::Worker;

/// How often the health-score gauge is recomputed from the latest results.
const SCORE_REFRESH: Duration = Duration::from_secs(1);

/// A clock that reads more than this past the end of the scheduler's sleep (beyond the real time the sleep
/// took, so a scheduler that ran late is not mistaken for it) jumped forward: a resume from suspend, or an
/// NTP step.
pub(crate) const FORWARD_JUMP: Duration = Duration::from_secs(1);

/// The width of a due slot: the scheduler wakes at most once per slot and starts every probe due by then, so
/// a probe starts at most this much after its due time (plus the runtime's own lateness).
pub(crate) const SLOT: Duration = Duration::from_millis(20);

impl Worker for Monitor {
    fn name(&self) -> &'static str {
        "monitor"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        // The schedule starts now, when the worker is started, not when its task first runs.
        let started = self.clock.now();
        Box::pin(async move {
            // Its own task, so its tick never wakes the scheduler; aborted if this future is dropped.
            let mut score = JoinSet::new();
            score.spawn(self.clone().score_loop(started, cancel.clone()));
            if self.background {
                self.clone().probe_scheduled(started, &cancel).await;
            }
            while let Some(ended) = score.join_next().await {
                if let Err(e) = ended {
                    tracing::error!(error = %e, "the monitor's score loop failed");
                }
            }
        })
    }
}

impl Monitor {
    /// Probes every target at its interval until `cancel`; then waits for the probes that have started to
    /// finish and be stored (the ones still waiting for a probe slot give up).
    async fn probe_scheduled(self: Arc<Self>, started: DateTime<Utc>, cancel: &CancellationToken) {
        let intervals: Vec<Duration> = self.targets.iter().map(|t| t.config.interval()).collect();
        let runs = Arc::new(Runs::new(intervals.len()));
        let mut schedule = Schedule::new(intervals, started, |interval| {
            interval.mul_f64(rand::rng().random_range(0.0..1.0))
        });
        let probes = TaskTracker::new();
        loop {
            let now = self.clock.now();
            if let Some(jump) = schedule.observe(now) {
                tracing::info!(
                    jumped_ms = jump.by.as_millis() as u64,
                    spread = jump.spread,
                    "the clock jumped forward by {:.1} s: {} targets it skipped over are spread over their interval again, each at its phase",
                    jump.by.as_secs_f64(),
                    jump.spread
                );
            }
            for index in schedule.take_due(now) {
                if runs.due(index) {
                    probes.spawn(self.clone().scheduled_checks(
                        index,
                        runs.clone(),
                        cancel.clone(),
                    ));
                }
            }
            let Some(wake_at) = schedule.next_wake() else {
                // No target to probe.
                break;
            };
            let wait = (wake_at - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(schedule.longest_wait());
            schedule.sleeping(now, wait);
            let slept_from = std::time::Instant::now();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.clock.sleep(wait) => schedule.woke(slept_from.elapsed()),
            }
        }
        // Each probe task ends once cancelled: a started probe finishes (within its timeout) and is stored.
        probes.close();
        probes.wait().await;
    }

    /// The scheduled check of the target at `index`, and again at once each time its due time came while the
    /// check ran.
    async fn scheduled_checks(
        self: Arc<Self>,
        index: usize,
        runs: Arc<Runs>,
        cancel: CancellationToken,
    ) {
        let Some(target) = self.targets.get(index) else {
            return;
        };
        loop {
            let checked = self
                .check_until(target, CheckSource::Monitor, Some(&cancel))
                .await;
            if checked.is_none() {
                // Cancelled while waiting for its turn or a probe slot.
                runs.stop(index);
                return;
            }
            if !runs.ended(index) {
                return;
            }
        }
    }

    async fn score_loop(self: Arc<Self>, started: DateTime<Utc>, cancel: CancellationToken) {
        let mut ticker = Ticker::from(self.clock.clone(), started, Duration::ZERO, SCORE_REFRESH);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticker.tick() => self.metrics.set_score(self.current_score()),
            }
        }
    }
}

/// No check of the target is running.
const IDLE: u8 = 0;
/// Its check is running.
const RUNNING: u8 = 1;
/// Its check is running and its due time came meanwhile: it runs once more as soon as this one ends, rather
/// than twice at once.
const RUNNING_DUE: u8 = 2;

/// Whether each target's scheduled check is running, shared by the scheduler and the probe tasks.
#[derive(Debug)]
pub(crate) struct Runs(Vec<AtomicU8>);

impl Runs {
    pub(crate) fn new(targets: usize) -> Self {
        Self((0..targets).map(|_| AtomicU8::new(IDLE)).collect())
    }

    /// The target's due time came. True when its check must start now; false when one is running (that one
    /// then runs once more when it ends).
    pub(crate) fn due(&self, index: usize) -> bool {
        let Some(state) = self.0.get(index) else {
            return false;
        };
        if state
            .compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return true;
        }
        // Already RUNNING_DUE when this fails: the one extra run is noted once.
        let _ = state.compare_exchange(RUNNING, RUNNING_DUE, Ordering::AcqRel, Ordering::Acquire);
        false
    }

    /// The target's check ended. True when it must run again at once (its due time came while it ran).
    pub(crate) fn ended(&self, index: usize) -> bool {
        let Some(state) = self.0.get(index) else {
            return false;
        };
        match state.compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => false,
            Err(_) => {
                // RUNNING_DUE: only this task moves it out of there.
                state.store(RUNNING, Ordering::Release);
                true
            }
        }
    }

    /// The target's check gave up (cancelled): nothing of it runs any more.
    pub(crate) fn stop(&self, index: usize) {
        if let Some(state) = self.0.get(index) {
            state.store(IDLE, Ordering::Release);
        }
    }
}

/// Every target's next due time, soonest first: the pure part of the scheduler, driven by the instants it is
/// given (no clock, no I/O).
#[derive(Debug)]
pub(crate) struct Schedule {
    queue: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    intervals: Vec<Duration>,
    /// The latest instant seen, and the earliest the clock can read after the current sleep: a reading
    /// before it by more than a slot means the clock was stepped back.
    seen: DateTime<Utc>,
    sleep: Option<(DateTime<Utc>, Duration)>,
    /// A sleep ended since the last reading: only then can the clock read past where it should.
    after_sleep: bool,
    /// No wait is longer than the longest interval, so a clock stepped far back cannot stall the schedule.
    longest_wait: Duration,
}

impl Schedule {
    /// Targets with these intervals, each first due `first(interval)` after `started`.
    pub(crate) fn new(
        intervals: Vec<Duration>,
        started: DateTime<Utc>,
        mut first: impl FnMut(Duration) -> Duration,
    ) -> Self {
        let queue = intervals
            .iter()
            .enumerate()
            .map(|(index, interval)| Reverse((add_saturating(started, first(*interval)), index)))
            .collect();
        let longest_wait = intervals
            .iter()
            .copied()
            .max()
            .unwrap_or(Duration::ZERO)
            .max(SLOT);
        Self {
            queue,
            intervals,
            seen: started,
            sleep: None,
            after_sleep: false,
            longest_wait,
        }
    }

    /// The longest the scheduler sleeps at once.
    pub(crate) fn longest_wait(&self) -> Duration {
        self.longest_wait
    }

    /// When the scheduler should next wake: the soonest due time, rounded up to the end of its slot, so the
    /// probes due within one slot start together. None without targets.
    pub(crate) fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.queue.peek().map(|Reverse((due, _))| slot_end(*due))
    }

    /// The scheduler goes to sleep at `now` for `wait`.
    pub(crate) fn sleeping(&mut self, now: DateTime<Utc>, wait: Duration) {
        self.sleep = Some((now, wait));
    }

    /// The sleep ended, after `slept` of real (monotonic) time: the clock has moved on by at least the
    /// longer of the two.
    pub(crate) fn woke(&mut self, slept: Duration) {
        if let Some((from, wait)) = self.sleep.take() {
            self.seen = self.seen.max(add_saturating(from, wait.max(slept)));
            self.after_sleep = true;
        }
    }

    /// Notes the clock's reading. A clock stepped back by more than a slot (a wall clock set back) moves every
    /// due time back by as much, so the targets keep their spacing and nothing stalls until the clock catches
    /// up. A clock that jumped forward by more than `FORWARD_JUMP` past where it should read (a resume from
    /// suspend, an NTP step) would make every target due in the time it skipped due at once: each of them
    /// is queued instead for its next due time after `now` on its own phase (`next_due`), so they spread
    /// over their interval as before the jump, none is probed twice and none waits more than an interval.
    /// The targets due by where the clock should read are due now, as without a jump. Only a reading after
    /// a sleep can be a jump: before the first, the clock may have moved on while the task waited to run.
    /// Returns the jump.
    pub(crate) fn observe(&mut self, now: DateTime<Utc>) -> Option<ForwardJump> {
        let after_sleep = std::mem::take(&mut self.after_sleep);
        let step_back = (self.seen - now).to_std().unwrap_or(Duration::ZERO);
        if step_back > SLOT {
            let back = TimeDelta::from_std(step_back).unwrap_or(TimeDelta::MAX);
            let earlier = |at: DateTime<Utc>| at.checked_sub_signed(back).unwrap_or(at);
            self.queue = std::mem::take(&mut self.queue)
                .into_iter()
                .map(|Reverse((due, index))| Reverse((earlier(due), index)))
                .collect();
            self.seen = now;
            return None;
        }
        let ahead = (now - self.seen).to_std().unwrap_or(Duration::ZERO);
        if !after_sleep || ahead <= FORWARD_JUMP {
            self.seen = self.seen.max(now);
            return None;
        }
        let expected = self.seen;
        let mut spread = 0;
        let queue = std::mem::take(&mut self.queue);
        self.queue = queue
            .into_iter()
            .map(|Reverse((due, index))| {
                if due <= expected || due > now {
                    return Reverse((due, index));
                }
                spread += 1;
                let interval = self.intervals.get(index).copied().unwrap_or(SLOT);
                Reverse((next_due(due, now, interval), index))
            })
            .collect();
        self.seen = now;
        Some(ForwardJump { by: ahead, spread })
    }

    /// The targets due at `now`. Each one is queued again for its next due time.
    pub(crate) fn take_due(&mut self, now: DateTime<Utc>) -> Vec<usize> {
        let mut due_now = Vec::new();
        while let Some(Reverse((due, index))) = self.queue.peek().copied() {
            if due > now {
                break;
            }
            self.queue.pop();
            self.queue_next(index, due, now);
            due_now.push(index);
        }
        due_now
    }

    /// Queues the target for the due time after `due`, which was taken at `now`.
    fn queue_next(&mut self, index: usize, due: DateTime<Utc>, now: DateTime<Utc>) {
        let interval = self.intervals.get(index).copied().unwrap_or(SLOT);
        self.queue
            .push(Reverse((next_due(due, now, interval), index)));
    }
}

/// A forward jump of the clock, as `Schedule::observe` found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ForwardJump {
    /// How far past where it should have read the clock was.
    pub(crate) by: Duration,
    /// How many targets were due in the time it skipped, each queued again on its phase.
    pub(crate) spread: usize,
}

/// The due time after `due`, taken at `now`: one interval later. When that has passed too (the probe, or
/// the scheduler, is a whole interval or more behind: a slow probe slot, or a clock that jumped), the missed
/// ones are skipped and the target keeps its phase in the interval, so targets spread over it stay spread.
pub(crate) fn next_due(
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    interval: Duration,
) -> DateTime<Utc> {
    let next = add_saturating(due, interval);
    if next > now || interval.is_zero() {
        return next;
    }
    let behind = (now - due).to_std().unwrap_or(Duration::ZERO);
    let missed = behind.as_nanos() / interval.as_nanos();
    let periods = u32::try_from(missed.saturating_add(1)).unwrap_or(u32::MAX);
    add_saturating(due, interval.saturating_mul(periods))
}

/// The end of the `SLOT`-wide slot (slots are aligned on the Unix epoch) that `at` falls in; `at` itself when
/// it is on a slot boundary.
fn slot_end(at: DateTime<Utc>) -> DateTime<Utc> {
    let slot_ns = SLOT.as_nanos() as i64;
    let Some(ns) = at.timestamp_nanos_opt() else {
        return at;
    };
    let into = ns.rem_euclid(slot_ns);
    if into == 0 {
        return at;
    }
    at.checked_add_signed(TimeDelta::nanoseconds(slot_ns - into))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn t0() -> DateTime<Utc> {
        // 2023-11-14T22:13:20Z is a valid timestamp, so this always returns Some.
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn ms(n: i64) -> TimeDelta {
        TimeDelta::milliseconds(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A schedule whose targets are first due at the given offsets (in ms) after `t0`.
    fn schedule(intervals_s: &[u64], first_ms: &[u64]) -> Schedule {
        let mut firsts = first_ms.iter().copied();
        Schedule::new(
            intervals_s.iter().copied().map(secs).collect(),
            t0(),
            |_| Duration::from_millis(firsts.next().unwrap()),
        )
    }

    #[test]
    fn probes_due_in_one_slot_start_together_at_its_end() {
        let mut s = schedule(&[10, 10, 10], &[1_001, 1_019, 1_021]);
        assert_eq!(s.next_wake(), Some(t0() + ms(1_020)));
        assert!(s.take_due(t0() + ms(1_000)).is_empty());
        let mut started = s.take_due(t0() + ms(1_020));
        started.sort_unstable();
        assert_eq!(started, [0, 1]);
        assert_eq!(s.next_wake(), Some(t0() + ms(1_040)));
        assert_eq!(s.take_due(t0() + ms(1_040)), [2]);
    }

    #[test]
    fn a_due_on_a_slot_boundary_wakes_exactly_then() {
        let s = schedule(&[10], &[2_000]);
        assert_eq!(s.next_wake(), Some(t0() + ms(2_000)));
    }

    #[test]
    fn each_target_is_due_again_one_interval_after_its_due_time() {
        let mut s = schedule(&[10, 3], &[500, 700]);
        assert_eq!(s.take_due(t0() + ms(720)).len(), 2);
        assert_eq!(s.take_due(t0() + ms(3_700)), [1], "3 s after 700 ms");
        assert_eq!(s.take_due(t0() + ms(6_700)), [1]);
        assert_eq!(
            s.take_due(t0() + ms(10_500)),
            [1, 0],
            "soonest first: 9.7 s, then 10.5 s"
        );
    }

    #[test]
    fn a_target_still_running_at_its_due_time_runs_once_more_when_it_ends_never_twice_at_once() {
        let runs = Runs::new(2);
        assert!(runs.due(0), "idle: starts");
        assert!(!runs.due(0), "running: not a second time");
        assert!(
            !runs.due(0),
            "due twice while running: still one more run, not two"
        );
        assert!(
            runs.ended(0),
            "its due time came meanwhile: runs again at once"
        );
        assert!(!runs.ended(0), "nothing came during the second run");
        assert!(runs.due(0), "idle again");
        runs.stop(0);
        assert!(runs.due(0), "a cancelled check leaves the target idle");
        assert!(runs.due(1), "targets are independent");
        assert!(!runs.due(7) && !runs.ended(7), "no such target");
    }

    #[test]
    fn a_jump_of_several_intervals_starts_each_target_once_and_keeps_its_phase() {
        let mut s = schedule(&[10, 10], &[1_000, 6_000]);
        let mut started = s.take_due(t0() + ms(3_600_000));
        started.sort_unstable();
        assert_eq!(started, [0, 1], "once each, not 360 times");
        // Their next due times keep the 5 s between them.
        assert_eq!(s.take_due(t0() + ms(3_601_000)), [0]);
        assert_eq!(s.take_due(t0() + ms(3_606_000)), [1]);
    }

    #[test]
    fn a_clock_stepped_back_moves_every_due_time_back_with_it() {
        let mut s = schedule(&[10, 10], &[1_000, 6_000]);
        s.observe(t0() + ms(500));
        // The wall clock is set back an hour: the targets are still due 0.5 s and 5.5 s from now.
        let back = t0() + ms(500) - TimeDelta::hours(1);
        s.observe(back);
        assert_eq!(s.take_due(back + ms(500)), [0]);
        assert_eq!(s.take_due(back + ms(5_500)), [1]);
        // A reading a few ms early (a sleep that ended a little before the wall clock caught up) moves nothing.
        let mut s = schedule(&[10], &[1_000]);
        s.sleeping(t0(), secs(1));
        s.woke(Duration::ZERO);
        s.observe(t0() + ms(995));
        assert!(s.take_due(t0() + ms(995)).is_empty());
        assert_eq!(s.take_due(t0() + ms(1_000)), [0]);
    }

    #[test]
    fn a_sleep_that_ends_long_before_its_time_on_the_clock_means_the_clock_went_back() {
        let mut s = schedule(&[10], &[5_000]);
        s.observe(t0());
        s.sleeping(t0(), secs(5));
        s.woke(Duration::ZERO);
        // The sleep took 5 s, but the clock reads 2 s: it was set back 3 s meanwhile.
        s.observe(t0() + ms(2_000));
        assert_eq!(s.take_due(t0() + ms(2_000)), [0]);
    }

    #[test]
    fn no_wait_is_longer_than_the_longest_interval() {
        assert_eq!(schedule(&[10, 60, 5], &[0, 0, 0]).longest_wait(), secs(60));
        assert_eq!(
            Schedule::new(Vec::new(), t0(), |_| Duration::ZERO).next_wake(),
            None
        );
    }

    #[test]
    fn next_due_skips_missed_intervals_and_keeps_the_phase() {
        let i = secs(10);
        assert_eq!(next_due(t0(), t0() + ms(3), i), t0() + ms(10_000));
        assert_eq!(next_due(t0(), t0() + ms(9_999), i), t0() + ms(10_000));
        assert_eq!(next_due(t0(), t0() + ms(10_000), i), t0() + ms(20_000));
        assert_eq!(next_due(t0(), t0() + ms(35_000), i), t0() + ms(40_000));
        assert_eq!(
            next_due(DateTime::<Utc>::MAX_UTC, t0(), i),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn slots_are_aligned_on_the_epoch() {
        assert_eq!(slot_end(t0() + ms(1)), t0() + ms(20));
        assert_eq!(slot_end(t0() + ms(20)), t0() + ms(20));
        assert_eq!(
            slot_end(t0() + TimeDelta::nanoseconds(20_000_001)),
            t0() + ms(40)
        );
        assert_eq!(slot_end(DateTime::<Utc>::MAX_UTC), DateTime::<Utc>::MAX_UTC);
    }

    /// The targets' due times in the order they come, from the queue as it is.
    fn due_times(s: &Schedule) -> Vec<(DateTime<Utc>, usize)> {
        let mut due: Vec<(DateTime<Utc>, usize)> =
            s.queue.iter().map(|Reverse(entry)| *entry).collect();
        due.sort_unstable();
        due
    }

    #[test]
    fn a_forward_jump_spreads_the_targets_it_skipped_over_their_interval_each_at_its_phase() {
        // Four targets every 10 s, spread over the interval; the scheduler sleeps until the first is due.
        let clock = ManualClock::new(t0());
        let mut s = schedule(&[10, 10, 10, 10], &[1_000, 3_500, 6_000, 8_500]);
        assert_eq!(s.observe(clock.now()), None);
        s.sleeping(clock.now(), secs(1));
        // A suspend of an hour: the sleep ends after 1 s of real time, the clock reads an hour more.
        clock.advance(Duration::from_millis(3_601_200));
        s.woke(secs(1));
        let resumed = clock.now();
        assert_eq!(resumed, t0() + ms(3_601_000 + 200));
        let jump = s.observe(resumed);
        // Only the target the scheduler woke for is due now: not all four at once.
        assert_eq!(s.take_due(resumed), [0]);
        assert_eq!(
            jump,
            Some(ForwardJump {
                by: Duration::from_millis(3_600_200),
                spread: 3
            })
        );
        // The others come at their own phase within the next interval, each once; the first comes back
        // one interval after its due time's phase.
        let base = t0() + ms(3_600_000);
        assert_eq!(
            due_times(&s),
            [
                (base + ms(3_500), 1),
                (base + ms(6_000), 2),
                (base + ms(8_500), 3),
                (base + ms(11_000), 0),
            ]
        );
        assert_eq!(s.take_due(base + ms(3_500)), [1]);
        assert_eq!(s.take_due(base + ms(6_000)), [2]);
        assert_eq!(s.take_due(base + ms(8_500)), [3]);
        assert_eq!(s.take_due(base + ms(11_000)), [0]);
    }

    #[test]
    fn a_clock_that_moved_on_before_the_first_sleep_is_no_jump() {
        let mut s = schedule(&[10, 10], &[1_000, 6_000]);
        let now = t0() + ms(10_000);
        assert_eq!(s.observe(now), None);
        assert_eq!(s.take_due(now), [0, 1]);
    }

    #[test]
    fn a_scheduler_that_ran_late_is_no_jump_and_starts_what_it_owes() {
        // The sleep of 1 s took 3 s of real time (a starved runtime): the clock reads what it should.
        let mut s = schedule(&[10, 10], &[1_000, 2_500]);
        s.observe(t0());
        s.sleeping(t0(), secs(1));
        s.woke(secs(3));
        let now = t0() + ms(3_000);
        assert_eq!(s.observe(now), None);
        assert_eq!(s.take_due(now), [0, 1]);
        // A step forward within FORWARD_JUMP is followed as it is.
        let mut s = schedule(&[10, 10], &[1_000, 1_900]);
        s.observe(t0());
        s.sleeping(t0(), secs(1));
        s.woke(Duration::ZERO);
        let now = t0() + ms(1_000) + TimeDelta::from_std(FORWARD_JUMP).unwrap();
        assert_eq!(s.observe(now), None);
        assert_eq!(s.take_due(now), [0, 1]);
    }
}
