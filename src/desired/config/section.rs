//! The configuration's mappings (the whole file, `static`, `profiles`,
//! `profiles.templates`, a `profiles.declared` entry...), read so that
//! what is wrong with one is said where it is checked: a value that is no
//! mapping, a key it does not have, a key given twice (at that key), a
//! required key left out. The keys themselves are the fields the derived
//! `Deserialize` declares; the values are read by it.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

use super::said::{self, Found};

/// A mapping of the configuration.
pub(super) trait Section: for<'de> Deserialize<'de> {
    /// What is expected, said when something else is found.
    const EXPECTING: &'static str;
    /// The keys that must be given (the others have defaults).
    const REQUIRED: &'static [&'static str] = &[];
}

/// A section, read as [`Section`] says.
pub(super) struct Sectioned<T>(pub T);

impl<'de, T: Section> Deserialize<'de> for Sectioned<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SectionVisitor(PhantomData))
            .map(Sectioned)
    }
}

/// `deserialize_with` for a field that is a section.
pub(super) fn section<'de, D: de::Deserializer<'de>, T: Section>(d: D) -> Result<T, D::Error> {
    Sectioned::deserialize(d).map(|s| s.0)
}

/// `deserialize_with` for a list of sections.
pub(super) fn section_list<'de, D: de::Deserializer<'de>, T: Section>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    let list: Vec<Sectioned<T>> = super::values::list(d)?;
    Ok(list.into_iter().map(|s| s.0).collect())
}

struct SectionVisitor<T>(PhantomData<T>);

impl<T: Section> SectionVisitor<T> {
    fn refuse<V, E: de::Error>(found: Found<'_>) -> Result<V, E> {
        Err(said::expected(T::EXPECTING, found))
    }
}

impl<'de, T: Section> Visitor<'de> for SectionVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let keys = Keys {
            map,
            known: fields::<T>(),
            required: T::REQUIRED,
            seen: Vec::new(),
        };
        T::deserialize(de::value::MapAccessDeserializer::new(keys))
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<T, E> {
        Self::refuse(Found::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        Self::refuse(Found::Int(n.into()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Self::refuse(Found::Int(n.into()))
    }
    fn visit_f64<E: de::Error>(self, x: f64) -> Result<T, E> {
        Self::refuse(Found::Float(x))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        Self::refuse(Found::Str(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Self::refuse(Found::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Self::refuse(Found::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        Self::refuse(Found::List)
    }
}

/// The keys of a section's mapping, each checked as it is read (so that a
/// refusal is located at the key): known to the section, not given twice;
/// at the end, the required ones given.
struct Keys<A> {
    map: A,
    known: &'static [&'static str],
    required: &'static [&'static str],
    seen: Vec<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Keys<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let key = self.map.next_key_seed(Key {
            known: self.known,
            seen: &mut self.seen,
        })?;
        match key {
            Some(k) => seed
                .deserialize(de::value::StringDeserializer::new(k))
                .map(Some),
            None => match self
                .required
                .iter()
                .find(|r| !self.seen.iter().any(|s| s == *r))
            {
                Some(missing) => Err(said::refuse(format_args!("missing field `{missing}`"))),
                None => Ok(None),
            },
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// One key, checked while the deserializer is at it.
struct Key<'a> {
    known: &'static [&'static str],
    seen: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<String, E> {
        if !self.known.contains(&k) {
            return Err(said::refuse(format_args!(
                "unknown field `{k}`, {}",
                OneOf(self.known)
            )));
        }
        if self.seen.iter().any(|s| s == k) {
            return Err(said::refuse("duplicate key (given twice)"));
        }
        self.seen.push(k.to_string());
        Ok(k.to_string())
    }
}

/// `expected one of `a`, `b`` (serde's words for the keys a mapping has).
struct OneOf(&'static [&'static str]);

impl fmt::Display for OneOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str("there are no fields"),
            [a] => write!(f, "expected `{a}`"),
            [a, b] => write!(f, "expected `{a}` or `{b}`"),
            all => {
                f.write_str("expected one of ")?;
                for (i, k) in all.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}`{k}`")?;
                }
                Ok(())
            }
        }
    }
}

/// The keys a derived `Deserialize` reads (its `fields`), as it declares
/// them to a deserializer: asked of one that only listens.
fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Listen<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Listen<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("listened"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Listen(&mut fields));
    fields
}
