//! Drop-ins: `NAME.yaml.d/*.yaml` merged over `NAME.yaml`, maps deeply,
//! lists and scalars replaced. An error in the merged unit is attributed to
//! the last file that set the offending key, with that file's line.

use super::validate::{check_depth, locate_key_depth};
use super::{parse_unit, Unit, UnitError};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// One source file of a unit, in merge order (the unit file first).
#[derive(Clone, Debug)]
pub struct Layer {
    pub path: PathBuf,
    pub text: String,
}

/// Parses the unit file and its drop-ins. Returns the unit and the effective
/// (merged) YAML text.
pub fn parse_layers(name: &str, layers: &[Layer]) -> Result<(Unit, String), UnitError> {
    let Some((first, rest)) = layers.split_first() else {
        return Err(UnitError {
            file: PathBuf::from(format!("{name}.yaml")),
            line: 0,
            column: 0,
            field: String::new(),
            message: "no unit file".into(),
        });
    };
    if rest.is_empty() {
        return parse_unit(name, &first.path, &first.text).map(|unit| (unit, first.text.clone()));
    }
    let mut merged = Value::Null;
    for layer in layers {
        check_depth(&layer.path, &layer.text)?;
        let value: Value = if layer.text.trim().is_empty() {
            Value::Null
        } else {
            serde_yaml::from_str(&layer.text).map_err(|e| {
                parse_unit(name, &layer.path, &layer.text)
                    .err()
                    .unwrap_or_else(|| syntax_error(&layer.path, &e))
            })?
        };
        if !value.is_mapping() && !value.is_null() {
            return Err(UnitError {
                file: layer.path.clone(),
                line: 1,
                column: 1,
                field: String::new(),
                message: super::validate::NOT_A_MAPPING.into(),
            });
        }
        merge(&mut merged, value);
    }
    let text = serde_yaml::to_string(&merged).unwrap_or_default();
    match parse_unit(name, &first.path, &text) {
        Ok(unit) => Ok((unit, text)),
        Err(error) => Err(attribute(error, layers)),
    }
}

fn syntax_error(path: &Path, error: &serde_yaml::Error) -> UnitError {
    let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    UnitError {
        file: path.to_path_buf(),
        line,
        column,
        field: String::new(),
        message: error.to_string(),
    }
}

pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Mapping(base), Value::Mapping(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_mapping() && value.is_mapping() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (base, overlay) => *base = overlay,
    }
}

/// Finds the last layer that mentions the error's field and reports the
/// error at that file and line.
pub(super) fn attribute(mut error: UnitError, layers: &[Layer]) -> UnitError {
    let mut field = error.field.clone();
    if let Some(unknown) = error
        .message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        field = if field.is_empty() {
            unknown.to_string()
        } else {
            format!("{field}.{unknown}")
        };
    }
    // The layer naming most components of the path wins; among equals the
    // later one, since it overrides the earlier.
    let mut best: Option<(usize, (usize, usize), &Layer)> = None;
    for layer in layers.iter().rev() {
        let (depth, line, column) = locate_key_depth(&layer.text, &field);
        if depth > 0 && best.is_none_or(|(best_depth, _, _)| depth > best_depth) {
            best = Some((depth, (line, column), layer));
        }
    }
    match best {
        Some((_, (line, column), layer)) => {
            error.file = layer.path.clone();
            error.line = line;
            error.column = column;
        }
        None => {
            // Blame the unit file itself (the first layer), without a line.
            if let Some(first) = layers.first() {
                error.file = first.path.clone();
            }
            error.line = 0;
            error.column = 0;
        }
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(path: &str, text: &str) -> Layer {
        Layer {
            path: PathBuf::from(path),
            text: text.to_string(),
        }
    }

    #[test]
    fn maps_merge_deeply_and_lists_and_scalars_replace() {
        let layers = [
            layer("web.yaml", "rootfs: /r\nexec: [/bin/a, x]\nenv: {A: '1', B: '2'}\nrestart: {policy: always, delay: 2s}\nmounts: [{type: tmpfs, target: /t}]\n"),
            layer("web.yaml.d/10-env.yaml", "env: {B: '3', C: '4'}\nexec: [/bin/b]\n"),
            layer("web.yaml.d/20-restart.yaml", "restart: {delay: 5s}\nmounts: []\n"),
        ];
        let (unit, text) = parse_layers("web", &layers).unwrap();
        assert_eq!(unit.exec, ["/bin/b"]);
        let env: Vec<(&str, &str)> = unit
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, [("A", "1"), ("B", "3"), ("C", "4")]);
        assert_eq!(unit.restart.policy, crate::unit::RestartPolicy::Always);
        assert_eq!(unit.restart.delay, std::time::Duration::from_secs(5));
        assert!(unit.mounts.is_empty());
        assert!(text.contains("delay: 5s"));
    }

    /// A billion references through nested aliases: refused by the YAML
    /// library's repetition limit, not expanded.
    #[test]
    fn alias_bombs_are_refused_not_expanded() {
        let mut lines = vec![r#"a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]"#.to_string()];
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(",");
            lines.push(format!("a{i}: &a{i} [{refs}]"));
        }
        let base = layer("web.yaml", "rootfs: /r\nexec: [/bin/a]\n");
        let bomb = layer("web.yaml.d/b.yaml", &(lines.join("\n") + "\n"));
        let error = parse_layers("web", &[base, bomb]).unwrap_err();
        assert_eq!(error.file, PathBuf::from("web.yaml.d/b.yaml"));
    }

    #[test]
    fn errors_point_at_the_drop_in_that_caused_them() {
        let base = layer(
            "web.yaml",
            "rootfs: /r\nexec: [/bin/a]\nrestart:\n  policy: always\n",
        );
        let cases = [
            (
                "# hi\nrestart:\n  delay: soon\n",
                "web.yaml.d/a.yaml:3:3: restart.delay: invalid duration",
            ),
            (
                "restart:\n  polcy: never\n",
                "web.yaml.d/a.yaml:2:3: restart: unknown field `polcy`",
            ),
            ("exec: [\n", "web.yaml.d/a.yaml:2:1: did not find expected"),
            (
                "- just a list\n",
                "web.yaml.d/a.yaml:1:1: a unit or drop-in must be a mapping",
            ),
        ];
        for (dropin, want) in cases {
            let error = parse_layers("web", &[base.clone(), layer("web.yaml.d/a.yaml", dropin)])
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(want), "{error}\nwanted {want}");
        }
    }
}
