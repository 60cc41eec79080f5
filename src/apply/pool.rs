//! Slot builds on worker threads: the staging dirs of a plan's publishes
//! are built ahead, in plan order, by workers, while the caller goes
//! through the changes in order and publishes each slot when its build is
//! done (building the next ones itself rather than wait). What is published, in which order, and every outcome are the
//! sequential run's; only the staging dirs (dot names, invisible to
//! s6-svscan, removed by the next run if a kill leaves one) are made
//! concurrently.
//!
//! The workers are started after the privilege drop, so they act with the
//! same effective ids as the caller; no change that switches ids runs
//! while they do (see [`super::apply`]). At most [`AHEAD`] builds are
//! waiting to be published at a time, so a slow publisher bounds the
//! staging dirs on disk.

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::fs::Dir;
use crate::plan::{Owner, SlotBuild};

use super::StepError;
use super::stage::stage;

/// How many builds may be done or under way beyond the next one the
/// caller publishes.
pub const AHEAD: usize = 32;

/// The result of one staging build.
pub type Staged = Result<(), StepError>;

struct State {
    /// The next build a worker takes.
    next: usize,
    /// The builds the caller has taken (published or failed).
    taken: usize,
    done: Vec<Option<Staged>>,
    /// Every build before this one is done.
    ready: usize,
    /// The caller sleeps until `ready` passes this (`None`: not asleep).
    caller_wants: Option<usize>,
    /// Workers asleep until the caller takes a build.
    workers_waiting: usize,
    /// A worker panicked, or the caller is done: nobody waits any more.
    stop: bool,
}

/// Builds shared by the workers and the caller, who builds too while it
/// waits. Wake-ups are only sent to a thread that sleeps, so the threads
/// cost a few `futex` calls, not some per slot.
pub struct Pool<'a> {
    builds: Vec<&'a SlotBuild>,
    scandir: &'a Dir,
    me: Owner,
    state: Mutex<State>,
    /// The caller waits on this one, the workers on `taken`.
    ready: Condvar,
    taken: Condvar,
}

impl<'a> Pool<'a> {
    pub fn new(builds: Vec<&'a SlotBuild>, scandir: &'a Dir, me: Owner) -> Pool<'a> {
        let n = builds.len();
        Pool {
            builds,
            scandir,
            me,
            state: Mutex::new(State {
                next: 0,
                taken: 0,
                done: (0..n).map(|_| None).collect(),
                ready: 0,
                caller_wants: None,
                workers_waiting: 0,
                stop: false,
            }),
            ready: Condvar::new(),
            taken: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked holds no lock while building; the state
        // stays consistent whatever the poison says.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker: take the next build in plan order (at most [`AHEAD`]
    /// beyond the caller), build it, store its result, until none is left.
    pub fn work(&self) {
        // If the build panics, the caller must not wait for it forever.
        struct Guard<'p, 'a>(&'p Pool<'a>);
        impl Drop for Guard<'_, '_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.stop();
                }
            }
        }
        let _guard = Guard(self);
        // Its fds are its own (each build opens and closes a dozen): no
        // contention with the other threads on one fd table. Only slower
        // if that fails.
        if let Err(e) = crate::fs::private_fd_table() {
            log::debug!("slot builder: unshare(CLONE_FILES): {e}");
        }
        let mut st = self.lock();
        loop {
            if st.stop || st.next >= self.builds.len() {
                return;
            }
            if st.next >= st.taken + AHEAD {
                st.workers_waiting += 1;
                st = self.taken.wait(st).unwrap_or_else(|p| p.into_inner());
                st.workers_waiting -= 1;
                continue;
            }
            st = self.build_next(st);
        }
    }

    /// Build the next build not yet taken by anyone (the lock released
    /// meanwhile), store its result, and wake the caller if it waits for it.
    fn build_next<'g>(&'g self, mut st: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        let k = st.next;
        st.next += 1;
        drop(st);
        let r = stage(self.scandir, self.builds[k], self.me);
        let mut st = self.lock();
        st.done[k] = Some(r);
        while st.ready < st.done.len() && st.done[st.ready].is_some() {
            st.ready += 1;
        }
        if st.caller_wants.is_some_and(|w| st.ready > w) {
            st.caller_wants = None;
            self.ready.notify_one();
        }
        st
    }

    /// Let every worker return (the caller is done, or unwinding): builds
    /// not started are not started.
    pub fn stop(&self) {
        let mut st = self.lock();
        st.stop = true;
        st.caller_wants = None;
        drop(st);
        self.ready.notify_all();
        self.taken.notify_all();
    }

    /// The caller: wait for build `k` (taken in order, each once) and
    /// return its result. While it is not done, the caller builds the next
    /// ones itself rather than sleep, and sleeps only when every build it
    /// may start is under way.
    pub fn take(&self, k: usize) -> Staged {
        let mut st = self.lock();
        while st.done[k].is_none() {
            if st.next < self.builds.len() && st.next < st.taken + AHEAD {
                st = self.build_next(st);
                continue;
            }
            st.caller_wants = Some(k);
            while st.caller_wants.is_some() {
                st = self.ready.wait(st).unwrap_or_else(|p| p.into_inner());
                assert!(!st.stop, "a slot builder panicked");
            }
        }
        let r = st.done[k].take().expect("build done");
        st.taken = k + 1;
        if st.workers_waiting > 0 {
            self.taken.notify_all();
        }
        r
    }
}
