//! `hts-bench compare`: side-by-side comparisons in one command.
//!
//! It starts everything it needs itself (the `hts` services, the frame echo
//! server, nginx and HAProxy) on free loopback ports with stores in a temp
//! dir, runs each [`Scenario`] at each rate and prints markdown tables with
//! ratios. A scenario is one variant of [`Scenario`] plus one function here
//! returning a [`ScenarioReport`] (hedging in [`hedging`], the durable store
//! comparison in [`durable`]).

pub mod durable;
pub mod hedging;
pub mod overload;
pub mod pg;
pub mod procs;
pub mod proxies;
pub mod tables;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use rand::Rng;
use serde::Serialize;

use crate::config::{parse_duration, LoadArgs, Mode};
use crate::driver;
use crate::mix::Mix;
use crate::report::RunReport;
use procs::{spawn_announced, Service};

/// A comparison `compare` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Direct gRPC to one order service vs the same orders through the gateway.
    DirectVsGateway,
    /// nginx grpc_pass (L7) and HAProxy TCP (L4) hops vs the gateway, all in front of no-work backends.
    Proxies,
    /// Hedging on vs off: two gateways in front of three real order services, one slowed.
    Hedging,
    /// Embedded SQLite vs PostgreSQL store for the order and account services.
    Durable,
    /// Offered load from 0.5x to 8x the measured capacity, demo topology and PostgreSQL.
    Overload,
}

/// Flags of `hts-bench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The `hts` binary to start services from.
    #[arg(long, default_value = "target/release/hts")]
    pub hts: PathBuf,
    /// Scenarios to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Scenario::DirectVsGateway, Scenario::Proxies, Scenario::Hedging, Scenario::Durable])]
    pub scenarios: Vec<Scenario>,
    /// Offered rates, requests per second.
    #[arg(long, value_delimiter = ',', default_values_t = [1000.0, 5000.0, 10000.0])]
    pub rates: Vec<f64>,
    /// Measured time per run.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Warm-up per run.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// Connections (or gRPC channels) per run.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Demo accounts used.
    #[arg(long, default_value_t = 16)]
    pub accounts: usize,
    /// place:cancel:query weights.
    #[arg(long, default_value = "8:1:1")]
    pub mix: Mix,
    /// Bench-side timeout per request.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Gateway request timeout passed to `hts gateway --request-timeout-ms`.
    #[arg(long, default_value_t = 1000)]
    pub gateway_request_timeout_ms: u64,
    /// nginx binary (Debian package `nginx`).
    #[arg(long, default_value = "nginx")]
    pub nginx: PathBuf,
    /// HAProxy binary (Debian package `haproxy`).
    #[arg(long, default_value = "haproxy")]
    pub haproxy: PathBuf,
    /// Offered rates of the hedging scenario (below the real order services' saturation).
    #[arg(long, value_delimiter = ',', default_values_t = [500.0, 1000.0])]
    pub hedging_rates: Vec<f64>,
    /// Latency added to the slowed backend's affected calls (hedging scenario), ms.
    #[arg(long, default_value_t = 200)]
    pub fault_latency_ms: u64,
    /// Share of the slowed backend's calls that get the added latency.
    #[arg(long, default_value_t = 0.1)]
    pub fault_latency_ratio: f64,
    /// Extra flag for both gateways of the hedging scenario (repeatable),
    /// e.g. `--hedging-gateway-arg=--breaker-failure-ratio=1`.
    #[arg(long, allow_hyphen_values = true)]
    pub hedging_gateway_arg: Vec<String>,
    /// Offered rates of the SQLite vs PostgreSQL scenario (places; cancels
    /// run at the same rates with as many places beside them).
    #[arg(long, value_delimiter = ',', default_values_t = [100.0, 1000.0, 5000.0, 10000.0, 20000.0])]
    pub durable_rates: Vec<f64>,
    /// p99 target (ms) of the durable-orders goal.
    #[arg(long, default_value_t = 20.0)]
    pub durable_p99_ms: f64,
    /// Directory of the PostgreSQL server binaries (default: newest /usr/lib/postgresql/*/bin).
    #[arg(long)]
    pub pg_bindir: Option<PathBuf>,
    /// Offered load of the overload scenario, as multiples of the measured capacity.
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 1.0, 2.0, 4.0, 8.0])]
    pub overload_factors: Vec<f64>,
    /// Measured time of each overload factor.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub overload_duration: Duration,
    /// Do not draw progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Which scenario.
    pub scenario: Scenario,
    /// Its markdown tables.
    pub markdown: String,
    /// Every run it made.
    pub runs: Vec<RunReport>,
    /// Scenario-specific data (gateway counters, per-store CPU), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// The machine it ran on.
    pub machine: Machine,
    /// One entry per scenario.
    pub scenarios: Vec<ScenarioReport>,
    /// Goal verdicts derived from the scenarios.
    pub goals: Vec<tables::Goal>,
}

/// What the numbers were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Memory, MiB.
    pub memory_mib: u64,
}

impl Machine {
    /// Reads the machine's description from /proc.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_owned(), |m| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_mib: crate::procstat::parse_status_kib(&meminfo, "MemTotal:").unwrap_or(0)
                / 1024,
        }
    }
}

/// What every run of the comparison shares.
struct Ctx<'a> {
    args: &'a CompareArgs,
    dir: &'a Path,
    secret: String,
}

impl Ctx<'_> {
    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("HTS_JWT_SECRET", self.secret.as_str()),
            ("RUST_LOG", "warn"),
        ]
    }

    fn hts(&self, name: &str, args: &[&str]) -> anyhow::Result<Service> {
        spawn_announced(name, &self.args.hts, args, &self.env(), self.dir)
    }

    fn gateway(&self, name: &str, backend: &Service) -> anyhow::Result<Service> {
        let timeout = self.args.gateway_request_timeout_ms.to_string();
        let backend_url = backend.url();
        self.hts(
            name,
            &[
                "gateway",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--backend",
                &backend_url,
                "--request-timeout-ms",
                &timeout,
            ],
        )
    }

    /// `sqlite:<temp dir>/<name>.db`.
    fn sqlite(&self, name: &str) -> String {
        format!("sqlite:{}", self.dir.join(format!("{name}.db")).display())
    }

    /// An account service with the demo accounts on `store`.
    fn account_service(&self, name: &str, store: &str) -> anyhow::Result<Service> {
        self.hts(
            name,
            &[
                "account-service",
                "--init",
                "--listen",
                "127.0.0.1:0",
                "--store",
                store,
                "--seed-demo",
            ],
        )
    }

    /// A real order service on `store` using `account`, plus `extra` flags.
    fn order_service(
        &self,
        name: &str,
        store: &str,
        account: &Service,
        extra: &[&str],
    ) -> anyhow::Result<Service> {
        let account_url = account.url();
        let mut args = vec![
            "order-service",
            "--init",
            "--listen",
            "127.0.0.1:0",
            "--store",
            store,
            "--account-service",
            &account_url,
        ];
        args.extend_from_slice(extra);
        self.hts(name, &args)
    }

    /// A gateway over `backends` with its default deadline, plus `extra` flags.
    fn gateway_over(
        &self,
        name: &str,
        backends: &[&Service],
        extra: &[&str],
    ) -> anyhow::Result<Service> {
        let urls: Vec<String> = backends.iter().map(|b| b.url()).collect();
        let mut args = vec![
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ];
        for u in &urls {
            args.extend(["--backend", u.as_str()]);
        }
        args.extend_from_slice(extra);
        self.hts(name, &args)
    }

    /// A short unreported direct run at a low rate (opens pools, warms caches).
    async fn prime(&self, label: String, addr: String) -> anyhow::Result<()> {
        let rate = 200.0;
        let load = self.load(label, Mode::Direct, addr, rate, Vec::new());
        let load = LoadArgs {
            duration: Duration::from_secs(2),
            warmup: Duration::ZERO,
            ..load
        };
        driver::run(&load).await.context("priming run")?;
        Ok(())
    }

    fn load(&self, label: String, mode: Mode, addr: String, rate: f64, pids: Vec<u32>) -> LoadArgs {
        let a = self.args;
        LoadArgs {
            addr,
            mode,
            rate,
            duration: a.duration,
            warmup: a.warmup,
            connections: a.connections,
            accounts: a.accounts,
            mix: a.mix,
            timeout: a.timeout,
            jwt_secret: self.secret.clone(),
            pids,
            label: Some(label),
            no_progress: a.no_progress,
        }
    }

    async fn run(
        &self,
        label: String,
        mode: Mode,
        addr: String,
        rate: f64,
        pids: Vec<u32>,
    ) -> anyhow::Result<RunReport> {
        self.run_mix(label, mode, addr, rate, pids, self.args.mix)
            .await
    }

    /// [`Ctx::run`] with the request mix `mix` instead of `--mix`.
    async fn run_mix(
        &self,
        label: String,
        mode: Mode,
        addr: String,
        rate: f64,
        pids: Vec<u32>,
        mix: Mix,
    ) -> anyhow::Result<RunReport> {
        let load = LoadArgs {
            mix,
            ..self.load(label.clone(), mode, addr, rate, pids)
        };
        eprintln!("compare: {label} ...");
        let report = driver::run(&load)
            .await
            .with_context(|| format!("run {label}"))?;
        eprintln!(
            "compare: {label}: achieved {:.0}/s, p50 {} ms, p99 {} ms, {} not OK",
            report.achieved_rate,
            crate::report::ms(report.latency_from_due_us.p50),
            crate::report::ms(report.latency_from_due_us.p99),
            report.errors
        );
        Ok(report)
    }
}

async fn direct_vs_gateway(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioReport> {
    let account_store = format!("sqlite:{}", ctx.dir.join("accounts.db").display());
    let account = ctx.hts(
        "account-service",
        &[
            "account-service",
            "--init",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &account_store,
            "--seed-demo",
        ],
    )?;
    let order_store = format!("sqlite:{}", ctx.dir.join("orders.db").display());
    let account_url = account.url();
    let orders = ctx.hts(
        "order-service",
        &[
            "order-service",
            "--init",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &order_store,
            "--account-service",
            &account_url,
        ],
    )?;
    let gateway = ctx.gateway("gateway", &orders)?;
    let mut pairs = Vec::new();
    for &rate in &ctx.args.rates {
        let backends = vec![orders.pid(), account.pid()];
        let direct = ctx
            .run(
                format!("direct@{rate}"),
                Mode::Direct,
                orders.url(),
                rate,
                backends.clone(),
            )
            .await?;
        let mut pids = vec![gateway.pid()];
        pids.extend(backends);
        let via = ctx
            .run(
                format!("gateway@{rate}"),
                Mode::Gateway,
                gateway.addr.to_string(),
                rate,
                pids,
            )
            .await?;
        pairs.push(tables::Pair {
            rate,
            floor: direct,
            hop: via,
            hop_pid: gateway.pid(),
        });
    }
    Ok(ScenarioReport {
        scenario: Scenario::DirectVsGateway,
        markdown: tables::direct_vs_gateway(&pairs, orders.pid()),
        runs: pairs.into_iter().flat_map(|p| [p.floor, p.hop]).collect(),
        extra: None,
    })
}

async fn proxies(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioReport> {
    let echo_orders = ctx.hts(
        "order-service-echo",
        &["order-service", "--listen", "127.0.0.1:0", "--echo"],
    )?;
    let gateway = ctx.gateway("gateway-echo", &echo_orders)?;
    let me = std::env::current_exe().context("locating hts-bench itself")?;
    let frame_echo = spawn_announced(
        "echo-server",
        &me,
        &["echo-server", "--listen", "127.0.0.1:0"],
        &[("RUST_LOG", "warn")],
        ctx.dir,
    )?;
    let nginx = proxies::start_nginx(&ctx.args.nginx, ctx.dir, echo_orders.addr)?;
    let haproxy = proxies::start_haproxy(&ctx.args.haproxy, ctx.dir, frame_echo.addr)?;
    let mut rows = Vec::new();
    for &rate in &ctx.args.rates {
        let grpc_floor = ctx
            .run(
                format!("grpc-floor@{rate}"),
                Mode::Direct,
                echo_orders.url(),
                rate,
                vec![echo_orders.pid()],
            )
            .await?;
        let via_nginx = ctx
            .run(
                format!("nginx@{rate}"),
                Mode::Direct,
                nginx.url(),
                rate,
                vec![nginx.pid(), echo_orders.pid()],
            )
            .await?;
        let via_gateway = ctx
            .run(
                format!("gateway-echo@{rate}"),
                Mode::Gateway,
                gateway.addr.to_string(),
                rate,
                vec![gateway.pid(), echo_orders.pid()],
            )
            .await?;
        let frame_floor = ctx
            .run(
                format!("frame-floor@{rate}"),
                Mode::Gateway,
                frame_echo.addr.to_string(),
                rate,
                vec![frame_echo.pid()],
            )
            .await?;
        let via_haproxy = ctx
            .run(
                format!("haproxy@{rate}"),
                Mode::Gateway,
                haproxy.addr.to_string(),
                rate,
                vec![haproxy.pid(), frame_echo.pid()],
            )
            .await?;
        rows.push(tables::ProxyRow {
            rate,
            nginx: tables::Pair {
                rate,
                floor: grpc_floor.clone(),
                hop: via_nginx,
                hop_pid: nginx.pid(),
            },
            gateway: tables::Pair {
                rate,
                floor: grpc_floor,
                hop: via_gateway,
                hop_pid: gateway.pid(),
            },
            haproxy: tables::Pair {
                rate,
                floor: frame_floor,
                hop: via_haproxy,
                hop_pid: haproxy.pid(),
            },
        });
    }
    Ok(ScenarioReport {
        scenario: Scenario::Proxies,
        markdown: tables::proxies(&rows),
        runs: rows
            .into_iter()
            .flat_map(|r| {
                [
                    r.nginx.floor,
                    r.nginx.hop,
                    r.gateway.hop,
                    r.haproxy.floor,
                    r.haproxy.hop,
                ]
            })
            .collect(),
        extra: None,
    })
}

/// Runs the comparison: starts the system, runs every scenario, stops everything.
pub async fn run(args: &CompareArgs) -> anyhow::Result<CompareReport> {
    if !args.hts.exists() {
        anyhow::bail!(
            "{} does not exist: build it with `cargo build --release -p hts-cli` or pass --hts",
            args.hts.display()
        );
    }
    crate::idle::raise_fd_limit();
    let dir = tempfile::Builder::new()
        .prefix("hts-bench-compare")
        .tempdir()
        .context("creating a temp dir")?;
    let secret: [u8; 16] = rand::thread_rng().gen();
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let ctx = Ctx {
        args,
        dir: dir.path(),
        secret,
    };
    let mut scenarios = Vec::new();
    for s in &args.scenarios {
        let report = match s {
            Scenario::DirectVsGateway => direct_vs_gateway(&ctx).await,
            Scenario::Proxies => proxies(&ctx).await,
            Scenario::Hedging => hedging::run(&ctx).await,
            Scenario::Durable => durable::run(&ctx).await,
            Scenario::Overload => overload::run(&ctx).await,
        };
        scenarios.push(report.with_context(|| {
            format!("scenario {s:?} (service logs in {})", dir.path().display())
        })?);
    }
    let goals = tables::goals(&scenarios, args.durable_p99_ms);
    Ok(CompareReport {
        machine: Machine::detect(),
        scenarios,
        goals,
    })
}

/// The full markdown of a comparison.
pub fn markdown(r: &CompareReport) -> String {
    let mut out = format!(
        "Machine: {} CPUs ({}), {} MiB memory; the bench, the services and the proxies share these CPUs.\n\n",
        r.machine.cpus, r.machine.cpu_model, r.machine.memory_mib
    );
    for s in &r.scenarios {
        out.push_str(&s.markdown);
        out.push('\n');
    }
    out.push_str(&tables::goals_markdown(&r.goals));
    out
}
