//! The lock protocol (doc/FORMAT.md, 4 "Locks"): the three
//! semaphores of a share, the lock kinds, how long a request may wait, and
//! the one `semop` list for each way of taking and releasing a lock.

use std::time::Duration;

use libc::{c_int, c_short};

use crate::error::Result;
use crate::sys::{self, Errno, Sembuf, IPC_NOWAIT, SEM_UNDO};

/// `sem[0]`: 1 once the head has been initialised.
pub(crate) const SEM_INIT: u16 = 0;
/// `sem[1]`: shared locks held.
const SEM_READERS: u16 = 1;
/// `sem[2]`: exclusive locks held (0 or 1).
const SEM_WRITER: u16 = 2;
/// Semaphores in a share's set.
pub(crate) const NSEMS: c_int = 3;

/// The kind of lock a handle holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Many holders at once; excludes writers.
    Shared,
    /// One holder; excludes everyone else.
    Exclusive,
}

/// How long a lock request may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Until the lock is free.
    Forever,
    /// Not at all (`LOCK_NB`).
    No,
    /// At most this long: `semtimedop(2)` on Linux; elsewhere non-blocking
    /// tries with a backoff of 1 ms doubling up to 50 ms, until the deadline
    /// (so it gives up no earlier than the timeout, and may see a freed lock
    /// up to 50 ms late).
    For(Duration),
}

/// The `semop` list that takes a lock, every operation with `extra` flags:
/// the first `n` entries of the array (a fixed array, so that taking a lock
/// allocates nothing; the entries past `n` are never passed).
fn lock_ops(kind: LockKind, extra: c_short) -> ([Sembuf; 3], usize) {
    let op = |num: u16, op: c_short, flg: c_short| Sembuf { sem_num: num, sem_op: op, sem_flg: flg | extra };
    let undo = SEM_UNDO;
    let wait_no_readers = op(SEM_READERS, 0, 0);
    let wait_no_writer = op(SEM_WRITER, 0, 0);
    match kind {
        LockKind::Exclusive => ([wait_no_readers, wait_no_writer, op(SEM_WRITER, 1, undo)], 3),
        LockKind::Shared => ([wait_no_writer, op(SEM_READERS, 1, undo), wait_no_writer], 2),
    }
}

/// The `semop` that releases a lock.
fn unlock_op(kind: LockKind) -> Sembuf {
    let sem_num = match kind {
        LockKind::Exclusive => SEM_WRITER,
        LockKind::Shared => SEM_READERS,
    };
    Sembuf { sem_num, sem_op: -1, sem_flg: SEM_UNDO | IPC_NOWAIT }
}

/// Takes a `kind` lock on set `semid`. `Ok(false)` when `wait` is
/// [`Wait::No`] and the lock is held elsewhere, or a [`Wait::For`] expired.
/// A signal interrupts a wait with `EINTR` (so Perl's handlers can run).
pub(crate) fn take(semid: c_int, kind: LockKind, wait: Wait) -> Result<bool> {
    let nowait = if wait == Wait::No { IPC_NOWAIT } else { 0 };
    let timeout = match wait {
        Wait::For(d) => Some(d),
        _ => None,
    };
    let (mut ops, n) = lock_ops(kind, nowait);
    match sys::semop(semid, &mut ops[..n], timeout) {
        Ok(()) => Ok(true),
        Err(Errno(libc::EAGAIN)) if wait != Wait::Forever => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Takes a `kind` lock, waiting as long as it takes, restarted after a
/// signal: for a lock that must be had back once work is done.
pub(crate) fn take_restarting(semid: c_int, kind: LockKind) -> sys::Result<()> {
    let (mut ops, n) = lock_ops(kind, 0);
    sys::semop_restarting(semid, &mut ops[..n])
}

/// Takes the exclusive lock, waiting; the raw error is kept for the caller
/// (the open protocol restarts when the set vanished).
pub(crate) fn take_exclusive_raw(semid: c_int) -> sys::Result<()> {
    let (mut ops, n) = lock_ops(LockKind::Exclusive, 0);
    sys::semop(semid, &mut ops[..n], None)
}

/// True when no exclusive lock is held on set `semid` at the moment of the
/// call (`semctl(GETVAL)` of the writer semaphore); false also when it cannot
/// be read. It changes no semaphore and no undo list, unlike taking and
/// releasing a lock (two `semop` with `SEM_UNDO`), though Linux still takes
/// the set's spinlock to read the value.
pub(crate) fn writer_idle(semid: c_int) -> bool {
    sys::sem_getval(semid, SEM_WRITER as c_int) == Ok(0)
}

/// Releases a `kind` lock this process holds on set `semid`.
pub(crate) fn release(semid: c_int, kind: LockKind) -> sys::Result<()> {
    sys::semop(semid, &mut [unlock_op(kind)], None)
}

/// A lock taken for the length of one call, released when this value is
/// dropped: on every path, an error or a panic included.
#[derive(Debug)]
pub(crate) struct Held {
    semid: c_int,
    kind: LockKind,
}

impl Held {
    /// Takes the shared lock on set `semid`, waiting as long as it takes (a
    /// signal interrupts the wait with `EINTR`).
    pub(crate) fn take_shared(semid: c_int) -> Result<Held> {
        take(semid, LockKind::Shared, Wait::Forever)?;
        Ok(Held { semid, kind: LockKind::Shared })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // A release fails only when the set is gone, which took the lock with it.
        let _ = release(self.semid, self.kind);
    }
}
