//! Configuration errors in the configuration's own words: serde speaks of
//! `u64`, `struct StaticConfig` and `unit value`; an operator reads `a whole
//! number`, `a mapping with the keys servicedirs, skip` and `nothing
//! (null)`. Also two checks made on the text before YAML sees it or after it
//! failed: how deep it nests (a parser takes minutes on 100,000 levels), and
//! where a duplicate key really is.

/// Deeper than any configuration needs (it needs 4); refused before parsing.
pub const NESTING_MAX: usize = 32;

/// Rewrite serde's "invalid type: X, expected Y" and "invalid value: X,
/// expected Y" in our words; other messages pass through.
pub fn in_our_words(msg: &str) -> String {
    let Some((head, expected)) = msg.split_once(", expected ") else {
        return msg.to_string();
    };
    let found = head
        .strip_prefix("invalid type: ")
        .or_else(|| head.strip_prefix("invalid value: "));
    let Some(found) = found else {
        return msg.to_string();
    };
    format!(
        "expected {}, found {}",
        expected_words(expected),
        found_words(found)
    )
}

fn expected_words(e: &str) -> String {
    let keys =
        |k: &str| format!("a mapping with the keys {k} (leave the key out for the defaults)");
    match e {
        "struct Config" => "a mapping of configuration keys (user, group, policy, static, \
                            scandir, profiles, boot_log, container); an empty file means all defaults"
            .into(),
        "struct StaticConfig" => keys("servicedirs, skip"),
        "struct ScandirConfig" => keys("path"),
        "struct ProfilesConfig" => keys(
            "home, root, marker, slot_prefix, default_slot, declared, state_file, autostart, \
             transient_running, stale_runtime_files, multiplex, prune, templates",
        ),
        "struct BootLogConfig" => keys("path, rotate_bytes"),
        "struct Templates" => keys("run, finish, log_run"),
        "struct ContainerConfig" => keys(
            "wrapper, dispatcher, program, legacy_command, no_supervise_flag, \
             no_supervise_env, dashboard_commands",
        ),
        "struct Declared" => "a mapping with the keys name and start".into(),
        "u64" | "u32" | "usize" => "a whole number (0 or more, without a unit)".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        other => other.to_string(),
    }
}

fn found_words(f: &str) -> String {
    if f == "unit value" {
        return "nothing (null)".into();
    }
    if f == "map" {
        return "a mapping".into();
    }
    if f == "sequence" {
        return "a list".into();
    }
    for (serde, ours) in [
        ("string ", "the string "),
        ("integer ", ""),
        ("floating point ", ""),
        ("boolean ", ""),
    ] {
        if let Some(rest) = f.strip_prefix(serde) {
            return format!("{ours}{}", rest.trim_matches('`'));
        }
    }
    f.to_string()
}

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

/// Where the second `key` of the mapping that starts at (`line`,
/// `column`) stands, for a duplicate key (serde_yaml reports the mapping's
/// start): its first key for a block mapping, its `{` for a flow one.
/// `None` for anything unexpected.
pub fn duplicate_at(text: &str, line: usize, column: usize, key: &str) -> Option<(usize, usize)> {
    let start = text.lines().nth(line.checked_sub(1)?)?;
    if start.get(column.checked_sub(1)?..)?.starts_with('{') {
        return flow_duplicate_at(text, line, column, key);
    }
    let indent = column.checked_sub(1)?;
    let mut seen = 0;
    for (n, l) in text.lines().enumerate().skip(line.checked_sub(1)?) {
        let trimmed = l.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let here = l.len() - trimmed.len();
        let starts_map = n + 1 == line;
        let here = if starts_map { column - 1 } else { here };
        let body = if starts_map {
            l.get(indent..)?
        } else {
            trimmed
        };
        if here < indent {
            return None;
        }
        if here > indent {
            continue;
        }
        let k = body.split(':').next()?.trim().trim_matches(['"', '\'']);
        if k == key {
            seen += 1;
            if seen == 2 {
                return Some((n + 1, indent + 1));
            }
        }
    }
    None
}

/// [`duplicate_at`] for a flow mapping (`{user: a, user: b}`): the keys
/// at its own depth, after its `{` or a `,`.
fn flow_duplicate_at(text: &str, line: usize, column: usize, key: &str) -> Option<(usize, usize)> {
    let (mut depth, mut seen, mut quote) = (0usize, 0, None::<char>);
    let mut key_start = false;
    for (n, l) in text.lines().enumerate().skip(line - 1) {
        let from = if n + 1 == line { column - 1 } else { 0 };
        for (i, c) in l.char_indices().filter(|(i, _)| *i >= from) {
            if let Some(q) = quote {
                quote = (c != q).then_some(q);
                continue;
            }
            if key_start && depth == 1 && !c.is_whitespace() {
                key_start = false;
                let rest = l[i..].trim_start_matches(['"', '\'']);
                let after = rest
                    .strip_prefix(key)
                    .map(|r| r.trim_start_matches(['"', '\'', ' ']));
                if after.is_some_and(|r| r.starts_with(':')) {
                    seen += 1;
                    if seen == 2 {
                        return Some((n + 1, i + 1));
                    }
                }
            }
            match c {
                '{' | '[' => depth += 1,
                '}' | ']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return None;
                    }
                }
                '"' | '\'' => quote = Some(c),
                _ => {}
            }
            key_start = matches!(c, '{' | ',') && depth == 1 || (key_start && c.is_whitespace());
        }
        key_start = key_start || depth == 1 && l.trim_end().ends_with([',', '{']);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_words_become_ours() {
        assert_eq!(
            in_our_words("invalid type: string \"256k\", expected u64"),
            "expected a whole number (0 or more, without a unit), found the string \"256k\""
        );
        assert_eq!(
            in_our_words("invalid type: integer `3`, expected a boolean"),
            "expected true or false, found 3"
        );
        assert!(
            in_our_words("invalid type: unit value, expected struct StaticConfig")
                .starts_with("expected a mapping with the keys servicedirs, skip")
        );
        assert_eq!(in_our_words("unknown field `x`"), "unknown field `x`");
    }

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

    #[test]
    fn the_second_key_is_found() {
        let text = "user: a\npolicy: strict\nuser: b\n";
        assert_eq!(duplicate_at(text, 1, 1, "user"), Some((3, 1)));
        let text = "profiles:\n  prune: true\n  x:\n    prune: 1\n  prune: false\n";
        assert_eq!(duplicate_at(text, 2, 3, "prune"), Some((5, 3)));
        assert_eq!(
            duplicate_at("{user: a, group: {user: c}, user: b}\n", 1, 1, "user"),
            Some((1, 29))
        );
        assert_eq!(
            duplicate_at(
                "profiles: {prune: true,\n  \"prune\": false}\n",
                1,
                11,
                "prune"
            ),
            Some((2, 3))
        );
        let text = "declared:\n  - name: a\n    name: b\n";
        assert_eq!(duplicate_at(text, 2, 5, "name"), Some((3, 5)));
    }
}
