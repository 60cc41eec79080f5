//! The recorded reports (docs/runtime.md "Files"): an apply run as root
//! leaves its JSON report in `/run/s6-reconcile/` (under `--root`), the
//! boot apply in `boot.json`, each runtime pass in `last.json` with the
//! pass's sequence number, so that an operator who missed the boot lines,
//! and the application that asked for a pass, can read what happened.
//!
//! The directory is root's, mode 0755, in root's `/run` (the apply lock's
//! directory, trusted the same way); every file is written as a new file
//! beside its name, then renamed over it, through the held directory, so a
//! reader never sees half a report and a kill leaves the old one whole.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::fs::{self, Dir, Kind};

/// The directory's name in `/run`.
pub const DIR_NAME: &str = "s6-reconcile";
/// The boot apply's report.
pub const BOOT: &str = "boot.json";
/// The latest runtime pass's report.
pub const LAST: &str = "last.json";
/// The last sequence number given to a runtime pass (decimal, a newline).
pub const SEQUENCE: &str = "sequence";
const MODE_DIR: u32 = 0o755;
const MODE_FILE: u32 = 0o644;

/// Why a report could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("unable to record the report in {path}: {err}")]
    Io {
        path: PathBuf,
        #[source]
        err: fs::Error,
    },
    #[error("refusing to record the report in {path}: {why}")]
    Untrusted { path: PathBuf, why: String },
}

impl RecordError {
    pub fn path(&self) -> &Path {
        match self {
            RecordError::Io { path, .. } | RecordError::Untrusted { path, .. } => path,
        }
    }
}

/// The opened record directory.
pub struct Records {
    dir: Dir,
    shown: PathBuf,
}

impl Records {
    /// Open (creating it if missing) `/run/s6-reconcile` under `root`:
    /// root's, not writable by group or others. `user` is the
    /// unprivileged user (with their groups), who must not control `/run`. `None`: the
    /// root has no `/run` (a copy of a root, a fixture): nothing recorded.
    pub fn open(root: &Dir, user: &fs::Ids) -> Result<Option<Records>, RecordError> {
        let run = match fs::resolve_base(root, Path::new("/run"), user) {
            Ok(run) => run,
            Err(fs::BaseError::Missing) => return Ok(None),
            Err(e) => {
                return Err(RecordError::Untrusted {
                    path: Path::new("/run").join(DIR_NAME),
                    why: format!("/run {e}"),
                });
            }
        };
        let shown = run.resolved.join(DIR_NAME);
        let io = |err| RecordError::Io {
            path: shown.clone(),
            err,
        };
        let name = OsStr::new(DIR_NAME);
        let dir = match run.dir.open_dir(name) {
            Ok(d) => d,
            Err(e) if crate::fs::Os::NotFound.is(&e) => match run.dir.mkdir(name, MODE_DIR) {
                Ok(d) => d,
                Err(e) if crate::fs::Os::Exists.is(&e) => run.dir.open_dir(name).map_err(io)?,
                Err(e) => return Err(io(e)),
            },
            Err(e) => return Err(io(e)),
        };
        let m = dir.meta().map_err(io)?;
        if m.kind != Kind::Dir || m.uid != 0 || m.mode & 0o022 != 0 {
            return Err(RecordError::Untrusted {
                path: shown,
                why: format!(
                    "owner uid {} mode {:04o}: not root's 0755 directory",
                    m.uid, m.mode
                ),
            });
        }
        Ok(Some(Records { dir, shown }))
    }

    /// The next runtime pass's sequence number, kept: one more than the
    /// last one given (1 for the first pass since the container started).
    /// Kept before the pass's report is written, so a pass killed between
    /// the two never gives its number to the next one.
    pub fn next_sequence(&self) -> Result<u64, RecordError> {
        let last = match self.dir.read_file(OsStr::new(SEQUENCE), 64) {
            Ok(b) => String::from_utf8_lossy(&b)
                .trim()
                .parse::<u64>()
                .unwrap_or(0),
            Err(e) if crate::fs::Os::NotFound.is(&e) => 0,
            Err(err) => {
                return Err(RecordError::Io {
                    path: self.shown.join(SEQUENCE),
                    err,
                });
            }
        };
        let next = last.saturating_add(1);
        self.write(SEQUENCE, format!("{next}\n").as_bytes())?;
        Ok(next)
    }

    /// Replace `name` ([`BOOT`], [`LAST`] or [`SEQUENCE`]) with `content`,
    /// whole: written under `.<name>.new`, then renamed over it.
    pub fn write(&self, name: &str, content: &[u8]) -> Result<(), RecordError> {
        let io = |err| RecordError::Io {
            path: self.shown.join(name),
            err,
        };
        let tmp = format!(".{name}.new");
        let tmp = OsStr::new(&tmp);
        // A leftover of a killed write: ours to replace.
        match self.dir.unlink(tmp) {
            Ok(()) => {}
            Err(e) if crate::fs::Os::NotFound.is(&e) => {}
            Err(e) => return Err(io(e)),
        }
        self.dir.create_file(tmp, content, MODE_FILE).map_err(io)?;
        self.dir.rename(tmp, OsStr::new(name)).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_whole_file_and_sequences_count_up() {
        if fs::euid() != 0 {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("run")).unwrap();
        let root = Dir::open_path(t.path()).unwrap();
        let r = Records::open(&root, &fs::Ids::new(10000, 10000))
            .unwrap()
            .unwrap();
        assert_eq!(r.next_sequence().unwrap(), 1);
        assert_eq!(r.next_sequence().unwrap(), 2);
        r.write(LAST, b"{}\n").unwrap();
        r.write(LAST, b"{\"a\":1}\n").unwrap();
        let dir = t.path().join("run").join(DIR_NAME);
        let got = std::fs::read_to_string(dir.join(LAST)).unwrap();
        assert_eq!(got, "{\"a\":1}\n");
        assert_eq!(std::fs::read_to_string(dir.join(SEQUENCE)).unwrap(), "2\n");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o755);
        assert_eq!(
            std::fs::metadata(dir.join(LAST)).unwrap().mode() & 0o7777,
            0o644
        );
    }
}
