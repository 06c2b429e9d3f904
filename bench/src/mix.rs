//! The request mix: relative weights of place, cancel and query.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::Serialize;

/// The kind of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// PlaceOrder.
    Place,
    /// CancelOrder of an order placed earlier in the run.
    Cancel,
    /// QueryOrder of an order placed earlier in the run.
    Query,
}

impl Kind {
    /// Lower-case name, as used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Place => "place",
            Kind::Cancel => "cancel",
            Kind::Query => "query",
        }
    }
}

/// Why a `--mix` value is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MixError {
    /// Not three `:`-separated numbers.
    #[error("mix must be PLACE:CANCEL:QUERY weights, e.g. 8:1:1, got {0:?}")]
    Shape(String),
    /// A weight is not a non-negative integer.
    #[error("mix weight {0:?} is not a non-negative integer")]
    Weight(String),
    /// Placing is required (cancels and queries need placed orders).
    #[error("the place weight must be positive: cancels and queries target placed orders")]
    NoPlaces,
}

/// Weights of place, cancel and query, e.g. `8:1:1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    place: u32,
    cancel: u32,
    query: u32,
}

impl Mix {
    /// Only places.
    pub const PLACE_ONLY: Mix = Mix {
        place: 1,
        cancel: 0,
        query: 0,
    };

    /// One place per cancel, no queries.
    pub const PLACE_AND_CANCEL: Mix = Mix {
        place: 1,
        cancel: 1,
        query: 0,
    };

    /// Picks a kind at random according to the weights.
    pub fn pick(&self, rng: &mut impl Rng) -> Kind {
        let total = self.place + self.cancel + self.query;
        let x = rng.gen_range(0..total);
        if x < self.place {
            Kind::Place
        } else if x < self.place + self.cancel {
            Kind::Cancel
        } else {
            Kind::Query
        }
    }
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Mix, MixError> {
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        let [p, c, q] = parts.as_slice() else {
            return Err(MixError::Shape(s.to_owned()));
        };
        let weight = |w: &str| w.parse::<u32>().map_err(|_| MixError::Weight(w.to_owned()));
        let mix = Mix {
            place: weight(p)?,
            cancel: weight(c)?,
            query: weight(q)?,
        };
        if mix.place == 0 {
            return Err(MixError::NoPlaces);
        }
        Ok(mix)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.place, self.cancel, self.query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_and_prints() {
        let m: Mix = "8:1:1".parse().unwrap();
        assert_eq!(m.to_string(), "8:1:1");
        assert_eq!("1:0:0".parse::<Mix>().unwrap(), Mix::PLACE_ONLY);
        assert!(matches!("8:1".parse::<Mix>(), Err(MixError::Shape(_))));
        assert!(matches!("8:x:1".parse::<Mix>(), Err(MixError::Weight(_))));
        assert_eq!("0:1:1".parse::<Mix>(), Err(MixError::NoPlaces));
    }

    #[test]
    fn picks_follow_the_weights() {
        let m: Mix = "8:1:1".parse().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[m.pick(&mut rng) as usize] += 1;
        }
        assert!((7_600..8_400).contains(&counts[0]), "{counts:?}");
        assert!((800..1_200).contains(&counts[1]), "{counts:?}");
        assert!((800..1_200).contains(&counts[2]), "{counts:?}");
    }
}
