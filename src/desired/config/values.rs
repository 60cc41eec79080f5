//! The configuration's checked values: each is checked while the YAML
//! deserializer is still at it, so that an error carries the line and column
//! of the value itself, and says what is expected in the configuration's own
//! words (`a user name or a number 0..4294967294`), not in Rust's.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::fs::{SYSTEM_DIRS, is_system_dir};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde::de::{self, Visitor};

use super::said::{self, Any, Found, Text};

/// The largest usable id: `chown(2)` reads `(uid_t)-1` as "no change".
pub const MAX_ID: u32 = u32::MAX - 1;

/// The largest `profiles.templates` entry. A slot file is compared with what
/// it should be; a template that large could not be read back whole.
pub const TEMPLATE_MAX: usize = 64 * 1024;

/// The most bytes one placeholder (`{profile}`, `{user}`, `{home}`) of a
/// template is counted as when bounding the rendered size (PATH_MAX).
pub const PLACEHOLDER_MAX: usize = 4096;

/// A template whose rendering could exceed what a slot file is read back
/// to compare ([`crate::s6::layout::SLOT_FILE_LIMIT`]) is refused: such a slot
/// would never compare equal and would be replaced (and its service
/// restarted) at every boot. Each placeholder counts as
/// [`PLACEHOLDER_MAX`] bytes.
pub fn check_rendered_size(template: &str) -> Result<(), TemplateTooLarge> {
    let limit = crate::s6::layout::SLOT_FILE_LIMIT as usize;
    let count = ["{profile}", "{user}", "{home}"]
        .iter()
        .map(|k| template.matches(k).count())
        .sum::<usize>();
    if template.len() + count * PLACEHOLDER_MAX <= limit {
        return Ok(());
    }
    let most = limit.saturating_sub(template.len()) / PLACEHOLDER_MAX;
    Err(TemplateTooLarge {
        count,
        limit,
        len: template.len(),
        most,
    })
}

/// A template refused by [`check_rendered_size`].
#[derive(Debug, thiserror::Error)]
#[error(
    "its {count} placeholders ({{profile}}, {{user}}, {{home}}, each up to \
     {PLACEHOLDER_MAX} bytes once filled in) could make the script larger than {limit} \
     bytes, the most a slot file is read back to compare (the slot would be replaced at \
     every boot); a template of {len} bytes may hold at most {most}"
)]
pub struct TemplateTooLarge {
    count: usize,
    limit: usize,
    len: usize,
    most: usize,
}

/// A user or group, by name or by number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Name(String),
    Id(u32),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Name(s) => f.write_str(s),
            Principal::Id(n) => write!(f, "{n}"),
        }
    }
}

/// What `user:` or `group:` accepts; `null` is allowed (and means the
/// user's primary group) only for the group.
struct PrincipalVisitor {
    what: &'static str,
    null_ok: bool,
}

impl PrincipalVisitor {
    fn refuse<E: de::Error>(&self, found: impl fmt::Display) -> E {
        said::refuse(format_args!(
            "expected a {} name or a number 0..{MAX_ID}, found {found}",
            self.what
        ))
    }

    fn id<E: de::Error>(&self, n: u64) -> Result<Option<Principal>, E> {
        match u32::try_from(n) {
            Ok(id) if id <= MAX_ID => Ok(Some(Principal::Id(id))),
            Ok(_) => Err(said::refuse(format_args!(
                "{n} is refused: chown(2) reads it as \"no change\"; expected a number 0..{MAX_ID}"
            ))),
            Err(_) => Err(self.refuse(n)),
        }
    }
}

impl<'de> Visitor<'de> for PrincipalVisitor {
    type Value = Option<Principal>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} name or a number 0..{MAX_ID}", self.what)
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        self.id(n)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        match u64::try_from(n) {
            Ok(n) => self.id(n),
            Err(_) => Err(self.refuse(n)),
        }
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Err(self.refuse(n))
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Err(self.refuse(b))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        if self.null_ok {
            Ok(None)
        } else {
            Err(self.refuse("nothing (null)"))
        }
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u64>() {
                Ok(n) => self.id(n),
                Err(_) => Err(self.refuse(format!("{s:?}"))),
            };
        }
        if s.is_empty() || s.contains([':', '/']) || s.chars().any(char::is_control) {
            return Err(self.refuse(format!("{s:?}")));
        }
        Ok(Some(Principal::Name(s.to_string())))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.refuse("a mapping"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.refuse("a list"))
    }
}

/// `user:`: a name or a number.
pub fn de_user<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Principal, D::Error> {
    let v = PrincipalVisitor {
        what: "user",
        null_ok: false,
    };
    d.deserialize_any(v)?
        .ok_or_else(|| said::refuse("expected a user name"))
}

/// `group:`: a name, a number, or null for the user's primary group.
pub fn de_group<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Principal>, D::Error> {
    d.deserialize_any(PrincipalVisitor {
        what: "group",
        null_ok: true,
    })
}

/// A glob on a service name, parsed when the file is read.
#[derive(Clone, Debug)]
pub struct NameGlob {
    pub text: String,
    matcher: GlobSet,
}

/// The longest glob accepted: a service name is at most 255 bytes, and the
/// matcher a glob compiles to grows with its length.
pub const GLOB_MAX: usize = 1024;

/// Why a glob is refused.
#[derive(Debug, thiserror::Error)]
pub enum GlobError {
    #[error("is {0} bytes long; a glob is at most {GLOB_MAX}")]
    TooLong(usize),
    #[error("{0}")]
    Syntax(#[from] globset::Error),
}

impl NameGlob {
    /// Parse and compile `text`. Compiled as a one-glob set: its build
    /// returns the regex engine's refusal (a size limit) as an error, where
    /// a single glob's matcher would panic on it.
    pub fn new(text: &str) -> Result<Self, GlobError> {
        if text.len() > GLOB_MAX {
            return Err(GlobError::TooLong(text.len()));
        }
        let matcher = GlobSetBuilder::new().add(Glob::new(text)?).build()?;
        Ok(NameGlob {
            text: text.to_string(),
            matcher,
        })
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }
}

impl<'de> Deserialize<'de> for NameGlob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a glob", |s| {
            NameGlob::new(s).map_err(|e| match e {
                GlobError::TooLong(_) => format!("bad glob: {e}"),
                GlobError::Syntax(_) => format!("bad glob {s:?}: {e}"),
            })
        })
    }
}

/// Deserialize a string and check it while the deserializer is still at
/// it, so that an error carries the line and column of the value itself,
/// not those of the mapping or list around it.
pub fn checked_str<'de, D, T, E>(
    d: D,
    expecting: &'static str,
    check: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    E: fmt::Display,
{
    d.deserialize_str(Text {
        what: expecting,
        check,
    })
}

/// `deserialize_with` for a string with no rule of its own.
pub fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked_str(d, "a string", |s| Ok::<_, String>(s.to_string()))
}

/// A string with no rule of its own, as a list item.
struct Plain(String);

impl<'de> Deserialize<'de> for Plain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d).map(Plain)
    }
}

/// `deserialize_with` for a list of strings.
pub fn text_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let l: Vec<Plain> = list(d)?;
    Ok(l.into_iter().map(|p| p.0).collect())
}

/// `deserialize_with` for a list (`[a, b]` or `- a` lines).
pub fn list<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    struct List<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for List<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element()? {
                out.push(v);
            }
            Ok(out)
        }
        fn visit_bool<E: de::Error>(self, b: bool) -> Result<Vec<T>, E> {
            Err(said::expected("a list", Found::Bool(b)))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Vec<T>, E> {
            Err(said::expected("a list", Found::Int(n.into())))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Vec<T>, E> {
            Err(said::expected("a list", Found::Int(n.into())))
        }
        fn visit_f64<E: de::Error>(self, x: f64) -> Result<Vec<T>, E> {
            Err(said::expected("a list", Found::Float(x)))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<T>, E> {
            Err(said::expected("a list", Found::Str(s)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Err(said::expected("a list", Found::Null))
        }
        fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
            Err(said::expected("a list", Found::Null))
        }
        fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Vec<T>, A::Error> {
            Err(said::expected("a list", Found::Mapping))
        }
    }
    d.deserialize_any(List(std::marker::PhantomData))
}

/// `deserialize_with` for a count of bytes (`boot_log.rotate_bytes`).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Any {
        what: "a whole number (0 or more, without a unit)",
        accept: |f: &Found<'_>| match *f {
            Found::Int(n) => u64::try_from(n).ok(),
            _ => None,
        },
    })
}

/// `deserialize_with` for a switch.
pub fn switch<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(Any {
        what: "true or false",
        accept: |f: &Found<'_>| match *f {
            Found::Bool(b) => Some(b),
            _ => None,
        },
    })
}

/// `deserialize_with` for a switch that may be left unset (null).
pub fn maybe_switch<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(Any {
        what: "true or false",
        accept: |f: &Found<'_>| match *f {
            Found::Bool(b) => Some(Some(b)),
            Found::Null => Some(None),
            _ => None,
        },
    })
}

/// `deserialize_with` for one of a few words (`policy`, `start`).
pub fn one_of<'de, D: serde::Deserializer<'de>, T: Copy>(
    d: D,
    words: &'static [(&'static str, T)],
    said_as: &'static str,
) -> Result<T, D::Error> {
    checked_str(d, said_as, |s| {
        words
            .iter()
            .find(|(w, _)| *w == s)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("unknown variant `{s}`, expected {said_as}"))
    })
}

/// A base directory (`static.servicedirs`, `scandir.path`, `profiles.home`):
/// an absolute container path that is not `/` or a system directory itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsPath(pub PathBuf);

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "an absolute path", parse_base)
    }
}

/// Check a base directory's text: absolute, no `..`, no control
/// characters, not `/` and not a system directory itself.
pub fn parse_base(s: &str) -> Result<AbsPath, BaseError> {
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(BaseError::NotAbsolute(s.into()));
    }
    if s.chars().any(char::is_control) {
        return Err(BaseError::Control(s.into()));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(BaseError::DotDot(s.into()));
    }
    if is_system_dir(p) {
        return Err(BaseError::System(s.into()));
    }
    Ok(AbsPath(p.components().collect()))
}

/// Why [`parse_base`] refused a base directory.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("expected an absolute path, found {0:?}")]
    NotAbsolute(String),
    #[error("a path must not hold control characters: {0:?}")]
    Control(String),
    #[error("a path must not contain '..': {0:?}")]
    DotDot(String),
    #[error(
        "{0:?} is / or a system directory (/{dirs}); a base directory must be \
         a directory of its own below one, e.g. /opt/data",
        dirs = SYSTEM_DIRS.join(", /")
    )]
    System(String),
}

/// A relative path below another directory (no `..`, not absolute).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelPath(pub PathBuf);

impl<'de> Deserialize<'de> for RelPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a relative path", |s| {
            let p = Path::new(s);
            let ok = !s.is_empty()
                && !s.chars().any(char::is_control)
                && p.components().all(|c| matches!(c, Component::Normal(_)));
            if ok {
                Ok(RelPath(p.to_path_buf()))
            } else {
                Err(format!(
                    "expected a plain relative path (no '/', '.' or '..' at the start, \
                     no control characters), found {s:?}"
                ))
            }
        })
    }
}

/// A single file or directory name (no `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName(pub String);

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, "a file name", |s| {
            if s.is_empty()
                || s == "."
                || s == ".."
                || s.contains('/')
                || s.chars().any(char::is_control)
            {
                Err(format!(
                    "expected a single file name (no '/', no control characters), found {s:?}"
                ))
            } else {
                Ok(FileName(s.to_string()))
            }
        })
    }
}

/// `profiles.slot_prefix`: the start of every slot name, and after a `.`
/// of every staging dir's name.
pub fn de_slot_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked_str(d, "a slot name prefix", |s| {
        if s.is_empty()
            || s.starts_with('.')
            || s.contains('/')
            || s.chars().any(char::is_control)
            || s.len() > 200
        {
            Err(format!(
                "expected 1 to 200 bytes, not starting with '.', with no '/' and no \
                 control characters, found {s:?}"
            ))
        } else {
            Ok(s.to_string())
        }
    })
}

/// A `profiles.templates` entry: at most [`TEMPLATE_MAX`] bytes, and no
/// control characters other than newline and tab (a NUL or a carriage
/// return makes a script no shell runs as written).
pub fn de_template<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct MaybeTemplate;
    impl<'de> Visitor<'de> for MaybeTemplate {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a script template")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            template(d).map(Some)
        }
    }
    d.deserialize_option(MaybeTemplate)
}

fn template<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked_str(d, "a script template", |s| {
        if s.len() > TEMPLATE_MAX {
            return Err(format!(
                "a template is at most {TEMPLATE_MAX} bytes (64 KiB), this one is {}",
                s.len()
            ));
        }
        if let Some((i, c)) = s
            .char_indices()
            .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\t'))
        {
            let line = s[..i].matches('\n').count() + 1;
            return Err(format!(
                "control character {c:?} on line {line} of the template \
                 (only newlines and tabs are allowed)"
            ));
        }
        Ok(s.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_refuse_root_system_dirs_and_relative_paths() {
        for bad in [
            "/", "//", "/etc", "/etc/", "/lib64", "/./run", "/opt", "/tmp",
        ] {
            let e = parse_base(bad).unwrap_err().to_string();
            assert!(e.contains("is / or a system directory"), "{bad}: {e}");
        }
        assert!(
            parse_base("run/service")
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
        assert!(
            parse_base("/opt/../etc")
                .unwrap_err()
                .to_string()
                .contains("..")
        );
        assert_eq!(
            parse_base("/opt/data/").unwrap().0,
            PathBuf::from("/opt/data")
        );
        assert!(parse_base("/srv").is_ok());
        assert!(parse_base("/run/service").is_ok());
    }

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "de_template")]
        run: Option<String>,
    }

    #[test]
    fn a_null_template_is_no_template() {
        let t: T = serde_yaml::from_str("run: ~\n").unwrap();
        assert_eq!(t.run, None);
        let t: T = serde_yaml::from_str("run: \"~\"\n").unwrap();
        assert_eq!(t.run.as_deref(), Some("~"));
        let t: T = serde_yaml::from_str("{}").unwrap();
        assert_eq!(t.run, None);
        let e = serde_yaml::from_str::<T>("run: \"a\\u0000b\"\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains("control character"), "{e}");
    }
}
