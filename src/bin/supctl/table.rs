//! The human status table: fixed columns that fit 80 characters, details
//! (addresses, the workload's status, errors) on indented lines below.
//! Colour only on a terminal, and never with NO_COLOR set.

use std::io::IsTerminal;
use supd::control::protocol::{FailedCheck, Health, State, UnitStatus};

/// Whether stdout gets ANSI colours (https://no-color.org).
pub fn use_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

const HEADER: [&str; 9] = [
    "NAME",
    "STATE",
    "PID",
    "UPTIME",
    "RST",
    "CPU%",
    "MEM",
    "PIDS",
    "LAST EXIT",
];

fn row(cells: &[String; 9], state_colour: Option<&str>) -> String {
    let state = format!("{:<8}", cells[1]);
    let state = match state_colour {
        Some(code) => format!("\x1b[{code}m{state}\x1b[0m"),
        None => state,
    };
    format!(
        "{:<16} {state} {:>7} {:>7} {:>3} {:>5} {:>6} {:>5}  {}\n",
        cells[0], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7], cells[8]
    )
}

/// Green when up, yellow in transition, red when broken.
fn colour_of(state: State) -> Option<&'static str> {
    match state {
        State::Running | State::Ready => Some("32"),
        State::Starting | State::Stopping | State::Backoff => Some("33"),
        State::Failed | State::Invalid => Some("31"),
        _ => None,
    }
}

pub fn render(units: &[UnitStatus], colour: bool) -> String {
    let mut out = row(&HEADER.map(String::from), None);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dash = || "-".to_string();
    for unit in units {
        let uptime = match (
            unit.state,
            unit.since
                .as_deref()
                .and_then(supd::control::clock::parse_rfc3339)
                .map(|d| d.as_secs()),
        ) {
            (State::Running | State::Ready, Some(since)) => {
                human_duration(now.saturating_sub(since))
            }
            _ => dash(),
        };
        let cells = [
            truncate(&unit.name, 16),
            unit.state.to_string(),
            unit.pid.map_or_else(dash, |p| p.to_string()),
            uptime,
            unit.restarts.to_string(),
            unit.cpu_percent.map_or_else(dash, |c| format!("{c:.1}")),
            unit.memory_bytes.map_or_else(dash, human_bytes),
            unit.pids.map_or_else(dash, |p| p.to_string()),
            last_exit(unit),
        ];
        out.push_str(&row(
            &cells,
            colour.then(|| colour_of(unit.state)).flatten(),
        ));
        // The full digest is in --json; 12 digits tell images apart here.
        let image = unit
            .image
            .as_deref()
            .map(|line| match line.split_once(' ') {
                Some((reference, digest)) => {
                    format!("{reference} {}", supd::images::short_digest(digest))
                }
                None => line.to_string(),
            });
        let health = unit.health.as_ref().map(|h| {
            let state = match h.state {
                Health::Starting => "starting",
                Health::Healthy => "healthy",
                Health::Unhealthy => "unhealthy",
            };
            let colour = (h.state == Health::Unhealthy).then_some("31");
            let at = h
                .last_probe
                .as_deref()
                .map(|t| format!(" at {t}"))
                .unwrap_or_default();
            let text = match &h.last_result {
                Some(result) if h.failures > 0 => {
                    format!(
                        "{state} ({} failed in a row, last: {result}{at})",
                        h.failures
                    )
                }
                Some(result) => format!("{state} (last: {result}{at})"),
                None => state.to_string(),
            };
            (text, colour)
        });
        let storage = unit.storage.as_ref().map(storage_line);
        let dropped = unit
            .log_dropped
            .map(|n| format!("{n} output records dropped while the journal did not take them"));
        let details = unit
            .addresses
            .iter()
            .map(|a| ("address", a.as_str(), None))
            .chain(unit.ports.iter().map(|p| ("port", p.as_str(), None)))
            .chain(health.iter().map(|(t, c)| ("health", t.as_str(), *c)))
            .chain(
                unit.status_text
                    .iter()
                    .map(|s| ("status", s.as_str(), None)),
            )
            .chain(image.iter().map(|i| ("image", i.as_str(), None)))
            .chain(storage.iter().map(|(t, c)| ("storage", t.as_str(), *c)))
            .chain(dropped.iter().map(|t| ("log", t.as_str(), Some("33"))))
            .chain(
                unit.rollback
                    .iter()
                    .map(|r| ("image", r.as_str(), Some("33"))),
            )
            .chain(unit.error.iter().map(|e| ("error", e.as_str(), Some("31"))));
        for (label, text, code) in details {
            let line = format!("  {label}: {text}");
            match code.filter(|_| colour) {
                Some(code) => out.push_str(&format!("\x1b[{code}m{line}\x1b[0m\n")),
                None => out.push_str(&format!("{line}\n")),
            }
        }
    }
    out
}

/// `12.0M / 1.0G used (image)`, red with `full` when writes fail.
fn storage_line(
    storage: &supd::control::protocol::StorageStatus,
) -> (String, Option<&'static str>) {
    let limit = human_bytes(storage.limit_bytes);
    let mechanism = match storage.mechanism.as_str() {
        "image" => "ext4 image",
        "project-quota" => "project quota",
        "tmpfs" => "tmpfs",
        other => other,
    };
    match storage.used_bytes {
        Some(used) if storage.full => (
            format!(
                "{} / {limit} used ({mechanism}): full, writes fail with ENOSPC",
                human_bytes(used)
            ),
            Some("31"),
        ),
        Some(used) => (
            format!("{} / {limit} used ({mechanism})", human_bytes(used)),
            None,
        ),
        None => (format!("{limit} ({mechanism})"), None),
    }
}

fn last_exit(unit: &UnitStatus) -> String {
    match &unit.last_exit {
        None => "-".to_string(),
        Some(exit) if exit.oom_killed => "oom-killed".to_string(),
        Some(exit) if exit.failed_check.is_some() => match exit.failed_check {
            Some(FailedCheck::Watchdog) => "watchdog".to_string(),
            _ => "unhealthy".to_string(),
        },
        // Its code (143 after SIGTERM, say) stays in --json.
        Some(exit) if exit.stopped => "stopped".to_string(),
        Some(exit) => match (exit.code, exit.signal) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "-".to_string(),
        },
    }
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

/// At most six characters: 999K, 12.3M, 1.5G.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supd::control::protocol::LastExit;

    #[test]
    fn bytes_fit_six_characters() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(10 << 20), "10.0M");
        assert_eq!(human_bytes(1023 << 30), "1023G");
        assert_eq!(human_bytes(1 << 50), "1024T");
    }

    #[test]
    fn widest_rows_fit_80_columns_and_colour_is_optional() {
        let unit = UnitStatus {
            name: "a-very-long-unit-name-that-goes-on".into(),
            state: State::Stopping,
            pid: Some(4_194_303),
            since: Some("2026-01-01T00:00:00Z".into()),
            restarts: 999,
            last_exit: Some(LastExit {
                code: None,
                signal: Some(15),
                oom_killed: true,
                stopped: false,
                failed_check: None,
            }),
            oom_kills: Some(3),
            cpu_percent: Some(199.9),
            memory_bytes: Some(999 << 30),
            working_set_bytes: None,
            pids: Some(99_999),
            addresses: vec!["10.88.0.2".into()],
            ports: vec!["8080->80/tcp".into()],
            health: Some(supd::control::protocol::HealthStatus {
                state: Health::Unhealthy,
                failures: 3,
                last_probe: None,
                last_result: Some("HTTP 503".into()),
                output: None,
            }),
            status_text: Some("serving".into()),
            image: Some(format!(
                "registry.example/app:1.4 sha256:{}",
                "ab".repeat(32)
            )),
            rollback: None,
            storage: Some(supd::control::protocol::StorageStatus {
                mechanism: "image".into(),
                limit_bytes: 1 << 30,
                used_bytes: Some(1 << 30),
                available_bytes: Some(0),
                full: true,
            }),
            log_dropped: Some(12),
            error: None,
        };
        let plain = render(std::slice::from_ref(&unit), false);
        for line in plain.lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
        assert!(!plain.contains('\x1b'));
        assert!(plain.contains("  status: serving\n"));
        assert!(plain
            .contains("  storage: 1.0G / 1.0G used (ext4 image): full, writes fail with ENOSPC\n"));
        let coloured = render(&[unit], true);
        assert!(coloured.contains("\x1b[33mstopping\x1b[0m"), "{coloured}");
    }
}
