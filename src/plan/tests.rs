use super::*;
use crate::unit::parse_unit;
use std::path::Path;

fn unit(name: &str, text: &str) -> Unit {
    parse_unit(name, Path::new("t.yaml"), text).unwrap()
}

const BASE: &str = "rootfs: /r\nexec: [/bin/sleep, '100']\n";

fn valid(text: &str) -> Outcome {
    Outcome::Valid(Box::new(unit("a", text)))
}

fn running(text: &str) -> Actual {
    Actual {
        unit: Some(unit("a", text)),
        active: true,
        masked: false,
    }
}

fn one(desired: Option<Outcome>, actual: Option<Actual>) -> Option<Action> {
    let desired: BTreeMap<String, Outcome> = desired.into_iter().map(|d| ("a".into(), d)).collect();
    let actual: BTreeMap<String, Actual> = actual.into_iter().map(|a| ("a".into(), a)).collect();
    plan(&desired, &actual)
        .into_iter()
        .next()
        .map(|(_, action)| action)
}

fn kind(action: &Option<Action>) -> &'static str {
    match action {
        None => "none",
        Some(Action::Start(_)) => "start",
        Some(Action::Restart(_)) => "restart",
        Some(Action::UpdateLive(_)) => "update-live",
        Some(Action::Keep(_)) => "keep",
        Some(Action::Stop(_)) => "stop",
        Some(Action::Mask) => "mask",
        Some(Action::Invalid(_)) => "invalid",
        Some(Action::Remove) => "remove",
    }
}

#[test]
fn every_action() {
    let invalid = Outcome::Invalid(crate::unit::UnitError {
        file: "t.yaml".into(),
        line: 1,
        column: 1,
        field: String::new(),
        message: "bad".into(),
    });
    let stopped = |text: &str| Actual {
        active: false,
        ..running(text)
    };
    let masked = Actual {
        unit: None,
        active: false,
        masked: true,
    };
    let cases: Vec<(&str, Option<Outcome>, Option<Actual>, &str)> = vec![
        ("new unit", Some(valid(BASE)), None, "start"),
        (
            "new disabled unit",
            Some(valid(&format!("{BASE}enabled: false\n"))),
            None,
            "keep",
        ),
        ("unchanged", Some(valid(BASE)), Some(running(BASE)), "keep"),
        (
            "comments and key order only",
            Some(valid("# hi\nexec: [/bin/sleep, '100']   # x\nrootfs: /r\n")),
            Some(running(BASE)),
            "keep",
        ),
        (
            "exec changed",
            Some(valid("rootfs: /r\nexec: [/bin/true]\n")),
            Some(running(BASE)),
            "restart",
        ),
        (
            "changed while stopped (by an operator, the policy or the start limit)",
            Some(valid("rootfs: /r\nexec: [/bin/true]\n")),
            Some(stopped(BASE)),
            "start",
        ),
        (
            "unchanged while stopped",
            Some(valid(BASE)),
            Some(stopped(BASE)),
            "keep",
        ),
        (
            "restart policy only",
            Some(valid(&format!("{BASE}restart: {{policy: always}}\n"))),
            Some(running(BASE)),
            "update-live",
        ),
        (
            "device rules only",
            Some(valid(&format!("{BASE}device_rules: ['c 188:* rwm']\n"))),
            Some(running(BASE)),
            "update-live",
        ),
        (
            "a device passed in",
            Some(valid(&format!("{BASE}devices: [/dev/net/tun]\n"))),
            Some(running(BASE)),
            "update-live",
        ),
        (
            "disabled while running",
            Some(valid(&format!("{BASE}enabled: false\n"))),
            Some(running(BASE)),
            "stop",
        ),
        (
            "re-enabled",
            Some(valid(BASE)),
            Some(stopped(&format!("{BASE}enabled: false\n"))),
            "start",
        ),
        ("file deleted", None, Some(running(BASE)), "remove"),
        (
            "masked while running",
            Some(Outcome::Masked),
            Some(running(BASE)),
            "mask",
        ),
        (
            "still masked",
            Some(Outcome::Masked),
            Some(masked.clone()),
            "none",
        ),
        ("unmasked", Some(valid(BASE)), Some(masked), "start"),
        (
            "became invalid",
            Some(invalid.clone()),
            Some(running(BASE)),
            "invalid",
        ),
        ("never valid", Some(invalid), None, "invalid"),
        ("nothing at all", None, None, "none"),
    ];
    for (what, desired, actual, want) in cases {
        assert_eq!(kind(&one(desired, actual)), want, "{what}");
    }
}

#[test]
fn plans_many_units_independently() {
    let mut desired = BTreeMap::new();
    let mut actual = BTreeMap::new();
    for i in 0..500 {
        let name = format!("u{i}");
        let text = format!("rootfs: /r\nexec: [/bin/echo, '{i}']\n");
        desired.insert(name.clone(), Outcome::Valid(Box::new(unit(&name, &text))));
        actual.insert(
            name.clone(),
            Actual {
                unit: Some(unit(&name, &text)),
                active: true,
                masked: false,
            },
        );
    }
    desired.insert(
        "u7".into(),
        Outcome::Valid(Box::new(unit(
            "u7",
            "rootfs: /r\nexec: [/bin/echo, changed]\n",
        ))),
    );
    let actions = plan(&desired, &actual);
    let changed: Vec<&str> = actions
        .iter()
        .filter(|(_, a)| !matches!(a, Action::Keep(_)))
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(changed, ["u7"]);
}

fn with_deps(name: &str, deps: &[&str]) -> Outcome {
    let text = format!(
        "rootfs: /r\nexec: [/x]\ndepends_on: [{}]\n",
        deps.join(", ")
    );
    Outcome::Valid(Box::new(unit(name, &text)))
}

#[test]
fn cycles_are_rejected_naming_the_units_in_them() {
    let desired: BTreeMap<String, Outcome> = [
        ("a", with_deps("a", &["b"])),
        ("b", with_deps("b", &["c"])),
        ("c", with_deps("c", &["a"])),
        ("d", with_deps("d", &["a"])),
        ("e", with_deps("e", &["missing"])),
        ("x", with_deps("x", &["y"])),
        ("y", with_deps("y", &["x"])),
    ]
    .into_iter()
    .map(|(n, o)| (n.to_string(), o))
    .collect();
    let actions = plan(&desired, &BTreeMap::new());
    let message = |name: &str| match &actions.iter().find(|(n, _)| n == name).unwrap().1 {
        Action::Invalid(e) => e.message.clone(),
        other => format!("{:?}", kind(&Some(other.clone()))),
    };
    assert_eq!(message("a"), "dependency cycle: a -> b -> c -> a");
    assert_eq!(message("b"), "dependency cycle: a -> b -> c -> a");
    assert_eq!(message("x"), "dependency cycle: x -> y -> x");
    assert_eq!(
        message("d"),
        "\"start\"",
        "depending on a cycle is not a cycle"
    );
    assert_eq!(
        message("e"),
        "\"start\"",
        "a missing dependency waits at run time"
    );
}

#[test]
fn self_dependency_is_a_validation_error() {
    let error = parse_unit(
        "a",
        Path::new("a.yaml"),
        "rootfs: /r\nexec: [/x]\ndepends_on: [a]\n",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "a.yaml:3:1: depends_on: a unit cannot depend on itself"
    );
}

#[test]
fn a_storage_size_changes_live_but_adding_or_removing_it_restarts() {
    let state = "rootfs: /r\nvolatile: state\nexec: [/bin/sleep, '100']\n";
    let sized = |size: &str| format!("{state}resources: {{ storage: {{ size: {size} }} }}\n");
    let change = |from: &str, to: &str| kind(&one(Some(valid(to)), Some(running(from))));
    assert_eq!(change(&sized("1G"), &sized("2G")), "update-live");
    assert_eq!(change(&sized("2G"), &sized("1G")), "update-live");
    assert_eq!(change(state, &sized("1G")), "restart", "the layer moves");
    assert_eq!(change(&sized("1G"), state), "restart");
    let overlay = "rootfs: /r\nvolatile: overlay\nexec: [/bin/sleep, '100']\n";
    let tmpfs = |size: &str| format!("{overlay}resources: {{ storage: {{ size: {size} }} }}\n");
    assert_eq!(
        change(&tmpfs("64M"), &tmpfs("128M")),
        "restart",
        "a tmpfs upper is sized at its mount"
    );
}
