//! `hts-bench connections N`: N idle, logged-in connections and the gateway's memory.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use serde::Serialize;

use crate::driver::{frames, mint_tokens};
use crate::procstat;
use crate::workload::account_id;

/// Flags of `hts-bench connections`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// How many connections to open and log in.
    pub count: usize,
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub addr: String,
    /// Demo accounts to log in as (round robin).
    #[arg(long, default_value_t = 100)]
    pub accounts: usize,
    /// HS256 secret for minting login tokens.
    #[arg(
        long,
        env = "HTS_JWT_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub jwt_secret: String,
    /// The gateway's process id, whose RSS is reported.
    #[arg(long)]
    pub pid: Option<u32>,
    /// How long to hold the connections open before measuring.
    #[arg(long, value_parser = crate::config::parse_duration, default_value = "3s")]
    pub hold: Duration,
    /// Connections opened at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
}

/// What `hts-bench connections` measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleReport {
    /// Connections asked for.
    pub requested: usize,
    /// Connections opened and logged in.
    pub opened: usize,
    /// Connections that failed (first error kept in `first_error`).
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Seconds it took to open and log in all of them.
    pub open_secs: f64,
    /// Gateway RSS before opening, MiB.
    pub rss_before_mib: Option<f64>,
    /// Gateway RSS with all connections open, MiB.
    pub rss_after_mib: Option<f64>,
    /// Gateway peak RSS (VmHWM), MiB.
    pub peak_rss_mib: Option<f64>,
    /// (after − before) / opened, KiB per connection.
    pub kib_per_connection: Option<f64>,
}

/// Raises this process's open-file limit to its hard limit (N connections need N descriptors).
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Opens and logs in `args.count` connections, holds them, and measures the gateway.
pub async fn run(args: &IdleArgs) -> anyhow::Result<IdleReport> {
    raise_fd_limit();
    let tokens = mint_tokens(&args.jwt_secret, args.accounts.clamp(1, args.count.max(1)))?;
    let before = args
        .pid
        .map(procstat::sample)
        .transpose()
        .context("sampling the gateway")?;
    let started = std::time::Instant::now();
    let results: Vec<anyhow::Result<frames::FrameConn>> =
        futures::stream::iter(0..args.count)
            .map(|c| {
                let token = &tokens[c % tokens.len()];
                let account = account_id(c % tokens.len());
                async move {
                    frames::connect(&args.addr, &account, token, Duration::from_secs(10)).await
                }
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
    let open_secs = started.elapsed().as_secs_f64();
    let mut conns = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(c) => conns.push(c.into_parts()),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    tokio::time::sleep(args.hold).await;
    let after = args
        .pid
        .map(procstat::sample)
        .transpose()
        .context("sampling the gateway")?;
    let opened = conns.len();
    drop(conns);
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok(IdleReport {
        requested: args.count,
        opened,
        failed,
        first_error,
        open_secs,
        rss_before_mib: before.map(|s| mib(s.rss_kib)),
        rss_after_mib: after.map(|s| mib(s.rss_kib)),
        peak_rss_mib: after.map(|s| mib(s.peak_rss_kib)),
        kib_per_connection: match (before, after) {
            (Some(b), Some(a)) if opened > 0 => {
                Some((a.rss_kib as f64 - b.rss_kib as f64) / opened as f64)
            }
            _ => None,
        },
    })
}

/// The report as a markdown table.
pub fn markdown(r: &IdleReport) -> String {
    let f = |v: Option<f64>| v.map_or("n/a (no --pid)".to_owned(), |v| format!("{v:.1}"));
    let mut out = String::new();
    out.push_str("| connections asked | opened | failed | open time s | RSS before MiB | RSS with all open MiB | peak RSS MiB | KiB per connection |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {:.1} | {} | {} | {} | {} |",
        r.requested,
        r.opened,
        r.failed,
        r.open_secs,
        f(r.rss_before_mib),
        f(r.rss_after_mib),
        f(r.peak_rss_mib),
        f(r.kib_per_connection)
    );
    if let Some(e) = &r.first_error {
        let _ = writeln!(out, "\nFirst failure: {e}");
    }
    out
}
