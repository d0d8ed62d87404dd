//! systemd integration (Type=notify): READY=1 after the first full
//! reconcile, STATUS= with a one-line summary, WATCHDOG=1 at half of
//! WATCHDOG_USEC, RELOADING=1 around an explicit reload, STOPPING=1 at
//! shutdown. Without NOTIFY_SOCKET all of it does nothing.

use super::entry::State;
use super::Supervisor;
use sd_notify::NotifyState;
use std::time::Duration;

pub struct Notifier {
    enabled: bool,
    last_status: String,
    /// Half of WATCHDOG_USEC, when the service manager asked for pings.
    watchdog_every: Option<Duration>,
    /// When the next ping is due (monotonic).
    pub watchdog_at: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let watchdog_every = sd_notify::watchdog_enabled()
            .map(|usec| usec.div_f64(2.0))
            .filter(|every| enabled && !every.is_zero());
        Notifier {
            enabled,
            last_status: String::new(),
            watchdog_every,
            watchdog_at: watchdog_every.map(super::deadline_after),
        }
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        // The service manager going away must not stop supd: warn only.
        if let Err(e) = sd_notify::notify(states) {
            log::warn!("cannot notify the service manager: {e}");
        }
    }

    pub fn ready(&self) {
        self.send(&[NotifyState::Ready]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// systemd 253+ pairs RELOADING=1 with the monotonic time; older ones
    /// ignore both. READY=1 ends the reload.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(e) => log::warn!("cannot read the monotonic clock: {e}"),
        }
    }

    pub fn watchdog(&mut self) {
        self.send(&[NotifyState::Watchdog]);
        self.watchdog_at = self.watchdog_every.map(super::deadline_after);
    }

    /// Sends STATUS= when the summary changed since the last one.
    pub fn status(&mut self, summary: String) {
        if self.enabled && summary != self.last_status {
            self.send(&[NotifyState::Status(&summary)]);
            self.last_status = summary;
        }
    }
}

/// The states in the order a summary lists them.
const SUMMARY_ORDER: [State; 9] = [
    State::Ready,
    State::Running,
    State::Starting,
    State::Backoff,
    State::Stopping,
    State::Failed,
    State::Invalid,
    State::Stopped,
    State::Masked,
];

/// "3 running, 1 failed": the states that have units, in a fixed order.
pub fn summary(states: impl Iterator<Item = State>) -> String {
    let mut counts = [0usize; SUMMARY_ORDER.len()];
    for state in states {
        if let Some(index) = SUMMARY_ORDER.iter().position(|s| *s == state) {
            if let Some(count) = counts.get_mut(index) {
                *count = count.saturating_add(1);
            }
        }
    }
    let parts: Vec<String> = SUMMARY_ORDER
        .iter()
        .zip(counts)
        .filter(|(_, count)| *count > 0)
        .map(|(state, count)| format!("{count} {}", state.as_str()))
        .collect();
    if parts.is_empty() {
        "no units".to_string()
    } else {
        parts.join(", ")
    }
}

impl Supervisor {
    pub(super) fn update_status(&mut self) {
        let summary = summary(self.entries.values().map(|e| e.state()));
        self.notifier.status(summary);
    }

    /// A reload asked for by an operator (SIGHUP or `supctl reload`), which
    /// the service manager sees as one.
    pub(super) fn explicit_reload(&mut self) {
        self.notifier.reloading();
        self.reload();
        self.notifier.ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_states_in_a_fixed_order() {
        assert_eq!(summary([].into_iter()), "no units");
        let states = [
            State::Failed,
            State::Running,
            State::Running,
            State::Stopped,
        ];
        assert_eq!(
            summary(states.into_iter()),
            "2 running, 1 failed, 1 stopped"
        );
    }
}
