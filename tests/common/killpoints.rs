//! Kill points for crash tests: kill a process with SIGKILL on entry to its
//! k-th mutating system call, for any k, deterministically.
//!
//! * [`record`] runs a command under `strace -f` and lists its mutating
//!   calls in order ([`MUTATING`]; `openat` only with `O_CREAT`). Every
//!   syscall is traced and classified, so a run that mutates through a call
//!   outside [`WATCHED`] fails the recording instead of escaping the sweep.
//! * [`run_traced`] runs a command under a small ptrace tracer whose seccomp
//!   filter stops the tracee only at the [`WATCHED`] calls (`SECCOMP_RET_TRACE`,
//!   before the call runs). Stopped at the k-th one, the tracee is sent
//!   SIGKILL: the call never runs, and the state left is the one after calls
//!   1..k-1. Only mutating calls stop, so a run is barely slower than
//!   untraced, which makes a sweep over every k affordable.
//! * [`strace_kill_at`] is the same kill done by strace
//!   (`--inject=NAME:signal=KILL:when=N`, N counted per syscall name), as an
//!   independent cross-check of the tracer. It stops at every syscall
//!   (strace 6.1 does not deliver injected signals with `--seccomp-bpf`),
//!   hence ten times slower.
//!
//! [`Syscall::key`] and [`Stop::key`] describe a call the same way (name,
//! first fd, path arguments, write size) so the tracer's stops can be
//! matched one to one with strace's record, and a kill checked to land on
//! the recorded call.

use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// System calls that change the file system or write anything.
pub const MUTATING: &[&str] = &[
    "mkdirat",
    "mkdir",
    "mknodat",
    "mknod",
    "openat",
    "openat2",
    "open",
    "creat",
    "write",
    "writev",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "fchmod",
    "fchmodat",
    "chmod",
    "fchownat",
    "fchown",
    "lchown",
    "chown",
    "renameat2",
    "renameat",
    "rename",
    "unlinkat",
    "unlink",
    "rmdir",
    "linkat",
    "link",
    "symlinkat",
    "symlink",
    "ftruncate",
    "truncate",
    "fallocate",
    "setxattr",
    "fsetxattr",
    "lsetxattr",
    "utimensat",
];

/// The mutating calls the fd-based primitives make (`mkfifoat` is
/// `mknodat`; a mode change through `/proc/thread-self/fd` is `fchmodat`), and
/// where their path arguments are.
pub const WATCHED: &[(&str, libc::c_long, &[usize])] = &[
    ("mkdirat", libc::SYS_mkdirat, &[1]),
    ("mknodat", libc::SYS_mknodat, &[1]),
    ("openat", libc::SYS_openat, &[1]),
    ("write", libc::SYS_write, &[]),
    ("fchmod", libc::SYS_fchmod, &[]),
    ("fchmodat", libc::SYS_fchmodat, &[1]),
    ("fchownat", libc::SYS_fchownat, &[1]),
    ("renameat2", libc::SYS_renameat2, &[1, 3]),
    // Replacing a recorded report (docs/runtime.md "Files").
    ("renameat", libc::SYS_renameat, &[1, 3]),
    ("unlinkat", libc::SYS_unlinkat, &[1]),
];

fn watched(name: &str) -> Option<&'static (&'static str, libc::c_long, &'static [usize])> {
    WATCHED.iter().find(|w| w.0 == name)
}

/// Send the command's stdout and stderr to `<base>.out` and `<base>.err`
/// (files, never a terminal, so every run writes the same way).
pub fn output_to(cmd: &mut Command, base: &Path) -> io::Result<()> {
    let out = std::fs::File::create(base.with_extension("out"))?;
    let err = std::fs::File::create(base.with_extension("err"))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    Ok(())
}

/// What a run wrote to stdout and stderr (see [`output_to`]).
pub fn output_of(base: &Path) -> String {
    let read = |ext| std::fs::read_to_string(base.with_extension(ext)).unwrap_or_default();
    format!("--- stdout\n{}--- stderr\n{}", read("out"), read("err"))
}

// ------------------------------------------------------------------ strace

/// One mutating system call of a run recorded by strace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub name: String,
    /// 1-based invocation number among all calls named `name` (what
    /// strace's `when=` counts).
    pub nth: usize,
    /// The call as strace prints it, without its result, normalised by
    /// [`normalise`].
    pub call: String,
}

impl Syscall {
    /// Name, first fd, path arguments and (for `write`) size.
    pub fn key(&self) -> String {
        let inner = self
            .call
            .strip_prefix(&format!("{}(", self.name))
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or("");
        let args = split_args(inner);
        let fd = match args.first().map(String::as_str) {
            Some("AT_FDCWD") => "-100".to_string(),
            Some(a) => a.to_string(),
            None => String::new(),
        };
        let mut key = format!("{} fd={fd}", self.name);
        if let Some((_, _, paths)) = watched(&self.name) {
            for &i in *paths {
                let _ = write!(key, " {}", args.get(i).map(String::as_str).unwrap_or("?"));
            }
        }
        if self.name == "write" {
            let _ = write!(
                key,
                " size={}",
                args.get(2).map(String::as_str).unwrap_or("?")
            );
        }
        key
    }
}

/// Split strace's argument text at top-level commas.
fn split_args(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if in_str {
            cur.push(c);
            match c {
                '\\' => cur.extend(chars.next()),
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                cur.push(c);
            }
            '[' | '{' | '(' => {
                depth += 1;
                cur.push(c);
            }
            ']' | '}' | ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => {
                args.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        args.push(cur.trim().to_string());
    }
    args
}

/// Whether `strace` can be run.
pub fn strace_available() -> Result<(), String> {
    match Command::new("strace")
        .arg("-V")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("strace -V: {}", o.status)),
        Err(e) => Err(format!("cannot run strace: {e}")),
    }
}

/// `program` wrapped in strace (every option, env change and the working
/// directory carried over; output to `<trace>.out`/`.err`).
fn strace(trace: &Path, extra: &[String], program: &Command) -> io::Result<Command> {
    let mut cmd = Command::new("strace");
    cmd.arg("-f").arg("-qq").arg("-o").arg(trace).args(extra);
    cmd.arg("--").arg(program.get_program());
    cmd.args(program.get_args());
    for (k, v) in program.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    if let Some(dir) = program.get_current_dir() {
        cmd.current_dir(dir);
    }
    output_to(&mut cmd, trace)?;
    Ok(cmd)
}

/// Run `program` under strace (every call traced into `trace`) and return
/// its exit status and its mutating calls in order. `root` is replaced by
/// `<root>` in the recorded calls, so that runs on other copies compare.
pub fn record(
    program: &Command,
    trace: &Path,
    root: &Path,
) -> Result<(ExitStatus, Vec<Syscall>), String> {
    let status = strace(trace, &[], program)
        .and_then(|mut c| c.status())
        .map_err(|e| format!("cannot run strace: {e}"))?;
    let text = std::fs::read_to_string(trace).map_err(|e| format!("{}: {e}", trace.display()))?;
    Ok((status, parse(&text, root)?))
}

/// The mutating calls of a `strace -f` log, in order.
pub fn parse(text: &str, root: &Path) -> Result<Vec<Syscall>, String> {
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut pid = None;
    let mut calls = Vec::new();
    for line in text.lines() {
        let Some((p, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        // Invocation counts are kept per traced task: a second task would
        // make them ambiguous.
        match &pid {
            None => pid = Some(p.to_string()),
            Some(q) if q != p => {
                return Err(format!(
                    "more than one traced task ({q} and {p}); kill points by count need one"
                ));
            }
            Some(_) => {}
        }
        if rest.contains("<unfinished ...>") || rest.contains(" resumed>") {
            return Err(format!("split syscall line: {line}"));
        }
        let Some(open) = rest.find('(') else {
            continue;
        };
        let name = &rest[..open];
        if name.starts_with("syscall_") {
            return Err(format!("a system call strace cannot name: {line}"));
        }
        let n = counts.entry(name.to_string()).or_default();
        *n += 1;
        if !MUTATING.contains(&name) {
            continue;
        }
        // Opening without O_CREAT changes nothing (`openat2` shows its
        // flags in a struct: the same test holds).
        if matches!(name, "openat" | "openat2" | "open") && !rest.contains("O_CREAT") {
            continue;
        }
        if watched(name).is_none() {
            return Err(format!(
                "a mutating system call the sweep does not watch: {line}"
            ));
        }
        calls.push(Syscall {
            name: name.to_string(),
            nth: *n,
            call: normalise(name, call_part(rest), root),
        });
    }
    Ok(calls)
}

/// The call without ` = result` (strace pads short calls before it).
fn call_part(rest: &str) -> &str {
    match rest.rfind(" = ") {
        Some(i) => rest[..i].trim_end(),
        None => rest.trim_end(),
    }
}

/// Replace the root by `<root>`, and the data of `write` calls by `…`
/// (it may hold a timestamp).
pub fn normalise(name: &str, call: &str, root: &Path) -> String {
    let call = call.replace(&*root.to_string_lossy(), "<root>");
    if name != "write" {
        return call;
    }
    let mut out = String::with_capacity(call.len());
    let mut chars = call.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        out.push_str("\"…\"");
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
    }
    out.replace("\"…\"...", "\"…\"")
}

/// How a run under [`strace_kill_at`] ended.
pub struct StraceKill {
    pub status: ExitStatus,
    /// Whether strace reports the tracee killed by SIGKILL.
    pub killed: bool,
    /// The last traced call (normalised): the one the kill landed on.
    pub last_call: Option<String>,
}

/// Run `program` under strace and kill it with SIGKILL on entry to `at`
/// (only that syscall name is traced, into `trace`).
pub fn strace_kill_at(
    program: &Command,
    at: &Syscall,
    trace: &Path,
    root: &Path,
) -> Result<StraceKill, String> {
    let extra = vec![
        format!("--trace={}", at.name),
        format!("--inject={}:signal=KILL:when={}", at.name, at.nth),
    ];
    let status = strace(trace, &extra, program)
        .and_then(|mut c| c.status())
        .map_err(|e| format!("cannot run strace: {e}"))?;
    let text = std::fs::read_to_string(trace).map_err(|e| format!("{}: {e}", trace.display()))?;
    let mut killed = false;
    let mut last_call = None;
    for line in text.lines() {
        let Some((_, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("+++ killed by SIGKILL") {
            killed = true;
        } else if rest.starts_with(&format!("{}(", at.name)) {
            last_call = Some(normalise(&at.name, call_part(rest), root));
        }
    }
    Ok(StraceKill {
        status,
        killed,
        last_call,
    })
}

// ------------------------------------------------------------------ tracer

/// A stop of the tracer: a watched call about to run.
#[derive(Clone, Debug)]
pub struct Stop {
    pub name: &'static str,
    pub args: [u64; 6],
    /// The path arguments, read from the tracee's memory (when asked for).
    pub paths: Vec<String>,
}

impl Stop {
    /// The same description as [`Syscall::key`].
    pub fn key(&self) -> String {
        let mut key = format!("{} fd={}", self.name, self.args[0] as i32);
        for p in &self.paths {
            let _ = write!(key, " {p:?}");
        }
        if self.name == "write" {
            let _ = write!(key, " size={}", self.args[2]);
        }
        key
    }
}

/// How a run under [`run_traced`] ended.
#[derive(Debug)]
pub enum End {
    Exited(i32),
    Signaled(i32),
    /// Killed with SIGKILL at this stop (the call did not run).
    Killed(Stop),
}

/// The seccomp filter: stop (`SECCOMP_RET_TRACE`) at every [`WATCHED`]
/// call, `openat` only with `O_CREAT`; allow everything else.
fn filter() -> Vec<libc::sock_filter> {
    const NR: u32 = 0;
    // The low 32 bits of args[2] (`seccomp_data.args` starts at 16).
    #[cfg(target_endian = "little")]
    const ARG2_LOW: u32 = 16 + 2 * 8;
    #[cfg(target_endian = "big")]
    const ARG2_LOW: u32 = 16 + 2 * 8 + 4;
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let jset = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    let others: Vec<u32> = WATCHED
        .iter()
        .filter(|w| w.0 != "openat")
        .map(|w| w.1 as u32)
        .collect();
    // Layout: ld nr; jeq each other → TRACE; jeq openat → check, else
    // ALLOW; check: ld flags; jset O_CREAT → TRACE, else ALLOW; ALLOW; TRACE.
    let n = others.len();
    let allow = n + 4;
    let trace = n + 5;
    let mut f = vec![stmt(ld, NR)];
    for (i, nr) in others.iter().enumerate() {
        let at = 1 + i;
        f.push(jump(jeq, *nr, (trace - at - 1) as u8, 0));
    }
    let at = n + 1;
    f.push(jump(
        jeq,
        libc::SYS_openat as u32,
        0,
        (allow - at - 1) as u8,
    ));
    f.push(stmt(ld, ARG2_LOW));
    let at = n + 3;
    f.push(jump(
        jset,
        libc::O_CREAT as u32,
        (trace - at - 1) as u8,
        (allow - at - 1) as u8,
    ));
    f.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    f.push(stmt(ret, libc::SECCOMP_RET_TRACE));
    f
}

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn wait(pid: libc::pid_t) -> io::Result<libc::c_int> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn ptrace(req: libc::c_uint, pid: libc::pid_t, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: requests used here take no pointer in `addr` and an integer
    // (or a pointer the caller owns) in `data`.
    check(unsafe {
        libc::ptrace(
            req as _,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            data as *mut libc::c_void,
        )
    })
}

/// The watched call the tracee is stopped at.
fn stop_info(pid: libc::pid_t, read_paths: bool) -> io::Result<Stop> {
    // SAFETY: a plain C struct, all zero is valid.
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GET_SYSCALL_INFO writes at most `addr` bytes to `data`.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_GET_SYSCALL_INFO as _,
            pid,
            std::mem::size_of::<libc::ptrace_syscall_info>() as *mut libc::c_void,
            &mut info as *mut _ as *mut libc::c_void,
        )
    })?;
    if info.op != libc::PTRACE_SYSCALL_INFO_SECCOMP {
        return Err(io::Error::other(format!(
            "not a seccomp stop (op {})",
            info.op
        )));
    }
    // SAFETY: op says the `seccomp` member is the one filled in.
    let (nr, args) = unsafe { (info.u.seccomp.nr, info.u.seccomp.args) };
    let Some(&(name, _, path_args)) = WATCHED.iter().find(|w| w.1 as u64 == nr) else {
        return Err(io::Error::other(format!(
            "stopped at unwatched syscall {nr}"
        )));
    };
    let mut paths = Vec::new();
    if read_paths {
        let mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
        for &i in path_args {
            paths.push(read_string(&mem, args[i])?);
        }
    }
    Ok(Stop { name, args, paths })
}

fn read_string(mem: &std::fs::File, addr: u64) -> io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    while out.len() < 4096 {
        let n = mem.read_at(&mut buf, addr + out.len() as u64)?;
        if n == 0 {
            break;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Run `cmd` under the seccomp tracer. With `kill_at: Some(k)`, kill it
/// with SIGKILL when it stops at its k-th watched call. Returns the stops
/// seen (all with their paths when `record`, otherwise only the last) and
/// how the run ended.
///
/// Must be called from the thread that waits for the child (ptrace binds
/// a tracee to the thread that forked it).
pub fn run_traced(
    mut cmd: Command,
    kill_at: Option<usize>,
    record: bool,
) -> io::Result<(Vec<Stop>, End)> {
    let prog = filter();
    // SAFETY: the closure runs in the forked child before exec and only
    // makes system calls (no allocation: `prog` was built before the fork).
    unsafe {
        cmd.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            check(libc::ptrace(
                libc::PTRACE_TRACEME as _,
                0,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            ))?;
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long)?;
            check(libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            ))?;
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    // Reaped below with waitpid; the std handle is never waited on.
    drop(child);
    let status = wait(pid)?;
    if !(libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGTRAP) {
        return Err(io::Error::other(format!(
            "traced child did not stop at exec (status {status:#x})"
        )));
    }
    let opts = libc::PTRACE_O_TRACESECCOMP | libc::PTRACE_O_EXITKILL;
    ptrace(libc::PTRACE_SETOPTIONS as _, pid, opts as usize)?;
    ptrace(libc::PTRACE_CONT as _, pid, 0)?;
    let mut stops = Vec::new();
    let mut n = 0;
    loop {
        let status = wait(pid)?;
        if libc::WIFEXITED(status) {
            return Ok((stops, End::Exited(libc::WEXITSTATUS(status))));
        }
        if libc::WIFSIGNALED(status) {
            return Ok((stops, End::Signaled(libc::WTERMSIG(status))));
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let seccomp = libc::SIGTRAP | (libc::PTRACE_EVENT_SECCOMP << 8);
        if status >> 8 == seccomp {
            n += 1;
            let last = kill_at == Some(n);
            let stop = stop_info(pid, record || last);
            let stop = match stop {
                Ok(s) => s,
                Err(e) => {
                    // SAFETY: kill a child of ours.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    let _ = wait(pid);
                    return Err(e);
                }
            };
            if last {
                // SAFETY: kill a child of ours, stopped before the call.
                check(unsafe { libc::kill(pid, libc::SIGKILL) } as libc::c_long)?;
                loop {
                    let st = wait(pid)?;
                    if libc::WIFSIGNALED(st) || libc::WIFEXITED(st) {
                        break;
                    }
                }
                stops.push(stop.clone());
                return Ok((stops, End::Killed(stop)));
            }
            if record {
                stops.push(stop);
            }
            ptrace(libc::PTRACE_CONT as _, pid, 0)?;
        } else {
            // A signal for the tracee: deliver it.
            let sig = libc::WSTOPSIG(status);
            let sig = if sig == libc::SIGTRAP { 0 } else { sig };
            ptrace(libc::PTRACE_CONT as _, pid, sig as usize)?;
        }
    }
}

/// Whether `status` says killed by SIGKILL.
pub fn killed_by_sigkill(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGKILL)
}
