//! Booting the real s6-overlay `/init` with `reconcile` installed the way
//! `packaging/` says, without a container runtime.
//!
//! The release tarballs come from `$S6_OVERLAY_DIST`, else from
//! `../shared/s6-overlay-3.2.3.2/` next to the repository (CI keeps them
//! there); they are checked against their `SHA256SUMS`. Without them the
//! tests fail naming what they need: they never skip. (Downloading the
//! pinned release is left out: test machines have no network.)
//!
//! An [`Image`] is a root in a temp dir: the tarballs unpacked at its `/`
//! (unpacked once per test binary, copied per image), the host's `/usr`
//! (read-only, through an overlay that adds the image's own files such as
//! `/usr/local/bin/reconcile`), the merged-usr links, a private `/etc` with
//! the user `hermes` (10000:10000), the volume `/opt/data`, and a static
//! longrun `cron` of the image's own. [`Image::boot`] runs `/init` as PID 1
//! of new PID, mount, UTS and IPC namespaces under `timeout`, with `/proc`,
//! `/sys`, `/dev` and `/run` mounted as a container runtime would, a clean
//! environment plus the image's `ENV`, and the container's command as
//! `/init`'s arguments. Every mount lives in the boot's own mount namespace
//! and every process in its PID namespace, so both go when the boot ends,
//! whatever the test did; the temp dir goes when the [`Image`] drops.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

/// The s6-overlay release the tests boot.
pub const VERSION: &str = "3.2.3.2";
const TARBALLS: [&str; 2] = ["s6-overlay-noarch.tar.xz", "s6-overlay-x86_64.tar.xz"];

/// The longest a boot, the container's command and the shutdown included,
/// may take before it counts as hung (the test then fails with the end of
/// the container log).
pub const BOOT_DEADLINE_SECS: u32 = 45;

/// The image's `PATH` (Debian's), which s6-overlay keeps and extends.
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the tarballs are, checked against `SHA256SUMS`.
pub fn dist() -> PathBuf {
    let (dir, from) = match std::env::var_os("S6_OVERLAY_DIST") {
        Some(d) if !d.is_empty() => (PathBuf::from(d), "$S6_OVERLAY_DIST"),
        _ => (
            repo().join(format!("../shared/s6-overlay-{VERSION}")),
            "the default (no $S6_OVERLAY_DIST)",
        ),
    };
    let missing: Vec<&str> = TARBALLS
        .iter()
        .chain(["SHA256SUMS"].iter())
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the boot tests need the s6-overlay {VERSION} release tarballs \
         ({}) and their SHA256SUMS in one directory: set S6_OVERLAY_DIST to it, \
         or put it at ../shared/s6-overlay-{VERSION}/ next to the repository. \
         {} is {} and lacks {missing:?}",
        TARBALLS.join(", "),
        from,
        dir.display()
    );
    let out = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .expect("run sha256sum");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && TARBALLS.iter().all(|t| text.contains(&format!("{t}: OK"))),
        "s6-overlay tarballs in {} do not match their SHA256SUMS:\n{text}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// The two tarballs unpacked into one tree, once per test binary.
fn unpacked() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dist = dist();
        let base = process_dir("s6-overlay-unpacked");
        for t in TARBALLS {
            sh_ok(
                Command::new("tar")
                    .arg("-C")
                    .arg(&base)
                    .arg("-Jxpf")
                    .arg(dist.join(t)),
            );
        }
        base
    })
}

/// The `.deb` that `packaging/build-deb.sh` builds, unpacked (`dpkg-deb -x`)
/// once per test binary.
fn deb_tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let out = process_dir("boot-deb");
        let built = Command::new(repo().join("packaging/build-deb.sh"))
            .arg(&out)
            .current_dir(repo())
            .stderr(Stdio::inherit())
            .output()
            .expect("run build-deb.sh");
        assert!(built.status.success(), "packaging/build-deb.sh failed");
        let deb = String::from_utf8_lossy(&built.stdout).trim().to_string();
        let tree = out.join("tree");
        sh_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree));
        tree
    })
}

/// A new directory `<name>-<pid>` in cargo's temp dir for this test
/// process, after removing those of processes that are gone (two runs at
/// once each keep their own).
fn process_dir(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let prefix = format!("{name}-");
    for entry in fs::read_dir(tmp).into_iter().flatten().flatten() {
        let file = entry.file_name();
        let pid = file.to_str().and_then(|f| f.strip_prefix(&prefix));
        if pid.is_some_and(|p| !Path::new("/proc").join(p).exists()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!("{prefix}{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

fn sh_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How `reconcile` is installed, as `packaging/` describes each form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `Dockerfile.example`: the binary in `/usr/local/bin`, the s6-rc
    /// oneshot and its entry in `user-bundles.d` (s6-overlay 3.2.3.1+).
    S6Rc,
    /// The binary in `/usr/local/bin`, `cont-init.d/99-s6-reconcile`.
    ContInit,
    /// The `.deb` (binary in `/usr/bin`), its s6-rc oneshot copied from
    /// `/usr/share/s6-reconcile` into `/etc/s6-overlay` as docs/packaging.md says.
    Deb,
    /// The s6-rc oneshot with its `user` entry in the layout of s6-overlay
    /// before 3.2.3.1 (`/etc/s6-overlay/s6-rc.d/user/contents.d/`).
    OldLayout,
}

/// A container image's root, ready to boot (see the module comment).
pub struct Image {
    dir: TempDir,
}

/// What one boot left: `/init`'s exit code, its output (the container log),
/// and the `name=code` lines the command wrote to `/results/codes`.
pub struct Boot {
    pub code: i32,
    pub log: String,
    pub codes: BTreeMap<String, i32>,
}

impl Boot {
    /// The exit code the command recorded for check `name`.
    #[track_caller]
    pub fn code(&self, name: &str) -> i32 {
        *self
            .codes
            .get(name)
            .unwrap_or_else(|| panic!("the command recorded no check {name:?}\n{self}"))
    }

    /// Check `name` exited `code`.
    #[track_caller]
    pub fn assert_code(&self, name: &str, code: i32) -> &Self {
        assert_eq!(self.code(name), code, "check {name}\n{self}");
        self
    }

    /// Each of `names` exited `code`.
    #[track_caller]
    pub fn assert_codes(&self, names: &[&str], code: i32) -> &Self {
        for name in names {
            self.assert_code(name, code);
        }
        self
    }

    /// The log (s6-overlay's, the boot apply's, the command's) has `text`.
    #[track_caller]
    pub fn assert_logged(&self, text: &str) -> &Self {
        assert!(self.log.contains(text), "no {text:?} in the log\n{self}");
        self
    }

    /// The lines written before the container's command began (its
    /// first line is `--- check ...`): s6-overlay's, s6-rc's and the boot
    /// apply's.
    pub fn boot_lines(&self) -> Vec<&str> {
        self.log
            .lines()
            .take_while(|l| !l.starts_with("--- "))
            .collect()
    }

    /// Every boot line is s6-overlay's own (named by its program, as
    /// [`S6_OVERLAY_PREFIXES`]) or starts with `reconcile: `, and the
    /// apply's one summary line is there (docs/boot-output.md).
    #[track_caller]
    pub fn assert_reconcile_lines_prefixed(&self) -> &Self {
        let lines = self.boot_lines();
        for line in &lines {
            assert!(
                line.starts_with("reconcile: ")
                    || S6_OVERLAY_PREFIXES.iter().any(|p| line.starts_with(p)),
                "a boot line neither s6-overlay's nor prefixed `reconcile: `: {line:?}\n{self}"
            );
        }
        let summaries = lines
            .iter()
            .filter(|l| {
                l.starts_with("reconcile: Applied ") || l.starts_with("reconcile: No changes")
            })
            .count();
        assert_eq!(summaries, 1, "one summary line per boot\n{self}");
        self
    }

    /// Check `name` exited nonzero.
    #[track_caller]
    pub fn assert_failed(&self, name: &str) -> &Self {
        assert_ne!(self.code(name), 0, "check {name} should fail\n{self}");
        self
    }
}

impl std::fmt::Display for Boot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "/init exit {}\nchecks: {:?}\n--- container log\n{}",
            self.code, self.codes, self.log
        )
    }
}

/// How s6-overlay 3.2.3.2's own boot lines start: each names its program.
pub const S6_OVERLAY_PREFIXES: [&str; 6] = [
    "s6-rc: ",
    "cont-init: ",
    "cont-finish: ",
    "services-up: ",
    "/package/admin/s6-overlay",
    "/run/s6/basedir/",
];

/// Shell functions for the container's command: `check NAME CMD...` runs
/// CMD (output to the container log) and records `NAME=<exit code>`;
/// `user CMD...` runs CMD as hermes with the container environment;
/// `wait_for NAME TEST...` polls TEST (10 s deadline) and records whether it
/// became true.
pub const PRELUDE: &str = r#"#!/bin/sh
check() { name=$1; shift; echo "--- check $name: $*"; "$@"; echo "$name=$?" >>/results/codes; }
user() { with-contenv s6-setuidgid hermes "$@"; }
wait_for() {
  name=$1; shift; n=0
  until "$@"; do
    n=$((n + 1))
    if [ "$n" -ge 100 ]; then echo "$name=1" >>/results/codes; echo "--- $name: timed out"; return; fi
    sleep 0.1
  done
  echo "$name=0" >>/results/codes
}
exec 2>&1
"#;

impl Image {
    /// A fresh image with `reconcile` installed in `form`, a volume with
    /// no profiles yet, and the static longrun `cron`.
    pub fn new(form: Form) -> Image {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the boot tests need root (namespaces, mounts, chroot): run them as root, as CI does"
        );
        let dir = tempfile::Builder::new()
            .prefix("boot-")
            .tempdir()
            .expect("temp dir");
        let img = Image { dir };
        let root = img.root();
        fs::create_dir(&root).unwrap();
        sh_ok(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", unpacked().display()))
                .arg(&root),
        );
        for (link, target) in [
            ("bin", "usr/bin"),
            ("sbin", "usr/sbin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            symlink(target, root.join(link)).unwrap();
        }
        fs::create_dir(img.dir.path().join("results")).unwrap();
        for d in ["usr", "proc", "sys", "dev", "run", "var", "root", "results"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        img.mkdir("tmp", 0o1777);
        symlink("/run", root.join("var/run")).unwrap();
        img.write(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000::/opt/data:/usr/sbin/nologin\n",
            0o644,
        );
        img.write("etc/group", "root:x:0:\nhermes:x:10000:\n", 0o644);
        img.user_dir("opt/data");
        img.user_dir("opt/data/profiles");
        // The image's own static longrun.
        img.write("etc/s6-overlay/s6-rc.d/cron/type", "longrun\n", 0o644);
        img.write(
            "etc/s6-overlay/s6-rc.d/cron/run",
            "#!/bin/sh\nexec sleep 100000\n",
            0o755,
        );
        img.write("etc/s6-overlay/s6-rc.d/cron/dependencies.d/base", "", 0o644);
        img.write(
            "etc/s6-overlay/user-bundles.d/user/contents.d/cron",
            "",
            0o644,
        );
        // The application the default slot scripts start: a stand-in that
        // stays up until SIGTERM.
        img.write(
            "usr-layer/local/bin/hermes",
            "#!/bin/sh\nexec sleep 100000\n",
            0o755,
        );
        img.install(form);
        img
    }

    fn install(&self, form: Form) {
        let pkg = repo().join("packaging");
        let cp_r = |from: PathBuf, to: &str| {
            let to = self.root().join(to);
            fs::create_dir_all(&to).unwrap();
            sh_ok(
                Command::new("cp")
                    .arg("-r")
                    .arg(format!("{}/.", from.display()))
                    .arg(&to),
            );
        };
        if form != Form::Deb {
            let bin = self.dir.path().join("usr-layer/local/bin/reconcile");
            fs::copy(env!("CARGO_BIN_EXE_reconcile"), &bin).expect("copy reconcile");
        }
        match form {
            Form::S6Rc => {
                // Dockerfile.example also installs the documented configuration.
                let config = fs::read_to_string(pkg.join("config.yaml")).unwrap();
                self.config(&config);
                cp_r(pkg.join("s6-rc.d"), "etc/s6-overlay/s6-rc.d");
                cp_r(pkg.join("user-bundles.d"), "etc/s6-overlay/user-bundles.d");
            }
            Form::ContInit => {
                cp_r(pkg.join("cont-init.d"), "etc/cont-init.d");
            }
            Form::OldLayout => {
                cp_r(pkg.join("s6-rc.d"), "etc/s6-overlay/s6-rc.d");
                cp_r(
                    pkg.join("user-bundles.d/user/contents.d"),
                    "etc/s6-overlay/s6-rc.d/user/contents.d",
                );
            }
            Form::Deb => {
                let tree = deb_tree();
                cp_r(tree.join("usr"), "../usr-layer");
                let share = tree.join("usr/share/s6-reconcile");
                cp_r(share.join("s6-rc.d"), "etc/s6-overlay/s6-rc.d");
                cp_r(
                    share.join("user-bundles.d"),
                    "etc/s6-overlay/user-bundles.d",
                );
            }
        }
    }

    /// The image's `/`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Write `text` at `rel` in the root (`usr-layer/...` is the image's
    /// part of `/usr`), parents created.
    pub fn write(&self, rel: &str, text: &str, mode: u32) {
        let path = if let Some(r) = rel.strip_prefix("usr-layer/") {
            self.dir.path().join("usr-layer").join(r)
        } else {
            self.root().join(rel)
        };
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mkdir(&self, rel: &str, mode: u32) {
        let path = self.root().join(rel);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A directory of the user's in the root.
    pub fn user_dir(&self, rel: &str) {
        self.mkdir(rel, 0o755);
        chown_user(&self.root().join(rel));
    }

    /// `/etc/s6-reconcile/config.yaml`.
    pub fn config(&self, yaml: &str) {
        self.write("etc/s6-reconcile/config.yaml", yaml, 0o644);
    }

    /// A profile in the volume with `SOUL.md` and, if given, its state.
    pub fn profile(&self, name: &str, state: Option<&str>) {
        let dir = format!("opt/data/profiles/{name}");
        self.user_dir(&dir);
        self.user_file(&format!("{dir}/SOUL.md"), &format!("# {name}\n"));
        if let Some(s) = state {
            let json = format!("{{\"desired_state\": \"{s}\"}}\n");
            self.user_file(&format!("{dir}/gateway_state.json"), &json);
        }
    }

    /// A file of the user's in the root.
    pub fn user_file(&self, rel: &str, text: &str) {
        self.write(rel, text, 0o644);
        chown_user(&self.root().join(rel));
    }

    /// Boot `/init` with the image's `ENV` (`S6_BEHAVIOUR_IF_STAGE2_FAILS=2`,
    /// as `Dockerfile.example` sets, and `env`) and `script` (after
    /// [`PRELUDE`]) as the container's command. `read_only` mounts the
    /// image's root read-only, as `docker run --read-only` does.
    pub fn boot(&self, env: &[(&str, &str)], script: &str, read_only: bool) -> Boot {
        let _ = fs::remove_file(self.dir.path().join("results/codes"));
        self.write("cmd.sh", &format!("{PRELUDE}{script}"), 0o755);
        let log_path = self.dir.path().join("container.log");
        let log = fs::File::create(&log_path).expect("create log");
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", &BOOT_DEADLINE_SECS.to_string()])
            .args(["unshare", "--pid", "--fork", "--kill-child", "--mount"])
            .args(["--uts", "--ipc", "--propagation", "private"])
            .args(["sh", "-euc", MOUNT_AND_EXEC, "boot"])
            .arg(self.root())
            .arg(self.dir.path().join("usr-layer"))
            .arg(if read_only { "ro" } else { "rw" })
            .args(["/usr/bin/env", "-i", &format!("PATH={IMAGE_PATH}")])
            .args(["HOME=/root", "S6_BEHAVIOUR_IF_STAGE2_FAILS=2"])
            .args(env.iter().map(|(k, v)| format!("{k}={v}")))
            .args(["/init", "/cmd.sh"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let status = cmd.status().expect("run timeout/unshare");
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        // timeout exits 124 after its TERM, or dies of the KILL it sends
        // 5 s later (the hung /init ignores the TERM unshare forwards).
        let code = status.code().unwrap_or(-1);
        if code == 124 || code == 137 || status.code().is_none() {
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "the boot hung: /init still running after {BOOT_DEADLINE_SECS} s \
                 ({status}); the container log ends with:\n{}",
                tail.join("\n")
            );
        }
        let codes = fs::read_to_string(self.dir.path().join("results/codes"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim().parse().unwrap_or(-1)))
            .collect();
        Boot { code, log, codes }
    }
}

fn chown_user(path: &Path) {
    let id = Some(nix::unistd::Uid::from_raw(10000));
    let gid = Some(nix::unistd::Gid::from_raw(10000));
    nix::unistd::chown(path, id, gid).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// Run inside the new namespaces: what a container runtime gives `/init`
/// (s6-overlay's README for these tarballs lists it), then exec `/init`
/// chrooted. `$1` root, `$2` the image's layer over the host's `/usr`, `$3`
/// rw|ro, the rest the command (env -i ... /init CMD).
const MOUNT_AND_EXEC: &str = r#"
R=$1; L=$2; M=$3; shift 3
if [ "$M" = ro ]; then
  mount --bind "$R" "$R"; mount -o remount,bind,ro "$R"
  # The volume stays writable, as a volume does under --read-only.
  mount --bind "$R/opt/data" "$R/opt/data"; mount -o remount,bind,rw "$R/opt/data"
fi
mount -t overlay overlay -o "lowerdir=$L:/usr" "$R/usr"
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=755,nosuid tmpfs "$R/dev"
for d in null zero full random urandom tty; do
  touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
for i in 0:stdin 1:stdout 2:stderr; do ln -s "/proc/self/fd/${i%%:*}" "$R/dev/${i#*:}"; done
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount --bind "$R/../results" "$R/results"
exec chroot "$R" "$@"
"#;

/// s6-overlay's own `s6-portable-utils` commands (`s6-pause`, which the
/// runtime longrun execs and Debian's `s6` lacks), unpacked from the
/// release tarball under `into`: the directory holding them.
pub fn portable_utils(into: &Path) -> PathBuf {
    let arch = dist().join(TARBALLS[1]);
    sh_ok(
        Command::new("tar")
            .arg("-xJf")
            .arg(&arch)
            .arg("-C")
            .arg(into)
            .args([
                "--wildcards",
                "./package/admin/s6-portable-utils-*/command/*",
            ]),
    );
    let admin = into.join("package/admin");
    let dir = fs::read_dir(&admin)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("s6-portable-utils-"))
        .expect("s6-portable-utils in the tarball");
    dir.join("command")
}
