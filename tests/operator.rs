//! The operator's interface, as an operator meets it on a terminal or in a
//! boot log: what `-v` logs, how `S6_VERBOSITY` quiets a run, what
//! `--print-config` prints, when colour is used, why a slot changes and the
//! `--diff` of its files. Each test runs the real binary on a tree built
//! from a description and checks exact lines and exit codes.
//!
//! Needs root (the trees have owners); CI runs as root.

mod common;

use std::path::Path;
use std::process::{Command, Output};

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

/// `reconcile ARGS --root ROOT` with a clean environment plus `env`.
fn reconcile(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reconcile"));
    cmd.args(args).arg("--root").arg(root).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run reconcile")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("UTF-8 stderr")
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
    let out = reconcile(tmp.path(), &["--plan", "-v"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l == "reconcile: info: user hermes = 10000:10000, policy compat"),
        "{}",
        describe(&out)
    );

    write_config(tmp.path(), "policy: strict\n");
    let out = reconcile(tmp.path(), &["--plan", "-v"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l == "reconcile: info: user hermes = 10000:10000, policy strict"),
        "{}",
        describe(&out)
    );
}
