//! Wiring one order-service process: the parts [`crate::server`] serves.
//!
//! [`open`] builds them in order: the event sink (Kafka topics created),
//! the outbox fast path whose hook the store calls after each commit (with
//! the commit fault of [`crate::fault`]), the store itself, the optional
//! Redis cache in front of it, and the periodic outbox recovery job. The
//! store and the outbox know nothing of each other beyond that hook.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::fault::CommitFault;
use crate::outbox::{
    ensure_topics, run_recovery, AfterCommit, DispatchSettings, Dispatcher, EventSink, FileLogSink,
    KafkaSink, RecoverySettings, SinkConfig,
};
use crate::store::{open_store, CachedOrderStore, OrderStore, StoreOptions};
use crate::OrderServiceConfig;

/// How long start-up waits for the broker to create the topics.
const TOPIC_SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The running outbox machinery of a process.
pub struct OutboxRuntime {
    dispatcher: Option<Dispatcher>,
    recovery: Option<tokio::task::JoinHandle<()>>,
}

impl OutboxRuntime {
    /// Stops the recovery job, then publishes what the fast path still
    /// holds. Rows not published stay READY for the next recovery run.
    pub async fn shutdown(mut self) {
        if let Some(recovery) = self.recovery.take() {
            recovery.abort();
        }
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.shutdown().await;
        }
    }
}

impl Drop for OutboxRuntime {
    fn drop(&mut self) {
        if let Some(recovery) = self.recovery.take() {
            recovery.abort();
        }
    }
}

async fn build_sink(config: &OrderServiceConfig) -> anyhow::Result<Option<Arc<dyn EventSink>>> {
    let outbox = &config.outbox;
    Ok(match &outbox.sink {
        SinkConfig::Kafka(kafka) => {
            let topics = [outbox.topic.as_str(), outbox.dlq_topic.as_str()];
            let created = if kafka.create_topics {
                ensure_topics(&kafka.brokers, &topics, TOPIC_SETUP_TIMEOUT).await
            } else {
                Ok(())
            };
            if let Err(e) = created {
                // Orders must not depend on the broker: rows stay READY
                // until it is reachable and the topics exist.
                tracing::warn!(error = %e, brokers = %kafka.brokers,
                    "could not create kafka topics; events will wait in the outbox");
            }
            Some(Arc::new(
                KafkaSink::new(kafka.clone()).context("kafka producer")?,
            ))
        }
        SinkConfig::File(path) => Some(Arc::new(FileLogSink::new(path.clone()))),
        SinkConfig::Disabled => {
            tracing::warn!("no event sink configured: outbox rows stay READY");
            None
        }
    })
}

/// Opens the store of `config` (behind its cache, if configured) with its
/// outbox: the fast path publishing each commit, and the periodic recovery
/// job.
pub async fn open(
    config: &OrderServiceConfig,
) -> anyhow::Result<(Arc<dyn OrderStore>, OutboxRuntime)> {
    let outbox = &config.outbox;
    let sink = build_sink(config).await?;
    let settings = DispatchSettings {
        batch_size: outbox.batch_size,
        flush_interval: outbox.flush_interval,
        queue_capacity: outbox.queue_capacity,
    };
    let (after_commit, queue) = match &sink {
        Some(_) => {
            let (hook, queue) = Dispatcher::channel(settings);
            (hook, Some(queue))
        }
        None => (AfterCommit::none(), None),
    };
    let options = StoreOptions {
        pool_size: config.db_pool_size,
        events_topic: outbox.topic.clone(),
        after_commit: after_commit.with_fault(CommitFault::exit_after_commit(
            config.fault_exit_after_commit,
        )),
    };
    let store = open_store(&config.store_url, options)
        .await
        .with_context(|| {
            format!(
                "opening order store {}",
                hts_dbkit::redact_url(&config.store_url)
            )
        })?;
    let mut runtime = OutboxRuntime {
        dispatcher: None,
        recovery: None,
    };
    if let (Some(sink), Some(queue)) = (sink, queue) {
        runtime.dispatcher = Some(Dispatcher::start(
            queue,
            Arc::clone(&store),
            Arc::clone(&sink),
            settings,
        ));
        runtime.recovery = Some(tokio::spawn(run_recovery(
            Arc::clone(&store),
            sink,
            RecoverySettings {
                interval: outbox.recovery_interval,
                grace: outbox.recovery_grace,
                dlq: outbox.dlq,
                batch: outbox.recovery_batch,
            },
        )));
    }
    let store = match &config.cache {
        Some(cache) => {
            let cache = crate::cache::OrderCache::connect(cache.clone())
                .context("configuring the order cache")?;
            Arc::new(CachedOrderStore::new(store, Arc::new(cache))) as Arc<dyn OrderStore>
        }
        None => store,
    };
    Ok((store, runtime))
}
