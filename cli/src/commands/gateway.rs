//! `hts gateway`: the TCP front door in front of order-service backends.
//!
//! Configuration: defaults ([`GatewayConfig::default`]), then the TOML file
//! of `--config`, then the flags given (each setting is declared once, in
//! [`GatewayConfig`]; [`hts_gateway::config::layers`] merges). Signals:
//! SIGHUP re-reads the file (plus the same flags) and applies it by the
//! reload rule of [`hts_gateway::config::reload`];
//! SIGUSR1 prints one line `hts gateway stats {json}` (router snapshot and
//! gateway counters) on standard output; SIGINT/SIGTERM drain and exit.
//!
//! The admin HTTP surface listens on `admin_listen` (announced as `hts
//! gateway-admin listening on ADDR` after the gateway's own line);
//! state-changing requests need the bearer token of `admin_token_file` or
//! `HTS_ADMIN_TOKEN`. Without a token the admin surface may only listen on
//! a loopback address: anything else is refused at start-up.
//!
//! With `tls_cert` and `tls_key` the client listener speaks TLS only.

use anyhow::Context as _;
use clap::Args;
use hts_gateway::admin::{AdminState, AdminToken};
use hts_gateway::config::layers::Layers;
use hts_gateway::config::reload::Reloader;
use hts_gateway::{Gateway, GatewayConfig};
use std::net::ToSocketAddrs as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Flags of `hts gateway`: the config file, then every setting (each also
/// a key of that file; a flag given here wins over the file).
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// TOML config file: any setting below (same names, `[resilience]` for
    /// the policies); re-read on SIGHUP and POST /admin/reload.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The settings.
    #[command(flatten)]
    pub settings: GatewayConfig,
}

impl GatewayArgs {
    /// The layers the settings come from: the file and the flags `given`
    /// on the command line (by clap arg id).
    fn layers(&self, given: &dyn Fn(&str) -> bool) -> Layers {
        Layers::new(self.config.clone(), &self.settings, given)
    }
}

/// The admin token: `admin_token_file`, else `HTS_ADMIN_TOKEN`, else none.
fn admin_token(config: &GatewayConfig) -> anyhow::Result<Option<AdminToken>> {
    if let Some(path) = &config.admin_token_file {
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

/// Runs the gateway until SIGINT/SIGTERM, then drains in-flight requests.
/// `given` tells which flags were given on the command line.
pub async fn run(args: GatewayArgs, given: &dyn Fn(&str) -> bool) -> anyhow::Result<ExitCode> {
    let layers = args.layers(given);
    let mut config = layers.load()?;
    anyhow::ensure!(
        !config.backends.is_empty(),
        "no backend: give --backend URL or a config file with backends"
    );
    config.jwt_secret = crate::secret::resolve(config.jwt_secret_file.as_deref())?;
    config.validate()?;
    let admin_token = admin_token(&config)?;
    if admin_token.is_none() {
        refuse_open_admin(&config.admin_listen)?;
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
    let listen = config.listen.clone();
    let addr = tokio::net::lookup_host(&listen)
        .await
        .with_context(|| format!("gateway: invalid listen address {listen}"))?
        .next()
        .with_context(|| format!("gateway: {listen} resolves to no address"))?;
    let listener = hts_gateway::server::bind_listener(addr, config.listen_backlog)
        .with_context(|| format!("gateway: cannot listen on {listen}"))?;
    let admin_listen = config.admin_listen.clone();
    let gateway = Gateway::from_listener(listener, config)?;
    super::announce("gateway", gateway.local_addr());
    let router = gateway.router();
    let stats = gateway.stats();
    if admin_token.is_none() {
        tracing::warn!("no admin token configured: admin changes are disabled");
    }
    let prometheus = crate::metrics::install(&[(
        hts_gateway::telemetry::ORDER_LATENCY,
        hts_gateway::telemetry::LATENCY_BUCKETS,
    )])?;
    let reloader = Arc::new(Reloader::new(layers, gateway.in_force(), router.clone()));
    let admin_reload = reloader.clone();
    let admin = Arc::new(
        AdminState::new(&gateway, admin_token)
            .with_prometheus(prometheus)
            .with_reload(Arc::new(move || Ok(admin_reload.reload()?))),
    );
    let (admin_listener, _) = super::bind_and_announce("gateway-admin", &admin_listen).await?;
    let admin_stop = tokio_util::sync::CancellationToken::new();
    let admin_task = tokio::spawn(hts_gateway::admin::serve(
        admin_listener,
        admin.clone(),
        admin_stop.clone().cancelled_owned(),
    ));
    #[cfg(unix)]
    {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match reloader.reload() {
                    Ok(()) => {
                        tracing::info!("configuration reloaded");
                        print_line("gateway reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "configuration reload refused; keeping the settings in force")
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
