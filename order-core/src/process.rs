//! Wiring one order-service process: the parts [`crate::server`] serves.
//!
//! [`open`] builds them in order: the event sink (Kafka topics created),
//! the outbox fast path whose hook the store calls after each commit (with
//! the commit fault of [`crate::fault`]), the store itself, the optional
//! Redis cache in front of it, and the outbox recovery job (a run at start
//! and one once the grace period of rows left READY by a previous process
//! has passed, then periodic). The store and the outbox know nothing of
//! each other beyond that hook. [`check_pairing`] is the start-up check of
//! the store against the account service's store identity.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::fault::CommitFault;
use crate::outbox::{
    ensure_topics, run_recovery, AfterCommit, DispatchSettings, Dispatcher, EventSink, FileLogSink,
    KafkaSink, RecoverySettings, SinkConfig,
};
use crate::store::{open_store, CachedOrderStore, OpenMode, OrderStore, StoreOptions};
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
        mode: if config.init {
            OpenMode::Init
        } else {
            OpenMode::Existing
        },
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

/// How often an unreachable account service is asked again.
const PAIRING_RETRY: Duration = Duration::from_millis(200);

/// The store pairing check not finished at start (the account service did
/// not answer in time): it goes on in the background.
pub type PendingPairing = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Checks that `store` belongs with the account store the account service
/// at `account_url` serves (see [`hts_dbkit::identity`]): records the
/// account store's identity at the first start, refuses a different one
/// afterwards.
///
/// Waits at most `timeout` for the account service to answer. If it does
/// not, the order service still starts (queries need no account service,
/// and no order can be placed while it is unreachable) and the check goes
/// on in the background: the returned task ends with an error on a
/// mismatch, and the server stops serving then. An account service too old
/// to tell its identity is let through with a warning.
pub async fn check_pairing(
    store: Arc<dyn OrderStore>,
    accounts: hts_account_client::AccountClient,
    account_url: String,
    timeout: Duration,
) -> anyhow::Result<Option<PendingPairing>> {
    let Some(identity) = store.identity() else {
        return Ok(None);
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let answer = loop {
        match accounts.store_identity().await {
            Ok(answer) => break answer,
            Err(hts_account_client::AccountError::Rejected(status))
                if status.code() == tonic::Code::Unimplemented =>
            {
                tracing::warn!(account_service = %account_url,
                    "the account service does not tell its store identity; store pairing not checked");
                return Ok(None);
            }
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(PAIRING_RETRY).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, account_service = %account_url,
                    "account service unreachable at start; the store pairing is checked once it answers");
                return Ok(Some(tokio::spawn(async move {
                    let answer = loop {
                        match accounts.store_identity().await {
                            Ok(answer) => break answer,
                            Err(_) => tokio::time::sleep(PAIRING_RETRY * 5).await,
                        }
                    };
                    settle_pairing(&*store, identity, &account_url, answer).await
                })));
            }
        }
    };
    settle_pairing(&*store, identity, &account_url, answer).await?;
    Ok(None)
}

/// Compares (or records) the account store identity `answer`.
async fn settle_pairing(
    store: &dyn OrderStore,
    identity: crate::store::StoreIdentity,
    account_url: &str,
    answer: hts_proto::v1::GetStoreIdentityResponse,
) -> anyhow::Result<()> {
    if answer.kind != "account-store" {
        anyhow::bail!(
            "the service at {account_url} reports a store of kind {:?}, not an account store",
            answer.kind
        );
    }
    let location = store.location();
    let unpaired = hts_dbkit::identity::check_peer(
        &location,
        &identity,
        "account store",
        account_url,
        &answer.store_id,
    )?;
    if unpaired {
        store
            .record_peer(&answer.store_id)
            .await
            .with_context(|| format!("recording the account store pairing in {location}"))?;
        tracing::info!(order_store = %identity.store_id, account_store = %answer.store_id,
            "order store paired with the account store");
    }
    Ok(())
}
