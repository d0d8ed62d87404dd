//! Seccomp profiles in Docker's JSON format, a documented subset:
//! `defaultAction` and each rule's `action` are SCMP_ACT_ALLOW or
//! SCMP_ACT_ERRNO (EPERM, or `errnoRet`); rules name syscalls in `names`
//! (or `name`).
//! Argument conditions (`args`), capability conditions (`includes`,
//! `excludes`), other actions and unknown syscall names are errors, never
//! silently dropped. `architectures`, when given, must include the
//! target's own (SCMP_ARCH_X86_64, say); its 32-bit compat architecture is
//! covered when listed too (or when the list is absent), and killed
//! otherwise, as libseccomp does.

use super::bpf::{self, ArchVerdicts};
use super::syscalls;
use seccompiler::{BpfProgram, SeccompAction};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    name: Option<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<serde_json::Value>,
    #[serde(default)]
    includes: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    excludes: serde_json::Map<String, serde_json::Value>,
}

fn action(name: &str, errno: Option<u32>) -> Result<SeccompAction, String> {
    match name {
        "SCMP_ACT_ALLOW" => Ok(SeccompAction::Allow),
        "SCMP_ACT_ERRNO" => Ok(SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32))),
        other => Err(format!(
            "action {other} is not supported (use SCMP_ACT_ALLOW or SCMP_ACT_ERRNO)"
        )),
    }
}

pub fn programs(path: &Path) -> Result<Vec<BpfProgram>, String> {
    use crate::files::{read_text, Links, MAX_FILE_BYTES};
    let text = read_text(path, Links::Follow, MAX_FILE_BYTES).map_err(|e| e.to_string())?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(text: &str) -> Result<Vec<BpfProgram>, String> {
    let profile: Profile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let listed = |name: &str| {
        profile.architectures.is_empty() || profile.architectures.iter().any(|a| a == name)
    };
    let native = syscalls::native().name;
    if !listed(native) {
        return Err(format!("architectures does not include {native}"));
    }
    let arches: Vec<&syscalls::Arch> = syscalls::ARCHES.iter().filter(|a| listed(a.name)).collect();
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    let mut actions = vec![BTreeMap::new(); arches.len()];
    for (index, rule) in profile.syscalls.iter().enumerate() {
        if !rule.args.is_empty() || !rule.includes.is_empty() || !rule.excludes.is_empty() {
            return Err(format!(
                "syscalls[{index}]: args, includes and excludes are not supported"
            ));
        }
        let rule_action = action(&rule.action, rule.errno_ret)?;
        if rule_action == default {
            continue;
        }
        for name in rule.names.iter().chain(rule.name.iter()) {
            if !syscalls::known(name) {
                return Err(format!("syscalls[{index}]: unknown syscall {name:?}"));
            }
            // A syscall only some architectures have applies where it exists.
            for (arch, actions) in arches.iter().zip(actions.iter_mut()) {
                if let Some(nr) = arch.number(name) {
                    actions.insert(nr, u32::from(rule_action.clone()));
                }
            }
        }
    }
    if actions.iter().all(BTreeMap::is_empty) && default == SeccompAction::Allow {
        return Ok(Vec::new());
    }
    let arches: Vec<ArchVerdicts> = arches
        .iter()
        .zip(&actions)
        .map(|(arch, actions)| ArchVerdicts::actions(arch.audit, arch.has_x32, actions))
        .collect();
    Ok(vec![bpf::syscall_verdicts(&arches, u32::from(default))?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_subset_and_rejects_the_rest() {
        let deny = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["keyctl","bpf"],"action":"SCMP_ACT_ERRNO"}]}"#;
        assert_eq!(parse(deny).unwrap().len(), 1);
        let native = syscalls::native().name;
        let allow = format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","architectures":["{native}"],"syscalls":[{{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}}]}}"#
        );
        assert_eq!(parse(&allow).unwrap().len(), 1);
        let other = if native == "SCMP_ARCH_X86_64" {
            "SCMP_ARCH_AARCH64"
        } else {
            "SCMP_ARCH_X86_64"
        };
        let foreign =
            format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","architectures":["{other}"]}}"#);
        assert!(parse(&foreign).unwrap_err().contains(native));
        let cases = [
            (
                r#"{"defaultAction":"SCMP_ACT_KILL"}"#,
                "action SCMP_ACT_KILL is not supported",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["nope"],"action":"SCMP_ACT_ERRNO"}]}"#,
                "unknown syscall \"nope\"",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{"index":0}]}]}"#,
                "args, includes and excludes are not supported",
            ),
        ];
        for (text, want) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(want), "{error}");
        }
    }
}
