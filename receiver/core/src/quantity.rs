//! Kubernetes memory quantities (`512Mi`, `1Gi`, `1e9`, `1500M`) as bytes, for policy validation.
//!
//! Owns: reading a quantity into whole bytes and refusing what is not one.
//! Exact printing and unit-preserving arithmetic belong to the gitops patcher.

/// Parse a memory quantity into bytes; fractional results round up to a whole byte.
pub fn parse_bytes(s: &str) -> Result<u128, String> {
    let bad = || format!("{s:?} is not a memory quantity like 512Mi, 2Gi or 1500M");
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        e if e.starts_with(['e', 'E']) => {
            let exp: u32 = e[1..].parse().map_err(|_| bad())?;
            if exp > 18 {
                return Err(bad());
            }
            10u128.pow(exp)
        }
        _ => return Err(bad()),
    };
    if int_part.len() > 20 || frac_part.len() > 18 {
        return Err(bad());
    }
    let int: u128 = int_part.parse().map_err(|_| bad())?;
    let frac: u128 = if frac_part.is_empty() {
        0
    } else {
        frac_part.parse().map_err(|_| bad())?
    };
    let scale = 10u128.pow(u32::try_from(frac_part.len()).map_err(|_| bad())?);
    let whole = int.checked_mul(multiplier).ok_or_else(bad)?;
    let frac_bytes = (frac * multiplier).div_ceil(scale);
    whole.checked_add(frac_bytes).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn binary_decimal_exponent_and_plain_forms() {
        assert_eq!(parse_bytes("512Mi").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1500M").unwrap(), 1_500_000_000);
        assert_eq!(parse_bytes("1e9").unwrap(), 1_000_000_000);
        assert_eq!(parse_bytes("123456").unwrap(), 123_456);
        assert_eq!(parse_bytes("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("0.1").unwrap(), 1);
    }

    #[test]
    fn rejects_non_quantities() {
        for s in [
            "", "Mi", "1 Gi", "1GB", "-1Gi", "1..2", ".5Gi", "1e99", "abc",
        ] {
            assert!(parse_bytes(s).is_err(), "{s}");
        }
    }
}
