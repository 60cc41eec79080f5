//! Live-s6 harness: a container root under a temp dir, laid out the way
//! s6-rc-init leaves it, supervised by a real `s6-svscan`.
//!
//! [`LiveS6::start`] builds the tree, starts the scanner in its own session and
//! waits until every service is supervised. Dropping the [`LiveS6`] stops the
//! scanner and every process it spawned, even when the test panicked, and only
//! then removes the temp dir. [`as_user`] runs a command as the unprivileged
//! user; [`reconcile`] runs the built binary against the temp root.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{Pid, getpid};
use tempfile::TempDir;

/// The unprivileged user the tests act as (`hermes` in the temp root's passwd).
pub const USER_UID: u32 = 10000;
pub const USER_GID: u32 = 10000;

/// Where the real s6 lives (Debian's `s6` package).
pub const S6_BIN: &str = "/usr/bin";
const S6_APPLYUIDGID: &str = "/bin/s6-applyuidgid";

/// Container paths, relative to the root.
pub const SERVICEDIRS: &str = "run/s6-rc/servicedirs";
pub const SCANDIR: &str = "run/service";

/// Bound for every wait on the real s6 (startup, shutdown, state changes).
pub const WAIT: Duration = Duration::from_secs(10);

/// One static service as s6-rc-init leaves it in the servicedirs.
#[derive(Clone, Copy, Debug)]
pub struct StaticService {
    pub name: &'static str,
    /// `log/` is itself a servicedir (a logger supervised next to the service).
    pub has_log: bool,
}

impl StaticService {
    /// s6-overlay's own services, which must stay root-only.
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("s6rc-") || self.name.starts_with("s6-linux-")
    }
}

/// The default set: two user-facing services (one with a logger) and
/// s6-overlay's internal ones.
pub const SERVICES: &[StaticService] = &[
    StaticService {
        name: "app-worker",
        has_log: false,
    },
    StaticService {
        name: "nginx",
        has_log: true,
    },
    StaticService {
        name: "s6-linux-init-shutdownd",
        has_log: false,
    },
    StaticService {
        name: "s6rc-fdholder",
        has_log: false,
    },
    StaticService {
        name: "s6rc-oneshot-runner",
        has_log: false,
    },
];

const RUN_SCRIPT: &str = "#!/bin/sh\nexec sleep 3600\n";
const LOG_RUN_SCRIPT: &str = "#!/bin/sh\nexec cat > /dev/null\n";

/// Panics (never skips) unless the live tests can run here: they need root
/// and the real s6 binaries.
pub fn require_root_and_s6() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the live s6 tests must run as root (CI does): run them through `.ci/run` or as root"
    );
    for tool in [
        "s6-svscan",
        "s6-supervise",
        "s6-svscanctl",
        "s6-svok",
        "s6-svc",
        "s6-svstat",
        "s6-svwait",
    ] {
        let path = Path::new(S6_BIN).join(tool);
        assert!(
            path.exists(),
            "{} is missing: install the `s6` package (apt-get install s6) or run `.ci/run`",
            path.display()
        );
    }
    assert!(
        Path::new(S6_APPLYUIDGID).exists(),
        "{S6_APPLYUIDGID} is missing: install the `s6` package (apt-get install s6) or run `.ci/run`"
    );
}

/// Absolute path of an s6 tool.
pub fn s6_tool(name: &str) -> PathBuf {
    Path::new(S6_BIN).join(name)
}

/// A temp container root with a live supervision tree on it.
pub struct LiveS6 {
    root: PathBuf,
    services: Vec<StaticService>,
    scanner: Option<Child>,
    scanner_log: PathBuf,
    shutdown_grace: Duration,
    // Declared last: dropped after `Drop::drop` has stopped every process.
    tmp: TempDir,
}

impl LiveS6 {
    /// Builds a root with [`SERVICES`] and starts a scanner on it.
    pub fn start() -> LiveS6 {
        LiveS6::start_with(SERVICES)
    }

    pub fn start_with(services: &[StaticService]) -> LiveS6 {
        require_root_and_s6();
        // Orphans of a killed supervisor must be reaped by us: PID 1 in a
        // container or VM does not always reap.
        let _ = nix::sys::prctl::set_child_subreaper(true);

        let tmp = tempfile::Builder::new()
            .prefix("s6-reconcile-live.")
            .tempdir()
            .expect("create temp dir");
        // mkdtemp makes it 0700: uid 10000 must be able to search it.
        set_mode(tmp.path(), 0o755);
        let root = tmp.path().join("root");
        build_root(&root, services);

        let scanner_log = tmp.path().join("s6-svscan.log");
        let mut live = LiveS6 {
            root,
            services: services.to_vec(),
            scanner: None,
            scanner_log,
            shutdown_grace: WAIT,
            tmp,
        };
        live.start_scanner();
        live
    }

    fn start_scanner(&mut self) {
        let log = fs::File::create(&self.scanner_log).expect("create scanner log");
        let mut cmd = Command::new(s6_tool("s6-svscan"));
        cmd.arg(self.scandir())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup scanner log"))
            .stderr(log);
        // Its own session (so its own process group): the tree can be killed
        // as a group without touching the test runner, and no terminal signal
        // aimed at the runner reaches it.
        // SAFETY: setsid(2) is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().expect("spawn s6-svscan");
        self.scanner = Some(child);

        let control = self.scandir().join(".s6-svscan/control");
        self.wait_until("s6-svscan to create .s6-svscan/control", || {
            is_fifo(&control)
        });
        for dir in self.all_servicedirs() {
            // s6-svok answers once the supervisor holds its lock, slightly
            // before it has written `status` and started `run`.
            self.wait_until(&format!("{} supervised and up", dir.display()), || {
                is_supervised(&dir) && is_up(&dir)
            });
        }
    }

    /// Adds a static service to the servicedirs and links it into the
    /// scandir, as a rescan would find it; does not wait for supervision.
    pub fn add_service(&mut self, svc: StaticService) {
        add_servicedir(&self.root, svc);
        self.services.push(svc);
    }

    /// Polls `ready` until it holds, panicking after [`WAIT`] with the
    /// scanner's log; also panics if the scanner died.
    pub fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if ready() {
                return;
            }
            if let Some(child) = self.scanner.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "s6-svscan exited ({status}) while waiting for {what}; its log:\n{}",
                    fs::read_to_string(&self.scanner_log).unwrap_or_default()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {WAIT:?} waiting for {what}; s6-svscan log:\n{}",
                    fs::read_to_string(&self.scanner_log).unwrap_or_default()
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the scanner has acted on every command written to its
    /// control FIFO so far (a rescan reconcile requested, say): a positive
    /// signal to wait for before checking that nothing changed. A new
    /// sentinel service, linked into the scandir (a symlink, as static
    /// services are, so reconcile leaves it alone), is announced with
    /// `s6-svscanctl -a`; the scanner reads its commands in order, so once
    /// the sentinel is supervised every earlier command was carried out.
    pub fn settle(&mut self) {
        let n = fs::read_dir(self.tmp.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let dir = self.tmp.path().join(format!("settle-{n}"));
        fs::create_dir(&dir).expect("sentinel dir");
        fs::write(dir.join("run"), RUN_SCRIPT).expect("sentinel run");
        fs::set_permissions(dir.join("run"), fs::Permissions::from_mode(0o755))
            .expect("chmod sentinel run");
        let link = self.scandir().join(format!("zz-settle-{n}"));
        symlink(&dir, &link).expect("link the sentinel");
        let r = s6_as_root("s6-svscanctl", &[&"-a", &self.scandir()]);
        assert!(r.success(), "{r}");
        self.wait_until("the scanner to reach the sentinel", || is_supervised(&dir));
    }

    /// The temp dir holding the root (and the scanner's log).
    /// What s6-svscan and the supervisors it started wrote so far (their
    /// stdout and stderr).
    pub fn scanner_output(&self) -> String {
        fs::read_to_string(&self.scanner_log).unwrap_or_default()
    }

    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// The container root (`--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn scandir(&self) -> PathBuf {
        self.root.join(SCANDIR)
    }

    pub fn servicedirs(&self) -> PathBuf {
        self.root.join(SERVICEDIRS)
    }

    /// The real servicedir of a static service.
    pub fn servicedir(&self, name: &str) -> PathBuf {
        self.servicedirs().join(name)
    }

    /// The service as clients name it: through the scandir symlink.
    pub fn slot(&self, name: &str) -> PathBuf {
        self.scandir().join(name)
    }

    pub fn services(&self) -> &[StaticService] {
        &self.services
    }

    /// Every supervised servicedir: each service and each `log/`.
    pub fn all_servicedirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for svc in &self.services {
            let dir = self.servicedir(svc.name);
            if svc.has_log {
                dirs.push(dir.join("log"));
            }
            dirs.push(dir);
        }
        dirs
    }

    pub fn scanner_pid(&self) -> Option<u32> {
        self.scanner.as_ref().map(Child::id)
    }

    /// How long [`LiveS6::shutdown`] waits for `s6-svscanctl -t` to work
    /// before killing the tree.
    pub fn set_shutdown_grace(&mut self, grace: Duration) {
        self.shutdown_grace = grace;
    }

    /// Stops the scanner and everything it spawned (what `Drop` does) and
    /// says how it went.
    pub fn shutdown(mut self) -> Shutdown {
        self.stop()
    }

    fn stop(&mut self) -> Shutdown {
        let Some(mut child) = self.scanner.take() else {
            return Shutdown {
                clean: true,
                killed: 0,
            };
        };
        // Clean shutdown first: services brought down, supervisors exit,
        // the scanner waits for them and exits.
        let _ = Command::new(s6_tool("s6-svscanctl"))
            .arg("-t")
            .arg(self.scandir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + self.shutdown_grace;
        let mut clean = false;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                clean = true;
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            sleep(Duration::from_millis(20));
        }
        let mut group = Vec::new();
        if !clean {
            eprintln!("s6-svscan did not exit after s6-svscanctl -t: killing its process group");
            // Remember the supervisors: once killed they are zombies, which
            // the /proc sweep below cannot recognise, but we must reap them.
            group = processes_under(self.tmp.path());
            // Its session leader's pid is its process group id.
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
        let killed = kill_leftovers(self.tmp.path(), &group);
        if killed > 0 {
            eprintln!(
                "killed {killed} leftover process(es) under {}",
                self.tmp.path().display()
            );
        }
        Shutdown {
            clean: clean && killed == 0,
            killed,
        }
    }
}

/// How a [`LiveS6`] went down.
#[derive(Debug, PartialEq, Eq)]
pub struct Shutdown {
    /// The scanner exited on `s6-svscanctl -t` and took everything with it.
    pub clean: bool,
    /// Processes the harness had to SIGKILL afterwards.
    pub killed: usize,
}

impl Drop for LiveS6 {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// SIGKILLs every process whose cwd or command line is under `dir`
/// (supervisors, services and loggers that outlived the scanner) and reaps
/// those that are or become our children, along with `already_killed`.
/// Bounded. Returns how many it killed.
pub fn kill_leftovers(dir: &Path, already_killed: &[i32]) -> usize {
    let mut killed: Vec<i32> = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let pids = processes_under(dir);
        if pids.is_empty() || Instant::now() >= deadline {
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed.push(pid);
        }
        sleep(Duration::from_millis(20));
    }
    killed.sort_unstable();
    killed.dedup();
    let mut to_reap = killed.clone();
    to_reap.extend_from_slice(already_killed);
    reap(&to_reap, deadline);
    reap_orphans();
    killed.len()
}

/// Waits (bounded) until none of `pids` exists any more, reaping those that
/// are our children: orphans of a killed supervisor are reparented to us (we
/// are a child subreaper), and PID 1 does not always reap.
fn reap(pids: &[i32], deadline: Instant) {
    let mut left: Vec<i32> = pids.to_vec();
    while !left.is_empty() {
        left.retain(|&pid| {
            // ECHILD for those that are not ours (yet): keep watching them.
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
            Path::new(&format!("/proc/{pid}")).exists()
        });
        if Instant::now() >= deadline {
            break;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Reaps zombies that became ours as a child subreaper: helpers orphaned by
/// an s6 client (`s6-svwait` leaves its `s6-ftrigrd`) or by a killed
/// supervisor. Only names the tests never spawn directly, so no `Child`
/// handle of a running test loses its status.
pub fn reap_orphans() {
    const ORPHANS: [&str; 4] = ["s6-ftrigrd", "s6-supervise", "sleep", "cat"];
    let me = getpid().as_raw();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let mut rest = stat[close + 1..].split_whitespace();
        let (Some(state), Some(ppid)) = (rest.next(), rest.next()) else {
            continue;
        };
        if state == "Z" && ppid.parse() == Ok(me) && ORPHANS.contains(&comm) {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Live (non-zombie) processes whose cwd or command line lies under `dir`.
pub fn processes_under(dir: &Path) -> Vec<i32> {
    let me = getpid().as_raw();
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let proc_dir = entry.path();
        let cwd_under = fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir));
        let cmdline_under = fs::read(proc_dir.join("cmdline")).is_ok_and(|cmd| {
            cmd.split(|&b| b == 0).any(|arg| {
                arg.starts_with(needle) && matches!(arg.get(needle.len()), None | Some(b'/'))
            })
        });
        if cwd_under || cmdline_under {
            found.push(pid);
        }
    }
    found
}

/// Lays out `<root>` as s6-overlay leaves it before cont-init: passwd/group,
/// static servicedirs and the scandir of absolute symlinks to them.
pub fn build_root(root: &Path, services: &[StaticService]) {
    mkdir(root, 0o755);
    mkdir(&root.join("etc"), 0o755);
    write_file(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000:hermes:/opt/data:/bin/sh\n",
        0o644,
    );
    write_file(
        &root.join("etc/group"),
        "root:x:0:\nhermes:x:10000:\n",
        0o644,
    );

    for dir in ["run", "run/s6-rc", SERVICEDIRS, SCANDIR] {
        mkdir(&root.join(dir), 0o755);
    }
    for &svc in services {
        add_servicedir(root, svc);
    }
}

fn add_servicedir(root: &Path, svc: StaticService) {
    let dir = root.join(SERVICEDIRS).join(svc.name);
    write_servicedir(&dir, RUN_SCRIPT);
    if svc.has_log {
        write_servicedir(&dir.join("log"), LOG_RUN_SCRIPT);
    }
    // Absolute target: s6-supervise chdirs through it.
    symlink(&dir, root.join(SCANDIR).join(svc.name)).expect("symlink service into scandir");
}

fn write_servicedir(dir: &Path, run: &str) {
    mkdir(dir, 0o755);
    write_file(&dir.join("type"), "longrun\n", 0o644);
    write_file(&dir.join("run"), run, 0o755);
}

/// `mkdir` with an exact mode (whatever the umask).
pub fn mkdir(path: &Path, mode: u32) {
    fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    set_mode(path, mode);
}

/// Creates (or truncates) `path` with `content` and an exact mode.
pub fn write_file(path: &Path, content: &str, mode: u32) {
    let mut f = fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(content.as_bytes()).expect("write file");
    set_mode(path, mode);
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

/// An s6-supervise runs on `dir` and its control FIFO is in place.
pub fn is_supervised(dir: &Path) -> bool {
    is_fifo(&dir.join("supervise/control"))
        && Command::new(s6_tool("s6-svok"))
            .arg(dir)
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The service in `dir` runs, as root's `s6-svstat` sees it.
pub fn is_up(dir: &Path) -> bool {
    Command::new(s6_tool("s6-svstat"))
        .args(["-o", "up"])
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout == b"true\n")
}

pub fn is_fifo(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

// Not every test file uses all of them.
#[allow(unused_imports)]
pub use super::run::{Run, assert_owner_mode, owner_mode, reconcile};

/// Runs `cmd`, then reaps what the s6 tools left behind.
fn run(cmd: Command) -> Run {
    let r = super::run::run(cmd);
    reap_orphans();
    r
}

/// Runs `args` (program first) as uid/gid 10000 with no supplementary
/// groups inherited from root.
pub fn as_user<S: AsRef<OsStr>>(args: &[S]) -> Run {
    assert!(!args.is_empty(), "as_user needs a program");
    let mut cmd = Command::new(S6_APPLYUIDGID);
    cmd.arg("-u")
        .arg(USER_UID.to_string())
        .arg("-g")
        .arg(USER_GID.to_string())
        .arg("-G")
        .arg("")
        .args(args)
        .current_dir("/");
    run(cmd)
}

/// Runs `args` (program first) as root.
pub fn as_root<S: AsRef<OsStr>>(args: &[S]) -> Run {
    assert!(!args.is_empty(), "as_root needs a program");
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]).current_dir("/");
    run(cmd)
}

fn s6_argv(tool: &str, args: &[&dyn AsRef<OsStr>]) -> Vec<std::ffi::OsString> {
    let mut argv = vec![s6_tool(tool).into_os_string()];
    argv.extend(args.iter().map(|a| a.as_ref().to_os_string()));
    argv
}

/// Runs the s6 client `tool` as uid/gid 10000: `s6_as_user("s6-svc", &[&"-d", &dir])`.
pub fn s6_as_user(tool: &str, args: &[&dyn AsRef<OsStr>]) -> Run {
    as_user(&s6_argv(tool, args))
}

/// Runs the s6 client `tool` as root.
pub fn s6_as_root(tool: &str, args: &[&dyn AsRef<OsStr>]) -> Run {
    as_root(&s6_argv(tool, args))
}

/// One field of root's `s6-svstat -o <field>` on `dir` (`up`, `pid`,
/// `wantedup`...), or `None` while the supervisor has not written its status.
pub fn svstat(dir: &Path, field: &str) -> Option<String> {
    Command::new(s6_tool("s6-svstat"))
        .args(["-o", field])
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// The pids of the `s6-supervise` processes running in `dir` (their cwd):
/// one when the service is supervised once, as it should be.
pub fn supervisor_pids(dir: &Path) -> Vec<i32> {
    let Ok(dir) = fs::canonicalize(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == "s6-supervise"
            && fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd == dir)
        {
            found.push(pid);
        }
    }
    found.sort_unstable();
    found
}
