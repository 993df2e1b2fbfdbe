//! Prometheus-style durations (`30s`, `5m`, `1h30m`, `7d`) for the policy file.
//!
//! Owns: parsing and printing them, and the serde glue. Nothing else.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration written the way Prometheus and Alertmanager configs write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    /// `n` seconds.
    pub const fn secs(n: u64) -> PromDuration {
        PromDuration(Duration::from_secs(n))
    }

    /// The std duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
    ("y", 31_536_000_000),
];

impl std::str::FromStr for PromDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a duration like 30s, 5m, 1h30m or 7d");
        if s.is_empty() {
            return Err(bad());
        }
        if s == "0" {
            return Ok(PromDuration::default());
        }
        let mut total: u64 = 0;
        let mut rest = s;
        let mut last_unit = usize::MAX;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            // longest unit first so "ms" is not read as "m"
            let (idx, (unit, ms)) = UNITS
                .iter()
                .enumerate()
                .filter(|(_, (u, _))| rest.starts_with(u))
                .max_by_key(|(_, (u, _))| u.len())
                .ok_or_else(bad)?;
            // units must go from larger to smaller, each at most once (as in Prometheus)
            if idx >= last_unit {
                return Err(bad());
            }
            last_unit = idx;
            rest = &rest[unit.len()..];
            total = n
                .checked_mul(*ms)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
        }
        Ok(PromDuration(Duration::from_millis(total)))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS.iter().rev() {
            // weeks and years are not used when printing: "14d" reads better than "2w"
            if *unit == "y" || *unit == "w" {
                continue;
            }
            if ms >= *size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Duration, String> {
        s.parse::<PromDuration>().map(PromDuration::get)
    }

    #[test]
    fn parses_prometheus_forms() {
        assert_eq!(p("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(p("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(p("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(p("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(p("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(p("1m500ms").unwrap(), Duration::from_millis(60_500));
        assert_eq!(p("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_garbage_and_out_of_order_units() {
        for s in ["", "5", "m5", "5 m", "1.5h", "5m1h", "5m5m", "-1s", "1x"] {
            assert!(p(s).is_err(), "{s}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["30s", "5m", "1h30m", "7d", "250ms", "1d2h3m4s"] {
            assert_eq!(s.parse::<PromDuration>().unwrap().to_string(), s);
        }
        assert_eq!(PromDuration::default().to_string(), "0s");
    }
}
