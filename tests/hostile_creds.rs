//! Who acts (docs/security.md, "Mistakes and hostile input"): the profiles phase acts
//! with the user's effective ids only, so that user can neither stop nor
//! trace the oneshot; the volume is read with the user's ids and a
//! hard-linked state file is never read; an error met while acting for the
//! user says so, and the plan warns about a volume the user cannot write.
//! Every run is under a deadline; these tests need root.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use common::roots::{config, root_with};
use common::timed::{self, Out};

fn run(root: &Path, args: &[&str]) -> Out {
    timed::run(common::run::reconcile_cmd(root, args, &[]), None)
}

// ---------------------------------------------------------------------------
// 7. A hard-linked state file is not read, in either policy

#[test]
fn a_hard_linked_state_file_is_never_read_in_strict_or_compat() {
    for policy in ["strict", "compat"] {
        // A root-only secret and a root-owned, world-readable file that
        // would start the gateway, each linked into the volume.
        let dir = root_with(&format!(
            "- {{path: etc/app-state.json, type: file, mode: \"0644\", content: \"{{\\\"desired_state\\\": \\\"running\\\"}}\\n\"}}\n\
             - {{path: opt/data/profiles/secret, type: dir, uid: 10000, gid: 10000}}\n\
             - {{path: opt/data/profiles/secret/SOUL.md, type: file, uid: 10000, gid: 10000}}\n\
             - {{path: opt/data/profiles/linked, type: dir, uid: 10000, gid: 10000}}\n\
             - {{path: opt/data/profiles/linked/SOUL.md, type: file, uid: 10000, gid: 10000}}\n\
             {}",
            config(&format!("policy: {policy}\n"))
        ));
        let root = dir.path();
        for (target, name) in [("etc/shadow", "secret"), ("etc/app-state.json", "linked")] {
            let state = root.join(format!("opt/data/profiles/{name}/gateway_state.json"));
            std::fs::hard_link(root.join(target), state).unwrap();
        }
        let out = run(root, &[]);
        out.assert_exit(0);
        // The secret is read with the user's ids (who may not read it); the
        // readable one is refused for its links.
        for (name, why) in [
            ("secret", "Permission denied"),
            (
                "linked",
                "has 2 links (a hard link to another file); not read",
            ),
        ] {
            let line = format!("reconcile: profile={name} prior_state=None action=registered");
            assert!(
                out.stdout.lines().any(|l| l == line),
                "{policy}: no {line:?}\n{}",
                out.show()
            );
            let warning = format!(
                "reconcile: warning: /opt/data/profiles/{name}/gateway_state.json: {why}; treating the \
                 profile as having no state"
            );
            assert!(
                out.stdout.lines().any(|l| l == warning),
                "{policy}: no {warning:?}\n{}",
                out.show()
            );
        }
        let log = std::fs::read_to_string(root.join("opt/data/logs/container-boot.log")).unwrap();
        for text in [&out.stdout, &out.stderr, &log] {
            assert!(
                !text.contains("19000"),
                "{policy}: the secret leaked:\n{text}"
            );
        }
        assert!(
            root.join("run/service/gateway-linked/down").exists(),
            "{policy}: started"
        );
    }
}

/// The lifecycle file too: a hard link (here to a root-owned, world-readable
/// file saying the gateway was running) is not read, the prior exit is
/// `unknown`, and the plan says why in its warnings (text and JSON).
#[test]
fn a_hard_linked_lifecycle_file_is_not_read_and_the_plan_warns() {
    let mut entries = String::from(
        "- {path: etc/lifecycle.json, type: file, mode: \"0644\", content: \"{\\\"phase\\\": \\\"running\\\"}\"}\n",
    );
    for name in ["linked", "own"] {
        entries.push_str(&format!(
            "- {{path: opt/data/profiles/{name}, type: dir, uid: 10000, gid: 10000}}\n\
             - {{path: opt/data/profiles/{name}/SOUL.md, type: file, uid: 10000, gid: 10000}}\n\
             - {{path: opt/data/profiles/{name}/state, type: dir, uid: 10000, gid: 10000}}\n"
        ));
    }
    let dir = root_with(&format!("{entries}{}", config("")));
    let root = dir.path();
    let lifecycle = |name: &str| {
        root.join(format!(
            "opt/data/profiles/{name}/state/gateway.lifecycle.json"
        ))
    };
    std::fs::hard_link(root.join("etc/lifecycle.json"), lifecycle("linked")).unwrap();
    std::fs::write(lifecycle("own"), br#"{"phase": "running"}"#).unwrap();
    std::os::unix::fs::lchown(lifecycle("own"), Some(10000), Some(10000)).unwrap();
    let warning = "/opt/data/profiles/linked/state/gateway.lifecycle.json: has 2 links (a hard \
                   link to another file); not read; its prior exit is unknown";

    let plan = run(root, &["--plan"]);
    plan.assert_exit(0);
    assert!(
        plan.stdout
            .lines()
            .any(|l| l == format!("warning: {warning}")),
        "{}",
        plan.show()
    );
    let json = run(root, &["--plan", "--format", "json"]);
    json.assert_exit(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let warnings = v["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w == warning), "{}", json.show());
    assert!(
        !warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("/own/"))
    );

    run(root, &[]).assert_exit(0);
    let log = std::fs::read_to_string(root.join("opt/data/logs/container-boot.log")).unwrap();
    for (name, exit) in [("linked", "unknown"), ("own", "unclean")] {
        assert!(
            log.lines().any(|l| l.contains(&format!("profile={name} "))
                && l.ends_with(&format!("prior_exit={exit}"))),
            "{name}: no prior_exit={exit}\n{log}"
        );
    }
}

// ---------------------------------------------------------------------------
// 9. Errors say who acted; the plan warns about a volume the user cannot write

#[test]
fn a_root_owned_volume_is_warned_about_in_the_plan_and_the_error_says_who_acted() {
    let dir = root_with("");
    let root = dir.path();
    // A copy made as root: the volume and everything in it root's.
    for entry in walk(&root.join("opt/data")) {
        std::os::unix::fs::lchown(&entry, Some(0), Some(0)).unwrap();
    }
    let warning = "warning: /opt/data (profiles.home, owner 0:0, mode 0755) is not writable by \
                   uid 10000 gid 10000, who writes the boot log there: the apply will fail to \
                   append it";
    let plan = run(root, &["--plan"]);
    plan.assert_exit(0);
    assert!(plan.stdout.lines().any(|l| l == warning), "{}", plan.show());

    let apply = run(root, &[]);
    apply.assert_exit(1);
    assert!(
        apply.stdout.lines().any(|l| l
            == "reconcile: error: unable to append to /opt/data/logs/container-boot.log: Permission \
                denied (as uid 10000)"),
        "{}",
        apply.show()
    );
    assert!(!root.join("opt/data/logs").exists());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                v.extend(walk(&e.path()));
            } else {
                v.push(e.path());
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------
// 6. The user cannot stop the oneshot (live)

/// `Uid:` of /proc/<pid>/status: real, effective, saved, filesystem.
fn uids(pid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    Some(
        line.split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect(),
    )
}

#[test]
fn the_user_cannot_stop_a_running_apply() {
    const PROFILES: usize = 2000;
    let dir = root_with("");
    let root = dir.path();
    let profiles = root.join("opt/data/profiles");
    for i in 0..PROFILES {
        let p = profiles.join(format!("p{i:04}"));
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("SOUL.md"), "").unwrap();
        std::os::unix::fs::chown(&p, Some(10000), Some(10000)).unwrap();
        std::os::unix::fs::chown(p.join("SOUL.md"), Some(10000), Some(10000)).unwrap();
    }
    let mut child = common::run::reconcile_cmd(root, &["-q"], &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn reconcile");
    let pid = child.id();
    // Positive signal: the profiles phase is publishing slots (the volume
    // is observed earlier, also with the user's effective ids).
    let first = root.join("run/service/gateway-p0000");
    let deadline = Instant::now() + timed::DEADLINE;
    while !first.exists() {
        assert!(Instant::now() < deadline, "no slot published in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "reconcile ended before its profiles phase was seen"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let ids = uids(pid).expect("reconcile still running");
    let stop = common::s6::as_user(&["kill", "-STOP", &pid.to_string()]);
    let owner = std::fs::metadata(format!("/proc/{pid}/status")).map(|m| m.uid());
    if stop.success() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the user stopped the oneshot:\n{stop}");
    }
    assert!(
        stop.stderr.contains("Operation not permitted"),
        "expected EPERM:\n{stop}"
    );
    assert_eq!(
        ids,
        vec![0, 10000, 0, 10000],
        "real and saved uid stay root"
    );
    // Not dumpable: /proc/<pid> stays root's while the user acts.
    if let Ok(owner) = owner {
        assert_eq!(owner, 0, "/proc/{pid} belongs to the user: dumpable");
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        // Thousands of slots in a debug build on a busy machine: a longer
        // hang detector than a single small run's.
        if start.elapsed() > 3 * timed::DEADLINE {
            let _ = child.kill();
            panic!("reconcile did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let slot = root.join(format!("run/service/gateway-p{:04}", PROFILES - 1));
    assert_eq!(
        std::fs::metadata(&slot).unwrap().permissions().mode() & 0o7777,
        0o755
    );
}

// ---------------------------------------------------------------------------
// A process of the user's never poses as the container's command

/// Kills the impostor's process group (bash and its sleep) and reaps it
/// when the test ends, whatever happens.
struct Impostor(std::process::Child);

impl Drop for Impostor {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Unmounts the root's procfs when the test ends.
struct ProcMount(std::path::PathBuf);

impl Drop for ProcMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_uid_10000_process_naming_the_wrapper_is_not_the_container_command() {
    use std::os::unix::process::CommandExt;
    let dir = root_with(
        "- {path: opt/data/profiles/alice, type: dir, uid: 10000, gid: 10000}\n\
         - {path: opt/data/profiles/alice/SOUL.md, type: file, uid: 10000, gid: 10000}\n",
    );
    let root = dir.path();
    let proc_dir = root.join("proc");
    std::fs::create_dir(&proc_dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&proc_dir)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount -t proc");
    let _mount = ProcMount(proc_dir.clone());
    // The exact name as an argument, and the name inside one argument:
    // `; :` keeps bash from exec'ing sleep, so its argv stays.
    let mut impostors = Vec::new();
    for args in [
        &["-c", "sleep 600; :", "/x/main-wrapper.sh", "dashboard"][..],
        &["-c", "sleep 600; :", "main-wrapper.sh dashboard"],
    ] {
        let child = std::process::Command::new("bash")
            .args(args)
            .uid(10000)
            .gid(10000)
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let cmdline = proc_dir.join(child.id().to_string()).join("cmdline");
        impostors.push(Impostor(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read(&cmdline).is_ok_and(|c| c.ends_with(b"dashboard\0")) {
            assert!(Instant::now() < deadline, "the impostor never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let out = run(root, &["--plan"]);
    assert_eq!(out.code, 0, "{}", out.show());
    assert!(
        !out.stdout.contains("dashboard"),
        "an impostor made this a dashboard container:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("gateway-alice"), "{}", out.stdout);
}
