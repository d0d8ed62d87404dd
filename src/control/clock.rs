//! Wall-clock times as RFC 3339 UTC text, both ways: in status, log
//! records and events, and in `--since`/`--until`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch as RFC 3339 UTC (`2026-11-22T10:00:00Z`).
pub fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A time since the epoch with nanoseconds: `2026-11-22T10:00:00.000000001Z`
/// (fixed width, so that records sort as text).
pub fn rfc3339_nanos(since_epoch: Duration) -> String {
    let seconds = rfc3339(since_epoch.as_secs());
    let whole = seconds.trim_end_matches('Z');
    format!("{whole}.{:09}Z", since_epoch.subsec_nanos())
}

pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Inverse of `rfc3339` and `rfc3339_nanos`: `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction, then `Z` (or nothing: UTC).
pub fn parse_rfc3339(text: &str) -> Option<Duration> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    if text.get(4..5) != Some("-") || text.get(10..11).is_none_or(|t| t != "T" && t != " ") {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let rest = text.get(19..)?;
    let rest = rest.strip_suffix('Z').unwrap_or(rest);
    let nanos = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        None => return None,
        Some(digits) if digits.is_empty() || digits.len() > 9 => return None,
        Some(digits) => {
            let value: u32 = digits.parse().ok()?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
    };
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()?;
    Some(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_341_600), "2026-11-22T10:00:00Z");
    }

    #[test]
    fn round_trips() {
        for seconds in [0, 951_782_400, 1_795_341_600, 4_102_444_799] {
            let text = rfc3339(seconds);
            assert_eq!(
                parse_rfc3339(&text),
                Some(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        let at = Duration::new(1_795_341_600, 1);
        assert_eq!(rfc3339_nanos(at), "2026-11-22T10:00:00.000000001Z");
        assert_eq!(parse_rfc3339(&rfc3339_nanos(at)), Some(at));
        assert_eq!(
            parse_rfc3339("2026-11-22T10:00:00.5"),
            Some(Duration::new(1_795_341_600, 500_000_000))
        );
        for bad in [
            "",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2026-11-22T10:00:00.Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
