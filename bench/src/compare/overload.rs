//! Scenario `overload`: offered load from 0.5× to 8× what the system can
//! serve, on the demo topology (three order services sharing one SQLite
//! store) and on PostgreSQL, each behind one gateway with its default
//! settings (50 ms deadline).
//!
//! The capacity is measured first, in the same run: the rate doubles from
//! [`FIRST_PROBE`] while at least 99 % of the orders are answered OK within
//! the deadline, then one bisection step between the last pass and the
//! first failure; the capacity is the OK rate of the best passing probe.
//! Then each factor of it is offered for `--overload-duration`, places with
//! a share of cancels (mix 9:1:0): goodput (OK per second), the p99 of the
//! orders served, the p99 of refusals (from send: the gateway's own
//! decision time), the p99 of cancels, TIMEOUTs. Right after the highest
//! factor, half the capacity is offered again; the time to recover is the
//! start of the first 100 ms bucket from which every bucket has ≥ 99 % OK.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::pg::{find_bindir, PgCluster};
use super::procs::Service;
use super::{Ctx, Scenario, ScenarioReport};
use crate::config::{LoadArgs, Mode};
use crate::driver;
use crate::mix::Mix;
use crate::report::{ms, RunReport, TimelinePoint};

/// First rate probed for the capacity.
pub const FIRST_PROBE: f64 = 500.0;
/// Length of one capacity probe.
const PROBE: Duration = Duration::from_secs(3);
/// The gateway's default request deadline (what "within the deadline" means).
const DEADLINE_MS: f64 = 50.0;

/// Nine places to one cancel of a placed order.
fn places_and_cancels() -> Mix {
    "9:1:0".parse().expect("a valid mix")
}

/// One offered factor of the capacity.
#[derive(Debug, Clone, Serialize)]
pub struct FactorRow {
    /// Offered ÷ capacity.
    pub factor: f64,
    /// The run.
    pub run: RunReport,
    /// OK answers per second of the measured window.
    pub goodput: f64,
}

/// One topology's results.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// `sqlite (demo)` or `postgres`.
    pub name: String,
    /// OK orders per second the system serves within the deadline.
    pub capacity: f64,
    /// The capacity probes, in order.
    pub probes: Vec<RunReport>,
    /// One row per factor.
    pub rows: Vec<FactorRow>,
    /// The half-capacity run right after the highest factor.
    pub after: Option<RunReport>,
    /// Time from the end of the overload to ≥ 99 % OK for good, ms.
    pub recovery_ms: Option<u64>,
}

/// OK answers per second of a run's measured window.
fn goodput(r: &RunReport) -> f64 {
    let ok = r.codes.get("OK").copied().unwrap_or(0);
    ok as f64 / r.duration_secs.max(f64::EPSILON)
}

/// Whether a probe passed: ≥ 99 % OK, OK p99 within the deadline.
fn passes(r: &RunReport) -> bool {
    let ok = r.codes.get("OK").copied().unwrap_or(0);
    ok * 100 >= r.scheduled * 99 && r.ok_latency_from_due_us.p99 as f64 / 1000.0 <= DEADLINE_MS
}

/// The start of the first timeline bucket from which every bucket (with
/// answers) is at least 99 % OK; `None` if the last one is not.
pub fn recovery_ms(timeline: &[TimelinePoint]) -> Option<u64> {
    let good = |p: &TimelinePoint| p.answered == 0 || p.ok * 100 >= p.answered * 99;
    match timeline.iter().rposition(|p| !good(p)) {
        None => Some(0),
        Some(i) => timeline.get(i + 1).map(|p| p.t_ms),
    }
}

fn load(
    ctx: &Ctx<'_>,
    label: String,
    gateway: &Service,
    rate: f64,
    duration: Duration,
    pids: &[u32],
) -> LoadArgs {
    LoadArgs {
        duration,
        warmup: Duration::from_millis(500),
        mix: places_and_cancels(),
        ..ctx.load(
            label,
            Mode::Gateway,
            gateway.addr.to_string(),
            rate,
            pids.to_vec(),
        )
    }
}

async fn measure(args: LoadArgs) -> anyhow::Result<RunReport> {
    let label = args.label();
    eprintln!("compare: {label} ...");
    let r = driver::run(&args)
        .await
        .with_context(|| format!("run {label}"))?;
    eprintln!(
        "compare: {label}: goodput {:.0}/s, OK p99 {} ms, refusal p99 {} ms, {:?}",
        goodput(&r),
        ms(r.ok_latency_from_due_us.p99),
        ms(r.refusal_latency_from_send_us.p99),
        r.codes
    );
    Ok(r)
}

async fn capacity(
    ctx: &Ctx<'_>,
    name: &str,
    gateway: &Service,
    pids: &[u32],
) -> anyhow::Result<(f64, Vec<RunReport>)> {
    let mut probes = Vec::new();
    let mut best: Option<(f64, f64)> = None;
    let mut rate = FIRST_PROBE;
    let mut failed = None;
    while rate <= 64_000.0 {
        let r = measure(load(
            ctx,
            format!("{name}-probe@{rate}"),
            gateway,
            rate,
            PROBE,
            pids,
        ))
        .await?;
        let ok = passes(&r);
        let got = goodput(&r);
        probes.push(r);
        if !ok {
            failed = Some(rate);
            break;
        }
        best = Some((rate, got));
        rate *= 2.0;
    }
    if let (Some((pass, _)), Some(fail)) = (best, failed) {
        let mid = (pass + fail) / 2.0;
        let r = measure(load(
            ctx,
            format!("{name}-probe@{mid}"),
            gateway,
            mid,
            PROBE,
            pids,
        ))
        .await?;
        if passes(&r) {
            best = Some((mid, goodput(&r)));
        }
        probes.push(r);
    }
    let capacity = best.map_or(FIRST_PROBE / 2.0, |(_, got)| got);
    Ok((capacity, probes))
}

async fn topology(
    ctx: &Ctx<'_>,
    name: &str,
    gateway: &Service,
    pids: &[u32],
) -> anyhow::Result<Topology> {
    ctx.prime(format!("{name}-prime"), gateway.addr.to_string())
        .await
        .ok();
    let (capacity, probes) = capacity(ctx, name, gateway, pids).await?;
    eprintln!("compare: {name}: capacity {capacity:.0} orders/s");
    let mut rows = Vec::new();
    for &factor in &ctx.args.overload_factors {
        let rate = capacity * factor;
        let r = measure(load(
            ctx,
            format!("{name}@{factor}x"),
            gateway,
            rate,
            ctx.args.overload_duration,
            pids,
        ))
        .await?;
        rows.push(FactorRow {
            factor,
            goodput: goodput(&r),
            run: r,
        });
    }
    let after = measure(LoadArgs {
        warmup: Duration::ZERO,
        ..load(
            ctx,
            format!("{name}-after"),
            gateway,
            capacity / 2.0,
            Duration::from_secs(3),
            pids,
        )
    })
    .await?;
    Ok(Topology {
        name: name.to_owned(),
        capacity,
        probes,
        rows,
        recovery_ms: recovery_ms(&after.timeline),
        after: Some(after),
    })
}

/// The markdown table of one topology.
pub fn table(t: &Topology) -> String {
    let mut out = format!(
        "**{}**: capacity {:.0} orders/s (≥ 99 % OK within the {DEADLINE_MS} ms deadline); \
         after the highest factor, ≥ 99 % OK again after {}.\n\n",
        t.name,
        t.capacity,
        t.recovery_ms
            .map_or("more than the 3 s measured".to_owned(), |ms| format!(
                "{ms} ms"
            )),
    );
    out.push_str("| offered | offered/s | goodput OK/s | goodput ÷ capacity | OK p99 ms | refusal p99 ms (from send) | cancel p99 ms | refused | TIMEOUT | other |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in &t.rows {
        let r = &row.run;
        let refused = r.codes.get("SERVICE_UNAVAILABLE").copied().unwrap_or(0)
            + r.codes.get("RATE_LIMITED").copied().unwrap_or(0);
        let timeouts = r.codes.get("TIMEOUT").copied().unwrap_or(0);
        let ok = r.codes.get("OK").copied().unwrap_or(0);
        let other = r.responses + r.timeouts - ok - refused - timeouts;
        let cancel = r
            .latency_by_kind_from_due_us
            .get("cancel")
            .map_or(String::new(), |p| ms(p.p99));
        let _ = writeln!(
            out,
            "| {}× | {:.0} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} |",
            row.factor,
            r.target_rate,
            row.goodput,
            row.goodput / t.capacity.max(f64::EPSILON),
            ms(r.ok_latency_from_due_us.p99),
            ms(r.refusal_latency_from_send_us.p99),
            cancel,
            refused,
            timeouts,
            other,
        );
    }
    out
}

/// Runs the overload scenario.
pub(super) async fn run(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioReport> {
    let mut topologies = Vec::new();
    {
        let account =
            ctx.account_service("overload-account-sqlite", &ctx.sqlite("overload-accounts"))?;
        let store = ctx.sqlite("overload-orders");
        let orders: Vec<Service> = (0..3)
            .map(|i| {
                ctx.order_service(&format!("overload-order-sqlite-{i}"), &store, &account, &[])
            })
            .collect::<anyhow::Result<_>>()?;
        let refs: Vec<&Service> = orders.iter().collect();
        let gateway = ctx.gateway_over("overload-gateway-sqlite", &refs, &[])?;
        let mut pids = vec![gateway.pid(), account.pid()];
        pids.extend(orders.iter().map(Service::pid));
        topologies.push(topology(ctx, "sqlite (demo)", &gateway, &pids).await?);
    }
    match find_bindir(ctx.args.pg_bindir.as_deref()) {
        Ok(bindir) => {
            let pg = PgCluster::start(bindir)?;
            let url = pg.url();
            let account = ctx.account_service("overload-account-pg", &url)?;
            let events = ctx
                .dir
                .join("overload-pg-events.jsonl")
                .display()
                .to_string();
            let orders: Vec<Service> = (0..3)
                .map(|i| {
                    ctx.order_service(
                        &format!("overload-order-pg-{i}"),
                        &url,
                        &account,
                        &["--events-log", &events],
                    )
                })
                .collect::<anyhow::Result<_>>()?;
            let refs: Vec<&Service> = orders.iter().collect();
            let gateway = ctx.gateway_over("overload-gateway-pg", &refs, &[])?;
            let mut pids = vec![gateway.pid(), account.pid()];
            pids.extend(orders.iter().map(Service::pid));
            pids.extend(pg.pids());
            topologies.push(topology(ctx, "postgres", &gateway, &pids).await?);
        }
        Err(e) => eprintln!("compare: overload: skipping PostgreSQL: {e:#}"),
    }
    let mut markdown = String::from("### Overload: goodput from 0.5× to 8× capacity\n\n");
    for t in &topologies {
        markdown.push_str(&table(t));
        markdown.push('\n');
    }
    Ok(ScenarioReport {
        scenario: Scenario::Overload,
        markdown,
        runs: topologies
            .iter()
            .flat_map(|t| t.rows.iter().map(|r| r.run.clone()))
            .collect(),
        extra: serde_json::to_value(&topologies).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_the_start_of_good_service_for_good() {
        let point = |t_ms, answered, ok| TimelinePoint { t_ms, answered, ok };
        let t = [
            point(0, 100, 10),
            point(100, 100, 98),
            point(200, 100, 100),
            point(300, 0, 0),
        ];
        assert_eq!(recovery_ms(&t), Some(200));
        assert_eq!(recovery_ms(&[point(0, 100, 100)]), Some(0));
        assert_eq!(
            recovery_ms(&[point(0, 100, 100), point(100, 100, 50)]),
            None
        );
    }
}
