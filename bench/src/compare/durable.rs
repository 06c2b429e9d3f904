//! Scenario 4: the durable order path, embedded SQLite vs PostgreSQL.
//!
//! For each store (first the order and account services on SQLite files,
//! then both on one throwaway PostgreSQL cluster, [`super::pg::PgCluster`])
//! and each rate, three runs:
//!
//! * **places** as gRPC straight to one real order service (mix `1:0:0`,
//!   whatever `--mix` says: a run of places is reported on its own);
//! * the same places **through a gateway** in front of that order service;
//! * **cancels**: mix `1:1:0` straight to the order service (each cancel
//!   targets an order its connection placed earlier in the run), reported
//!   by the cancels' own latencies.
//!
//! Per place run: CPU per 1,000 orders of the order service, the account
//! service, the gateway (gateway runs) and PostgreSQL (the postmaster and
//! all its children, listed after a short unreported priming run has
//! opened the connection pools); on PostgreSQL the rows written per order
//! (`n_tup_ins + n_tup_upd + n_tup_del` of every user table) and the WAL
//! bytes per order (`pg_current_wal_lsn()`), both over the orders the run
//! stored, read before and after with the statistics settled; on SQLite
//! the bytes the two services wrote to storage per order
//! (`/proc/<pid>/io`: WAL and checkpoints).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::pg::{find_bindir, PgCluster, PgTotals};
use super::procs::Service;
use super::{Ctx, Scenario, ScenarioReport};
use crate::config::Mode;
use crate::mix::Mix;
use crate::report::{ms, Percentiles, RunReport};

/// Mix of the cancel runs: one place per cancel.
const CANCEL_MIX: Mix = Mix::PLACE_AND_CANCEL;
/// How long PostgreSQL's backends get to flush their table statistics
/// (an idle backend flushes pending statistics within about a second).
const STATS_SETTLE: Duration = Duration::from_millis(2_500);

/// One run of one store at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRun {
    /// `sqlite` or `postgres`.
    pub store: String,
    /// `direct` or `gateway`.
    pub path: String,
    /// `place` or `cancel`: whose latencies the row reports.
    pub kind: String,
    /// The bench's report.
    pub run: RunReport,
    /// Order service CPU ms per 1,000 requests.
    pub order_cpu: Option<f64>,
    /// Account service CPU ms per 1,000 requests.
    pub account_cpu: Option<f64>,
    /// Gateway CPU ms per 1,000 requests (gateway runs).
    pub gateway_cpu: Option<f64>,
    /// PostgreSQL (all processes) CPU ms per 1,000 requests.
    pub pg_cpu: Option<f64>,
    /// Rows written per stored order (PostgreSQL).
    pub rows_per_order: Option<f64>,
    /// WAL bytes per stored order (PostgreSQL).
    pub wal_bytes_per_order: Option<f64>,
    /// Bytes the order and account services wrote to storage per OK order (SQLite).
    pub written_bytes_per_order: Option<f64>,
}

impl StoreRun {
    /// The latencies this row reports (its kind's, from due time).
    pub fn latency(&self) -> Percentiles {
        self.run
            .latency_by_kind_from_due_us
            .get(&self.kind)
            .copied()
            .unwrap_or(self.run.latency_from_due_us)
    }
}

fn sum_cpu(run: &RunReport, pids: &[u32]) -> Option<f64> {
    let v: Vec<f64> = pids.iter().filter_map(|p| run.cpu_per_1000(*p)).collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

fn ok_answers(run: &RunReport) -> u64 {
    run.codes.get("OK").copied().unwrap_or(0)
}

/// The services of one store.
struct Stack<'a> {
    store: &'a str,
    account: &'a Service,
    orders: &'a Service,
    gateway: &'a Service,
    pg: Option<&'a PgCluster>,
}

impl Stack<'_> {
    fn row(&self, path: &str, kind: &str, run: RunReport) -> StoreRun {
        let pg_pids = self.pg.map(PgCluster::pids).unwrap_or_default();
        StoreRun {
            store: self.store.to_owned(),
            path: path.to_owned(),
            kind: kind.to_owned(),
            order_cpu: run.cpu_per_1000(self.orders.pid()),
            account_cpu: run.cpu_per_1000(self.account.pid()),
            gateway_cpu: (path == "gateway")
                .then(|| run.cpu_per_1000(self.gateway.pid()))
                .flatten(),
            pg_cpu: sum_cpu(&run, &pg_pids),
            rows_per_order: None,
            wal_bytes_per_order: None,
            written_bytes_per_order: None,
            run,
        }
    }

    fn pids(&self, path: &str) -> Vec<u32> {
        let mut pids = vec![self.orders.pid(), self.account.pid()];
        if path == "gateway" {
            pids.push(self.gateway.pid());
        }
        pids.extend(self.pg.map(PgCluster::pids).unwrap_or_default());
        pids
    }

    /// PostgreSQL totals once its statistics have settled.
    async fn totals(&self) -> Option<PgTotals> {
        let pg = self.pg?;
        tokio::time::sleep(STATS_SETTLE).await;
        match pg.totals() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("compare: durable: cannot read PostgreSQL totals: {e:#}");
                None
            }
        }
    }

    /// A place run on `path` with its storage costs.
    async fn places(&self, ctx: &Ctx<'_>, path: &str, rate: f64) -> anyhow::Result<StoreRun> {
        let (mode, addr, label) = match path {
            "gateway" => (
                Mode::Gateway,
                self.gateway.addr.to_string(),
                format!("{}-gateway@{rate}", self.store),
            ),
            _ => (
                Mode::Direct,
                self.orders.url(),
                format!("{}@{rate}", self.store),
            ),
        };
        let before = self.totals().await;
        let run = ctx
            .run_mix(label, mode, addr, rate, self.pids(path), Mix::PLACE_ONLY)
            .await?;
        let after = self.totals().await;
        let mut row = self.row(path, "place", run);
        if let (Some(b), Some(a)) = (before, after) {
            let orders = a.orders.saturating_sub(b.orders);
            if orders > 0 {
                row.rows_per_order = Some(a.rows.saturating_sub(b.rows) as f64 / orders as f64);
                row.wal_bytes_per_order =
                    Some(a.wal_bytes.saturating_sub(b.wal_bytes) as f64 / orders as f64);
            }
        }
        if self.pg.is_none() {
            let ok = ok_answers(&row.run);
            let written: u64 = row
                .run
                .processes
                .iter()
                .filter(|p| p.pid == self.orders.pid() || p.pid == self.account.pid())
                .map(|p| p.write_bytes)
                .sum();
            row.written_bytes_per_order = (ok > 0).then(|| written as f64 / ok as f64);
        }
        Ok(row)
    }

    /// A cancel run (one place per cancel), direct.
    async fn cancels(&self, ctx: &Ctx<'_>, rate: f64) -> anyhow::Result<StoreRun> {
        let run = ctx
            .run_mix(
                format!("{}-cancel@{rate}", self.store),
                Mode::Direct,
                self.orders.url(),
                rate,
                self.pids("direct"),
                CANCEL_MIX,
            )
            .await?;
        Ok(self.row("direct", "cancel", run))
    }

    async fn runs(&self, ctx: &Ctx<'_>) -> anyhow::Result<Vec<StoreRun>> {
        // Opens the pools (and PostgreSQL backends) before pids are listed.
        ctx.prime(format!("{}-prime", self.store), self.orders.url())
            .await?;
        let mut out = Vec::new();
        for &rate in &ctx.args.durable_rates {
            out.push(self.places(ctx, "direct", rate).await?);
            out.push(self.places(ctx, "gateway", rate).await?);
            out.push(self.cancels(ctx, rate).await?);
        }
        Ok(out)
    }
}

/// Runs scenario 4.
pub(super) async fn run(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioReport> {
    let mut rows = Vec::new();
    {
        let account =
            ctx.account_service("durable-account-sqlite", &ctx.sqlite("durable-accounts"))?;
        let orders = ctx.order_service(
            "durable-order-sqlite",
            &ctx.sqlite("durable-orders"),
            &account,
            &[],
        )?;
        let gateway = ctx.gateway("durable-gateway-sqlite", &orders)?;
        let stack = Stack {
            store: "sqlite",
            account: &account,
            orders: &orders,
            gateway: &gateway,
            pg: None,
        };
        rows.extend(stack.runs(ctx).await?);
    }
    let bindir = match find_bindir(ctx.args.pg_bindir.as_deref()) {
        Ok(dir) => dir,
        Err(e) => {
            // SQLite alone is still worth reporting; say why PostgreSQL is missing.
            eprintln!("compare: durable: skipping PostgreSQL: {e:#}");
            let mut markdown = table(&rows);
            markdown.push_str(&format!("\nPostgreSQL not measured: {e:#}.\n"));
            return Ok(report(markdown, &rows));
        }
    };
    let pg = PgCluster::start(bindir)?;
    let url = pg.url();
    let account = ctx.account_service("durable-account-pg", &url)?;
    let events = ctx
        .dir
        .join("durable-pg-events.jsonl")
        .display()
        .to_string();
    let orders = ctx.order_service(
        "durable-order-pg",
        &url,
        &account,
        &["--events-log", &events],
    )?;
    let gateway = ctx.gateway("durable-gateway-pg", &orders)?;
    let stack = Stack {
        store: "postgres",
        account: &account,
        orders: &orders,
        gateway: &gateway,
        pg: Some(&pg),
    };
    rows.extend(stack.runs(ctx).await?);
    drop((gateway, orders, account));
    Ok(report(table(&rows), &rows))
}

fn report(markdown: String, rows: &[StoreRun]) -> ScenarioReport {
    ScenarioReport {
        scenario: Scenario::Durable,
        markdown,
        runs: rows.iter().map(|r| r.run.clone()).collect(),
        extra: serde_json::to_value(rows).ok(),
    }
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or(String::new(), |v| format!("{v:.digits$}"))
}

/// Scenario 4's table.
pub fn table(rows: &[StoreRun]) -> String {
    let mut out = String::from(
        "### Durable orders: embedded SQLite vs PostgreSQL (one real order service, account service on the same store)\n\n",
    );
    out.push_str("| rate/s | store | path | reported | achieved/s | p50 | p99 | p99.9 | not OK | order-service CPU ms / 1k | account-service CPU ms / 1k | gateway CPU ms / 1k | PostgreSQL CPU ms / 1k | all CPU ms / 1k | rows / order | WAL bytes / order | bytes written / order |\n");
    out.push_str(
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut sorted: Vec<&StoreRun> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (a.store.as_str(), a.kind.as_str(), a.path.as_str())
            .cmp(&(b.store.as_str(), b.kind.as_str(), b.path.as_str()))
            .then(a.run.target_rate.total_cmp(&b.run.target_rate))
    });
    for r in sorted {
        let l = r.latency();
        let all: Vec<f64> = [r.order_cpu, r.account_cpu, r.gateway_cpu, r.pg_cpu]
            .into_iter()
            .flatten()
            .collect();
        let _ = writeln!(
            out,
            "| {:.0} | {} | {} | {}s | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.run.target_rate,
            r.store,
            r.path,
            r.kind,
            r.run.achieved_rate,
            ms(l.p50),
            ms(l.p99),
            ms(l.p999),
            r.run.errors,
            num(r.order_cpu, 1),
            num(r.account_cpu, 1),
            num(r.gateway_cpu, 1),
            num(r.pg_cpu, 1),
            num((!all.is_empty()).then(|| all.iter().sum()), 1),
            num(r.rows_per_order, 2),
            num(r.wal_bytes_per_order, 0),
            num(r.written_bytes_per_order, 0),
        );
    }
    out.push_str("\nLatencies in ms from due time, of the requests the row reports (places, or the cancels of a 1:1 place:cancel run, whose rate is the total of both). CPU per 1,000 answered requests of the run (errors included); PostgreSQL CPU sums the postmaster and all its children; \"all\" adds the columns of the row. Rows and WAL bytes per order: PostgreSQL statistics over the orders the run stored (warm-up included). Bytes written: `/proc/<pid>/io` write_bytes of the order and account services per OK answer (SQLite).\n");
    out
}
