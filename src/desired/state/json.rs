//! JSON as the application's Python reads it (`json.loads`), for the
//! files it writes into the volume: state, lifecycle and `gateway.json`
//! (docs/reference-image.md, "Differences from the reference image").
//!
//! Beyond strict JSON that means: `NaN`, `Infinity` and `-Infinity` are
//! numbers, a number too large for a float (`1e400`) is infinity, a key
//! that repeats keeps its last value, and nesting is limited only by
//! [`MAX_DEPTH`]. One difference stays: an integer of more than
//! [`MAX_INT_DIGITS`] digits is refused, as Python refuses it.
//!
//! The parser is iterative (an explicit stack, never the call stack), one
//! pass, linear in the input. Only the first [`KEPT_DEPTH`] levels are
//! kept as they are; a container below them is kept as a stand-in that is
//! empty or not as the original was (all that is ever asked of one), so a
//! deep document is never a deep tree either. [`parse_fields`] keeps, of
//! a top-level object, only the values of the keys asked for: a state file
//! is read for two of them, and the rest is checked, never copied.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

/// Deepest nesting read; Python's own limit is about 1,000 levels.
pub const MAX_DEPTH: usize = 10_000;
/// Longest integer Python converts (`sys.get_int_max_str_digits`).
pub const MAX_INT_DIGITS: usize = 4300;
/// Levels kept whole: the top-level object and an object in it.
const KEPT_DEPTH: usize = 2;

/// Why a document is not JSON, with the 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at line {line} column {column}")]
pub struct JsonError {
    pub what: &'static str,
    pub line: usize,
    pub column: usize,
}

/// Parse one document. Non-finite numbers (`NaN`, `±Infinity`, `1e400`)
/// come back as `±f64::MAX`: the callers read a number's kind and whether
/// it is zero, never its value.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    Parser::new(bytes, None).document()
}

/// A document read for some of its top-level keys ([`parse_fields`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Fields {
    /// The top level is an object: the last value of each key asked for,
    /// in the order asked (`None`: the key is absent).
    Object(Vec<Option<Value>>),
    /// The top level is another value, as [`parse`] reads it.
    Other(Value),
}

/// As [`parse`], but of a top-level object only the values of the keys in
/// `names` are kept; the whole document is checked all the same.
pub fn parse_fields(bytes: &[u8], names: &[&str]) -> Result<Fields, JsonError> {
    let mut p = Parser::new(bytes, Some(names));
    Ok(match p.document()? {
        Value::Object(_) => Fields::Object(p.found),
        other => Fields::Other(other),
    })
}

/// What becomes of the next value in the top frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Kept in its container.
    Yes,
    /// Dropped: below the kept levels (the container keeps a stand-in).
    No,
    /// A top-level key asked for ([`parse_fields`]): its index.
    Field(usize),
    /// A top-level key not asked for: checked, not kept.
    Other,
}

enum Frame<'b> {
    Array {
        items: Vec<Value>,
        any: bool,
    },
    Object {
        map: Map<String, Value>,
        key: Cow<'b, str>,
        any: bool,
    },
}

impl Frame<'_> {
    fn add(&mut self, v: Value, kept: bool) {
        match self {
            Frame::Array { items, any } => {
                *any = true;
                if kept {
                    items.push(v);
                }
            }
            Frame::Object { map, key, any } => {
                *any = true;
                if kept {
                    map.insert(std::mem::take(key).into_owned(), v);
                }
            }
        }
    }

    /// The finished container (a stand-in below the kept levels).
    fn finish(self) -> Value {
        match self {
            Frame::Array { items, any } if items.is_empty() && any => {
                Value::Array(vec![Value::Null])
            }
            Frame::Array { items, .. } => Value::Array(items),
            Frame::Object { mut map, any, .. } => {
                if map.is_empty() && any {
                    map.insert(String::new(), Value::Null);
                }
                Value::Object(map)
            }
        }
    }
}

struct Parser<'b> {
    b: &'b [u8],
    at: usize,
    /// The top-level keys asked for ([`parse_fields`]); `None`: all kept.
    fields: Option<&'b [&'b str]>,
    /// Their values, found so far.
    found: Vec<Option<Value>>,
}

impl<'b> Parser<'b> {
    fn new(b: &'b [u8], fields: Option<&'b [&'b str]>) -> Self {
        Parser {
            b,
            at: 0,
            fields,
            found: vec![None; fields.map_or(0, <[_]>::len)],
        }
    }

    fn err(&self, what: &'static str) -> JsonError {
        let upto = &self.b[..self.at.min(self.b.len())];
        let line = 1 + upto.iter().filter(|&&c| c == b'\n').count();
        let start = upto.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        JsonError {
            what,
            line,
            column: self.at - start + 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), JsonError> {
        self.ws();
        if self.peek() != Some(c) {
            return Err(self.err(what));
        }
        self.at += 1;
        Ok(())
    }

    fn document(&mut self) -> Result<Value, JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            self.ws();
            let mut v = match self.peek() {
                Some(open @ (b'[' | b'{')) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.err("nested too deeply"));
                    }
                    self.at += 1;
                    self.ws();
                    let close = if open == b'[' { b']' } else { b'}' };
                    let empty = if open == b'[' {
                        Frame::Array {
                            items: Vec::new(),
                            any: false,
                        }
                    } else {
                        Frame::Object {
                            map: Map::new(),
                            key: Cow::Borrowed(""),
                            any: false,
                        }
                    };
                    if self.peek() == Some(close) {
                        self.at += 1;
                        empty.finish()
                    } else {
                        stack.push(empty);
                        if open == b'{' {
                            self.key(&mut stack)?;
                        }
                        continue 'value;
                    }
                }
                Some(_) => {
                    let keep = self.keeps(&stack);
                    self.scalar(keep)?
                }
                None => return Err(self.err("EOF while parsing a value")),
            };
            // Hand the value to its container, closing those that end.
            loop {
                let keep = self.keeps(&stack);
                let Some(top) = stack.last_mut() else {
                    self.ws();
                    if self.at != self.b.len() {
                        return Err(self.err("trailing characters"));
                    }
                    return Ok(v);
                };
                match keep {
                    Keep::Yes => top.add(v, true),
                    Keep::No => top.add(v, false),
                    Keep::Field(i) => self.found[i] = Some(v),
                    Keep::Other => {}
                }
                self.ws();
                let close = match top {
                    Frame::Array { .. } => b']',
                    Frame::Object { .. } => b'}',
                };
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        if matches!(top, Frame::Object { .. }) {
                            self.key(&mut stack)?;
                        }
                        continue 'value;
                    }
                    Some(c) if c == close => {
                        self.at += 1;
                        v = stack.pop().map(Frame::finish).unwrap_or(Value::Null);
                    }
                    _ => return Err(self.err("expected `,` or a closing bracket")),
                }
            }
        }
    }

    /// Whether the value that comes next in the top frame is kept: within
    /// the kept levels or, with [`parse_fields`], a top-level key asked for.
    fn keeps(&self, stack: &[Frame]) -> Keep {
        match (stack, self.fields) {
            ([Frame::Object { key, .. }], Some(fields)) => fields
                .iter()
                .position(|f| *f == key)
                .map_or(Keep::Other, Keep::Field),
            _ if stack.len() <= KEPT_DEPTH => Keep::Yes,
            _ => Keep::No,
        }
    }

    /// An object's key and its colon, into the top frame.
    fn key(&mut self, stack: &mut [Frame<'b>]) -> Result<(), JsonError> {
        self.ws();
        match self.peek() {
            Some(b'"') => {}
            None => return Err(self.err("EOF while parsing a value")),
            Some(_) => return Err(self.err("key must be a string")),
        }
        let k = self.string()?;
        self.expect(b':', "expected `:`")?;
        if let Some(Frame::Object { key, .. }) = stack.last_mut() {
            *key = k;
        }
        Ok(())
    }

    fn word(&mut self, w: &[u8]) -> bool {
        let found = self.b[self.at..].starts_with(w);
        if found {
            self.at += w.len();
        }
        found
    }

    /// A scalar; a string that is not kept is checked, not copied.
    fn scalar(&mut self, keep: Keep) -> Result<Value, JsonError> {
        let kept = !matches!(keep, Keep::No | Keep::Other);
        let v = match self.peek() {
            Some(b'"') => {
                let s = self.string()?;
                if kept {
                    Value::String(s.into_owned())
                } else {
                    Value::Null
                }
            }
            _ if self.word(b"null") => Value::Null,
            _ if self.word(b"true") => Value::Bool(true),
            _ if self.word(b"false") => Value::Bool(false),
            _ if self.word(b"NaN") || self.word(b"Infinity") => float(f64::MAX),
            _ if self.word(b"-Infinity") => float(-f64::MAX),
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.err("expected value")),
        };
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let n = self.b[self.at..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.at += n;
        n
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, Python's number.
    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int_at = self.at;
        let int_digits = match self.peek() {
            Some(b'0') => {
                self.at += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("invalid number")),
        };
        let mut is_float = false;
        // Python's scanner ends the number where its pattern ends; what
        // follows must then be a separator, which the caller checks.
        if self.peek() == Some(b'.') && self.b.get(self.at + 1).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
            self.digits();
            is_float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.at;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                self.at = save;
            } else {
                is_float = true;
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.at]).unwrap_or("0");
        if !is_float {
            if int_digits > MAX_INT_DIGITS {
                self.at = int_at;
                return Err(self.err("integer of more than 4300 digits"));
            }
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::Number(i.into()));
            }
            if let Ok(u) = text.parse::<u64>() {
                return Ok(Value::Number(u.into()));
            }
        }
        let f: f64 = text.parse().unwrap_or(0.0);
        Ok(float(if f.is_finite() {
            f
        } else {
            f64::MAX.copysign(f)
        }))
    }

    /// A string, borrowed from the input when it has no escape.
    fn string(&mut self) -> Result<Cow<'b, str>, JsonError> {
        self.at += 1; // the opening quote
        let mut decoded: Option<Vec<u8>> = None;
        loop {
            let start = self.at;
            let run = self.b[start..]
                .iter()
                .position(|&c| matches!(c, b'"' | b'\\' | 0..0x20));
            let Some(n) = run else {
                self.at = self.b.len();
                return Err(self.err("EOF while parsing a string"));
            };
            self.at += n;
            let piece = &self.b[start..self.at];
            match self.b[self.at] {
                b'"' => {
                    self.at += 1;
                    let text = match decoded {
                        None => std::str::from_utf8(piece).map(Cow::Borrowed).ok(),
                        Some(mut out) => {
                            out.extend_from_slice(piece);
                            String::from_utf8(out).map(Cow::Owned).ok()
                        }
                    };
                    return text.ok_or_else(|| self.err("invalid UTF-8 in a string"));
                }
                b'\\' => {
                    let out = decoded.get_or_insert_with(Vec::new);
                    out.extend_from_slice(piece);
                    self.at += 1;
                    let ch = self.escape()?;
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => return Err(self.err("control character in a string")),
            }
        }
    }

    /// After a backslash. A lone surrogate (Python keeps it) reads as U+FFFD.
    fn escape(&mut self) -> Result<char, JsonError> {
        let Some(c) = self.peek() else {
            return Err(self.err("EOF while parsing a string"));
        };
        self.at += 1;
        Ok(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if (0xD800..0xDC00).contains(&hi) && self.b[self.at..].starts_with(b"\\u") {
                    let save = self.at;
                    self.at += 2;
                    let lo = self.hex4()?;
                    if (0xDC00..0xE000).contains(&lo) {
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
                    }
                    self.at = save;
                }
                char::from_u32(hi).unwrap_or('\u{FFFD}')
            }
            _ => {
                self.at -= 1;
                return Err(self.err("invalid escape"));
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self.b.get(self.at..self.at + 4);
        let v = h
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match v {
            Some(v) => {
                self.at += 4;
                Ok(v)
            }
            None => Err(self.err("invalid \\u escape")),
        }
    }
}

fn float(f: f64) -> Value {
    Value::Number(Number::from_f64(f).unwrap_or_else(|| 0.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(s: &str) -> Value {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &str) -> String {
        parse(s.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn python_constants_and_huge_numbers_are_numbers() {
        assert_eq!(ok(r#"{"x": NaN}"#), json!({"x": f64::MAX}));
        assert_eq!(
            ok("[Infinity, -Infinity, 1e400, -1e400]"),
            json!([f64::MAX, -f64::MAX, f64::MAX, -f64::MAX])
        );
        assert_eq!(ok("1e-400"), json!(0.0));
        assert_eq!(ok("-0"), json!(0));
        assert_eq!(ok(&"9".repeat(4300)), json!(f64::MAX));
        assert_eq!(
            bad(&format!("[{}]", "1".repeat(4301))),
            "integer of more than 4300 digits at line 1 column 2"
        );
        // Only Python's spellings.
        for s in [
            "+Infinity",
            "nan",
            "inf",
            "-NaN",
            "Infinityx",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
        ] {
            assert!(parse(s.as_bytes()).is_err(), "{s}");
        }
    }

    #[test]
    fn last_duplicate_key_wins_and_strings_decode() {
        assert_eq!(ok(r#"{"a": 1, "b": 2, "a": 3}"#), json!({"a": 3, "b": 2}));
        assert_eq!(ok(r#""a\nb\u00e9\ud83d\ude00\/""#), json!("a\nbé😀/"));
        assert_eq!(ok(r#""\ud800x""#), json!("\u{FFFD}x"));
        assert_eq!(
            bad("\"a\u{1}\""),
            "control character in a string at line 1 column 3"
        );
        assert!(parse(b"\"\xff\"").is_err());
        assert!(parse(br#""\x""#).is_err());
    }

    #[test]
    fn fields_keeps_only_the_keys_asked_for() {
        let doc = r#"{"a": "x", "b\u0020": [1, {"c": 2}], "a": "y", "b ": {"d": "e"}, "z": "w"}"#;
        assert_eq!(
            parse_fields(doc.as_bytes(), &["b ", "q", "a"]).unwrap(),
            Fields::Object(vec![Some(json!({"d": "e"})), None, Some(json!("y"))])
        );
        // The whole document is checked: an error past the kept keys.
        assert_eq!(
            parse_fields(br#"{"a": 1, "z": "\q"}"#, &["a"])
                .unwrap_err()
                .to_string(),
            "invalid escape at line 1 column 17"
        );
        assert_eq!(
            parse_fields(br#"["a"]"#, &["a"]).unwrap(),
            Fields::Other(json!(["a"]))
        );
    }

    #[test]
    fn nesting_to_the_limit_is_read_and_deeper_is_refused() {
        let deep = |n: usize| format!("{{\"x\": {}1{}}}", "[".repeat(n), "]".repeat(n));
        let v = ok(&deep(MAX_DEPTH - 1));
        assert_eq!(v["x"], json!([[null]]));
        assert_eq!(ok(&deep(1000))["x"], json!([[null]]));
        assert_eq!(
            ok(r#"{"g": {"m": [], "n": [[]], "o": {}}}"#),
            json!({"g": {"m": [], "n": [null], "o": {}}})
        );
        assert!(bad(&deep(MAX_DEPTH)).starts_with("nested too deeply"));
        // Far past the limit: refused, never a stack overflow.
        assert!(bad(&"[".repeat(1_000_000)).starts_with("nested too deeply"));
    }

    #[test]
    fn errors_name_the_place() {
        assert_eq!(
            bad("{\"a\": 1,}"),
            "key must be a string at line 1 column 9"
        );
        assert_eq!(bad("{\n \"a\" 1}"), "expected `:` at line 2 column 6");
        assert_eq!(bad("{} x"), "trailing characters at line 1 column 4");
        assert_eq!(bad(""), "EOF while parsing a value at line 1 column 1");
        assert_eq!(
            bad("[1 2]"),
            "expected `,` or a closing bracket at line 1 column 4"
        );
        assert_eq!(bad("tru"), "expected value at line 1 column 1");
    }
}
