//! Property tests of the parsers of what operators and the volume's owner
//! write: the configuration, the state and lifecycle files, tree
//! descriptions and the application's `config.yaml`. Random bytes and
//! random edits of valid documents must come back as a value or an error,
//! never a panic; inputs stay small (a few KiB), so each case is bounded in
//! time and memory. The case count is modest to keep the suite fast;
//! `PROPTEST_CASES` raises it.

use std::path::Path;

use proptest::prelude::*;
use s6_reconcile::desired::application::yaml::{Wanted, app_config};
use s6_reconcile::desired::config::Config;
use s6_reconcile::desired::state::{json, parse_lifecycle, parse_state};

const CONFIG: &str = r##"user: hermes
group: ~
policy: compat
static:
  servicedirs: /run/s6-rc/servicedirs
  skip: ["s6rc-*", "s6-linux-*"]
scandir:
  path: /run/service
profiles:
  home: /opt/data
  root: profiles
  marker: SOUL.md
  slot_prefix: gateway-
  default_slot: true
  declared: [{name: a, start: always}]
  state_file: gateway_state.json
  autostart: [running]
  transient_running: [draining, degraded]
  templates:
    run: "#!/bin/sh\nexec app {profile} {user} {home}\n"
boot_log:
  path: logs/container-boot.log
  rotate_bytes: 262144
"##;

const STATE: &str = r#"{"desired_state": "running", "gateway_state": "draining", "pid": 12}"#;

const LIFECYCLE: &str = r#"{"last_exit": {"code": 0, "signal": null}, "state": "stopped"}"#;

const TREE: &str = r#"format: s6-reconcile-tree
version: 1
entries:
- {path: etc, type: dir}
- {path: etc/passwd, type: file, content: "root:x:0:0::/root:/bin/sh\n"}
- {path: opt, type: dir, mode: "0755"}
- {path: opt/data, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/a, type: file, links: 2, base64: aGVsbG8K}
- {path: opt/data/b, type: hardlink, target: opt/data/a}
- {path: opt/data/l, type: symlink, target: /etc/passwd, uid: 10000}
- {path: opt/data/f, type: fifo, mode: "0600"}
- {path: opt/data/s, type: socket}
- {path: opt/data/big, type: file, size: 10, sha256: 0000000000000000000000000000000000000000000000000000000000000000}
"#;

/// The application's own `config.yaml`, read the way PyYAML reads it for
/// the multiplexing keys: anchors, aliases, stacked merges and tags.
const APP: &str = r#"base: &base {multiplex_profiles: false, model: x}
other: &other
  <<: *base
  extra: !!str 1
gateway:
  <<: [*other, *base]
  multiplex_profiles: !!bool "yes"
  list: &l [a, *base, {k: *other}]
again: *l
multiplex_profiles: on
"#;

/// The keys the application's `config.yaml` is read for.
const APP_WANTED: Wanted<'static> = Wanted {
    key: "multiplex_profiles",
    under: "gateway",
};

/// Bytes YAML and JSON give meaning to, so edits reach the parsers' corners
/// (anchors, aliases, merges, flow collections, tags, quotes, escapes).
const TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "<<: ",
    "{",
    "}",
    "[",
    "]",
    ",",
    ": ",
    "- ",
    "\n",
    "  ",
    "\"",
    "'",
    "\\",
    "!!str ",
    "~",
    "#",
    "null",
    "true",
    "4294967295",
    "-1",
    "1e999",
    "0o777",
    "\u{202e}",
    "\t",
    "\0",
    "\u{feff}",
    "?",
    "|",
    ">",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
    "\"\\u0000\"",
    "\\x",
    ":",
    "0x",
    "&b ",
    "*b",
    "!!merge ",
    "!!map ",
    "!custom ",
    "<<: *a\n",
];

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    Byte(usize, u8),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Byte(at, b)),
        (any::<usize>(), 1usize..80).prop_map(|(at, n)| Edit::Duplicate(at, n)),
    ]
}

/// `seed` with `edits` applied (positions taken modulo the length).
fn mutate(seed: &str, edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.as_bytes().to_vec();
    for e in edits {
        let len = b.len().max(1);
        match *e {
            Edit::Insert(at, t) => {
                let at = at % len.min(b.len() + 1).max(1);
                b.splice(at..at, TOKENS[t].bytes());
            }
            Edit::Delete(at, n) if !b.is_empty() => {
                let at = at % b.len();
                let end = (at + n).min(b.len());
                b.drain(at..end);
            }
            Edit::Byte(at, byte) if !b.is_empty() => {
                let at = at % b.len();
                b[at] = byte;
            }
            Edit::Duplicate(at, n) if !b.is_empty() => {
                let at = at % b.len();
                let end = (at + n).min(b.len());
                let piece = b[at..end].to_vec();
                b.splice(end..end, piece);
            }
            _ => {}
        }
    }
    b
}

/// Mutated copies of `seed`, or random bytes.
fn inputs(seed: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(edit(), 1..12).prop_map(move |e| mutate(seed, &e)),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

/// 256 cases per property unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_configuration_parser_never_panics(bytes in inputs(CONFIG)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Config::from_yaml(&text, Path::new("/etc/s6-reconcile/config.yaml"));
    }

    #[test]
    fn the_state_file_parsers_never_panic(
        state in inputs(STATE),
        lifecycle in inputs(LIFECYCLE),
    ) {
        let transient = ["draining".to_string()];
        let _ = parse_state(&state, &transient);
        let _ = parse_lifecycle(Some(&lifecycle));
    }

    #[test]
    fn the_field_reader_reads_what_the_whole_reader_reads(state in inputs(STATE)) {
        // The state file's reader keeps two keys of the document; it must
        // accept and refuse what the whole reader does, at the same place,
        // and keep the same values for those keys.
        let fields = ["desired_state", "gateway_state"];
        match (json::parse(&state), json::parse_fields(&state, &fields)) {
            (Ok(serde_json::Value::Object(whole)), Ok(json::Fields::Object(kept))) => {
                let whole: Vec<_> = fields.iter().map(|k| whole.get(*k).cloned()).collect();
                prop_assert_eq!(whole, kept);
            }
            (Ok(whole), Ok(json::Fields::Other(kept))) => prop_assert_eq!(whole, kept),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "{:?} against {:?}", a, b),
        }
    }

    #[test]
    fn the_application_config_reader_never_panics(bytes in inputs(APP)) {
        // The input is a few KiB and the reader never expands an alias, so
        // each case is bounded by its size; a panic fails the property.
        let _ = app_config(&bytes, &APP_WANTED);
    }

    #[test]
    fn the_tree_description_parser_never_panics(bytes in inputs(TREE)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(d) = s6_reconcile::tree::parse(&text, Path::new("tree.yaml")) {
            // What parses also dumps and parses back the same.
            let again = s6_reconcile::tree::parse(&s6_reconcile::tree::dump(&d), Path::new("again.yaml"));
            prop_assert!(again.is_ok(), "{:?}", again.err());
        }
    }
}

/// The seeds themselves are valid: the edits start from real documents.
#[test]
fn the_seeds_parse() {
    Config::from_yaml(CONFIG, Path::new("config.yaml")).expect("the configuration seed");
    parse_state(STATE.as_bytes(), &[]).expect("the state seed");
    s6_reconcile::tree::parse(TREE, Path::new("tree.yaml")).expect("the tree seed");
    let app = app_config(APP.as_bytes(), &APP_WANTED).expect("the application seed");
    // The seed reaches the merges: the nested key is found through them.
    assert_eq!(
        app["gateway"]["multiplex_profiles"],
        serde_json::json!(true),
        "{app}"
    );
}
