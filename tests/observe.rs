//! Observation through held fds (docs/security.md, "What it observes, and how"): names that are bytes, trees
//! deeper than a path can be, removal of a planted deep tree under a small
//! stack and few descriptors, a slot file that cannot be read. Each test
//! runs the real binary on a root built for it and checks what an operator
//! notices: the exit code, the message, and what is left on disk.
//!
//! Trees have owners other than the caller: these tests need root.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::roots::{BASE, CRON, SVSCAN_LOCK};
use common::run::{reconcile, reconcile_limited};
use common::s6::as_user;
use common::tree;

/// The whole root these tests start from.
fn base() -> String {
    format!("{BASE}{SVSCAN_LOCK}{CRON}")
}

fn root_with(extra: &str) -> tempfile::TempDir {
    assert!(tree::is_root(), "these tests need root (owners)");
    let dir = tree::temp_root("observe-");
    tree::materialise_yaml(dir.path(), &format!("{}{extra}", base()))
        .unwrap_or_else(|e| panic!("tree: {e}"));
    dir
}

/// The root, its scandir the user's (as in compat), applied once: the
/// slots exist.
fn applied_root() -> tempfile::TempDir {
    let tmp = root_with("");
    chown_user(&tmp.path().join("run/service"));
    reconcile(tmp.path(), &[]).assert_exit(0);
    tmp
}

/// `name` (bytes) joined to `dir`.
fn join(dir: &Path, name: &[u8]) -> std::path::PathBuf {
    dir.join(OsStr::from_bytes(name))
}

fn chown_user(p: &Path) {
    std::os::unix::fs::lchown(p, Some(10000), Some(10000)).unwrap();
}

#[test]
fn names_that_are_not_utf8_are_skipped_escaped_and_the_run_succeeds() {
    let tmp = root_with("");
    let root = tmp.path();
    let profiles = root.join("opt/data/profiles");
    // A profile directory with its marker, and a plain file, both with a
    // name that is not UTF-8; an entry in the scandir with such a name and
    // one with a newline in it.
    let bad_dir = join(&profiles, b"caf\xe9");
    fs::create_dir(&bad_dir).unwrap();
    fs::write(bad_dir.join("SOUL.md"), "# x\n").unwrap();
    chown_user(&bad_dir);
    chown_user(&bad_dir.join("SOUL.md"));
    let bad_file = join(&profiles, b"notes-\xff.txt");
    fs::write(&bad_file, "x").unwrap();
    chown_user(&bad_file);
    let scandir = root.join("run/service");
    fs::create_dir(join(&scandir, b"svc-\xfe")).unwrap();
    fs::create_dir(join(&scandir, b"two\nlines")).unwrap();

    for args in [&["--plan"][..], &["-v"][..]] {
        let r = reconcile(root, args);
        r.assert_exit(0);
        r.assert_report_line("  /opt/data/profiles/caf\\xe9: name is not valid UTF-8; left alone");
        r.assert_report_line(
            "  /opt/data/profiles/notes-\\xff.txt: name is not valid UTF-8; left alone",
        );
        r.assert_report_line("  /run/service/svc-\\xfe: name is not valid UTF-8; left alone");
        r.assert_report_line(
            "  /run/service/two\\x0alines: name holds a control character; left alone",
        );
        r.assert_line("reconcile: profile=good prior_state=running action=started");
        // Said once, though both the scandir and the profiles phase saw it.
        assert_eq!(r.stdout.matches("svc-\\xfe").count(), 1, "{r}");
    }
    assert!(scandir.join("gateway-good/run").is_file());
    assert!(bad_dir.join("SOUL.md").is_file(), "the volume is untouched");
    assert!(bad_file.is_file());
    reconcile(root, &["--check"]).assert_exit(0);
}

/// Make a chain of `depth` directories named `name` below `top`, through
/// fds (the path would be longer than PATH_MAX), each holding a file.
fn deep_chain(top: &Path, name: &str, depth: usize) {
    deep_chain_of(top, name, depth, None);
}

/// [`deep_chain`], every entry owned by `owner` when given (planted by
/// that user).
fn deep_chain_of(top: &Path, name: &str, depth: usize, owner: Option<(u32, u32)>) {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, mkdirat};
    use nix::unistd::{Gid, Uid, fchown};
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut cur: OwnedFd = nix::fcntl::open(top, flags, Mode::empty()).unwrap();
    let give = |fd: &OwnedFd| {
        if let Some((u, g)) = owner {
            fchown(fd, Some(Uid::from_raw(u)), Some(Gid::from_raw(g))).unwrap();
        }
    };
    for _ in 0..depth {
        mkdirat(&cur, name, Mode::from_bits_truncate(0o755)).unwrap();
        let f = openat(
            &cur,
            "f",
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        give(&f);
        drop(f);
        cur = openat(&cur, name, flags, Mode::empty()).unwrap();
        give(&cur);
    }
}

/// Owner of the deepest directory of a chain made by [`deep_chain`].
fn deepest_owner(top: &Path, name: &str, depth: usize) -> (u32, u32) {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut cur: OwnedFd = nix::fcntl::open(top, flags, Mode::empty()).unwrap();
    for _ in 0..depth {
        cur = openat(&cur, name, flags, Mode::empty()).unwrap();
    }
    let st = nix::sys::stat::fstat(&cur).unwrap();
    (st.st_uid, st.st_gid)
}

#[test]
fn a_planted_6000_level_tree_is_removed_under_a_small_stack_and_few_fds() {
    let tmp = root_with("");
    let root = tmp.path();
    let staging = root.join("run/service/.gateway-good.tmp");
    fs::create_dir(&staging).unwrap();
    deep_chain(&staging, "d", 6000);
    let r = reconcile_limited(root, "ulimit -s 1024 && ulimit -n 1024", &["-v"]);
    r.assert_exit(0);
    r.assert_line("reconcile:   remove  /run/service/.gateway-good.tmp");
    assert!(!staging.exists(), "the planted tree is gone");
    assert!(root.join("run/service/gateway-good/run").is_file());
}

#[test]
fn a_supervise_tree_deeper_than_path_max_is_observed_and_opened() {
    let tmp = root_with("");
    let root = tmp.path();
    let supervise = root.join("run/s6-rc/servicedirs/cron/supervise");
    // "d/" 2100 times: about 4200 bytes below supervise/, past PATH_MAX.
    let depth = 2100;
    deep_chain(&supervise, "d", depth);
    let r = reconcile(root, &["-v", "--phase", "static"]);
    r.assert_exit(0);
    assert!(!r.stdout.contains("too long"), "{r}");
    assert!(!r.stderr.contains("too long"), "{r}");
    assert_eq!(deepest_owner(&supervise, "d", depth), (10000, 10000));
    let again = reconcile(root, &["--check", "--phase", "static"]);
    again.assert_exit(0);
    again.assert_line("No changes.");
}

/// Removes a chain made by [`deep_chain`] when dropped, one level at a
/// time from the top (the temp dir's own removal recurses and would run
/// out of stack on it).
struct Chain<'a>(&'a Path, &'static str);

impl Drop for Chain<'_> {
    fn drop(&mut self) {
        let (top, name) = (self.0, self.1);
        let (level, next) = (top.join(name), top.join(".next"));
        while level.is_dir() {
            let _ = fs::remove_file(level.join("f"));
            let below = level.join(name);
            if below.is_dir() {
                fs::rename(&below, &next).unwrap();
                fs::remove_dir(&level).unwrap();
                fs::rename(&next, &level).unwrap();
            } else {
                fs::remove_dir(&level).unwrap();
            }
        }
    }
}

/// The skip line of a tree whose observation stopped at its bound.
fn too_large(path: &str) -> String {
    format!(
        "  {path}: too deep or too large to observe in full (over 12 MiB of path names below \
         it, or 24 MiB in all); what is below the first such entry is left alone"
    )
}

#[test]
fn planted_trees_of_any_depth_cost_bounded_memory_and_never_fail_the_boot() {
    let tmp = applied_root();
    let root = tmp.path();
    let scandir = root.join("run/service");
    // 20,000 levels, a file at each: every path of these trees kept would
    // be gigabytes (the sum of the depths); the container below has 1 GiB
    // of address space.
    let slot = scandir.join("gateway-good");
    deep_chain_of(&slot, "a", 20_000, Some((10000, 10000)));
    let _planted = Chain(&slot, "a");
    let supervise = root.join("run/s6-rc/servicedirs/cron/supervise");
    deep_chain(&supervise, "d", 20_000);
    let _planted_too = Chain(&supervise, "d");
    let limited = |args: &[&str]| reconcile_limited(root, "ulimit -v 1048576", args);
    for args in [&["--plan"][..], &["-v"]] {
        let r = limited(args);
        r.assert_exit(0);
        r.assert_report_line(&too_large("/run/service/gateway-good"));
        r.assert_report_line(&too_large("/run/s6-rc/servicedirs/cron/supervise"));
        // What the slot holds of its own is still seen, so only the
        // planted entry is extra (the file `f` the chain left next to it
        // comes after the bound was crossed: not observed).
        r.assert_report_line("  replace /run/service/gateway-good  (extra a)");
    }
    assert!(
        !slot.join("a").exists(),
        "the planted tree went with the old slot"
    );
    assert!(slot.join("run").is_file());
    let again = limited(&["--check"]);
    again.assert_exit(0);
    again.assert_line(&too_large("/run/s6-rc/servicedirs/cron/supervise"));
    again.assert_no_line_with("gateway-good:");
}

#[test]
fn snapshot_describes_a_20000_level_slot_up_to_the_bound_and_says_it_is_cut() {
    let tmp = applied_root();
    let root = tmp.path();
    let slot = root.join("run/service/gateway-good");
    deep_chain_of(&slot, "a", 20_000, Some((10000, 10000)));
    let _planted = Chain(&slot, "a");
    // Under 1 GiB of address space, as the boot's own test of this tree.
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--as=1073741824")
        .arg(env!("CARGO_BIN_EXE_reconcile"))
        .args(["snapshot", "--root"])
        .arg(root)
        .env_clear();
    let snap = common::run::run(cmd);
    snap.assert_exit(0);
    assert_eq!(
        snap.stderr,
        "reconcile: warning: /run/service/gateway-good: too deep or too large to describe in \
         full (over 12 MiB of path names below it, or 24 MiB in all); described up to that \
         bound\n"
    );
    // The chain is described down to thousands of levels, and the slot's
    // own files next to it.
    let deep = format!("run/service/gateway-good/{}", vec!["a"; 3000].join("/"));
    assert!(
        snap.stdout
            .contains(&format!("{{path: \"{deep}\", type: dir"))
    );
    assert!(
        snap.stdout
            .contains("{path: \"run/service/gateway-good/run\", type: file")
    );
    let desc = tmp.path().join("snapshot.yaml");
    fs::write(&desc, &snap.stdout).unwrap();
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--as=1073741824")
        .arg(env!("CARGO_BIN_EXE_reconcile"))
        .args(["--plan", "--tree"])
        .arg(&desc)
        .env_clear();
    let plan = common::run::run(cmd);
    plan.assert_exit(0);
    plan.assert_line("  replace /run/service/gateway-good  (extra a)");
}

#[test]
fn a_slot_file_hard_linked_to_a_root_only_file_is_never_read() {
    let tmp = applied_root();
    let root = tmp.path();
    let scandir = root.join("run/service");
    // A root-only file on the same file system, linked in place of the
    // slot's run script (what fs.protected_hardlinks=0 lets the user do).
    let secret = root.join("run/secret");
    fs::write(&secret, "TOKEN=hunter2\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let run = scandir.join("gateway-good/run");
    fs::remove_file(&run).unwrap();
    fs::hard_link(&secret, &run).unwrap();
    for args in [&["--plan", "--diff"][..], &["-v", "--diff"]] {
        let r = reconcile(root, args);
        r.assert_exit(0);
        r.assert_line_with(&["replace", "/run/service/gateway-good", "run has 2 links"]);
        r.assert_report_line(
            "--- current /run/service/gateway-good/run (not read: too large, unreadable or \
             hard-linked)",
        );
        assert!(
            !r.stdout.contains("hunter2"),
            "the root-only file was read:\n{r}"
        );
    }
    assert_eq!(fs::read_to_string(&secret).unwrap(), "TOKEN=hunter2\n");
    common::run::assert_owner_mode(&secret, 0, 0, 0o600);
    assert_eq!(
        fs::metadata(&secret).unwrap().nlink(),
        1,
        "the old slot went"
    );
    assert!(fs::read_to_string(&run).unwrap().contains("gateway run"));
    reconcile(root, &["--check"]).assert_exit(0);
}

#[test]
fn a_slot_file_that_cannot_be_read_is_reported_and_the_slot_kept() {
    let tmp = applied_root();
    let root = tmp.path();
    let scandir = root.join("run/service");
    let slot = scandir.join("gateway-good");
    let ino = fs::metadata(&slot).unwrap().ino();
    // The user's own file, made unreadable by the user: a run as the user
    // cannot read it to compare.
    let run = slot.join("run");
    fs::set_permissions(&run, fs::Permissions::from_mode(0o000)).unwrap();
    let bin = env!("CARGO_BIN_EXE_reconcile");
    let root_arg = root.to_str().unwrap();
    let r = as_user(&[bin, "--root", root_arg, "-v", "--phase", "profiles"]);
    r.assert_exit(1);
    r.assert_line(
        "reconcile: error: unable to read /run/service/gateway-good/run: Permission denied",
    );
    r.assert_line("reconcile: profile=good prior_state=running action=skipped");
    assert!(!r.stdout.contains("replace"), "{r}");
    assert_eq!(
        fs::metadata(&slot).unwrap().ino(),
        ino,
        "same slot, in place"
    );
    assert_eq!(
        fs::symlink_metadata(&run).unwrap().mode() & 0o7777,
        0,
        "left as it was"
    );
}

#[test]
fn a_root_below_a_directory_the_user_cannot_search_is_reconciled_whole() {
    // Everything below the root is reached from the held root directory,
    // never by a path the user would need to search from `/`.
    let outer = tree::temp_root("observe-outer-");
    let root = outer.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    tree::materialise_yaml(&root, &base()).unwrap_or_else(|e| panic!("tree: {e}"));
    fs::set_permissions(outer.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let r = reconcile(&root, &[]);
    r.assert_exit(0);
    r.assert_line("reconcile: profile=good prior_state=running action=started");
    assert!(root.join("run/service/gateway-good/run").is_file());
    let log = fs::read_to_string(root.join("opt/data/logs/container-boot.log")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    reconcile(&root, &["--check"]).assert_exit(0);
}

/// A slot whose supervisor will not let go of `supervise/lock` (here the
/// test holds its `fcntl` lock, as s6-supervise does): a replace swaps the
/// new slot in, waits out the run's deadline, leaves the old tree under
/// its dot name and says so; the next run, the lock free, removes it.
#[test]
fn an_old_tree_still_locked_is_left_under_its_dot_name_for_the_next_run() {
    use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
    use nix::sys::stat::Mode;
    let tmp = applied_root();
    let root = tmp.path();
    let slot = root.join("run/service/gateway-good");
    let lock_path = slot.join("supervise/lock");
    fs::write(&lock_path, "").unwrap();
    let fd = open(&lock_path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
    let lock = nix::libc::flock {
        l_type: nix::libc::F_WRLCK as _,
        l_whence: nix::libc::SEEK_SET as _,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(&fd, FcntlArg::F_SETLK(&lock)).unwrap();
    // The operator's mistake that makes the slot differ.
    fs::set_permissions(slot.join("run"), fs::Permissions::from_mode(0o775)).unwrap();

    let r = reconcile(root, &[]);
    r.assert_exit(0);
    r.assert_line(
        "reconcile: warning: /run/service/.gateway-good.tmp: old slot tree left under this name \
         (its supervisor did not let go within 10 s); the next run removes it",
    );
    let left = root.join("run/service/.gateway-good.tmp");
    assert!(left.join("supervise/lock").is_file(), "{r}");
    assert_eq!(
        fs::metadata(slot.join("run")).unwrap().permissions().mode() & 0o777,
        0o755,
        "the new slot is in place: {r}"
    );

    // A run soon after (a runtime pass), the supervisor still there: the
    // tree is not removed under it, and the run says why (an item left
    // alone, listed with -v).
    let r = reconcile(root, &["-v"]);
    assert!(
        left.join("supervise/lock").is_file(),
        "removed while held:\n{r}"
    );
    r.assert_exit(0);
    r.assert_line_with(&[
        "/run/service/.gateway-good.tmp",
        "not removed: a supervisor still holds its supervise/lock; left for a later run to remove",
    ]);
    // A replace needing that staging name meanwhile fails for this slot
    // (the slot stays as it is) rather than remove the held tree.
    fs::set_permissions(slot.join("run"), fs::Permissions::from_mode(0o775)).unwrap();
    let r = reconcile(root, &[]);
    r.assert_exit(1);
    r.assert_line_with(&[
        "/run/service/gateway-good",
        "remove leftover in staging dir .gateway-good.tmp: a supervisor still holds",
    ]);
    assert!(
        left.join("supervise/lock").is_file(),
        "removed while held:\n{r}"
    );
    assert!(slot.join("supervise").is_dir(), "{r}");

    drop(fd);
    let r = reconcile(root, &[]);
    r.assert_exit(0);
    assert!(fs::symlink_metadata(&left).is_err(), "not removed:\n{r}");
    reconcile(root, &["--check"]).assert_exit(0);
}

/// A scandir servicedir's `supervise/` is s6-supervise's run-time
/// directory: only `control` and `event/` are looked at there, and no
/// fifodir is listed (docs/phases.md). What a listener leaves in
/// `supervise/event/` (s6-ftrigrd's FIFO, root's when root waits) and an
/// entry root left in `supervise/` are neither compared nor chowned: a
/// converged slot holding both has nothing to change, in `--plan` and in
/// apply, and keeps its inode.
#[test]
fn a_slots_supervise_run_time_state_is_neither_compared_nor_chowned() {
    let tmp = applied_root();
    let root = tmp.path();
    let slot = root.join("run/service/gateway-default");
    let ino = fs::metadata(&slot).unwrap().ino();
    let fifo = |p: &Path| {
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o622)).unwrap();
    };
    let planted = [
        slot.join("supervise/event/ftrig1@400000006543210a00000000:abcdefghijklmnop"),
        slot.join("log/supervise/event/ftrig1@400000006543210a00000000:qrstuvwxyzabcdef"),
    ];
    for p in &planted {
        fifo(p);
    }
    fs::write(slot.join("supervise/notes"), "root's\n").unwrap();
    let plan = reconcile(root, &["--plan", "--format", "json"]);
    plan.assert_exit(0);
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["changes"], serde_json::json!([]), "{}", plan.stdout);
    reconcile(root, &[]).assert_exit(0);
    assert_eq!(
        fs::metadata(&slot).unwrap().ino(),
        ino,
        "the slot was left alone"
    );
    for p in planted.iter().chain([&slot.join("supervise/notes")]) {
        assert_eq!(fs::symlink_metadata(p).unwrap().uid(), 0, "{}", p.display());
    }
}
