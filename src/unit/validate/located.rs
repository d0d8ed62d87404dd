//! Where in a unit file's text an error is: the YAML parser's location,
//! or the line of the key a field names, with serde's messages made
//! readable for an operator (a "did you mean" for a misspelt key).

use super::NOT_A_MAPPING;
use crate::unit::UnitError;
use std::path::Path;

pub(super) fn from_yaml_error(file: &Path, error: &serde_yaml::Error) -> UnitError {
    let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    // yaml_serde says " at line L column C"; the location is printed first.
    let text = error
        .to_string()
        .replacen(&format!(" at line {line} column {column}"), "", 1);
    // Whatever the file is (a link to /etc/shadow, say), its text must not
    // reach the read-only clients who see this error in `status`.
    if text.starts_with("invalid type: ") && text.ends_with("expected struct RawUnit") {
        return UnitError {
            file: file.to_path_buf(),
            line,
            column,
            field: String::new(),
            message: NOT_A_MAPPING.into(),
        };
    }
    let (field, message) = match text.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
        _ => (String::new(), text),
    };
    let message = hide_odd_key(message);
    let message = match did_you_mean(&message) {
        Some(hint) => format!("{message} (did you mean `{hint}`?)"),
        None => message,
    };
    UnitError {
        file: file.to_path_buf(),
        line,
        column,
        field,
        message,
    }
}

/// An unknown key that is not a short word is not echoed: it is more
/// likely a line of some other file (a link to /etc/shadow) than a typo.
fn hide_odd_key(message: String) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message;
    };
    let Some((key, after)) = rest.split_once('`') else {
        return message;
    };
    let word = key.len() <= 40
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if word {
        message
    } else {
        format!("unknown field (not shown: it is not a key name){after}")
    }
}

/// For "unknown field `polcy`, expected `policy` or ..." (and unknown
/// variants) find the closest expected word.
fn did_you_mean(message: &str) -> Option<String> {
    if !message.starts_with("unknown field") && !message.starts_with("unknown variant") {
        return None;
    }
    let mut quoted = message.split('`').skip(1).step_by(2);
    let unknown = quoted.next()?;
    quoted
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, candidate)| {
            *distance <= (candidate.len().max(unknown.len()) / 3).max(1)
        })
        .min()
        .map(|(_, candidate)| candidate.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(current)
            };
            previous = current;
        }
    }
    row[b.len()]
}

/// Cross-field errors have no serde location: find the line of the (dotted)
/// key in the text, falling back to its closest ancestor that is found.
pub(super) fn error_at(file: &Path, text: &str, field: &str, message: String) -> UnitError {
    let (line, column) = locate_key(text, field);
    UnitError {
        file: file.to_path_buf(),
        line,
        column,
        field: field.to_string(),
        message,
    }
}

pub(super) fn locate_key(text: &str, field: &str) -> (usize, usize) {
    let (_, line, column) = locate_key_depth(text, field);
    (line, column)
}

/// The line and column of the deepest component of the dotted `field` found
/// in `text`, and how many components matched.
pub(in crate::unit) fn locate_key_depth(text: &str, field: &str) -> (usize, usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = (0, 0, 0);
    let mut from = 0;
    for (depth, part) in field.split('.').filter(|p| !p.is_empty()).enumerate() {
        let key = part.split('[').next().unwrap_or(part);
        let needle = format!("{key}:");
        let hit = lines
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(index, line)| {
                let code = line.split('#').next().unwrap_or("");
                code.find(&needle)
                    .filter(|&at| at == 0 || !is_key_char(code.as_bytes()[at - 1]))
                    .map(|at| (index, at))
            });
        match hit {
            Some((index, at)) => {
                found = (depth + 1, index + 1, at + 1);
                from = index;
            }
            None => break,
        }
    }
    found
}

fn is_key_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}
