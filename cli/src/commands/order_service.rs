//! `hts order-service`: one order-service backend over gRPC.

use clap::Args;
use hts_account_client::{AccountClientConfig, BreakerConfig};
use hts_order_core::fault::{FaultConfig, FaultInjector};
use hts_order_core::outbox::{DlqPolicy, KafkaConfig, OutboxConfig, SinkConfig};
use hts_order_core::OrderServiceConfig;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `hts order-service`.
#[derive(Debug, Args)]
pub struct OrderServiceArgs {
    /// Address to listen on for gRPC.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Store URL: `sqlite:hts-data/orders.db` or `postgres://user@h1:5432,h2:5432/hts?target_session_attrs=read-write`;
    /// several order services may share one.
    #[arg(long, required_unless_present = "echo", default_value = "")]
    pub store: String,
    /// URL of the account service, e.g. `http://127.0.0.1:50061`.
    #[arg(long, required_unless_present = "echo", default_value = "")]
    pub account_service: String,
    /// Benchmarks only: answer every call OK at once, without store or account service.
    #[arg(long)]
    pub echo: bool,
    /// Upper bound of one account-service call, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub account_call_timeout_ms: u64,
    /// Account-client circuit breaker: calls evaluated, and the minimum volume before it can open.
    #[arg(long, default_value_t = AccountClientConfig::DEFAULT_BREAKER.window)]
    pub account_breaker_window: usize,
    /// Account-client circuit breaker: failure ratio at which it opens.
    #[arg(long, default_value_t = AccountClientConfig::DEFAULT_BREAKER.failure_ratio)]
    pub account_breaker_failure_ratio: f64,
    /// Account-client circuit breaker: first open period, in milliseconds (doubles while probes fail).
    #[arg(long, default_value_t = AccountClientConfig::DEFAULT_BREAKER.delay.as_millis() as u64)]
    pub account_breaker_open_ms: u64,
    /// Account-client circuit breaker: longest open period, in milliseconds.
    #[arg(long, default_value_t = AccountClientConfig::DEFAULT_BREAKER.max_delay.as_millis() as u64)]
    pub account_breaker_max_open_ms: u64,
    /// Account-client circuit breaker: probe calls in half-open state.
    #[arg(long, default_value_t = AccountClientConfig::DEFAULT_BREAKER.half_open_probes)]
    pub account_breaker_probes: u32,
    /// How often reservations of cancelled orders that could not be released yet are retried.
    #[arg(long, default_value_t = 1000)]
    pub release_retry_interval_ms: u64,
    /// How often the orphan sweep releases HELD reservations whose order was
    /// never stored (older than the account call timeout + 6 s); it also runs at start.
    #[arg(long, default_value_t = OrderServiceConfig::DEFAULT_ORPHAN_SWEEP_INTERVAL.as_millis() as u64)]
    pub orphan_sweep_interval_ms: u64,
    /// PostgreSQL connections of this process.
    #[arg(long, default_value_t = hts_dbkit::pg::DEFAULT_POOL_SIZE)]
    pub db_pool_size: usize,
    /// Place lanes: an account's orders always share a lane, each lane runs
    /// one batch (one account-service call, one store transaction) at a time.
    #[arg(long, default_value_t = OrderServiceConfig::DEFAULT_PLACE_LANES)]
    pub place_lanes: usize,
    /// Kafka bootstrap servers; events are published there (else to the event log).
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// How long the Kafka producer keeps trying one message.
    #[arg(long, default_value_t = 30_000)]
    pub kafka_message_timeout_ms: u64,
    /// Do not create the topics at start-up (they must exist).
    #[arg(long)]
    pub kafka_no_create_topics: bool,
    /// Topic of order events.
    #[arg(long, default_value = OutboxConfig::DEFAULT_TOPIC)]
    pub events_topic: String,
    /// Dead-letter topic.
    #[arg(long, default_value = OutboxConfig::DEFAULT_DLQ_TOPIC)]
    pub dlq_topic: String,
    /// JSON-lines event log used without --kafka-brokers (default: events.jsonl beside a SQLite store).
    #[arg(long)]
    pub events_log: Option<std::path::PathBuf>,
    /// Most events per fast-path publish.
    #[arg(long, default_value_t = 500)]
    pub outbox_batch_size: usize,
    /// Longest wait to fill a fast-path batch, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub outbox_flush_ms: u64,
    /// How often the recovery job republishes rows left READY, in milliseconds.
    #[arg(long, default_value_t = 300_000)]
    pub outbox_recovery_interval_ms: u64,
    /// How long a row must have been READY before recovery republishes it, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub outbox_grace_ms: u64,
    /// Most rows one recovery round claims.
    #[arg(long, default_value_t = 500)]
    pub outbox_recovery_batch: usize,
    /// Failed publishes before an event goes to the dead-letter topic.
    #[arg(long, default_value_t = 3)]
    pub outbox_max_retries: i32,
    /// Minimum age before an event goes to the dead-letter topic, in milliseconds.
    #[arg(long, default_value_t = 3_600_000)]
    pub outbox_dlq_after_ms: u64,
    /// Redis cache of order summaries: `redis://HOST:PORT/DB` or
    /// `redis-sentinel://HOST:26379/DB?sentinelServiceName=NAME&node=HOST2:26379`.
    /// Never the source of truth: a miss or Redis down reads the database.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Lifetime of a cached order, in seconds.
    #[arg(long, default_value_t = 30)]
    pub redis_ttl_secs: u64,
    /// Upper bound of one cache operation, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub redis_timeout_ms: u64,
    /// Fault injection (tests): exit right after the first commit that
    /// produced an event, before publishing it or answering.
    #[arg(long)]
    pub fault_exit_after_commit: bool,
    /// Fault injection (tests): share of calls answered gRPC UNAVAILABLE.
    #[arg(long, default_value_t = 0.0)]
    pub fault_error_ratio: f64,
    /// Fault injection: latency added to the affected calls, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub fault_latency_ms: u64,
    /// Fault injection: share of calls that get the added latency (default all).
    #[arg(long)]
    pub fault_latency_ratio: Option<f64>,
    /// Fault injection: share of calls never answered.
    #[arg(long, default_value_t = 0.0)]
    pub fault_hang_ratio: f64,
    /// Fault injection: exit the process when this many calls have arrived.
    #[arg(long)]
    pub fault_crash_after: Option<u64>,
    /// Address of the admin HTTP surface (/healthz, /readyz, /metrics);
    /// announced as `hts order-service-admin listening on ADDR`. Off when absent.
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// Fault injection: JSON file with the same settings
    /// (`{"error_ratio":0.5,"latency_ms":200,"latency_ratio":0.1,"hang_ratio":0,"crash_after":null}`),
    /// polled every 100 ms so faults can change while serving.
    #[arg(long)]
    pub fault_file: Option<std::path::PathBuf>,
    /// Create the order store if there is none yet (first start of a new
    /// installation). Without it a missing or empty store is refused: a new
    /// store would answer every old order NOT_FOUND and place a second order
    /// for a re-sent request_id.
    #[arg(long)]
    pub init: bool,
    /// Longest wait at start for the account service to tell its store
    /// identity (the order store records it at the first start and refuses
    /// another account store later); past it the service starts and checks
    /// in the background, stopping if the check fails.
    #[arg(long, default_value_t = 2_000)]
    pub pairing_timeout_ms: u64,
}

impl OrderServiceArgs {
    /// The library configuration these flags describe.
    pub fn config(&self) -> OrderServiceConfig {
        let mut config = OrderServiceConfig::new(self.store.clone(), self.account_service.clone());
        config.account_client = AccountClientConfig {
            call_timeout: Duration::from_millis(self.account_call_timeout_ms.max(1)),
            breaker: BreakerConfig {
                window: self.account_breaker_window.max(1),
                failure_ratio: self.account_breaker_failure_ratio.clamp(0.0, 1.0),
                delay: Duration::from_millis(self.account_breaker_open_ms),
                max_delay: Duration::from_millis(
                    self.account_breaker_max_open_ms
                        .max(self.account_breaker_open_ms),
                ),
                half_open_probes: self.account_breaker_probes.max(1),
            },
            ..AccountClientConfig::default()
        };
        config.release_retry_interval = Duration::from_millis(self.release_retry_interval_ms);
        config.orphan_sweep_interval = Duration::from_millis(self.orphan_sweep_interval_ms.max(1));
        config.db_pool_size = self.db_pool_size;
        config.place_lanes = self.place_lanes.max(1);
        config.fault_exit_after_commit = self.fault_exit_after_commit;
        config.init = self.init;
        config.pairing_timeout = Duration::from_millis(self.pairing_timeout_ms);
        config.cache = self
            .redis_url
            .as_ref()
            .map(|url| hts_order_core::cache::CacheConfig {
                url: url.clone(),
                ttl: Duration::from_secs(self.redis_ttl_secs.max(1)),
                op_timeout: Duration::from_millis(self.redis_timeout_ms.max(1)),
            });
        let outbox = &mut config.outbox;
        if let Some(brokers) = &self.kafka_brokers {
            outbox.sink = SinkConfig::Kafka(KafkaConfig {
                brokers: brokers.clone(),
                dlq_topic: self.dlq_topic.clone(),
                message_timeout: Duration::from_millis(self.kafka_message_timeout_ms),
                create_topics: !self.kafka_no_create_topics,
            });
        } else if let Some(path) = &self.events_log {
            outbox.sink = SinkConfig::File(path.clone());
        }
        outbox.topic = self.events_topic.clone();
        outbox.dlq_topic = self.dlq_topic.clone();
        outbox.batch_size = self.outbox_batch_size;
        outbox.flush_interval = Duration::from_millis(self.outbox_flush_ms);
        outbox.recovery_interval = Duration::from_millis(self.outbox_recovery_interval_ms.max(1));
        outbox.recovery_grace = Duration::from_millis(self.outbox_grace_ms);
        outbox.recovery_batch = self.outbox_recovery_batch;
        outbox.dlq = DlqPolicy {
            max_retries: self.outbox_max_retries,
            min_age: Duration::from_millis(self.outbox_dlq_after_ms),
        };
        config
    }
}

/// How often `--fault-file` is re-read.
const FAULT_FILE_POLL: Duration = Duration::from_millis(100);

impl OrderServiceArgs {
    /// The fault settings of the `--fault-*` flags.
    pub fn faults(&self) -> FaultConfig {
        FaultConfig {
            error_ratio: self.fault_error_ratio,
            latency_ms: self.fault_latency_ms,
            latency_ratio: self.fault_latency_ratio,
            hang_ratio: self.fault_hang_ratio,
            crash_after: self.fault_crash_after,
        }
    }
}

/// Runs one order service until SIGINT/SIGTERM.
pub async fn run(args: OrderServiceArgs) -> anyhow::Result<ExitCode> {
    // Registered before the announcement, so an early SIGTERM drains.
    let shutdown = crate::shutdown::install()?;
    let (listener, local) = super::bind("order-service", &args.listen).await?;
    if args.echo {
        super::announce("order-service", local);
        hts_order_core::serve_echo(listener, shutdown).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let faults = FaultInjector::new(args.faults());
    if let Some(path) = &args.fault_file {
        if path.exists() {
            faults.set(FaultConfig::from_file(path)?);
        }
        tokio::spawn(faults.clone().watch_file(path.clone(), FAULT_FILE_POLL));
    }
    if faults.get().is_active() || args.fault_file.is_some() {
        tracing::warn!(faults = ?faults.get(), "fault injection is enabled");
    }
    let mut admin_addr = None;
    let admin = match &args.admin_listen {
        Some(addr) => {
            let (listener, local) = super::bind("order-service-admin", addr).await?;
            admin_addr = Some(local);
            let prometheus = crate::metrics::install(&[])?;
            Some(hts_order_core::admin::AdminOptions {
                listener,
                prometheus: Some(prometheus),
            })
        }
        None => None,
    };
    // Announced only once the store is opened, checked, migrated and paired.
    let prepared = hts_order_core::prepare(args.config()).await?;
    super::announce("order-service", local);
    if let Some(addr) = admin_addr {
        super::announce("order-service-admin", addr);
    }
    prepared
        .serve(vec![listener], faults, admin, shutdown)
        .await?;
    Ok(ExitCode::SUCCESS)
}
