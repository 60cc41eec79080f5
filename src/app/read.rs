//! Reading what the application decisions need, through held directory
//! fds and bounded: the application's configuration files and a profile's
//! marker (in the user's volume: with the user's effective ids when root,
//! so a symlink there is followed only as far as the user could follow it
//! themselves), and the container's command line (`<root>/proc`, the
//! kernel's, read as is).

use std::ffi::OsStr;
use std::io;

use super::{FILE_LIMIT, command};
use crate::fs::{self, Dir, Kind};
use crate::scan::StateObs;

/// Longest command line read; a longer one is cut (the wrapper and the
/// command come first).
pub const CMDLINE_LIMIT: u64 = 64 * 1024;
/// Most processes looked at after PID 1 (in ascending PID order).
pub const MAX_PIDS: usize = 4096;

/// Run `f` with the user's effective ids when this process is root (the
/// real and saved ids stay root), else as we are.
pub fn as_user<R>(user: (u32, u32), f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    if fs::euid() == 0 && user.0 != 0 {
        fs::with_effective_ids(user.0, user.1, f)
    } else {
        f()
    }
}

/// One of the application's files in the home, read as the user: missing,
/// its bytes, or why it cannot be used (not a regular file, too large, an
/// OS error). A symlink is followed with the user's ids.
pub fn app_file(home: &Dir, name: &str, user: (u32, u32)) -> StateObs {
    let name = OsStr::new(name);
    match as_user(user, || home.read_file_following(name, FILE_LIMIT + 1)) {
        Ok(b) if b.len() as u64 > FILE_LIMIT => {
            StateObs::Unreadable(format!("larger than {FILE_LIMIT} bytes; not read"))
        }
        Ok(b) => StateObs::Bytes(b),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => StateObs::Missing,
        Err(e) => StateObs::Unreadable(fs::os_error(&e)),
    }
}

/// Whether a profile directory holds its marker: an entry that exists, a
/// symlink counting only when its target exists for the user (the target is
/// looked up with the user's ids, never root's). `Err`: the lookup failed
/// for another reason than a missing target.
pub fn marker_exists(dir: &Dir, name: &OsStr, user: (u32, u32)) -> io::Result<bool> {
    match dir.stat(name) {
        Ok(m) if m.kind != Kind::Symlink => Ok(true),
        Ok(_) => match as_user(user, || dir.stat_following(name)) {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        },
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The container's command line: the argv of PID 1 if it holds the
/// wrapper, else of the first other process (ascending PID, at most
/// [`MAX_PIDS`]) that does. `None` without `<root>/proc` or a match.
pub fn container_argv(root: &Dir, wrapper: &str) -> Option<Vec<String>> {
    let proc_dir = match root.open_dir(OsStr::new("proc")) {
        Ok(d) => d,
        Err(e) => {
            log::debug!("no container command: /proc: {}", fs::os_error(&e));
            return None;
        }
    };
    let argv_of = |pid: &OsStr| -> Option<Vec<String>> {
        let bytes = proc_dir
            .open_dir(pid)
            .and_then(|d| d.read_file(OsStr::new("cmdline"), CMDLINE_LIMIT))
            .ok()?;
        let argv = command::split_cmdline(&bytes);
        command::holds_wrapper(&argv, wrapper).then_some(argv)
    };
    if let Some(argv) = argv_of(OsStr::new("1")) {
        return Some(argv);
    }
    let mut pids: Vec<u32> = proc_dir
        .entries()
        .ok()?
        .into_iter()
        .filter_map(|n| n.to_str().and_then(|s| s.parse().ok()))
        .filter(|&p| p != 1)
        .collect();
    pids.sort_unstable();
    pids.truncate(MAX_PIDS);
    pids.into_iter()
        .find_map(|p| argv_of(OsStr::new(&p.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn me() -> (u32, u32) {
        (fs::euid(), fs::egid())
    }

    #[test]
    fn argv_from_pid_1_then_other_processes() {
        let t = tempfile::tempdir().unwrap();
        let root = Dir::open_path(t.path()).unwrap();
        assert_eq!(container_argv(&root, "main-wrapper.sh"), None);
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
            container_argv(&root, "main-wrapper.sh").unwrap(),
            ["/init", "main-wrapper.sh", "dashboard"]
        );
        std::fs::write(
            t.path().join("proc/1/cmdline"),
            b"/init\0main-wrapper.sh\0gateway\0run\0",
        )
        .unwrap();
        assert_eq!(
            container_argv(&root, "main-wrapper.sh").unwrap(),
            ["/init", "main-wrapper.sh", "gateway", "run"]
        );
    }

    #[test]
    fn marker_symlinks_count_only_when_their_target_exists() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        std::fs::write(t.path().join("real.md"), b"x").unwrap();
        symlink("real.md", t.path().join("ok.md")).unwrap();
        symlink("gone.md", t.path().join("dangling.md")).unwrap();
        symlink("loop.md", t.path().join("loop.md")).unwrap();
        let has = |n: &str| marker_exists(&d, OsStr::new(n), me()).unwrap();
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
        assert_eq!(app_file(&d, "config.yaml", me()), StateObs::Missing);
        std::fs::write(t.path().join("config.yaml"), b"a: 1\n").unwrap();
        assert_eq!(
            app_file(&d, "config.yaml", me()),
            StateObs::Bytes(b"a: 1\n".to_vec())
        );
        std::fs::write(t.path().join("big"), vec![b' '; FILE_LIMIT as usize + 1]).unwrap();
        assert_eq!(
            app_file(&d, "big", me()),
            StateObs::Unreadable(format!("larger than {FILE_LIMIT} bytes; not read"))
        );
        std::fs::create_dir(t.path().join("dir")).unwrap();
        assert!(matches!(app_file(&d, "dir", me()), StateObs::Unreadable(_)));
    }
}
