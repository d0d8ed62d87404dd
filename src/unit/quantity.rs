//! Sizes and durations as written in unit files (DESIGN section 2).
//!
//! Both parse from strings or plain numbers so that serde reports a bad value
//! with the file position of the value itself.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A byte count: `512K`, `64M`, `1.5G` (binary multiples) or plain bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "u64")]
pub struct Size(pub u64);

/// A duration: `500ms`, `10s`, `5m`, `1h`, `1d`, combinations like `1m30s`,
/// or a plain number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "Millis")]
pub struct Span(pub Duration);

/// Durations serialise as whole milliseconds so that the canonical form of a
/// unit is stable.
#[derive(Serialize)]
pub struct Millis(u128);

impl From<Span> for Millis {
    fn from(span: Span) -> Self {
        Millis(span.0.as_millis())
    }
}

impl From<Size> for u64 {
    fn from(size: Size) -> u64 {
        size.0
    }
}

/// Any YAML scalar, kept as text, so that `10`, `10.5` and `"10M"` all reach
/// the same parser.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Float(FloatText),
    Bool(bool),
    Text(String),
}

/// A float kept as its shortest text form; floats only exist here to be
/// re-parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloatText(pub String);

impl<'de> Deserialize<'de> for FloatText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(d)?;
        Ok(FloatText(value.to_string()))
    }
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.0.clone(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Text(s) => s.trim().to_string(),
        }
    }
}

crate::scalar_deserialize!(Size, |text: &str| parse_size(text).map(Size));
crate::scalar_deserialize!(Span, |text: &str| parse_duration(text).map(Span));

/// Deserialises any YAML scalar as text and hands it to a checking parser
/// inside the visitor, so that a rejected value is reported at its own line
/// and column (a `try_from` error would carry the enclosing key's position).
pub fn deserialize_checked<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Checked<F> {
        expecting: &'static str,
        parse: F,
    }
    impl<T, F: FnOnce(&str) -> Result<T, String>> serde::de::Visitor<'_> for Checked<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v.trim()).map_err(E::custom)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<T, E> {
            self.visit_str(if v { "true" } else { "false" })
        }
    }
    d.deserialize_any(Checked { expecting, parse })
}

/// Implements `Deserialize` for a type through `deserialize_checked`.
#[macro_export]
macro_rules! scalar_deserialize {
    ($ty:ty, $parse:expr) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::unit::quantity::deserialize_checked(d, "a scalar value", $parse)
            }
        }
    };
}

/// The largest size a unit may name (1 EiB): far above any real limit, and
/// low enough that sums of two sizes (memory plus swap) cannot overflow.
pub const MAX_SIZE: u64 = 1 << 60;

/// The longest duration a unit may name (365 days): every timer deadline is
/// the monotonic clock plus one of these, which then cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86400);

pub fn parse_size(text: &str) -> Result<u64, String> {
    let bytes = parse_size_unbounded(text)?;
    if bytes > MAX_SIZE {
        return Err(format!(
            "size {text:?} is too large: at most 1048576T (2^60 bytes)"
        ));
    }
    Ok(bytes)
}

fn parse_size_unbounded(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid size {text:?}: expected bytes or a number with K, M, G or T (for example 512K, 64M, 1.5G)")
    };
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return Err(bad());
    }
    let multiplier: u64 = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(bad()),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(multiplier).ok_or_else(bad);
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_unbounded(text)?;
    if duration > MAX_DURATION {
        return Err(format!("duration {text:?} is too long: at most 365d"));
    }
    Ok(duration)
}

fn parse_duration_unbounded(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {text:?}: expected a number with ms, s, m, h or d (for example 500ms, 10s, 5m, 1h)")
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let seconds_per_unit = match unit.trim() {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        let part = Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| bad())?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = next;
    }
    Ok(total)
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_duration(self.0, f)
    }
}

pub fn format_duration(d: Duration, f: &mut impl fmt::Write) -> fmt::Result {
    let ms = d.as_millis();
    if ms % 1000 != 0 || ms == 0 {
        return write!(f, "{ms}ms");
    }
    let secs = d.as_secs();
    if secs % 3600 == 0 {
        write!(f, "{}h", secs / 3600)
    } else if secs % 60 == 0 {
        write!(f, "{}m", secs / 60)
    } else {
        write!(f, "{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases = [
            ("512K", Some(512 << 10)),
            ("64M", Some(64 << 20)),
            ("1G", Some(1 << 30)),
            ("1.5G", Some(3 << 29)),
            ("4096", Some(4096)),
            ("10m", Some(10 << 20)),
            ("0", Some(0)),
            ("", None),
            ("M", None),
            ("12Q", None),
            ("-1", None),
            ("1.2.3K", None),
            ("1048577T", None),
            ("1048576T", Some(MAX_SIZE)),
            ("1152921504606846976", Some(MAX_SIZE)),
            ("1152921504606846977", None),
            ("18446744073709551615", None),
            ("16E", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        let cases = [
            ("500ms", Some(ms(500))),
            ("10s", Some(ms(10_000))),
            ("5m", Some(ms(300_000))),
            ("1h", Some(ms(3_600_000))),
            ("1m30s", Some(ms(90_000))),
            ("1.5s", Some(ms(1500))),
            ("7", Some(ms(7000))),
            ("0", Some(ms(0))),
            ("10x", None),
            ("s", None),
            ("", None),
            ("365d", Some(MAX_DURATION)),
            ("31536000", Some(MAX_DURATION)),
            ("31536001", None),
            ("365d1ms", None),
            ("18446744073709551615", None),
            ("213503982334601d", None),
            ("1e300s", None),
            ("nan s", None),
            ("-1s", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn duration_display_round_trips() {
        for text in ["500ms", "10s", "5m", "1h", "0ms"] {
            let span = Span(parse_duration(text).unwrap());
            assert_eq!(span.to_string(), text);
        }
    }
}
