//! Publishing to Kafka (librdkafka, idempotent producer, acks=all).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::sink::{EventSink, PublishError};
use super::OutboxEvent;

/// Header carrying the event id, for consumer-side deduplication.
pub const EVENT_ID_HEADER: &str = "event_id";
/// Header carrying the event type (`order.accepted` …).
pub const EVENT_TYPE_HEADER: &str = "event_type";
/// Header of dead letters carrying the last publish error.
pub const ERROR_HEADER: &str = "error";

/// Connection and topic settings of the Kafka sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// How long librdkafka keeps trying one message before failing it.
    pub message_timeout: Duration,
    /// Create the topics at start-up (admin API) if they are missing.
    pub create_topics: bool,
}

/// Errors setting up the Kafka sink.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// librdkafka rejected the configuration or could not start.
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// Creating a topic failed.
    #[error("creating topic {topic}: {code}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's error.
        code: RDKafkaErrorCode,
    },
}

/// An idempotent producer keyed by account id. A producer that hit a
/// fatal error (e.g. fenced after a broker outage) is replaced by a new one,
/// so publishing resumes once the broker is back.
pub struct KafkaSink {
    producer: std::sync::RwLock<FutureProducer>,
    config: KafkaConfig,
}

impl KafkaSink {
    /// A producer for `config` (connects lazily).
    pub fn new(config: KafkaConfig) -> Result<Self, KafkaSetupError> {
        let producer = Self::create(&config)?;
        Ok(Self {
            producer: std::sync::RwLock::new(producer),
            config,
        })
    }

    fn create(config: &KafkaConfig) -> Result<FutureProducer, KafkaSetupError> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                config.message_timeout.as_millis().to_string(),
            )
            .create()?)
    }

    fn current(&self) -> FutureProducer {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces `used` by a fresh producer if it is in a fatal state.
    fn renew_if_fatal(&self, used: &FutureProducer, errors: &[&PublishError]) {
        let fenced = errors.iter().any(|e| e.0.contains("ProducerFenced"));
        let fatal = used.client().fatal_error();
        if fatal.is_none() && !fenced {
            return;
        }
        let mut slot = self.producer.write().unwrap_or_else(|p| p.into_inner());
        // Another task may have renewed it already.
        if !std::ptr::eq(slot.client().native_ptr(), used.client().native_ptr()) {
            return;
        }
        match Self::create(&self.config) {
            Ok(fresh) => {
                tracing::warn!(
                    ?fatal,
                    "kafka producer failed fatally; replaced by a new one"
                );
                *slot = fresh;
            }
            Err(e) => tracing::error!(error = %e, "could not recreate the kafka producer"),
        }
    }

    fn record_headers(event: &OutboxEvent, error: Option<&str>) -> OwnedHeaders {
        let id = event.event_id.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: EVENT_ID_HEADER,
                value: Some(id.as_str()),
            })
            .insert(Header {
                key: EVENT_TYPE_HEADER,
                value: Some(event.event_type.as_str()),
            });
        if let Some(error) = error {
            headers = headers.insert(Header {
                key: ERROR_HEADER,
                value: Some(error),
            });
        }
        headers
    }

    async fn send(
        producer: &FutureProducer,
        topic: &str,
        event: &OutboxEvent,
        error: Option<&str>,
    ) -> Result<(), PublishError> {
        let record = FutureRecord::to(topic)
            .key(event.key.as_str())
            .payload(event.payload.as_str())
            .headers(Self::record_headers(event, error));
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| PublishError(format!("enqueue: {e}")))?;
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(PublishError(e.to_string())),
            Err(_) => Err(PublishError("producer dropped the message".into())),
        }
    }
}

#[async_trait::async_trait]
impl EventSink for KafkaSink {
    async fn publish(&self, events: &[OutboxEvent]) -> Vec<Result<(), PublishError>> {
        // All records are enqueued before any is awaited, so librdkafka
        // batches them into few produce requests.
        let producer = self.current();
        let results = futures::future::join_all(
            events
                .iter()
                .map(|e| Self::send(&producer, &e.topic, e, None)),
        )
        .await;
        let errors: Vec<&PublishError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        if !errors.is_empty() {
            self.renew_if_fatal(&producer, &errors);
        }
        results
    }

    async fn publish_dead_letter(
        &self,
        event: &OutboxEvent,
        reason: &str,
    ) -> Result<(), PublishError> {
        let producer = self.current();
        let result = Self::send(&producer, &self.config.dlq_topic, event, Some(reason)).await;
        if let Err(e) = &result {
            self.renew_if_fatal(&producer, &[e]);
        }
        result
    }

    async fn flush(&self) {
        let producer = self.current();
        let timeout = self.config.message_timeout;
        let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "kafka flush did not complete");
        }
    }
}

/// Creates `topics` (1 partition each unless they exist) on `brokers`;
/// topics that already exist are fine.
pub async fn ensure_topics(
    brokers: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<(), KafkaSetupError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(timeout));
    for result in admin.create_topics(new.iter(), &options).await? {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaSetupError::Topic { topic, code }),
        }
    }
    Ok(())
}
