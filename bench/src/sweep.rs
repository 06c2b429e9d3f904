//! `hts-bench sweep`: steps the rate up to find the highest rate whose p99 stays under a target.

use clap::Args;
use serde::Serialize;

use crate::config::LoadArgs;
use crate::driver;
use crate::report::RunReport;

/// Flags of `hts-bench sweep` (plus every flag of a single run; `--rate` is ignored).
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// The load of each step.
    #[command(flatten)]
    pub load: LoadArgs,
    /// First rate tried, requests per second.
    #[arg(long, default_value_t = 1000.0)]
    pub start: f64,
    /// Increment between steps, requests per second.
    #[arg(long, default_value_t = 1000.0)]
    pub step: f64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 20000.0)]
    pub max: f64,
    /// p99 latency (from due time) a step must stay under, milliseconds.
    #[arg(long, default_value_t = 1.0)]
    pub p99_ms: f64,
    /// Smallest achieved/target ratio a step must reach to pass.
    #[arg(long, default_value_t = 0.95)]
    pub min_achieved: f64,
}

/// Whether one step passed, and why not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The step passed.
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub reasons: Vec<String>,
}

/// Judges `r` against the sweep's targets.
pub fn judge(r: &RunReport, p99_ms: f64, min_achieved: f64) -> Verdict {
    let mut reasons = Vec::new();
    let p99 = r.latency_from_due_us.p99 as f64 / 1000.0;
    if p99 > p99_ms {
        reasons.push(format!("p99 {p99:.3} ms > {p99_ms} ms"));
    }
    if r.errors > 0 {
        reasons.push(format!("{} requests not OK", r.errors));
    }
    if r.achieved_rate < min_achieved * r.target_rate {
        reasons.push(format!(
            "achieved {:.0}/s < {:.0}% of {:.0}/s",
            r.achieved_rate,
            min_achieved * 100.0,
            r.target_rate
        ));
    }
    Verdict {
        passed: reasons.is_empty(),
        reasons,
    }
}

/// The result of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    /// The highest passing rate (None if even the first step failed).
    pub best_rate: Option<f64>,
    /// p99 target, ms.
    pub p99_target_ms: f64,
    /// Every step, in order.
    pub steps: Vec<(RunReport, Verdict)>,
}

/// The rates a sweep tries.
pub fn rates(start: f64, step: f64, max: f64) -> Vec<f64> {
    if !(start > 0.0 && step > 0.0 && max >= start) {
        return vec![start];
    }
    let n = ((max - start) / step).floor() as usize;
    (0..=n).map(|i| start + step * i as f64).collect()
}

/// Runs steps until one fails (or `max` is reached).
pub async fn run(args: &SweepArgs) -> anyhow::Result<SweepReport> {
    let mut steps = Vec::new();
    let mut best_rate = None;
    for rate in rates(args.start, args.step, args.max) {
        let mut load = args.load.clone();
        load.rate = rate;
        load.label = Some(format!(
            "{}@{rate}/s",
            args.load.label.as_deref().unwrap_or("sweep")
        ));
        let report = driver::run(&load).await?;
        let verdict = judge(&report, args.p99_ms, args.min_achieved);
        let passed = verdict.passed;
        eprintln!(
            "sweep {rate}/s: p99 {:.3} ms, achieved {:.0}/s, {} not OK: {}",
            report.latency_from_due_us.p99 as f64 / 1000.0,
            report.achieved_rate,
            report.errors,
            if passed { "pass" } else { "FAIL" }
        );
        steps.push((report, verdict));
        if !passed {
            break;
        }
        best_rate = Some(rate);
    }
    Ok(SweepReport {
        best_rate,
        p99_target_ms: args.p99_ms,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_steps() {
        assert_eq!(rates(1000.0, 1000.0, 3000.0), vec![1000.0, 2000.0, 3000.0]);
        assert_eq!(rates(1000.0, 0.0, 3000.0), vec![1000.0]);
        assert_eq!(rates(500.0, 1000.0, 2000.0), vec![500.0, 1500.0]);
    }
}
