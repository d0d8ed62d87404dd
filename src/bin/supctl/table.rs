//! The human status table: fixed columns that fit 80 characters, errors on
//! their own indented line.

use supd::control::protocol::UnitStatus;

pub fn render(units: &[UnitStatus]) -> String {
    let mut out = format!(
        "{:<20} {:<9} {:>7} {:>9} {:>8}  {}\n",
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for unit in units {
        let pid = unit.pid.map_or("-".to_string(), |p| p.to_string());
        let uptime = match (
            unit.state.as_str(),
            unit.since.as_deref().and_then(parse_rfc3339),
        ) {
            ("running" | "ready", Some(since)) => human_duration(now.saturating_sub(since)),
            _ => "-".to_string(),
        };
        let last_exit = match &unit.last_exit {
            None => "-".to_string(),
            Some(exit) if exit.oom_killed => "oom-killed".to_string(),
            Some(exit) => match (exit.code, exit.signal) {
                (Some(code), _) => format!("code {code}"),
                (None, Some(signal)) => format!("signal {signal}"),
                (None, None) => "-".to_string(),
            },
        };
        out.push_str(&format!(
            "{:<20} {:<9} {:>7} {:>9} {:>8}  {}\n",
            truncate(&unit.name, 20),
            unit.state,
            pid,
            uptime,
            unit.restarts,
            last_exit
        ));
        for address in &unit.addresses {
            out.push_str(&format!("  address: {address}\n"));
        }
        if let Some(error) = &unit.error {
            out.push_str(&format!("  error: {error}\n"));
        }
    }
    out
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut short: String = text.chars().take(width - 1).collect();
    short.push('~');
    short
}

fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, s / 60 % 60),
        s => format!("{}d{}h", s / 86_400, s / 3600 % 24),
    }
}

/// Inverse of `rfc3339` for the daemon's own `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for seconds in [0, 951_782_400, 1_795_341_600, 1_795_345_199] {
            let text = supd::control::protocol::rfc3339(seconds);
            assert_eq!(parse_rfc3339(&text), Some(seconds), "{text}");
        }
    }

    #[test]
    fn table_fits_80_columns() {
        let unit = UnitStatus {
            name: "a-very-long-unit-name-that-goes-on".into(),
            state: "backoff".into(),
            pid: Some(4_194_303),
            since: None,
            restarts: 12345,
            last_exit: None,
            oom_kills: None,
            cpu_percent: None,
            memory_bytes: None,
            working_set_bytes: None,
            pids: None,
            addresses: Vec::new(),
            error: None,
        };
        for line in render(&[unit]).lines() {
            assert!(line.chars().count() <= 80, "{line}");
        }
    }
}
