//! The health-check and watchdog events (checks.rs).

use super::tests::{code, killed_by, ms, notify_unit, run, settings, T0, TERM};
use super::*;
use crate::unit::RestartPolicy;

fn checked(policy: RestartPolicy) -> Machine {
    let mut machine = Machine::new("db", T0);
    let settings = Settings {
        health_checked: true,
        ..settings(policy)
    };
    machine.configure(settings, T0);
    machine
}

#[test]
fn a_checked_unit_starts_its_dependents_once_healthy() {
    let mut machine = checked(RestartPolicy::Always);
    machine.start(T0, None);
    machine.launched(T0);
    assert_eq!(
        machine.setup_finished(T0),
        vec![],
        "running, not yet healthy"
    );
    assert!(machine.is_up() && !machine.is_up_for_dependents());
    assert_eq!(machine.health_passed(), vec![Effect::StartDependents]);
    assert!(machine.is_up_for_dependents());
    assert_eq!(machine.health_passed(), vec![], "only once");
    machine.health_lost();
    assert!(!machine.is_up_for_dependents());
}

#[test]
fn an_unhealthy_run_is_stopped_and_counts_as_a_failure() {
    // Even a clean exit after the stop signal is a failure: on-failure
    // restarts it, with back-off.
    let mut machine = checked(RestartPolicy::OnFailure);
    run(&mut machine, T0);
    let effects = machine.check_failed(ms(1_000), FailedCheck::Unhealthy, "unhealthy".into());
    assert_eq!(effects, vec![Effect::Signal(TERM)]);
    assert_eq!(machine.state(), State::Stopping);
    assert_eq!(
        machine.deadline(),
        Some(ms(11_000)),
        "SIGKILL after stop.timeout"
    );
    assert_eq!(
        machine.check_failed(ms(1_500), FailedCheck::Unhealthy, "again".into()),
        vec![],
        "once per run"
    );
    machine.exited(ms(2_000), code(0), None);
    assert_eq!(machine.state(), State::Backoff);
    assert_eq!(machine.restarts(), 1);
    let exit = machine.last_exit().unwrap();
    assert_eq!(exit.failed_check, Some(FailedCheck::Unhealthy));
    assert!(!exit.stopped);
    assert_eq!(machine.error(), Some("unhealthy"));
}

#[test]
fn unhealthy_restarts_hit_the_start_limit() {
    let mut machine = checked(RestartPolicy::Always);
    let mut now = T0;
    for _ in 0..3 {
        run(&mut machine, now);
        machine.check_failed(now, FailedCheck::Unhealthy, "unhealthy".into());
        machine.exited(now + ms(10), killed_by(TERM), None);
        now += ms(1_000);
        machine.timer_fired(now);
    }
    assert_eq!(machine.state(), State::Failed, "{:?}", machine.error());
}

#[test]
fn the_watchdog_restarts_a_notify_unit_that_stops_pinging() {
    let mut machine = Machine::new("db", T0);
    let settings = Settings {
        notify: true,
        watchdog: Some(ms(1_000)),
        ..settings(RestartPolicy::Always)
    };
    machine.configure(settings, T0);
    run(&mut machine, T0);
    assert_eq!(
        machine.deadline(),
        Some(T0 + ms(5_000)),
        "start timeout until READY=1"
    );
    machine.notified(T0 + ms(100), true, None);
    assert_eq!(machine.deadline(), Some(T0 + ms(1_100)));
    machine.watchdog_ping(T0 + ms(600));
    assert_eq!(machine.deadline(), Some(T0 + ms(1_600)));
    assert_eq!(machine.timer_fired(T0 + ms(1_100)), vec![], "not due yet");
    assert_eq!(
        machine.timer_fired(T0 + ms(1_600)),
        vec![Effect::Signal(TERM)]
    );
    machine.exited(T0 + ms(1_700), killed_by(TERM), None);
    assert_eq!(machine.state(), State::Backoff);
    assert_eq!(
        machine.last_exit().unwrap().failed_check,
        Some(FailedCheck::Watchdog)
    );
    assert_eq!(machine.error(), Some("no WATCHDOG=1 within 1s"));
}

#[test]
fn watchdog_trigger_restarts_at_once() {
    let mut machine = notify_unit(RestartPolicy::Always);
    run(&mut machine, T0);
    machine.notified(T0, true, None);
    assert_eq!(machine.watchdog_trigger(ms(10)), vec![Effect::Signal(TERM)]);
    assert_eq!(machine.state(), State::Stopping);
}
