//! The operator's interface, as an operator meets it on a terminal or in a
//! boot log: what `-v` logs, how `S6_VERBOSITY` quiets a run, what
//! `--print-config` prints, when colour is used, why a slot changes and the
//! `--diff` of its files. Each test runs the real binary on a tree built
//! from a description and checks exact lines and exit codes.
//!
//! Needs root (the trees have owners); CI runs as root.

mod common;

use std::path::Path;
use std::process::Command;

use common::run::{bare_cmd, reconcile_bare, run};
use common::tree;

/// A container root as s6-overlay leaves it at cont-init: one static
/// service, one internal one, the scandir, the user, and a volume with the
/// default profile (running) and `alice` (stopped).
const TREE: &str = r##"
- {path: "etc", type: dir}
- {path: "etc/passwd", type: file, content: "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000::/opt/data:/bin/sh\n"}
- {path: "etc/group", type: file, content: "root:x:0:\nhermes:x:10000:\n"}
- {path: "run", type: dir}
- {path: "run/s6-rc", type: dir}
- {path: "run/s6-rc/servicedirs", type: dir}
- {path: "run/s6-rc/servicedirs/svc", type: dir}
- {path: "run/s6-rc/servicedirs/svc/type", type: file, content: "longrun\n"}
- {path: "run/s6-rc/servicedirs/svc/run", type: file, mode: "0755", content: "#!/bin/sh\nexec sleep 1000\n"}
- {path: "run/s6-rc/servicedirs/svc/event", type: dir, mode: "3730"}
- {path: "run/s6-rc/servicedirs/svc/supervise", type: dir, mode: "0700"}
- {path: "run/s6-rc/servicedirs/svc/supervise/control", type: fifo, mode: "0600"}
- {path: "run/s6-rc/servicedirs/svc/supervise/lock", type: file}
- {path: "run/s6-rc/servicedirs/s6rc-fdholder", type: dir}
- {path: "run/s6-rc/servicedirs/s6rc-fdholder/supervise", type: dir, mode: "0700"}
- {path: "run/service", type: dir}
- {path: "run/service/.s6-svscan", type: dir}
- {path: "run/service/.s6-svscan/control", type: fifo, mode: "0600"}
- {path: "run/service/.s6-svscan/lock", type: file}
- {path: "run/service/svc", type: symlink, target: "/run/s6-rc/servicedirs/svc"}
- {path: "opt", type: dir}
- {path: "opt/data", type: dir, uid: 10000, gid: 10000}
- {path: "opt/data/SOUL.md", type: file, uid: 10000, gid: 10000}
- {path: "opt/data/gateway_state.json", type: file, uid: 10000, gid: 10000, content: "{\"gateway_state\": \"running\"}"}
- {path: "opt/data/profiles", type: dir, uid: 10000, gid: 10000}
- {path: "opt/data/profiles/alice", type: dir, uid: 10000, gid: 10000}
- {path: "opt/data/profiles/alice/SOUL.md", type: file, uid: 10000, gid: 10000}
- {path: "opt/data/profiles/alice/gateway_state.json", type: file, uid: 10000, gid: 10000, content: "{\"gateway_state\": \"stopped\"}"}
"##;

fn require_root() {
    assert!(
        tree::is_root(),
        "tests/operator.rs must run as root (the trees have owners); CI runs as root"
    );
}

/// A fresh copy of [`TREE`] in a temp dir that uid 10000 can search.
fn container() -> tempfile::TempDir {
    require_root();
    let tmp = tree::temp_root("operator");
    tree::materialise_yaml(tmp.path(), TREE).expect("materialise the tree");
    tmp
}

fn write_config(root: &Path, yaml: &str) {
    let dir = root.join("etc/s6-reconcile");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
}

// ---------------------------------------------------------------------------
// -v names the policy as the configuration writes it

#[test]
fn verbose_logs_the_policy_as_the_configuration_writes_it() {
    let tmp = container();
    let out = reconcile_bare(tmp.path(), &["--plan", "-v"], &[]);
    assert_eq!(out.code, Some(0), "{}", out);
    assert!(
        out.stderr
            .clone()
            .lines()
            .any(|l| l == "reconcile: info: user hermes = 10000:10000, policy compat"),
        "{}",
        out
    );

    write_config(tmp.path(), "policy: strict\n");
    let out = reconcile_bare(tmp.path(), &["--plan", "-v"], &[]);
    assert_eq!(out.code, Some(0), "{}", out);
    assert!(
        out.stderr
            .clone()
            .lines()
            .any(|l| l == "reconcile: info: user hermes = 10000:10000, policy strict"),
        "{}",
        out
    );
}

/// The per-profile lines an apply of [`TREE`] prints.
const PROFILE_LINES: &str = "\
reconcile: profile=default prior_state=running action=started
reconcile: profile=alice prior_state=stopped action=registered
";

/// The warning every compat run gives, as an apply prints it.
const COMPAT_WARNING: &str = "reconcile: warning: policy compat: uid 10000 can write the \
    scandir and the slot definitions that root's s6-supervise executes, so that user is \
    effectively root; `policy: strict` avoids this, and loses nothing once the application \
    asks the runtime service s6-reconcile-runtime for its slots instead of writing them itself \
    (docs/runtime.md)\n";

// ---------------------------------------------------------------------------
// S6_VERBOSITY

#[test]
fn s6_verbosity_0_apply_prints_nothing_and_still_applies() {
    let tmp = container();
    let out = reconcile_bare(tmp.path(), &[], &[("S6_VERBOSITY", "0")]);
    assert_eq!(out.code, Some(0), "{}", out);
    assert_eq!(out.stdout, "", "{}", out);
    assert_eq!(out.stderr.clone(), "", "{}", out);
    assert_eq!(
        tree::owner_mode(tmp.path(), "run/s6-rc/servicedirs/svc/supervise"),
        (10000, 10000, 0o710),
        "the apply was done"
    );
    assert!(
        tmp.path().join("run/service/gateway-alice/down").exists(),
        "the slots were published"
    );
}

#[test]
fn s6_verbosity_1_apply_prints_the_profile_lines_and_warnings_only() {
    let tmp = container();
    std::fs::write(
        tmp.path()
            .join("opt/data/profiles/alice/gateway_state.json"),
        "{not json",
    )
    .unwrap();
    let out = reconcile_bare(tmp.path(), &[], &[("S6_VERBOSITY", "1")]);
    assert_eq!(out.code, Some(0), "{}", out);
    let text = &out.stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "reconcile: profile=default prior_state=running action=started",
            "reconcile: profile=alice prior_state=None action=registered",
        ],
        "{}",
        out
    );
    assert!(
        lines.len() > 2
            && lines[2..]
                .iter()
                .all(|l| l.starts_with("reconcile: warning: "))
            && lines[2..]
                .iter()
                .any(|l| l.contains("/opt/data/profiles/alice/gateway_state.json")),
        "then only the warnings, one naming the corrupt state file: {}",
        out
    );
}

#[test]
fn s6_verbosity_0_and_1_still_print_errors_and_exit_1() {
    for level in ["0", "1"] {
        let tmp = container();
        let servicedirs = tmp.path().join("run/s6-rc/servicedirs");
        std::fs::remove_dir_all(&servicedirs).unwrap();
        std::fs::write(&servicedirs, "").unwrap();
        let out = reconcile_bare(tmp.path(), &[], &[("S6_VERBOSITY", level)]);
        assert_eq!(out.code, Some(1), "{}", out);
        let error = "reconcile: error: unable to open /run/s6-rc/servicedirs: \
                     is a regular file, not a directory\n";
        let want = if level == "0" {
            error.to_string()
        } else {
            format!("{PROFILE_LINES}{COMPAT_WARNING}{error}")
        };
        assert_eq!(out.stdout, want, "S6_VERBOSITY={level}: {}", out);
    }
}

#[test]
fn s6_verbosity_leaves_plans_json_and_flags_alone() {
    let tmp = container();
    let full = reconcile_bare(tmp.path(), &["--plan"], &[]);
    assert_eq!(full.code, Some(0), "{}", full);
    assert!(full.stdout.starts_with("static:\n"), "{}", full);
    for level in ["0", "1", "2", "5", "", "loud"] {
        let out = reconcile_bare(tmp.path(), &["--plan"], &[("S6_VERBOSITY", level)]);
        assert_eq!(
            out.stdout, full.stdout,
            "--plan prints the whole plan at S6_VERBOSITY={level:?}"
        );
        let out = reconcile_bare(tmp.path(), &["--check"], &[("S6_VERBOSITY", level)]);
        assert_eq!(out.code, Some(3), "{}", out);
        assert_eq!(out.stdout, full.stdout, "--check at {level:?}");
    }

    // An apply: JSON is never shortened; -v or -q override S6_VERBOSITY.
    let tmp = container();
    let out = reconcile_bare(tmp.path(), &["--format", "json"], &[("S6_VERBOSITY", "0")]);
    assert_eq!(out.code, Some(0), "{}", out);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(v["mode"], "apply");
    assert!(!v["changes"].as_array().unwrap().is_empty(), "{}", out);
    for flag in ["-v", "-q"] {
        let tmp = container();
        let out = reconcile_bare(tmp.path(), &[flag], &[("S6_VERBOSITY", "0")]);
        assert_eq!(out.code, Some(0), "{}", out);
        assert!(
            out.stdout.starts_with(PROFILE_LINES) || out.stdout.contains("reconcile: static:\n"),
            "{flag} overrides S6_VERBOSITY=0: {}",
            out
        );
    }
}

// ---------------------------------------------------------------------------
// An apply in a container log (docs/boot-output.md)

/// [`container`] with something of everything an apply reports: changes
/// (the static service), a skipped item (`s6rc-fdholder`), warnings (the
/// compat warning, a corrupt state file) and an error (the scandir is a
/// link the user planted: refused, so the profiles are skipped too).
fn noisy_container() -> tempfile::TempDir {
    require_root();
    let tmp = tree::temp_root("operator-noisy");
    let yaml: String = TREE
        .lines()
        .filter(|l| !l.contains("\"run/service"))
        .map(|l| format!("{l}\n"))
        .collect();
    let yaml = format!(
        "{yaml}- {{path: \"run/service\", type: symlink, uid: 10000, gid: 10000, target: \"../etc\"}}\n"
    );
    tree::materialise_yaml(tmp.path(), &yaml).expect("materialise the tree");
    std::fs::write(
        tmp.path()
            .join("opt/data/profiles/alice/gateway_state.json"),
        "{not json",
    )
    .unwrap();
    tmp
}

/// What an apply of [`noisy_container`] prints at `S6_VERBOSITY=1` (and
/// `-q`): the per-profile lines, the warnings, the error.
const NOISY_QUIET: &str = "\
reconcile: profile=default prior_state=running action=skipped
reconcile: profile=alice prior_state=None action=skipped
";

/// Every line on stdout and stderr starts with `reconcile: `.
#[track_caller]
fn assert_all_prefixed(out: &common::run::Run, what: &str) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for line in text.lines() {
            assert!(
                line.starts_with("reconcile: "),
                "{what}: a {stream} line without the prefix: {line:?}\n{out}"
            );
        }
    }
}

/// Arguments, environment and a name for the messages.
type Variant<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn an_apply_prefixes_every_line_and_prints_one_summary_by_default() {
    let runs: [Variant; 9] = [
        (&[], &[], "default"),
        (&[], &[("S6_VERBOSITY", "2")], "S6_VERBOSITY=2"),
        (&[], &[("S6_VERBOSITY", "")], "S6_VERBOSITY empty"),
        (&["-v"], &[], "-v"),
        (&[], &[("S6_VERBOSITY", "3")], "S6_VERBOSITY=3"),
        (&[], &[("S6_VERBOSITY", "5")], "S6_VERBOSITY=5"),
        (&["-q"], &[], "-q"),
        (&[], &[("S6_VERBOSITY", "1")], "S6_VERBOSITY=1"),
        (&[], &[("S6_VERBOSITY", "0")], "S6_VERBOSITY=0"),
    ];
    let mut outputs = Vec::new();
    for (args, env, what) in runs {
        let tmp = noisy_container();
        let out = reconcile_bare(tmp.path(), args, env);
        assert_eq!(out.code, Some(1), "{what}: the error makes it 1: {}", out);
        assert_all_prefixed(&out, what);
        outputs.push((what, out));
    }
    let stdout = |what: &str| {
        let (_, out) = outputs.iter().find(|(w, _)| *w == what).unwrap();
        out.stdout.clone()
    };
    let error =
        "reconcile: error: unable to open /run/service: is a symlink; refusing to follow it\n";
    let warnings: String = stdout("-q")
        .lines()
        .filter(|l| l.starts_with("reconcile: warning: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        warnings.starts_with(COMPAT_WARNING)
            && warnings.contains("/opt/data/profiles/alice/gateway_state.json"),
        "the compat warning, then the corrupt state file:\n{warnings}"
    );
    // -q and S6_VERBOSITY=1: the per-profile lines, warnings and errors,
    // nothing else.
    let quiet = format!("{NOISY_QUIET}{warnings}{error}");
    assert_eq!(stdout("-q"), quiet);
    assert_eq!(stdout("S6_VERBOSITY=1"), quiet);
    // 0: the error alone.
    assert_eq!(stdout("S6_VERBOSITY=0"), error);
    // The default: those and one summary line, no change list.
    let summary = "reconcile: Applied 5 changes (static 5); 1 skipped; 1 failed.\n";
    let default = format!("{quiet}{summary}");
    for what in ["default", "S6_VERBOSITY=2", "S6_VERBOSITY empty"] {
        assert_eq!(stdout(what), default, "{what}");
    }
    // -v and 3 or more: the whole report, change by change.
    let full = stdout("-v");
    for what in ["S6_VERBOSITY=3", "S6_VERBOSITY=5"] {
        assert_eq!(stdout(what), full, "{what}");
    }
    assert!(
        full.starts_with(
            "reconcile: static:\n\
             reconcile:   chown   /run/s6-rc/servicedirs/svc/event  0:0 → 10000:10000\n"
        ) && full.contains(
            "reconcile: skipped:\n\
             reconcile:   /run/s6-rc/servicedirs/s6rc-fdholder: matches skip glob \"s6rc-*\"; \
             left root-only\n"
        ) && full.contains(&quiet.replace(NOISY_QUIET, ""))
            && full.contains(NOISY_QUIET)
            && full.ends_with(summary),
        "the whole report:\n{full}"
    );
    // The compat warning: once, whatever the verbosity.
    for (what, out) in &outputs {
        let n = out.stdout.matches("policy compat").count();
        let want = usize::from(*what != "S6_VERBOSITY=0");
        assert_eq!(n, want, "{what}: the compat warning {n} times\n{out}");
    }
}

#[test]
fn an_apply_logs_with_the_prefix_and_json_is_never_prefixed() {
    // Info logging on stderr (-v) and a debug filter: every line prefixed.
    let tmp = noisy_container();
    let out = reconcile_bare(tmp.path(), &["-vv"], &[]);
    assert!(
        out.stderr
            .contains("reconcile: info: user hermes = 10000:10000"),
        "{}",
        out
    );
    assert_all_prefixed(&out, "-vv");

    // JSON: one object, the same at every verbosity, nothing prefixed.
    let mut seen: Option<serde_json::Value> = None;
    for env in [
        &[][..],
        &[("S6_VERBOSITY", "0")][..],
        &[("S6_VERBOSITY", "3")][..],
    ] {
        let tmp = noisy_container();
        let out = reconcile_bare(tmp.path(), &["--format", "json"], env);
        assert_eq!(out.code, Some(1), "{}", out);
        assert!(out.stdout.starts_with("{\n"), "{}", out);
        assert!(
            !out.stdout.contains("reconcile: "),
            "nothing in the JSON report is prefixed: {}",
            out
        );
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
        assert_eq!(v["mode"], "apply");
        assert!(!v["changes"].as_array().unwrap().is_empty(), "{}", out);
        assert_eq!(v["warnings"].as_array().unwrap().len(), 2, "{}", out);
        assert!(
            v["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with("policy compat: uid 10000"),
            "{}",
            out
        );
        match &seen {
            Some(first) => assert_eq!(&v, first, "JSON at {env:?}"),
            None => seen = Some(v),
        }
    }
}

#[test]
fn a_plan_keeps_its_layout_without_the_prefix() {
    let tmp = noisy_container();
    for args in [&["--plan"][..], &["--check"][..], &["--plan", "-q"][..]] {
        let out = reconcile_bare(tmp.path(), args, &[]);
        assert!(
            out.stdout
                .starts_with("static:\n  chown   /run/s6-rc/servicedirs/svc/event"),
            "{args:?}: {}",
            out
        );
        assert!(
            out.stdout.contains("\nwarning: policy compat: ")
                && out.stdout.contains("\nerror: unable to open /run/service")
                && out.stdout.contains(NOISY_QUIET)
                && out
                    .stdout
                    .ends_with("Plan: 5 changes (static 5); 1 skipped; 1 failed.\n"),
            "{args:?}: {}",
            out
        );
    }
}

#[test]
fn s6_verbosity_sets_the_log_level_without_flags() {
    let tmp = container();
    let info = "reconcile: info: user hermes = 10000:10000, policy compat";
    for (level, logged) in [("0", false), ("1", false), ("2", false), ("3", true)] {
        let out = reconcile_bare(tmp.path(), &["--plan"], &[("S6_VERBOSITY", level)]);
        assert_eq!(
            out.stderr.clone().lines().any(|l| l == info),
            logged,
            "S6_VERBOSITY={level}: {}",
            out
        );
    }
    // RUST_LOG still has the last word.
    let out = reconcile_bare(
        tmp.path(),
        &["--plan"],
        &[("S6_VERBOSITY", "0"), ("RUST_LOG", "info")],
    );
    assert!(out.stderr.clone().lines().any(|l| l == info), "{}", out);
}

#[test]
fn help_explains_s6_verbosity_and_colour() {
    let out = run(bare_cmd(&["--help"]));
    assert_eq!(out.code, Some(0));
    let help = out.stdout;
    for needle in [
        "S6_VERBOSITY",
        "0 errors only (a successful apply prints nothing",
        "1 warnings (an apply prints only warnings,",
        "NO_COLOR",
        "--color <WHEN>",
        "--print-config",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

// ---------------------------------------------------------------------------
// --print-config

const OVERRIDES: [(&str, &str); 3] = [
    ("HERMES_HOME", "/srv/data"),
    ("S6_PROFILE_GATEWAY_SCANDIR", "/srv/service"),
    ("GATEWAY_MULTIPLEX_PROFILES", "yes"),
];

#[test]
fn print_config_shows_the_defaults_with_the_environment_applied() {
    let tmp = container();
    let before = tree::dump(tmp.path());
    let out = reconcile_bare(tmp.path(), &["--print-config"], &OVERRIDES);
    assert_eq!(out.code, Some(0), "{}", out);
    assert_eq!(out.stderr.clone(), "");
    assert_eq!(
        out.stdout,
        r#"# The configuration in effect (reconcile --print-config).
# file: none, the built-in defaults
# environment: HERMES_HOME overrides profiles.home
# environment: S6_PROFILE_GATEWAY_SCANDIR overrides scandir.path
# environment: GATEWAY_MULTIPLEX_PROFILES overrides profiles.multiplex
# user hermes: uid 10000 (from /etc/passwd)
# group ~: gid 10000, the primary group of hermes (from /etc/passwd)
user: hermes
group: null
policy: compat
static:
  servicedirs: /run/s6-rc/servicedirs
  skip:
  - s6rc-*
  - s6-linux-*
scandir:
  path: /srv/service
profiles:
  home: /srv/data
  root: profiles
  marker: SOUL.md
  slot_prefix: gateway-
  default_slot: true
  declared: []
  state_file: gateway_state.json
  autostart:
  - running
  transient_running:
  - draining
  - degraded
  stale_runtime_files:
  - gateway.pid
  - processes.json
  multiplex: true
  prune: false
  templates:
    run: null
    finish: null
    log_run: null
boot_log:
  path: logs/container-boot.log
  rotate_bytes: 262144
container:
  wrapper: main-wrapper.sh
  dispatcher: entrypoint-dispatch.sh
  program: hermes
  legacy_command:
  - gateway
  - run
  no_supervise_flag: --no-supervise
  no_supervise_env: HERMES_GATEWAY_NO_SUPERVISE
  dashboard_commands:
  - dashboard
"#
    );
    assert_eq!(
        tree::dump(tmp.path()),
        before,
        "--print-config touched the tree"
    );

    // Without the environment: no overrides, multiplexing left to the
    // application (~); a value that is not a boolean word is ignored.
    let out = reconcile_bare(tmp.path(), &["--print-config"], &[]);
    assert_eq!(out.code, Some(0), "{}", out);
    let text = &out.stdout;
    for line in [
        "# environment: no overrides",
        "  home: /opt/data",
        "  path: /run/service",
        "  multiplex: null",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
    }
    let out = reconcile_bare(
        tmp.path(),
        &["--print-config"],
        &[("GATEWAY_MULTIPLEX_PROFILES", "maybe")],
    );
    assert_eq!(out.code, Some(0), "{}", out);
    let text = &out.stdout;
    for line in [
        "# environment: no overrides",
        "# environment: GATEWAY_MULTIPLEX_PROFILES=\"maybe\" is not a boolean word: ignored",
        "  multiplex: null",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
    }
}

/// The printed configuration is one `--config` accepts and means the same:
/// printed again (without the environment) it is the same configuration,
/// and it plans the same as the file plus the environment did.
#[test]
fn print_config_output_is_a_configuration_that_means_the_same() {
    let tmp = container();
    write_config(
        tmp.path(),
        r##"group: hermes
policy: strict
static:
  skip: ["s6rc-*", "s6-linux-*", "svc-?"]
profiles:
  marker: "SOUL.md"
  slot_prefix: "gw_"
  declared:
    - {name: backup, start: never}
    - {name: "yes", start: always}
  autostart: [running, "on"]
  prune: true
  templates:
    run: |
      #!/bin/sh
      # profile {profile} as {user}

      exec sleep 1000 # "quoted"
    finish: "#!/bin/sh\nexit 0"
boot_log:
  rotate_bytes: 1000
"##,
    );
    let before = tree::dump(tmp.path());
    let env = [OVERRIDES[0], ("GATEWAY_MULTIPLEX_PROFILES", "off")];
    let out = reconcile_bare(tmp.path(), &["--print-config"], &env);
    assert_eq!(out.code, Some(0), "{}", out);
    let printed = out.stdout;
    for line in [
        "# file: /etc/s6-reconcile/config.yaml",
        "# environment: HERMES_HOME overrides profiles.home",
        "# environment: GATEWAY_MULTIPLEX_PROFILES overrides profiles.multiplex",
        "# group hermes: gid 10000 (from /etc/group)",
        "policy: strict",
        "  home: /srv/data",
        "  multiplex: false",
        "  - name: yes",
        "    start: always",
        "  - on",
        "    run: |",
        "      # profile {profile} as {user}",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "missing {line:?}:\n{printed}"
        );
    }
    assert_eq!(
        tree::dump(tmp.path()),
        before,
        "--print-config touched the tree"
    );

    let saved = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(saved.path(), &printed).unwrap();
    let config_arg = saved.path().to_str().unwrap();
    let again = reconcile_bare(tmp.path(), &["--print-config", "--config", config_arg], &[]);
    assert_eq!(again.code, Some(0), "{}", again);
    let body = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with("# file:") && !l.starts_with("# environment:"))
            .map(|l| match l.split_once("  # ") {
                Some((value, var)) if var.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                    value.to_string()
                }
                _ => l.to_string(),
            })
            .collect()
    };
    assert_eq!(body(&again.stdout), body(&printed));

    let with_env = reconcile_bare(tmp.path(), &["--plan", "--format", "json"], &env);
    let from_printed = reconcile_bare(
        tmp.path(),
        &["--plan", "--format", "json", "--config", config_arg],
        &[],
    );
    assert_eq!(with_env.code, from_printed.code);
    assert_eq!(
        from_printed.stdout, with_env.stdout,
        "the printed configuration plans like the file plus the environment"
    );
}

/// A value holding a bidirectional override, an invisible or a control
/// character (Trojan Source) is printed escaped, never raw: it cannot
/// reorder or hide what the operator reads, and the printed configuration
/// still reads back as the same values.
#[test]
fn print_config_escapes_what_would_reorder_the_terminal() {
    use s6_reconcile::report::render::hidden;
    let tmp = container();
    write_config(
        tmp.path(),
        r##"profiles:
  autostart: [running, "run\u202Eing"]
  templates:
    run: "#!/bin/sh\n# \u2066admin\u2069 \U000E0001\nexec sleep 1000\n"
container:
  program: "herm\u00ADes\x7F"
"##,
    );
    let out = reconcile_bare(tmp.path(), &["--print-config"], &[]);
    assert_eq!(out.code, Some(0), "{}", out);
    let printed = out.stdout;
    let raw: Vec<char> = printed
        .chars()
        .filter(|&c| c != '\n' && hidden(c))
        .collect();
    assert!(raw.is_empty(), "raw {raw:?} in:\n{printed}");
    for escaped in [
        r#""run\u202eing""#,
        r##""run": "#!/bin/sh\n# \u2066admin\u2069 \U000e0001\nexec sleep 1000\n""##,
        r#""program": "herm\u00ades\u007f""#,
    ] {
        assert!(printed.contains(escaped), "missing {escaped}:\n{printed}");
    }

    let saved = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(saved.path(), &printed).unwrap();
    let config_arg = saved.path().to_str().unwrap();
    let again = reconcile_bare(tmp.path(), &["--print-config", "--config", config_arg], &[]);
    assert_eq!(again.code, Some(0), "{}", again);
    let body = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with("# file:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(body(&again.stdout), body(&printed));
    let plan = |args: &[&str]| {
        let mut all = vec!["--plan", "--format", "json"];
        all.extend_from_slice(args);
        let out = reconcile_bare(tmp.path(), &all, &[]);
        (out.code, out.stdout)
    };
    assert_eq!(
        plan(&["--config", config_arg]),
        plan(&[]),
        "the printed configuration plans like the file"
    );
}

/// A tree description holds the configuration and the accounts: the
/// configuration in effect printed from it is the one printed from the
/// tree on disk.
#[test]
fn print_config_reads_a_tree_description_like_the_disk() {
    let tmp = container();
    write_config(tmp.path(), "policy: strict\ngroup: hermes\n");
    let snap = reconcile_bare(tmp.path(), &["snapshot"], &[]);
    assert_eq!(snap.code, Some(0), "{}", snap);
    let described = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(described.path(), &snap.stdout).unwrap();
    let from_disk = reconcile_bare(tmp.path(), &["--print-config"], &OVERRIDES);
    assert_eq!(from_disk.code, Some(0), "{}", from_disk);
    let mut cmd = bare_cmd(&["--print-config", "--tree"]);
    cmd.arg(described.path()).envs(OVERRIDES);
    let from_tree = run(cmd);
    assert_eq!(from_tree.code, Some(0), "{}", from_tree);
    assert_eq!(from_tree.stdout, from_disk.stdout);
    assert!(from_tree.stdout.contains("\npolicy: strict\n"));
}

#[test]
fn print_config_with_a_bad_configuration_is_the_usual_error() {
    let tmp = container();
    write_config(tmp.path(), "user: nobody-here\n");
    let out = reconcile_bare(tmp.path(), &["--print-config"], &[]);
    assert_eq!(out.code, Some(100), "{}", out);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .clone()
            .contains("unknown user \"nobody-here\": not found in /etc/passwd"),
        "{}",
        out
    );
    let out = reconcile_bare(tmp.path(), &["--print-config", "--plan"], &[]);
    assert_eq!(out.code, Some(100), "{}", out);
}

// ---------------------------------------------------------------------------
// colour

/// `reconcile ARGS --root ROOT` on a terminal (a pty from `script`): its
/// exit code and its output with the terminal's CRLF turned back into LF.
fn on_terminal_exit(root: &Path, args: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let cmdline = format!(
        "{} {args} --root {}",
        env!("CARGO_BIN_EXE_reconcile"),
        root.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &cmdline, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(cmd);
    (out.code, out.stdout.replace("\r\n", "\n"))
}

/// [`on_terminal_exit`] of a run that exits 0.
fn on_terminal(root: &Path, args: &str, env: &[(&str, &str)]) -> String {
    let (code, text) = on_terminal_exit(root, args, env);
    assert_eq!(code, Some(0), "on a terminal: {text}");
    text
}

fn strip_ansi(text: &str) -> String {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("\x1b[") {
        plain.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let end = tail.find('m').expect("an SGR sequence ends in m");
        rest = &tail[end + 1..];
    }
    plain.push_str(rest);
    plain
}

#[test]
fn colour_on_a_terminal_never_in_a_pipe_never_with_no_color() {
    let tmp = container();
    let plain = reconcile_bare(tmp.path(), &["--plan"], &[]).stdout;
    assert!(!plain.contains('\x1b'), "a pipe gets no colour:\n{plain}");

    let coloured = on_terminal(tmp.path(), "--plan", &[]);
    assert_ne!(coloured, plain, "a terminal gets colour");
    assert_eq!(
        strip_ansi(&coloured),
        plain,
        "colour adds nothing but colour"
    );
    let lines: Vec<&str> = coloured.lines().collect();
    assert_eq!(lines[0], "\x1b[1mstatic:\x1b[0m", "phase headers in bold");
    let summary = plain.lines().last().unwrap();
    assert_eq!(
        lines.last().copied(),
        Some(format!("\x1b[1m{summary}\x1b[0m").as_str()),
        "the summary in bold"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("\x1b[1;33mwarning:\x1b[0m ")),
        "warnings in bold yellow:\n{coloured}"
    );
    // Each change's verb is coloured: green adds, yellow changes, red removes.
    for (plain_line, line) in plain.lines().zip(&lines) {
        let Some(rest) = plain_line.strip_prefix("  ") else {
            continue;
        };
        if plain_line.contains(" → ") || rest.starts_with("publish ") {
            let verb = &rest[..7];
            let code = if verb.starts_with("publish") {
                "32"
            } else {
                "33"
            };
            assert!(
                line.starts_with(&format!("  \x1b[{code}m{verb}\x1b[0m ")),
                "{plain_line:?} coloured as {line:?}"
            );
        }
    }

    assert_eq!(
        on_terminal(tmp.path(), "--plan", &[("NO_COLOR", "1")]),
        plain,
        "NO_COLOR turns colour off"
    );
    assert_eq!(
        on_terminal(tmp.path(), "--plan", &[("NO_COLOR", "")]),
        coloured,
        "an empty NO_COLOR is unset"
    );
    assert_eq!(
        on_terminal(tmp.path(), "--plan --color never", &[]),
        plain,
        "--color never"
    );
    assert_eq!(
        reconcile_bare(tmp.path(), &["--plan", "--color", "always"], &[]).stdout,
        coloured,
        "--color always, even into a pipe"
    );
    assert_eq!(
        reconcile_bare(
            tmp.path(),
            &["--plan", "--color", "always"],
            &[("NO_COLOR", "1")]
        )
        .stdout,
        coloured,
        "--color always is explicit: it wins over NO_COLOR"
    );
    let json = on_terminal(tmp.path(), "--plan --format json --color always", &[]);
    assert!(!json.contains('\x1b'), "JSON is never coloured:\n{json}");
}

#[test]
fn errors_are_red_on_a_terminal() {
    let tmp = container();
    let servicedirs = tmp.path().join("run/s6-rc/servicedirs");
    std::fs::remove_dir_all(&servicedirs).unwrap();
    std::fs::write(&servicedirs, "").unwrap();
    let (code, out) = on_terminal_exit(tmp.path(), "--plan", &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(|l| l
            == "\x1b[1;31merror:\x1b[0m unable to open /run/s6-rc/servicedirs: \
                is a regular file, not a directory"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// why a slot changes, and --diff

fn plan_lines(root: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--plan"];
    all.extend_from_slice(args);
    let out = reconcile_bare(root, &all, &[]);
    assert_eq!(out.code, Some(0), "{}", out);
    out.stdout.lines().map(str::to_string).collect()
}

fn plan_json(root: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--plan", "--format", "json"];
    all.extend_from_slice(args);
    let out = reconcile_bare(root, &all, &[]);
    assert_eq!(out.code, Some(0), "{}", out);
    serde_json::from_str(&out.stdout).expect("one JSON object")
}

/// The JSON change at `path`.
fn change_at<'a>(plan: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no change at {path}: {plan:#}"))
}

/// [`container`] after one apply: both slots published.
fn applied_container() -> tempfile::TempDir {
    let tmp = container();
    let out = reconcile_bare(tmp.path(), &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out);
    let lines = plan_lines(tmp.path(), &[]);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("No changes; 1 skipped."),
        "converged: {lines:#?}"
    );
    tmp
}

#[test]
fn a_new_slot_is_published_because_it_is_new() {
    let tmp = container();
    let lines = plan_lines(tmp.path(), &[]);
    for slot in ["gateway-alice", "gateway-default"] {
        let line = format!("  publish /run/service/{slot}  (new slot)");
        assert!(lines.contains(&line), "no {line:?} in {lines:#?}");
    }
    let plan = plan_json(tmp.path(), &[]);
    let c = change_at(&plan, "/run/service/gateway-alice");
    assert_eq!(c["op"], "publish");
    assert_eq!(c["reason"], "new slot");
    assert!(
        c.get("diff").is_none(),
        "no diff field without --diff: {c:#}"
    );
    // Other changes carry no reason.
    let chown = change_at(&plan, "/run/s6-rc/servicedirs/svc/supervise");
    assert!(chown.get("reason").is_none(), "{chown:#}");

    // --diff: every file of the new slot, against nothing.
    let lines = plan_lines(tmp.path(), &["--diff"]);
    let at = lines
        .iter()
        .position(|l| l == "  publish /run/service/gateway-alice  (new slot)")
        .unwrap();
    let run = std::fs::read_to_string(tmp.path().join("etc/passwd"))
        .map(|_| ())
        .ok();
    assert!(run.is_some());
    assert_eq!(
        lines[at + 1..at + 3],
        [
            "--- current /run/service/gateway-alice/type (absent)",
            "+++ planned /run/service/gateway-alice/type",
        ]
    );
    assert_eq!(lines[at + 3..at + 5], ["@@ -0,0 +1 @@", "+longrun"]);
    for file in ["run", "finish", "log/run"] {
        let header = format!("+++ planned /run/service/gateway-alice/{file}");
        assert!(lines.contains(&header), "no {header:?}: {lines:#?}");
    }
}

#[test]
fn a_replaced_slot_says_which_files_owners_and_modes_differ() {
    let tmp = applied_container();
    let slot = tmp.path().join("run/service/gateway-default");
    let planned_run = std::fs::read_to_string(slot.join("run")).unwrap();
    std::fs::write(slot.join("run"), format!("{planned_run}# tampered\n")).unwrap();
    let lines = plan_lines(tmp.path(), &[]);
    assert!(
        lines.contains(&"  replace /run/service/gateway-default  (run differs)".to_string()),
        "{lines:#?}"
    );

    // More differences: every one is named, files first.
    std::fs::write(slot.join("finish"), "#!/bin/sh\nexit 0\n").unwrap();
    nix::unistd::chown(
        &slot.join("supervise/control"),
        Some(0.into()),
        Some(0.into()),
    )
    .unwrap();
    std::fs::set_permissions(
        slot.join("log/run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o775),
    )
    .unwrap();
    std::fs::write(slot.join("notes.txt"), "mine\n").unwrap();
    let reason = "run, finish differ; owner of supervise/control 0:0 → 10000:10000; \
                  mode of log/run 0775 → 0755; extra notes.txt";
    let lines = plan_lines(tmp.path(), &[]);
    let line = format!("  replace /run/service/gateway-default  ({reason})");
    assert!(lines.contains(&line), "no {line:?} in {lines:#?}");
    let plan = plan_json(tmp.path(), &[]);
    let c = change_at(&plan, "/run/service/gateway-default");
    assert_eq!(
        (&c["op"], &c["reason"]),
        (&"replace".into(), &reason.into())
    );
}

#[test]
fn diff_shows_each_changed_slot_file_as_a_unified_diff() {
    let tmp = applied_container();
    let slot = tmp.path().join("run/service/gateway-default");
    let planned_run = std::fs::read_to_string(slot.join("run")).unwrap();
    std::fs::write(slot.join("run"), format!("{planned_run}# tampered\n")).unwrap();
    std::fs::set_permissions(
        slot.join("log/run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o775),
    )
    .unwrap();

    let planned: Vec<&str> = planned_run.lines().collect();
    let n = planned.len();
    assert!(n >= 3, "a run script of a few lines: {planned_run}");
    let want: Vec<String> = [
        "  replace /run/service/gateway-default  (run differs; mode of log/run 0775 → 0755)"
            .to_string(),
        "--- current /run/service/gateway-default/run".into(),
        "+++ planned /run/service/gateway-default/run".into(),
        format!("@@ -{},4 +{},3 @@", n - 2, n - 2),
        format!(" {}", planned[n - 3]),
        format!(" {}", planned[n - 2]),
        format!(" {}", planned[n - 1]),
        "-# tampered".into(),
    ]
    .into();
    let lines = plan_lines(tmp.path(), &["--diff"]);
    let at = lines
        .iter()
        .position(|l| l.starts_with("  replace "))
        .unwrap_or_else(|| panic!("no replace: {lines:#?}"));
    assert_eq!(lines[at..at + want.len()], want[..], "{lines:#?}");
    // Only the file whose content differs is diffed (log/run's mode is a
    // reason, not a diff), and the next line is the next change or section.
    assert!(
        !lines.iter().any(|l| l.ends_with("gateway-default/log/run")),
        "{lines:#?}"
    );

    // JSON: the same diff text in a "diff" field, with --diff only.
    let plan = plan_json(tmp.path(), &["--diff"]);
    let c = change_at(&plan, "/run/service/gateway-default");
    let text = c["diff"].as_str().expect("a diff string");
    assert_eq!(text.lines().collect::<Vec<_>>(), want[1..]);

    // On a terminal the diff is coloured: removals red, hunks cyan.
    let coloured = on_terminal(tmp.path(), "--plan --diff", &[]);
    assert!(
        coloured.lines().any(|l| l == "\x1b[31m-# tampered\x1b[0m"),
        "{coloured}"
    );
    assert!(
        coloured
            .lines()
            .any(|l| l == format!("\x1b[36m@@ -{},4 +{},3 @@\x1b[0m", n - 2, n - 2)),
        "{coloured}"
    );

    // Applied, nothing is left to diff.
    let out = reconcile_bare(tmp.path(), &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out);
    let lines = plan_lines(tmp.path(), &["--diff"]);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("No changes; 1 skipped."),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("---")), "{lines:#?}");
}

#[test]
fn a_down_only_change_says_so() {
    let tmp = applied_container();
    std::fs::write(
        tmp.path()
            .join("opt/data/profiles/alice/gateway_state.json"),
        "{\"gateway_state\": \"running\"}",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("opt/data/gateway_state.json"),
        "{\"gateway_state\": \"stopped\"}",
    )
    .unwrap();
    let lines = plan_lines(tmp.path(), &["--diff"]);
    for line in [
        "  create  /run/service/gateway-default/down  (down only: the profile is registered, not started)",
        "  unlink  /run/service/gateway-alice/down  (down only: the profile starts)",
    ] {
        assert!(lines.iter().any(|l| l == line), "no {line:?} in {lines:#?}");
    }
    assert!(!lines.iter().any(|l| l.starts_with("--- ")), "{lines:#?}");
    let plan = plan_json(tmp.path(), &[]);
    assert_eq!(
        change_at(&plan, "/run/service/gateway-alice/down")["reason"],
        "down only: the profile starts"
    );
}

// ---------------------------------------------------------------------------
// the newcomer's example

/// docs/tree-format.md's example, as written for a root shell: materialize the
/// bundled description, apply it (exit 0, no error: the volume is the
/// user's), and a snapshot of the result has nothing left to do.
#[test]
fn the_bundled_example_applies_cleanly() {
    require_root();
    let tmp = tree::temp_root("operator-example");
    let root = tmp.path().join("example-root");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tree.yaml");
    let run = |args: &[&std::ffi::OsStr]| run(bare_cmd(args));
    let out = run(&["materialize".as_ref(), example.as_ref(), root.as_ref()]);
    assert_eq!(out.code, Some(0), "{}", out);
    let out = run(&["--root".as_ref(), root.as_ref()]);
    assert_eq!(out.code, Some(0), "apply: {}", out);
    let text = &out.stdout;
    assert!(
        !text.contains("error")
            && text
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("reconcile: Applied ")),
        "{}",
        out
    );
    assert!(
        text.contains("reconcile: profile=alice prior_state=running action=started\n"),
        "{}",
        out
    );
    let out = run(&["snapshot".as_ref(), "--root".as_ref(), root.as_ref()]);
    assert_eq!(out.code, Some(0), "{}", out);
    let after = tmp.path().join("after.yaml");
    std::fs::write(&after, &out.stdout).unwrap();
    let out = run(&["--check".as_ref(), "--tree".as_ref(), after.as_ref()]);
    assert_eq!(out.code, Some(0), "nothing left to do: {}", out);
}
