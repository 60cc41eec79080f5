//! Running the binary under a deadline: a run that hangs (a FIFO read as a
//! configuration, a lock never released) fails its test with what it said
//! so far instead of hanging the suite. The deadline is generous: it is a
//! hang detector, not a timing assertion.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest any single run may take before it counts as a hang.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// What a finished run left.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Everything, for assertion messages.
    pub fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "{}", self.show());
        self
    }

    /// stderr is exactly `text`.
    #[track_caller]
    pub fn assert_stderr(&self, text: &str) -> &Self {
        assert_eq!(self.stderr, text, "{}", self.show());
        self
    }
}

/// Run `cmd` to its end, or kill it after [`DEADLINE`] and panic with what
/// it printed. `stdout` replaces the captured stdout when given (a closed
/// pipe, `/dev/full`); stdout then reads as empty.
pub fn run(mut cmd: Command, stdout: Option<Stdio>) -> Out {
    let captured = stdout.is_none();
    cmd.stdin(Stdio::null())
        .stdout(stdout.unwrap_or_else(Stdio::piped))
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn reconcile");
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .filter(|_| captured)
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for reconcile") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "reconcile still running after {DEADLINE:?} (a hang):\n--- stderr\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}
