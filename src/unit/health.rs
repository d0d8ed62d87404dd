//! `health:` and `watchdog:`: how supd tells that a running workload still
//! works, and what it does when it does not.

use super::quantity::Span;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `health:` after validation, with defaults applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures before the unit is unhealthy.
    pub retries: u32,
    /// Failures this soon after the start do not count.
    pub start_period: Duration,
    pub on_unhealthy: OnUnhealthy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// Runs inside the container as `supctl exec` does; exit 0 is healthy.
    Exec(Vec<String>),
    /// GET from the host side into the container's network namespace;
    /// 2xx and 3xx are healthy.
    Http {
        port: u16,
        path: String,
        host: Option<String>,
    },
    /// A TCP connect to the port inside the container's network namespace.
    Tcp { port: u16 },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnhealthy {
    #[default]
    Restart,
    None,
}

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub exec: Option<Vec<String>>,
    pub http: Option<RawHttp>,
    pub tcp: Option<RawTcp>,
    pub interval: Option<Span>,
    pub timeout: Option<Span>,
    pub retries: Option<u32>,
    pub start_period: Option<Span>,
    pub on_unhealthy: Option<OnUnhealthy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub port: Option<u16>,
    pub path: Option<String>,
    pub host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    pub port: Option<u16>,
}

/// (field, message) of the first problem.
pub type Problem = (String, String);

fn problem(field: &str, message: impl Into<String>) -> Problem {
    (field.to_string(), message.into())
}

fn port(port: Option<u16>, field: &str) -> Result<u16, Problem> {
    match port {
        Some(p) if p > 0 => Ok(p),
        Some(_) => Err(problem(field, "must be between 1 and 65535")),
        None => Err(problem(field, "required: the port inside the container")),
    }
}

pub fn health(raw: RawHealth) -> Result<HealthCheck, Problem> {
    let probe = match (raw.exec, raw.http, raw.tcp) {
        (Some(argv), None, None) => {
            if argv.is_empty() || argv[0].is_empty() {
                return Err(problem(
                    "health.exec",
                    "needs a command: [program, args...]",
                ));
            }
            Probe::Exec(argv)
        }
        (None, Some(http), None) => {
            let path = http.path.unwrap_or_else(|| "/".to_string());
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(problem(
                    "health.http.path",
                    format!("{path:?} is not a request path (it starts with / and has no blanks)"),
                ));
            }
            if let Some(host) = &http.host {
                if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(problem(
                        "health.http.host",
                        format!("{host:?} is not a host name"),
                    ));
                }
            }
            Probe::Http {
                port: port(http.port, "health.http.port")?,
                path,
                host: http.host,
            }
        }
        (None, None, Some(tcp)) => Probe::Tcp {
            port: port(tcp.port, "health.tcp.port")?,
        },
        (None, None, None) => {
            return Err(problem("health", "needs one of exec, http or tcp"));
        }
        _ => return Err(problem("health", "takes exactly one of exec, http or tcp")),
    };
    let positive = |span: Option<Span>, field: &str, default: Duration| match span {
        Some(Span(d)) if d.is_zero() => Err(problem(field, "must be longer than 0s")),
        Some(Span(d)) => Ok(d),
        None => Ok(default),
    };
    let interval = positive(raw.interval, "health.interval", DEFAULT_INTERVAL)?;
    let timeout = positive(raw.timeout, "health.timeout", DEFAULT_TIMEOUT.min(interval))?;
    if timeout > interval {
        return Err(problem(
            "health.timeout",
            "must not be longer than health.interval: probes never overlap",
        ));
    }
    let retries = raw.retries.unwrap_or(DEFAULT_RETRIES);
    if retries == 0 {
        return Err(problem("health.retries", "must be 1 or more"));
    }
    Ok(HealthCheck {
        probe,
        interval,
        timeout,
        retries,
        start_period: raw.start_period.map_or(Duration::ZERO, |s| s.0),
        on_unhealthy: raw.on_unhealthy.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use crate::unit::parse_unit;

    fn parse(extra: &str) -> Result<crate::unit::Unit, String> {
        let text = format!("rootfs: /r\nexec: [/x]\n{extra}");
        parse_unit("u", std::path::Path::new("u.yaml"), &text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_check_takes_one_probe_and_gets_defaults() {
        let unit = parse("health: { http: { port: 80, path: /healthz } }\n").unwrap();
        let check = unit.health.unwrap();
        assert_eq!(check.interval, super::DEFAULT_INTERVAL);
        assert_eq!(check.timeout, super::DEFAULT_TIMEOUT);
        assert_eq!(check.retries, 3);
        assert_eq!(check.on_unhealthy, super::OnUnhealthy::Restart);
        let error = parse("health: { tcp: { port: 1 }, exec: [/x] }\n").unwrap_err();
        assert!(
            error.contains("health: takes exactly one of exec, http or tcp"),
            "{error}"
        );
        let error = parse("health: { interval: 1s }\n").unwrap_err();
        assert!(error.contains("needs one of exec, http or tcp"), "{error}");
        let error =
            parse("health:\n  tcp: { port: 1 }\n  interval: 1s\n  timeout: 2s\n").unwrap_err();
        assert!(error.starts_with("u.yaml:6:"), "{error}");
        assert!(error.contains("health.timeout"), "{error}");
        let error = parse("health: { http: { port: 80, path: 'no slash' } }\n").unwrap_err();
        assert!(error.contains("health.http.path"), "{error}");
    }

    #[test]
    fn the_watchdog_needs_notify() {
        let error = parse("watchdog: 10s\n").unwrap_err();
        assert!(error.contains("watchdog: needs notify: true"), "{error}");
        let unit = parse("notify: true\nwatchdog: 10s\n").unwrap();
        assert_eq!(unit.watchdog, Some(std::time::Duration::from_secs(10)));
    }
}
