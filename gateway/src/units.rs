//! Durations as the config file and the command line write them: whole
//! milliseconds ([`Millis`], keys ending in `_ms`) or whole seconds
//! ([`Secs`], keys ending in `_secs`). Both parse from and print as the
//! bare integer, so `--request-timeout-ms 80` and `request_timeout_ms = 80`
//! mean the same, and `--help` shows defaults in the unit of the key.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! duration_unit {
    ($(#[$doc:meta])* $name:ident, $unit:literal, $from:path, $as:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Duration);

        impl $name {
            /// The duration.
            pub const fn get(self) -> Duration {
                self.0
            }
        }

        impl Deref for $name {
            type Target = Duration;
            fn deref(&self) -> &Duration {
                &self.0
            }
        }

        impl From<Duration> for $name {
            fn from(d: Duration) -> Self {
                $name(d)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", u64::try_from(self.0.$as()).unwrap_or(u64::MAX))
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                s.trim()
                    .parse::<u64>()
                    .map(|n| $name($from(n)))
                    .map_err(|e| format!("expected a whole number of {}: {e}", $unit))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u64(u64::try_from(self.0.$as()).unwrap_or(u64::MAX))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                u64::deserialize(d).map(|n| $name($from(n)))
            }
        }
    };
}

duration_unit!(
    /// A duration in whole milliseconds (keys and flags ending in `_ms`).
    Millis,
    "milliseconds",
    Duration::from_millis,
    as_millis
);

duration_unit!(
    /// A duration in whole seconds (keys and flags ending in `_secs`).
    Secs,
    "seconds",
    Duration::from_secs,
    as_secs_u128
);

/// `as_secs` widened like `as_millis`, so both units share the macro.
trait AsSecsU128 {
    fn as_secs_u128(&self) -> u128;
}

impl AsSecsU128 for Duration {
    fn as_secs_u128(&self) -> u128 {
        u128::from(self.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_print_and_serde_use_the_bare_number() {
        let m: Millis = "80".parse().unwrap();
        assert_eq!(*m, Duration::from_millis(80));
        assert_eq!(m.to_string(), "80");
        assert!("8.5"
            .parse::<Millis>()
            .unwrap_err()
            .contains("milliseconds"));
        let s: Secs = " 9 ".parse().unwrap();
        assert_eq!(s.get(), Duration::from_secs(9));
        assert_eq!(serde_json::to_string(&s).unwrap(), "9");
        let back: Millis = serde_json::from_str("1500").unwrap();
        assert_eq!(back.get(), Duration::from_millis(1500));
    }
}
