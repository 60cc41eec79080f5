//! A check made on the configuration's text before YAML sees it: how deep
//! it nests (a parser takes minutes on 100,000 levels).

/// Deeper than any configuration needs (it needs 4); refused before parsing.
pub const NESTING_MAX: usize = 32;

/// The line and column (1-based) where the text nests deeper than
/// [`NESTING_MAX`], if it does. Counts flow collections (`[`, `{`) and
/// block sequence entries started on one line (`- - -`); quoted scalars,
/// comments and block scalars (`|`, `>`) are skipped. Deep nesting by
/// indentation alone is bounded by the file size cap and the parser's own
/// recursion limit.
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut flow = 0usize;
    let mut block_scalar: Option<usize> = None; // indentation of its parent line
    let mut quote: Option<char> = None;
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(parent) = block_scalar {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut seq = 0usize;
        let mut at_token = true;
        let mut leading = quote.is_none() && flow == 0;
        let mut prev = ' ';
        for (i, c) in line.char_indices() {
            if let Some(q) = quote {
                if c == q && !(q == '"' && prev == '\\') {
                    quote = None;
                }
                prev = if prev == '\\' && c == '\\' { ' ' } else { c };
                continue;
            }
            match c {
                '#' if at_token => break,
                '"' | '\'' if at_token => quote = Some(c),
                '-' | '?' if leading && line[i + 1..].starts_with([' ', '\t']) => seq += 1,
                '[' | '{' if at_token || flow > 0 => flow += 1,
                ']' | '}' if flow > 0 => flow -= 1,
                ' ' | '\t' => {}
                _ => leading = false,
            }
            if flow + seq > NESTING_MAX {
                return Some((n + 1, i + 1));
            }
            at_token = matches!(c, ' ' | '\t' | '[' | '{' | ',' | ':' | '-' | '?');
            prev = c;
        }
        let value = line.split(" #").next().unwrap_or("").trim_end();
        if quote.is_none()
            && flow == 0
            && (value.ends_with(['|', '>'])
                || value.rsplit_once([' ', '-', ':']).is_some_and(|(_, tail)| {
                    tail.starts_with(['|', '>'])
                        && tail[1..]
                            .chars()
                            .all(|c| matches!(c, '+' | '-' | '1'..='9'))
                }))
        {
            block_scalar = Some(indent);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_without_parsing() {
        let n = 100_000;
        let deep = format!("user: {}{}\n", "[".repeat(n), "]".repeat(n));
        assert_eq!(too_deep(&deep), Some((1, 7 + NESTING_MAX)));
        let seqs = format!("{}x\n", "- ".repeat(n));
        assert_eq!(too_deep(&seqs), Some((1, 2 * NESTING_MAX + 1)));
        let fine = "static:\n  skip: [\"a[\", 'b{{{', c]\n# [[[[\nprofiles:\n  templates:\n    run: |\n      [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [ [\n";
        assert_eq!(too_deep(fine), None);
    }
}
