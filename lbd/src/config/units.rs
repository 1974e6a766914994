//! Numbers with units, read as HAProxy reads them.
//!
//! Times: a decimal integer with an optional unit `us`, `ms` (the default), `s`,
//! `m`, `h` or `d`; values are kept in milliseconds (microseconds round up) and
//! must stay below 2^31 ms (about 24.8 days), HAProxy's timer range.
//! Sizes: a decimal integer with an optional `k`, `m` or `g` suffix (powers of
//! 1024, either case).

use std::time::Duration;

/// The largest timer HAProxy accepts, in milliseconds.
pub const MAX_TIMER_MS: u64 = i32::MAX as u64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("missing value")]
    Empty,
    #[error("unexpected character '{0}'")]
    BadChar(char),
    #[error("value out of range (the maximum is {MAX_TIMER_MS} ms, about 24.8 days)")]
    Overflow,
    #[error("value '{0}' is not a number")]
    NotANumber(String),
}

/// Parses a time with the given default unit multiplier in microseconds.
fn parse_time_us(text: &str, default_unit_us: u64) -> Result<u64, UnitError> {
    let digits_end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    if digits_end == 0 {
        return match text.chars().next() {
            None => Err(UnitError::Empty),
            Some(c) => Err(UnitError::BadChar(c)),
        };
    }
    let value: u64 = text[..digits_end].parse().map_err(|_| UnitError::Overflow)?;
    let unit_us = match &text[digits_end..] {
        "" => default_unit_us,
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        rest => return Err(UnitError::BadChar(rest.chars().next().unwrap_or(' '))),
    };
    value.checked_mul(unit_us).ok_or(UnitError::Overflow)
}

/// A time whose bare numbers are milliseconds (`timeout`, `inter`, ...).
pub fn parse_time_ms(text: &str) -> Result<Duration, UnitError> {
    let us = parse_time_us(text, 1_000)?;
    let ms = us.div_ceil(1_000);
    if ms > MAX_TIMER_MS {
        return Err(UnitError::Overflow);
    }
    Ok(Duration::from_millis(ms))
}

/// A time whose bare numbers are seconds (`hard-stop-after` takes ms; a few
/// keywords such as `stick-table expire` take ms too; this is for those that don't).
pub fn parse_time_s(text: &str) -> Result<Duration, UnitError> {
    let us = parse_time_us(text, 1_000_000)?;
    let ms = us.div_ceil(1_000);
    if ms > MAX_TIMER_MS {
        return Err(UnitError::Overflow);
    }
    Ok(Duration::from_millis(ms))
}

/// A size with an optional k/m/g suffix.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let digits_end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    if digits_end == 0 {
        return match text.chars().next() {
            None => Err(UnitError::Empty),
            Some(c) => Err(UnitError::BadChar(c)),
        };
    }
    let value: u64 = text[..digits_end].parse().map_err(|_| UnitError::Overflow)?;
    let mult: u64 = match &text[digits_end..] {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        rest => return Err(UnitError::BadChar(rest.chars().next().unwrap_or(' '))),
    };
    value.checked_mul(mult).ok_or(UnitError::Overflow)
}

/// A plain unsigned integer within `[min, max]`.
pub fn parse_uint(text: &str, min: u64, max: u64) -> Result<u64, UnitError> {
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UnitError::NotANumber(text.to_owned()));
    }
    let v: u64 = text.parse().map_err(|_| UnitError::Overflow)?;
    if v < min || v > max {
        return Err(UnitError::NotANumber(text.to_owned()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("5000", 5000)]
    #[case("5s", 5000)]
    #[case("250ms", 250)]
    #[case("1500us", 2)]
    #[case("1us", 1)]
    #[case("2m", 120_000)]
    #[case("1h", 3_600_000)]
    #[case("1d", 86_400_000)]
    #[case("0", 0)]
    fn times(#[case] text: &str, #[case] ms: u64) {
        assert_eq!(parse_time_ms(text).unwrap(), Duration::from_millis(ms));
    }

    #[rstest]
    #[case("", UnitError::Empty)]
    #[case("10x", UnitError::BadChar('x'))]
    #[case("s", UnitError::BadChar('s'))]
    #[case("-1", UnitError::BadChar('-'))]
    #[case("30d", UnitError::Overflow)]
    #[case("99999999999999999999999", UnitError::Overflow)]
    fn bad_times(#[case] text: &str, #[case] err: UnitError) {
        assert_eq!(parse_time_ms(text).unwrap_err(), err);
    }

    #[rstest]
    #[case("10", 10)]
    #[case("10k", 10_240)]
    #[case("16K", 16_384)]
    #[case("1m", 1 << 20)]
    #[case("2g", 2 << 30)]
    fn sizes(#[case] text: &str, #[case] n: u64) {
        assert_eq!(parse_size(text).unwrap(), n);
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(parse_size("1t").unwrap_err(), UnitError::BadChar('t'));
        assert_eq!(parse_size("").unwrap_err(), UnitError::Empty);
        assert!(parse_uint("abc", 0, 10).is_err());
        assert!(parse_uint("11", 0, 10).is_err());
        assert_eq!(parse_uint("7", 0, 10).unwrap(), 7);
    }
}
