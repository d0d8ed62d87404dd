//! `supctl events`: what happens, as it happens. Each event goes to every
//! subscribed client's queue (their connections are the loop's like any
//! other); a client that lets too much pile up is dropped, never waited
//! for. The last events are kept for `--since`.

use super::Supervisor;
use crate::control::protocol::{Body, Event, EventKind, Health, LastExit, Response, State};
use std::collections::VecDeque;

/// Events kept for `--since`.
const RECENT: usize = 4096;
/// A subscriber with more than this queued is too slow and is dropped.
const MAX_QUEUED: usize = 1 << 20;

struct Subscriber {
    token: u64,
    /// Empty: every event.
    names: Vec<String>,
}

impl Subscriber {
    fn wants(&self, event: &Event) -> bool {
        self.names.is_empty()
            || event
                .unit
                .as_ref()
                .is_some_and(|unit| self.names.contains(unit))
    }
}

#[derive(Default)]
pub struct EventLog {
    recent: VecDeque<Event>,
    subscribers: Vec<Subscriber>,
}

impl EventLog {
    pub fn is_subscribed(&self, token: u64) -> bool {
        self.subscribers.iter().any(|s| s.token == token)
    }

    pub fn unsubscribe(&mut self, token: u64) {
        self.subscribers.retain(|s| s.token != token);
    }
}

/// An event with only what every kind has.
pub fn event(unit: Option<&str>, kind: EventKind, message: impl Into<String>) -> Event {
    Event {
        time: crate::control::clock::rfc3339_nanos(crate::control::clock::now()),
        unit: unit.map(str::to_string),
        kind,
        message: message.into(),
        from: None,
        to: None,
        exit: None,
        health: None,
    }
}

pub fn state_change(unit: &str, from: State, to: State, why: Option<&str>) -> Event {
    let message = match why {
        Some(why) => format!("{from} -> {to}: {why}"),
        None => format!("{from} -> {to}"),
    };
    Event {
        from: Some(from),
        to: Some(to),
        ..event(Some(unit), EventKind::State, message)
    }
}

pub fn exit(unit: &str, exit: &LastExit) -> Event {
    let mut message = match (exit.code, exit.signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "exited".to_string(),
    };
    if exit.oom_killed {
        message.push_str(" (OOM-killed)");
    }
    if exit.stopped {
        message.push_str(" (stopped by supd)");
    }
    Event {
        exit: Some(exit.clone()),
        ..event(Some(unit), EventKind::Exit, message)
    }
}

pub fn health(unit: &str, health: Health, detail: &str) -> Event {
    let state = match health {
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    };
    let message = match detail {
        "" => state.to_string(),
        detail => format!("{state}: {detail}"),
    };
    Event {
        health: Some(health),
        ..event(Some(unit), EventKind::Health, message)
    }
}

/// `restarting in 2s: exited with code 1`.
pub fn restart_reason(machine: &super::machine::Machine, now: std::time::Duration) -> String {
    let delay = machine
        .deadline()
        .map(|at| at.saturating_sub(now))
        .unwrap_or_default();
    let why = match (machine.error(), machine.last_exit()) {
        (Some(error), _) => error.to_string(),
        (None, Some(exit)) => match exit.failed_check {
            Some(crate::control::protocol::FailedCheck::Unhealthy) => "unhealthy".to_string(),
            Some(crate::control::protocol::FailedCheck::Watchdog) => {
                "no WATCHDOG=1 in time".to_string()
            }
            None => self::exit("", exit).message,
        },
        (None, None) => "it stopped".to_string(),
    };
    format!(
        "restarting in {}: {why}",
        crate::unit::quantity::Span(delay)
    )
}

impl Supervisor {
    /// Keeps the event and queues it for every subscriber that wants it.
    pub(super) fn emit(&mut self, event: Event) {
        let line = Response::new(Body::Event {
            event: event.clone(),
        });
        let mut slow = Vec::new();
        for subscriber in &self.events.subscribers {
            if !subscriber.wants(&event) {
                continue;
            }
            let Some(connection) = self.clients.get_mut(&subscriber.token) else {
                continue;
            };
            connection.send(&line);
            if connection.queued() > MAX_QUEUED {
                slow.push(subscriber.token);
            }
        }
        let tokens: Vec<u64> = self.events.subscribers.iter().map(|s| s.token).collect();
        for token in tokens {
            if slow.contains(&token) {
                log::warn!("events: dropping a client that does not read them");
                self.drop_client(token);
            } else {
                self.update_client(token);
            }
        }
        if self.events.recent.len() >= RECENT {
            self.events.recent.pop_front();
        }
        self.events.recent.push_back(event);
    }

    /// What entries noticed on their own (storage filling up).
    pub(super) fn flush_pending_events(&mut self) {
        let pending: Vec<Event> = self
            .entries
            .values_mut()
            .flat_map(|e| std::mem::take(&mut e.pending_events))
            .collect();
        for event in pending {
            self.emit(event);
        }
    }

    pub(super) fn flush_entry_events(&mut self, name: &str) {
        let pending = self
            .entries
            .get_mut(name)
            .map(|e| std::mem::take(&mut e.pending_events))
            .unwrap_or_default();
        for event in pending {
            self.emit(event);
        }
    }

    /// `supctl events`: the answer, the kept events since `since`, then
    /// each new one. None: the connection stays a subscription (no other
    /// request of it is served).
    pub(super) fn subscribe(
        &mut self,
        token: u64,
        since: Option<String>,
        names: Vec<String>,
    ) -> Option<Response> {
        let since = match since.as_deref().map(crate::control::clock::parse_rfc3339) {
            Some(None) => return Some(Response::error("since: expected an RFC 3339 time")),
            Some(Some(time)) => Some(time),
            None => None,
        };
        let subscriber = Subscriber { token, names };
        let connection = self.clients.get_mut(&token)?;
        connection.send(&Response::new(Body::Subscribed));
        if let Some(since) = since {
            let earlier = self.events.recent.iter().filter(|e| {
                subscriber.wants(e)
                    && crate::control::clock::parse_rfc3339(&e.time).is_some_and(|t| t >= since)
            });
            for event in earlier {
                connection.send(&Response::new(Body::Event {
                    event: event.clone(),
                }));
            }
        }
        self.events.subscribers.push(subscriber);
        None
    }
}
