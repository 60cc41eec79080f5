//! Benchmark: `reconcile` as a whole process on a boot-sized tree.
//!
//! For each N (profiles) it builds, on tmpfs, the tree a container has when
//! its cont-init runs: M static services as `s6-rc-init` leaves them (root
//! `supervise/` with its control FIFO, lock, status, death_tally; `event/`),
//! the scandir with their symlinks and `.s6-svscan/`, and a volume owned by
//! uid 10000 with N profiles (a mix of running and stopped). It then times
//! four cases, each as a separate process:
//!
//! - `plan`: `reconcile --plan` on the fresh tree (what a boot would do);
//! - `apply`: `reconcile` on a fresh copy of the tree each run (the copy is
//!   made outside the timed region);
//! - `plan-done`: `reconcile --plan` on a tree an apply has converged (what
//!   `--check` costs on a running container; it must print no change);
//! - `all-fail`: `reconcile --phase profiles` where uid 10000 cannot write
//!   the scandir and every state file is corrupt (every slot fails, every
//!   profile warns): the error paths at scale.
//!
//! and prints, per case: the median wall and CPU time of a run, both per
//! slot (N profiles + the default slot), the peak RSS (`wait4`'s rusage of
//! the child itself) and the system calls per slot (one extra run under
//! `strace -f -c`, not timed). See benches/README.md.
//!
//! `cargo bench --bench reconcile [-- [N...] [--runs K] [--no-strace]]`,
//! as root. Without `--bench` (as `cargo test --all-targets` runs it) it only
//! does one quick pass on a tiny tree, so that the benchmark cannot rot.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod floor;

/// The binary under test: this package's, or `BENCH_RECONCILE` (to compare builds).
fn reconcile() -> PathBuf {
    std::env::var_os("BENCH_RECONCILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_reconcile")))
}
const UID: u32 = 10000;
const GID: u32 = 10000;
/// Static services (two of them s6-overlay's own `s6rc-*`, left root-only).
const M: usize = 100;

struct Options {
    bench: bool,
    ns: Vec<usize>,
    runs: Option<usize>,
    strace: bool,
    /// `--build-only DIR`: build the tree (for the first N) at DIR and stop.
    build_only: Option<PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        bench: false,
        ns: Vec::new(),
        runs: None,
        strace: true,
        build_only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => o.bench = true,
            "--no-strace" => o.strace = false,
            "--runs" => o.runs = args.next().and_then(|v| v.parse().ok()),
            "--build-only" => o.build_only = args.next().map(PathBuf::from),
            // libtest flags cargo may pass along (`cargo test -- --include-ignored`).
            s if s.starts_with("--") => {}
            s => match s.parse() {
                Ok(n) => o.ns.push(n),
                Err(_) => die(&format!("not a number of profiles: {s}")),
            },
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("bench reconcile: {msg}");
    std::process::exit(1);
}

fn main() {
    // The floor program runs as a process of its own: this binary again.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--floor") {
        match (args.get(i + 1), args.get(i + 2)) {
            (Some(mode), Some(root)) => floor::main(mode, Path::new(root)),
            _ => die("--floor apply|check ROOT"),
        }
        return;
    }
    let o = options();
    let root = unsafe { libc::geteuid() } == 0;
    if !o.bench {
        if !root {
            println!("bench reconcile: not root; the smoke pass needs root (chown, uid drop)");
            return;
        }
        smoke();
        return;
    }
    if !root {
        die(
            "run as root: the tree has root- and 10000-owned parts, and reconcile drops to uid 10000",
        );
    }
    let ns = if o.ns.is_empty() {
        vec![100, 1000, 10000]
    } else {
        o.ns.clone()
    };
    if let Some(dir) = &o.build_only {
        build_tree(dir, ns[0], M);
        println!(
            "built {} with N = {} profiles, M = {M} static services",
            dir.display(),
            ns[0]
        );
        return;
    }
    let work = Work::new();
    println!(
        "reconcile: {}\ntree on {} ({}), M = {M} static services; slots = N profiles + default\n",
        reconcile().display(),
        work.dir.display(),
        work.fs_kind
    );
    let mut rows = Vec::new();
    for &n in &ns {
        let runs = o.runs.unwrap_or(match n {
            0..=300 => 15,
            301..=3000 => 7,
            _ => 3,
        });
        eprintln!("N = {n}: building the tree...");
        let tpl = work.dir.join(format!("tpl-{n}"));
        let t0 = Instant::now();
        build_tree(&tpl, n, M);
        eprintln!(
            "N = {n}: built in {:.2?}; {runs} runs per case",
            t0.elapsed()
        );
        rows.extend(bench_n(&work, &tpl, n, runs, o.strace));
        rm_rf(&tpl);
    }
    print_table(&rows, o.strace);
}

/// A scratch directory on tmpfs, removed at the end.
struct Work {
    dir: PathBuf,
    fs_kind: &'static str,
}

impl Work {
    fn new() -> Work {
        let base = std::env::var_os("BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/dev/shm"));
        let dir = base.join(format!("s6-reconcile-bench.{}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| die(&format!("mkdir {}: {e}", dir.display())));
        // Searchable by uid 10000: the profiles phase runs as that user.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let fs_kind = if is_tmpfs(&dir) {
            "tmpfs"
        } else {
            eprintln!("bench reconcile: warning: {} is not tmpfs", dir.display());
            "NOT tmpfs"
        };
        Work { dir, fs_kind }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        rm_rf(&self.dir);
    }
}

fn is_tmpfs(p: &Path) -> bool {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    r == 0 && st.f_type == libc::TMPFS_MAGIC
}

// ---------------------------------------------------------------- the tree

fn mkdir(p: &Path, mode: u32, owner: (u32, u32)) {
    fs::create_dir(p).unwrap_or_else(|e| die(&format!("mkdir {}: {e}", p.display())));
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(p, Some(owner.0), Some(owner.1)).unwrap();
}

fn file(p: &Path, content: &str, mode: u32, owner: (u32, u32)) {
    fs::write(p, content).unwrap_or_else(|e| die(&format!("write {}: {e}", p.display())));
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(p, Some(owner.0), Some(owner.1)).unwrap();
}

fn fifo(p: &Path, mode: u32) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        die(&format!(
            "mkfifo {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        ));
    }
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A servicedir as `s6-rc-init` leaves it once `s6-supervise` runs on it.
fn supervised_servicedir(dir: &Path, run: &str) {
    const ROOT: (u32, u32) = (0, 0);
    mkdir(dir, 0o755, ROOT);
    file(&dir.join("type"), "longrun\n", 0o644, ROOT);
    file(&dir.join("run"), run, 0o755, ROOT);
    let sup = dir.join("supervise");
    mkdir(&sup, 0o700, ROOT);
    fifo(&sup.join("control"), 0o600);
    file(&sup.join("lock"), "", 0o644, ROOT);
    // s6-supervise's status record is 35 bytes.
    file(&sup.join("status"), &"\0".repeat(35), 0o644, ROOT);
    file(&sup.join("death_tally"), "", 0o644, ROOT);
    mkdir(&dir.join("event"), 0o3730, ROOT);
}

/// Build the whole container root at `root`: N profiles, `m` static services.
fn build_tree(root: &Path, n: usize, m: usize) {
    const ROOT: (u32, u32) = (0, 0);
    const USER: (u32, u32) = (UID, GID);
    mkdir(root, 0o755, ROOT);
    mkdir(&root.join("etc"), 0o755, ROOT);
    file(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000::/opt/data:/bin/sh\n",
        0o644,
        ROOT,
    );
    file(
        &root.join("etc/group"),
        "root:x:0:\nhermes:x:10000:\n",
        0o644,
        ROOT,
    );

    // /run/s6-rc is a symlink to s6-rc's live directory, as in s6-overlay.
    let run = root.join("run");
    mkdir(&run, 0o755, ROOT);
    let live = run.join("s6-rc:s6-rc-init:bench");
    mkdir(&live, 0o755, ROOT);
    symlink("s6-rc:s6-rc-init:bench", run.join("s6-rc")).unwrap();
    let sd = live.join("servicedirs");
    mkdir(&sd, 0o755, ROOT);
    let scandir = run.join("service");
    mkdir(&scandir, 0o755, ROOT);
    let svscan = scandir.join(".s6-svscan");
    mkdir(&svscan, 0o700, ROOT);
    fifo(&svscan.join("control"), 0o600);
    file(&svscan.join("lock"), "", 0o644, ROOT);
    file(
        &svscan.join("crash"),
        "#!/bin/sh\nexec /run/s6/basedir/bin/halt\n",
        0o755,
        ROOT,
    );
    let mut names: Vec<String> = vec!["s6rc-fdholder".into(), "s6rc-oneshot-runner".into()];
    names.extend((1..=m.saturating_sub(2)).map(|i| format!("svc-{i:03}")));
    for name in &names {
        supervised_servicedir(&sd.join(name), &format!("#!/bin/sh\nexec {name}\n"));
        symlink(format!("/run/s6-rc/servicedirs/{name}"), scandir.join(name)).unwrap();
    }
    // s6-linux-init's own service is a real directory in the scandir.
    supervised_servicedir(
        &scandir.join("s6-linux-init-shutdownd"),
        "#!/bin/sh\nexec s6-linux-init-shutdownd\n",
    );

    // The volume, the user's.
    mkdir(&root.join("opt"), 0o755, ROOT);
    let home = root.join("opt/data");
    mkdir(&home, 0o755, USER);
    file(&home.join("SOUL.md"), "# default\n", 0o644, USER);
    file(
        &home.join("gateway_state.json"),
        r#"{"gateway_state": "running"}"#,
        0o644,
        USER,
    );
    mkdir(&home.join("logs"), 0o755, USER);
    let profiles = home.join("profiles");
    mkdir(&profiles, 0o755, USER);
    for i in 1..=n {
        let p = profiles.join(format!("p{i:05}"));
        mkdir(&p, 0o755, USER);
        file(&p.join("SOUL.md"), &format!("# profile {i}\n"), 0o644, USER);
        // A mix: two thirds running, one third stopped; some use
        // desired_state, some a transient state.
        let state = match i % 6 {
            0 | 3 => r#"{"gateway_state": "stopped", "pid": null}"#,
            1 => r#"{"desired_state": "running", "gateway_state": "stopped"}"#,
            4 => r#"{"gateway_state": "draining"}"#,
            _ => r#"{"gateway_state": "running", "updated_at": "2026-01-01T00:00:00Z"}"#,
        };
        file(&p.join("gateway_state.json"), state, 0o644, USER);
        if i % 2 == 0 {
            mkdir(&p.join("state"), 0o755, USER);
            file(
                &p.join("state/gateway.lifecycle.json"),
                r#"{"phase": "exited"}"#,
                0o644,
                USER,
            );
        }
        // A previous container's PID file, for some.
        if i % 10 == 0 {
            file(&p.join("gateway.pid"), "4242\n", 0o644, USER);
        }
    }
}

fn cp_a(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    if !st.success() {
        die(&format!("cp -a {} {}: {st}", from.display(), to.display()));
    }
}

fn rm_rf(p: &Path) {
    let _ = fs::remove_dir_all(p);
}

// ---------------------------------------------------------------- running

struct Run {
    wall: Duration,
    /// User + system CPU time of the child: robust when other work shares the CPUs.
    cpu: Duration,
    maxrss_kib: i64,
    code: i32,
    stdout: Vec<u8>,
}

fn command(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(reconcile());
    c.args(args)
        .arg("--root")
        .arg(root)
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// The floor program (benches/floor/mod.rs) on `root`: `apply` or `check`.
fn floor_command(mode: &str, root: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.arg("--floor")
        .arg(mode)
        .arg(root)
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    c
}

/// One run of `reconcile` as a child process; its own peak RSS from `wait4`.
fn run_once(root: &Path, args: &[&str], keep_stdout: bool) -> Run {
    run_child(command(root, args), keep_stdout)
}

/// One run of a child process, timed; its own peak RSS from `wait4`.
fn run_child(mut c: Command, keep_stdout: bool) -> Run {
    let out = tempfile::tempfile().unwrap();
    if keep_stdout {
        c.stdout(out.try_clone().unwrap());
    } else {
        c.stdout(Stdio::null());
    }
    let t0 = Instant::now();
    let child = c.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t0.elapsed();
    if r != pid {
        die(&format!("wait4: {}", std::io::Error::last_os_error()));
    }
    // Reaped by wait4 above; dropping the handle waits for nothing.
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let stdout = if keep_stdout {
        use std::io::{Read, Seek};
        let mut f = out;
        f.rewind().unwrap();
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    } else {
        Vec::new()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Run {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        maxrss_kib: ru.ru_maxrss,
        code,
        stdout,
    }
}

/// Total system calls of one run under `strace -f -c`, and the busiest ones.
fn strace_once(root: &Path, args: &[&str], work: &Path) -> (u64, Vec<(String, u64)>) {
    strace_child(command(root, args), work)
}

fn strace_child(c: Command, work: &Path) -> (u64, Vec<(String, u64)>) {
    let args: Vec<_> = c.get_args().collect();
    let out = work.join("strace.out");
    let st = Command::new("strace")
        .arg("-f")
        .arg("-c")
        .arg("-o")
        .arg(&out)
        .arg("--")
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear()
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| die(&format!("strace: {e} (apt-get install strace)")));
    // Exit 1 (partial failure) is what the all-fail case expects.
    if !matches!(st.code(), Some(0 | 1)) {
        die(&format!("strace run of reconcile {args:?} failed: {st}"));
    }
    let text = fs::read_to_string(&out).unwrap();
    let _ = fs::remove_file(&out);
    let mut total = 0;
    let mut per = Vec::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if t.len() < 5 || t[0].parse::<f64>().is_err() {
            continue;
        }
        let Ok(calls) = t[3].parse::<u64>() else {
            continue;
        };
        let name = t[t.len() - 1].to_string();
        if name == "total" {
            total = calls;
        } else {
            per.push((name, calls));
        }
    }
    per.sort_by_key(|p| std::cmp::Reverse(p.1));
    per.truncate(6);
    (total, per)
}

struct Row {
    case: &'static str,
    n: usize,
    runs: usize,
    median: Duration,
    min: Duration,
    cpu: Duration,
    maxrss_kib: i64,
    syscalls: Option<(u64, Vec<(String, u64)>)>,
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2
    }
}

fn row(
    case: &'static str,
    n: usize,
    runs: Vec<Run>,
    sys: Option<(u64, Vec<(String, u64)>)>,
) -> Row {
    let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    let mut cpus: Vec<Duration> = runs.iter().map(|r| r.cpu).collect();
    Row {
        cpu: median(&mut cpus),
        case,
        n,
        runs: runs.len(),
        median: median(&mut walls),
        min: walls[0],
        maxrss_kib: runs.iter().map(|r| r.maxrss_kib).max().unwrap_or(0),
        syscalls: sys,
    }
}

/// `reconcile --plan` on `root` must find nothing to change.
fn expect_converged(what: &str, root: &Path) {
    let r = run_once(root, &["--plan", "--format", "json"], true);
    expect_ok("plan", &r);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    if v["changes"].as_array().is_none_or(|c| !c.is_empty()) {
        die(&format!(
            "{what} did not converge: the plan after it is not empty:\n{}",
            serde_json::to_string_pretty(&v["changes"]).unwrap_or_default()
        ));
    }
}

fn expect_ok(what: &str, r: &Run) {
    if r.code != 0 {
        die(&format!(
            "{what}: reconcile exited {}\n{}",
            r.code,
            String::from_utf8_lossy(&r.stdout)
        ));
    }
}

/// The published slots (`gateway-*` directories) of a tree.
fn slots_in(root: &Path) -> usize {
    fs::read_dir(root.join("run/service"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().as_bytes().starts_with(b"gateway-"))
        .count()
}

fn bench_n(work: &Work, tpl: &Path, n: usize, runs: usize, strace: bool) -> Vec<Row> {
    let slots = n + 1;
    let copy = work.dir.join(format!("run-{n}"));
    let mut rows = Vec::new();

    // plan, fresh tree: changes nothing, so the template itself serves.
    let first = run_once(tpl, &["--plan"], true);
    expect_ok("plan", &first);
    let mut plan_runs = vec![first];
    plan_runs.extend((1..runs).map(|_| run_once(tpl, &["--plan"], false)));
    let sys = strace.then(|| strace_once(tpl, &["--plan"], &work.dir));
    rows.push(row("plan", n, plan_runs, sys));

    // apply, each on a fresh copy made outside the timed region, and the
    // floor's apply, interleaved with it (same loop, same tmpfs).
    let floor_copy = work.dir.join(format!("floor-{n}"));
    let mut apply_runs = Vec::new();
    let mut floor_runs = Vec::new();
    for i in 0..runs {
        cp_a(tpl, &copy);
        let r = run_once(&copy, &[], i == 0);
        expect_ok("apply", &r);
        if i == 0 {
            let published = slots_in(&copy);
            if published != slots {
                die(&format!("apply published {published} slots, want {slots}"));
            }
        }
        apply_runs.push(r);
        if i + 1 < runs {
            rm_rf(&copy);
        }
        cp_a(tpl, &floor_copy);
        let f = run_child(floor_command("apply", &floor_copy), false);
        if f.code != 0 {
            die(&format!("floor apply exited {}", f.code));
        }
        if i == 0 {
            expect_converged("the floor's apply", &floor_copy);
        }
        floor_runs.push(f);
        rm_rf(&floor_copy);
    }
    let fresh_strace = |c: &dyn Fn(&Path) -> Command| {
        let fresh = work.dir.join(format!("strace-{n}"));
        cp_a(tpl, &fresh);
        let s = strace_child(c(&fresh), &work.dir);
        rm_rf(&fresh);
        s
    };
    let sys = strace.then(|| fresh_strace(&|r| command(r, &[])));
    rows.push(row("apply", n, apply_runs, sys));
    let sys = strace.then(|| fresh_strace(&|r| floor_command("apply", r)));
    rows.push(row("floor-apply", n, floor_runs, sys));

    // plan on the converged tree (the last apply's copy): must be empty;
    // the floor's converged compare interleaved with it.
    expect_converged("apply", &copy);
    let mut done_runs = Vec::new();
    let mut check_runs = Vec::new();
    for _ in 0..runs {
        done_runs.push(run_once(&copy, &["--plan"], false));
        let f = run_child(floor_command("check", &copy), true);
        if f.code != 0 || !f.stdout.ends_with(b"differ: 0\n") {
            die(&format!(
                "floor check exited {} or found differences:\n{}",
                f.code,
                String::from_utf8_lossy(&f.stdout)
            ));
        }
        check_runs.push(f);
    }
    let sys = strace.then(|| strace_once(&copy, &["--plan"], &work.dir));
    rows.push(row("plan-done", n, done_runs, sys));
    let sys = strace.then(|| strace_child(floor_command("check", &copy), &work.dir));
    rows.push(row("floor-chk", n, check_runs, sys));
    // A converged re-apply: what a container restart without a new volume
    // would cost if /run survived (the compare plus the boot log).
    let mut again_runs = Vec::new();
    for _ in 0..runs {
        let r = run_once(&copy, &[], false);
        expect_ok("re-apply", &r);
        again_runs.push(r);
    }
    let sys = strace.then(|| strace_once(&copy, &[], &work.dir));
    rows.push(row("re-apply", n, again_runs, sys));
    rm_rf(&copy);

    // Every slot fails and every state file warns: the error paths at scale.
    // The scandir stays root's (no scandir phase), so uid 10000 cannot
    // publish; nothing is published, every slot is reported.
    cp_a(tpl, &copy);
    for i in 1..=n {
        let state = copy.join(format!("opt/data/profiles/p{i:05}/gateway_state.json"));
        fs::write(&state, "{oops").unwrap();
    }
    let args = ["--phase", "profiles"];
    let mut fail_runs = Vec::new();
    for i in 0..runs {
        let r = run_once(&copy, &args, i == 0);
        if r.code != 1 {
            die(&format!("all-fail: reconcile exited {}, want 1", r.code));
        }
        if i == 0 {
            let out = String::from_utf8_lossy(&r.stdout);
            let want = format!("{slots} failed.");
            if !out.trim_end().ends_with(&want) || slots_in(&copy) != 0 {
                die(&format!(
                    "all-fail: want every slot failed ({want}), got:\n{out}"
                ));
            }
        }
        fail_runs.push(r);
    }
    let sys = strace.then(|| strace_once(&copy, &args, &work.dir));
    rows.push(row("all-fail", n, fail_runs, sys));
    rm_rf(&copy);
    rows
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn print_table(rows: &[Row], strace: bool) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<11} {:>6} {:>4} | {:>10} {:>10} {:>9} | {:>10} {:>9} | {:>8} | {:>8} {:>8}",
        "case",
        "N",
        "runs",
        "wall med",
        "wall min",
        "wall/slot",
        "cpu med",
        "cpu/slot",
        "max RSS",
        "syscalls",
        "sys/slot"
    );
    for r in rows {
        let slots = (r.n + 1) as f64;
        let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6 / slots);
        let (sc, sps) = match &r.syscalls {
            Some((t, _)) => (t.to_string(), format!("{:.1}", *t as f64 / slots)),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<11} {:>6} {:>4} | {:>10} {:>10} {:>9} | {:>10} {:>9} | {:>8} | {:>8} {:>8}",
            r.case,
            r.n,
            r.runs,
            ms(r.median),
            ms(r.min),
            us(r.median),
            ms(r.cpu),
            us(r.cpu),
            format!("{:.1} MiB", r.maxrss_kib as f64 / 1024.0),
            sc,
            sps
        );
    }
    let _ = writeln!(
        out,
        "\nratios to the floor (medians, same loop, interleaved):"
    );
    for r in rows
        .iter()
        .filter(|r| matches!(r.case, "apply" | "plan-done"))
    {
        let floor_case = if r.case == "apply" {
            "floor-apply"
        } else {
            "floor-chk"
        };
        let Some(f) = rows.iter().find(|f| f.case == floor_case && f.n == r.n) else {
            continue;
        };
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        let sys = match (&r.syscalls, &f.syscalls) {
            (Some((a, _)), Some((b, _))) => format!(", syscalls {:.2}x", *a as f64 / *b as f64),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<9} / {:<11} N = {:>6}: wall {:.2}x, cpu {:.2}x{sys}",
            r.case,
            floor_case,
            r.n,
            ratio(r.median, f.median),
            ratio(r.cpu, f.cpu)
        );
    }
    if strace {
        let _ = writeln!(
            out,
            "\nbusiest system calls (strace -f -c, one run per case):"
        );
        for r in rows {
            if let Some((_, per)) = &r.syscalls {
                let list: Vec<String> = per.iter().map(|(s, c)| format!("{s} {c}")).collect();
                let _ = writeln!(out, "  {:<10} {:>6}: {}", r.case, r.n, list.join(", "));
            }
        }
    }
}

/// Without `--bench`: one plan and one apply on a tiny tree, checked to
/// converge, so that `cargo test --all-targets` keeps the benchmark working.
fn smoke() {
    let work = Work::new();
    let tpl = work.dir.join("tpl");
    build_tree(&tpl, 5, 5);
    let rows = bench_n(&work, &tpl, 5, 1, false);
    println!("bench reconcile: smoke pass ok (run `cargo bench --bench reconcile` for figures)");
    print_table(&rows, false);
}
