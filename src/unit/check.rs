//! What `supctl validate` adds to loading a unit: every error of a file,
//! not only the first, and the references a unit makes to the machine it
//! will run on (bind sources, the program in its root, a seccomp profile,
//! its dependencies, capabilities supd can grant), which `--offline`
//! leaves out.

use super::{MountKind, Unit, UnitError};
use std::collections::BTreeSet;
use std::path::Path;

/// Each error of one unit file's text: after an error, the top-level key
/// it is under is blanked out (its lines kept, so that the lines of what
/// follows stay right) and the text parsed again. Errors that only say a
/// blanked key is missing are left out.
pub fn all_errors(name: &str, file: &Path, text: &str) -> Vec<UnitError> {
    let mut errors: Vec<UnitError> = Vec::new();
    let mut blanked: Vec<String> = Vec::new();
    let mut current = text.to_string();
    // No unit has more top-level keys than this.
    for _ in 0..64 {
        let error = match super::parse_unit(name, file, &current) {
            Ok(_) => break,
            Err(error) => error,
        };
        let Some(key) = top_level_key(&error) else {
            errors.push(error);
            break;
        };
        if blanked.contains(&key) {
            break;
        }
        if !error.message.starts_with("required") || !blanked.contains(&error.field) {
            errors.push(error);
        }
        match blank_key(&current, &key) {
            Some(next) => current = next,
            None => break,
        }
        blanked.push(key);
    }
    errors
}

/// The top-level key an error is about: the first part of its field, or
/// the key an "unknown field" message names.
fn top_level_key(error: &UnitError) -> Option<String> {
    let first = error.field.split(['.', '[']).next().unwrap_or("");
    if !first.is_empty() {
        return Some(first.to_string());
    }
    let rest = error.message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// `text` with the block of top-level `key` replaced by empty lines.
fn blank_key(text: &str, key: &str) -> Option<String> {
    let starts_block = |line: &str| {
        !line.is_empty() && !line.starts_with([' ', '\t', '#', '-']) && !line.starts_with("...")
    };
    let mut out = Vec::new();
    let mut inside = false;
    let mut found = false;
    for line in text.lines() {
        if starts_block(line) {
            inside = line
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'));
            found |= inside;
        }
        out.push(if inside { "" } else { line });
    }
    found.then(|| out.join("\n") + "\n")
}

/// One finding about what a valid unit refers to: the field and why.
pub type Finding = (String, String);

/// The machine-dependent references of a valid unit. `units` are the
/// names it may depend on; `bounding` the capabilities supd may grant
/// (its own bounding set), when known.
pub fn references(
    unit: &Unit,
    units: &BTreeSet<String>,
    bounding: Option<&BTreeSet<String>>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for dependency in &unit.depends_on {
        if !units.contains(dependency) {
            findings.push((
                "depends_on".into(),
                format!("no unit {dependency} in the unit directories"),
            ));
        }
    }
    for (index, mount) in unit.mounts.iter().enumerate() {
        if let (MountKind::Bind, Some(source)) = (mount.kind, &mount.source) {
            if let Err(e) = std::fs::metadata(source) {
                findings.push((
                    format!("mounts[{index}].source"),
                    format!("{}: {e}", source.display()),
                ));
            }
        }
    }
    if let Some(finding) = program_in_root(unit) {
        findings.push(finding);
    }
    if let super::security::Seccomp::Profile(path) = &unit.security.seccomp {
        if let Err(e) = std::fs::metadata(path) {
            findings.push((
                "security.seccomp".into(),
                format!("{}: {e}", path.display()),
            ));
        }
    }
    if let Some(bounding) = bounding {
        let missing: Vec<&str> = unit
            .security
            .capabilities
            .iter()
            .filter(|c| !bounding.contains(*c))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            findings.push((
                "security.capabilities".into(),
                format!(
                    "supd cannot grant {}: not in its bounding set (its service's CapabilityBoundingSet, or the host's)",
                    missing.join(", ")
                ),
            ));
        }
    }
    findings
}

/// exec's program must be in the rootfs (or a layer); an image unit's
/// only once its image is resolved (its layers filled in).
fn program_in_root(unit: &Unit) -> Option<Finding> {
    let program = unit.exec.first()?;
    let roots: Vec<&Path> = match &unit.rootfs {
        Some(rootfs) => vec![rootfs.as_path()],
        None => unit.layers.iter().map(|p| p.as_path()).collect(),
    };
    if roots.is_empty() {
        return None;
    }
    let path = Path::new(program);
    let candidates: Vec<std::path::PathBuf> = if path.is_absolute() {
        vec![path.to_path_buf()]
    } else {
        let search = unit
            .env
            .get("PATH")
            .map(String::as_str)
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        search
            .split(':')
            .map(|dir| Path::new(dir).join(path))
            .collect()
    };
    let found = roots.iter().any(|root| {
        candidates.iter().any(|candidate| {
            crate::runtime::rootfs::resolve_in_root(root, candidate)
                .ok()
                .and_then(|p| std::fs::metadata(p).ok())
                .is_some_and(|m| m.is_file())
        })
    });
    (!found).then(|| {
        (
            "exec".to_string(),
            format!(
                "{program} is not in the root filesystem ({})",
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// The capabilities in this process's bounding set, as `CAP_` names.
pub fn own_bounding_set() -> Option<BTreeSet<String>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    let mask = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(
        caps::all()
            .into_iter()
            .filter(|c| mask & (1u64 << c.index()) != 0)
            .map(|c| c.to_string())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        all_errors("web", Path::new("/u/web.yaml"), text)
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn every_error_of_a_file_with_its_own_line() {
        let text = "rootfs: /r\nexec: [/x]\nrestart:\n  polcy: always\nstop:\n  timeout: soon\nlogging: { max_size: lots }\nexcec: [/y]\n";
        let found = errors(text);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(
            found[0].starts_with("/u/web.yaml:4:3: restart: unknown field `polcy`"),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|e| e.starts_with("/u/web.yaml:6:")),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|e| e.starts_with("/u/web.yaml:7:")),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|e| e.contains("unknown field `excec`")),
            "{found:#?}"
        );
        assert!(errors("rootfs: /r\nexec: [/x]\n").is_empty());
        // A key blanked for its own error is not then "required".
        let found = errors("rootfs: /r\nexec: /x\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        // A YAML syntax error is the one error.
        let syntax = errors("rootfs: /r\n\texec: [/x]\n");
        assert_eq!(syntax.len(), 1, "{syntax:#?}");
    }

    #[test]
    fn blanking_keeps_the_lines() {
        let text = "a: 1\nb:\n  c: 2\n  d: 3\n# note\ne: 4\n";
        assert_eq!(blank_key(text, "b").unwrap(), "a: 1\n\n\n\n\ne: 4\n");
        assert!(blank_key(text, "zz").is_none());
    }
}
