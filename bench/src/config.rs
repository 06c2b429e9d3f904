//! Flags shared by every load-generating subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::mix::Mix;

/// Where the load goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Frames over TCP to a gateway (or anything speaking the frame protocol).
    Gateway,
    /// The same orders as gRPC straight to one order service: the no-gateway floor.
    Direct,
}

/// Parses `10`, `10s`, `250ms` or `2m` into a duration (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s, 250ms or 2m"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{s:?} is not a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// One load run: target, offered load and measurement.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Gateway address (`HOST:PORT`) in gateway mode, order-service URL (`http://HOST:PORT`) in direct mode.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub addr: String,
    /// Where the load goes.
    #[arg(long, value_enum, default_value_t = Mode::Gateway)]
    pub mode: Mode,
    /// Offered load, requests per second (open loop: never slowed by slow answers).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Measured time (after warm-up), e.g. `10s`.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Warm-up time at the same rate, excluded from every number.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// TCP connections (gateway mode) or gRPC channels (direct mode); requests go round robin.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Demo accounts used (ACC-0001 ...); connection `c` is account `c % accounts`.
    #[arg(long, default_value_t = 100)]
    pub accounts: usize,
    /// Weights of place:cancel:query; cancels and queries target orders placed earlier in the run.
    #[arg(long, default_value = "8:1:1")]
    pub mix: Mix,
    /// A request unanswered this long after it was sent counts as a timeout.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// HS256 secret for minting login tokens (gateway mode).
    #[arg(
        long,
        env = "HTS_JWT_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub jwt_secret: String,
    /// Process to report CPU per 1,000 requests and peak RSS of (repeatable: gateway, backends, ...).
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Name of this run in reports and plots (default: MODE@RATE).
    #[arg(long)]
    pub label: Option<String>,
    /// Do not draw the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl LoadArgs {
    /// The run's label: `--label`, else `MODE@RATE/s`.
    pub fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| {
            let mode = match self.mode {
                Mode::Gateway => "gateway",
                Mode::Direct => "direct",
            };
            format!("{mode}@{}/s", self.rate)
        })
    }
}

/// Where reports go.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a PNG latency plot (percentile distribution, one line per run) to this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
