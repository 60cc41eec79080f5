//! The few top-level fields a state file is asked for, read without
//! building the JSON document: the rest is parsed and checked by the same
//! parser (same errors, same nesting limit, same number and UTF-8 rules)
//! but nothing of it is kept, so a state file costs no allocation besides
//! the strings asked for.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// What a JSON value is, with the text of a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Null,
    Bool,
    Number,
    Str(String),
    Array,
    Object,
}

impl Field {
    /// As the warnings name it (`a string`, `an object`...).
    pub fn kind(&self) -> &'static str {
        match self {
            Field::Null => "null",
            Field::Bool => "a boolean",
            Field::Number => "a number",
            Field::Str(_) => "a string",
            Field::Array => "an array",
            Field::Object => "an object",
        }
    }
}

/// A parsed document: an object with the value of each key asked for (the
/// last one when a key repeats, as a JSON object built from the text
/// keeps), or what else the document is.
#[derive(Debug, PartialEq, Eq)]
pub enum Doc<const N: usize> {
    Object([Option<Field>; N]),
    Other(Field),
}

/// Parse `bytes` as one JSON document and pick `keys` from it when it is
/// an object.
pub fn parse<const N: usize>(bytes: &[u8], keys: [&str; N]) -> serde_json::Result<Doc<N>> {
    if let Some(doc) = flat(bytes, &keys) {
        return Ok(doc);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let doc = Top { keys }.deserialize(&mut de)?;
    de.end()?;
    Ok(doc)
}

/// The usual state file read by hand: one object whose values are
/// strings without escapes, `null`, `true`, `false` or small integers.
/// `None` for anything else (nesting, escapes, fractions, any error): the
/// parser reads those. What this accepts, the parser reads the same way.
fn flat<const N: usize>(bytes: &[u8], keys: &[&str; N]) -> Option<Doc<N>> {
    let mut r = Flat {
        b: bytes,
        at: 0,
        text: b"",
    };
    let mut found = [const { None }; N];
    r.ws();
    r.eat(b'{')?;
    r.ws();
    if r.eat(b'}').is_none() {
        loop {
            let key = r.string()?;
            r.ws();
            r.eat(b':')?;
            r.ws();
            let value = r.value()?;
            if let Some(i) = keys.iter().position(|k| k.as_bytes() == key) {
                found[i] = Some(match value {
                    Field::Str(_) => Field::Str(String::from_utf8(r.text.to_vec()).ok()?),
                    v => v,
                });
            }
            r.ws();
            match r.next()? {
                b',' => r.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    r.ws();
    (r.at == bytes.len()).then_some(Doc::Object(found))
}

/// The bytes that end the text of a string this reader takes: its closing
/// quote, or what makes it one for the parser (an escape, a control
/// character).
static STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

struct Flat<'b> {
    b: &'b [u8],
    at: usize,
    /// The text of the last string value read.
    text: &'b [u8],
}

impl<'b> Flat<'b> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.b.get(self.at) == Some(&want)).then(|| self.at += 1)
    }

    /// JSON's whitespace.
    fn ws(&mut self) {
        while matches!(self.b.get(self.at), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters, valid UTF-8.
    fn string(&mut self) -> Option<&'b [u8]> {
        self.eat(b'"')?;
        let rest = &self.b[self.at..];
        let end = rest.iter().position(|&c| STOPS[usize::from(c)])?;
        if rest[end] != b'"' {
            return None;
        }
        let s = &rest[..end];
        // ASCII is UTF-8; anything else is checked.
        if !s.is_ascii() {
            std::str::from_utf8(s).ok()?;
        }
        self.at += end + 1;
        self.text = s;
        Some(s)
    }

    fn value(&mut self) -> Option<Field> {
        let word = |r: &mut Self, w: &[u8], f: Field| {
            r.b[r.at..].starts_with(w).then(|| {
                r.at += w.len();
                f
            })
        };
        let v = match *self.b.get(self.at)? {
            b'"' => self.string().map(|_| Field::Str(String::new()))?,
            b'n' => word(self, b"null", Field::Null)?,
            b't' => word(self, b"true", Field::Bool)?,
            b'f' => word(self, b"false", Field::Bool)?,
            b'-' | b'0'..=b'9' => self.integer()?,
            _ => return None,
        };
        // A value ends at whitespace, `,` or `}`; `truex`, `1.5` are not ours.
        matches!(
            self.b.get(self.at),
            Some(b' ' | b'\n' | b'\t' | b'\r' | b',' | b'}')
        )
        .then_some(v)
    }

    /// `-?(0|[1-9][0-9]{0,17})`: fits any integer type, no leading zero.
    fn integer(&mut self) -> Option<Field> {
        let _ = self.eat(b'-');
        let digits = self.b[self.at..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let first = *self.b.get(self.at)?;
        if digits == 0 || digits > 18 || (first == b'0' && digits > 1) {
            return None;
        }
        self.at += digits;
        Some(Field::Number)
    }
}

struct Top<'k, const N: usize> {
    keys: [&'k str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Top<'_, N> {
    type Value = Doc<N>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Doc<N>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Top<'_, N> {
    type Value = Doc<N>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<N>, A::Error> {
        let mut found = [const { None }; N];
        while let Some(at) = map.next_key_seed(Key { keys: &self.keys })? {
            match at {
                Some(i) => found[i] = Some(map.next_value_seed(Kind { text: true })?),
                None => {
                    map.next_value_seed(Kind { text: false })?;
                }
            }
        }
        Ok(Doc::Object(found))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Doc<N>, A::Error> {
        Kind { text: false }.visit_seq(seq).map(Doc::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Doc<N>, E> {
        Ok(Doc::Other(Field::Null))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Doc<N>, E> {
        Ok(Doc::Other(Field::Bool))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Doc<N>, E> {
        Ok(Doc::Other(Field::Number))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Doc<N>, E> {
        Ok(Doc::Other(Field::Number))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Doc<N>, E> {
        Ok(Doc::Other(Field::Number))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Doc<N>, E> {
        // A top-level string's text is never needed.
        Ok(Doc::Other(Field::Str(String::new())))
    }
}

/// A key of the top-level object: the index of the key asked for, if any.
struct Key<'a, 'k> {
    keys: &'a [&'k str],
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, k: &str) -> Result<Option<usize>, E> {
        Ok(self.keys.iter().position(|w| *w == k))
    }
}

/// Any value, checked whole; the text is kept only for a string when
/// `text` (a field asked for).
#[derive(Clone, Copy)]
struct Kind {
    text: bool,
}

impl<'de> DeserializeSeed<'de> for Kind {
    type Value = Field;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Kind {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Field, E> {
        Ok(Field::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field, E> {
        Ok(Field::Bool)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Field, E> {
        Ok(Field::Number)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Field, E> {
        Ok(Field::Number)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Field, E> {
        Ok(Field::Number)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Field, E> {
        Ok(Field::Str(if self.text {
            s.to_owned()
        } else {
            String::new()
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
        let skip = Kind { text: false };
        while seq.next_element_seed(skip)?.is_some() {}
        Ok(Field::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
        let skip = Kind { text: false };
        while map.next_key_seed(Key { keys: &[] })?.is_some() {
            map.next_value_seed(skip)?;
        }
        Ok(Field::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_state_file_is_read_by_hand_and_the_rest_by_the_parser() {
        let keys = ["desired_state", "gateway_state"];
        let usual = br#" {"gateway_state": "running", "pid": -12, "ok": true, "x": null} "#;
        assert_eq!(
            flat(usual, &keys),
            Some(Doc::Object([None, Some(Field::Str("running".into()))]))
        );
        assert_eq!(flat(b"{}", &keys), Some(Doc::Object([None, None])));
        for other in [
            &br#"{"gateway_state": "a\nb"}"#[..],
            br#"{"pid": 1.5}"#,
            br#"{"pid": 01}"#,
            br#"{"a": [1]}"#,
            br#"{"a": 1,}"#,
            br#"{"a": 1} x"#,
            b"[]",
        ] {
            assert_eq!(
                flat(other, &keys),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        // Both ways give the same answer where both answer.
        let via_parser = |b: &[u8]| {
            let mut de = serde_json::Deserializer::from_slice(b);
            let doc = Top { keys }.deserialize(&mut de).unwrap();
            de.end().unwrap();
            doc
        };
        assert_eq!(flat(usual, &keys), Some(via_parser(usual)));
    }
}
