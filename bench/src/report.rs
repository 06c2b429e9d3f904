//! The report of a run: JSON for machines, markdown for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::{LoadArgs, Mode};
use crate::procstat::ProcSample;
use crate::recorder::Recorder;
use crate::schedule::Schedule;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles {
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
                mean: 0.0,
            };
        }
        Percentiles {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// A process's CPU and memory before and after the measured window.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcDelta {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub name: String,
    /// Sample at the start of the measured window.
    pub before: ProcSample,
    /// Sample after the last answer.
    pub after: ProcSample,
}

/// CPU and memory of one watched process during the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcReport {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub name: String,
    /// CPU seconds (user + system, all threads) spent in the measured window.
    pub cpu_seconds: f64,
    /// CPU milliseconds per 1,000 answered requests (= CPU seconds per 1,000,000).
    pub cpu_ms_per_1000_requests: f64,
    /// Peak resident set size since the process started (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Resident set size after the run, MiB.
    pub rss_mib: f64,
    /// Bytes written to storage during the window (`/proc/<pid>/io`).
    pub write_bytes: u64,
}

/// One point of the latency percentile distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DistPoint {
    /// Percentile, e.g. 99.9.
    pub percentile: f64,
    /// Latency from due time at that percentile, µs.
    pub from_due_us: u64,
    /// Latency from send time at that percentile, µs.
    pub from_send_us: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// Name of the run.
    pub label: String,
    /// Gateway frames or direct gRPC.
    pub mode: Mode,
    /// Target address.
    pub addr: String,
    /// Prefix of every request_id of the run.
    pub run_id: String,
    /// Offered rate, requests per second.
    pub target_rate: f64,
    /// Measured requests sent per second of the measured window.
    pub achieved_rate: f64,
    /// Measured answers per second of the measured window.
    pub completion_rate: f64,
    /// Measured window, seconds.
    pub duration_secs: f64,
    /// Warm-up, seconds.
    pub warmup_secs: f64,
    /// Connections (or gRPC channels).
    pub connections: usize,
    /// Accounts used.
    pub accounts: usize,
    /// place:cancel:query weights.
    pub mix: String,
    /// Measured requests scheduled.
    pub scheduled: u64,
    /// Measured requests sent.
    pub sent: u64,
    /// Measured requests answered (any code).
    pub responses: u64,
    /// Measured requests without an answer within the bench's timeout.
    pub timeouts: u64,
    /// Measured requests that did not end OK (timeouts included).
    pub errors: u64,
    /// Outcomes by label (OK, TIMEOUT, CLIENT_TIMEOUT, ...).
    pub codes: BTreeMap<String, u64>,
    /// Measured requests by kind, as sent.
    pub kinds: BTreeMap<String, u64>,
    /// Latency from the due time (coordinated-omission correct), µs.
    pub latency_from_due_us: Percentiles,
    /// Latency from the send time, µs.
    pub latency_from_send_us: Percentiles,
    /// The harness's own lag, send time − due time, µs.
    pub send_lag_us: Percentiles,
    /// Latency from the due time of OK answers alone, µs.
    pub ok_latency_from_due_us: Percentiles,
    /// Latency from the send time of refusals (SERVICE_UNAVAILABLE,
    /// RATE_LIMITED: nothing done), µs.
    pub refusal_latency_from_send_us: Percentiles,
    /// Latency from the due time per request kind, µs.
    pub latency_by_kind_from_due_us: BTreeMap<String, Percentiles>,
    /// Answers and OK answers per 100 ms of due time in the measured window.
    pub timeline: Vec<TimelinePoint>,
    /// Watched processes (`--pid`).
    pub processes: Vec<ProcReport>,
    /// Percentile distribution for plots.
    pub distribution: Vec<DistPoint>,
}

/// One bucket of a run's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimelinePoint {
    /// Start of the bucket, ms of due time since the measured window began.
    pub t_ms: u64,
    /// Requests due in it that were answered (any code).
    pub answered: u64,
    /// Of those, OK.
    pub ok: u64,
}

/// Percentiles at which the distribution is sampled: 0, 50, 75, 90, ... up to 99.999.
pub fn distribution_percentiles() -> Vec<f64> {
    (0..=50)
        .map(|k| 100.0 * (1.0 - 10f64.powf(-(k as f64) / 10.0)))
        .collect()
}

const MIB: f64 = 1024.0;

impl RunReport {
    /// Builds the report of a finished run.
    pub fn new(
        args: &LoadArgs,
        schedule: &Schedule,
        run_id: &str,
        rec: &Recorder,
        window_start: Instant,
        procs: Vec<ProcDelta>,
    ) -> RunReport {
        let scheduled = schedule.total() - schedule.warmup_requests();
        let nominal = scheduled as f64 / schedule.rate();
        let span = |t: Option<Instant>| {
            t.map_or(nominal, |t| {
                t.saturating_duration_since(window_start)
                    .as_secs_f64()
                    .max(nominal)
            })
        };
        let per_sec = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let processes = procs
            .into_iter()
            .map(|p| {
                let cpu = (p.after.cpu_seconds - p.before.cpu_seconds).max(0.0);
                ProcReport {
                    pid: p.pid,
                    name: p.name,
                    cpu_seconds: cpu,
                    cpu_ms_per_1000_requests: if rec.responses > 0 {
                        cpu * 1000.0 * 1000.0 / rec.responses as f64
                    } else {
                        0.0
                    },
                    peak_rss_mib: p.after.peak_rss_kib as f64 / MIB,
                    rss_mib: p.after.rss_kib as f64 / MIB,
                    write_bytes: p.after.write_bytes.saturating_sub(p.before.write_bytes),
                }
            })
            .collect();
        let distribution = if rec.from_due.is_empty() {
            Vec::new()
        } else {
            distribution_percentiles()
                .into_iter()
                .map(|p| DistPoint {
                    percentile: p,
                    from_due_us: rec.from_due.value_at_quantile(p / 100.0),
                    from_send_us: rec.from_send.value_at_quantile(p / 100.0),
                })
                .collect()
        };
        RunReport {
            label: args.label(),
            mode: args.mode,
            addr: args.addr.clone(),
            run_id: run_id.to_owned(),
            target_rate: args.rate,
            achieved_rate: per_sec(rec.sent, span(rec.last_send)),
            completion_rate: per_sec(rec.responses, span(rec.last_response)),
            duration_secs: args.duration.as_secs_f64(),
            warmup_secs: args.warmup.as_secs_f64(),
            connections: args.connections,
            accounts: args.accounts.min(args.connections),
            mix: args.mix.to_string(),
            scheduled,
            sent: rec.sent,
            responses: rec.responses,
            timeouts: rec.timeouts,
            errors: rec.errors,
            codes: rec.codes.clone(),
            kinds: rec
                .kinds
                .iter()
                .map(|(k, v)| (k.name().to_owned(), *v))
                .collect(),
            latency_from_due_us: Percentiles::of(&rec.from_due),
            latency_from_send_us: Percentiles::of(&rec.from_send),
            send_lag_us: Percentiles::of(&rec.send_lag),
            ok_latency_from_due_us: Percentiles::of(&rec.ok_from_due),
            refusal_latency_from_send_us: Percentiles::of(&rec.refused_from_send),
            latency_by_kind_from_due_us: rec
                .by_kind_from_due
                .iter()
                .map(|(k, h)| (k.name().to_owned(), Percentiles::of(h)))
                .collect(),
            timeline: rec
                .timeline
                .iter()
                .enumerate()
                .map(|(i, (answered, ok))| TimelinePoint {
                    t_ms: i as u64 * crate::recorder::TIMELINE_BUCKET.as_millis() as u64,
                    answered: *answered,
                    ok: *ok,
                })
                .collect(),
            processes,
            distribution,
        }
    }

    /// CPU ms per 1,000 requests of the watched process `pid`, if it was watched.
    pub fn cpu_per_1000(&self, pid: u32) -> Option<f64> {
        self.processes
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| p.cpu_ms_per_1000_requests)
    }
}

/// Formats microseconds as milliseconds with three decimals.
pub fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// A markdown summary of `runs`: rates, latency, outcomes and watched processes.
pub fn markdown(runs: &[RunReport]) -> String {
    let mut out = String::new();
    out.push_str("| run | target/s | achieved/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p99 from send ms | max send lag ms | errors | timeouts |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in runs {
        let l = &r.latency_from_due_us;
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.target_rate,
            r.achieved_rate,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            ms(r.latency_from_send_us.p99),
            ms(r.send_lag_us.max),
            r.errors,
            r.timeouts
        );
    }
    out.push_str("\nLatency is measured from each request's due time (coordinated-omission correct) unless marked \"from send\".\n");
    out.push_str("\n| run | outcomes |\n|---|---|\n");
    for r in runs {
        let codes: Vec<String> = r.codes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "| {} | {} |", r.label, codes.join(", "));
    }
    if runs.iter().any(|r| !r.processes.is_empty()) {
        out.push_str("\n| run | pid | process | CPU s | CPU ms / 1,000 requests | peak RSS MiB |\n|---|---:|---|---:|---:|---:|\n");
        for r in runs {
            for p in &r.processes {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.2} | {:.1} | {:.1} |",
                    r.label,
                    p.pid,
                    p.name,
                    p.cpu_seconds,
                    p.cpu_ms_per_1000_requests,
                    p.peak_rss_mib
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_points_climb_to_five_nines() {
        let p = distribution_percentiles();
        assert_eq!(p[0], 0.0);
        assert!((p[10] - 90.0).abs() < 1e-9);
        assert!((p[50] - 99.999).abs() < 1e-9);
        assert!(p.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn empty_histogram_gives_zeros() {
        let h = Histogram::<u64>::new_with_bounds(1, 1000, 3).unwrap();
        assert_eq!(Percentiles::of(&h).p99, 0);
    }

    #[test]
    fn formats_milliseconds() {
        assert_eq!(ms(1234), "1.234");
    }
}
