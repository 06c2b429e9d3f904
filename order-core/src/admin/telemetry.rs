//! Metric names of the order service (stable; docs/operations.md lists
//! them) and their scrape-time export.

use crate::admin::readiness::Readiness;
use crate::outbox::OutboxStats;

/// Gauge: outbox rows still READY (not yet published).
pub const OUTBOX_READY: &str = "hts_outbox_ready_backlog";
/// Gauge: age in seconds of the oldest READY outbox row (0 when none).
pub const OUTBOX_OLDEST_AGE: &str = "hts_outbox_oldest_ready_age_seconds";
/// Counter: outbox rows published (SENT) so far, from the store.
pub const OUTBOX_PUBLISHED: &str = "hts_outbox_published_total";
/// Counter: outbox rows sent to the dead-letter topic so far, from the store.
pub const OUTBOX_DLQ: &str = "hts_outbox_dlq_total";
/// Counter: orphan reservations (HELD, no order owns them) the orphan
/// sweep gave back to `available` ([`crate::service::orphans`]).
pub const ORPHANS_RELEASED: &str = "hts_orphan_reservations_released_total";
/// Gauge: 1 when a dependency answered its last probe, label `dependency`
/// (`database`, `account_service`).
pub const DEPENDENCY_UP: &str = "hts_dependency_up";

/// Sets the outbox metrics from `stats`.
pub fn export_outbox(stats: &OutboxStats) {
    metrics::gauge!(OUTBOX_READY).set(stats.ready_backlog as f64);
    metrics::gauge!(OUTBOX_OLDEST_AGE).set(stats.oldest_ready_age.map_or(0.0, |d| d.as_secs_f64()));
    metrics::counter!(OUTBOX_PUBLISHED).absolute(u64::try_from(stats.published_total).unwrap_or(0));
    metrics::counter!(OUTBOX_DLQ).absolute(u64::try_from(stats.dlq_total).unwrap_or(0));
}

/// Sets the dependency gauges from a readiness result.
pub fn export_readiness(r: &Readiness) {
    for dep in ["database", "account_service"] {
        let up = if r.missing.contains(&dep) { 0.0 } else { 1.0 };
        metrics::gauge!(DEPENDENCY_UP, "dependency" => dep).set(up);
    }
}
