//! Latency histograms and outcome counters of one run.
//!
//! HDR histograms (1 µs to 60 s, 3 significant digits), values in
//! microseconds: latency from the due time (coordinated-omission correct),
//! latency from the send time, and the harness's own lag (send − due); the
//! latency of OK answers alone, of refusals (SERVICE_UNAVAILABLE and
//! RATE_LIMITED: nothing was done) from the send time, and per request kind.
//! A timeline counts answers and OK answers per [`TIMELINE_BUCKET`] of due
//! time since the measured window began (how fast service comes back after
//! an overload).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hts_proto::v1::Code;

use crate::mix::Kind;

/// Highest trackable latency, in microseconds (60 s).
pub const MAX_MICROS: u64 = 60_000_000;
/// Width of one timeline bucket.
pub const TIMELINE_BUCKET: Duration = Duration::from_millis(100);

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

    /// Whether the request was refused with nothing done (overload or rate limit).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Outcome::Code(Code::ServiceUnavailable | Code::RateLimited)
                | Outcome::ErrorFrame(Code::ServiceUnavailable | Code::RateLimited)
        )
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
    /// Latency from the due time of OK answers, µs.
    pub ok_from_due: Histogram<u64>,
    /// Latency from the send time of refusals, µs.
    pub refused_from_send: Histogram<u64>,
    /// Latency from the due time per request kind (any answer), µs.
    pub by_kind_from_due: BTreeMap<Kind, Histogram<u64>>,
    /// Start of the measured window (timeline buckets count from it).
    pub epoch: Option<Instant>,
    /// (answered, OK) per [`TIMELINE_BUCKET`] of due time since `epoch`.
    pub timeline: Vec<(u64, u64)>,
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
            ok_from_due: histogram(),
            refused_from_send: histogram(),
            by_kind_from_due: BTreeMap::new(),
            epoch: None,
            timeline: Vec::new(),
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

    /// A measured request of `kind` ended with `outcome` at `now`. A client
    /// timeout is recorded at its (lower-bound) latency too, so percentiles
    /// never hide it.
    pub fn on_done(
        &mut self,
        kind: Kind,
        outcome: &Outcome,
        due: Instant,
        sent: Instant,
        now: Instant,
    ) {
        let from_due = micros(now.saturating_duration_since(due));
        let from_send = micros(now.saturating_duration_since(sent));
        self.from_due.saturating_record(from_due);
        self.from_send.saturating_record(from_send);
        if outcome.is_ok() {
            self.ok_from_due.saturating_record(from_due);
        }
        if outcome.is_refusal() {
            self.refused_from_send.saturating_record(from_send);
        }
        self.by_kind_from_due
            .entry(kind)
            .or_insert_with(histogram)
            .saturating_record(from_due);
        if let Some(epoch) = self.epoch {
            let bucket = (due.saturating_duration_since(epoch).as_millis()
                / TIMELINE_BUCKET.as_millis()) as usize;
            if bucket >= self.timeline.len() {
                self.timeline.resize(bucket + 1, (0, 0));
            }
            self.timeline[bucket].0 += 1;
            self.timeline[bucket].1 += u64::from(outcome.is_ok());
        }
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
        let _ = self.ok_from_due.add(&other.ok_from_due);
        let _ = self.refused_from_send.add(&other.refused_from_send);
        for (k, h) in &other.by_kind_from_due {
            let _ = self
                .by_kind_from_due
                .entry(*k)
                .or_insert_with(histogram)
                .add(h);
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), (0, 0));
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
        self.epoch = self.epoch.or(other.epoch);
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
        r.epoch = Some(t0);
        r.on_done(
            Kind::Place,
            &Outcome::Code(Code::Ok),
            due,
            sent,
            t0 + Duration::from_millis(3),
        );
        let mut other = Recorder {
            epoch: Some(t0),
            ..Default::default()
        };
        other.on_send(Kind::Query, due, due);
        other.on_done(
            Kind::Query,
            &Outcome::ClientTimeout,
            due,
            due,
            t0 + Duration::from_secs(5),
        );
        other.on_send(Kind::Place, due, due);
        other.on_done(
            Kind::Place,
            &Outcome::Code(Code::ServiceUnavailable),
            due + Duration::from_millis(250),
            due + Duration::from_millis(250),
            due + Duration::from_millis(251),
        );
        r.merge(&other);
        assert_eq!(r.sent, 3);
        assert_eq!(r.responses, 2);
        assert_eq!(r.timeouts, 1);
        assert_eq!(r.errors, 2);
        assert_eq!(r.ok_from_due.len(), 1, "OK answers alone");
        assert_eq!(r.refused_from_send.len(), 1);
        assert_eq!(r.refused_from_send.max(), 1_000);
        assert_eq!(r.by_kind_from_due[&Kind::Query].len(), 1);
        assert_eq!(r.timeline, vec![(2, 1), (0, 0), (1, 0)]);
        assert_eq!(r.codes.get("OK"), Some(&1));
        assert_eq!(r.codes.get("CLIENT_TIMEOUT"), Some(&1));
        assert_eq!(r.from_due.len(), 3);
        let p50_due = r.from_due.value_at_quantile(0.5);
        assert!((2_990..=3_010).contains(&p50_due), "{p50_due}");
        let min_send = r.from_send.min();
        assert!((995..=1_005).contains(&min_send), "{min_send}");
        assert!(r.from_due.max() >= 4_990_000);
        assert_eq!(
            r.by_kind_from_due[&Kind::Place].len(),
            2,
            "every place answer, OK or not"
        );
        assert!(r.by_kind_from_due[&Kind::Query].min() >= 4_990_000);
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
