//! The caller's deadline of a gRPC request, from its `grpc-timeout` header.
//!
//! Hand-written because tonic parses the header only inside its server
//! timeout layer and does not expose the result to handlers. The format
//! (gRPC over HTTP/2 spec): at most 8 ASCII digits followed by one unit,
//! `H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u`
//! microseconds, `n` nanoseconds.

use std::time::Duration;

use tokio::time::Instant;

/// The header carrying the caller's remaining time.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The deadline of `request`: now plus its `grpc-timeout`, or `None` when
/// the header is absent or malformed (a malformed header is not worth
/// refusing the order over; the store's own retry budget still applies).
pub(crate) fn of<T>(request: &tonic::Request<T>) -> Option<Instant> {
    let value = request.metadata().get(GRPC_TIMEOUT)?.to_str().ok()?;
    parse(value).map(|timeout| Instant::now() + timeout)
}

/// Parses a `grpc-timeout` value.
fn parse(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("50m"), Some(Duration::from_millis(50)));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1M"), Some(Duration::from_secs(60)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("750u"), Some(Duration::from_micros(750)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
    }

    #[test]
    fn malformed_values_are_ignored() {
        for bad in ["", "m", "5", "5x", "-5m", "+5m", "123456789m", "5 m", "٣m"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_deadline_comes_from_the_header() {
        let mut request = tonic::Request::new(());
        assert!(of(&request).is_none());
        request.set_timeout(Duration::from_millis(200));
        let deadline = of(&request).expect("deadline");
        let left = deadline - Instant::now();
        assert!(left <= Duration::from_millis(200) && left > Duration::from_millis(100));
    }
}
