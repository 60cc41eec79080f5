//! Live s6 test of the runtime service (docs/runtime.md): the packaged
//! `s6-reconcile-runtime` longrun, installed in a temp root as s6-rc-init
//! leaves a longrun (down, supervised), supervised by a real `s6-svscan`,
//! and the application's request, `s6-svc -ru -wR -T <ms>`, made as uid
//! 10000 after creating or deleting a profile.
//!
//! The run and finish are the packaged ones; only the run's shebang
//! (`/command/with-contenv sh`, s6-overlay's) becomes `/bin/sh` with a `PATH`
//! that finds `reconcile` (a wrapper adding `--root`) and s6-overlay's own
//! `s6-pause` (unpacked from the release tarball: Debian's `s6` lacks it).
//! Needs root, the `s6` package and the s6-overlay tarballs: fails, never
//! skips, without them.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use common::overlay;
use common::s6::*;

const HOME: &str = "opt/data";
const RUNTIME: &str = "s6-reconcile-runtime";
const RECORDS: &str = "run/s6-reconcile";

struct Setup {
    live: LiveS6,
    logs: PathBuf,
}

impl Setup {
    /// A booted root: the volume with profile `alpha` (running), the
    /// configuration (`prune: false`), the runtime longrun supervised
    /// down, the boot apply done as root, then the longrun started as
    /// s6-rc starts it (its first pass).
    fn boot() -> Setup {
        let live = LiveS6::start();
        let logs = live.tmp().join("gateway-logs");
        mkdir(&logs, 0o755);
        let mut s = Setup { live, logs };
        s.write_volume();
        s.write_config();
        s.install_runtime();
        reconcile(s.root(), &[]).assert_ok();
        let dir = s.runtime();
        s6_as_root("s6-svc", &[&"-u", &"-wU", &"-T", &"10000", &dir]).assert_ok();
        s
    }

    fn root(&self) -> &Path {
        self.live.root()
    }

    fn home(&self) -> PathBuf {
        self.root().join(HOME)
    }

    fn slot(&self, name: &str) -> PathBuf {
        self.live.slot(&format!("gateway-{name}"))
    }

    /// The runtime service as the application names it.
    fn runtime(&self) -> PathBuf {
        self.live.slot(RUNTIME)
    }

    fn record(&self, name: &str) -> serde_json::Value {
        let path = self.root().join(RECORDS).join(name);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
    }

    fn sequence(&self) -> u64 {
        self.record("last.json")["sequence"]
            .as_u64()
            .expect("a sequence")
    }

    fn write_volume(&self) {
        mkdir(&self.root().join("opt"), 0o755);
        mkdir(&self.home(), 0o755);
        mkdir(&self.home().join("profiles"), 0o755);
        let alpha = self.home().join("profiles/alpha");
        mkdir(&alpha, 0o755);
        write_file(&alpha.join("SOUL.md"), "# alpha\n", 0o644);
        write_file(
            &alpha.join("gateway_state.json"),
            r#"{"desired_state":"running"}"#,
            0o644,
        );
        let home = self.home();
        as_root(&["chown", "-R", "10000:10000", home.to_str().unwrap()]).assert_ok();
    }

    fn write_config(&self) {
        let dir = self.root().join("etc/s6-reconcile");
        if !dir.exists() {
            mkdir(&dir, 0o755);
        }
        let config = format!(
            "profiles:\n  prune: false\n  templates:\n    run: |\n      #!/bin/sh\n      \
             exec sleep 3600\n    log_run: |\n      #!/bin/sh\n      \
             exec cat > /dev/null\n    finish: |\n      #!/bin/sh\n      \
             echo finished >> {logs}/{{profile}}.finished\n",
            logs = self.logs.display(),
        );
        write_file(&dir.join("config.yaml"), &config, 0o644);
    }

    /// The packaged longrun in the servicedirs, down (as s6-rc-init leaves
    /// it before the oneshot ran), linked into the scandir and supervised.
    fn install_runtime(&mut self) {
        let bin = self.live.tmp().join("bin");
        mkdir(&bin, 0o755);
        let utils = overlay::portable_utils(self.live.tmp());
        write_file(
            &bin.join("reconcile"),
            &format!(
                "#!/bin/sh\nexec {} --root {} \"$@\"\n",
                env!("CARGO_BIN_EXE_reconcile"),
                self.root().display()
            ),
            0o755,
        );
        let pkg = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packaging/s6-rc.d")
            .join(RUNTIME);
        let dir = self.live.servicedir(RUNTIME);
        mkdir(&dir, 0o755);
        for f in ["type", "notification-fd", "timeout-up"] {
            fs::copy(pkg.join(f), dir.join(f)).unwrap();
        }
        fs::copy(pkg.join("finish"), dir.join("finish")).unwrap();
        let run = fs::read_to_string(pkg.join("run")).unwrap();
        let body = run
            .strip_prefix("#!/command/with-contenv sh\n")
            .expect("the packaged run's shebang");
        let run = format!(
            "#!/bin/sh\nPATH={}:{}:$PATH\n{body}",
            bin.display(),
            utils.display()
        );
        write_file(&dir.join("run"), &run, 0o755);
        write_file(&dir.join("down"), "", 0o644);
        symlink(&dir, self.runtime()).unwrap();
        s6_as_root("s6-svscanctl", &[&"-a", &self.live.scandir()]).assert_ok();
        self.live
            .wait_until("the runtime service supervised", || is_supervised(&dir));
    }

    /// The application's request, as uid 10000.
    fn pass(&self) -> Run {
        let dir = self.runtime();
        s6_as_user("s6-svc", &[&"-ru", &"-wR", &"-T", &"10000", &dir])
    }
}

fn inode(path: &Path) -> u64 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

#[test]
fn a_pass_on_request_publishes_and_retires_slots_and_leaves_the_rest_alone() {
    let mut s = Setup::boot();
    // The boot apply's report, and the first pass when the service started.
    assert_eq!(s.record("boot.json")["exit"], 0);
    assert!(s.record("boot.json").get("sequence").is_none());
    assert_eq!(s.sequence(), 1);
    let boot_json = fs::read(s.root().join(RECORDS).join("boot.json")).unwrap();
    for (path, mode) in [(RECORDS, 0o755), ("run/s6-reconcile/last.json", 0o644)] {
        assert_owner_mode(&s.root().join(path), 0, 0, mode);
    }
    let alpha = s.slot("alpha");
    s.live
        .wait_until("alpha up", || is_supervised(&alpha) && is_up(&alpha));
    let alpha_inode = inode(&alpha);
    let boot_log = s.home().join("logs/container-boot.log");
    let boot_log_text = fs::read_to_string(&boot_log).expect("the boot log");
    // A live gateway's pid file: a runtime pass must not take it for stale.
    let pid_file = s.home().join("profiles/alpha/gateway.pid");
    as_user(&["sh", "-c", &format!("echo 4242 > {}", pid_file.display())]).assert_ok();

    // `hermes profile create bravo`, then the request.
    let bravo_dir = s.home().join("profiles/bravo");
    as_user(&[
        "sh",
        "-c",
        &format!(
            "mkdir {d} && echo '# bravo' > {d}/SOUL.md && \
             echo '{{\"desired_state\":\"running\"}}' > {d}/gateway_state.json",
            d = bravo_dir.display()
        ),
    ])
    .assert_ok();
    s.pass().assert_ok();
    assert_eq!(s.sequence(), 2);
    let last = s.record("last.json");
    assert_eq!(last["exit"], 0, "{last:#}");
    assert_eq!(last["mode"], "apply");
    let bravo = s.slot("bravo");
    s.live.wait_until("bravo published, supervised and up", || {
        is_supervised(&bravo) && is_up(&bravo)
    });
    assert_eq!(inode(&alpha), alpha_inode, "alpha's slot was left alone");
    assert!(
        pid_file.exists(),
        "a live gateway's gateway.pid was removed"
    );
    assert_eq!(
        fs::read_to_string(&boot_log).unwrap(),
        boot_log_text,
        "a runtime pass wrote the boot log"
    );

    // `hermes profile delete bravo`: retired although prune is false.
    as_user(&["rm", "-rf", bravo_dir.to_str().unwrap()]).assert_ok();
    s.pass().assert_ok();
    assert_eq!(s.sequence(), 3);
    assert!(!bravo.exists(), "bravo's slot is still there");
    assert!(
        !s.live.scandir().join(".gateway-bravo.retired").exists(),
        "the retired tree was left"
    );
    let finished = fs::read_to_string(s.logs.join("bravo.finished")).unwrap_or_default();
    assert_eq!(finished, "finished\n", "bravo's finish ran once");
    assert_eq!(inode(&alpha), alpha_inode);
    assert!(pid_file.exists());
    assert_eq!(fs::read_to_string(&boot_log).unwrap(), boot_log_text);
    assert_eq!(
        fs::read(s.root().join(RECORDS).join("boot.json")).unwrap(),
        boot_json,
        "a runtime pass overwrote boot.json"
    );
}

#[test]
fn a_failed_pass_fails_the_callers_wait_and_says_why_in_last_json() {
    let s = Setup::boot();
    assert_eq!(s.sequence(), 1);
    // The operator breaks the configuration: the next pass exits 100.
    write_file(
        &s.root().join("etc/s6-reconcile/config.yaml"),
        "profiles: [\n",
        0o644,
    );
    let r = s.pass();
    r.assert_exit(1);
    assert!(r.stderr.contains("failed permanently"), "{r}");
    assert_eq!(s.sequence(), 2);
    let last = s.record("last.json");
    assert_eq!(last["exit"], 100, "{last:#}");
    let error = last["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("config.yaml"), "{last:#}");
    let dir = s.runtime();
    assert_eq!(svstat(&dir, "up").as_deref(), Some("false"));
    // Fixed, the next request passes again (`-u` brings it back up).
    s.write_config();
    s.pass().assert_ok();
    assert_eq!(s.sequence(), 3);
    assert_eq!(s.record("last.json")["exit"], 0);
}
