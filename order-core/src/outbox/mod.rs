//! The transactional outbox: order events committed with the order, then
//! published to Kafka (or the local event log).
//!
//! * [`event`] — the event and its JSON payload.
//! * [`store`] — [`OutboxStore`], the outbox operations of a store.
//! * [`sink`] — [`EventSink`], a publish destination;
//!   [`kafka`] and [`file_log`] implement it.
//! * [`dispatcher`] — the fast path right after commit.
//! * [`recovery`] — the periodic job for rows left READY.
//! * [`config`] — [`OutboxConfig`].

mod claimed;
pub mod config;
pub mod dispatcher;
pub mod event;
pub mod file_log;
pub mod kafka;
pub mod recovery;
pub mod sink;
pub mod store;

pub(crate) use claimed::{publish_claimed, ClaimedRow, SortedDecisions};
pub use config::{OutboxConfig, SinkConfig};
pub use dispatcher::{AfterCommit, DispatchSettings, Dispatcher};
pub use event::{EventType, OrderEventPayload, OutboxEvent};
pub use file_log::FileLogSink;
pub use kafka::{ensure_topics, KafkaConfig, KafkaSink};
pub use recovery::{recover_all, run_recovery, RecoverySettings};
pub use sink::{EventSink, PublishError};
pub use store::{DlqPolicy, OutboxStats, OutboxStore, RecoveryReport};
