//! `env_file:` files in the syntax of systemd's EnvironmentFile=: one
//! `KEY=VALUE` per line, `#` and `;` comment lines, values in single quotes
//! (literal) or double quotes (`\"`, `\\`, `\$`, `` \` `` escaped), a
//! backslash at the end of a line continues it, quoted parts and plain
//! parts join as in a shell word. `export KEY=VALUE` is read too, as
//! Docker's and shell-style env files write it.

/// (line, message) of the first problem; lines count from 1.
pub type LineError = (usize, String);

pub fn parse(text: &str) -> Result<Vec<(String, String)>, LineError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        // Blank space and comment lines between assignments.
        while let Some(&c) = chars.peek() {
            if c == '\n' {
                line += 1;
                chars.next();
            } else if c.is_whitespace() {
                chars.next();
            } else if c == '#' || c == ';' {
                while chars.next_if(|&c| c != '\n').is_some() {}
            } else {
                break;
            }
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let start = line;
        let mut key = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && c != '\n') {
            key.push(c);
        }
        let key = key.trim();
        let key = key
            .strip_prefix("export")
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .map_or(key, str::trim_start);
        if chars.next() != Some('=') {
            return Err((start, format!("expected KEY=VALUE, found {key:?}")));
        }
        if !valid_name(key) {
            return Err((
                start,
                format!(
                    "{key:?} is not a variable name (letters, digits and _, not first a digit)"
                ),
            ));
        }
        while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
        let value = value(&mut chars, &mut line)?;
        pairs.push((key.to_string(), value));
    }
}

fn valid_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// From after `=` to the end of the assignment's (last) line.
fn value(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    line: &mut usize,
) -> Result<String, LineError> {
    let mut value = String::new();
    // Trailing blanks of a plain part are dropped, quoted ones kept.
    let mut keep = 0;
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                *line += 1;
                break;
            }
            '\'' => {
                let opened = *line;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => {
                            *line += usize::from(c == '\n');
                            value.push(c);
                        }
                        None => return Err((opened, "a single quote is not closed".into())),
                    }
                }
                keep = value.len();
            }
            '"' => {
                let opened = *line;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => *line += 1,
                            Some(c @ ('"' | '\\' | '$' | '`')) => value.push(c),
                            Some(c) => {
                                value.push('\\');
                                *line += usize::from(c == '\n');
                                value.push(c);
                            }
                            None => return Err((opened, "a double quote is not closed".into())),
                        },
                        Some(c) => {
                            *line += usize::from(c == '\n');
                            value.push(c);
                        }
                        None => return Err((opened, "a double quote is not closed".into())),
                    }
                }
                keep = value.len();
            }
            '\\' => match chars.next() {
                Some('\n') => *line += 1,
                Some(c) => {
                    value.push(c);
                    keep = value.len();
                }
                None => {}
            },
            c => {
                value.push(c);
                if !c.is_whitespace() {
                    keep = value.len();
                }
            }
        }
    }
    value.truncate(keep);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_systemd_environment_files() {
        let text = "# comment\n; also a comment\n\nA=1\n  B = two words  \nC='single $x \"q\"'\nD=\"dq \\\"x\\\" \\$HOME \\n\"\nE=a\\\nb\nF=\"multi\nline\"\nexport G=g\nH=x#not-a-comment\nI=\nJ=\"a\"'b'c\n";
        let got = parse(text).unwrap();
        let want = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "single $x \"q\""),
            ("D", "dq \"x\" $HOME \\n"),
            ("E", "ab"),
            ("F", "multi\nline"),
            ("G", "g"),
            ("H", "x#not-a-comment"),
            ("I", ""),
            ("J", "abc"),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("A=1\nnonsense\n").unwrap_err().0, 2);
        assert_eq!(
            parse("A=1\n\nB='open\nC=3\n").unwrap_err(),
            (3, "a single quote is not closed".into())
        );
        assert_eq!(parse("F=\"a\nb\"\n1X=2\n").unwrap_err().0, 3);
        assert!(parse("X-Y=1\n")
            .unwrap_err()
            .1
            .contains("not a variable name"));
    }
}
