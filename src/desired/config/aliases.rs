//! How much work a YAML text's aliases can cause. serde_yaml replays every
//! alias in full (its repetition limit counts alias jumps, not what each one
//! replays), so 300 KB of `*a` can stand for gigabytes. Before a text is
//! deserialized for real, it is walked once with a counting visitor: every
//! node and every scalar byte, replays included, counts as work, and the walk
//! stops at the node past the budget, a small multiple of the text's size.
//! The walk keeps nothing, so it costs at most the budget.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Work allowed per byte of the text: a configuration that shares a block
/// through an anchor a few times stays well under it.
pub const WORK_PER_BYTE: usize = 4;
/// Work any text may cause, whatever its size.
pub const WORK_FLOOR: usize = 64 * 1024;

/// A text whose aliases expand past the budget, or that is not YAML.
#[derive(Debug, thiserror::Error)]
pub enum AliasWork {
    #[error(
        "its aliases replay more than {budget} nodes and scalar bytes \
         ({WORK_PER_BYTE} per byte of the file, at least {WORK_FLOOR}); \
         each alias replays in full the node it names"
    )]
    TooMuch {
        budget: usize,
        /// 1-based line and column of the node being replayed when the
        /// budget ran out, where serde_yaml knows it.
        at: Option<(usize, usize)>,
    },
    /// Not valid YAML: left for the real parse to report in its words.
    #[error("{0}")]
    Yaml(serde_yaml::Error),
}

/// Walk every document of `text`, aliases replayed, counting the work, and
/// refuse the text at the node past the budget.
pub fn check(text: &str) -> Result<(), AliasWork> {
    let budget = text.len().saturating_mul(WORK_PER_BYTE).max(WORK_FLOOR);
    let left = Cell::new(budget);
    for doc in serde_yaml::Deserializer::from_str(text) {
        match (Count { left: &left }).deserialize(doc) {
            Ok(()) => {}
            Err(e) if left.get() == 0 => {
                let at = e.location().map(|l| (l.line(), l.column()));
                return Err(AliasWork::TooMuch { budget, at });
            }
            Err(e) => return Err(AliasWork::Yaml(e)),
        }
    }
    Ok(())
}

/// The marker error the counting visitor stops with.
const SPENT: &str = "alias work budget spent";

#[derive(Clone, Copy)]
struct Count<'a> {
    left: &'a Cell<usize>,
}

impl Count<'_> {
    fn spend<E: de::Error>(self, work: usize) -> Result<(), E> {
        match self.left.get().checked_sub(work.max(1)) {
            Some(l) if l > 0 => {
                self.left.set(l);
                Ok(())
            }
            _ => {
                self.left.set(0);
                Err(E::custom(SPENT))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.spend(s.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend(1)?;
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess as _;
        self.spend(1)?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping_bomb(aliases: usize) -> String {
        let keys: Vec<String> = (0..1000).map(|i| format!("k{i}: {i}")).collect();
        let mut s = format!("a: &a {{{}}}\nx: [", keys.join(", "));
        s.push_str(&vec!["*a"; aliases].join(", "));
        s.push_str("]\n");
        s
    }

    #[test]
    fn mapping_bomb_is_refused_at_its_alias() {
        let e = check(&mapping_bomb(100_000)).unwrap_err();
        let AliasWork::TooMuch { at, .. } = e else {
            panic!("{e}")
        };
        let (line, _) = at.expect("a position");
        // The anchored mapping being replayed, on line 1.
        assert_eq!(line, 1);
    }

    #[test]
    fn long_string_bomb_is_refused() {
        let s = format!(
            "m: &s \"{}\"\nx: [{}]\n",
            "A".repeat(600_000),
            vec!["*s"; 100_000].join(", ")
        );
        assert!(matches!(check(&s), Err(AliasWork::TooMuch { .. })));
    }

    #[test]
    fn a_few_shared_blocks_pass() {
        assert!(check(&mapping_bomb(3)).is_ok());
        assert!(check("a: &a {x: 1}\nb: *a\nc: [*a, *a]\n").is_ok());
        assert!(check("").is_ok());
    }

    #[test]
    fn broken_yaml_is_left_to_the_parser() {
        assert!(matches!(check("a: [b\n"), Err(AliasWork::Yaml(_))));
    }
}
