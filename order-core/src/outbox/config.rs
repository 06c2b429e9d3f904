//! Settings of the outbox dispatcher and recovery job.

use std::path::PathBuf;
use std::time::Duration;

use super::kafka::KafkaConfig;
use super::store::DlqPolicy;

/// Where events are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// A Kafka cluster.
    Kafka(KafkaConfig),
    /// The local append-only JSON-lines event log.
    File(PathBuf),
    /// Nowhere: rows stay READY (another instance may publish them).
    Disabled,
}

/// Settings of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Topic of order events (recorded in each outbox row).
    pub topic: String,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// Destination.
    pub sink: SinkConfig,
    /// Most events per fast-path publish.
    pub batch_size: usize,
    /// Longest wait to fill a fast-path batch.
    pub flush_interval: Duration,
    /// Capacity of the in-memory fast-path queue; events that do not fit
    /// stay READY for the recovery job.
    pub queue_capacity: usize,
    /// How often the recovery job runs.
    pub recovery_interval: Duration,
    /// How long a row must have been READY before recovery republishes it.
    pub recovery_grace: Duration,
    /// Most rows one recovery round claims.
    pub recovery_batch: usize,
    /// When failing events are dead-lettered.
    pub dlq: DlqPolicy,
}

impl OutboxConfig {
    /// Default topic of order events.
    pub const DEFAULT_TOPIC: &'static str = "hts.orders";
    /// Default dead-letter topic.
    pub const DEFAULT_DLQ_TOPIC: &'static str = "hts.orders.dlq";

    /// Defaults (batch 500, flush 20 ms, recovery every 5 min after a 30 s
    /// grace, DLQ after 3 failures and 1 h) publishing to `sink`.
    pub fn new(sink: SinkConfig) -> Self {
        Self {
            topic: Self::DEFAULT_TOPIC.to_owned(),
            dlq_topic: Self::DEFAULT_DLQ_TOPIC.to_owned(),
            sink,
            batch_size: 500,
            flush_interval: Duration::from_millis(20),
            queue_capacity: 10_000,
            recovery_interval: Duration::from_secs(300),
            recovery_grace: Duration::from_secs(30),
            recovery_batch: super::recovery::RECOVERY_BATCH,
            dlq: DlqPolicy::default(),
        }
    }
}
