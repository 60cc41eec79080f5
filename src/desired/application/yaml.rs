//! The application's `config.yaml` as PyYAML's `safe_load` reads it, for
//! the keys that decide multiplexing (docs/reference-image.md, "The application's own
//! settings"): YAML 1.1 scalars, the last of duplicate keys, merge keys
//! (`<<: *base`) and aliases that share the anchored node.
//!
//! The document becomes a graph of nodes from the parser's events: an
//! alias is the id of the node its anchor names, never a copy. The keys
//! asked for are looked up lazily through merge keys and aliases, with a
//! set of the mappings already visited, so no input, however many aliases
//! or stacked merges it holds, is ever expanded: the work is linear in the
//! input, which is itself bounded (1 MiB).

use std::collections::HashMap;

use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

/// Deepest nesting read. PyYAML composes recursively and gives up near
/// Python's recursion limit; deeper than this is refused the same way.
pub const MAX_DEPTH: usize = 500;

/// The keys a caller may ask for, top-level and under the one mapping key.
pub struct Wanted<'a> {
    pub key: &'a str,
    pub under: &'a str,
}

type Id = usize;

enum Node {
    Scalar(Scalar),
    Seq(Vec<Id>),
    Map(Vec<(Id, Id)>),
}

/// A scalar as PyYAML resolves it (YAML 1.1), kept as far as a caller
/// needs it: a number only by whether it is zero; a date as `Other`.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Number {
        zero: bool,
    },
    Str(String),
    /// A plain `<<`: the merge key.
    Merge,
    /// A timestamp: a value that is true.
    Other,
}

#[derive(Default)]
struct Graph {
    nodes: Vec<Node>,
    root: Option<Id>,
}

/// The document as a JSON value holding what `want` asks for: the
/// top-level mapping with `want.key` and `want.under`, the latter a mapping
/// with only `want.key` when it is one. Every other container is a
/// stand-in that is empty or not as the original (merges included) is.
/// `Err`: why PyYAML would refuse the file.
pub fn value(text: &str, want: &Wanted<'_>) -> Result<Value, YamlError> {
    let g = build(text)?;
    g.check().map_err(YamlError::Refused)?;
    let Some(root) = g.root else {
        return Ok(Value::Null);
    };
    let Node::Map(_) = g.nodes[root] else {
        return Ok(g.value_of(root));
    };
    let mut top = Map::new();
    if let Some(v) = g.lookup(root, want.key) {
        top.insert(want.key.into(), g.value_of(v));
    }
    if let Some(u) = g.lookup(root, want.under) {
        let v = match g.nodes[u] {
            Node::Map(_) => {
                let mut m = Map::new();
                if let Some(v) = g.lookup(u, want.key) {
                    m.insert(want.key.into(), g.value_of(v));
                }
                Value::Object(m)
            }
            _ => g.value_of(u),
        };
        top.insert(want.under.into(), v);
    }
    Ok(Value::Object(top))
}

/// `config.yaml`'s bytes as [`value`] reads them for the multiplexing
/// keys: blank is an empty document, a leading BOM is skipped, anything
/// but UTF-8 is refused.
pub fn app_config(bytes: &[u8], want: &Wanted<'_>) -> Result<Value, YamlError> {
    let bytes = crate::desired::state::strip_bom(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| YamlError::NotUtf8)?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    value(text, want)
}

fn at(m: &yaml_rust2::scanner::Marker) -> At {
    At {
        line: m.line(),
        column: m.col() + 1,
    }
}

/// Where in the file: `line 3 column 7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// Why PyYAML would refuse the file, and where.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("not valid YAML: {0}")]
    Scan(yaml_rust2::ScanError),
    #[error("not valid YAML: expected a single document, found another at {0}")]
    Documents(At),
    #[error("not valid YAML: undefined alias at {0}")]
    UndefinedAlias(At),
    #[error("nested deeper than {MAX_DEPTH} levels at {0}")]
    TooDeep(At),
    #[error("{why} at {at}")]
    RefusedAt { why: Refused, at: At },
    #[error("{0}")]
    Refused(Refused),
}

/// What PyYAML's safe loader has no constructor for.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("not valid YAML for PyYAML: a tag it has no constructor for")]
    Tag,
    #[error("not valid YAML for PyYAML: `=` (the value key) has no constructor")]
    ValueKey,
    #[error("not valid YAML for PyYAML: not a {0}")]
    NotA(String),
    #[error("not valid YAML for PyYAML: expected a mapping or list of mappings for merging")]
    Merge,
    #[error("not valid YAML for PyYAML: a list or mapping as a mapping key")]
    CollectionKey,
}

/// The node graph of the one document in `text`.
fn build(text: &str) -> Result<Graph, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut g = Graph::default();
    let mut anchors: HashMap<usize, Id> = HashMap::new();
    // Open collections, each with the key read for the next value (a mapping).
    let mut open: Vec<(Id, Option<Id>)> = Vec::new();
    let mut documents = 0;
    loop {
        let (ev, mark) = parser.next_token().map_err(YamlError::Scan)?;
        let (id, anchor, collection) = match ev {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::Documents(at(&mark)));
                }
                continue;
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop();
                continue;
            }
            Event::Alias(a) => match anchors.get(&a) {
                Some(&id) => (id, 0, false),
                None => return Err(YamlError::UndefinedAlias(at(&mark))),
            },
            Event::Scalar(text, style, anchor, tag) => {
                let s = scalar(text, style == TScalarStyle::Plain, tag.as_ref())
                    .map_err(|why| refused_at(why, &mark))?;
                (g.push(Node::Scalar(s)), anchor, false)
            }
            Event::SequenceStart(anchor, tag) => {
                collection_tag(tag.as_ref(), "seq").map_err(|w| refused_at(w, &mark))?;
                (g.push(Node::Seq(Vec::new())), anchor, true)
            }
            Event::MappingStart(anchor, tag) => {
                collection_tag(tag.as_ref(), "map").map_err(|w| refused_at(w, &mark))?;
                (g.push(Node::Map(Vec::new())), anchor, true)
            }
        };
        if anchor > 0 {
            anchors.insert(anchor, id);
        }
        g.attach(&mut open, id);
        if collection {
            if open.len() >= MAX_DEPTH {
                return Err(YamlError::TooDeep(at(&mark)));
            }
            open.push((id, None));
        }
    }
    Ok(g)
}

fn refused_at(why: Refused, m: &yaml_rust2::scanner::Marker) -> YamlError {
    YamlError::RefusedAt { why, at: at(m) }
}

/// A collection's tag: none, or the standard one for its kind.
fn collection_tag(tag: Option<&Tag>, kind: &str) -> Result<(), Refused> {
    match tag.map(standard) {
        None => Ok(()),
        Some(Some(t)) if t == kind => Ok(()),
        Some(_) => Err(Refused::Tag),
    }
}

/// The name of a `tag:yaml.org,2002:` tag (`!!str` is `str`); `None` for
/// any other (a local `!tag`, which PyYAML's safe loader refuses).
fn standard(tag: &Tag) -> Option<&str> {
    (tag.handle == "tag:yaml.org,2002:").then_some(tag.suffix.as_str())
}

/// Resolve a scalar as PyYAML does (its implicit resolvers apply to plain
/// scalars only; a quoted one is a string).
fn scalar(text: String, plain: bool, tag: Option<&Tag>) -> Result<Scalar, Refused> {
    match tag {
        None if plain => implicit(text).ok_or(Refused::ValueKey),
        None => Ok(Scalar::Str(text)),
        // The non-specific tag `!`: a string.
        Some(t) if t.handle.is_empty() && t.suffix == "!" => Ok(Scalar::Str(text)),
        Some(t) => match standard(t) {
            Some("str") => Ok(Scalar::Str(text)),
            Some(kind @ ("null" | "bool" | "int" | "float" | "timestamp")) => {
                let s = implicit(text).ok_or(Refused::Tag)?;
                let fits = matches!(
                    (kind, &s),
                    ("null", Scalar::Null)
                        | ("bool", Scalar::Bool(_))
                        | ("int" | "float", Scalar::Number { .. })
                        | ("timestamp", Scalar::Other)
                );
                fits.then_some(s).ok_or_else(|| Refused::NotA(kind.into()))
            }
            Some("binary") => Ok(Scalar::Other),
            _ => Err(Refused::Tag),
        },
    }
}

/// PyYAML's implicit resolution of a plain scalar (YAML 1.1). `None`: the
/// value key `=`, which the safe loader refuses.
fn implicit(text: String) -> Option<Scalar> {
    let t = text.as_str();
    let s = match t {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Scalar::Bool(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Scalar::Bool(false)
        }
        "<<" => Scalar::Merge,
        "=" => return None,
        _ => {
            if let Some(zero) = int_zero(t).or_else(|| float_zero(t)) {
                Scalar::Number { zero }
            } else if timestamp(t) {
                Scalar::Other
            } else {
                return Some(Scalar::Str(text));
            }
        }
    };
    Some(s)
}

fn all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(f)
}

fn unsigned(t: &str) -> &str {
    t.strip_prefix(['-', '+']).unwrap_or(t)
}

/// PyYAML's int: `0b` binary, `0` octal, decimal, `0x` hex, `1:30`
/// sexagesimal, `_` anywhere after the first digit. Whether it is zero.
fn int_zero(t: &str) -> Option<bool> {
    let u = unsigned(t);
    let digits_zero = |d: &str| d.bytes().all(|c| matches!(c, b'0' | b'_' | b':'));
    if let Some(d) = u.strip_prefix("0b") {
        return all(d, |c| matches!(c, b'0' | b'1' | b'_')).then(|| digits_zero(d));
    }
    if let Some(d) = u.strip_prefix("0x") {
        return all(d, |c| c.is_ascii_hexdigit() || c == b'_').then(|| digits_zero(d));
    }
    if u == "0" {
        return Some(true);
    }
    if let Some(d) = u.strip_prefix('0') {
        return all(d, |c| matches!(c, b'0'..=b'7' | b'_')).then(|| digits_zero(d));
    }
    if !u.starts_with(|c: char| matches!(c, '1'..='9')) {
        return None;
    }
    let mut parts = u.split(':');
    let first = parts.next()?;
    if !all(first, |c| c.is_ascii_digit() || c == b'_') {
        return None;
    }
    for p in parts {
        // [0-5]?[0-9]
        let ok = matches!(p.as_bytes(), [b'0'..=b'9'] | [b'0'..=b'5', b'0'..=b'9']);
        if !ok {
            return None;
        }
    }
    Some(digits_zero(u))
}

/// PyYAML's float: `1.5`, `1.`, `.5`, `1.0e+3` (the exponent needs a sign
/// and a dot before it), `1:30.5`, `.inf`, `.nan`. Whether it is zero.
fn float_zero(t: &str) -> Option<bool> {
    let u = unsigned(t);
    if matches!(u, ".inf" | ".Inf" | ".INF") || matches!(t, ".nan" | ".NaN" | ".NAN") {
        return Some(false);
    }
    let (mantissa, exp) = match u.find(['e', 'E']) {
        Some(i) => (&u[..i], Some(&u[i + 1..])),
        None => (u, None),
    };
    if let Some(e) = exp {
        let d = e.strip_prefix(['-', '+'])?;
        if !all(d, |c| c.is_ascii_digit()) {
            return None;
        }
    }
    let (whole, frac) = mantissa.split_once('.')?;
    if !frac.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
        return None;
    }
    let ok = if whole.is_empty() {
        // `.5`: no sign allowed before it in PyYAML's pattern, a digit or `_` after.
        u.len() == t.len() && !frac.is_empty()
    } else if whole.contains(':') {
        exp.is_none() && {
            let mut parts = whole.split(':');
            let first = parts.next().unwrap_or("");
            first.starts_with(|c: char| c.is_ascii_digit())
                && all(first, |c| c.is_ascii_digit() || c == b'_')
                && parts.all(|p| matches!(p.as_bytes(), [b'0'..=b'9'] | [b'0'..=b'5', b'0'..=b'9']))
        }
    } else {
        whole.starts_with(|c: char| c.is_ascii_digit())
            && all(whole, |c| c.is_ascii_digit() || c == b'_')
    };
    ok.then(|| {
        mantissa
            .bytes()
            .all(|c| matches!(c, b'0' | b'_' | b'.' | b':'))
    })
}

/// A date (`2002-12-14`) or a date and time, as PyYAML's timestamp begins.
fn timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 8 && digits(0..4) && b[4] == b'-' && {
        let rest = &t[5..];
        let mut it = rest.splitn(3, ['-', 'T', 't', ' ']);
        let m = it.next().unwrap_or("");
        let d = it.next().unwrap_or("");
        (1..=2).contains(&m.len())
            && m.bytes().all(|c| c.is_ascii_digit())
            && (1..=2).contains(&d.len().min(2))
            && d.bytes().take(2).all(|c| c.is_ascii_digit())
    }
}

impl Graph {
    fn push(&mut self, n: Node) -> Id {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    /// `id` as the next item, key or value of the innermost open
    /// collection, or as the document.
    fn attach(&mut self, open: &mut [(Id, Option<Id>)], id: Id) {
        let Some((parent, key)) = open.last_mut() else {
            self.root = Some(id);
            return;
        };
        match &mut self.nodes[*parent] {
            Node::Seq(items) => items.push(id),
            Node::Map(entries) => match key.take() {
                Some(k) => entries.push((k, id)),
                None => *key = Some(id),
            },
            Node::Scalar(_) => {}
        }
    }

    /// What PyYAML's constructor refuses in a document it parsed: a list
    /// or mapping as a key, a merge key that merges anything but mappings.
    fn check(&self) -> Result<(), Refused> {
        for n in &self.nodes {
            let Node::Map(entries) = n else { continue };
            for &(k, v) in entries {
                match &self.nodes[k] {
                    Node::Scalar(Scalar::Merge) => {
                        let ok = match &self.nodes[v] {
                            Node::Map(_) => true,
                            Node::Seq(items) => {
                                items.iter().all(|&i| matches!(self.nodes[i], Node::Map(_)))
                            }
                            Node::Scalar(_) => false,
                        };
                        if !ok {
                            return Err(Refused::Merge);
                        }
                    }
                    Node::Scalar(_) => {}
                    _ => {
                        return Err(Refused::CollectionKey);
                    }
                }
            }
        }
        Ok(())
    }

    /// The value of `key` in the mapping `map` as PyYAML builds it: its
    /// own last `key` entry, else the first found through its merge keys
    /// (a later `<<` before an earlier one; in a list, the first mapping
    /// first), depth first, each mapping looked at once.
    fn lookup(&self, map: Id, key: &str) -> Option<Id> {
        let mut seen = vec![false; self.nodes.len()];
        let mut todo = vec![map];
        while let Some(m) = todo.pop() {
            if std::mem::replace(&mut seen[m], true) {
                continue;
            }
            let Node::Map(entries) = &self.nodes[m] else {
                continue;
            };
            let own = entries
                .iter()
                .rev()
                .find(|(k, _)| matches!(&self.nodes[*k], Node::Scalar(Scalar::Str(s)) if s == key));
            if let Some(&(_, v)) = own {
                return Some(v);
            }
            // Pushed lowest priority first: the first `<<` first, a list's last item first.
            for (_, v) in entries.iter().filter(|(k, _)| self.is_merge(*k)) {
                match &self.nodes[*v] {
                    Node::Seq(items) => todo.extend(items.iter().rev()),
                    _ => todo.push(*v),
                }
            }
        }
        None
    }

    fn is_merge(&self, k: Id) -> bool {
        matches!(self.nodes[k], Node::Scalar(Scalar::Merge))
    }

    /// Whether the mapping or list `id` is empty once merged.
    fn non_empty(&self, id: Id) -> bool {
        let mut seen = vec![false; self.nodes.len()];
        let mut todo = vec![id];
        while let Some(n) = todo.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            match &self.nodes[n] {
                Node::Seq(items) => return !items.is_empty(),
                Node::Map(entries) => {
                    for &(k, v) in entries {
                        if !self.is_merge(k) {
                            return true;
                        }
                        match &self.nodes[v] {
                            Node::Seq(items) => todo.extend(items),
                            _ => todo.push(v),
                        }
                    }
                }
                Node::Scalar(_) => {}
            }
        }
        false
    }

    /// A node as a JSON value: a scalar as resolved (a number as 0 or 1),
    /// a collection as an empty or one-element stand-in.
    fn value_of(&self, id: Id) -> Value {
        match &self.nodes[id] {
            Node::Scalar(s) => match s {
                Scalar::Null => Value::Null,
                Scalar::Bool(b) => Value::Bool(*b),
                Scalar::Number { zero } => Value::from(u8::from(!zero)),
                Scalar::Str(s) => Value::String(s.clone()),
                Scalar::Merge => Value::String("<<".into()),
                Scalar::Other => Value::from(1),
            },
            Node::Seq(items) if items.is_empty() => Value::Array(Vec::new()),
            Node::Seq(_) => Value::Array(vec![Value::Null]),
            Node::Map(_) => {
                let mut m = Map::new();
                if self.non_empty(id) {
                    m.insert(String::new(), Value::Null);
                }
                Value::Object(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const W: Wanted<'static> = Wanted {
        key: "multiplex_profiles",
        under: "gateway",
    };

    fn v(text: &str) -> Value {
        value(text, &W).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn top(text: &str) -> Value {
        v(text)["multiplex_profiles"].clone()
    }

    #[test]
    fn yaml_1_1_scalars_as_pyyaml_resolves_them() {
        for (text, want) in [
            ("1e3", json!("1e3")),
            ("0o7", json!("0o7")),
            ("017", json!(1)),
            ("00", json!(0)),
            ("1:0", json!(1)),
            ("1_0", json!(1)),
            ("0x0", json!(0)),
            ("0b101", json!(1)),
            ("1.0e+3", json!(1)),
            ("1.0e3", json!("1.0e3")),
            ("0.0", json!(0)),
            (".5", json!(1)),
            ("-.inf", json!(1)),
            (".NaN", json!(1)),
            ("yes", json!(true)),
            ("Off", json!(false)),
            ("y", json!("y")),
            ("~", json!(null)),
            ("", json!(null)),
            ("'yes'", json!("yes")),
            ("\"017\"", json!("017")),
            ("!!str 1", json!("1")),
            ("2002-12-14", json!(1)),
        ] {
            assert_eq!(
                top(&format!("multiplex_profiles: {text}\n")),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn the_last_duplicate_key_wins_and_merge_keys_are_honoured() {
        assert_eq!(
            top("multiplex_profiles: false\nmultiplex_profiles: true\n"),
            json!(true)
        );
        let merged = "base: &base\n  multiplex_profiles: true\ngateway:\n  <<: *base\n";
        assert_eq!(v(merged)["gateway"], json!({"multiplex_profiles": true}));
        // Own keys beat merged ones; a later `<<` beats an earlier one; in
        // a list, the first mapping wins.
        let y = "a: &a {multiplex_profiles: 1}\nb: &b {multiplex_profiles: 0}\n";
        assert_eq!(
            top(&format!("{y}<<: *a\nmultiplex_profiles: off\n")),
            json!(false)
        );
        assert_eq!(top(&format!("{y}<<: *a\n<<: *b\n")), json!(0));
        assert_eq!(top(&format!("{y}<<: [*b, *a]\n")), json!(0));
        assert_eq!(top(&format!("{y}<<: [*a, *b]\n")), json!(1));
        // A quoted `<<` is a plain key.
        assert_eq!(top(&format!("{y}'<<': *a\n")), Value::Null);
        // Emptiness of a merged mapping.
        assert_eq!(
            top("e: &e {}\nf: &f {x: 1}\nmultiplex_profiles: {<<: *e}\n"),
            json!({})
        );
        assert_eq!(
            top("e: &e {}\nf: &f {x: 1}\nmultiplex_profiles: {<<: [*e, *f]}\n"),
            json!({"": null})
        );
    }

    #[test]
    fn what_pyyaml_refuses_is_an_error() {
        for text in [
            "a: 1\n---\nb: 2\n",
            "a: *nothing\n",
            "<<: 1\n",
            "<<: [{a: 1}, 2]\n",
            "? [a]\n: 1\n",
            "a: !custom 1\n",
            "a: !!int x\n",
            "a: [b\n",
            "a: =\n",
        ] {
            assert!(value(text, &W).is_err(), "{text}");
        }
        assert!(app_config(b"\xff: 1\n", &W).is_err());
        assert_eq!(app_config(b" \n", &W).ok(), Some(Value::Null));
        assert_eq!(
            app_config(b"\xEF\xBB\xBFmultiplex_profiles: on\n", &W).unwrap()["multiplex_profiles"],
            json!(true)
        );
        let deep = format!(
            "a:{}\n",
            (1..=MAX_DEPTH + 1)
                .map(|i| format!("\n{}b:", " ".repeat(i)))
                .collect::<String>()
        );
        assert!(
            value(&deep, &W)
                .unwrap_err()
                .to_string()
                .contains("nested deeper than")
        );
    }

    /// A billion-laughs document of `n` levels of ten aliases each.
    pub(crate) fn alias_bomb(levels: usize) -> String {
        let mut y = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..levels {
            let p = i - 1;
            y += &format!("l{i}: &l{i} [{}]\n", vec![format!("*l{p}"); 10].join(", "));
        }
        y += &format!(
            "multiplex_profiles: *l{}\ngateway: {{<<: *m{}}}\n",
            levels - 1,
            0
        );
        y
    }

    #[test]
    fn bombs_are_never_expanded() {
        // 10^30 items if expanded; shared, the lookup sees a list of ten.
        let mut y = String::from("m0: &m0 {multiplex_profiles: yes}\n");
        y += &alias_bomb(30);
        assert_eq!(v(&y)["multiplex_profiles"], json!([null]));
        // 30,000 stacked merges, each mapping merging the one before.
        let mut y = String::from("m0: &m0 {multiplex_profiles: yes}\n");
        for i in 1..30_000 {
            y += &format!("m{i}: &m{i} {{<<: *m{}}}\n", i - 1);
        }
        y += "gateway: {<<: *m29999}\n";
        assert_eq!(v(&y)["gateway"], json!({"multiplex_profiles": true}));
    }
}
