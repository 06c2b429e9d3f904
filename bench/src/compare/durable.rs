//! Scenario 4: the embedded SQLite store vs PostgreSQL.
//!
//! The same orders, as gRPC straight to one real order service (no gateway:
//! on a small machine its CPU would compete with the store), first with the
//! order service and the account service on SQLite files, then both on one
//! throwaway PostgreSQL cluster ([`super::pg::PgCluster`]). CPU per 1,000
//! orders is reported for the order service, the account service and, on
//! PostgreSQL, the sum over the postmaster and all its children (listed
//! after a short unreported priming run has opened the connection pools).

use std::fmt::Write as _;

use serde::Serialize;

use super::pg::{find_bindir, PgCluster};
use super::procs::Service;
use super::{Ctx, Scenario, ScenarioReport};
use crate::config::Mode;
use crate::report::{ms, RunReport};

/// One store's run at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRun {
    /// `sqlite` or `postgres`.
    pub store: String,
    /// The bench's report.
    pub run: RunReport,
    /// Order service CPU ms per 1,000 requests.
    pub order_cpu: Option<f64>,
    /// Account service CPU ms per 1,000 requests.
    pub account_cpu: Option<f64>,
    /// PostgreSQL (all processes) CPU ms per 1,000 requests.
    pub pg_cpu: Option<f64>,
}

fn sum_cpu(run: &RunReport, pids: &[u32]) -> Option<f64> {
    let v: Vec<f64> = pids.iter().filter_map(|p| run.cpu_per_1000(*p)).collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

async fn store_runs(
    ctx: &Ctx<'_>,
    store: &str,
    account: &Service,
    orders: &Service,
    pg: Option<&PgCluster>,
) -> anyhow::Result<Vec<StoreRun>> {
    // Opens the pools (and PostgreSQL backends) before pids are listed.
    ctx.prime(format!("{store}-prime"), orders.url()).await?;
    let mut out = Vec::new();
    for &rate in &ctx.args.durable_rates {
        let pg_pids = pg.map(PgCluster::pids).unwrap_or_default();
        let mut pids = vec![orders.pid(), account.pid()];
        pids.extend(&pg_pids);
        let run = ctx
            .run(
                format!("{store}@{rate}"),
                Mode::Direct,
                orders.url(),
                rate,
                pids,
            )
            .await?;
        out.push(StoreRun {
            store: store.to_owned(),
            order_cpu: run.cpu_per_1000(orders.pid()),
            account_cpu: run.cpu_per_1000(account.pid()),
            pg_cpu: sum_cpu(&run, &pg_pids),
            run,
        });
    }
    Ok(out)
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
        rows.extend(store_runs(ctx, "sqlite", &account, &orders, None).await?);
    }
    let bindir = match find_bindir(ctx.args.pg_bindir.as_deref()) {
        Ok(dir) => dir,
        Err(e) => {
            // SQLite alone is still worth reporting; say why PostgreSQL is missing.
            eprintln!("compare: durable: skipping PostgreSQL: {e:#}");
            let mut markdown = table(&rows);
            markdown.push_str(&format!("\nPostgreSQL not measured: {e:#}.\n"));
            return Ok(ScenarioReport {
                scenario: Scenario::Durable,
                markdown,
                runs: rows.iter().map(|r| r.run.clone()).collect(),
                extra: serde_json::to_value(&rows).ok(),
            });
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
    rows.extend(store_runs(ctx, "postgres", &account, &orders, Some(&pg)).await?);
    drop((orders, account));
    Ok(ScenarioReport {
        scenario: Scenario::Durable,
        markdown: table(&rows),
        runs: rows.iter().map(|r| r.run.clone()).collect(),
        extra: serde_json::to_value(&rows).ok(),
    })
}

fn cpu(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.1}"))
}

/// Scenario 4's table.
pub fn table(rows: &[StoreRun]) -> String {
    let mut out = String::from(
        "### Embedded SQLite vs PostgreSQL (direct gRPC to one real order service; account service on the same store)\n\n",
    );
    out.push_str("| rate/s | store | achieved/s | p50 | p99 | p99.9 | not OK | order-service CPU ms / 1k | account-service CPU ms / 1k | PostgreSQL CPU ms / 1k |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut sorted: Vec<&StoreRun> = rows.iter().collect();
    sorted.sort_by(|a, b| a.run.target_rate.total_cmp(&b.run.target_rate));
    for r in sorted {
        let _ = writeln!(
            out,
            "| {:.0} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            r.run.target_rate,
            r.store,
            r.run.achieved_rate,
            ms(r.run.latency_from_due_us.p50),
            ms(r.run.latency_from_due_us.p99),
            ms(r.run.latency_from_due_us.p999),
            r.run.errors,
            cpu(r.order_cpu),
            cpu(r.account_cpu),
            cpu(r.pg_cpu),
        );
    }
    out.push_str("\nLatencies in ms from due time. CPU per 1,000 answered requests (errors included). PostgreSQL CPU sums the postmaster and all its children.\n");
    out
}
