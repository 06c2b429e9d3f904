//! Latency histograms and outcome counters of one run.
//!
//! Three HDR histograms (1 µs to 60 s, 3 significant digits), values in
//! microseconds: latency from the due time (coordinated-omission correct),
//! latency from the send time, and the harness's own lag (send − due).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hts_proto::v1::Code;

use crate::mix::Kind;

/// Highest trackable latency, in microseconds (60 s).
pub const MAX_MICROS: u64 = 60_000_000;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A typed response carrying this code.
    Code(Code),
    /// The gateway answered with an ERROR frame carrying this code.
    ErrorFrame(Code),
    /// The gRPC call failed with this status (direct mode).
    Grpc(tonic::Code),
    /// The connection broke before the answer arrived, or the answer was unreadable.
    Transport,
    /// No answer within the bench's own timeout.
    ClientTimeout,
}

impl Outcome {
    /// Whether the request succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Code(Code::Ok))
    }

    /// The label the report counts this outcome under.
    pub fn label(&self) -> String {
        match self {
            Outcome::Code(c) => c.as_str_name().to_owned(),
            Outcome::ErrorFrame(c) => format!("ERROR_FRAME:{}", c.as_str_name()),
            Outcome::Grpc(c) => format!("GRPC:{c:?}"),
            Outcome::Transport => "TRANSPORT_ERROR".to_owned(),
            Outcome::ClientTimeout => "CLIENT_TIMEOUT".to_owned(),
        }
    }
}

fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MICROS)
}

/// Everything measured about the requests of one run (or one connection).
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Latency from the due time, µs.
    pub from_due: Histogram<u64>,
    /// Latency from the send time, µs.
    pub from_send: Histogram<u64>,
    /// Harness lag (send time − due time), µs.
    pub send_lag: Histogram<u64>,
    /// Measured requests written to the wire.
    pub sent: u64,
    /// Measured requests that got an answer (any code).
    pub responses: u64,
    /// Measured requests without an answer within the bench's timeout.
    pub timeouts: u64,
    /// Measured requests that did not end OK (timeouts included).
    pub errors: u64,
    /// Outcomes by label.
    pub codes: BTreeMap<String, u64>,
    /// Measured requests by kind (after cancel/query fell back to place).
    pub kinds: BTreeMap<Kind, u64>,
    /// When the last measured request was sent.
    pub last_send: Option<Instant>,
    /// When the last measured answer arrived.
    pub last_response: Option<Instant>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            from_due: histogram(),
            from_send: histogram(),
            send_lag: histogram(),
            sent: 0,
            responses: 0,
            timeouts: 0,
            errors: 0,
            codes: BTreeMap::new(),
            kinds: BTreeMap::new(),
            last_send: None,
            last_response: None,
        }
    }
}

impl Recorder {
    /// A measured request of `kind`, due at `due`, was written at `sent`.
    pub fn on_send(&mut self, kind: Kind, due: Instant, sent: Instant) {
        self.sent += 1;
        *self.kinds.entry(kind).or_default() += 1;
        self.send_lag
            .saturating_record(micros(sent.saturating_duration_since(due)));
        self.last_send = Some(self.last_send.map_or(sent, |t| t.max(sent)));
    }

    /// A measured request ended with `outcome` at `now`. A client timeout is
    /// recorded at its (lower-bound) latency too, so percentiles never hide it.
    pub fn on_done(&mut self, outcome: &Outcome, due: Instant, sent: Instant, now: Instant) {
        self.from_due
            .saturating_record(micros(now.saturating_duration_since(due)));
        self.from_send
            .saturating_record(micros(now.saturating_duration_since(sent)));
        *self.codes.entry(outcome.label()).or_default() += 1;
        if *outcome == Outcome::ClientTimeout {
            self.timeouts += 1;
        } else {
            self.responses += 1;
            self.last_response = Some(self.last_response.map_or(now, |t| t.max(now)));
        }
        if !outcome.is_ok() {
            self.errors += 1;
        }
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: &Recorder) {
        // Both sides use identical bounds, so adding cannot fail.
        let _ = self.from_due.add(&other.from_due);
        let _ = self.from_send.add(&other.from_send);
        let _ = self.send_lag.add(&other.send_lag);
        self.sent += other.sent;
        self.responses += other.responses;
        self.timeouts += other.timeouts;
        self.errors += other.errors;
        for (k, v) in &other.codes {
            *self.codes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.kinds {
            *self.kinds.entry(*k).or_default() += v;
        }
        self.last_send = max_opt(self.last_send, other.last_send);
        self.last_response = max_opt(self.last_response, other.last_response);
    }
}

fn max_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_both_latencies_and_counts_outcomes() {
        let t0 = Instant::now();
        let due = t0;
        let sent = t0 + Duration::from_millis(2);
        let mut r = Recorder::default();
        r.on_send(Kind::Place, due, sent);
        r.on_done(
            &Outcome::Code(Code::Ok),
            due,
            sent,
            t0 + Duration::from_millis(3),
        );
        let mut other = Recorder::default();
        other.on_send(Kind::Query, due, due);
        other.on_done(
            &Outcome::ClientTimeout,
            due,
            due,
            t0 + Duration::from_secs(5),
        );
        r.merge(&other);
        assert_eq!(r.sent, 2);
        assert_eq!(r.responses, 1);
        assert_eq!(r.timeouts, 1);
        assert_eq!(r.errors, 1);
        assert_eq!(r.codes.get("OK"), Some(&1));
        assert_eq!(r.codes.get("CLIENT_TIMEOUT"), Some(&1));
        assert_eq!(r.from_due.len(), 2);
        let p50_due = r.from_due.value_at_quantile(0.5);
        assert!((2_990..=3_010).contains(&p50_due), "{p50_due}");
        let min_send = r.from_send.min();
        assert!((995..=1_005).contains(&min_send), "{min_send}");
        assert!(r.from_due.max() >= 4_990_000);
    }

    #[test]
    fn labels_are_stable() {
        assert_eq!(Outcome::Code(Code::Timeout).label(), "TIMEOUT");
        assert_eq!(
            Outcome::ErrorFrame(Code::InvalidRequest).label(),
            "ERROR_FRAME:INVALID_REQUEST"
        );
        assert_eq!(
            Outcome::Grpc(tonic::Code::Unavailable).label(),
            "GRPC:Unavailable"
        );
    }
}
