//! A linear pre-check of YAML nesting. The YAML parser's cost grows with the
//! square of the nesting depth, so a small file of brackets could stall the
//! event loop; a unit never needs more than a handful of levels.

/// The deepest nesting a unit file or drop-in may have.
pub const MAX_DEPTH: usize = 32;

/// Where the nesting first passes `MAX_DEPTH`: (line, column), 1-based.
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut flow = 0usize;
    // Indentation columns of the open block levels.
    let mut indents: Vec<usize> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let content = line.get(indent..).unwrap_or("");
        let mut block = indents.len();
        if flow == 0 && !content.is_empty() && !content.starts_with('#') {
            while indents.last().is_some_and(|&open| open >= indent) {
                indents.pop();
            }
            indents.push(indent);
            block = indents.len();
        }
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        let mut at_line_start = true;
        for (offset, c) in content.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '#') if previous == ' ' || previous == '\t' => break,
                (None, '"' | '\'') if matches!(previous, ' ' | '[' | '{' | ',' | ':') => {
                    quote = Some(c)
                }
                (None, '[' | '{') => flow = flow.saturating_add(1),
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                // `- - x` and `- key: x` open a level per indicator.
                (None, '-' | '?') if at_line_start => block = block.saturating_add(2),
                _ => {}
            }
            if !matches!(c, '-' | '?' | ' ') {
                at_line_start = false;
            }
            previous = c;
            if flow.saturating_add(block) > MAX_DEPTH {
                return Some((index + 1, indent + offset + 1));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_units_pass_and_deep_ones_are_found_early() {
        let unit =
            "rootfs: /r\nexec: [/bin/sh, -c, 'echo [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ x']\n\
                    resources:\n  io:\n    limits:\n      - { device: /dev/vda, read_bps: 1M }\n\
                    # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n\
                    env: {A: \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}\n";
        assert_eq!(too_deep(unit), None);
        let brackets = format!("exec: {}{}\n", "[".repeat(40_000), "]".repeat(40_000));
        assert_eq!(too_deep(&brackets), Some((1, 6 + MAX_DEPTH)));
        let dashes = format!("exec:\n{}x\n", "- ".repeat(100));
        assert!(too_deep(&dashes).is_some());
        let indented: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(
            too_deep(&indented).map(|(line, _)| line),
            Some(MAX_DEPTH + 1)
        );
    }
}
