//! Delivers notices to the channels in the background. `send` only queues; the worker ("alert-delivery")
//! stores one `pending` row per notice and channel, tries it up to `delivery.max_attempts` times with an
//! exponential backoff (a 429's `retry_after` instead when a receiver asks), and marks it `delivered` or
//! `dead` (a dead letter with the last error). Each (channel, alert) is a lane: its notices go out in order,
//! while lanes run independently, so one slow channel or receiver never holds back another. Rows a previous
//! run left `pending` are resumed at start; at cancel, work stops at once and what is unfinished stays (or
//! is stored as) `pending` for the next start.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerts::channels::alertmanager::Alertmanager;
use crate::alerts::channels::discord::Discord;
use crate::alerts::channels::email::Email;
use crate::alerts::channels::log::LogChannel;
use crate::alerts::channels::webhook::Webhook;
use crate::alerts::channels::{scrub, Channel, Failure};
use crate::alerts::Notice;
use crate::clock::{Clock, Ticker};
use crate::config::{ChannelKind, ChannelsConfig, DeliveryConfig};
use crate::metrics::{AlertMetrics, AlertResult};
use crate::store::deliveries::PendingDelivery;
use crate::store::Store;
use crate::worker::Worker;

/// One delivery to make: a new notice for one channel, or a row a previous run left pending.
#[derive(Debug)]
enum Job {
    New {
        notice: Arc<Notice>,
        channel: ChannelKind,
    },
    Resume(PendingDelivery),
}

/// Deliveries in one lane go out one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    Alert(&'static str, i64),
    /// A resumed row whose alert is no longer known.
    Row(&'static str, i64),
}

impl Job {
    fn lane(&self) -> Lane {
        match self {
            Self::New { notice, channel } => Lane::Alert(channel.as_str(), notice.alert_id),
            Self::Resume(row) => {
                let channel =
                    ChannelKind::parse(&row.channel).map_or("unknown", ChannelKind::as_str);
                match row.alert_id {
                    Some(alert) => Lane::Alert(channel, alert),
                    None => Lane::Row(channel, row.id),
                }
            }
        }
    }
}

pub struct Dispatcher {
    delivery: DeliveryConfig,
    channels: HashMap<ChannelKind, Arc<dyn Channel>>,
    alertmanager: Option<Arc<Alertmanager>>,
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: AlertMetrics,
    queue: mpsc::UnboundedSender<Job>,
    /// Taken by the worker when it runs.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
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
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
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
        Self {
            delivery: channels.delivery,
            channels: map,
            alertmanager,
            store,
            clock,
            metrics,
            queue,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// Hands a notice to each of `channels` that is configured, and to Alertmanager when it is configured
    /// (it receives every notice, whichever channels the rule names: it routes and silences by itself).
    /// Never waits: the worker delivers in the background.
    pub fn send(&self, notice: Notice, channels: &[ChannelKind]) {
        let mut targets: Vec<ChannelKind> = Vec::new();
        for &channel in channels {
            if !self.configured(channel) {
                tracing::debug!(rule = %notice.rule, channel = channel.as_str(), "channel not configured; notice skipped");
            } else if !targets.contains(&channel) {
                targets.push(channel);
            }
        }
        if self.alertmanager.is_some() && !targets.contains(&ChannelKind::Alertmanager) {
            targets.push(ChannelKind::Alertmanager);
        }
        let notice = Arc::new(notice);
        for channel in targets {
            let job = Job::New {
                notice: notice.clone(),
                channel,
            };
            if self.queue.send(job).is_err() {
                // The receiver lives as long as the dispatcher; it is only gone once the worker stopped.
                tracing::warn!(rule = %notice.rule, channel = channel.as_str(), "alert delivery has stopped; notice not sent");
            }
        }
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

    /// Starts the delivery of a job in its own task; returns its lane when done.
    fn start(self: &Arc<Self>, tasks: &mut JoinSet<Lane>, job: Job, cancel: &CancellationToken) {
        let this = self.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let lane = job.lane();
            this.deliver(job, cancel).await;
            lane
        });
    }

    /// Stores (for a new notice) and delivers one job, retrying until delivered, dead or cancelled.
    async fn deliver(&self, job: Job, cancel: CancellationToken) {
        let (channel, row, payload, mut attempts, labels) = match job {
            Job::New { notice, channel } => {
                let Some(ch) = self.channels.get(&channel).cloned() else {
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
                let labels = Some((notice.level, notice.rule.clone()));
                (ch, row, payload, 0, labels)
            }
            Job::Resume(pending) => {
                let labels = pending.level.zip(pending.rule.clone());
                let Some(ch) = ChannelKind::parse(&pending.channel)
                    .and_then(|c| self.channels.get(&c).cloned())
                else {
                    let error = format!("channel {} is not configured any more", pending.channel);
                    tracing::warn!(channel = %pending.channel, row = pending.id, "a pending alert delivery cannot be resumed: its channel is not configured; kept as a dead letter");
                    let _ = self
                        .store
                        .delivery_dead(pending.id, pending.attempts, self.clock.now(), &error)
                        .await;
                    return;
                };
                (
                    ch,
                    Some(pending.id),
                    pending.payload,
                    pending.attempts,
                    labels,
                )
            }
        };
        let name = channel.kind().as_str();
        let count = |result| {
            if let Some((level, rule)) = &labels {
                self.metrics.notice(*level, rule, name, result);
            }
        };
        let rule = labels.as_ref().map_or("", |(_, rule)| rule.as_str());
        // A resumed row gets at least one more attempt, whatever it used before.
        let limit = self.delivery.max_attempts.max(attempts + 1);
        let timeout = Duration::from_secs(self.delivery.timeout_s.max(1));
        loop {
            if cancel.is_cancelled() {
                return;
            }
            attempts += 1;
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return,
                outcome = tokio::time::timeout(timeout, channel.deliver(&payload)) => outcome,
            };
            let now = self.clock.now();
            let failure = match outcome {
                Ok(Ok(())) => {
                    if let Some(id) = row {
                        if let Err(e) = self.store.delivery_delivered(id, attempts, now).await {
                            tracing::error!(channel = name, row = id, error = %e, "cannot record an alert delivery");
                        }
                    }
                    count(AlertResult::Sent);
                    tracing::debug!(channel = name, rule, attempts, "alert notice delivered");
                    return;
                }
                Ok(Err(failure)) => failure,
                Err(_) => Failure::transient(format!("no answer within {}s", timeout.as_secs())),
            };
            let error = scrub(&failure.error, &channel.secrets());
            if failure.permanent || attempts >= limit {
                if let Some(id) = row {
                    if let Err(e) = self.store.delivery_dead(id, attempts, now, &error).await {
                        tracing::error!(channel = name, row = id, error = %e, "cannot record an alert delivery");
                    }
                }
                count(AlertResult::DeadLetter);
                tracing::error!(channel = name, rule, attempts, error = %error, "alert notice not delivered; kept as a dead letter");
                return;
            }
            if let Some(id) = row {
                if let Err(e) = self
                    .store
                    .delivery_attempt_failed(id, attempts, now, &error)
                    .await
                {
                    tracing::error!(channel = name, row = id, error = %e, "cannot record an alert delivery");
                }
            }
            count(AlertResult::Retried);
            let wait = failure
                .retry_after
                .unwrap_or_else(|| self.delivery.backoff(attempts + 1));
            tracing::info!(channel = name, rule, attempts, wait_ms = wait.as_millis() as u64, error = %error, "alert notice delivery failed; retrying");
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.clock.sleep(wait) => {}
            }
        }
    }

    /// Stores the notices not yet stored as `pending` rows, for the next start to deliver.
    async fn keep_for_next_start(&self, jobs: impl IntoIterator<Item = Job>) {
        let mut kept = 0;
        for job in jobs {
            let Job::New { notice, channel } = job else {
                continue;
            };
            let Some(ch) = self.channels.get(&channel) else {
                continue;
            };
            let payload = ch.payload(&notice);
            match self
                .store
                .insert_delivery(
                    notice.event_id,
                    channel.as_str(),
                    &payload,
                    self.clock.now(),
                )
                .await
            {
                Ok(_) => kept += 1,
                Err(e) => {
                    tracing::error!(channel = channel.as_str(), rule = %notice.rule, error = %e, "cannot keep an alert notice for the next start; it is lost");
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

    async fn resend_loop(am: Arc<Alertmanager>, clock: Arc<dyn Clock>, cancel: CancellationToken) {
        let period = am.resend_interval();
        let mut ticker = Ticker::new(clock, period, period);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
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
            let mut tasks: JoinSet<Lane> = JoinSet::new();
            // A lane present here is busy; its queue holds what waits behind the running delivery.
            let mut lanes: HashMap<Lane, VecDeque<Job>> = HashMap::new();
            let push = |this: &Arc<Self>,
                        lanes: &mut HashMap<Lane, VecDeque<Job>>,
                        tasks: &mut JoinSet<Lane>,
                        job: Job| {
                match lanes.get_mut(&job.lane()) {
                    Some(queue) => queue.push_back(job),
                    None => {
                        lanes.insert(job.lane(), VecDeque::new());
                        this.start(tasks, job, &cancel);
                    }
                }
            };
            match self.store.pending_deliveries().await {
                Ok(pending) => {
                    if !pending.is_empty() {
                        tracing::info!(
                            deliveries = pending.len(),
                            "resuming alert deliveries left pending"
                        );
                    }
                    for row in pending {
                        push(&self, &mut lanes, &mut tasks, Job::Resume(row));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the alert deliveries left pending; they wait for the next start")
                }
            }
            let resend = self.alertmanager.clone().map(|am| {
                tokio::spawn(Self::resend_loop(
                    am,
                    self.clock.clone(),
                    cancel.child_token(),
                ))
            });
            let mut done: Vec<Lane> = Vec::new();
            loop {
                for lane in done.drain(..) {
                    let next = lanes.get_mut(&lane).and_then(VecDeque::pop_front);
                    match next {
                        Some(job) => self.start(&mut tasks, job, &cancel),
                        None => {
                            lanes.remove(&lane);
                        }
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    job = receiver.recv() => match job {
                        Some(job) => push(&self, &mut lanes, &mut tasks, job),
                        None => break,
                    },
                    Some(finished) = tasks.join_next(), if !tasks.is_empty() => match finished {
                        Ok(lane) => done.push(lane),
                        Err(e) => tracing::error!(error = %e, "an alert delivery task failed"),
                    },
                }
            }
            // Every delivery sees the cancellation and returns at once; its row stays pending.
            while let Some(finished) = tasks.join_next().await {
                if let Err(e) = finished {
                    tracing::error!(error = %e, "an alert delivery task failed");
                }
            }
            if let Some(resend) = resend {
                let _ = resend.await;
            }
            receiver.close();
            let mut waiting: Vec<Job> = lanes.into_values().flatten().collect();
            while let Ok(job) = receiver.try_recv() {
                waiting.push(job);
            }
            self.keep_for_next_start(waiting).await;
        })
    }
}
