//! One test per transition of the per-unit state machine, on a fake clock.

use super::*;
use crate::unit::RestartPolicy;

pub(super) const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub(super) const T0: Duration = Duration::from_secs(1000);
pub(super) const TERM: i32 = libc::SIGTERM;

pub(super) fn settings(policy: RestartPolicy) -> Settings {
    Settings {
        enabled: true,
        notify: false,
        start_timeout: ms(5_000),
        stop_signal: TERM,
        stop_timeout: ms(10_000),
        restart: RestartConfig {
            policy,
            delay: ms(100),
            max_delay: ms(400),
            reset_after: Duration::from_secs(600),
            start_limit_burst: 3,
            start_limit_interval: Duration::from_secs(60),
        },
        watchdog: None,
        health_checked: false,
    }
}

fn configured(policy: RestartPolicy) -> Machine {
    let mut machine = Machine::new("web", T0);
    machine.configure(settings(policy), T0);
    machine
}

pub(super) fn code(code: i32) -> LastExit {
    LastExit {
        code: Some(code),
        signal: None,
        oom_killed: false,
        stopped: false,
        failed_check: None,
    }
}

pub(super) fn killed_by(signal: i32) -> LastExit {
    LastExit {
        code: None,
        signal: Some(signal),
        oom_killed: false,
        stopped: false,
        failed_check: None,
    }
}

/// A configured unit with `notify: true`.
pub(super) fn notify_unit(policy: RestartPolicy) -> Machine {
    let mut machine = Machine::new("db", T0);
    let notify = Settings {
        notify: true,
        ..settings(policy)
    };
    machine.configure(notify, T0);
    machine
}

/// Starts the machine's unit and confirms its setup: `running`.
pub(super) fn run(machine: &mut Machine, now: Duration) {
    assert_eq!(machine.start(now, None), vec![Effect::Launch]);
    machine.launched(now);
    machine.setup_finished(now);
}

fn running(policy: RestartPolicy) -> Machine {
    let mut machine = configured(policy);
    run(&mut machine, T0);
    assert_eq!(machine.state(), State::Running);
    machine
}

/// Crashes a running unit at `now`; returns the effects.
fn crash(machine: &mut Machine, now: Duration) -> Effects {
    machine.exited(now, code(1), None)
}

fn setup_error(step: &str) -> SetupError {
    SetupError::message(step, None::<&str>, "it broke")
}

#[test]
fn a_new_unit_is_stopped_until_its_file_starts_it() {
    let mut machine = Machine::new("web", T0);
    assert_eq!(machine.state(), State::Stopped);
    assert_eq!(machine.start(T0, None), vec![], "no configuration yet");
    machine.configure(settings(RestartPolicy::Always), T0);
    assert_eq!(machine.file_start(T0), vec![Effect::Start]);
    assert_eq!(machine.start(T0, None), vec![Effect::Launch]);
}

#[test]
fn a_launched_container_is_starting_with_a_start_timeout() {
    let mut machine = configured(RestartPolicy::Always);
    machine.start(T0, None);
    machine.launched(T0);
    assert_eq!(machine.state(), State::Starting);
    assert_eq!(machine.deadline(), Some(T0 + ms(5_000)));
    assert!(machine.is_active());
    assert!(!machine.is_up());
}

#[test]
fn a_finished_setup_is_running_and_starts_the_dependents() {
    let mut machine = configured(RestartPolicy::Always);
    machine.start(T0, None);
    machine.launched(T0);
    assert_eq!(machine.setup_finished(T0), vec![Effect::StartDependents]);
    assert_eq!(machine.state(), State::Running);
    assert_eq!(machine.deadline(), None);
    assert!(machine.is_up());
    assert_eq!(machine.setup_finished(T0), vec![], "only once");
}

#[test]
fn a_notify_unit_is_up_only_after_ready() {
    let mut machine = notify_unit(RestartPolicy::Always);
    machine.start(T0, None);
    machine.launched(T0);
    assert_eq!(machine.setup_finished(T0), vec![]);
    assert_eq!(machine.state(), State::Running);
    assert!(!machine.is_up());
    assert!(
        machine.deadline().is_some(),
        "start timeout runs until READY=1"
    );
    let status = Some("loading".to_string());
    assert_eq!(machine.notified(T0, false, status), vec![]);
    assert_eq!(machine.status_text(), Some("loading"));
    assert_eq!(
        machine.notified(T0, true, None),
        vec![Effect::StartDependents]
    );
    assert_eq!(machine.state(), State::Ready);
    assert!(machine.is_up());
    assert_eq!(machine.deadline(), None);
    assert_eq!(
        machine.status_text(),
        Some("loading"),
        "kept without STATUS="
    );
}

#[test]
fn a_ready_before_the_setup_report_closed_is_kept() {
    let mut machine = notify_unit(RestartPolicy::Always);
    machine.start(T0, None);
    machine.launched(T0);
    assert_eq!(machine.notified(T0, true, None), vec![]);
    assert_eq!(machine.state(), State::Starting);
    assert_eq!(machine.setup_finished(T0), vec![Effect::StartDependents]);
    assert_eq!(machine.state(), State::Ready);
    assert_eq!(machine.deadline(), None);
}

#[test]
fn unmet_dependencies_wait_in_starting_then_launch() {
    let mut machine = configured(RestartPolicy::Always);
    let why = Some("waiting for dependencies: db (stopped)".to_string());
    assert_eq!(machine.start(T0, why), vec![]);
    assert_eq!(machine.state(), State::Starting);
    assert!(machine.is_waiting());
    assert!(machine.is_active());
    assert!(
        machine.settled(Goal::Running),
        "a waiting unit answers --wait"
    );
    assert!(!machine.reached(Goal::Running));
    assert_eq!(machine.start(T0, None), vec![Effect::Launch]);
    assert!(!machine.is_waiting());
}

#[test]
fn stopping_a_waiting_unit_leaves_it_stopped() {
    let mut machine = configured(RestartPolicy::Always);
    machine.start(T0, Some("waiting".into()));
    assert_eq!(machine.operator_stop(T0), vec![Effect::HoldStopped]);
    assert_eq!(machine.state(), State::Stopped);
    assert!(!machine.is_active());
}

#[test]
fn an_operator_stop_signals_then_the_exit_is_stopped_not_failed() {
    let mut machine = running(RestartPolicy::Always);
    assert_eq!(
        machine.operator_stop(T0),
        vec![Effect::Signal(TERM), Effect::HoldStopped]
    );
    assert_eq!(machine.state(), State::Stopping);
    assert_eq!(machine.deadline(), Some(T0 + ms(10_000)));
    assert!(!machine.settled(Goal::Stopped));
    assert_eq!(machine.exited(T0 + ms(50), code(143), None), vec![]);
    assert_eq!(machine.state(), State::Stopped);
    assert_eq!(machine.deadline(), None);
    let exit = machine.last_exit().cloned();
    assert!(exit
        .as_ref()
        .is_some_and(|e| e.stopped && e.code == Some(143)));
    assert_eq!(machine.error(), None);
    assert_eq!(machine.restarts(), 0, "a stop is not a restart");
    assert!(machine.settled(Goal::Stopped));
}

#[test]
fn a_second_stop_does_not_signal_again() {
    let mut machine = running(RestartPolicy::Always);
    machine.operator_stop(T0);
    assert_eq!(machine.operator_stop(T0), vec![Effect::HoldStopped]);
}

#[test]
fn the_stop_timeout_kills_every_process() {
    let mut machine = running(RestartPolicy::Always);
    machine.operator_stop(T0);
    assert_eq!(machine.timer_fired(T0 + ms(9_999)), vec![], "not yet");
    assert_eq!(machine.timer_fired(T0 + ms(10_000)), vec![Effect::KillAll]);
    assert_eq!(machine.deadline(), None);
    machine.exited(T0 + ms(10_001), killed_by(libc::SIGKILL), None);
    assert_eq!(machine.state(), State::Stopped);
}

#[test]
fn a_crash_backs_off_with_a_doubling_delay() {
    let mut machine = Machine::new("web", T0);
    let mut generous = settings(RestartPolicy::Always);
    generous.restart.start_limit_burst = 100;
    machine.configure(generous, T0);
    run(&mut machine, T0);
    let mut now = T0;
    for delay in [100, 200, 400, 400] {
        now += ms(10);
        assert_eq!(crash(&mut machine, now), vec![]);
        assert_eq!(machine.state(), State::Backoff);
        assert!(machine.is_active());
        assert_eq!(machine.deadline(), Some(now + ms(delay)), "delay {delay}");
        assert_eq!(machine.timer_fired(now + ms(delay)), vec![Effect::Start]);
        run(&mut machine, now + ms(delay));
        now += ms(delay);
    }
    assert_eq!(machine.restarts(), 4);
}

#[test]
fn a_stop_during_backoff_cancels_the_restart() {
    let mut machine = running(RestartPolicy::Always);
    crash(&mut machine, T0);
    assert_eq!(machine.operator_stop(T0), vec![Effect::HoldStopped]);
    assert_eq!(machine.state(), State::Stopped);
    assert_eq!(machine.deadline(), None);
    assert!(!machine.is_active());
}

#[test]
fn the_start_limit_fails_the_unit_and_persists_it() {
    let mut machine = configured(RestartPolicy::Always);
    let mut now = T0;
    let mut last = Vec::new();
    for _ in 0..3 {
        run(&mut machine, now);
        now += ms(10);
        last = crash(&mut machine, now);
        now += ms(500);
    }
    assert_eq!(machine.state(), State::Failed);
    let error = machine.error().unwrap_or_default().to_string();
    assert!(error.contains("start limit hit: 3 starts"), "{error}");
    assert_eq!(last, vec![Effect::HoldFailed(error)]);
    assert!(!machine.is_active());
    assert_eq!(
        machine.start(now, None),
        vec![Effect::Launch],
        "start is allowed"
    );
}

#[test]
fn a_changed_file_gives_a_failed_unit_a_fresh_start() {
    let mut machine = configured(RestartPolicy::Always);
    for i in 0..3 {
        run(&mut machine, T0 + ms(i));
        crash(&mut machine, T0 + ms(i));
    }
    assert_eq!(machine.state(), State::Failed);
    machine.configure(settings(RestartPolicy::Always), T0);
    assert_eq!(machine.file_start(T0), vec![Effect::Start]);
    assert_eq!(machine.state(), State::Stopped);
    assert_eq!(machine.error(), None);
    run(&mut machine, T0);
    assert_eq!(crash(&mut machine, T0), vec![], "the start limit was reset");
    assert_eq!(machine.state(), State::Backoff);
    assert_eq!(machine.deadline(), Some(T0 + ms(100)), "back-off was reset");
}

#[test]
fn policy_never_fails_on_an_error_and_stops_on_success() {
    let mut machine = running(RestartPolicy::Never);
    let effects = crash(&mut machine, T0);
    assert_eq!(machine.state(), State::Failed);
    assert!(matches!(&effects[..], [Effect::HoldFailed(e)] if e.contains("policy is never")));

    let mut machine = running(RestartPolicy::Never);
    assert_eq!(machine.exited(T0, code(0), None), vec![]);
    assert_eq!(machine.state(), State::Stopped);
    assert!(machine.reached(Goal::Running), "ran to completion");
}

#[test]
fn on_failure_stops_after_a_clean_exit_and_restarts_after_a_signal() {
    let mut machine = running(RestartPolicy::OnFailure);
    assert_eq!(machine.exited(T0, code(0), None), vec![]);
    assert_eq!(machine.state(), State::Stopped);
    run(&mut machine, T0);
    machine.exited(T0, killed_by(libc::SIGSEGV), None);
    assert_eq!(machine.state(), State::Backoff);
}

#[test]
fn a_changed_file_of_an_exited_unit_starts_it_again() {
    let mut machine = running(RestartPolicy::Never);
    machine.exited(T0, code(0), None);
    assert_eq!(machine.state(), State::Stopped);
    assert_eq!(machine.file_start(T0), vec![Effect::Start]);
}

#[test]
fn a_restart_of_a_running_unit_stops_then_starts_it() {
    let mut machine = running(RestartPolicy::Always);
    assert_eq!(
        machine.operator_restart(T0),
        vec![Effect::ReleaseIntent, Effect::Signal(TERM)]
    );
    assert!(!machine.settled(Goal::Running), "until the new run is up");
    assert_eq!(machine.exited(T0, code(143), None), vec![Effect::Start]);
    assert!(machine.last_exit().is_some_and(|e| e.stopped));
    assert_eq!(machine.state(), State::Stopped);
    run(&mut machine, T0);
    assert_eq!(machine.restarts(), 0);
    assert!(machine.settled(Goal::Running) && machine.reached(Goal::Running));
}

#[test]
fn a_restart_of_an_idle_unit_starts_it() {
    let mut machine = configured(RestartPolicy::Always);
    assert_eq!(
        machine.operator_restart(T0),
        vec![Effect::ReleaseIntent, Effect::Start]
    );
}

#[test]
fn a_restart_in_backoff_starts_at_once() {
    let mut machine = running(RestartPolicy::Always);
    crash(&mut machine, T0);
    assert_eq!(
        machine.operator_restart(T0),
        vec![Effect::ReleaseIntent, Effect::Start]
    );
    assert_eq!(machine.state(), State::Stopped);
    assert_eq!(machine.deadline(), None);
}

#[test]
fn a_changed_file_of_a_running_unit_replaces_the_container() {
    let mut machine = running(RestartPolicy::Always);
    machine.configure(settings(RestartPolicy::Always), T0);
    assert_eq!(
        machine.file_changed(T0),
        vec![Effect::ReleaseIntent, Effect::Signal(TERM)]
    );
    assert_eq!(machine.exited(T0, code(143), None), vec![Effect::Start]);
}

#[test]
fn an_operator_start_while_stopping_starts_once_it_is_down() {
    let mut machine = running(RestartPolicy::Always);
    machine.operator_stop(T0);
    assert_eq!(machine.operator_start(T0), vec![Effect::ReleaseIntent]);
    assert_eq!(machine.exited(T0, code(143), None), vec![Effect::Start]);
}

#[test]
fn an_operator_start_of_a_running_unit_does_nothing() {
    let mut machine = running(RestartPolicy::Always);
    assert_eq!(machine.operator_start(T0), vec![]);
    assert_eq!(machine.state(), State::Running);
}

#[test]
fn an_operator_start_clears_failed() {
    let mut machine = running(RestartPolicy::Never);
    crash(&mut machine, T0);
    assert_eq!(
        machine.operator_start(T0),
        vec![Effect::ReleaseIntent, Effect::Start]
    );
    assert_eq!(machine.state(), State::Stopped);
    assert_eq!(machine.error(), None);
}

#[test]
fn a_failed_launch_is_a_failed_start_with_no_exit() {
    let mut machine = running(RestartPolicy::Always);
    crash(&mut machine, T0);
    machine.timer_fired(T0 + ms(100));
    machine.start(T0 + ms(100), None);
    let effects = machine.launch_failed(T0 + ms(100), setup_error("cgroup"));
    assert_eq!(effects, vec![]);
    assert_eq!(machine.state(), State::Backoff);
    assert_eq!(machine.last_exit(), None, "nothing ran");
    let error = machine.error().unwrap_or_default();
    assert!(error.starts_with("start failed: cgroup"), "{error}");
}

#[test]
fn a_setup_error_fails_the_run_even_with_exit_code_zero() {
    let mut machine = configured(RestartPolicy::OnFailure);
    machine.start(T0, None);
    machine.launched(T0);
    machine.exited(T0, code(0), Some(setup_error("mount")));
    assert_eq!(machine.state(), State::Backoff);
    assert!(machine.error().unwrap_or_default().contains("mount"));
    assert!(machine.last_exit().is_some(), "the init did run");
}

#[test]
fn a_setup_that_overruns_start_timeout_is_killed_and_failed() {
    let mut machine = configured(RestartPolicy::Never);
    machine.start(T0, None);
    machine.launched(T0);
    assert_eq!(machine.timer_fired(T0 + ms(5_000)), vec![Effect::KillAll]);
    let effects = machine.exited(T0 + ms(5_001), killed_by(libc::SIGKILL), None);
    assert_eq!(machine.state(), State::Failed);
    let error = machine.error().unwrap_or_default().to_string();
    assert!(
        error.contains("container setup did not finish within 5s"),
        "{error}"
    );
    assert_eq!(effects, vec![Effect::HoldFailed(error)]);
}

#[test]
fn a_notify_unit_without_ready_is_killed_at_start_timeout() {
    let mut machine = notify_unit(RestartPolicy::Never);
    run(&mut machine, T0);
    assert_eq!(machine.timer_fired(T0 + ms(5_000)), vec![Effect::KillAll]);
    machine.exited(T0 + ms(5_001), killed_by(libc::SIGKILL), None);
    let error = machine.error().unwrap_or_default();
    assert!(error.contains("did not send READY=1"), "{error}");
}

#[test]
fn the_status_text_goes_with_the_run() {
    let mut machine = running(RestartPolicy::Always);
    machine.notified(T0, false, Some("saving".into()));
    machine.operator_stop(T0);
    machine.exited(T0, code(0), None);
    assert_eq!(machine.status_text(), None);
    assert_eq!(machine.notified(T0, false, Some("late".into())), vec![]);
    assert_eq!(machine.status_text(), None, "no run, no status");
}

#[test]
fn masking_stops_the_unit_and_a_valid_file_unmasks_it() {
    let mut machine = running(RestartPolicy::Always);
    assert_eq!(machine.mask(T0), vec![Effect::Signal(TERM)]);
    assert_eq!(machine.state(), State::Stopping);
    assert_eq!(machine.exited(T0, code(143), None), vec![]);
    assert_eq!(machine.state(), State::Masked);
    assert_eq!(machine.start(T0, None), vec![], "masked units do not start");
    machine.configure(settings(RestartPolicy::Always), T0);
    assert_eq!(machine.state(), State::Stopped);
    assert!(!machine.is_masked());
}

#[test]
fn masking_an_idle_unit_is_immediate() {
    let mut machine = configured(RestartPolicy::Always);
    assert_eq!(machine.mask(T0), vec![]);
    assert_eq!(machine.state(), State::Masked);
}

#[test]
fn an_invalid_file_keeps_the_configuration_in_force() {
    let mut machine = Machine::new("web", T0);
    machine.invalid(T0);
    assert_eq!(machine.state(), State::Invalid);
    let mut machine = running(RestartPolicy::Always);
    machine.invalid(T0);
    assert_eq!(machine.state(), State::Running);
}

#[test]
fn a_removed_file_stops_then_forgets_the_unit() {
    let mut machine = running(RestartPolicy::Always);
    assert_eq!(
        machine.remove(T0),
        vec![
            Effect::ReleaseIntent,
            Effect::ReleaseLeases,
            Effect::Signal(TERM)
        ]
    );
    // Whatever an operator asks meanwhile, the file is gone.
    machine.operator_restart(T0);
    assert_eq!(machine.exited(T0, code(143), None), vec![Effect::Forget]);

    let mut machine = configured(RestartPolicy::Always);
    let effects = machine.remove(T0);
    assert_eq!(effects.last(), Some(&Effect::Forget));
}

#[test]
fn disabling_stops_without_holding_it_stopped() {
    let mut machine = running(RestartPolicy::Always);
    assert_eq!(machine.disable(T0), vec![Effect::Signal(TERM)]);
}

#[test]
fn reset_failed_starts_an_enabled_failed_unit() {
    let mut machine = running(RestartPolicy::Never);
    crash(&mut machine, T0);
    assert_eq!(
        machine.reset_failed(T0),
        vec![Effect::ReleaseIntent, Effect::Start]
    );
    assert_eq!(machine.state(), State::Stopped);
    assert_eq!(machine.reset_failed(T0), vec![], "only failed units");

    let mut machine = running(RestartPolicy::Never);
    crash(&mut machine, T0);
    let disabled = Settings {
        enabled: false,
        ..settings(RestartPolicy::Never)
    };
    machine.configure(disabled, T0);
    assert_eq!(machine.reset_failed(T0), vec![Effect::ReleaseIntent]);
}

#[test]
fn persisted_intent_keeps_a_unit_stopped_or_failed() {
    let mut machine = configured(RestartPolicy::Always);
    machine.held(Held::Stopped, T0);
    assert_eq!(machine.state(), State::Stopped);
    assert!(!machine.is_active());
    machine.held(Held::Failed("start limit hit".into()), T0);
    assert_eq!(machine.state(), State::Failed);
    assert_eq!(machine.error(), Some("start limit hit"));
}

#[test]
fn shutdown_stops_and_cancels_a_pending_restart() {
    let mut machine = running(RestartPolicy::Always);
    machine.operator_restart(T0);
    assert_eq!(machine.shutdown(T0), vec![], "already signalled");
    assert_eq!(machine.exited(T0, code(143), None), vec![], "no new start");
    assert_eq!(machine.state(), State::Stopped);

    let mut machine = running(RestartPolicy::Always);
    assert_eq!(machine.shutdown(T0), vec![Effect::Signal(TERM)]);
}

#[test]
fn a_refused_live_update_is_the_unit_error_until_one_applies() {
    let mut machine = running(RestartPolicy::Always);
    machine.live_update(Err("EBUSY".into()));
    assert_eq!(machine.error(), Some("resources not applied: EBUSY"));
    machine.live_update(Ok(()));
    assert_eq!(machine.error(), None);
}

#[test]
fn the_time_in_state_follows_the_last_transition() {
    let mut machine = configured(RestartPolicy::Always);
    run(&mut machine, T0 + ms(100));
    assert_eq!(machine.in_state_for(T0 + ms(350)), ms(250));
    machine.invalid(T0 + ms(400));
    assert_eq!(machine.in_state_for(T0 + ms(500)), ms(400), "no transition");
}

#[test]
fn a_snapshot_restores_the_same_machine() {
    let mut machine = running(RestartPolicy::Always);
    crash(&mut machine, T0);
    machine.timer_fired(T0 + ms(100));
    run(&mut machine, T0 + ms(100));
    machine.notified(T0 + ms(100), false, Some("busy".into()));
    let snapshot = machine.snapshot();
    assert!(snapshot.past_setup());
    let restored = Machine::restore(
        "web",
        snapshot.clone(),
        settings(RestartPolicy::Always),
        true,
    );
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(restored.restarts(), 1);
    assert_eq!(restored.status_text(), Some("busy"));
    // The back-off history came along: the next crash waits twice as long.
    let mut restored = restored;
    crash(&mut restored, T0 + ms(200));
    assert_eq!(restored.deadline(), Some(T0 + ms(400)));
}

#[test]
fn a_container_in_its_setup_is_not_adoptable() {
    let mut machine = configured(RestartPolicy::Always);
    machine.start(T0, None);
    machine.launched(T0);
    assert!(!machine.snapshot().past_setup());
    let idle = Machine::restore(
        "web",
        machine.snapshot(),
        settings(RestartPolicy::Always),
        false,
    );
    assert!(!idle.snapshot().past_setup(), "no run without `with_run`");
}
