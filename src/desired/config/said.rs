//! What a configuration value's check said when it refused the value.
//!
//! Each check speaks in the configuration's own words where it looks at
//! the value (`expected a whole number (0 or more, without a unit), found
//! the string "256k"`), and returns that text to serde_yaml as a custom
//! error. serde_yaml keeps only the text and prints it behind its own path
//! and after it its own location; [`crate::desired::config::Config::from_yaml`]
//! prints the key and the location itself, so the check also leaves what it
//! said here, for that one caller to take. Nothing reads serde's text.

use std::cell::RefCell;
use std::fmt;

use serde::de;

thread_local! {
    /// The last refusal said on this thread since [`listen`].
    static SAID: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Forget what was said before: a parse starts.
pub(super) fn listen() {
    SAID.with(|s| s.borrow_mut().take());
}

/// What the check that refused the value said, if a check refused it
/// (`None`: serde_yaml itself refused the text, e.g. a YAML syntax error).
pub(super) fn heard() -> Option<String> {
    SAID.with(|s| s.borrow_mut().take())
}

/// Refuse the value being read, saying `message`.
pub(super) fn refuse<E: de::Error>(message: impl fmt::Display) -> E {
    let message = message.to_string();
    SAID.with(|s| *s.borrow_mut() = Some(message.clone()));
    E::custom(message)
}

/// Refuse the value being read: `expected {expected}, found {found}`.
pub(super) fn expected<E: de::Error>(expected: &str, found: Found) -> E {
    refuse(format_args!("expected {expected}, found {found}"))
}

/// What a value turned out to be, in the configuration's words.
#[derive(Debug)]
pub(super) enum Found<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
    Mapping,
    List,
    /// A mapping or a list given where a string is read: serde_yaml refuses
    /// it before the string's check sees which (see [`Text`]).
    Collection,
}

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Null => f.write_str("nothing (null)"),
            Found::Bool(b) => write!(f, "{b}"),
            Found::Int(n) => write!(f, "{n}"),
            Found::Float(x) => write!(f, "{x}"),
            Found::Str(s) => write!(f, "the string {s:?}"),
            Found::Mapping => f.write_str("a mapping"),
            Found::List => f.write_str("a list"),
            Found::Collection => f.write_str("a mapping or a list"),
        }
    }
}

/// A visitor that reads one value of any kind and hands what it found to
/// `accept`; what `accept` refuses (`None`) is said as `expected {what},
/// found ...`. For the values YAML types itself (numbers, booleans, null).
pub(super) struct Any<F> {
    pub what: &'static str,
    pub accept: F,
}

impl<F> Any<F> {
    fn take<T, E: de::Error>(self, found: Found<'_>) -> Result<T, E>
    where
        F: FnOnce(&Found<'_>) -> Option<T>,
    {
        let what = self.what;
        match (self.accept)(&found) {
            Some(v) => Ok(v),
            None => Err(expected(what, found)),
        }
    }
}

impl<'de, T, F: FnOnce(&Found<'_>) -> Option<T>> de::Visitor<'de> for Any<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<T, E> {
        self.take(Found::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        self.take(Found::Int(n.into()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        self.take(Found::Int(n.into()))
    }
    fn visit_i128<E: de::Error>(self, n: i128) -> Result<T, E> {
        self.take(Found::Int(n))
    }
    fn visit_u128<E: de::Error>(self, n: u128) -> Result<T, E> {
        self.take(Found::Int(i128::try_from(n).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E: de::Error>(self, x: f64) -> Result<T, E> {
        self.take(Found::Float(x))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        self.take(Found::Str(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        self.take(Found::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        self.take(Found::Null)
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        self.take(Found::Mapping)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        self.take(Found::List)
    }
}

/// A visitor for a string value, checked by `check` (its `Err` is what is
/// said). The string is read as YAML wrote it (`007`, `~` and `1e3` stay
/// text), so serde_yaml refuses a mapping or a list itself, naming what it
/// expected through [`de::Visitor::expecting`]: the refusal is said there.
pub(super) struct Text<F> {
    pub what: &'static str,
    pub check: F,
}

impl<'de, T, M: fmt::Display, F: FnOnce(&str) -> Result<T, M>> de::Visitor<'de> for Text<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _: de::value::Error = expected(self.what, Found::Collection);
        f.write_str(self.what)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        (self.check)(s).map_err(refuse)
    }
}
