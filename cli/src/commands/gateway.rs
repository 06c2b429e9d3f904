//! `hts gateway`: the TCP front door in front of order-service backends.
//!
//! Configuration: defaults ([`GatewayConfig::default`]), then the TOML file
//! of `--config`, then flags. Signals: SIGHUP re-reads the file (plus the
//! same flags) and applies the backend list and resilience policies live;
//! SIGUSR1 prints one line `hts gateway stats {json}` (router snapshot and
//! gateway counters) on standard output; SIGINT/SIGTERM drain and exit.
//!
//! The admin HTTP surface listens on `--admin-listen` (default
//! 127.0.0.1:7071; announced as `hts gateway-admin listening on ADDR` after
//! the gateway's own line); state-changing requests need the bearer token of
//! `--admin-token-file` or `HTS_ADMIN_TOKEN`. Without a token the admin
//! surface may only listen on a loopback address: anything else is refused
//! at start-up.
//!
//! With `--tls-cert` and `--tls-key` (or `tls_cert`/`tls_key` in the file)
//! the client listener speaks TLS only.

use anyhow::Context as _;
use clap::Args;
use hts_gateway::admin::{AdminState, AdminToken};
use hts_gateway::{Gateway, GatewayConfig, GatewayFile, ResilienceConfig, Router};
use std::net::ToSocketAddrs as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Flags of `hts gateway`; every limit defaults to [`GatewayConfig::default`].
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on for client terminals.
    #[arg(long)]
    pub listen: Option<String>,
    /// Accept queue length of the client listener (capped by net.core.somaxconn).
    #[arg(long)]
    pub listen_backlog: Option<u32>,
    /// TOML config file (backends, limits, `[resilience]`); re-read on SIGHUP.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// gRPC URL of an order-service backend; repeat for several (overrides the file's list).
    #[arg(long = "backend")]
    pub backends: Vec<String>,
    /// File holding the JWT secret (else HTS_JWT_SECRET, else hts-data/jwt.secret).
    #[arg(long)]
    pub jwt_secret_file: Option<PathBuf>,
    /// Overall deadline of each request, in milliseconds.
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Largest accepted frame body, in bytes.
    #[arg(long)]
    pub max_body_len: Option<usize>,
    /// A frame that has started arriving must complete within this many milliseconds.
    #[arg(long)]
    pub frame_read_timeout_ms: Option<u64>,
    /// A connection that sends nothing (not even a heartbeat) for this long is closed.
    #[arg(long)]
    pub idle_timeout_secs: Option<u64>,
    /// Most simultaneous client connections.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Most requests in flight on one connection.
    #[arg(long)]
    pub max_in_flight_per_connection: Option<usize>,
    /// Redis holding the session directory (`redis://HOST:PORT/DB` or
    /// `redis-sentinel://HOST:26379/DB?sentinelServiceName=NAME&node=HOST2:26379`):
    /// a session opened on one gateway can be resumed on another. Never the
    /// source of truth: a miss or Redis down means logging in with the token.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Upper bound of one session-directory operation, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub redis_timeout_ms: u64,
    /// A connection not logged in within this many seconds is closed.
    #[arg(long)]
    pub login_timeout_secs: Option<u64>,
    /// Failed logins after which a connection is closed.
    #[arg(long)]
    pub max_failed_logins: Option<u32>,
    /// Failed logins one source address (IPv4 address, IPv6 /64) may make per
    /// window, across connections; beyond it LOGIN is answered RATE_LIMITED (0 = no limit).
    #[arg(long)]
    pub login_failures_per_source: Option<u32>,
    /// Window of --login-failures-per-source, in seconds.
    #[arg(long)]
    pub login_failure_window_secs: Option<u64>,
    /// Most source addresses the failed-login limit tracks (bounds its memory).
    #[arg(long)]
    pub max_login_sources: Option<usize>,
    /// PEM certificate chain (leaf first): serve clients over TLS (needs --tls-key).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Time a TLS client has to complete its handshake, in milliseconds.
    #[arg(long)]
    pub tls_handshake_timeout_ms: Option<u64>,
    /// Address of the admin HTTP surface (probes, /metrics, /admin/*, status page).
    #[arg(long, default_value = hts_gateway::admin::DEFAULT_ADMIN_ADDR)]
    pub admin_listen: String,
    /// File holding the admin bearer token (else HTS_ADMIN_TOKEN); without
    /// one, state-changing admin requests are refused.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Resilience policies (override the file's `[resilience]` table).
    #[command(flatten)]
    pub resilience: ResilienceArgs,
}

/// Resilience flags; each overrides the config file's value.
#[derive(Debug, Args)]
pub struct ResilienceArgs {
    /// Retries per request (each to a different backend).
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Pause before a retry, in milliseconds.
    #[arg(long)]
    pub retry_backoff_ms: Option<u64>,
    /// Share of recent requests retries and hedges may add (0.1 = 10 %).
    #[arg(long)]
    pub retry_budget_ratio: Option<f32>,
    /// Retries per second always allowed on top of the ratio.
    #[arg(long)]
    pub retry_budget_min_per_sec: Option<u32>,
    /// Hedge slow requests that carry a request_id (true/false).
    #[arg(long)]
    pub hedging: Option<bool>,
    /// Lower bound of the hedge delay, in milliseconds.
    #[arg(long)]
    pub hedge_min_delay_ms: Option<u64>,
    /// Upper bound of the hedge delay, in milliseconds.
    #[arg(long)]
    pub hedge_max_delay_ms: Option<u64>,
    /// Recent calls per backend the breaker evaluates (and minimum volume).
    #[arg(long)]
    pub breaker_window: Option<usize>,
    /// Failure ratio at which a breaker opens.
    #[arg(long)]
    pub breaker_failure_ratio: Option<f64>,
    /// Time an open breaker waits before half-open, in milliseconds.
    #[arg(long)]
    pub breaker_delay_ms: Option<u64>,
    /// Cap of the doubled open period after failed probes, in milliseconds.
    #[arg(long)]
    pub breaker_max_delay_ms: Option<u64>,
    /// Probe calls a half-open breaker lets through.
    #[arg(long)]
    pub breaker_half_open_probes: Option<u32>,
    /// In-flight calls per backend.
    #[arg(long)]
    pub max_in_flight_per_backend: Option<usize>,
    /// In-flight requests over the whole gateway.
    #[arg(long)]
    pub max_in_flight_global: Option<usize>,
    /// Requests per second per account (0 = no limit).
    #[arg(long)]
    pub account_rate_per_sec: Option<u32>,
    /// Burst per account.
    #[arg(long)]
    pub account_burst: Option<u32>,
    /// Interval of active health checks, in milliseconds.
    #[arg(long)]
    pub health_interval_ms: Option<u64>,
    /// Consecutive transport failures that eject a backend (0 = off).
    #[arg(long)]
    pub outlier_consecutive_failures: Option<u32>,
    /// Half-life of a backend's latency EWMA without samples, in milliseconds (0 = never fades).
    #[arg(long)]
    pub ewma_half_life_ms: Option<u64>,
}

impl ResilienceArgs {
    /// `base` with every given flag applied.
    pub fn apply(&self, mut r: ResilienceConfig) -> ResilienceConfig {
        let ms = Duration::from_millis;
        if let Some(v) = self.max_retries {
            r.max_retries = v;
        }
        if let Some(v) = self.retry_backoff_ms {
            r.retry_backoff = ms(v);
        }
        if let Some(v) = self.retry_budget_ratio {
            r.retry_budget_ratio = v;
        }
        if let Some(v) = self.retry_budget_min_per_sec {
            r.retry_budget_min_per_sec = v;
        }
        if let Some(v) = self.hedging {
            r.hedging = v;
        }
        if let Some(v) = self.hedge_min_delay_ms {
            r.hedge_min_delay = ms(v);
        }
        if let Some(v) = self.hedge_max_delay_ms {
            r.hedge_max_delay = ms(v);
        }
        if let Some(v) = self.breaker_window {
            r.breaker_window = v;
        }
        if let Some(v) = self.breaker_failure_ratio {
            r.breaker_failure_ratio = v;
        }
        if let Some(v) = self.breaker_delay_ms {
            r.breaker_delay = ms(v);
        }
        if let Some(v) = self.breaker_max_delay_ms {
            r.breaker_max_delay = ms(v);
        }
        if let Some(v) = self.breaker_half_open_probes {
            r.breaker_half_open_probes = v;
        }
        if let Some(v) = self.max_in_flight_per_backend {
            r.max_in_flight_per_backend = v;
        }
        if let Some(v) = self.max_in_flight_global {
            r.max_in_flight_global = v;
        }
        if let Some(v) = self.account_rate_per_sec {
            r.account_rate_per_sec = v;
        }
        if let Some(v) = self.account_burst {
            r.account_burst = v;
        }
        if let Some(v) = self.health_interval_ms {
            r.health_interval = ms(v);
        }
        if let Some(v) = self.outlier_consecutive_failures {
            r.outlier_consecutive_failures = v;
        }
        if let Some(v) = self.ewma_half_life_ms {
            r.ewma_half_life = ms(v);
        }
        r
    }
}

impl GatewayArgs {
    /// Reads the config file, if any.
    fn file(&self) -> anyhow::Result<GatewayFile> {
        Ok(match &self.config {
            Some(path) => GatewayFile::load(path)?,
            None => GatewayFile::default(),
        })
    }

    /// The listen address: flag, else file, else 127.0.0.1:7070.
    fn listen(&self, file: &GatewayFile) -> String {
        self.listen
            .clone()
            .or_else(|| file.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:7070".to_owned())
    }

    /// The backend list: flags, else the file's.
    fn backends(&self, file: &GatewayFile) -> Vec<String> {
        if self.backends.is_empty() {
            file.backends.clone()
        } else {
            self.backends.clone()
        }
    }

    /// The gateway configuration the file and flags describe.
    pub fn config(&self, file: &GatewayFile, jwt_secret: Vec<u8>) -> GatewayConfig {
        let mut config = GatewayConfig {
            jwt_secret,
            ..GatewayConfig::default()
        };
        file.apply_to(&mut config);
        config.backends = self.backends(file);
        config.resilience = self.resilience.apply(file.resilience.clone());
        if let Some(ms) = self.request_timeout_ms {
            config.request_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = self.listen_backlog {
            config.listen_backlog = n;
        }
        if let Some(n) = self.max_body_len {
            config.max_body_len = n;
        }
        if let Some(ms) = self.frame_read_timeout_ms {
            config.frame_read_timeout = Duration::from_millis(ms);
        }
        if let Some(s) = self.idle_timeout_secs {
            config.idle_timeout = Duration::from_secs(s);
        }
        if let Some(n) = self.max_connections {
            config.max_connections = n;
        }
        if let Some(n) = self.max_in_flight_per_connection {
            config.max_in_flight_per_connection = n;
        }
        config.session_store =
            self.redis_url
                .as_ref()
                .map(|url| hts_gateway::sessions::SessionStoreConfig {
                    url: url.clone(),
                    op_timeout: Duration::from_millis(self.redis_timeout_ms.max(1)),
                });
        if let Some(s) = self.login_timeout_secs {
            config.login_timeout = Duration::from_secs(s);
        }
        if let Some(n) = self.max_failed_logins {
            config.max_failed_logins = n;
        }
        if let Some(n) = self.login_failures_per_source {
            config.login_failures_per_source = n;
        }
        if let Some(s) = self.login_failure_window_secs {
            config.login_failure_window = Duration::from_secs(s);
        }
        if let Some(n) = self.max_login_sources {
            config.max_login_sources = n;
        }
        if let Some(ms) = self.tls_handshake_timeout_ms {
            config.tls_handshake_timeout = Duration::from_millis(ms);
        }
        config
    }

    /// The TLS server configuration: certificate and key from the flags,
    /// else from the file; both or neither.
    fn tls(
        &self,
        file: &GatewayFile,
    ) -> anyhow::Result<Option<Arc<hts_gateway::tls::rustls::ServerConfig>>> {
        let cert = self.tls_cert.as_ref().or(file.tls_cert.as_ref());
        let key = self.tls_key.as_ref().or(file.tls_key.as_ref());
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(hts_gateway::tls::load_server_config(cert, key)?)),
            (Some(_), None) => anyhow::bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => anyhow::bail!("--tls-key needs --tls-cert"),
        }
    }

    /// The admin token: `--admin-token-file`, else `HTS_ADMIN_TOKEN`, else none.
    fn admin_token(&self) -> anyhow::Result<Option<AdminToken>> {
        if let Some(path) = &self.admin_token_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read admin token file {}", path.display()))?;
            let token = AdminToken::new(&text);
            anyhow::ensure!(
                token.is_some(),
                "admin token file {} is empty",
                path.display()
            );
            return Ok(token);
        }
        Ok(std::env::var("HTS_ADMIN_TOKEN")
            .ok()
            .and_then(|t| AdminToken::new(&t)))
    }

    /// Re-reads the file and applies backends and policies to `router`.
    fn reload(&self, router: &Router) -> anyhow::Result<()> {
        let file = self.file()?;
        let resilience = self.resilience.apply(file.resilience.clone());
        router.reload(resilience, &self.backends(&file))
    }
}

/// Runs the gateway until SIGINT/SIGTERM, then drains in-flight requests.
pub async fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let file = args.file()?;
    anyhow::ensure!(
        !args.backends(&file).is_empty(),
        "no backend: give --backend URL or a config file with backends"
    );
    let secret = crate::secret::resolve(args.jwt_secret_file.as_deref())?;
    let mut config = args.config(&file, secret);
    config.tls = args.tls(&file)?;
    let admin_token = args.admin_token()?;
    if admin_token.is_none() {
        refuse_open_admin(&args.admin_listen)?;
    }
    // Every signal handler is registered before the address is announced: a
    // SIGTERM, SIGHUP or SIGUSR1 sent as soon as the line appears must not
    // hit the default action (which ends the process).
    let shutdown = crate::shutdown::install()?;
    #[cfg(unix)]
    let (mut hup, mut usr1) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::hangup())?,
            signal(SignalKind::user_defined1())?,
        )
    };
    let listen = args.listen(&file);
    let addr = tokio::net::lookup_host(&listen)
        .await
        .with_context(|| format!("gateway: invalid listen address {listen}"))?
        .next()
        .with_context(|| format!("gateway: {listen} resolves to no address"))?;
    let listener = hts_gateway::server::bind_listener(addr, config.listen_backlog)
        .with_context(|| format!("gateway: cannot listen on {listen}"))?;
    super::announce("gateway", listener.local_addr()?);
    let gateway = Gateway::from_listener(listener, config)?;
    let router = gateway.router();
    let stats = gateway.stats();
    if admin_token.is_none() {
        tracing::warn!("no admin token configured: admin changes are disabled");
    }
    let args = Arc::new(args);
    let prometheus = crate::metrics::install(&[(
        hts_gateway::telemetry::ORDER_LATENCY,
        hts_gateway::telemetry::LATENCY_BUCKETS,
    )])?;
    let reload_from = args.clone();
    let reload_router = router.clone();
    let admin = Arc::new(
        AdminState::new(&gateway, admin_token)
            .with_prometheus(prometheus)
            .with_reload(Arc::new(move || reload_from.reload(&reload_router))),
    );
    let (admin_listener, _) = super::bind_and_announce("gateway-admin", &args.admin_listen).await?;
    let admin_stop = tokio_util::sync::CancellationToken::new();
    let admin_task = tokio::spawn(hts_gateway::admin::serve(
        admin_listener,
        admin.clone(),
        admin_stop.clone().cancelled_owned(),
    ));
    #[cfg(unix)]
    {
        let (reload_args, reload_router) = (args.clone(), router.clone());
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match reload_args.reload(&reload_router) {
                    Ok(()) => {
                        tracing::info!("configuration reloaded");
                        print_line("gateway reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "configuration reload failed; keeping the old one")
                    }
                }
            }
        });
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                let line = serde_json::json!({
                    "router": router.snapshot(),
                    "correlation_len": stats.correlation_len(),
                    "dropped_answers": stats.dropped_answers(),
                    "open_connections": stats.open_connections(),
                    "responses": stats
                        .responses_by_code()
                        .iter()
                        .map(|(code, n)| (code.as_str_name().to_owned(), *n))
                        .collect::<std::collections::BTreeMap<_, _>>(),
                });
                print_line(&format!("gateway stats {line}"));
            }
        });
    }
    let draining = admin.clone();
    let result = gateway
        .run(async move {
            shutdown.await;
            // Load balancers see 503 while in-flight requests drain.
            draining.set_shutting_down();
        })
        .await;
    admin_stop.cancel();
    match admin_task.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "admin server failed"),
        Err(e) => tracing::warn!(error = %e, "admin server task failed"),
        Ok(Ok(())) => {}
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses to start an admin surface without a token on anything but a
/// loopback address: its reads (configuration, connections, backends)
/// would be open to the network.
fn refuse_open_admin(admin_listen: &str) -> anyhow::Result<()> {
    let addrs: Vec<std::net::SocketAddr> = admin_listen
        .to_socket_addrs()
        .with_context(|| format!("invalid --admin-listen {admin_listen}"))?
        .collect();
    if let Some(open) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        anyhow::bail!(
            "refusing to serve the admin endpoint on {open} without an admin token: \
             set --admin-token-file or HTS_ADMIN_TOKEN, or use a loopback --admin-listen \
             such as 127.0.0.1:7071"
        );
    }
    Ok(())
}

/// Prints `hts TEXT` on standard output and flushes (tests and scripts read it).
fn print_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "hts {text}");
    let _ = out.flush();
}
