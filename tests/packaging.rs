//! Packaging (docs/packaging.md, README "Installing at boot"): the static binary, the init definitions, the
//! example configuration and the Debian package, tested as an operator would
//! meet them: the binary alone in an empty chroot, the package installed
//! with dpkg, the cont-init script run against a tree.
//!
//! Needs root (chroot, dpkg --root, chown); CI runs as root. The static
//! release build takes a minute or more the first time; it is built once per
//! test process and shared.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::run::owner_mode;
use nix::sys::stat::Mode;
use s6_reconcile::desired::config::{Config, Policy, Principal};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "tests/packaging.rs must run as root (chroot, dpkg --root, chown); \
         run `cargo test` as root, as CI does"
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("unable to run {cmd:?}: {e}"))
}

/// A program's path from this process's PATH (the commands below run with
/// a PATH of their own).
fn which(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH (Debian package execline)"))
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout_line(out: &Output) -> String {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 output")
        .trim_end()
        .to_string()
}

/// The static binary, built once by `packaging/build-static.sh`.
fn static_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = run(Command::new(repo().join("packaging/build-static.sh")).current_dir(repo()));
        assert!(
            out.status.success(),
            "build-static.sh failed: {}",
            describe(&out)
        );
        let path = PathBuf::from(stdout_line(&out));
        assert!(
            path.is_absolute() && path.is_file(),
            "build-static.sh must print the binary's path, printed {path:?}"
        );
        path
    })
}

/// A temp dir that uid 10000 can search (`mktemp -d` makes it 0700), since
/// reconcile does part of its work with the user's credentials.
fn searchable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
    dir
}

fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mkfifo(path: &Path, mode: u32) {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(mode))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A container root as s6-overlay leaves it when cont-init runs: one static
/// service `svc` supervised by root, one internal `s6rc-fdholder`, the
/// scandir with its `.s6-svscan/`, the user in passwd/group, the volume.
fn make_container_root(root: &Path) {
    mkdir(&root.join("etc"), 0o755);
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000:hermes:/opt/data:/usr/sbin/nologin\n",
        0o644,
    );
    write(
        &root.join("etc/group"),
        "root:x:0:\nhermes:x:10000:\n",
        0o644,
    );
    for name in ["svc", "s6rc-fdholder"] {
        let sd = root.join("run/s6-rc/servicedirs").join(name);
        mkdir(&sd, 0o755);
        write(&sd.join("type"), "longrun\n", 0o644);
        write(&sd.join("run"), "#!/bin/sh\nexec sleep 1000\n", 0o755);
        mkdir(&sd.join("event"), 0o3730);
        mkdir(&sd.join("supervise"), 0o700);
        mkfifo(&sd.join("supervise/control"), 0o600);
        write(&sd.join("supervise/lock"), "", 0o644);
        write(&sd.join("supervise/status"), "", 0o644);
    }
    mkdir(&root.join("run/service/.s6-svscan"), 0o755);
    mkfifo(&root.join("run/service/.s6-svscan/control"), 0o600);
    write(&root.join("run/service/.s6-svscan/lock"), "", 0o644);
    std::os::unix::fs::symlink("/run/s6-rc/servicedirs/svc", root.join("run/service/svc"))
        .expect("symlink");
    mkdir(&root.join("opt/data"), 0o755);
    nix::unistd::chown(
        &root.join("opt/data"),
        Some(nix::unistd::Uid::from_raw(10000)),
        Some(nix::unistd::Gid::from_raw(10000)),
    )
    .expect("chown volume");
}

// ---------------------------------------------------------------------------
// (a) the static binary

#[test]
fn static_binary_runs_alone_in_an_empty_chroot() {
    require_root();
    let bin = static_binary();

    let out = run(Command::new("file").arg("-b").arg(bin));
    let desc = stdout_line(&out);
    assert!(
        desc.contains("statically linked"),
        "not a static executable: {desc}"
    );
    assert!(
        !desc.contains("dynamically linked") && !desc.contains("interpreter"),
        "needs a dynamic loader: {desc}"
    );

    // The binary and a container tree, nothing else: no libc, no loader,
    // no /etc/nsswitch.conf.
    let chroot = searchable_tempdir();
    fs::copy(bin, chroot.path().join("reconcile")).expect("copy binary");
    make_container_root(&chroot.path().join("tree"));
    let entries: Vec<_> = fs::read_dir(chroot.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "chroot holds more than the binary and the tree: {entries:?}"
    );

    let out = run(Command::new("chroot")
        .arg(chroot.path())
        .args(["/reconcile", "--version"]));
    assert!(
        out.status.success(),
        "--version in the chroot: {}",
        describe(&out)
    );
    assert_eq!(
        stdout_line(&out),
        format!("reconcile {}", env!("CARGO_PKG_VERSION"))
    );

    let supervise = chroot
        .path()
        .join("tree/run/s6-rc/servicedirs/svc/supervise");
    let out = run(Command::new("chroot").arg(chroot.path()).args([
        "/reconcile",
        "--plan",
        "--root",
        "/tree",
    ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "--plan in the chroot: {}",
        describe(&out)
    );
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("/run/s6-rc/servicedirs/svc/supervise"),
        "the plan names the static servicedir's supervise/: {}",
        describe(&out)
    );
    assert!(
        !plan.contains("/tree/"),
        "the plan prints container paths, without the --root prefix: {plan}"
    );
    assert_eq!(
        owner_mode(&supervise),
        (0, 0, 0o700),
        "--plan changed the tree"
    );

    // Apply, as cont-init would run it, and the user owns supervise/.
    let out =
        run(Command::new("chroot")
            .arg(chroot.path())
            .args(["/reconcile", "--root", "/tree"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply in the chroot: {}",
        describe(&out)
    );
    assert_eq!(owner_mode(&supervise), (10000, 10000, 0o710));
    assert_eq!(
        owner_mode(
            &chroot
                .path()
                .join("tree/run/s6-rc/servicedirs/s6rc-fdholder/supervise")
        ),
        (0, 0, 0o700),
        "s6-overlay's internal service stays root-only"
    );
}

// ---------------------------------------------------------------------------
// (b) the Debian package

/// The files the package must install, as documented in
/// docs/packaging.md ("Debian package") and packaging/build-deb.sh: both s6-rc user
/// bundle layouts (s6-overlay 3.2.3.1 and later read `user-bundles.d/`,
/// older 3.x `s6-rc.d/user/`).
const DEB_FILES: [(&str, u32); 19] = [
    ("/usr/bin/reconcile", 0o755),
    ("/usr/share/man/man8/reconcile.8.gz", 0o644),
    ("/usr/share/doc/s6-reconcile/examples/config.yaml", 0o644),
    ("/usr/share/doc/s6-reconcile/copyright", 0o644),
    ("/usr/share/s6-reconcile/cont-init.d/99-s6-reconcile", 0o755),
    ("/usr/share/s6-reconcile/s6-rc.d/s6-reconcile/type", 0o644),
    ("/usr/share/s6-reconcile/s6-rc.d/s6-reconcile/up", 0o644),
    (
        "/usr/share/s6-reconcile/s6-rc.d/s6-reconcile/timeout-up",
        0o644,
    ),
    (
        "/usr/share/s6-reconcile/s6-rc.d/s6-reconcile/dependencies.d/base",
        0o644,
    ),
    (
        "/usr/share/s6-reconcile/user-bundles.d/user/contents.d/s6-reconcile",
        0o644,
    ),
    (
        "/usr/share/s6-reconcile/before-3.2.3.1/s6-rc.d/user/contents.d/s6-reconcile",
        0o644,
    ),
    // The runtime longrun (docs/runtime.md).
    (
        "/usr/share/s6-reconcile/s6-rc.d/s6-reconcile-runtime/type",
        0o644,
    ),
    (
        "/usr/share/s6-reconcile/s6-rc.d/s6-reconcile-runtime/run",
        0o755,
    ),
    (
        "/usr/share/s6-reconcile/s6-rc.d/s6-reconcile-runtime/finish",
        0o755,
    ),
    (
        "/usr/share/s6-reconcile/s6-rc.d/s6-reconcile-runtime/notification-fd",
        0o644,
    ),
    (
        "/usr/share/s6-reconcile/s6-rc.d/s6-reconcile-runtime/timeout-up",
        0o644,
    ),
    (
        "/usr/share/s6-reconcile/s6-rc.d/s6-reconcile-runtime/dependencies.d/s6-reconcile",
        0o644,
    ),
    (
        "/usr/share/s6-reconcile/user-bundles.d/user/contents.d/s6-reconcile-runtime",
        0o644,
    ),
    (
        "/usr/share/s6-reconcile/before-3.2.3.1/s6-rc.d/user/contents.d/s6-reconcile-runtime",
        0o644,
    ),
];

/// This machine's Debian architecture, which the package is built for.
fn dpkg_arch() -> String {
    let out = run(Command::new("dpkg").arg("--print-architecture"));
    assert!(
        out.status.success(),
        "dpkg --print-architecture: {}",
        describe(&out)
    );
    stdout_line(&out)
}

/// Run `packaging/build-deb.sh OUTDIR` with extra environment; the path it
/// prints.
fn build_deb(outdir: &Path, env: &[(&str, &str)]) -> PathBuf {
    let mut cmd = Command::new(repo().join("packaging/build-deb.sh"));
    cmd.arg(outdir)
        .current_dir(repo())
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "build-deb.sh failed: {}",
        describe(&out)
    );
    let deb = PathBuf::from(stdout_line(&out));
    assert_eq!(deb.parent(), Some(outdir), "the .deb lands in OUTDIR");
    deb
}

#[test]
fn debian_package_installs_the_documented_paths() {
    require_root();
    // Build the static binary first so two tests do not race to build it.
    static_binary();
    let outdir = tempfile::tempdir().expect("tempdir");
    let deb = build_deb(outdir.path(), &[]);
    let version = env!("CARGO_PKG_VERSION").replace('-', "~");
    let arch = dpkg_arch();
    assert_eq!(
        deb.file_name(),
        Some(OsStr::new(&format!("s6-reconcile_{version}_{arch}.deb")))
    );

    let out = run(Command::new("dpkg-deb").args(["-f"]).arg(&deb).args([
        "Package",
        "Version",
        "Architecture",
    ]));
    assert!(out.status.success(), "dpkg-deb -f: {}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Package: s6-reconcile\nVersion: {version}\nArchitecture: {arch}\n")
    );

    // The listing: every documented file, root-owned, with its mode.
    let out = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert!(out.status.success(), "dpkg-deb -c: {}", describe(&out));
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    for (path, mode) in DEB_FILES {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} missing from the package:\n{listing}"));
        let perms = if mode == 0o755 {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert!(
            line.starts_with(&format!("{perms} root/root")),
            "{path}: expected {perms} root/root, got: {line}"
        );
    }
    assert!(
        !listing.contains(" ./etc/"),
        "the package installs nothing under /etc:\n{listing}"
    );

    // Install into a scratch root with a fresh dpkg database.
    let scratch = tempfile::tempdir().expect("tempdir");
    let admin = scratch.path().join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        fs::create_dir_all(admin.join(d)).unwrap();
    }
    fs::write(admin.join("status"), "").unwrap();
    let out = run(Command::new("dpkg")
        .arg(format!("--root={}", scratch.path().display()))
        .arg(format!(
            "--log={}",
            scratch.path().join("dpkg.log").display()
        ))
        .arg("-i")
        .arg(&deb));
    assert!(out.status.success(), "dpkg -i: {}", describe(&out));
    let out = run(Command::new("dpkg")
        .arg(format!("--root={}", scratch.path().display()))
        .args(["-s", "s6-reconcile"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Status: install ok installed"),
        "dpkg -s: {}",
        describe(&out)
    );
    for (path, mode) in DEB_FILES {
        let on_disk = scratch.path().join(path.trim_start_matches('/'));
        assert_eq!(owner_mode(&on_disk), (0, 0, mode), "{path} after dpkg -i");
    }

    // md5sums in the control archive, one line per installed file, sorted:
    // what `dpkg --verify` checks the installed files against.
    let out = run(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("md5sums"));
    assert!(
        out.status.success(),
        "dpkg-deb -I md5sums: {}",
        describe(&out)
    );
    let md5sums = String::from_utf8_lossy(&out.stdout).to_string();
    let mut files: Vec<&str> = DEB_FILES.iter().map(|(p, _)| &p[1..]).collect();
    files.sort();
    let out = run(Command::new("md5sum")
        .args(&files)
        .current_dir(scratch.path()));
    assert!(out.status.success(), "md5sum: {}", describe(&out));
    assert_eq!(md5sums, String::from_utf8_lossy(&out.stdout), "md5sums");
    let out = run(Command::new("dpkg")
        .arg(format!("--root={}", scratch.path().display()))
        .args(["--verify", "s6-reconcile"]));
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "dpkg --verify: {}",
        describe(&out)
    );

    // The installed binary is the static one and runs.
    let installed = scratch.path().join("usr/bin/reconcile");
    assert_eq!(
        fs::read(&installed).unwrap(),
        fs::read(static_binary()).unwrap(),
        "/usr/bin/reconcile is the static build"
    );
    let out = run(Command::new(&installed).arg("--version"));
    assert_eq!(
        stdout_line(&out),
        format!("reconcile {}", env!("CARGO_PKG_VERSION"))
    );

    // The man page is reconcile(8), generated from the clap definition.
    let out = run(Command::new("gzip")
        .args(["-dc"])
        .arg(scratch.path().join("usr/share/man/man8/reconcile.8.gz")));
    assert!(out.status.success(), "gzip -dc: {}", describe(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH reconcile 8"), "man page title:\n{page}");
    for option in ["plan", "check", "config", "root", "format", "phase"] {
        assert!(
            page.contains(&format!("\\-\\-{option}")),
            "man page lacks --{option}:\n{page}"
        );
    }
    assert!(
        page.contains(".SH \"EXIT STATUS\""),
        "man page lacks EXIT STATUS"
    );

    // The installed init files are the ones in packaging/.
    assert_eq!(
        fs::read(
            scratch
                .path()
                .join("usr/share/s6-reconcile/cont-init.d/99-s6-reconcile")
        )
        .unwrap(),
        fs::read(repo().join("packaging/cont-init.d/99-s6-reconcile")).unwrap()
    );
    for installed in [
        "user-bundles.d/user/contents.d/s6-reconcile",
        "before-3.2.3.1/s6-rc.d/user/contents.d/s6-reconcile",
        "user-bundles.d/user/contents.d/s6-reconcile-runtime",
        "before-3.2.3.1/s6-rc.d/user/contents.d/s6-reconcile-runtime",
    ] {
        let m = fs::metadata(
            scratch
                .path()
                .join("usr/share/s6-reconcile")
                .join(installed),
        )
        .unwrap();
        assert!(
            m.is_file() && m.len() == 0,
            "{installed}: the empty bundle entry"
        );
    }
    for file in ["type", "up", "timeout-up", "dependencies.d/base"] {
        assert_eq!(
            fs::read(
                scratch
                    .path()
                    .join("usr/share/s6-reconcile/s6-rc.d/s6-reconcile")
                    .join(file)
            )
            .unwrap(),
            fs::read(repo().join("packaging/s6-rc.d/s6-reconcile").join(file)).unwrap(),
            "s6-rc.d/s6-reconcile/{file}"
        );
    }
    for file in RUNTIME_FILES {
        assert_eq!(
            fs::read(
                scratch
                    .path()
                    .join("usr/share/s6-reconcile/s6-rc.d/s6-reconcile-runtime")
                    .join(file)
            )
            .unwrap(),
            fs::read(
                repo()
                    .join("packaging/s6-rc.d/s6-reconcile-runtime")
                    .join(file)
            )
            .unwrap(),
            "s6-rc.d/s6-reconcile-runtime/{file}"
        );
    }
    assert_eq!(
        fs::read(
            scratch
                .path()
                .join("usr/share/doc/s6-reconcile/examples/config.yaml")
        )
        .unwrap(),
        fs::read(repo().join("packaging/config.yaml")).unwrap()
    );

    // And docs/packaging.md documents every installed path.
    let doc = fs::read_to_string(repo().join("docs/packaging.md")).unwrap();
    for (path, _) in DEB_FILES {
        assert!(
            doc.contains(path),
            "docs/packaging.md does not mention {path}"
        );
    }
}

/// Every entry of a tar stream, as `tar -tv` prints it in UTC with numeric
/// owners: (mode string, owner, time, path).
fn tar_listing(tar: &[u8]) -> Vec<(String, String, String, String)> {
    let mut child = Command::new("tar")
        .args(["-tv", "--full-time", "--numeric-owner", "-f", "-"])
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tar");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(tar)
            .expect("feed tar");
    }
    let out = child.wait_with_output().expect("tar");
    assert!(out.status.success(), "tar -tv: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() >= 6, "tar line: {l}");
            (
                f[0].to_string(),
                f[1].to_string(),
                format!("{} {}", f[3], f[4]),
                f[5..].join(" "),
            )
        })
        .collect()
}

fn deb_member(deb: &Path, flag: &str) -> Vec<u8> {
    let out = run(Command::new("dpkg-deb").arg(flag).arg(deb));
    assert!(out.status.success(), "dpkg-deb {flag}: {}", describe(&out));
    out.stdout
}

/// Every entry of both archives of a package has the time `when`
/// (`YYYY-MM-DD HH:MM:SS` UTC) and owner root:root, and the data archive
/// is in tree order with sorted names.
fn assert_normalized(deb: &Path, when: &str) {
    for flag in ["--fsys-tarfile", "--ctrl-tarfile"] {
        let listing = tar_listing(&deb_member(deb, flag));
        assert!(!listing.is_empty(), "{flag}: empty");
        for (mode, owner, time, path) in &listing {
            assert_eq!(owner, "0/0", "{flag} {path} ({mode}): owner");
            assert_eq!(time, when, "{flag} {path}: time");
        }
        let paths: Vec<&String> = listing.iter().map(|(_, _, _, p)| p).collect();
        let mut sorted = paths.clone();
        sorted.sort_by(|a, b| {
            let parts = |p: &str| p.split('/').map(str::to_owned).collect::<Vec<_>>();
            parts(a).cmp(&parts(b))
        });
        assert_eq!(paths, sorted, "{flag}: entries in sorted tree order");
    }
    let out = run(Command::new("ar").arg("tv").arg(deb).env("TZ", "UTC"));
    assert!(out.status.success(), "ar tv: {}", describe(&out));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        assert!(line.starts_with("rw-r--r-- 0/0"), "ar member: {line}");
    }
}

fn utc(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .expect("epoch")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Two builds of one commit are byte-identical, whatever the time, the
/// umask or the staging directory: file times are the last commit's (or
/// SOURCE_DATE_EPOCH), owners root, entries sorted.
#[test]
fn debian_package_is_reproducible() {
    require_root();
    static_binary();
    let first_dir = tempfile::tempdir().unwrap();
    let first = build_deb(first_dir.path(), &[]);
    let built_at = std::time::SystemTime::now();

    // The second build starts in a later second (a file time taken from
    // the clock would differ), from another staging directory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while built_at.elapsed().unwrap_or_default() < std::time::Duration::from_millis(1100) {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock does not advance"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stage_tmp = searchable_tempdir();
    let second_dir = tempfile::tempdir().unwrap();
    let second = build_deb(
        second_dir.path(),
        &[("TMPDIR", stage_tmp.path().to_str().unwrap())],
    );
    assert!(
        fs::read(&first).unwrap() == fs::read(&second).unwrap(),
        "two builds of one commit differ: {} {}",
        first.display(),
        second.display()
    );

    let out = run(Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(repo()));
    let commit_time: i64 = stdout_line(&out).parse().expect("git log %ct");
    assert_normalized(&first, &utc(commit_time));

    // SOURCE_DATE_EPOCH, when set, is the time of every entry.
    let third_dir = tempfile::tempdir().unwrap();
    let third = build_deb(third_dir.path(), &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert_normalized(&third, "2023-11-14 22:13:20");
}

/// A target whose standard library is not installed: both build scripts
/// stop at once, before building anything, with one line that names the
/// target and the command that installs it.
#[test]
fn build_for_an_uninstalled_target_fails_at_once_naming_rustup() {
    let libdir = |t: &str| {
        let out = run(Command::new("rustc")
            .args(["--print", "target-libdir", "--target", t])
            .current_dir(repo()));
        PathBuf::from(stdout_line(&out))
    };
    let has_std = |t: &str| {
        fs::read_dir(libdir(t)).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        })
    };
    let target = [
        "riscv64gc-unknown-linux-gnu",
        "s390x-unknown-linux-gnu",
        "powerpc64le-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
    ]
    .into_iter()
    .find(|t| !has_std(t))
    .expect("some target's standard library is not installed");
    let target_dir = repo().join("target").join(target);
    let existed = target_dir.exists();

    for script in ["packaging/build-static.sh", "packaging/build-deb.sh"] {
        let out = run(Command::new(repo().join(script))
            .arg(tempfile::tempdir().unwrap().path())
            .env("TARGET", target)
            .env_remove("CARGO_TARGET_DIR")
            .current_dir(repo()));
        assert_eq!(out.status.code(), Some(111), "{script}: {}", describe(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "build-static: fatal: the Rust standard library for {target} is not \
                 installed; run: rustup target add {target}\n"
            ),
            "{script}"
        );
        assert!(out.stdout.is_empty(), "{script}: {}", describe(&out));
    }
    assert_eq!(
        target_dir.exists(),
        existed,
        "nothing was built for {target}"
    );
}

// ---------------------------------------------------------------------------
// (c) the init definitions

#[test]
fn cont_init_script_is_an_executable_with_contenv_script_sorting_late() {
    let script = repo().join("packaging/cont-init.d/99-s6-reconcile");
    let (_, _, mode) = owner_mode(&script);
    assert_eq!(
        mode, 0o755,
        "s6-overlay v3 executes cont-init scripts: mode 0755"
    );
    let text = fs::read_to_string(&script).unwrap();
    assert_eq!(text.lines().next(), Some("#!/command/with-contenv sh"));
    // cont-init.d runs in lexical order: after typical setup scripts.
    let name = script.file_name().unwrap().to_str().unwrap();
    for setup in ["10-adduser", "50-setup", "90-config"] {
        assert!(name > setup, "{name} must sort after {setup}");
    }
    let out = run(Command::new("sh").arg("-n").arg(&script));
    assert!(out.status.success(), "sh -n: {}", describe(&out));
}

/// The runtime longrun's definition files (docs/runtime.md).
const RUNTIME_FILES: [&str; 6] = [
    "type",
    "run",
    "finish",
    "notification-fd",
    "timeout-up",
    "dependencies.d/s6-reconcile",
];

#[test]
fn s6_rc_runtime_longrun_definition_is_well_formed() {
    let def = repo().join("packaging/s6-rc.d/s6-reconcile-runtime");
    let read = |f: &str| fs::read_to_string(def.join(f)).unwrap();
    assert_eq!(read("type"), "longrun\n");
    let fd: u32 = read("notification-fd").trim().parse().unwrap();
    assert!(fd > 2, "notification-fd {fd}: not stdin, stdout or stderr");
    let up: u64 = read("timeout-up").trim().parse().unwrap();
    // Longer than a pass may take: the lock wait and the retire deadline.
    assert!(up > 40_000, "timeout-up {up} ms");
    let run_text = read("run");
    assert!(
        run_text.starts_with("#!/command/with-contenv sh\n"),
        "{run_text}"
    );
    assert!(run_text.contains("reconcile --runtime"), "{run_text}");
    assert!(run_text.contains(&format!("echo >&{fd}")), "{run_text}");
    assert!(run_text.contains("exec s6-pause"), "{run_text}");
    for script in ["run", "finish"] {
        let m = fs::metadata(def.join(script)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o755, "{script}");
        let out = run(Command::new("sh").arg("-n").arg(def.join(script)));
        assert!(out.status.success(), "sh -n {script}: {}", describe(&out));
    }
    for empty in [
        def.join("dependencies.d/s6-reconcile"),
        repo().join("packaging/user-bundles.d/user/contents.d/s6-reconcile-runtime"),
    ] {
        let m = fs::metadata(&empty).unwrap_or_else(|e| panic!("{}: {e}", empty.display()));
        assert!(m.is_file() && m.len() == 0, "{}", empty.display());
    }
    let files: Vec<_> = walkdir::WalkDir::new(&def)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(&def)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut files = files;
    files.sort();
    let mut want: Vec<String> = RUNTIME_FILES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(files, want);
}

#[test]
fn s6_rc_oneshot_definition_is_well_formed() {
    let def = repo().join("packaging/s6-rc.d/s6-reconcile");
    assert_eq!(fs::read_to_string(def.join("type")).unwrap(), "oneshot\n");
    let up = fs::read_to_string(def.join("up")).unwrap();
    assert_eq!(up.lines().count(), 1, "up is a single command line: {up:?}");
    // s6-rc's timeout-up (ms) is longer than the longest boot run
    // (docs/boot-output.md): the lock wait and the retire deadline, plus
    // 20 s for the work itself, which waits for nothing.
    let timeout_up: u128 = fs::read_to_string(def.join("timeout-up"))
        .unwrap()
        .trim_end_matches('\n')
        .parse()
        .expect("timeout-up: milliseconds");
    let waits = s6_reconcile::apply::lock::DEFAULT_WAIT + s6_reconcile::apply::retire::DEADLINE;
    assert!(
        timeout_up >= waits.as_millis() + 20_000,
        "timeout-up {timeout_up} ms does not exceed the boot bound ({} ms of waits + 20 s)",
        waits.as_millis()
    );
    // The user bundle entry where s6-overlay 3.2.3.1 and later read it. A
    // `s6-rc.d/user/` in the image makes 3.2.3.2 ignore user-bundles.d and
    // write into /etc at every boot, and 3.2.3.1 fail to compile.
    assert!(
        !repo().join("packaging/s6-rc.d/user").exists(),
        "packaging/s6-rc.d/user must not exist: the user bundle lives in user-bundles.d"
    );
    let entries: Vec<_> = fs::read_dir(repo().join("packaging/s6-rc.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut entries = entries;
    entries.sort();
    assert_eq!(
        entries,
        ["s6-reconcile", "s6-reconcile-runtime"],
        "packaging/s6-rc.d holds the oneshot and the runtime longrun only"
    );
    for empty in [
        def.join("dependencies.d/base"),
        repo().join("packaging/user-bundles.d/user/contents.d/s6-reconcile"),
    ] {
        let m = fs::metadata(&empty).unwrap_or_else(|e| panic!("{}: {e}", empty.display()));
        assert!(
            m.is_file() && m.len() == 0,
            "{} must be an empty file",
            empty.display()
        );
    }

    // s6-rc hands `up` to execlineb: the real execlineb must parse it into
    // `with-contenv reconcile`. with-contenv (s6-overlay's, not installed
    // here) is stood in for by a script that records its arguments.
    let stub = tempfile::tempdir().unwrap();
    let record = stub.path().join("argv");
    write(
        &stub.path().join("with-contenv"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
            record.display()
        ),
        0o755,
    );
    let out = run(Command::new(which("execlineb"))
        .arg("-P")
        .arg(def.join("up"))
        .env("PATH", stub.path()));
    assert!(out.status.success(), "execlineb -P up: {}", describe(&out));
    assert_eq!(fs::read_to_string(&record).unwrap(), "reconcile\n");
}

/// The cont-init script, run with the static binary on PATH against a
/// container root: it applies (a drifted tree is fixed, exit 0), and a bad
/// configuration is a nonzero exit that s6-overlay counts as a failure,
/// with nothing changed.
#[test]
fn cont_init_script_applies_and_passes_failures_through() {
    require_root();
    let bindir = tempfile::tempdir().unwrap();
    fs::copy(static_binary(), bindir.path().join("reconcile")).unwrap();
    let script = repo().join("packaging/cont-init.d/99-s6-reconcile");
    let cont_init = |root: &Path| {
        run(Command::new("sh")
            .arg(&script)
            .arg("--root")
            .arg(root)
            .env("PATH", format!("{}:/usr/bin:/bin", bindir.path().display()))
            .env_remove("HERMES_HOME")
            .env_remove("S6_PROFILE_GATEWAY_SCANDIR")
            .env_remove("GATEWAY_MULTIPLEX_PROFILES"))
    };

    let tmp = searchable_tempdir();
    let root = tmp.path();
    make_container_root(root);
    let supervise = root.join("run/s6-rc/servicedirs/svc/supervise");

    let out = cont_init(root);
    assert_eq!(
        out.status.code(),
        Some(0),
        "cont-init on a fresh tree: {}",
        describe(&out)
    );
    assert_eq!(owner_mode(&supervise), (10000, 10000, 0o710));
    assert_eq!(
        owner_mode(&supervise.join("control")),
        (10000, 10000, 0o660)
    );
    assert_eq!(owner_mode(&root.join("run/service")).0, 10000);

    // Drift (supervise/ back to root) is fixed at the next boot, exit 0.
    nix::unistd::chown(&supervise, Some(0.into()), Some(0.into())).unwrap();
    let out = cont_init(root);
    assert_eq!(
        out.status.code(),
        Some(0),
        "cont-init on a drifted tree: {}",
        describe(&out)
    );
    assert_eq!(owner_mode(&supervise), (10000, 10000, 0o710));

    // A bad configuration: exit 100, the message names the key, and the
    // tree is untouched.
    nix::unistd::chown(&supervise, Some(0.into()), Some(0.into())).unwrap();
    mkdir(&root.join("etc/s6-reconcile"), 0o755);
    write(
        &root.join("etc/s6-reconcile/config.yaml"),
        "user: hermes\nscandr:\n  path: /run/service\n",
        0o644,
    );
    let out = cont_init(root);
    assert_eq!(
        out.status.code(),
        Some(100),
        "cont-init with a bad config: {}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/etc/s6-reconcile/config.yaml:2:") && stderr.contains("scandr"),
        "the error names the file, line and key: {stderr}"
    );
    assert_eq!(owner_mode(&supervise), (0, 0, 0o710), "nothing changed");
}

// ---------------------------------------------------------------------------
// (d) the example Dockerfile

fn dockerfile() -> String {
    fs::read_to_string(repo().join("packaging/Dockerfile.example")).unwrap()
}

#[test]
fn dockerfile_uses_a_current_s6_overlay_and_the_user_bundles_layout() {
    let text = dockerfile();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("ARG S6_OVERLAY_VERSION="))
        .expect("ARG S6_OVERLAY_VERSION=");
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        parts.len() == 4 && parts[..2] == [3, 2] && parts[2..] >= [3, 1][..],
        "s6-overlay {version}: a current 3.2.x that reads user-bundles.d (3.2.3.1 or later)"
    );
    let copies: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("COPY packaging/"))
        .collect();
    for wanted in [
        "COPY packaging/s6-rc.d/ /etc/s6-overlay/s6-rc.d/",
        "COPY packaging/user-bundles.d/ /etc/s6-overlay/user-bundles.d/",
    ] {
        assert!(
            copies.contains(&wanted),
            "missing `{wanted}` in {copies:#?}"
        );
    }
    let instructions: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        !instructions.iter().any(|l| l.contains("s6-rc.d/user")),
        "no s6-rc.d/user bundle in the image: {instructions:#?}"
    );
}

/// The Dockerfile's download step (the `RUN` after `WORKDIR /s6`), run by
/// sh with `curl` stood in for by a script that serves tarballs and their
/// published `.sha256` files: TARGETARCH picks the tarball, every tarball's
/// checksum is verified, an unknown architecture or a tampered tarball
/// stops the build.
#[test]
fn dockerfile_download_maps_targetarch_and_verifies_checksums() {
    let text = dockerfile();
    let mut lines = text.lines().skip_while(|l| *l != "WORKDIR /s6").skip(1);
    let mut script = String::new();
    for line in lines.by_ref() {
        match line.strip_suffix('\\') {
            Some(part) => script.push_str(part),
            None => {
                script.push_str(line);
                break;
            }
        }
    }
    let script = script.strip_prefix("RUN ").expect("RUN after WORKDIR /s6");

    let bin = tempfile::tempdir().unwrap();
    write(
        &bin.path().join("curl"),
        r#"#!/bin/sh
for a; do url=$a; done
name=${url##*/}
echo "$url" >>"$CURL_LOG"
case $name in
*.sha256)
	base=${name%.sha256}
	if [ "$base" = "$TAMPERED" ]; then body=other; else body="tarball $base"; fi
	printf '%s' "$body" | sha256sum | sed "s| -\$| $base|" >"$name" ;;
*) printf 'tarball %s' "$name" >"$name" ;;
esac
"#,
        0o755,
    );
    let download = |arch: &str, tampered: &str| {
        let work = tempfile::tempdir().unwrap();
        let log = work.path().join("curl.log");
        let s6 = work.path().join("s6");
        fs::create_dir(&s6).unwrap();
        let out = run(Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&s6)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
            .env("TARGETARCH", arch)
            .env("S6_OVERLAY_VERSION", "3.2.3.2")
            .env("CURL_LOG", &log)
            .env("TAMPERED", tampered));
        let urls = fs::read_to_string(&log).unwrap_or_default();
        let mut files: Vec<String> = fs::read_dir(&s6)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        (out, urls, files)
    };
    let base = "https://github.com/just-containers/s6-overlay/releases/download/v3.2.3.2";
    for (docker, s6) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let (out, urls, files) = download(docker, "");
        assert_eq!(out.status.code(), Some(0), "{docker}: {}", describe(&out));
        assert_eq!(
            urls,
            format!(
                "{base}/s6-overlay-noarch.tar.xz\n{base}/s6-overlay-noarch.tar.xz.sha256\n\
                 {base}/s6-overlay-{s6}.tar.xz\n{base}/s6-overlay-{s6}.tar.xz.sha256\n"
            ),
            "{docker}"
        );
        assert!(
            files.contains(&"s6-overlay-arch.tar.xz".to_string())
                && files.contains(&"s6-overlay-noarch.tar.xz".to_string()),
            "{docker}: {files:?}"
        );
    }
    for tampered in ["s6-overlay-noarch.tar.xz", "s6-overlay-aarch64.tar.xz"] {
        let (out, _, _) = download("arm64", tampered);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{tampered} tampered: {}",
            describe(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("{tampered}: FAILED")),
            "sha256sum names the tampered tarball: {}",
            describe(&out)
        );
    }
    let (out, urls, _) = download("386", "");
    assert_eq!(out.status.code(), Some(1), "386: {}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "no s6-overlay tarball mapped for TARGETARCH=386\n"
    );
    assert_eq!(urls, "", "nothing downloaded for an unmapped architecture");
}

// ---------------------------------------------------------------------------
// the example configuration

#[test]
fn example_config_parses_to_the_defaults() {
    let path = repo().join("packaging/config.yaml");
    let text = fs::read_to_string(&path).unwrap();
    let parsed = Config::from_yaml(&text, Path::new("/etc/s6-reconcile/config.yaml"))
        .unwrap_or_else(|e| panic!("packaging/config.yaml does not parse: {e}"));
    let default = Config::default();

    assert_eq!(parsed.user, Principal::Name("hermes".into()));
    assert_eq!(parsed.group, None);
    assert_eq!(parsed.policy, Policy::Compat);
    assert_eq!(parsed.static_.servicedirs, default.static_.servicedirs);
    let globs = |c: &Config| {
        c.static_
            .skip
            .iter()
            .map(|g| g.text.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(globs(&parsed), globs(&default));
    assert_eq!(parsed.scandir.path, default.scandir.path);
    assert_eq!(parsed.profiles.home, default.profiles.home);
    assert_eq!(parsed.profiles.slot_prefix, "gateway-");
    assert_eq!(parsed.profiles.autostart, default.profiles.autostart);
    assert_eq!(parsed.boot_log.rotate_bytes, default.boot_log.rotate_bytes);
    // Every other field too: the file as shipped changes nothing (where the
    // values came from, for messages, aside).
    assert_eq!(
        parsed.source.path.as_deref(),
        Some(Path::new("/etc/s6-reconcile/config.yaml"))
    );
    let parsed = Config {
        source: default.source.clone(),
        ..parsed
    };
    assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
}

#[test]
fn example_config_shows_every_key_and_env_override() {
    let text = fs::read_to_string(repo().join("packaging/config.yaml")).unwrap();
    // Dotted key paths from the indentation of the non-comment lines.
    let mut keys = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') || body.starts_with('-') {
            continue;
        }
        let indent = line.len() - body.len();
        let Some((key, _)) = body.split_once(':') else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let path = stack
            .iter()
            .map(|(_, k)| k.as_str())
            .chain([key])
            .collect::<Vec<_>>()
            .join(".");
        stack.push((indent, key.to_string()));
        keys.push(path);
    }
    let expected = [
        "user",
        "group",
        "policy",
        "static",
        "static.servicedirs",
        "static.skip",
        "scandir",
        "scandir.path",
        "profiles",
        "profiles.home",
        "profiles.root",
        "profiles.marker",
        "profiles.slot_prefix",
        "profiles.default_slot",
        "profiles.declared",
        "profiles.state_file",
        "profiles.autostart",
        "profiles.transient_running",
        "profiles.stale_runtime_files",
        "profiles.multiplex",
        "profiles.prune",
        "profiles.templates",
        "profiles.templates.run",
        "profiles.templates.finish",
        "profiles.templates.log_run",
        "boot_log",
        "boot_log.path",
        "boot_log.rotate_bytes",
        "container",
        "container.wrapper",
        "container.dispatcher",
        "container.program",
        "container.legacy_command",
        "container.no_supervise_flag",
        "container.no_supervise_env",
        "container.dashboard_commands",
    ];
    assert_eq!(keys, expected, "packaging/config.yaml keys");
    for var in [
        "HERMES_HOME",
        "S6_PROFILE_GATEWAY_SCANDIR",
        "GATEWAY_MULTIPLEX_PROFILES",
        "HERMES_GATEWAY_NO_SUPERVISE",
    ] {
        assert!(
            text.contains(var),
            "packaging/config.yaml does not document {var}"
        );
    }
}

// ---------------------------------------------------------------------------
// the README, as a newcomer in a root shell reads it

/// Every Markdown file's ```sh blocks, as (file, line).
fn shell_lines() -> Vec<(String, String)> {
    let mut files: Vec<String> = ["README.md", "fixtures/README.md", "benches/README.md"]
        .map(String::from)
        .to_vec();
    let mut docs: Vec<String> = fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut lines = Vec::new();
    for file in files {
        let text = fs::read_to_string(repo().join(&file)).unwrap();
        let mut in_sh = false;
        for line in text.lines() {
            if line.starts_with("```") {
                in_sh = !in_sh && line.trim_start_matches('`') == "sh";
                continue;
            }
            if in_sh {
                lines.push((file.clone(), line.to_string()));
            }
        }
    }
    lines
}

#[test]
fn readme_commands_run_in_a_root_shell_as_written() {
    let lines = shell_lines();
    assert!(
        lines.iter().any(|(_, l)| l == "scripts/test.sh"),
        "README.md runs the test suite as `scripts/test.sh`"
    );
    for (file, line) in &lines {
        assert!(
            !line.split_whitespace().any(|w| w == "sudo"),
            "{file}: `{line}`: commands are for a root shell, without sudo"
        );
    }
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.contains("\n```sh\nscripts/test.sh\n```\n")
            && readme.contains("`.ci/run` runs exactly this."),
        "README.md gives the test command as `scripts/test.sh`, the command .ci/run runs"
    );

    // The toolchain: rust-version in Cargo.toml, named in the README with
    // the components scripts/test.sh runs.
    let manifest = fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("rust-version in Cargo.toml");
    assert!(
        readme.contains(&format!("Rust {msrv} or later")),
        "README.md names the toolchain (Rust {msrv} or later)"
    );
    let test_sh = fs::read_to_string(repo().join("scripts/test.sh")).unwrap();
    for component in ["rustfmt", "clippy"] {
        assert!(
            test_sh.contains(&format!("cargo {}", component.trim_start_matches("rust")))
                || test_sh.contains(&format!("cargo {component}")),
            "scripts/test.sh runs {component}"
        );
        assert!(
            readme.contains(&format!("`{component}`")),
            "README.md names the {component} component"
        );
    }
}
