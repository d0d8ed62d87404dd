//! `supctl show`: the effective unit is the files as merged plus the
//! defaults supd applies to what they leave out, written as unit-file
//! keys, so that reading it back gives the same unit.

use super::quantity::Span;
use super::{LogDriver, RestartPolicy, Unit};
use serde_yaml::{Mapping, Value};

fn key(name: &str) -> Value {
    Value::String(name.to_string())
}

fn text(value: impl ToString) -> Value {
    Value::String(value.to_string())
}

/// A size as written in unit files: `64M`, `1G`, or bytes.
pub fn size(bytes: u64) -> String {
    for (shift, suffix) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Sets each `(name, value)` the mapping at `path` (created if missing)
/// does not have.
fn fill(map: &mut Mapping, path: &[&str], entries: Vec<(&str, Value)>) {
    let mut node = map;
    for part in path {
        let entry = node
            .entry(key(part))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !entry.is_mapping() {
            return;
        }
        let Value::Mapping(next) = entry else {
            return;
        };
        node = next;
    }
    for (name, value) in entries {
        node.entry(key(name)).or_insert(value);
    }
}

fn policy(policy: RestartPolicy) -> &'static str {
    match policy {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "never",
    }
}

fn driver(driver: LogDriver) -> &'static str {
    match driver {
        LogDriver::Auto => "auto",
        LogDriver::File => "file",
        LogDriver::Journal => "journal",
    }
}

/// `merged` (the files' YAML) with the defaults of `unit` filled in.
pub fn effective_yaml(merged: &str, unit: &Unit) -> String {
    let mut map = match serde_yaml::from_str::<Value>(merged) {
        Ok(Value::Mapping(map)) => map,
        _ => Mapping::new(),
    };
    let top: Vec<(&str, Value)> = vec![
        ("enabled", Value::Bool(unit.enabled)),
        ("readonly_rootfs", Value::Bool(unit.readonly_rootfs)),
        ("hostname", text(&unit.hostname)),
        ("notify", Value::Bool(unit.notify)),
        ("start_timeout", text(Span(unit.start_timeout))),
    ];
    fill(&mut map, &[], top);
    // What an image's config may give stays unsaid when the unit leaves
    // it to the image.
    let inherit = unit.image.as_ref().map(|i| i.inherit).unwrap_or_default();
    if !inherit.workdir {
        fill(
            &mut map,
            &[],
            vec![("workdir", text(unit.workdir.display()))],
        );
    }
    if !unit.boot {
        fill(&mut map, &[], vec![("init", Value::Bool(unit.init))]);
    }
    let restart = &unit.restart;
    fill(
        &mut map,
        &["restart"],
        vec![
            ("policy", text(policy(restart.policy))),
            ("delay", text(Span(restart.delay))),
            ("max_delay", text(Span(restart.max_delay))),
            ("reset_after", text(Span(restart.reset_after))),
        ],
    );
    fill(
        &mut map,
        &["restart", "start_limit"],
        vec![
            ("burst", Value::Number(restart.start_limit_burst.into())),
            ("interval", text(Span(restart.start_limit_interval))),
        ],
    );
    let mut stop = vec![("timeout", text(Span(unit.stop.timeout)))];
    if !inherit.stop_signal {
        let signal = nix::sys::signal::Signal::try_from(unit.stop.signal).map_or_else(
            |_| Value::Number(unit.stop.signal.into()),
            |s| text(s.as_str()),
        );
        stop.push(("signal", signal));
    }
    fill(&mut map, &["stop"], stop);
    fill(
        &mut map,
        &["logging"],
        vec![
            ("driver", text(driver(unit.logging.driver))),
            ("max_size", text(size(unit.logging.max_size))),
            ("max_files", Value::Number(unit.logging.max_files.into())),
        ],
    );
    if !map.contains_key(key("network")) {
        let mode = serde_json::to_value(unit.network.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "host".into());
        fill(&mut map, &["network"], vec![("mode", text(mode))]);
    }
    if !map.contains_key(key("security")) {
        fill(
            &mut map,
            &["security"],
            vec![(
                "no_new_privileges",
                Value::Bool(unit.security.no_new_privileges),
            )],
        );
    }
    serde_yaml::to_string(&Value::Mapping(map)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn round_trip(text: &str) -> String {
        let unit = super::super::parse_unit("web", Path::new("web.yaml"), text).unwrap();
        let shown = effective_yaml(text, &unit);
        let again = super::super::parse_unit("web", Path::new("web.yaml"), &shown)
            .unwrap_or_else(|e| panic!("{e}\n{shown}"));
        assert_eq!(again, unit, "{shown}");
        shown
    }

    #[test]
    fn the_defaults_read_back_as_the_same_unit() {
        let shown = round_trip("rootfs: /r\nexec: [/bin/sh]\n");
        for line in [
            "enabled: true",
            "hostname: web",
            "init: true",
            "policy: on-failure",
            "delay: 1s",
            "max_delay: 5m",
            "burst: 5",
            "timeout: 10s",
            "signal: SIGTERM",
            "max_size: 10M",
            "mode: host",
            "no_new_privileges: true",
            "start_timeout: 90s",
        ] {
            assert!(shown.contains(line), "{line} in\n{shown}");
        }
        round_trip(
            "rootfs: /r\nexec: [/bin/sh]\nrestart: { policy: always }\nstop: { signal: SIGINT }\n",
        );
        round_trip("rootfs: /r\nvolatile: state\nexec: [/x]\nnetwork: { mode: bridge, address: auto, ports: ['8080:80'] }\nsecurity: { capabilities: { drop: [ALL] } }\nresources: { memory: { max: 64M }, storage: { size: 1G } }\n");
        round_trip("rootfs: /r\nboot: true\n");
        round_trip("image: app:1\n");
        round_trip("rootfs: /r\nexec: [/x]\nlogging: { driver: journal, max_size: 1500000 }\nhealth: { http: { port: 80 } }\n");
    }

    #[test]
    fn sizes_are_written_as_units_read_them() {
        assert_eq!(size(10 << 20), "10M");
        assert_eq!(size(1 << 30), "1G");
        assert_eq!(size(1500), "1500");
        assert_eq!(size(4096), "4K");
    }
}
