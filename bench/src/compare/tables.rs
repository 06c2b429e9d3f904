//! Markdown tables, ratios and goal verdicts of the comparison.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Scenario, ScenarioReport};
use crate::report::{ms, RunReport};

/// A run without a hop (the floor) and the same load through the hop.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Offered rate.
    pub rate: f64,
    /// The run without the hop.
    pub floor: RunReport,
    /// The run through the hop.
    pub hop: RunReport,
    /// The hop's process id.
    pub hop_pid: u32,
}

impl Pair {
    /// p50 through the hop minus p50 without it, µs.
    pub fn added_p50_us(&self) -> i64 {
        self.hop.latency_from_due_us.p50 as i64 - self.floor.latency_from_due_us.p50 as i64
    }

    /// p99 through the hop minus p99 without it, µs.
    pub fn added_p99_us(&self) -> i64 {
        self.hop.latency_from_due_us.p99 as i64 - self.floor.latency_from_due_us.p99 as i64
    }

    /// The hop's CPU ms per 1,000 requests.
    pub fn hop_cpu(&self) -> Option<f64> {
        self.hop.cpu_per_1000(self.hop_pid)
    }
}

/// One rate of the proxy comparison.
#[derive(Debug, Clone)]
pub struct ProxyRow {
    /// Offered rate.
    pub rate: f64,
    /// gRPC floor vs nginx grpc_pass.
    pub nginx: Pair,
    /// gRPC floor vs the gateway (frames in, gRPC out).
    pub gateway: Pair,
    /// Frame floor vs HAProxy TCP.
    pub haproxy: Pair,
}

fn signed_ms(us: i64) -> String {
    format!("{:+.3}", us as f64 / 1000.0)
}

fn cpu(v: Option<f64>) -> String {
    v.map_or("n/a".to_owned(), |v| format!("{v:.1}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Scenario 1's table.
pub fn direct_vs_gateway(pairs: &[Pair], order_service_pid: u32) -> String {
    let mut out =
        String::from("### Direct gRPC vs through the gateway (real order service, SQLite)\n\n");
    out.push_str("| rate/s | achieved direct / gateway | p50 direct | p50 gateway | added p50 | p99 direct | p99 gateway | added p99 | gateway CPU ms / 1k orders | order-service CPU ms / 1k (direct / via gateway) | not OK direct / gateway |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in pairs {
        let _ = writeln!(
            out,
            "| {:.0} | {:.0} / {:.0} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} |",
            p.rate,
            p.floor.achieved_rate,
            p.hop.achieved_rate,
            ms(p.floor.latency_from_due_us.p50),
            ms(p.hop.latency_from_due_us.p50),
            signed_ms(p.added_p50_us()),
            ms(p.floor.latency_from_due_us.p99),
            ms(p.hop.latency_from_due_us.p99),
            signed_ms(p.added_p99_us()),
            cpu(p.hop_cpu()),
            cpu(p.floor.cpu_per_1000(order_service_pid)),
            cpu(p.hop.cpu_per_1000(order_service_pid)),
            p.floor.errors,
            p.hop.errors,
        );
    }
    out.push_str("\nLatencies in ms from each request's due time. \"added\" = through the gateway minus direct.\n");
    out
}

/// Scenario 2's table.
pub fn proxies(rows: &[ProxyRow]) -> String {
    let mut out = String::from("### Hop cost: nginx (L7 gRPC), HAProxy (L4 TCP) and the gateway, in front of no-work backends\n\n");
    out.push_str("| rate/s | path | achieved/s | p50 | p99 | added p50 | added p99 | hop CPU ms / 1k requests | gateway CPU ÷ this hop's CPU | not OK |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let gw = r.gateway.hop_cpu();
        let line = |out: &mut String,
                    path: &str,
                    run: &RunReport,
                    added: Option<(i64, i64)>,
                    hop_cpu: Option<f64>,
                    vs: Option<f64>| {
            let (a50, a99) = added.map_or(("".to_owned(), "".to_owned()), |(a, b)| {
                (signed_ms(a), signed_ms(b))
            });
            let _ = writeln!(
                out,
                "| {:.0} | {path} | {:.0} | {} | {} | {a50} | {a99} | {} | {} | {} |",
                r.rate,
                run.achieved_rate,
                ms(run.latency_from_due_us.p50),
                ms(run.latency_from_due_us.p99),
                hop_cpu.map_or(String::new(), |v| format!("{v:.1}")),
                vs.map_or(String::new(), |v| format!("{v:.2}")),
                run.errors
            );
        };
        line(
            &mut out,
            "bench → echo order service (gRPC floor)",
            &r.nginx.floor,
            None,
            None,
            None,
        );
        line(
            &mut out,
            "bench → nginx grpc_pass → echo order service",
            &r.nginx.hop,
            Some((r.nginx.added_p50_us(), r.nginx.added_p99_us())),
            r.nginx.hop_cpu(),
            ratio(gw, r.nginx.hop_cpu()),
        );
        line(
            &mut out,
            "bench → hts gateway → echo order service",
            &r.gateway.hop,
            Some((r.gateway.added_p50_us(), r.gateway.added_p99_us())),
            gw,
            None,
        );
        line(
            &mut out,
            "bench → frame echo server (frame floor)",
            &r.haproxy.floor,
            None,
            None,
            None,
        );
        line(
            &mut out,
            "bench → HAProxy TCP → frame echo server",
            &r.haproxy.hop,
            Some((r.haproxy.added_p50_us(), r.haproxy.added_p99_us())),
            r.haproxy.hop_cpu(),
            ratio(gw, r.haproxy.hop_cpu()),
        );
    }
    out.push_str("\nLatencies in ms from due time. nginx and the gateway are compared with the gRPC floor, HAProxy with the frame floor. The gateway does more than either proxy: it terminates frames, checks the session and translates to gRPC.\n");
    out
}

/// One of the goals and what was measured against it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    /// The goal as stated.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Met, not met, or not measured by this comparison.
    pub met: Option<bool>,
}

/// Rate, then CPU ms per 1k requests of the gateway, nginx and HAProxy.
type CpuRow = (f64, Option<f64>, Option<f64>, Option<f64>);

fn proxy_rows(scenarios: &[ScenarioReport]) -> Vec<CpuRow> {
    let Some(s) = scenarios.iter().find(|s| s.scenario == Scenario::Proxies) else {
        return Vec::new();
    };
    // Runs come in groups of five per rate: grpc floor, nginx, gateway, frame floor, haproxy.
    s.runs
        .chunks(5)
        .filter_map(|c| {
            let [_, nginx, gateway, _, haproxy] = c else {
                return None;
            };
            let hop = |r: &RunReport| r.processes.first().map(|p| p.cpu_ms_per_1000_requests);
            Some((gateway.target_rate, hop(gateway), hop(nginx), hop(haproxy)))
        })
        .collect()
}

/// Verdicts for the goals this comparison measures.
/// `p99_ms` is the p99 target of the durable-orders goal.
pub fn goals(scenarios: &[ScenarioReport], p99_ms: f64) -> Vec<Goal> {
    let mut goals = Vec::new();
    let rows = proxy_rows(scenarios);
    if !rows.is_empty() {
        let mut nginx = Vec::new();
        let mut haproxy = Vec::new();
        let mut met_n = true;
        let mut met_h = true;
        for (rate, gw, n, h) in &rows {
            let rn = ratio(*gw, *n);
            let rh = ratio(*gw, *h);
            met_n &= rn.is_some_and(|r| r <= 1.0);
            met_h &= rh.is_some_and(|r| r <= 3.0);
            nginx.push(format!(
                "{rate:.0}/s: {}",
                rn.map_or("n/a".into(), |r| format!("{r:.2}×"))
            ));
            haproxy.push(format!(
                "{rate:.0}/s: {}",
                rh.map_or("n/a".into(), |r| format!("{r:.2}×"))
            ));
        }
        goals.push(Goal {
            goal: "gateway CPU per order ≤ nginx CPU per proxied gRPC call".into(),
            measured: format!("gateway ÷ nginx CPU: {}", nginx.join(", ")),
            met: Some(met_n),
        });
        goals.push(Goal {
            goal: "gateway CPU per order ≤ 3× HAProxy CPU per forwarded frame".into(),
            measured: format!("gateway ÷ HAProxy CPU: {}", haproxy.join(", ")),
            met: Some(met_h),
        });
    }
    if let Some(s) = scenarios
        .iter()
        .find(|s| s.scenario == Scenario::DirectVsGateway)
    {
        let at_10k: Vec<&[RunReport]> = s
            .runs
            .chunks(2)
            .filter(|c| c.len() == 2 && c[0].target_rate >= 10_000.0)
            .collect();
        if let Some([direct, gateway]) = at_10k.first().copied() {
            let added =
                gateway.latency_from_due_us.p99 as i64 - direct.latency_from_due_us.p99 as i64;
            goals.push(Goal {
                goal: "added p99 ≤ 1 ms at 10k orders/s".into(),
                measured: format!(
                    "added p99 {} ms at {:.0}/s (direct p99 {} ms, gateway p99 {} ms; achieved {:.0} / {:.0}/s)",
                    signed_ms(added),
                    gateway.target_rate,
                    ms(direct.latency_from_due_us.p99),
                    ms(gateway.latency_from_due_us.p99),
                    direct.achieved_rate,
                    gateway.achieved_rate
                ),
                met: Some(added <= 1000 && gateway.errors == 0),
            });
        }
    }
    if let Some(g) = hedging_goal(scenarios) {
        goals.push(g);
    }
    goals.push(durable_goal(scenarios, p99_ms));
    goals.push(Goal {
        goal: "10k idle connections ≤ 100 MiB RSS".into(),
        measured: "measured separately by `hts-bench connections 10000 --pid <gateway>`".into(),
        met: None,
    });
    goals
}

/// Hedging: p99 on ÷ off per rate (runs come in pairs: on, off). Met when
/// every rate's ratio is ≤ 0.9 and hedging did not fail more requests.
fn hedging_goal(scenarios: &[ScenarioReport]) -> Option<Goal> {
    let s = scenarios.iter().find(|s| s.scenario == Scenario::Hedging)?;
    let mut parts = Vec::new();
    let mut met = true;
    for pair in s.runs.chunks(2) {
        let [on, off] = pair else { continue };
        let (p_on, p_off) = (on.latency_from_due_us.p99, off.latency_from_due_us.p99);
        let r = (p_off > 0).then(|| p_on as f64 / p_off as f64);
        met &= r.is_some_and(|r| r <= 0.9) && on.errors <= off.errors;
        parts.push(format!(
            "{:.0}/s: p99 {} ms on vs {} ms off = {}, TIMEOUT {} vs {}",
            on.target_rate,
            ms(p_on),
            ms(p_off),
            r.map_or("n/a".into(), |r| format!("{r:.2}×")),
            super::hedging::gateway_timeouts(on),
            super::hedging::gateway_timeouts(off),
        ));
    }
    Some(Goal {
        goal:
            "hedging lowers p99 with one slowed backend (extra calls within the 10 % retry budget)"
                .into(),
        measured: format!(
            "{} (extra backend calls: see the hedging table)",
            parts.join("; ")
        ),
        met: Some(met && !parts.is_empty()),
    })
}

/// Durable orders: the highest PostgreSQL rate meeting p99 ≤ `p99_ms` without errors.
fn durable_goal(scenarios: &[ScenarioReport], p99_ms: f64) -> Goal {
    let goal = format!("≥ 10k durable orders/s on PostgreSQL with p99 ≤ {p99_ms} ms");
    let Some(s) = scenarios.iter().find(|s| s.scenario == Scenario::Durable) else {
        return Goal {
            goal,
            measured: "not measured: run the `durable` scenario".into(),
            met: None,
        };
    };
    let pg: Vec<&RunReport> = s
        .runs
        .iter()
        .filter(|r| r.label.starts_with("postgres@"))
        .collect();
    let ok = |r: &RunReport| {
        r.latency_from_due_us.p99 as f64 <= p99_ms * 1000.0
            && r.errors == 0
            && r.timeouts == 0
            && r.achieved_rate >= 0.99 * r.target_rate
    };
    let best = pg
        .iter()
        .filter(|r| ok(r))
        .map(|r| r.target_rate)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    let tried: Vec<String> = pg
        .iter()
        .map(|r| {
            format!(
                "{:.0}/s → p99 {} ms, {} not OK",
                r.target_rate,
                ms(r.latency_from_due_us.p99),
                r.errors + r.timeouts
            )
        })
        .collect();
    Goal {
        goal,
        measured: format!(
            "highest rate meeting it: {} ({})",
            best.map_or("none of the rates tried".into(), |b| format!("{b:.0}/s")),
            tried.join("; ")
        ),
        met: Some(best.is_some_and(|b| b >= 10_000.0)),
    }
}

/// The goals as a markdown table.
pub fn goals_markdown(goals: &[Goal]) -> String {
    let mut out = String::from("### Goals\n\n| goal | measured | met |\n|---|---|---|\n");
    for g in goals {
        let met = match g.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured here",
        };
        let _ = writeln!(out, "| {} | {} | {met} |", g.goal, g.measured);
    }
    out
}
