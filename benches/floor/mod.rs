//! The floor: the fewest system calls that produce what `reconcile` does on
//! the benchmark's tree, with none of its safety (paths walked by the
//! kernel, nothing re-checked, no plan, no report but the stdout lines), so
//! that the ratio `reconcile / floor` is measured, not guessed.
//!
//! - `apply`: a first boot. The static services' `supervise/`, `control`
//!   and `event/` chowned and chmodded; the scandir and `.s6-svscan/`
//!   opened to the user; then, as uid 10000 (like `reconcile`), for every
//!   profile: its state and lifecycle files read, stale runtime files
//!   unlinked, the slot built in its staging dir with the same contents
//!   (`s6_reconcile::desired::slot::render`) and renamed into place; a rescan asked
//!   for; the boot log appended. The benchmark checks that `reconcile
//!   --plan` finds nothing to change on the floor's result.
//! - `check`: the converged compare. Every profile's state read, and every
//!   slot compared thoroughly: the slot and `log/` listed, each entry with a
//!   wanted owner or mode `fstatat`ed, each script read; the static
//!   services' `supervise/` listed and its entries stated.
//!
//! Run as `<bench binary> --floor apply|check ROOT`, a process of its own
//! like `reconcile`.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use s6_reconcile::desired::config::Templates;
use s6_reconcile::desired::slot;

const UID: u32 = super::UID;
const GID: u32 = super::GID;

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn fail(what: &str, name: &CStr) -> ! {
    eprintln!(
        "floor: {what} {}: {}",
        name.to_string_lossy(),
        std::io::Error::last_os_error()
    );
    std::process::exit(111)
}

fn open_dir(at: RawFd, name: &CStr) -> RawFd {
    let fd = unsafe {
        libc::openat(
            at,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        fail("open", name);
    }
    fd
}

fn close(fd: RawFd) {
    unsafe { libc::close(fd) };
}

fn chown(at: RawFd, name: &CStr, uid: u32, gid: u32) {
    if unsafe { libc::fchownat(at, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        fail("chown", name);
    }
}

fn chmod(at: RawFd, name: &CStr, mode: u32) {
    if unsafe { libc::fchmodat(at, name.as_ptr(), mode, 0) } != 0 {
        fail("chmod", name);
    }
}

fn mkdir(at: RawFd, name: &CStr, mode: u32) {
    if unsafe { libc::mkdirat(at, name.as_ptr(), mode) } != 0 {
        fail("mkdir", name);
    }
}

fn mkfifo(at: RawFd, name: &CStr, mode: u32) {
    if unsafe { libc::mkfifoat(at, name.as_ptr(), mode) } != 0 {
        fail("mkfifo", name);
    }
}

fn create(at: RawFd, name: &CStr, mode: u32, content: &[u8]) {
    let fd = unsafe {
        libc::openat(
            at,
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            mode,
        )
    };
    if fd < 0 {
        fail("create", name);
    }
    if !content.is_empty() {
        let n = unsafe { libc::write(fd, content.as_ptr().cast(), content.len()) };
        if n != content.len() as isize {
            fail("write", name);
        }
    }
    close(fd);
}

/// Read a small file whole: open, one read (the buffer is larger than any
/// file here, and a short read is the end), close. `None` if missing.
fn read_small(at: RawFd, name: &CStr, buf: &mut [u8]) -> Option<usize> {
    let fd = unsafe { libc::openat(at, name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    close(fd);
    (n >= 0).then_some(n as usize)
}

fn lstat(at: RawFd, name: &CStr) -> Option<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatat(at, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    (r == 0).then_some(st)
}

/// The names in a directory (one `getdents64` loop), without `.` and `..`.
fn list(fd: RawFd) -> Vec<CString> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off < n as usize {
            // struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = unsafe { CStr::from_ptr(buf.as_ptr().add(off + 19).cast()) };
            let b = name.to_bytes();
            if b != b"." && b != b".." {
                out.push(name.to_owned());
            }
            off += reclen;
        }
    }
    out
}

/// `running`-ness from a state file: `desired_state`, else `gateway_state`
/// with the transient states counted as running.
fn prior_state(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(s) = v.get("desired_state").and_then(|s| s.as_str()) {
        return Some(s.to_string());
    }
    let s = v.get("gateway_state")?.as_str()?;
    Some(match s {
        "draining" | "degraded" => "running".to_string(),
        s => s.to_string(),
    })
}

fn prior_exit(bytes: Option<&[u8]>) -> &'static str {
    let phase = bytes
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("phase").and_then(|p| p.as_str()).map(str::to_string));
    match phase.as_deref() {
        Some("exited") => "clean",
        Some("running") => "unclean",
        _ => "unknown",
    }
}

struct Profile {
    name: String,
    /// `profiles/<name>` below the home, or `.` for the default.
    dir: CString,
}

fn profiles(home: RawFd) -> Vec<Profile> {
    let mut v = vec![Profile {
        name: "default".into(),
        dir: c("."),
    }];
    let pd = open_dir(home, &c("profiles"));
    let mut names = list(pd);
    close(pd);
    names.sort();
    for n in names {
        let name = n.to_string_lossy().into_owned();
        let dir = c(&format!("profiles/{name}"));
        if lstat(home, &c(&format!("profiles/{name}/SOUL.md"))).is_some() {
            v.push(Profile { name, dir });
        }
    }
    v
}

pub fn main(mode: &str, root: &Path) {
    let root_c = CString::new(root.as_os_str().as_bytes()).unwrap();
    let root = open_dir(libc::AT_FDCWD, &root_c);
    match mode {
        "apply" => apply(root),
        "check" => check(root),
        m => {
            eprintln!("floor: unknown mode {m}");
            std::process::exit(100)
        }
    }
}

fn static_services(root: RawFd, mut each: impl FnMut(RawFd, &str)) {
    let sd = open_dir(root, &c("run/s6-rc/servicedirs"));
    let mut names = list(sd);
    names.sort();
    for n in names {
        let name = n.to_string_lossy();
        if name.starts_with("s6rc-") || name.starts_with("s6-linux-") {
            continue;
        }
        each(sd, &name);
    }
    close(sd);
}

fn apply(root: RawFd) {
    unsafe { libc::umask(0) };
    static_services(root, |sd, name| {
        let sup = c(&format!("{name}/supervise"));
        chown(sd, &sup, UID, GID);
        chmod(sd, &sup, 0o710);
        let control = c(&format!("{name}/supervise/control"));
        chown(sd, &control, UID, GID);
        chmod(sd, &control, 0o660);
        chown(sd, &c(&format!("{name}/event")), UID, GID);
    });
    let scandir = open_dir(root, &c("run/service"));
    chown(scandir, &c("."), UID, GID);
    chown(scandir, &c(".s6-svscan"), 0, GID);
    chmod(scandir, &c(".s6-svscan"), 0o710);
    chown(scandir, &c(".s6-svscan/control"), UID, GID);
    chown(scandir, &c(".s6-svscan/lock"), UID, GID);

    // The profiles phase as the user, like reconcile in compat.
    unsafe {
        let g = GID;
        libc::setgroups(1, &g);
        libc::setresgid(GID, GID, GID);
        libc::setresuid(UID, UID, UID);
    }
    let home = open_dir(root, &c("opt/data"));
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = String::new();
    let mut log = String::new();
    let ts = "2026-01-01T00:00:00+0000";
    let templates = Templates::default();
    let mut stale = Vec::new();
    for p in profiles(home) {
        let dir = p.dir.to_str().unwrap();
        let state = read_small(home, &c(&format!("{dir}/gateway_state.json")), &mut buf)
            .and_then(|n| prior_state(&buf[..n]));
        let life = read_small(
            home,
            &c(&format!("{dir}/state/gateway.lifecycle.json")),
            &mut buf,
        );
        let exit = prior_exit(life.map(|n| &buf[..n]));
        let is_default = p.name == "default";
        let started = state.as_deref() == Some("running");
        let files = slot::render(&p.name, is_default, "hermes", "/opt/data", &templates);
        let slot_name = format!("gateway-{}", p.name);
        let staging = c(&format!(".{slot_name}.tmp"));
        mkdir(scandir, &staging, 0o755);
        let s = open_dir(scandir, &staging);
        create(s, &c("type"), 0o644, b"longrun\n");
        create(s, &c("run"), 0o755, files.run.as_bytes());
        create(s, &c("finish"), 0o755, files.finish.as_bytes());
        if !started {
            create(s, &c("down"), 0o644, b"");
        }
        for prefix in ["", "log/"] {
            if !prefix.is_empty() {
                mkdir(s, &c("log"), 0o755);
                create(s, &c("log/run"), 0o755, files.log_run.as_bytes());
            }
            // mkdir drops setgid from the mode: event dirs need a chmod.
            mkdir(s, &c(&format!("{prefix}event")), 0o3730);
            chmod(s, &c(&format!("{prefix}event")), 0o3730);
            mkdir(s, &c(&format!("{prefix}supervise")), 0o755);
            mkdir(s, &c(&format!("{prefix}supervise/event")), 0o3730);
            chmod(s, &c(&format!("{prefix}supervise/event")), 0o3730);
            mkfifo(s, &c(&format!("{prefix}supervise/control")), 0o660);
        }
        close(s);
        let slot_c = c(&slot_name);
        if unsafe { libc::renameat(scandir, staging.as_ptr(), scandir, slot_c.as_ptr()) } != 0 {
            fail("rename", &staging);
        }
        stale.push(c(&format!("{dir}/gateway.pid")));
        stale.push(c(&format!("{dir}/processes.json")));
        let action = if started { "started" } else { "registered" };
        let st = state.as_deref().unwrap_or("None");
        out += &format!(
            "reconcile: profile={} prior_state={st} action={action}\n",
            p.name
        );
        log += &format!(
            "{ts} profile={} prior_state={st} action={action} prior_exit={exit}\n",
            p.name
        );
    }
    // The volume after the slots, as reconcile does.
    for f in &stale {
        unsafe { libc::unlinkat(home, f.as_ptr(), 0) };
    }
    // Rescan: ENXIO without a scanner.
    let control = c(".s6-svscan/control");
    let fd = unsafe {
        libc::openat(
            scandir,
            control.as_ptr(),
            libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd >= 0 {
        unsafe { libc::write(fd, b"a".as_ptr().cast(), 1) };
        close(fd);
    }
    let name = c("logs/container-boot.log");
    let fd = unsafe {
        libc::openat(
            home,
            name.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        fail("open", &name);
    }
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(fd, &mut st) };
    unsafe { libc::write(fd, log.as_ptr().cast(), log.len()) };
    close(fd);
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}

/// Entries of a slot (relative to it) that have a wanted owner or mode.
const SLOT_STATS: &[&str] = &[
    "type",
    "run",
    "finish",
    "down",
    "event",
    "supervise",
    "supervise/event",
    "supervise/control",
    "log",
];
const LOG_STATS: &[&str] = &[
    "run",
    "event",
    "supervise",
    "supervise/event",
    "supervise/control",
];

fn check(root: RawFd) {
    let mut differ = 0usize;
    static_services(root, |sd, name| {
        let sup = open_dir(sd, &c(&format!("{name}/supervise")));
        for n in list(sup) {
            let _ = lstat(sup, &n);
        }
        close(sup);
        if lstat(sd, &c(&format!("{name}/event"))).is_none() {
            differ += 1;
        }
    });
    let scandir = open_dir(root, &c("run/service"));
    for n in [".", ".s6-svscan", ".s6-svscan/control", ".s6-svscan/lock"] {
        let _ = lstat(scandir, &c(n));
    }
    let home = open_dir(root, &c("opt/data"));
    let mut buf = vec![0u8; 64 * 1024];
    let templates = Templates::default();
    let mut out = String::new();
    for p in profiles(home) {
        let dir = p.dir.to_str().unwrap();
        let state = read_small(home, &c(&format!("{dir}/gateway_state.json")), &mut buf)
            .and_then(|n| prior_state(&buf[..n]));
        let _ = read_small(
            home,
            &c(&format!("{dir}/state/gateway.lifecycle.json")),
            &mut buf,
        );
        for f in ["gateway.pid", "processes.json"] {
            let _ = lstat(home, &c(&format!("{dir}/{f}")));
        }
        let files = slot::render(
            &p.name,
            p.name == "default",
            "hermes",
            "/opt/data",
            &templates,
        );
        let s = open_dir(scandir, &c(&format!("gateway-{}", p.name)));
        let log = open_dir(s, &c("log"));
        for (fd, names) in [(s, SLOT_STATS), (log, LOG_STATS)] {
            let listed = list(fd);
            for n in names {
                let n = c(n);
                if listed
                    .iter()
                    .any(|l| l.as_bytes() == n.as_bytes().split(|&b| b == b'/').next().unwrap())
                {
                    let _ = lstat(fd, &n);
                }
            }
        }
        for (fd, name, want) in [
            (s, "type", "longrun\n"),
            (s, "run", &*files.run),
            (s, "finish", &*files.finish),
            (log, "run", &*files.log_run),
        ] {
            match read_small(fd, &c(name), &mut buf) {
                Some(n) if &buf[..n] == want.as_bytes() => {}
                _ => differ += 1,
            }
        }
        close(log);
        close(s);
        out += &format!(
            "reconcile: profile={} prior_state={}\n",
            p.name,
            state.as_deref().unwrap_or("None")
        );
    }
    out += &format!("differ: {differ}\n");
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}
