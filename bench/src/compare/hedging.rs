//! Scenario 3: hedging on vs off in front of three real order services, one
//! of which is slowed for a share of its calls by the order-service fault
//! flags (`--fault-latency-ms`, `--fault-latency-ratio`).
//!
//! Two gateways (`--hedging true` and `--hedging false`, both with the
//! gateway's default request deadline) front the same backends; each rate is
//! run once through each. The extra backend calls hedging costs come from the
//! gateway's own counters: `hts gateway stats {json}` printed on SIGUSR1
//! before and after each run (router `requests`, `backend_calls`, `hedges`,
//! `hedge_wins`, `retries`, `timeouts`).

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::procs::Service;
use super::{Ctx, Scenario, ScenarioReport};
use crate::config::Mode;
use crate::report::{ms, RunReport};

/// How long to wait for a stats line after SIGUSR1.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// Router totals of `hts gateway stats` (the `router` object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RouterCounters {
    /// Client requests routed.
    #[serde(default)]
    pub requests: u64,
    /// Backend calls sent (first attempts, retries and hedges).
    #[serde(default)]
    pub backend_calls: u64,
    /// Hedges sent.
    #[serde(default)]
    pub hedges: u64,
    /// Requests answered by their hedge.
    #[serde(default)]
    pub hedge_wins: u64,
    /// Retries sent.
    #[serde(default)]
    pub retries: u64,
    /// Requests answered TIMEOUT at the gateway deadline.
    #[serde(default)]
    pub timeouts: u64,
    /// Requests refused because no backend could take them.
    #[serde(default)]
    pub no_backend: u64,
    /// Requests refused at the global in-flight limit.
    #[serde(default)]
    pub rejected_global: u64,
    /// Requests refused RATE_LIMITED.
    #[serde(default)]
    pub rate_limited: u64,
}

#[derive(Deserialize)]
struct StatsLine {
    router: RouterCounters,
}

impl RouterCounters {
    /// Parses the JSON of one `hts gateway stats {json}` line.
    pub fn parse(json: &str) -> Option<RouterCounters> {
        serde_json::from_str::<StatsLine>(json)
            .ok()
            .map(|s| s.router)
    }

    /// `self - earlier`, counter by counter (never below zero).
    pub fn since(&self, earlier: &RouterCounters) -> RouterCounters {
        RouterCounters {
            requests: self.requests.saturating_sub(earlier.requests),
            backend_calls: self.backend_calls.saturating_sub(earlier.backend_calls),
            hedges: self.hedges.saturating_sub(earlier.hedges),
            hedge_wins: self.hedge_wins.saturating_sub(earlier.hedge_wins),
            retries: self.retries.saturating_sub(earlier.retries),
            timeouts: self.timeouts.saturating_sub(earlier.timeouts),
            no_backend: self.no_backend.saturating_sub(earlier.no_backend),
            rejected_global: self.rejected_global.saturating_sub(earlier.rejected_global),
            rate_limited: self.rate_limited.saturating_sub(earlier.rate_limited),
        }
    }

    /// Hedges plus retries (the backend calls beyond a request's first
    /// attempt), as a % of requests.
    pub fn extra_calls_pct(&self) -> Option<f64> {
        (self.requests > 0)
            .then(|| (self.hedges + self.retries) as f64 * 100.0 / self.requests as f64)
    }
}

/// One gateway's run at one rate and its counters over that run.
#[derive(Debug, Clone, Serialize)]
pub struct HedgeRun {
    /// The bench's report.
    pub run: RunReport,
    /// Gateway counters over the run (warm-up included), if the stats line came.
    pub counters: Option<RouterCounters>,
    /// The whole stats line after the run (per-backend state), if it came.
    pub stats_after: Option<serde_json::Value>,
}

/// One rate: hedging on and off.
#[derive(Debug, Clone, Serialize)]
pub struct HedgeRow {
    /// Offered rate.
    pub rate: f64,
    /// Through the gateway with `--hedging true`.
    pub on: HedgeRun,
    /// Through the gateway with `--hedging false`.
    pub off: HedgeRun,
}

impl HedgeRow {
    /// p99 (from due time) with hedging ÷ without.
    pub fn p99_ratio(&self) -> Option<f64> {
        let off = self.off.run.latency_from_due_us.p99;
        (off > 0).then(|| self.on.run.latency_from_due_us.p99 as f64 / off as f64)
    }
}

fn stats(gateway: &Service) -> Option<String> {
    gateway.signal_and_read(libc::SIGUSR1, "hts gateway stats ", STATS_TIMEOUT)
}

async fn measured(
    ctx: &Ctx<'_>,
    label: String,
    gateway: &Service,
    rate: f64,
    pids: Vec<u32>,
) -> anyhow::Result<HedgeRun> {
    let before = stats(gateway);
    let run = ctx
        .run(label, Mode::Gateway, gateway.addr.to_string(), rate, pids)
        .await?;
    let after = stats(gateway);
    let parse = |s: &Option<String>| s.as_deref().and_then(RouterCounters::parse);
    let counters = parse(&before).zip(parse(&after)).map(|(b, a)| a.since(&b));
    let stats_after = after.and_then(|s| serde_json::from_str(&s).ok());
    Ok(HedgeRun {
        run,
        counters,
        stats_after,
    })
}

/// Runs scenario 3.
pub(super) async fn run(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioReport> {
    let a = ctx.args;
    let account = ctx.account_service("hedge-account-service", &ctx.sqlite("hedge-accounts"))?;
    // The three order services share one store, so a hedge of a request
    // lands on the same order (request_id idempotency).
    let store = ctx.sqlite("hedge-orders");
    let latency = a.fault_latency_ms.to_string();
    let ratio = a.fault_latency_ratio.to_string();
    let slow = ctx.order_service(
        "hedge-order-service-slow",
        &store,
        &account,
        &[
            "--fault-latency-ms",
            &latency,
            "--fault-latency-ratio",
            &ratio,
        ],
    )?;
    let fast1 = ctx.order_service("hedge-order-service-1", &store, &account, &[])?;
    let fast2 = ctx.order_service("hedge-order-service-2", &store, &account, &[])?;
    let backends = [&slow, &fast1, &fast2];
    let with = |v: &'static str| {
        let mut f = vec!["--hedging", v];
        f.extend(a.hedging_gateway_arg.iter().map(String::as_str));
        f
    };
    let on = ctx.gateway_over("gateway-hedging-on", &backends, &with("true"))?;
    let off = ctx.gateway_over("gateway-hedging-off", &backends, &with("false"))?;
    let mut rows = Vec::new();
    for &rate in &a.hedging_rates {
        let pids = |g: &Service| vec![g.pid(), slow.pid(), fast1.pid(), fast2.pid()];
        let run_on = measured(ctx, format!("hedging-on@{rate}"), &on, rate, pids(&on)).await?;
        let run_off = measured(ctx, format!("hedging-off@{rate}"), &off, rate, pids(&off)).await?;
        rows.push(HedgeRow {
            rate,
            on: run_on,
            off: run_off,
        });
    }
    let mut markdown = table(&rows, a.fault_latency_ms, a.fault_latency_ratio);
    if !a.hedging_gateway_arg.is_empty() {
        markdown.push_str(&format!(
            "\nBoth gateways also ran with `{}`.\n",
            a.hedging_gateway_arg.join(" ")
        ));
    }
    Ok(ScenarioReport {
        scenario: Scenario::Hedging,
        markdown,
        runs: rows
            .iter()
            .flat_map(|r| [r.on.run.clone(), r.off.run.clone()])
            .collect(),
        extra: serde_json::to_value(&rows).ok(),
    })
}

/// Count of gateway TIMEOUT answers in a run.
pub fn gateway_timeouts(r: &RunReport) -> u64 {
    r.codes.get("TIMEOUT").copied().unwrap_or(0)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".to_owned(), |v| format!("{v:.digits$}"))
}

/// Scenario 3's table.
pub fn table(rows: &[HedgeRow], latency_ms: u64, ratio: f64) -> String {
    let mut out = format!(
        "### Hedging on vs off (3 real order services on one SQLite store, one slowed {latency_ms} ms for {:.0} % of its calls)\n\n",
        ratio * 100.0
    );
    out.push_str("| rate/s | hedging | achieved/s | p50 | p99 | p99.9 | TIMEOUT | not OK | refused without a backend call | extra backend calls % of requests | hedges | hedge wins | p99 on ÷ off | p99.9 on ÷ off |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let p999 = {
            let off = r.off.run.latency_from_due_us.p999;
            (off > 0).then(|| r.on.run.latency_from_due_us.p999 as f64 / off as f64)
        };
        for (name, h, r99, r999) in [
            ("on", &r.on, opt(r.p99_ratio(), 2), opt(p999, 2)),
            ("off", &r.off, String::new(), String::new()),
        ] {
            let c = h.counters;
            let _ = writeln!(
                out,
                "| {:.0} | {name} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {r99} | {r999} |",
                r.rate,
                h.run.achieved_rate,
                ms(h.run.latency_from_due_us.p50),
                ms(h.run.latency_from_due_us.p99),
                ms(h.run.latency_from_due_us.p999),
                gateway_timeouts(&h.run),
                h.run.errors,
                c.map_or("n/a".into(), |c| (c.no_backend + c.rejected_global + c.rate_limited).to_string()),
                opt(c.and_then(|c| c.extra_calls_pct()), 2),
                c.map_or("n/a".into(), |c| c.hedges.to_string()),
                c.map_or("n/a".into(), |c| c.hedge_wins.to_string()),
            );
        }
    }
    out.push_str("\nLatencies in ms from due time. TIMEOUT = answered TIMEOUT by the gateway at its deadline; not OK = every answer that was not OK (TIMEOUT included). Gateway counters (SIGUSR1 stats before and after the run, warm-up included): refused = no_backend + rejected_global + rate_limited; extra backend calls = (hedges + retries) ÷ requests.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::RouterCounters;

    #[test]
    fn parses_the_router_object_and_subtracts() {
        let before = RouterCounters::parse(
            r#"{"router":{"requests":10,"backend_calls":10,"hedges":0,"hedge_wins":0,"retries":0,"timeouts":0,"backends":[]},"responses":{}}"#,
        )
        .expect("parses");
        let after = RouterCounters::parse(
            r#"{"router":{"requests":110,"backend_calls":115,"hedges":4,"hedge_wins":3,"retries":1,"timeouts":2}}"#,
        )
        .expect("parses");
        let d = after.since(&before);
        assert_eq!(d.requests, 100);
        assert_eq!(d.hedges, 4);
        assert_eq!(d.extra_calls_pct(), Some(5.0));
        assert_eq!(d.no_backend, 0);
        assert_eq!(RouterCounters::default().extra_calls_pct(), None);
        assert_eq!(RouterCounters::parse("not json"), None);
    }
}
