//! Reading what the application decisions need, through held directory
//! fds and bounded: the application's configuration files and a profile's
//! marker (in the user's volume: with the user's effective ids when root,
//! so a symlink there is followed only as far as the user could follow it
//! themselves), and the container's command line (`<root>/proc`, the
//! kernel's, read as is).

use std::ffi::OsStr;
use std::path::Path;

use crate::desired::application::{FILE_LIMIT, command};
use crate::fs::{self, Kind};
use crate::observe::{Source, StateObs};

/// Longest command line read; a longer one is cut (the wrapper and the
/// command come first).
pub const CMDLINE_LIMIT: u64 = 64 * 1024;
/// Most processes looked at after PID 1 (in ascending PID order).
pub const MAX_PIDS: usize = 4096;

/// What the profiles phase observed of the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppObs {
    /// `<home>/gateway.json`, as found.
    pub gateway_json: StateObs,
    /// `<home>/config.yaml`, as found.
    pub config_yaml: StateObs,
    /// The container's command line: the argv of the first process holding
    /// the wrapper (`None` when no process does, or `<root>/proc` is absent).
    pub argv: Option<Vec<String>>,
}

impl Default for AppObs {
    fn default() -> Self {
        AppObs {
            gateway_json: StateObs::Missing,
            config_yaml: StateObs::Missing,
            argv: None,
        }
    }
}

/// One of the application's files in the home, read as the user: missing,
/// its bytes, or why it cannot be used (not a regular file, too large, an
/// OS error). A symlink is followed with the user's ids.
pub fn app_file<S: Source>(src: &S, home: &S::Dir, name: &str, user: (u32, u32)) -> StateObs {
    let name = OsStr::new(name);
    let read = src
        .as_user(user, || src.read_file_following(home, name, FILE_LIMIT))
        .and_then(|r| r);
    match read {
        Ok((_, Some(b))) => StateObs::Bytes(b),
        Ok((m, None)) if m.kind == Kind::File => {
            StateObs::Unreadable(format!("larger than {FILE_LIMIT} bytes; not read"))
        }
        Ok((m, None)) => {
            StateObs::Unreadable(format!("is a {}, not a regular file", m.kind.describe()))
        }
        Err(e) if fs::Os::NotFound.is(&e) => StateObs::Missing,
        Err(e) => StateObs::Unreadable(e.to_string()),
    }
}

/// Whether a profile directory holds its marker: an entry that exists, a
/// symlink counting only when its target exists for the user (the target is
/// looked up with the user's ids, never root's). `Err`: the lookup failed
/// for another reason than a missing target.
pub fn marker_exists<S: Source>(
    src: &S,
    dir: &S::Dir,
    name: &OsStr,
    user: (u32, u32),
) -> fs::Result<bool> {
    match src.stat(dir, name) {
        Ok(m) if m.kind != Kind::Symlink => Ok(true),
        Ok(_) => match src
            .as_user(user, || src.stat_following(dir, name))
            .and_then(|r| r)
        {
            Ok(_) => Ok(true),
            Err(e)
                if [fs::Os::NotFound, fs::Os::NotADir, fs::Os::Loop]
                    .iter()
                    .any(|o| o.is(&e)) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        },
        Err(e) if fs::Os::NotFound.is(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The container's command line: the argv of PID 1 if it holds the
/// wrapper, else of the first other process (ascending PID, at most
/// [`MAX_PIDS`]) that does. `None` without `<root>/proc` or a match.
pub fn container_argv<S: Source>(src: &S, wrapper: &str) -> Option<Vec<String>> {
    container_process(src, wrapper).map(|(_, argv, _)| argv)
}

/// [`container_argv`], with the process's PID and its raw command line
/// (what a tree description of the container records).
pub fn container_process<S: Source>(src: &S, wrapper: &str) -> Option<(u32, Vec<String>, Vec<u8>)> {
    let proc_dir = match src.open_base(Path::new("/proc")) {
        Ok(b) => b.dir,
        Err(e) => {
            log::debug!("no container command: /proc: {e}");
            return None;
        }
    };
    let argv_of = |pid: u32| -> Option<(u32, Vec<String>, Vec<u8>)> {
        let (dir, meta) = src.open_dir(&proc_dir, OsStr::new(&pid.to_string())).ok()?;
        if !trusted_process(src, &dir, meta.uid) {
            return None;
        }
        // procfs says 0 bytes for every cmdline: read up to the limit.
        let (_, bytes) = src
            .read_file(&dir, OsStr::new("cmdline"), CMDLINE_LIMIT)
            .ok()?;
        let bytes = bytes?;
        let argv = command::split_cmdline(&bytes);
        command::holds_wrapper(&argv, wrapper).then_some((pid, argv, bytes))
    };
    if let Some(found) = argv_of(1) {
        return Some(found);
    }
    let mut pids: Vec<u32> = src
        .list(&proc_dir)
        .ok()?
        .into_iter()
        .filter_map(|e| e.name.to_str().and_then(|s| s.parse().ok()))
        .filter(|&p| p != 1)
        .collect();
    pids.sort_unstable();
    pids.truncate(MAX_PIDS);
    pids.into_iter().find_map(argv_of)
}

/// Whether the process whose `/proc/<pid>` is `dir` (owned by `owner`) may
/// be the container's command: it runs as root or as the uid reconcile
/// itself runs as (a container started with `--user`), never as anyone
/// else, who could pose as the command. `status`, where it can be read,
/// has the last word: a process that made itself non-dumpable has a
/// root-owned `/proc/<pid>` whatever its uid.
fn trusted_process<S: Source>(src: &S, dir: &S::Dir, owner: u32) -> bool {
    let ours = |uid: u32| uid == 0 || uid == fs::uid();
    if !ours(owner) {
        return false;
    }
    match src.read_file(dir, OsStr::new("status"), CMDLINE_LIMIT) {
        Ok((_, Some(status))) => status_uids(&status).is_some_and(|(r, e)| ours(r) && ours(e)),
        _ => true,
    }
}

/// The real and effective uids of a `/proc/<pid>/status` (its `Uid:` line).
pub fn status_uids(status: &[u8]) -> Option<(u32, u32)> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Uid:"))?;
    let text = std::str::from_utf8(line).ok()?;
    let mut ids = text.split_whitespace().map(str::parse::<u32>);
    Some((ids.next()?.ok()?, ids.next()?.ok()?))
}

/// The `Uid:` line of a `/proc/<pid>/status`, all a description keeps of it.
pub fn status_uid_line(status: &[u8]) -> Option<&[u8]> {
    status
        .split_inclusive(|&b| b == b'\n')
        .find(|l| l.starts_with(b"Uid:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Dir;
    use crate::observe::Disk;
    use std::os::unix::fs::symlink;

    fn me() -> (u32, u32) {
        (fs::euid(), fs::egid())
    }

    #[test]
    fn argv_from_pid_1_then_other_processes() {
        let t = tempfile::tempdir().unwrap();
        let root = Dir::open_path(t.path()).unwrap();
        let src = Disk {
            root: &root,
            untrusted: me().into(),
        };
        assert_eq!(container_argv(&src, "main-wrapper.sh"), None);
        for (pid, cmd) in [
            ("1", &b"s6-svscan\0-t0\0/run/service\0"[..]),
            ("7", b"/init\0main-wrapper.sh\0dashboard\0"),
            ("12", b"rc.init\0top\0main-wrapper.sh\0gateway\0run\0"),
            ("self", b"main-wrapper.sh\0nope\0"),
        ] {
            std::fs::create_dir_all(t.path().join("proc").join(pid)).unwrap();
            std::fs::write(t.path().join("proc").join(pid).join("cmdline"), cmd).unwrap();
        }
        assert_eq!(
            container_argv(&src, "main-wrapper.sh").unwrap(),
            ["/init", "main-wrapper.sh", "dashboard"]
        );
        std::fs::write(
            t.path().join("proc/1/cmdline"),
            b"/init\0main-wrapper.sh\0gateway\0run\0",
        )
        .unwrap();
        assert_eq!(
            container_argv(&src, "main-wrapper.sh").unwrap(),
            ["/init", "main-wrapper.sh", "gateway", "run"]
        );
    }

    /// Only root's processes (or this process's own uid's) count, and only
    /// an argument that is the wrapper by its exact name.
    #[test]
    fn an_impostor_process_never_counts_as_the_container_command() {
        let t = tempfile::tempdir().unwrap();
        let root = Dir::open_path(t.path()).unwrap();
        let src = Disk {
            root: &root,
            untrusted: me().into(),
        };
        let plant = |pid: &str, cmd: &[u8], owner: Option<u32>, status: Option<&str>| {
            let dir = t.path().join("proc").join(pid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cmdline"), cmd).unwrap();
            if let Some(s) = status {
                std::fs::write(dir.join("status"), s).unwrap();
            }
            if let Some(uid) = owner {
                std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
            }
        };
        plant("1", b"s6-svscan\0/run/service\0", None, None);
        // The user's own process, by its /proc owner or (non-dumpable, so
        // /proc/<pid> is root's) by its status.
        plant(
            "5",
            b"bash\0-c\0x\0/x/main-wrapper.sh\0gateway\0run\0",
            Some(10000),
            None,
        );
        plant(
            "6",
            b"main-wrapper.sh\0dashboard\0",
            None,
            Some("Name:\tbash\nUid:\t10000\t10000\t10000\t10000\n"),
        );
        // Root's, but only holding the name inside an argument.
        plant("7", b"sh\0-c\0main-wrapper.sh dashboard\0", None, None);
        plant("8", b"/x/not-main-wrapper.sh\0dashboard\0", None, None);
        if fs::uid() == 0 {
            assert_eq!(container_argv(&src, "main-wrapper.sh"), None);
        }
        plant(
            "9",
            b"/init\0/x/main-wrapper.sh\0gateway\0run\0",
            None,
            Some("Uid:\t0\t0\t0\t0\n"),
        );
        if fs::uid() == 0 {
            assert_eq!(
                container_argv(&src, "main-wrapper.sh").unwrap(),
                ["/init", "/x/main-wrapper.sh", "gateway", "run"]
            );
        }
        assert_eq!(
            status_uids(b"Name:\tx\nUid:\t0\t10000\t0\t0\n"),
            Some((0, 10000))
        );
        assert_eq!(status_uids(b"Name:\tx\n"), None);
    }

    #[test]
    fn marker_symlinks_count_only_when_their_target_exists() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        std::fs::write(t.path().join("real.md"), b"x").unwrap();
        symlink("real.md", t.path().join("ok.md")).unwrap();
        symlink("gone.md", t.path().join("dangling.md")).unwrap();
        symlink("loop.md", t.path().join("loop.md")).unwrap();
        let src = Disk {
            root: &d,
            untrusted: me().into(),
        };
        let has = |n: &str| marker_exists(&src, &d, OsStr::new(n), me()).unwrap();
        assert!(has("real.md"));
        assert!(has("ok.md"));
        assert!(!has("dangling.md"));
        assert!(!has("loop.md"));
        assert!(!has("missing.md"));
    }

    #[test]
    fn app_files_are_bounded() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        let src = Disk {
            root: &d,
            untrusted: me().into(),
        };
        assert_eq!(app_file(&src, &d, "config.yaml", me()), StateObs::Missing);
        std::fs::write(t.path().join("config.yaml"), b"a: 1\n").unwrap();
        assert_eq!(
            app_file(&src, &d, "config.yaml", me()),
            StateObs::Bytes(b"a: 1\n".to_vec())
        );
        std::fs::write(t.path().join("big"), vec![b' '; FILE_LIMIT as usize + 1]).unwrap();
        assert_eq!(
            app_file(&src, &d, "big", me()),
            StateObs::Unreadable(format!("larger than {FILE_LIMIT} bytes; not read"))
        );
        std::fs::create_dir(t.path().join("dir")).unwrap();
        assert_eq!(
            app_file(&src, &d, "dir", me()),
            StateObs::Unreadable("is a directory, not a regular file".into())
        );
        symlink("config.yaml", t.path().join("link.yaml")).unwrap();
        assert_eq!(
            app_file(&src, &d, "link.yaml", me()),
            StateObs::Bytes(b"a: 1\n".to_vec())
        );
    }

    #[test]
    fn snapshots_describe_what_the_profiles_phase_reads_of_the_application() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("opt/data")).unwrap();
        std::fs::write(
            r.join("opt/data/config.yaml"),
            b"multiplex_profiles: true\n",
        )
        .unwrap();
        std::fs::write(r.join("opt/data/unrelated.txt"), b"x").unwrap();
        for (pid, cmd) in [
            ("1", &b"s6-svscan\0"[..]),
            ("9", b"/init\0main-wrapper.sh\0dashboard\0"),
            ("10", b"sh\0"),
        ] {
            std::fs::create_dir_all(r.join("proc").join(pid)).unwrap();
            std::fs::write(r.join("proc").join(pid).join("cmdline"), cmd).unwrap();
        }
        let cfg = crate::desired::config::Config::default();
        let (d, _) = crate::tree::snapshot::snapshot(
            r,
            &cfg,
            None,
            &[crate::desired::model::Phase::Profiles],
        )
        .unwrap();
        let paths: Vec<&str> = d.entries.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"opt/data/config.yaml"), "{paths:?}");
        assert!(!paths.contains(&"opt/data/unrelated.txt"), "{paths:?}");
        assert!(paths.contains(&"proc/9/cmdline"), "{paths:?}");
        assert!(
            !paths.iter().any(|p| p.starts_with("proc/1")),
            "only the process picked: {paths:?}"
        );
        let e = d.get("proc/9/cmdline").unwrap();
        assert!(
            matches!(&e.node, crate::tree::Node::File { content: crate::tree::Content::Bytes(b), .. }
                if b == b"/init\0main-wrapper.sh\0dashboard\0"),
            "{e:?}"
        );
    }
}
