//! Delivers notices to the channels in the background. `send` only queues; the worker ("alert-delivery")
//! stores one `pending` row per notice and channel and queues it for its channel. A notice waiting when a
//! later one about the same alert (rule and target) reaches the same channel is `superseded` by it (never an
//! announcement: each is alone in its lane); past `delivery.max_queued_per_channel` the oldest waiting
//! notice becomes a dead letter. Attempts are bounded:
//! at most `delivery.max_concurrent` in flight, `delivery.max_concurrent_per_channel` per channel, one per
//! alert and channel at a time (its notices go out in order), each through the channel's circuit breaker,
//! so a dead or hanging receiver holds a few connections and its queue waits while the breaker is open. A
//! failed attempt is retried up to `delivery.max_attempts` times after an exponential backoff (a 429's
//! `retry_after` instead when a receiver asks), without holding a slot while it waits, and the row ends
//! `delivered` or `dead` (a dead letter with the last error). Rows a previous run left pending go through
//! the same queue at start, paced at `delivery.resume_per_s` per channel; at cancel, work stops at once and
//! what is unfinished stays (or is stored as) `pending` for the next start. Each loop publishes its
//! `Progress` as it parks, so a test on a `ManualClock` can tell "nothing more will be sent" from "not yet".

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerts::channels::alertmanager::Alertmanager;
use crate::alerts::channels::discord::Discord;
use crate::alerts::channels::email::Email;
use crate::alerts::channels::log::LogChannel;
use crate::alerts::channels::webhook::Webhook;
use crate::alerts::channels::{scrub, Channel, Failure};
use crate::alerts::{AnnouncementRule, Notice};
use crate::breaker::{BreakerState, Permit, SharedBreaker, Transition};
use crate::clock::{Clock, Ticker};
use crate::config::{ChannelKind, ChannelsConfig, DeliveryConfig};
use crate::metrics::{AlertMetrics, AlertResult};
use crate::records::AlertLevel;
use crate::store::Store;
use crate::worker::Worker;

/// The error stored on a row that a later notice of the same alert replaced.
const SUPERSEDED: &str = "superseded by a later notice of the same alert to the same channel";

/// A new notice for one channel, from `send` to the worker.
#[derive(Debug)]
struct Job {
    notice: Arc<Notice>,
    channel: ChannelKind,
}

/// Notices in one lane of a channel go out one after the other, and a later one replaces one still waiting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lane {
    /// One alert: its rule and target (every incident of it, so a flapping target keeps one lane).
    Alert { rule: String, target: String },
    /// A resumed row whose alert is no longer known, or a resumed announcement: alone in its lane.
    Row(i64),
    /// An announcement (`Notice::one_off`): alone in its lane, numbered by the worker.
    OneOff(u64),
}

/// A notice waiting for, or in, a delivery attempt.
#[derive(Debug)]
struct Queued {
    /// Its `alert_deliveries` row; none when it could not be stored.
    row: Option<i64>,
    /// The alert event it tells of, to store the row later when it could not be stored at first.
    event_id: Option<i64>,
    lane: Lane,
    payload: String,
    attempts: u32,
    /// The attempt after which it is a dead letter (a resumed row gets at least one more).
    limit: u32,
    /// The rule and level, for the metrics' labels, when known.
    labels: Option<(AlertLevel, String)>,
    /// Not tried before this instant: a retry's backoff, or a resumed row's turn.
    not_before: Option<DateTime<Utc>>,
}

impl Queued {
    fn rule(&self) -> &str {
        self.labels.as_ref().map_or("", |(_, rule)| rule.as_str())
    }
}

/// One channel's part of the worker: the notices waiting, the lanes in flight, and its breaker.
struct ChannelQueue {
    channel: Arc<dyn Channel>,
    waiting: VecDeque<Queued>,
    /// Lanes with an attempt in flight: as many as this channel's attempts in flight.
    busy: HashSet<Lane>,
    breaker: SharedBreaker,
    /// The queue reached its bound (logged once, until it is back under half of it).
    full: bool,
}

/// What the worker's queues hold; owned by the worker task alone.
struct Queues {
    channels: HashMap<ChannelKind, ChannelQueue>,
    in_flight: usize,
    /// The channel and lane of each attempt task, to free them even when the task panicked.
    tasks: HashMap<tokio::task::Id, (ChannelKind, Lane)>,
    /// The last `Lane::OneOff` number given.
    one_offs: u64,
}

/// Notices taken out of a queue unsent, to mark in the database and count.
#[derive(Default)]
struct Evicted {
    superseded: Vec<(ChannelKind, Queued)>,
    dropped: Vec<(ChannelKind, Queued)>,
}

/// How an attempt task ended.
enum Done {
    /// Delivered, or a dead letter: the row is final.
    Finished,
    /// To be tried again once its `not_before` has come.
    Retry(Queued),
    /// Cancelled: the row stays pending for the next start.
    Stopped,
}

/// Where `Dispatcher::hand` put a notice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handed {
    /// The channels it was queued for: those asked for that are configured, and Alertmanager when it is
    /// configured.
    pub queued: Vec<ChannelKind>,
    /// The channels asked for that are not configured: skipped.
    pub skipped: Vec<ChannelKind>,
    /// Delivery had stopped (hale is shutting down): the notice was not queued for some channel.
    pub stopped: bool,
}

/// What the dispatcher's loops are doing, as they last published it (see `Dispatcher::progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The queue loop.
    worker: Activity,
    /// Attempts started and not finished yet.
    in_flight: usize,
    /// Alertmanager's re-post loop, when Alertmanager is configured.
    resend: Option<Activity>,
}

/// One loop of the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// Running, or about to: a notice from `send` is waiting for it, or its timer has come.
    Busy,
    /// Waiting, with nothing it could start before `until` (`None`: nothing waits for time).
    Parked { until: Option<DateTime<Utc>> },
}

impl Activity {
    fn parked_at(self, now: DateTime<Utc>) -> bool {
        match self {
            Self::Busy => false,
            Self::Parked { until } => until.is_none_or(|until| now < until),
        }
    }
}

impl Progress {
    /// True when, with the clock at `now`, the dispatcher has nothing to do: every notice handed to `send`
    /// has been taken, no attempt is in flight, and neither loop has anything due at or before `now` (a
    /// backoff, a resumed row's turn, a breaker's trial, Alertmanager's re-post). It then sends nothing more
    /// until the clock moves or `send` is called again.
    pub fn idle_at(&self, now: DateTime<Utc>) -> bool {
        self.in_flight == 0
            && self.worker.parked_at(now)
            && self.resend.is_none_or(|resend| resend.parked_at(now))
    }
}

pub struct Dispatcher {
    delivery: DeliveryConfig,
    channels: HashMap<ChannelKind, Arc<dyn Channel>>,
    alertmanager: Option<Arc<Alertmanager>>,
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: AlertMetrics,
    breaker: crate::breaker::BreakerSettings,
    queue: mpsc::UnboundedSender<Job>,
    /// Taken by the worker when it runs.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    /// Updated by each loop as it parks and by `send`: one watch update each, nothing more per attempt.
    progress: watch::Sender<Progress>,
}

impl std::fmt::Debug for Dispatcher {
    // Never the channels' config: only which channels are configured.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut configured: Vec<&str> = self.channels.keys().map(|c| c.as_str()).collect();
        configured.sort_unstable();
        f.debug_struct("Dispatcher")
            .field("channels", &configured)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(
        channels: ChannelsConfig,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: AlertMetrics,
    ) -> Self {
        let timeout = Duration::from_secs(channels.delivery.timeout_s.max(1));
        // Idle connections are bounded too: with the attempts in flight they stay within
        // `limits::delivery_descriptors`, which the probes' budget keeps out of their share.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(channels.delivery.max_concurrent_per_channel)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hale/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only fails when the TLS backend cannot start; the default client then reports each attempt.
            .unwrap_or_default();
        let mut map: HashMap<ChannelKind, Arc<dyn Channel>> = HashMap::new();
        map.insert(ChannelKind::Log, Arc::new(LogChannel));
        if let Some(discord) = channels.discord {
            map.insert(
                ChannelKind::Discord,
                Arc::new(Discord::new(discord, client.clone())),
            );
        }
        if let Some(webhook) = channels.webhook {
            map.insert(
                ChannelKind::Webhook,
                Arc::new(Webhook::new(webhook, client.clone())),
            );
        }
        if let Some(email) = channels.email {
            map.insert(ChannelKind::Email, Arc::new(Email::new(email, timeout)));
        }
        let alertmanager = channels
            .alertmanager
            .map(|am| Arc::new(Alertmanager::new(am, client)));
        if let Some(am) = &alertmanager {
            map.insert(ChannelKind::Alertmanager, am.clone());
        }
        let (queue, receiver) = mpsc::unbounded_channel();
        let progress = watch::Sender::new(Progress {
            worker: Activity::Busy,
            in_flight: 0,
            resend: alertmanager.as_ref().map(|_| Activity::Busy),
        });
        Self {
            breaker: channels.delivery.breaker.settings(),
            delivery: channels.delivery,
            channels: map,
            alertmanager,
            store,
            clock,
            metrics,
            queue,
            receiver: Mutex::new(Some(receiver)),
            progress,
        }
    }

    /// What the dispatcher is doing, updated each time one of its loops is about to wait and each time
    /// `send` queues a notice. A test on a `ManualClock` waits for `Progress::idle_at(clock.now())` before it
    /// asserts that nothing more was sent: a negative cannot be waited for, but this barrier can.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Hands a notice to each of `channels` that is configured, and to Alertmanager when it is configured
    /// (it receives every notice, whichever channels the rule names: it routes and silences by itself).
    /// Never waits: the worker delivers in the background.
    pub fn send(&self, notice: Notice, channels: &[ChannelKind]) {
        self.hand(notice, channels);
    }

    /// `send`, saying where the notice went: the channels it was queued for, those skipped as not
    /// configured, and whether delivery had stopped (hale is shutting down: nothing was queued).
    pub fn hand(&self, notice: Notice, channels: &[ChannelKind]) -> Handed {
        let mut handed = Handed::default();
        let mut targets: Vec<ChannelKind> = Vec::new();
        for &channel in channels {
            if !self.configured(channel) {
                tracing::debug!(rule = %notice.rule, channel = channel.as_str(), "channel not configured; notice skipped");
                if !handed.skipped.contains(&channel) {
                    handed.skipped.push(channel);
                }
            } else if !targets.contains(&channel) {
                targets.push(channel);
            }
        }
        if self.alertmanager.is_some() && !targets.contains(&ChannelKind::Alertmanager) {
            targets.push(ChannelKind::Alertmanager);
        }
        if targets.is_empty() {
            return handed;
        }
        let notice = Arc::new(notice);
        for channel in targets {
            let job = Job {
                notice: notice.clone(),
                channel,
            };
            if self.queue.send(job).is_err() {
                // The receiver lives as long as the dispatcher; it is only gone once the worker stopped.
                tracing::warn!(rule = %notice.rule, channel = channel.as_str(), "alert delivery has stopped; notice not sent");
                handed.stopped = true;
            } else {
                handed.queued.push(channel);
            }
        }
        // After the jobs are queued: the worker, publishing under the same lock, then sees them waiting.
        self.progress.send_if_modified(|p| {
            std::mem::replace(&mut p.worker, Activity::Busy) != Activity::Busy
        });
        handed
    }

    /// Every configured channel (`log` always), in `ChannelKind::ALL`'s order.
    pub fn configured_channels(&self) -> Vec<ChannelKind> {
        ChannelKind::ALL
            .into_iter()
            .filter(|&channel| self.configured(channel))
            .collect()
    }

    /// An alert still firing when hale started (read back from the database): Alertmanager, when configured,
    /// hears of it again at its next re-post round, so it does not resolve it for lack of news. Nothing is
    /// sent to any other channel: they were notified before the restart.
    pub fn restore_firing(&self, notice: &Notice) {
        if let Some(am) = &self.alertmanager {
            am.restore(notice);
        }
    }

    /// True when the channel can be used (`log` always can).
    pub fn configured(&self, channel: ChannelKind) -> bool {
        self.channels.contains_key(&channel)
    }

    /// Empty queues, one per configured channel, each with a closed breaker.
    fn queues(&self) -> Queues {
        let channels = self
            .channels
            .iter()
            .map(|(&kind, channel)| {
                let breaker = SharedBreaker::new(
                    format!("alert channel {}", kind.as_str()),
                    self.breaker,
                    self.clock.clone(),
                );
                let queue = ChannelQueue {
                    channel: channel.clone(),
                    waiting: VecDeque::new(),
                    busy: HashSet::new(),
                    breaker,
                    full: false,
                };
                (kind, queue)
            })
            .collect();
        Queues {
            channels,
            in_flight: 0,
            tasks: HashMap::new(),
            one_offs: 0,
        }
    }

    /// Queues a notice for its channel (`front` for a retry, which is older than anything waiting in its
    /// lane). A notice of the same alert still waiting is superseded by the newer of the two; past the bound
    /// the oldest waiting notices are dropped.
    fn enqueue(
        &self,
        queues: &mut Queues,
        kind: ChannelKind,
        item: Queued,
        front: bool,
        evicted: &mut Evicted,
    ) {
        let Some(queue) = queues.channels.get_mut(&kind) else {
            return;
        };
        let same_alert = match &item.lane {
            Lane::Alert { .. } => queue.waiting.iter().position(|w| w.lane == item.lane),
            Lane::Row(_) | Lane::OneOff(_) => None,
        };
        if let Some(at) = same_alert {
            if front {
                // A retry of a notice that a later one already replaces: the later one goes instead.
                evicted.superseded.push((kind, item));
                return;
            }
            if let Some(older) = queue.waiting.remove(at) {
                evicted.superseded.push((kind, older));
            }
        }
        if front {
            queue.waiting.push_front(item);
        } else {
            queue.waiting.push_back(item);
        }
        while queue.waiting.len() > self.delivery.max_queued_per_channel {
            match queue.waiting.pop_front() {
                Some(oldest) => evicted.dropped.push((kind, oldest)),
                None => break,
            }
        }
    }

    /// Marks the evicted notices in the database, counts them and logs a queue that filled up.
    async fn settle(&self, queues: &mut Queues, evicted: Evicted) {
        if !evicted.superseded.is_empty() {
            let ids: Vec<i64> = evicted
                .superseded
                .iter()
                .filter_map(|(_, q)| q.row)
                .collect();
            if let Err(e) = self.store.deliveries_superseded(&ids, SUPERSEDED).await {
                tracing::error!(rows = ids.len(), error = %e, "cannot mark superseded alert deliveries");
            }
            for (kind, item) in &evicted.superseded {
                self.count(&item.labels, *kind, AlertResult::Superseded);
            }
            tracing::debug!(
                notices = evicted.superseded.len(),
                "alert notices superseded by later notices of the same alert"
            );
        }
        let mut by_channel: HashMap<ChannelKind, Vec<Queued>> = HashMap::new();
        for (kind, item) in evicted.dropped {
            by_channel.entry(kind).or_default().push(item);
        }
        for (kind, dropped) in by_channel {
            let name = kind.as_str();
            let bound = self.delivery.max_queued_per_channel;
            let reason = format!(
                "not sent: the queue of channel {name} was full ({bound} notices waiting) and this was its oldest"
            );
            let ids: Vec<i64> = dropped.iter().filter_map(|q| q.row).collect();
            if let Err(e) = self.store.deliveries_dropped(&ids, &reason).await {
                tracing::error!(channel = name, rows = ids.len(), error = %e, "cannot mark dropped alert deliveries");
            }
            for item in &dropped {
                self.count(&item.labels, kind, AlertResult::Dropped);
            }
            if let Some(queue) = queues.channels.get_mut(&kind) {
                if !queue.full {
                    queue.full = true;
                    tracing::warn!(
                        channel = name,
                        max_queued_per_channel = bound,
                        dropped = dropped.len(),
                        breaker = queue.breaker.state().as_str(),
                        "alert channel queue full; its oldest notices become dead letters"
                    );
                }
            }
        }
    }

    fn count(&self, labels: &Option<(AlertLevel, String)>, kind: ChannelKind, result: AlertResult) {
        if let Some((level, rule)) = labels {
            self.metrics.notice(*level, rule, kind.as_str(), result);
        }
    }

    /// Stores a new notice as a `pending` row and queues it.
    async fn accept(&self, queues: &mut Queues, job: Job) {
        let Job { notice, channel } = job;
        let Some(ch) = queues.channels.get(&channel).map(|q| q.channel.clone()) else {
            return;
        };
        let payload = ch.payload(&notice);
        let row = match self
            .store
            .insert_delivery(
                notice.event_id,
                channel.as_str(),
                &payload,
                self.clock.now(),
            )
            .await
        {
            Ok(id) => Some(id),
            Err(e) => {
                // The notice still goes out; only its record is missing.
                tracing::error!(channel = channel.as_str(), rule = %notice.rule, error = %e, "cannot store an alert delivery");
                None
            }
        };
        let lane = if notice.one_off {
            queues.one_offs += 1;
            Lane::OneOff(queues.one_offs)
        } else {
            Lane::Alert {
                rule: notice.rule.clone(),
                target: notice.target.clone(),
            }
        };
        let item = Queued {
            row,
            event_id: Some(notice.event_id),
            lane,
            payload,
            attempts: 0,
            limit: self.delivery.max_attempts.max(1),
            labels: Some((notice.level, notice.rule.clone())),
            not_before: None,
        };
        let mut evicted = Evicted::default();
        self.enqueue(queues, channel, item, false, &mut evicted);
        self.settle(queues, evicted).await;
    }

    /// Queues the rows a previous run left pending, each channel's paced at `resume_per_s`, after
    /// collapsing and bounding them as new notices are; a row whose channel is gone becomes a dead letter.
    async fn resume(&self, queues: &mut Queues) {
        let pending = match self.store.pending_deliveries().await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the alert deliveries left pending; they wait for the next start");
                return;
            }
        };
        if pending.is_empty() {
            return;
        }
        let total = pending.len();
        let mut evicted = Evicted::default();
        let mut unconfigured: HashMap<String, Vec<i64>> = HashMap::new();
        for row in pending {
            let Some(kind) =
                ChannelKind::parse(&row.channel).filter(|k| queues.channels.contains_key(k))
            else {
                unconfigured.entry(row.channel).or_default().push(row.id);
                continue;
            };
            let lane = match (&row.rule, &row.target) {
                // An announcement's rule is reserved (`alerts.rules` cannot use it): each row is its own.
                (Some(rule), Some(target)) if AnnouncementRule::parse(rule).is_none() => {
                    Lane::Alert {
                        rule: rule.clone(),
                        target: target.clone(),
                    }
                }
                _ => Lane::Row(row.id),
            };
            let item = Queued {
                row: Some(row.id),
                event_id: row.alert_event_id,
                lane,
                payload: row.payload,
                attempts: row.attempts,
                limit: self
                    .delivery
                    .max_attempts
                    .max(row.attempts.saturating_add(1)),
                labels: row.level.zip(row.rule),
                not_before: None,
            };
            self.enqueue(queues, kind, item, false, &mut evicted);
        }
        let start = self.clock.now();
        let step = Duration::from_secs(1) / self.delivery.resume_per_s.max(1);
        let mut queued = 0;
        for queue in queues.channels.values_mut() {
            let mut at = start;
            for item in &mut queue.waiting {
                item.not_before = Some(at);
                at = crate::clock::add_saturating(at, step);
                queued += 1;
            }
        }
        tracing::info!(
            deliveries = total,
            queued,
            superseded = evicted.superseded.len(),
            dropped = evicted.dropped.len(),
            resume_per_s = self.delivery.resume_per_s,
            "resuming alert deliveries left pending"
        );
        self.settle(queues, evicted).await;
        for (channel, ids) in unconfigured {
            let error = format!("channel {channel} is not configured any more");
            tracing::warn!(channel = %channel, rows = ids.len(), "alert deliveries left pending cannot be resumed: their channel is not configured; kept as dead letters");
            if let Err(e) = self.store.deliveries_dropped(&ids, &error).await {
                tracing::error!(channel = %channel, error = %e, "cannot record an alert delivery");
            }
        }
    }

    /// Starts every attempt the bounds and breakers allow now. Returns when something waiting may start
    /// without any other event (a backoff ends, a resumed row's turn comes, a breaker allows a trial).
    fn pump(
        self: &Arc<Self>,
        queues: &mut Queues,
        tasks: &mut JoinSet<Done>,
        cancel: &CancellationToken,
    ) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        let mut wake: Option<DateTime<Utc>> = None;
        let mut soonest = |at: DateTime<Utc>| {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        };
        for kind in ChannelKind::ALL {
            let Some(queue) = queues.channels.get_mut(&kind) else {
                continue;
            };
            if queue.full && queue.waiting.len() <= self.delivery.max_queued_per_channel / 2 {
                queue.full = false;
                tracing::info!(
                    channel = kind.as_str(),
                    waiting = queue.waiting.len(),
                    "alert channel queue back under half its bound"
                );
            }
            while queues.in_flight < self.delivery.max_concurrent
                && queue.busy.len() < self.delivery.max_concurrent_per_channel
            {
                // The first notice whose lane is free and whose turn has come; a lane's later notices wait
                // behind its first.
                let mut blocked: HashSet<&Lane> = HashSet::new();
                let mut next = None;
                for (i, item) in queue.waiting.iter().enumerate() {
                    if queue.busy.contains(&item.lane) || blocked.contains(&item.lane) {
                        continue;
                    }
                    match item.not_before {
                        Some(at) if at > now => {
                            soonest(at);
                            blocked.insert(&item.lane);
                        }
                        _ => {
                            next = Some(i);
                            break;
                        }
                    }
                }
                let Some(i) = next else {
                    break;
                };
                let permit = match queue.breaker.try_acquire() {
                    Ok((permit, transition)) => {
                        log_transition(kind, transition);
                        permit
                    }
                    Err(rejected) => {
                        // Open: its notices wait for `retry_at`; half-open: for the trial in flight.
                        if let Some(at) = rejected.retry_at {
                            soonest(at);
                        }
                        break;
                    }
                };
                let Some(item) = queue.waiting.remove(i) else {
                    break;
                };
                queue.busy.insert(item.lane.clone());
                queues.in_flight += 1;
                let lane = item.lane.clone();
                let this = self.clone();
                let channel = queue.channel.clone();
                let cancel = cancel.clone();
                let handle = tasks
                    .spawn(async move { this.attempt(kind, channel, item, permit, cancel).await });
                queues.tasks.insert(handle.id(), (kind, lane));
            }
        }
        wake
    }

    /// An attempt task ended: frees its slot and lane, and queues a retry again.
    async fn finished(
        &self,
        queues: &mut Queues,
        joined: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
    ) {
        let (id, done) = match joined {
            Ok((id, done)) => (id, Some(done)),
            Err(e) => {
                tracing::error!(error = %e, "an alert delivery task failed");
                (e.id(), None)
            }
        };
        let Some((kind, lane)) = queues.tasks.remove(&id) else {
            return;
        };
        queues.in_flight = queues.in_flight.saturating_sub(1);
        if let Some(queue) = queues.channels.get_mut(&kind) {
            queue.busy.remove(&lane);
        }
        if let Some(Done::Retry(item)) = done {
            let mut evicted = Evicted::default();
            self.enqueue(queues, kind, item, true, &mut evicted);
            self.settle(queues, evicted).await;
        }
    }

    /// One attempt at delivering a queued notice, through the channel's breaker, and its record: delivered,
    /// a dead letter, or a failure to retry after a backoff (handed back to the worker).
    async fn attempt(
        self: Arc<Self>,
        kind: ChannelKind,
        channel: Arc<dyn Channel>,
        mut item: Queued,
        permit: Permit,
        cancel: CancellationToken,
    ) -> Done {
        let name = kind.as_str();
        let timeout = Duration::from_secs(self.delivery.timeout_s.max(1));
        let outcome = tokio::select! {
            // Cancellation first: an attempt started as hale stops must not open a connection.
            biased;
            // The permit is dropped unreported: the breaker does not count this attempt.
            _ = cancel.cancelled() => return Done::Stopped,
            outcome = tokio::time::timeout(timeout, channel.deliver(&item.payload)) => outcome,
        };
        item.attempts += 1;
        let now = self.clock.now();
        let rule = item.rule().to_owned();
        let attempts = item.attempts;
        let failure = match outcome {
            Ok(Ok(())) => {
                log_transition(kind, permit.success());
                if let Some(id) = item.row {
                    if let Err(e) = self.store.delivery_delivered(id, attempts, now).await {
                        tracing::error!(channel = name, row = id, error = %e, "cannot record an alert delivery");
                    }
                }
                self.count(&item.labels, kind, AlertResult::Sent);
                tracing::debug!(channel = name, rule, attempts, "alert notice delivered");
                return Done::Finished;
            }
            Ok(Err(failure)) => failure,
            Err(_) => Failure::transient(format!("no answer within {}s", timeout.as_secs())),
        };
        // A receiver that answered, even with a refusal retrying cannot fix, is up: only transient
        // failures count against the channel's breaker.
        let transition = if failure.permanent {
            permit.success()
        } else {
            permit.failure()
        };
        log_transition(kind, transition);
        let error = scrub(&failure.error, &channel.secrets());
        if failure.permanent || attempts >= item.limit {
            if let Some(id) = item.row {
                if let Err(e) = self.store.delivery_dead(id, attempts, now, &error).await {
                    tracing::error!(channel = name, row = id, error = %e, "cannot record an alert delivery");
                }
            }
            self.count(&item.labels, kind, AlertResult::DeadLetter);
            tracing::error!(channel = name, rule, attempts, error = %error, "alert notice not delivered; kept as a dead letter");
            return Done::Finished;
        }
        if let Some(id) = item.row {
            if let Err(e) = self
                .store
                .delivery_attempt_failed(id, attempts, now, &error)
                .await
            {
                tracing::error!(channel = name, row = id, error = %e, "cannot record an alert delivery");
            }
        }
        self.count(&item.labels, kind, AlertResult::Retried);
        let wait = failure
            .retry_after
            .unwrap_or_else(|| self.delivery.backoff(attempts + 1));
        tracing::info!(channel = name, rule, attempts, wait_ms = wait.as_millis() as u64, error = %error, "alert notice delivery failed; retrying");
        item.not_before = Some(crate::clock::add_saturating(now, wait));
        Done::Retry(item)
    }

    /// Stores as `pending` rows, for the next start, the notices not stored yet: those still in the channel
    /// from `send`, and queued ones whose row could not be stored.
    async fn keep_for_next_start(&self, queues: &Queues, jobs: Vec<Job>) {
        let mut kept = 0;
        let now = self.clock.now();
        for job in jobs {
            let Some(queue) = queues.channels.get(&job.channel) else {
                continue;
            };
            let payload = queue.channel.payload(&job.notice);
            match self
                .store
                .insert_delivery(job.notice.event_id, job.channel.as_str(), &payload, now)
                .await
            {
                Ok(_) => kept += 1,
                Err(e) => {
                    tracing::error!(channel = job.channel.as_str(), rule = %job.notice.rule, error = %e, "cannot keep an alert notice for the next start; it is lost");
                }
            }
        }
        for (kind, queue) in &queues.channels {
            for item in queue.waiting.iter().filter(|q| q.row.is_none()) {
                let event = item.event_id.unwrap_or(0);
                match self
                    .store
                    .insert_delivery(event, kind.as_str(), &item.payload, now)
                    .await
                {
                    Ok(_) => kept += 1,
                    Err(e) => {
                        tracing::error!(channel = kind.as_str(), rule = item.rule(), error = %e, "cannot keep an alert notice for the next start; it is lost");
                    }
                }
            }
        }
        if kept > 0 {
            tracing::info!(
                notices = kept,
                "alert notices kept pending for the next start"
            );
        }
    }

    /// Publishes what Alertmanager's re-post loop is doing.
    fn publish_resend(&self, resend: Activity) {
        self.progress
            .send_if_modified(|p| p.resend.replace(resend) != Some(resend));
    }

    async fn resend_loop(self: Arc<Self>, am: Arc<Alertmanager>, cancel: CancellationToken) {
        let period = am.resend_interval();
        let mut ticker = Ticker::new(self.clock.clone(), period, period);
        loop {
            self.publish_resend(Activity::Parked {
                until: Some(ticker.next()),
            });
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.publish_resend(Activity::Busy);
            let resend = tokio::select! {
                _ = cancel.cancelled() => return,
                resend = am.resend() => resend,
            };
            if let Err(failure) = resend {
                let error = scrub(&failure.error, &am.secrets());
                tracing::warn!(channel = "alertmanager", firing = am.firing_count(), error = %error, "cannot post the firing alerts again; next try in resend_interval_s");
            }
        }
    }
}

/// Logs a change of a channel's breaker: opened (its notices wait), half-open (one trial), closed.
fn log_transition(kind: ChannelKind, transition: Option<Transition>) {
    let Some(t) = transition else {
        return;
    };
    let channel = kind.as_str();
    match t.to {
        BreakerState::Open => tracing::warn!(
            channel,
            reason = t.reason.as_str(),
            retry_at = ?t.retry_at,
            "alert channel circuit breaker open; its notices wait"
        ),
        BreakerState::HalfOpen => tracing::info!(
            channel,
            "alert channel circuit breaker half-open; trying one notice"
        ),
        BreakerState::Closed => tracing::info!(
            channel,
            "alert channel circuit breaker closed; deliveries resume"
        ),
    }
}

impl Worker for Dispatcher {
    fn name(&self) -> &'static str {
        "alert-delivery"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let receiver = self
                .receiver
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let Some(mut receiver) = receiver else {
                tracing::error!("alert delivery is already running");
                return;
            };
            let mut queues = self.queues();
            let mut tasks: JoinSet<Done> = JoinSet::new();
            self.resume(&mut queues).await;
            let resend = self
                .alertmanager
                .clone()
                .map(|am| tokio::spawn(self.clone().resend_loop(am, cancel.child_token())));
            loop {
                // A task that ended because of the cancellation must not start another attempt.
                if cancel.is_cancelled() {
                    break;
                }
                let wake = self.pump(&mut queues, &mut tasks, &cancel);
                // Under the watch's lock, so a notice `send` queued before it is seen here or marks the
                // worker busy after it.
                self.progress.send_if_modified(|p| {
                    let worker = if receiver.is_empty() {
                        Activity::Parked { until: wake }
                    } else {
                        Activity::Busy
                    };
                    let was = (p.worker, p.in_flight);
                    p.worker = worker;
                    p.in_flight = queues.in_flight;
                    was != (worker, queues.in_flight)
                });
                let sleep = wake.map(|at| {
                    let wait = (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
                    self.clock.sleep(wait)
                });
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break,
                    job = receiver.recv() => match job {
                        Some(job) => self.accept(&mut queues, job).await,
                        None => break,
                    },
                    Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                        self.finished(&mut queues, joined).await;
                    }
                    _ = async move {
                        match sleep {
                            Some(sleep) => sleep.await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
            }
            // Every attempt sees the cancellation and returns at once; its row stays pending.
            while let Some(joined) = tasks.join_next_with_id().await {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "an alert delivery task failed");
                }
            }
            if let Some(resend) = resend {
                let _ = resend.await;
            }
            receiver.close();
            let mut waiting: Vec<Job> = Vec::new();
            while let Ok(job) = receiver.try_recv() {
                waiting.push(job);
            }
            self.keep_for_next_start(&queues, waiting).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn t0() -> DateTime<Utc> {
        // 2023-11-14T22:13:20Z is a valid timestamp, so this always returns Some.
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn parked(until: Option<DateTime<Utc>>) -> Progress {
        Progress {
            worker: Activity::Parked { until },
            in_flight: 0,
            resend: None,
        }
    }

    #[test]
    fn idle_only_when_parked_with_nothing_in_flight_or_due() {
        let later = t0() + TimeDelta::seconds(60);
        assert!(parked(None).idle_at(t0()));
        assert!(parked(Some(later)).idle_at(t0()));
        // Something waiting may start at `until` itself.
        assert!(!parked(Some(later)).idle_at(later));
        assert!(!parked(Some(t0())).idle_at(later));
        let busy = Progress {
            worker: Activity::Busy,
            ..parked(None)
        };
        assert!(!busy.idle_at(t0()));
        let in_flight = Progress {
            in_flight: 1,
            ..parked(None)
        };
        assert!(!in_flight.idle_at(t0()));
    }

    #[test]
    fn the_resend_loop_counts_when_alertmanager_is_configured() {
        let later = t0() + TimeDelta::seconds(60);
        let resend = |resend| Progress {
            resend: Some(resend),
            ..parked(None)
        };
        assert!(resend(Activity::Parked { until: Some(later) }).idle_at(t0()));
        assert!(!resend(Activity::Parked { until: Some(later) }).idle_at(later));
        assert!(!resend(Activity::Busy).idle_at(t0()));
    }
}
