//! Kubernetes memory quantities, exactly: parse `512Mi`, `1.5Gi`, `1500M`,
//! `1e9`, `123456` into whole bytes (a fraction of a byte rounds up, as
//! Kubernetes does), and print bytes back in a chosen unit when that is exact
//! (falling back to the largest exact binary unit).
//!
//! Owns: the number and its spelling, for policy validation and for the
//! gitops patcher alike. No YAML, no IO.

use std::fmt;

/// How a quantity is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Plain bytes: `123456`.
    Bytes,
    /// Binary SI: `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`.
    Binary(u32),
    /// Decimal SI: `k`, `M`, `G`, `T`, `P`, `E`.
    Decimal(u32),
    /// Decimal exponent: `1e9` (the exponent).
    Exponent(u32),
}

impl Unit {
    fn factor(self) -> u128 {
        match self {
            Unit::Bytes => 1,
            Unit::Binary(p) => 1u128 << (10 * p),
            Unit::Decimal(p) => 1000u128.pow(p),
            Unit::Exponent(e) => 10u128.pow(e),
        }
    }

    fn suffix(self) -> String {
        const BIN: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
        const DEC: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
        match self {
            Unit::Bytes => String::new(),
            Unit::Binary(p) => BIN.get(p as usize).copied().unwrap_or("").to_string(),
            Unit::Decimal(p) => DEC.get(p as usize).copied().unwrap_or("").to_string(),
            Unit::Exponent(e) => format!("e{e}"),
        }
    }
}

/// A memory quantity: whole bytes, and the unit it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    pub bytes: u128,
    pub unit: Unit,
}

/// Why text is not a memory quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a memory quantity ({why})")]
pub struct QuantityError {
    pub text: String,
    pub why: &'static str,
}

impl Quantity {
    /// Parse a Kubernetes quantity into whole bytes.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let err = |why| QuantityError {
            text: text.to_string(),
            why,
        };
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
            .unwrap_or(t.len());
        let (num, suffix) = t.split_at(split);
        let num = num.strip_prefix('+').unwrap_or(num);
        if num.is_empty()
            || num.starts_with('.')
            || num.ends_with('.')
            || num.matches('.').count() > 1
        {
            return Err(err("expected a number such as 512Mi or 1.5Gi"));
        }
        let unit = match suffix {
            "" => Unit::Bytes,
            "Ki" => Unit::Binary(1),
            "Mi" => Unit::Binary(2),
            "Gi" => Unit::Binary(3),
            "Ti" => Unit::Binary(4),
            "Pi" => Unit::Binary(5),
            "Ei" => Unit::Binary(6),
            "k" => Unit::Decimal(1),
            "M" => Unit::Decimal(2),
            "G" => Unit::Decimal(3),
            "T" => Unit::Decimal(4),
            "P" => Unit::Decimal(5),
            "E" => Unit::Decimal(6),
            e if e.starts_with(['e', 'E']) => {
                let exp: u32 = e[1..].parse().map_err(|_| err("bad exponent"))?;
                if exp > 30 {
                    return Err(err("exponent too large"));
                }
                Unit::Exponent(exp)
            }
            "m" => return Err(err("milli-bytes are not whole bytes")),
            _ => return Err(err("unknown suffix")),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.len() > 30 || frac.len() > 30 {
            return Err(err("too many digits"));
        }
        let int: u128 = int.parse().map_err(|_| err("bad number"))?;
        let frac_n: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| err("bad number"))?
        };
        let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(0));
        let f = unit.factor();
        let whole = int.checked_mul(f).ok_or_else(|| err("too large"))?;
        let frac_bytes = frac_n.checked_mul(f).ok_or_else(|| err("too large"))?;
        let bytes = whole
            .checked_add(frac_bytes.div_ceil(scale))
            .ok_or_else(|| err("too large"))?;
        Ok(Quantity { bytes, unit })
    }

    /// `bytes` written in `unit` when exact, else in the largest binary unit
    /// that is exact (or plain bytes).
    pub fn in_unit(bytes: u128, unit: Unit) -> Quantity {
        if bytes.is_multiple_of(unit.factor()) {
            return Quantity { bytes, unit };
        }
        let unit = (1..=6)
            .rev()
            .map(Unit::Binary)
            .find(|u| bytes.is_multiple_of(u.factor()))
            .unwrap_or(Unit::Bytes);
        Quantity { bytes, unit }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = Quantity::in_unit(self.bytes, self.unit);
        write!(f, "{}{}", q.bytes / q.unit.factor(), q.unit.suffix())
    }
}

/// Parse a memory quantity into bytes, with a message for a policy error.
pub fn parse_bytes(s: &str) -> Result<u128, String> {
    Quantity::parse(s)
        .map(|q| q.bytes)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> u128 {
        Quantity::parse(s).unwrap().bytes
    }

    #[test]
    fn parses_every_form_exactly() {
        assert_eq!(b("512Mi"), 512 << 20);
        assert_eq!(b("1.5Gi"), 3 << 29);
        assert_eq!(b("1500M"), 1_500_000_000);
        assert_eq!(b("1e9"), 1_000_000_000);
        assert_eq!(b("1E3"), 1000);
        assert_eq!(b("123456"), 123_456);
        assert_eq!(b("64Ki"), 65_536);
        assert_eq!(b("2k"), 2000);
        assert_eq!(b("+1Gi"), 1 << 30);
        // a fraction of a byte rounds up
        assert_eq!(b("0.1"), 1);
        assert_eq!(b("1.1Ki"), 1127);
    }

    #[test]
    fn rejects_what_is_not_whole_bytes_or_not_a_quantity() {
        for s in [
            "", "Mi", "1 Gi", "1GB", "-1Gi", "1..2", ".5Gi", "1.Gi", "100m", "1e99", "x",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn prints_in_the_files_unit_when_exact() {
        let q = Quantity::parse("1Gi").unwrap();
        assert_eq!(Quantity::in_unit(1536 << 20, q.unit).to_string(), "1536Mi");
        assert_eq!(Quantity::in_unit(2 << 30, q.unit).to_string(), "2Gi");
        let m = Quantity::parse("1000M").unwrap();
        assert_eq!(
            Quantity::in_unit(1_200_000_000, m.unit).to_string(),
            "1200M"
        );
        // not exact in M: the largest exact binary unit
        assert_eq!(Quantity::in_unit(1280 << 20, m.unit).to_string(), "1280Mi");
        assert_eq!(Quantity::in_unit(1001, Unit::Binary(2)).to_string(), "1001");
        assert_eq!(
            Quantity::in_unit(3_000_000_000, Unit::Exponent(9)).to_string(),
            "3e9"
        );
    }

    #[test]
    fn round_trips_the_spelling() {
        for s in ["512Mi", "2Gi", "1500M", "1e9", "123456", "64Ki"] {
            assert_eq!(Quantity::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Quantity::parse("1.5Gi").unwrap().to_string(), "1536Mi");
    }
}
