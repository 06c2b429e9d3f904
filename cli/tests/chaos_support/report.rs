//! The per-scenario report and docs/chaos.md.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use super::load::{Attempt, LoadResult};
use super::reconcile::Reconciliation;

/// One assertion of a scenario and how it went.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is asserted.
    pub what: String,
    /// Whether it held.
    pub passed: bool,
    /// The measured value(s) behind it.
    pub detail: String,
}

/// Everything one scenario measured and asserted.
#[derive(Debug, Clone, Default)]
pub struct ScenarioReport {
    /// 1–6.
    pub number: u32,
    /// Title.
    pub title: String,
    /// What the run did, in one paragraph.
    pub procedure: String,
    /// Reconciliation of the clients' answers with the stores and topic.
    pub reconciliation: Option<Reconciliation>,
    /// p99 latency of every send made while the fault was on.
    pub p99_fault: Option<Duration>,
    /// Sends made while the fault was on.
    pub sends_during_fault: usize,
    /// p50 and p99 latency of the sends made before the fault (the
    /// machine's baseline during this scenario).
    pub baseline: Option<(Duration, Duration)>,
    /// What "recovery" means here and how long it took.
    pub recovery: Option<(String, Duration)>,
    /// Scenario-specific measurements (name, value).
    pub measurements: Vec<(String, String)>,
    /// Assertions.
    pub checks: Vec<Check>,
    /// Why the scenario did not run (loudly reported, counted as failure
    /// only when `HTS_CHAOS_REQUIRE_ALL` is set).
    pub skipped: Option<String>,
    /// A panic inside the scenario (setup failure, harness error).
    pub error: Option<String>,
    /// Wall time of the scenario, setup included.
    pub wall: Duration,
}

impl ScenarioReport {
    /// A report for scenario `number`.
    pub fn new(number: u32, title: &str) -> ScenarioReport {
        ScenarioReport {
            number,
            title: title.to_owned(),
            ..ScenarioReport::default()
        }
    }

    /// Records a check.
    pub fn check(&mut self, what: &str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            what: what.to_owned(),
            passed,
            detail: detail.into(),
        });
    }

    /// Records a measurement.
    pub fn measure(&mut self, name: &str, value: impl Into<String>) {
        self.measurements.push((name.to_owned(), value.into()));
    }

    /// Adds the reconciliation and its checks (no loss, consistency).
    pub fn reconciled(&mut self, r: Reconciliation) {
        self.check(
            "0 acknowledged orders lost (store and topic)",
            r.lost() == 0,
            format!(
                "{} acknowledged, {} missing from the store, {} without their event",
                r.acknowledged,
                r.lost_orders.len(),
                r.lost_acknowledged_events.len()
            ),
        );
        let violations = r.violations();
        self.check(
            "store, reservations, balances and topic consistent with the answers",
            violations.is_empty(),
            if violations.is_empty() {
                format!(
                    "{} stored orders checked, {} events read",
                    r.acknowledged + r.stored_unknown.len(),
                    r.events_read
                )
            } else {
                violations.join("; ")
            },
        );
        self.reconciliation = Some(r);
    }

    /// Sets the p99 of the sends made in `[from, to)`.
    pub fn fault_window(&mut self, load: &LoadResult, from: Instant, to: Instant) {
        let during: Vec<&Attempt> = load
            .attempts()
            .filter(|a| a.sent_at >= from && a.sent_at < to)
            .collect();
        self.sends_during_fault = during.len();
        self.p99_fault = quantile(during.iter().map(|a| a.latency), 0.99);
        let before: Vec<Duration> = load
            .attempts()
            .filter(|a| a.sent_at < from)
            .map(|a| a.latency)
            .collect();
        self.baseline =
            quantile(before.iter().copied(), 0.5).zip(quantile(before.iter().copied(), 0.99));
    }

    /// True when every check passed and nothing broke.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.passed)
    }

    /// Lost acknowledged orders (0 when not reconciled).
    pub fn lost(&self) -> usize {
        self.reconciliation.as_ref().map_or(0, Reconciliation::lost)
    }

    fn verdict(&self) -> &'static str {
        if self.skipped.is_some() {
            "SKIPPED"
        } else if self.passed() {
            "pass"
        } else {
            "FAIL"
        }
    }
}

/// The `q` quantile (nearest rank) of `values`; `None` when empty.
pub fn quantile(values: impl Iterator<Item = Duration>, q: f64) -> Option<Duration> {
    let mut v: Vec<Duration> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i])
}

/// `1.234 s` / `12.3 ms`.
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

fn opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".to_owned(), fmt_duration)
}

fn codes(r: &Reconciliation) -> String {
    let mut parts: Vec<String> = r
        .refused
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    if parts.is_empty() {
        parts.push("none".into());
    }
    parts.join(", ")
}

/// Facts about the run printed in the header.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// UTC date and time of the start.
    pub date: String,
    /// /proc/loadavg at the start.
    pub load_average: String,
    /// CPUs available.
    pub cpus: usize,
    /// Build profile of the `hts` binary.
    pub profile: &'static str,
    /// Wall time of the whole run.
    pub wall: Duration,
}

impl RunInfo {
    /// Reads the date, load average and CPU count now.
    pub fn now() -> RunInfo {
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown date".into());
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        RunInfo {
            date,
            load_average,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            wall: Duration::ZERO,
        }
    }
}

/// Renders docs/chaos.md.
pub fn render(info: &RunInfo, reports: &[ScenarioReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Chaos suite: measured results\n");
    let _ = writeln!(
        s,
        "Generated by `cargo test -p hts-cli --test chaos -- --nocapture` on {}; \
         every run overwrites this file. Do not edit by hand.\n",
        info.date
    );
    let _ = writeln!(
        s,
        "Machine: {} CPU(s) shared with other builds, load average at start {}, {} build of `hts`; \
         every process (PostgreSQL, tansu broker, account service, order services, gateways, \
         the load driver) runs on this one host, so latencies are those of a busy test machine, \
         not of production hardware. Whole run: {}.\n",
        info.cpus,
        info.load_average,
        info.profile,
        fmt_duration(info.wall)
    );
    let _ = writeln!(
        s,
        "Load in every scenario: 4 gateway connections (accounts ACC-0601…0604), {} orders/s \
         in total, sent open-loop, each order a unique request_id (BUY 1 × 100, reserving 100 \
         CASH). A send answered TIMEOUT, SERVICE_UNAVAILABLE, INTERNAL or RATE_LIMITED, or lost \
         to a broken connection, is re-sent with the same request_id after 250 ms × attempt, \
         at most 4 sends; a broken connection is replaced by a new login (to the next gateway \
         if its own is gone). Reconciliation then reads the order database (orders, \
         idempotency records, outbox), the account database (reservations, balances) and the \
         topic `hts.orders` with a real Kafka consumer.\n",
        super::load::rate()
    );
    let _ = writeln!(s, "Columns: *sent* = distinct request ids; *OK* = acknowledged; *refused* = final answer a definitive non-OK code; *unknown* = final answer TIMEOUT / no answer / broken connection (outcome unknown to the client); *lost* = acknowledged but missing from the database or the topic; *dup. events* = extra copies of an event id already on the topic (at-least-once delivery, same id); *p99 before* = p99 latency of the sends before the fault (this machine's baseline in that scenario); *p99 fault* = p99 latency of every send made while the fault was on.\n");
    let _ = writeln!(
        s,
        "| # | Scenario | sent | OK | refused | unknown | lost | dup. events | p99 before | p99 fault | recovery | result |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        match &r.reconciliation {
            Some(rec) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.number,
                    r.title,
                    rec.sent,
                    rec.acknowledged,
                    codes(rec),
                    rec.unknown,
                    rec.lost(),
                    rec.duplicate_copies,
                    opt(r.baseline.map(|b| b.1)),
                    opt(r.p99_fault),
                    r.recovery
                        .as_ref()
                        .map_or_else(|| "–".to_owned(), |(_, d)| fmt_duration(*d)),
                    r.verdict()
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | {} | – | – | – | – | – | – | – | – | – | {} |",
                    r.number,
                    r.title,
                    r.verdict()
                );
            }
        }
    }
    for r in reports {
        section(&mut s, r);
    }
    s
}

fn section(s: &mut String, r: &ScenarioReport) {
    let _ = writeln!(s, "\n## {}. {} — {}\n", r.number, r.title, r.verdict());
    if let Some(why) = &r.skipped {
        let _ = writeln!(s, "**Skipped:** {why}\n");
    }
    if let Some(e) = &r.error {
        let _ = writeln!(s, "**Scenario failed before completing:** {e}\n");
    }
    if !r.procedure.is_empty() {
        let _ = writeln!(s, "{}\n", r.procedure);
    }
    let _ = writeln!(s, "| measurement | value |\n|---|---|");
    if let Some(rec) = &r.reconciliation {
        let answers: Vec<String> = rec
            .answers
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let rows = [
            ("orders sent (distinct request ids)", rec.sent.to_string()),
            ("sends (retries included)", rec.attempts.to_string()),
            ("answers to all sends", answers.join(", ")),
            ("acknowledged OK", rec.acknowledged.to_string()),
            (
                "OK answers that replayed a stored order",
                rec.replayed.to_string(),
            ),
            ("refused (final answer)", codes(rec)),
            (
                "outcome unknown (final answer TIMEOUT / none)",
                rec.unknown.to_string(),
            ),
            (
                "lost (acknowledged, missing from database or topic)",
                rec.lost().to_string(),
            ),
            ("events read from the topic", rec.events_read.to_string()),
            (
                "duplicate event copies (same event id)",
                rec.duplicate_copies.to_string(),
            ),
            (
                "stored with unknown outcome (allowed, listed below)",
                rec.stored_unknown.len().to_string(),
            ),
            (
                "HELD reservations without an order after the orphan sweep's bound (listed below)",
                format!(
                    "{} (waited {})",
                    rec.orphan_reservations.len(),
                    fmt_duration(rec.orphan_wait)
                ),
            ),
            (
                "outbox rows READY after the wait",
                rec.outbox_ready_left.to_string(),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
    }
    if let Some((p50, p99)) = r.baseline {
        let _ = writeln!(
            s,
            "| sends before the fault: p50 / p99 (baseline) | {} / {} |",
            fmt_duration(p50),
            fmt_duration(p99)
        );
    }
    let _ = writeln!(
        s,
        "| sends during the fault | {} |\n| p99 of sends during the fault | {} |",
        r.sends_during_fault,
        opt(r.p99_fault)
    );
    if let Some((what, d)) = &r.recovery {
        let _ = writeln!(s, "| recovery: {what} | {} |", fmt_duration(*d));
    }
    for (k, v) in &r.measurements {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "| scenario wall time (setup included) | {} |",
        fmt_duration(r.wall)
    );
    if !r.checks.is_empty() {
        let _ = writeln!(s, "\nChecks:\n");
        for c in &r.checks {
            let mark = if c.passed { "pass" } else { "**FAIL**" };
            let _ = writeln!(s, "- {mark}: {} — {}", c.what, c.detail);
        }
    }
    if let Some(rec) = &r.reconciliation {
        list(
            s,
            "Stored orders whose client got no definitive answer (outcome unknown; allowed)",
            &rec.stored_unknown,
        );
        list(
            s,
            "HELD reservations no stored order owns after the orphan sweep's bound (violations)",
            &rec.orphan_reservations,
        );
        for v in rec.violations() {
            let _ = writeln!(s, "\n**Violation:** {v}");
        }
    }
}

fn list(s: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n{title}:\n");
    for i in items.iter().take(20) {
        let _ = writeln!(s, "- `{i}`");
    }
    if items.len() > 20 {
        let _ = writeln!(s, "- … and {} more", items.len() - 20);
    }
}

/// Writes `text` to `path` (creating docs/ if needed).
pub fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
