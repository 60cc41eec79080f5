//! Small roots for the hostile-input tests: accounts, a root-only shadow
//! file, a volume with two profiles, a scandir as s6-svscan leaves it.

use super::tree;

/// Accounts, a root-only shadow file, a volume with the default profile and
/// one named profile (`good`, running), and a scandir as s6-svscan leaves it.
pub const BASE: &str = r##"
- {path: etc, type: dir}
- {path: etc/passwd, type: file, content: "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000::/opt/data:/bin/sh\n"}
- {path: etc/group, type: file, content: "root:x:0:\nhermes:x:10000:\n"}
- {path: etc/shadow, type: file, mode: "0600", content: "root:*:19000::::::\n"}
- {path: opt, type: dir}
- {path: opt/data, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/SOUL.md, type: file, uid: 10000, gid: 10000, content: "# default\n"}
- {path: opt/data/profiles, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/good, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/good/SOUL.md, type: file, uid: 10000, gid: 10000, content: "# good\n"}
- {path: opt/data/profiles/good/gateway_state.json, type: file, uid: 10000, gid: 10000, content: "{\"desired_state\": \"running\"}\n"}
- {path: run, type: dir}
- {path: run/service, type: dir}
- {path: run/service/.s6-svscan, type: dir, mode: "0700"}
- {path: run/service/.s6-svscan/control, type: fifo, mode: "0600"}
"##;

/// The scanner's lock, as a running s6-svscan leaves it (for roots that
/// want `.s6-svscan/` whole).
pub const SVSCAN_LOCK: &str = "- {path: run/service/.s6-svscan/lock, type: file, mode: \"0600\"}\n";

pub fn root_with(extra: &str) -> tempfile::TempDir {
    assert!(tree::is_root(), "hostile-input tests need root");
    let dir = tree::temp_root("hostile-");
    tree::materialise_yaml(dir.path(), &format!("{BASE}{extra}"))
        .unwrap_or_else(|e| panic!("tree: {e}"));
    dir
}

/// Tree lines for `/etc/s6-reconcile/config.yaml` holding `yaml`.
pub fn config(yaml: &str) -> String {
    format!(
        "- {{path: etc/s6-reconcile, type: dir}}\n\
         - {{path: etc/s6-reconcile/config.yaml, type: file, content: {}}}\n",
        tree::quote(yaml)
    )
}

/// One static service (`cron`) as s6-rc-init leaves it once supervised,
/// linked into the scandir.
pub const CRON: &str = r##"
- {path: run/s6-rc, type: dir}
- {path: run/s6-rc/servicedirs, type: dir}
- {path: run/s6-rc/servicedirs/cron, type: dir}
- {path: run/s6-rc/servicedirs/cron/run, type: file, mode: "0755", content: "#!/bin/sh\nexec cron -f\n"}
- {path: run/s6-rc/servicedirs/cron/event, type: dir, mode: "3730"}
- {path: run/s6-rc/servicedirs/cron/supervise, type: dir, mode: "0700"}
- {path: run/s6-rc/servicedirs/cron/supervise/control, type: fifo, mode: "0600"}
- {path: run/s6-rc/servicedirs/cron/supervise/lock, type: file}
- {path: run/service/cron, type: symlink, target: /run/s6-rc/servicedirs/cron}
"##;
