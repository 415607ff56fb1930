//! The duration grammar of the API (`30s`, `10m`, `1h30m`), shared by the admission rule and
//! the parser so that anything the API server accepts also parses here.

use std::time::Duration;

/// Regular expression (RE2 and CEL compatible) for a duration: `<integer><unit>` repeated.
pub const PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration such as 30s, 10m or 1h30m (units: ms, s, m, h)")]
    Syntax(String),
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parses a duration such as `1h30m` or `250ms`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(input.to_owned());
    let overflow = || DurationError::Overflow(input.to_owned());
    let mut rest = input;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(syntax());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(syntax)?;
        if digits == 0 {
            return Err(syntax());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| overflow())?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return Err(syntax());
        };
        rest = &rest[len..];
        let ms = value.checked_mul(unit_ms).ok_or_else(overflow)?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(overflow)?;
    }
    Ok(total)
}

/// Formats a duration in the same grammar, choosing the largest exact units.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_combinations() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1m500ms").unwrap(), Duration::from_millis(60_500));
    }

    #[test]
    fn rejects_what_the_admission_pattern_rejects() {
        for bad in ["", "10", "m", "1.5s", "10 m", "-1s", "1d", "1hm", "s10"] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn rejects_overflow_instead_of_wrapping() {
        assert!(matches!(
            parse("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn format_round_trips() {
        for s in ["1h30m", "250ms", "45s", "2h", "1m1s1ms"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
