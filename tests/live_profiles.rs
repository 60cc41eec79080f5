//! Live s6 end-to-end of the profiles phase (docs/phases.md): a temp
//! root with a persistent volume at `/opt/data` (the default profile and
//! named profiles in different states) next to the static services, a real
//! `s6-svscan` on its scandir, `reconcile` run as root with all phases, then
//! uid 10000 drives the published slots with the real s6 clients.
//!
//! The default slot scripts exec `hermes` under `/command/with-contenv`,
//! which do not exist here, so `profiles.templates` gives every slot a real
//! long-running `run` (it prints one line, then sleeps) and a real `s6-log`
//! logger writing into a host directory of the test. s6-supervise runs them
//! as root with the real paths: nothing in them names a container path.
//! Needs root and the `s6` package: these tests fail, never skip, without them.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, chown, lchown, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::s6::*;

const SLOT_PREFIX: &str = "gateway-";
/// `profiles.home`, relative to the root.
const HOME: &str = "opt/data";
const BOOT_LOG: &str = "opt/data/logs/container-boot.log";

/// One profile of the volume and what reconcile must make of it.
struct Profile {
    name: &'static str,
    /// `gateway_state.json`, if any.
    state: Option<&'static str>,
    /// `state/gateway.lifecycle.json`, if any.
    lifecycle: Option<&'static str>,
    /// What the state file says (`None`: no state).
    prior_state: Option<&'static str>,
    /// Published without `down`.
    started: bool,
    /// From the lifecycle file.
    prior_exit: &'static str,
}

impl Profile {
    fn action(&self) -> &'static str {
        if self.started {
            "started"
        } else {
            "registered"
        }
    }
}

/// The default profile first (it is listed first), then the named ones in
/// sorted order.
const PROFILES: &[Profile] = &[
    Profile {
        name: "default",
        state: Some(r#"{"desired_state":"running"}"#),
        lifecycle: None,
        prior_state: Some("running"),
        started: true,
        prior_exit: "unknown",
    },
    Profile {
        name: "alpha",
        state: Some(r#"{"desired_state":"running","gateway_state":"stopped"}"#),
        lifecycle: Some(r#"{"phase":"running","pid":4242}"#),
        prior_state: Some("running"),
        started: true,
        prior_exit: "unclean",
    },
    Profile {
        name: "bravo",
        state: Some(r#"{"desired_state":"stopped"}"#),
        lifecycle: Some(r#"{"phase":"exited"}"#),
        prior_state: Some("stopped"),
        started: false,
        prior_exit: "clean",
    },
    Profile {
        name: "charlie",
        state: None,
        lifecycle: None,
        prior_state: None,
        started: false,
        prior_exit: "unknown",
    },
    Profile {
        // A transient state counts as running.
        name: "delta",
        state: Some(r#"{"gateway_state":"draining"}"#),
        lifecycle: Some(r#"{"phase":"starting"}"#),
        prior_state: Some("running"),
        started: true,
        prior_exit: "unknown",
    },
];

/// A live tree with the volume and the configuration in place.
struct Setup {
    live: LiveS6,
    /// Host directory the slots' loggers write into (`<logs>/<profile>/current`).
    logs: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let live = LiveS6::start();
        let logs = live.tmp().join("gateway-logs");
        mkdir(&logs, 0o755);
        build_volume(live.root());
        let setup = Setup { live, logs };
        setup.write_config("v1", false);
        setup
    }

    fn root(&self) -> &Path {
        self.live.root()
    }

    fn home(&self) -> PathBuf {
        self.root().join(HOME)
    }

    fn profile_dir(&self, name: &str) -> PathBuf {
        if name == "default" {
            self.home()
        } else {
            self.home().join("profiles").join(name)
        }
    }

    fn slot(&self, name: &str) -> PathBuf {
        self.live.slot(&format!("{SLOT_PREFIX}{name}"))
    }

    /// Every slot and its logger: the servicedirs s6-svscan supervises.
    fn slot_servicedirs(&self) -> Vec<PathBuf> {
        PROFILES
            .iter()
            .flat_map(|p| [self.slot(p.name), self.slot(p.name).join("log")])
            .collect()
    }

    /// `<root>/etc/s6-reconcile/config.yaml` with the test's templates (the
    /// `run` script prints `gateway <profile> <version> user=... home=...`)
    /// and `profiles.prune`.
    fn write_config(&self, version: &str, prune: bool) {
        self.write_config_with("", version, prune);
    }

    /// [`Self::write_config`] with `head` (top-level keys) first.
    fn write_config_with(&self, head: &str, version: &str, prune: bool) {
        self.write_config_full(head, version, prune, "");
    }

    /// [`Self::write_config_with`] and a `finish` template that appends
    /// `<version>` to `<logs>/<profile>.finished` (see [`Self::finished`]).
    fn write_config_finishing(&self, version: &str, prune: bool) {
        let finish = format!(
            "    finish: |\n      #!/bin/sh\n      echo {version} >> {logs}/{{profile}}.finished\n",
            logs = self.logs.display(),
        );
        self.write_config_full("", version, prune, &finish);
    }

    /// What the `finish` of [`Self::write_config_finishing`] wrote for `name`.
    fn finished(&self, name: &str) -> String {
        fs::read_to_string(self.logs.join(format!("{name}.finished"))).unwrap_or_default()
    }

    fn write_config_full(&self, head: &str, version: &str, prune: bool, more: &str) {
        let dir = self.root().join("etc/s6-reconcile");
        if !dir.exists() {
            mkdir(&dir, 0o755);
        }
        let config = format!(
            "{head}profiles:\n  prune: {prune}\n  templates:\n    run: |\n      #!/bin/sh\n      \
             echo \"gateway {{profile}} {version} user={{user}} home={{home}}\"\n      \
             exec sleep 3600\n    log_run: |\n      #!/bin/sh\n      \
             exec {s6_log} T {logs}/{{profile}}\n{more}",
            s6_log = s6_tool("s6-log").display(),
            logs = self.logs.display(),
        );
        write_file(&dir.join("config.yaml"), &config, 0o644);
    }

    /// What the logger of `name` has written so far.
    fn logged(&self, name: &str) -> String {
        fs::read_to_string(self.logs.join(name).join("current")).unwrap_or_default()
    }

    /// `reconcile` with all phases (the default), apply; must exit 0.
    fn apply(&self, extra: &[&str]) -> Run {
        let run = reconcile(self.root(), extra);
        run.assert_ok();
        run
    }

    /// Waits until every slot and every logger is supervised, the loggers
    /// and started slots up, the registered slots down.
    fn wait_settled(&mut self) {
        for p in PROFILES {
            let slot = self.slot(p.name);
            let log = slot.join("log");
            let want_up = if p.started { "true" } else { "false" };
            self.live.wait_until(
                &format!("{} supervised with up={want_up}", slot.display()),
                || is_supervised(&slot) && svstat(&slot, "up").as_deref() == Some(want_up),
            );
            self.live
                .wait_until(&format!("{} supervised and up", log.display()), || {
                    is_supervised(&log) && is_up(&log)
                });
        }
    }

    /// Stops the tree and checks that the guard left nothing running.
    fn shutdown_cleanly(self) {
        let tmp = self.live.tmp().to_path_buf();
        let how = self.live.shutdown();
        assert_eq!(
            processes_under(&tmp),
            Vec::<i32>::new(),
            "processes left under {} after shutdown",
            tmp.display()
        );
        assert_eq!(
            how,
            Shutdown {
                clean: true,
                killed: 0
            },
            "s6-svscanctl -t did not take the whole tree down"
        );
    }
}

/// The volume, owned by the user as in a real container: the default
/// profile in `/opt/data` itself (no `SOUL.md`: optional for it), named
/// profiles under `profiles/`, and a directory without the marker.
fn build_volume(root: &Path) {
    let opt = root.join("opt");
    mkdir(&opt, 0o755);
    let home = root.join(HOME);
    mkdir(&home, 0o755);
    mkdir(&home.join("profiles"), 0o755);
    for p in PROFILES {
        let dir = if p.name == "default" {
            home.clone()
        } else {
            let dir = home.join("profiles").join(p.name);
            mkdir(&dir, 0o755);
            write_file(&dir.join("SOUL.md"), &format!("# {}\n", p.name), 0o644);
            dir
        };
        if let Some(state) = p.state {
            write_file(&dir.join("gateway_state.json"), state, 0o644);
        }
        if let Some(lifecycle) = p.lifecycle {
            mkdir(&dir.join("state"), 0o755);
            write_file(&dir.join("state/gateway.lifecycle.json"), lifecycle, 0o644);
        }
        // Left by the previous container: meaningless now.
        write_file(&dir.join("gateway.pid"), "4242\n", 0o644);
    }
    // Not a profile: no marker file.
    mkdir(&home.join("profiles/notes"), 0o755);
    write_file(
        &home.join("profiles/notes/gateway_state.json"),
        r#"{"desired_state":"running"}"#,
        0o644,
    );
    chown_tree(&home, USER_UID, USER_GID);
}

/// `chown -hR` of a tree the test built itself.
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    lchown(path, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("lchown {}: {e}", path.display()));
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

fn inode(path: &Path) -> u64 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
        .ino()
}

/// The `reconcile: profile=...` lines of a run's stdout, keyed by profile.
fn stdout_lines(run: &Run) -> BTreeMap<String, Vec<String>> {
    let mut lines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in run.stdout.lines() {
        if let Some(rest) = line.strip_prefix("reconcile: profile=") {
            let name = rest.split(' ').next().unwrap_or_default().to_owned();
            lines.entry(name).or_default().push(line.to_owned());
        }
    }
    lines
}

fn expected_stdout_line(p: &Profile) -> String {
    format!(
        "reconcile: profile={} prior_state={} action={}",
        p.name,
        p.prior_state.unwrap_or("None"),
        p.action()
    )
}

/// The boot log's lines, each split into its timestamp and the rest.
fn boot_log(root: &Path) -> Vec<(String, String)> {
    let text =
        fs::read_to_string(root.join(BOOT_LOG)).unwrap_or_else(|e| panic!("read {BOOT_LOG}: {e}"));
    text.lines()
        .map(|l| {
            let (ts, rest) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("boot log line without fields: {l:?}"));
            (ts.to_owned(), rest.to_owned())
        })
        .collect()
}

/// `%Y-%m-%dT%H:%M:%S%z`, e.g. `2026-11-26T04:06:17+0000`.
fn is_timestamp(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (b[19] == b'+' || b[19] == b'-')
        && digits(20..24)
}

fn plan_json(root: &Path) -> serde_json::Value {
    let plan = reconcile(root, &["--plan", "--format", "json"]);
    plan.assert_ok();
    serde_json::from_str(&plan.stdout)
        .unwrap_or_else(|e| panic!("--plan --format json is not JSON ({e}):\n{plan}"))
}

#[test]
fn apply_publishes_every_profile_supervised_and_the_user_controls_them() {
    let mut s = Setup::new();
    s.apply(&[]);

    // The published slots, as docs/phases.md lists them; nothing for a directory
    // without the marker.
    assert!(
        !s.slot("notes").exists(),
        "a directory without SOUL.md got a slot"
    );
    for p in PROFILES {
        let slot = s.slot(p.name);
        assert!(
            fs::symlink_metadata(&slot).is_ok_and(|m| m.is_dir()),
            "{} is not a directory",
            slot.display()
        );
        assert_eq!(
            fs::read_to_string(slot.join("type")).unwrap(),
            "longrun\n",
            "{}/type",
            slot.display()
        );
        for script in ["run", "finish", "log/run"] {
            assert_owner_mode(&slot.join(script), USER_UID, USER_GID, 0o755);
        }
        let run = fs::read_to_string(slot.join("run")).unwrap();
        assert!(
            run.contains(&format!("echo \"gateway {} v1 user=", p.name)),
            "{}/run is not the configured template with {{profile}} filled in:\n{run}",
            slot.display()
        );
        assert_eq!(
            slot.join("down").exists(),
            !p.started,
            "{}/down must exist exactly when the profile is not started",
            slot.display()
        );
        // The stale pid of the previous container is gone.
        let pid = s.profile_dir(p.name).join("gateway.pid");
        assert!(!pid.exists(), "{} was not removed", pid.display());
    }

    s.wait_settled();

    // s6-supervise (root) kept the skeleton reconcile seeded: the user
    // still owns `supervise/`, its control FIFO and the event dirs, and the
    // root-owned lock proves a supervisor runs in that very `supervise/`.
    for dir in s.slot_servicedirs() {
        assert_owner_mode(&dir.join("supervise"), USER_UID, USER_GID, 0o755);
        assert!(is_fifo(&dir.join("supervise/control")), "{}", dir.display());
        assert_owner_mode(&dir.join("supervise/control"), USER_UID, USER_GID, 0o660);
        assert_owner_mode(&dir.join("supervise/event"), USER_UID, USER_GID, 0o3730);
        assert_owner_mode(&dir.join("event"), USER_UID, USER_GID, 0o3730);
        let (lock_uid, _, _) = owner_mode(&dir.join("supervise/lock"));
        assert_eq!(
            lock_uid,
            0,
            "{}/supervise/lock not s6-supervise's",
            dir.display()
        );
        assert_eq!(
            supervisor_pids(&dir).len(),
            1,
            "{} must have exactly one s6-supervise",
            dir.display()
        );
        let stat = s6_as_user("s6-svstat", &[&dir]);
        stat.assert_ok();
    }

    // The started slots' output reaches their loggers: the whole pipeline
    // s6-svscan set up for the published slot runs, with the placeholders
    // filled in.
    for p in PROFILES.iter().filter(|p| p.started) {
        let want = format!("gateway {} v1 user=hermes home=/opt/data", p.name);
        let logs = s.logs.clone();
        s.live
            .wait_until(&format!("{want:?} in the logger of {}", p.name), || {
                fs::read_to_string(logs.join(p.name).join("current"))
                    .is_ok_and(|t| t.contains(&want))
            });
    }
    for p in PROFILES.iter().filter(|p| !p.started) {
        assert_eq!(
            s.logged(p.name),
            "",
            "registered {} must not have run",
            p.name
        );
    }

    // As uid 10000: start a registered slot, stop a started one.
    let bravo = s.slot("bravo");
    s6_as_user("s6-svc", &[&"-u", &bravo]).assert_ok();
    s6_as_user("s6-svwait", &[&"-u", &"-t", &"5000", &bravo]).assert_ok();
    let stat = s6_as_user("s6-svstat", &[&bravo]);
    stat.assert_ok();
    assert!(stat.stdout.starts_with("up "), "expected up:\n{stat}");

    let alpha = s.slot("alpha");
    s6_as_user("s6-svc", &[&"-d", &alpha]).assert_ok();
    s6_as_user("s6-svwait", &[&"-D", &"-t", &"5000", &alpha]).assert_ok();
    let stat = s6_as_user("s6-svstat", &[&alpha]);
    stat.assert_ok();
    assert!(stat.stdout.starts_with("down "), "expected down:\n{stat}");

    // And back, through the same clients.
    s6_as_user("s6-svc", &[&"-u", &alpha]).assert_ok();
    s6_as_user("s6-svwait", &[&"-u", &"-t", &"5000", &alpha]).assert_ok();

    s.shutdown_cleanly();
}

#[test]
fn apply_reports_one_line_per_profile_on_stdout_and_in_the_boot_log() {
    let s = Setup::new();
    let run = s.apply(&[]);

    let lines = stdout_lines(&run);
    assert_eq!(
        lines.keys().collect::<Vec<_>>(),
        {
            let mut names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
            names.sort_unstable();
            names
        },
        "one stdout line per profile, no other:\n{run}"
    );
    for p in PROFILES {
        assert_eq!(lines[p.name], vec![expected_stdout_line(p)], "{run}");
    }
    // The default profile is reported first.
    let first = run
        .stdout
        .lines()
        .find(|l| l.starts_with("reconcile: profile="))
        .unwrap();
    assert_eq!(first, expected_stdout_line(&PROFILES[0]), "{run}");

    let log = boot_log(s.root());
    assert_eq!(log.len(), PROFILES.len(), "{log:#?}");
    let ts = &log[0].0;
    assert!(is_timestamp(ts), "boot log timestamp {ts:?}");
    for (p, (line_ts, fields)) in PROFILES.iter().zip(&log) {
        assert_eq!(line_ts, ts, "one timestamp per run");
        assert_eq!(
            fields,
            &format!(
                "profile={} prior_state={} action={} prior_exit={}",
                p.name,
                p.prior_state.unwrap_or("None"),
                p.action(),
                p.prior_exit
            )
        );
    }
    // Written as the user, in the user's volume.
    let (uid, gid, _) = owner_mode(&s.root().join(BOOT_LOG));
    assert_eq!((uid, gid), (USER_UID, USER_GID), "owner of {BOOT_LOG}");

    // The next boot appends the same lines again.
    s.apply(&[]);
    let log = boot_log(s.root());
    assert_eq!(log.len(), 2 * PROFILES.len(), "{log:#?}");

    s.shutdown_cleanly();
}

#[test]
fn a_second_apply_changes_nothing_on_the_live_tree() {
    let mut s = Setup::new();
    s.apply(&[]);
    s.wait_settled();

    let dirs = s.slot_servicedirs();
    let inodes: Vec<u64> = dirs.iter().map(|d| inode(d)).collect();
    let supervisors: Vec<Vec<i32>> = dirs.iter().map(|d| supervisor_pids(d)).collect();
    let services: Vec<Option<String>> = dirs.iter().map(|d| svstat(d, "pid")).collect();
    assert!(supervisors.iter().all(|p| p.len() == 1), "{supervisors:?}");

    let again = s.apply(&["--format", "json"]);
    let again: serde_json::Value = serde_json::from_str(&again.stdout)
        .unwrap_or_else(|e| panic!("apply --format json is not JSON ({e}):\n{again}"));
    assert_eq!(again["changes"], serde_json::json!([]), "{again:#}");
    assert_eq!(again["errors"], serde_json::json!([]), "{again:#}");
    let actions: Vec<(&str, &str)> = again["slots"]
        .as_array()
        .expect("slots array")
        .iter()
        .map(|v| {
            (
                v["profile"].as_str().unwrap(),
                v["action"].as_str().unwrap(),
            )
        })
        .collect();
    let want: Vec<(&str, &str)> = PROFILES.iter().map(|p| (p.name, p.action())).collect();
    assert_eq!(actions, want, "{again:#}");

    // Once the scanner has carried out every command so far (a rescan,
    // had one been requested), compare.
    s.live.settle();
    assert_eq!(
        dirs.iter().map(|d| inode(d)).collect::<Vec<_>>(),
        inodes,
        "slot directories were recreated"
    );
    assert_eq!(
        dirs.iter().map(|d| supervisor_pids(d)).collect::<Vec<_>>(),
        supervisors,
        "supervisors were restarted"
    );
    assert_eq!(
        dirs.iter().map(|d| svstat(d, "pid")).collect::<Vec<_>>(),
        services,
        "services were restarted"
    );

    let plan = plan_json(s.root());
    assert_eq!(plan["mode"], "plan", "{plan:#}");
    assert_eq!(plan["changes"], serde_json::json!([]), "{plan:#}");
    let check = reconcile(s.root(), &["--check"]);
    assert_eq!(check.code, Some(0), "--check must find no drift:\n{check}");

    s.shutdown_cleanly();
}

#[test]
fn a_changed_template_swaps_every_slot_atomically_and_keeps_it_supervised() {
    let mut s = Setup::new();
    s.apply(&[]);
    s.wait_settled();
    let old: Vec<(PathBuf, u64, Vec<i32>)> = s
        .slot_servicedirs()
        .into_iter()
        .map(|d| {
            let ino = inode(&d);
            let sup = supervisor_pids(&d);
            (d, ino, sup)
        })
        .collect();

    s.write_config("v2", false);
    let plan = plan_json(s.root());
    let replaced: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["op"] == "replace")
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    let want: Vec<String> = {
        let mut v: Vec<String> = PROFILES
            .iter()
            .map(|p| format!("/run/service/{SLOT_PREFIX}{}", p.name))
            .collect();
        v.sort();
        v
    };
    assert_eq!(replaced, want, "{plan:#}");

    // Watch every slot while apply swaps them: at no instant may a slot be
    // missing or incomplete under its name.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = Arc::clone(&stop);
        let slots: Vec<PathBuf> = PROFILES.iter().map(|p| s.slot(p.name)).collect();
        thread::spawn(move || {
            let mut looks = 0u64;
            let mut broken = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for slot in &slots {
                    for entry in ["type", "run", "finish", "log/run", "supervise/control"] {
                        if fs::symlink_metadata(slot.join(entry)).is_err() {
                            broken.push(slot.join(entry));
                        }
                    }
                    looks += 1;
                }
            }
            (looks, broken)
        })
    };
    let run = s.apply(&[]);
    stop.store(true, Ordering::Relaxed);
    let (looks, broken) = watcher.join().unwrap();
    assert!(looks > 0);
    assert_eq!(
        broken,
        Vec::<PathBuf>::new(),
        "slot entries missing at some instant during the swap ({looks} looks)"
    );
    for p in PROFILES {
        assert_eq!(stdout_lines(&run)[p.name], vec![expected_stdout_line(p)]);
    }
    // No staging or old tree left in the scandir.
    let leftovers: Vec<String> = fs::read_dir(s.live.scandir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".s6-svscan")
        .collect();
    assert_eq!(leftovers, Vec::<String>::new(), "leftovers in the scandir");

    for (dir, ino, _) in &old {
        assert_ne!(inode(dir), *ino, "{} was not replaced", dir.display());
    }
    for p in PROFILES {
        let run = fs::read_to_string(s.slot(p.name).join("run")).unwrap();
        assert!(run.contains(" v2 "), "{}: old run script:\n{run}", p.name);
        assert_eq!(s.slot(p.name).join("down").exists(), !p.started);
    }

    // The old supervisors go with their trees: s6-svscan must have been
    // told to drop the services that left the scandir, or the old gateways
    // would keep running on deleted directories next to the new ones.
    let old_pids: Vec<i32> = old.iter().flat_map(|(_, _, p)| p.clone()).collect();
    s.live.wait_until(
        &format!("the old supervisors {old_pids:?} (on the replaced trees) to exit"),
        || {
            old_pids
                .iter()
                .all(|pid| !Path::new(&format!("/proc/{pid}/cwd")).exists() || is_zombie(*pid))
        },
    );

    // The new trees are supervised, each by one new supervisor, with the
    // user's skeleton; the started ones run the new script.
    s.wait_settled();
    for (dir, _, old_sup) in &old {
        let sup = supervisor_pids(dir);
        assert_eq!(sup.len(), 1, "{}: supervisors {sup:?}", dir.display());
        assert_ne!(&sup, old_sup, "{} kept its old supervisor", dir.display());
        assert_owner_mode(&dir.join("supervise"), USER_UID, USER_GID, 0o755);
        assert_owner_mode(&dir.join("supervise/control"), USER_UID, USER_GID, 0o660);
        s6_as_user("s6-svstat", &[dir]).assert_ok();
    }
    for p in PROFILES.iter().filter(|p| p.started) {
        let want = format!("gateway {} v2 user=hermes home=/opt/data", p.name);
        let logs = s.logs.clone();
        s.live
            .wait_until(&format!("{want:?} in the logger of {}", p.name), || {
                fs::read_to_string(logs.join(p.name).join("current"))
                    .is_ok_and(|t| t.contains(&want))
            });
    }
    // The user still controls a replaced slot.
    let charlie = s.slot("charlie");
    s6_as_user("s6-svc", &[&"-u", &charlie]).assert_ok();
    s6_as_user("s6-svwait", &[&"-u", &"-t", &"5000", &charlie]).assert_ok();

    let plan = plan_json(s.root());
    assert_eq!(plan["changes"], serde_json::json!([]), "{plan:#}");

    s.shutdown_cleanly();
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'))
    })
}

#[test]
fn a_changed_state_toggles_down_in_place_without_disturbing_the_supervisor() {
    let mut s = Setup::new();
    s.apply(&[]);
    s.wait_settled();

    // alpha was started, bravo registered: the operator flipped both.
    let alpha = s.slot("alpha");
    let bravo = s.slot("bravo");
    let before: Vec<(u64, Vec<i32>, Option<String>)> = [&alpha, &bravo]
        .iter()
        .map(|d| (inode(d), supervisor_pids(d), svstat(d, "pid")))
        .collect();
    write_file(
        &s.profile_dir("alpha").join("gateway_state.json"),
        r#"{"desired_state":"stopped"}"#,
        0o644,
    );
    write_file(
        &s.profile_dir("bravo").join("gateway_state.json"),
        r#"{"desired_state":"running"}"#,
        0o644,
    );

    let plan = plan_json(s.root());
    let ops: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["op"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        ops.iter().all(|(op, _)| op != "replace" && op != "publish"),
        "a down-only difference must not rebuild the slot: {plan:#}"
    );
    assert!(
        ops.iter()
            .any(|(_, path)| path == "/run/service/gateway-alpha/down"),
        "{plan:#}"
    );
    assert!(
        ops.iter()
            .any(|(_, path)| path == "/run/service/gateway-bravo/down"),
        "{plan:#}"
    );

    let run = s.apply(&[]);
    let lines = stdout_lines(&run);
    assert_eq!(
        lines["alpha"],
        vec!["reconcile: profile=alpha prior_state=stopped action=registered"]
    );
    assert_eq!(
        lines["bravo"],
        vec!["reconcile: profile=bravo prior_state=running action=started"]
    );
    assert!(alpha.join("down").exists(), "alpha/down not created");
    assert_owner_mode(&alpha.join("down"), USER_UID, USER_GID, 0o644);
    assert!(!bravo.join("down").exists(), "bravo/down not removed");

    // Same directories, same supervisors, same services: `down` only says
    // what happens at the next supervisor start.
    s.live.settle();
    let after: Vec<(u64, Vec<i32>, Option<String>)> = [&alpha, &bravo]
        .iter()
        .map(|d| (inode(d), supervisor_pids(d), svstat(d, "pid")))
        .collect();
    assert_eq!(
        after, before,
        "(inode, supervisors, service pid) of alpha, bravo"
    );
    assert_eq!(svstat(&alpha, "up").as_deref(), Some("true"));
    assert_eq!(svstat(&bravo, "up").as_deref(), Some("false"));

    let plan = plan_json(s.root());
    assert_eq!(plan["changes"], serde_json::json!([]), "{plan:#}");

    s.shutdown_cleanly();
}

/// A root-owned file outside the volume, and how it looked.
struct Bait {
    path: PathBuf,
    ino: u64,
    owner_mode: (u32, u32, u32),
    content: Vec<u8>,
}

impl Bait {
    fn new(path: PathBuf, content: &str, mode: u32) -> Bait {
        write_file(&path, content, mode);
        chown(&path, Some(0), Some(0)).unwrap();
        Bait {
            ino: inode(&path),
            owner_mode: owner_mode(&path),
            content: content.as_bytes().to_vec(),
            path,
        }
    }

    fn assert_untouched(&self) {
        let what = self.path.display();
        assert!(self.path.exists(), "{what} was removed");
        assert_eq!(inode(&self.path), self.ino, "{what} was replaced");
        assert_eq!(
            owner_mode(&self.path),
            self.owner_mode,
            "{what}: owner/mode"
        );
        assert_eq!(
            fs::read(&self.path).unwrap(),
            self.content,
            "{what}: content"
        );
    }
}

#[test]
fn planted_symlinks_are_removed_and_nothing_they_reach_changes() {
    let mut s = Setup::new();
    let outside = s.live.tmp().join("outside");
    mkdir(&outside, 0o755);
    let secret = Bait::new(outside.join("secret"), "root only\n", 0o600);
    let passwd = s.root().join("etc/passwd");
    let passwd_bait = Bait {
        ino: inode(&passwd),
        owner_mode: owner_mode(&passwd),
        content: fs::read(&passwd).unwrap(),
        path: passwd.clone(),
    };
    // A profile directory that is a symlink to a root-owned one.
    let evil = outside.join("evil-profile");
    mkdir(&evil, 0o755);
    let evil_soul = Bait::new(evil.join("SOUL.md"), "# evil\n", 0o644);
    let evil_state = Bait::new(
        evil.join("gateway_state.json"),
        r#"{"desired_state":"running"}"#,
        0o644,
    );
    let evil_pid = Bait::new(evil.join("gateway.pid"), "1\n", 0o644);
    // A directory outside the tree posing as a leftover staging dir.
    let decoy = outside.join("decoy");
    mkdir(&decoy, 0o755);
    let decoy_file = Bait::new(decoy.join("run"), "#!/bin/sh\n", 0o755);

    let home = s.home();
    let links = [
        (home.join("gateway.pid"), secret.path.clone()),
        (
            s.profile_dir("alpha").join("processes.json"),
            passwd.clone(),
        ),
        (home.join("profiles/evil"), evil.clone()),
        (
            s.live.scandir().join(format!(".{SLOT_PREFIX}alpha.tmp")),
            decoy.clone(),
        ),
    ];
    fs::remove_file(home.join("gateway.pid")).unwrap();
    for (link, target) in &links {
        symlink(target, link).unwrap();
        lchown(link, Some(USER_UID), Some(USER_GID)).unwrap();
    }

    let run = s.apply(&["-v"]);
    s.wait_settled();

    for (link, _) in &links[..2] {
        assert!(
            fs::symlink_metadata(link).is_err(),
            "stale runtime file {} (a symlink) not removed:\n{run}",
            link.display()
        );
    }
    let staging = &links[3].0;
    assert!(
        fs::symlink_metadata(staging).is_err(),
        "leftover staging symlink {} not removed:\n{run}",
        staging.display()
    );
    for bait in [
        &secret,
        &passwd_bait,
        &evil_soul,
        &evil_state,
        &evil_pid,
        &decoy_file,
    ] {
        bait.assert_untouched();
    }
    let (uid, gid, mode) = owner_mode(&evil);
    assert_eq!((uid, gid, mode), (0, 0, 0o755), "{}", evil.display());
    assert_eq!(
        fs::read_dir(&decoy).unwrap().count(),
        1,
        "{} changed",
        decoy.display()
    );
    // The symlinked profile is not published, and the run says why.
    assert!(
        !s.slot("evil").exists(),
        "a symlinked profile directory got a slot:\n{run}"
    );
    assert!(
        run.stdout
            .contains("profile directory /opt/data/profiles/evil is a symlink; not followed"),
        "{run}"
    );
    if let Some(lines) = stdout_lines(&run).get("evil") {
        assert!(
            lines.iter().all(|l| l.ends_with(" action=skipped")),
            "a symlinked profile must be skipped:\n{run}"
        );
    }
    // The real profiles are all there.
    for p in PROFILES {
        assert_eq!(
            stdout_lines(&run)[p.name],
            vec![expected_stdout_line(p)],
            "{run}"
        );
    }

    s.shutdown_cleanly();
}

#[test]
fn a_boot_log_planted_as_a_symlink_is_not_followed() {
    let mut s = Setup::new();
    let outside = s.live.tmp().join("outside");
    mkdir(&outside, 0o755);
    // World-writable, so that only not following the link protects it.
    let target = Bait::new(outside.join("important.log"), "keep me\n", 0o666);
    let logs = s.home().join("logs");
    mkdir(&logs, 0o755);
    let link = s.root().join(BOOT_LOG);
    symlink(&target.path, &link).unwrap();
    chown_tree(&logs, USER_UID, USER_GID);

    let run = reconcile(s.root(), &[] as &[&str]);
    // The user's own plant in their own volume: a warning with its path
    // and why, in the words the rest of the tool uses, exit 0 (docs/security.md,
    // "What the volume's owner can break"), and every other item done.
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout.contains(
            "warning: unable to append to /opt/data/logs/container-boot.log: \
             is a symlink; not followed"
        ),
        "{run}"
    );
    target.assert_untouched();
    assert_eq!(
        fs::read_link(&link).unwrap(),
        target.path,
        "the planted link itself was changed"
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        1,
        "no rotation next to the target"
    );
    for p in PROFILES {
        assert_eq!(
            stdout_lines(&run)[p.name],
            vec![expected_stdout_line(p)],
            "{run}"
        );
    }
    s.wait_settled();
    s.shutdown_cleanly();
}

#[test]
fn prune_removes_the_slot_of_a_gone_profile_and_stops_its_supervisor() {
    let mut s = Setup::new();
    s.write_config("v1", true);
    s.apply(&[]);
    s.wait_settled();
    let alpha = s.slot("alpha");
    let supervisors: Vec<i32> = [alpha.clone(), alpha.join("log")]
        .iter()
        .flat_map(|d| supervisor_pids(d))
        .collect();
    assert_eq!(supervisors.len(), 2, "alpha and its logger supervised");
    let service = svstat(&alpha, "pid").expect("alpha runs");

    // The operator deletes the profile.
    fs::remove_dir_all(s.profile_dir("alpha")).unwrap();
    let run = s.apply(&[]);
    assert!(!stdout_lines(&run).contains_key("alpha"), "{run}");
    assert!(
        fs::symlink_metadata(&alpha).is_err(),
        "{} not pruned:\n{run}",
        alpha.display()
    );
    // Its gateway does not live on under a deleted directory.
    let gone = |pid: i32| !Path::new(&format!("/proc/{pid}/cwd")).exists() || is_zombie(pid);
    let service: i32 = service.parse().unwrap();
    s.live.wait_until(
        &format!("alpha's supervisors {supervisors:?} and service {service} to exit"),
        || supervisors.iter().all(|&p| gone(p)) && gone(service),
    );
    // The other slots are untouched and still supervised.
    for p in PROFILES.iter().filter(|p| p.name != "alpha") {
        assert!(is_supervised(&s.slot(p.name)), "{}", p.name);
        assert!(
            is_supervised(&s.slot(p.name).join("log")),
            "{} logger",
            p.name
        );
    }
    let plan = plan_json(s.root());
    assert_eq!(plan["changes"], serde_json::json!([]), "{plan:#}");

    s.shutdown_cleanly();
}

/// `reconcile` run by uid 10000 on the live root.
fn reconcile_as_user(root: &Path, args: &[&str]) -> Run {
    let mut argv = vec![
        env!("CARGO_BIN_EXE_reconcile").to_owned(),
        "--root".to_owned(),
        root.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    as_user(&argv)
}

/// A converged container, checked by the user in both policies: exit 0,
/// no change, no error, and each place the user may not read said once
/// as not observable (never as missing); s6-overlay's own services
/// (skip globs, root-only `supervise/`) are not read at all.
#[test]
fn a_converged_tree_checks_clean_as_the_user_in_both_policies() {
    for head in ["", "policy: strict\n"] {
        let mut setup = Setup::new();
        setup.write_config_with(head, "v1", false);
        setup.apply(&[]);
        setup.wait_settled();
        reconcile(setup.root(), &["--check"]).assert_exit(0);
        let internal = setup.live.servicedir("s6rc-fdholder").join("supervise");
        assert_eq!(owner_mode(&internal).0, 0, "{}", internal.display());
        assert_eq!(
            owner_mode(&internal).2 & 0o077,
            0,
            "root-only: {}",
            internal.display()
        );

        let check = reconcile_as_user(setup.root(), &["--check"]);
        check.assert_exit(0);
        assert!(!check.stdout.contains("missing"), "{head:?}\n{check}");
        assert!(!check.stderr.contains("error"), "{head:?}\n{check}");
        assert!(
            !check.stdout.contains("s6rc-fdholder/supervise"),
            "{head:?}\n{check}"
        );
        let notices: Vec<&str> = check
            .stdout
            .lines()
            .filter(|l| l.contains("not observable as uid 10000"))
            .collect();
        let mut unique = notices.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(notices.len(), unique.len(), "once per place:\n{check}");
        // compat: the user owns every slot; strict: a slot's supervise/ is
        // 0710, searchable, and looked at by name (docs/phases.md). Either
        // way nothing of a slot is hidden.
        assert!(notices.iter().all(|l| !l.contains("gateway-")), "{check}");
        if !head.is_empty() {
            // strict: the static services' supervise/ is root's 0710,
            // searchable, not listable.
            assert!(!notices.is_empty(), "{check}");
        }
        let json = reconcile_as_user(setup.root(), &["--check", "--format", "json"]);
        json.assert_exit(0);
        let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(v["changes"].as_array().map(Vec::len), Some(0), "{json}");
        let skipped = v["skipped"].to_string();
        assert_eq!(
            skipped.matches("not observable as uid 10000").count(),
            notices.len(),
            "{json}"
        );
        setup.shutdown_cleanly();
    }
}

/// A container started as the user (`--user`): an apply on a converged
/// tree does nothing and exits 0; one that has something the user may do
/// (a template changed: the user's own slots in compat) does it, and
/// exits 0.
#[test]
fn an_apply_as_the_user_does_what_the_user_may_and_exits_0() {
    let mut setup = Setup::new();
    setup.apply(&[]);
    setup.wait_settled();
    // The whole report (-v): nothing in it says missing.
    let run = reconcile_as_user(setup.root(), &["-v"]);
    run.assert_exit(0);
    assert!(!run.stdout.contains("missing"), "{run}");
    setup.write_config("v2", false);
    let run = reconcile_as_user(setup.root(), &[]);
    run.assert_exit(0);
    run.assert_line("reconcile: Applied 5 changes (profiles 5); 3 skipped.");
    setup.shutdown_cleanly();
}

/// The same in strict, where the slots are root's: what needs root is
/// said once per place, nothing is an error, the run exits 0, and a
/// second check as the user still plans (but does not fake) the replace.
#[test]
fn an_apply_as_the_user_in_strict_says_what_needs_root_and_exits_0() {
    let mut setup = Setup::new();
    setup.write_config_with("policy: strict\n", "v1", false);
    setup.apply(&[]);
    setup.wait_settled();
    reconcile_as_user(setup.root(), &[]).assert_exit(0);
    setup.write_config_with("policy: strict\n", "v2", false);
    let run = reconcile_as_user(setup.root(), &["-v"]);
    run.assert_exit(0);
    assert!(!run.stderr.contains("error"), "{run}");
    let slot = setup.slot("alpha").display().to_string();
    let container = slot
        .rsplit_once("/run/")
        .map(|(_, r)| format!("/run/{r}"))
        .unwrap();
    let said: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains(&format!("{container}: needs root")))
        .collect();
    assert_eq!(said.len(), 1, "once:\n{run}");
    setup.shutdown_cleanly();
}

/// Dot names left in the scandir (staging or retired trees).
fn dot_names(scandir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(scandir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".s6-svscan")
        .collect();
    names.sort();
    names
}

/// s6-supervise's complaints when its directory went away under it.
fn assert_no_supervisor_lost_its_directory(s: &Setup) {
    let out = s.live.scanner_output();
    for bad in [
        "unable to write status file",
        "unable to read supervise/death_tally",
    ] {
        assert!(!out.contains(bad), "s6-supervise said {bad:?}:\n{out}");
    }
}

/// A replace retires the old tree the way s6 expects: after the rescan
/// the old supervisor stops its service, runs its `finish` and lets go
/// of `supervise/lock`; only then is the old tree removed, within the
/// apply (nothing left under a dot name), and no supervisor ever writes
/// into a removed directory.
#[test]
fn a_replace_waits_for_the_old_supervisor_and_its_finish_runs() {
    let mut s = Setup::new();
    s.write_config_finishing("v1", false);
    s.apply(&[]);
    s.wait_settled();
    s.write_config_finishing("v2", false);
    let run = s.apply(&["-v"]);
    run.assert_line_with(&["replace", "gateway-alpha"]);
    // Waited for: the old supervisor ran the old finish before the apply
    // returned (a started slot's service was up, so its finish runs).
    assert_eq!(s.finished("alpha"), "v1\n", "{run}");
    assert_eq!(dot_names(&s.live.scandir()), Vec::<String>::new(), "{run}");
    s.wait_settled();
    assert_no_supervisor_lost_its_directory(&s);
    s.shutdown_cleanly();
}

/// A prune retires the slot the same way: renamed to a dot name, `an`,
/// the supervisor lets go (its `finish` runs), then removed.
#[test]
fn a_prune_waits_for_the_supervisor_and_its_finish_runs() {
    let mut s = Setup::new();
    s.write_config_finishing("v1", true);
    s.apply(&[]);
    s.wait_settled();
    fs::remove_dir_all(s.profile_dir("alpha")).unwrap();
    let run = s.apply(&["-v"]);
    run.assert_line_with(&["remove", "gateway-alpha"]);
    assert_eq!(s.finished("alpha"), "v1\n", "{run}");
    assert!(fs::symlink_metadata(s.slot("alpha")).is_err(), "{run}");
    assert_eq!(dot_names(&s.live.scandir()), Vec::<String>::new(), "{run}");
    assert_no_supervisor_lost_its_directory(&s);
    s.shutdown_cleanly();
}
