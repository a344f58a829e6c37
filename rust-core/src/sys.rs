//! The raw SysV IPC calls, each wrapped once.
//!
//! Everything above this module sees `Result<T, Errno>`; the `-1`/`errno`
//! convention is turned into a `Result` here and nowhere else.

use std::fmt;
use std::ptr::NonNull;
use std::time::Duration;

use libc::{c_int, c_void};

/// An operating system error number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub c_int);

impl Errno {
    /// The calling thread's current `errno`.
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // std's text for an OS error is strerror(3)'s, followed by " (os error N)".
        let text = std::io::Error::from_raw_os_error(self.0).to_string();
        let text = match text.rfind(" (os error") {
            Some(i) => &text[..i],
            None => &text,
        };
        f.write_str(text)
    }
}

/// Turns a `-1`/`errno` return into a `Result`.
fn check(rc: c_int) -> Result<c_int, Errno> {
    if rc == -1 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

/// Calls `f` again while it fails with `EINTR`.
fn retry_eintr<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno(libc::EINTR)) => continue,
            other => return other,
        }
    }
}

/// `semget(2)`: the id of the semaphore set at `key` with `nsems` semaphores.
///
/// `ENOENT`: no set and no `IPC_CREAT`; `EEXIST`: `IPC_EXCL` and it exists;
/// `EACCES`: the mode bits in `flags` ask for more than the set grants.
pub fn semget(key: libc::key_t, nsems: c_int, flags: c_int) -> Result<c_int, Errno> {
    // SAFETY: semget takes only integers.
    check(unsafe { libc::semget(key, nsems, flags) })
}

/// One `semop(2)` (or `semtimedop(2)` with a timeout) over `ops`, atomically.
///
/// `EAGAIN`: `IPC_NOWAIT` was given and the call would block, or the timeout
/// expired; `EINVAL`/`EIDRM`: the set is gone; `EINTR`: a signal arrived
/// (never restarted here, so that the caller can run the signal's handler).
pub fn semop(semid: c_int, ops: &mut [libc::sembuf], timeout: Option<Duration>) -> Result<(), Errno> {
    let rc = match timeout {
        None => {
            // SAFETY: ops points to ops.len() valid sembuf structures.
            unsafe { libc::semop(semid, ops.as_mut_ptr(), ops.len()) }
        }
        Some(t) => {
            let ts = libc::timespec {
                tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: t.subsec_nanos() as libc::c_long,
            };
            // SAFETY: ops points to ops.len() valid sembuf structures and ts
            // lives for the whole call.
            unsafe { semtimedop(semid, ops.as_mut_ptr(), ops.len(), &ts) }
        }
    };
    check(rc).map(drop)
}

/// [`semop`], restarted after `EINTR`: for waits that must finish.
pub fn semop_restarting(semid: c_int, ops: &mut [libc::sembuf]) -> Result<(), Errno> {
    retry_eintr(|| semop(semid, ops, None))
}

extern "C" {
    // glibc and musl both provide it on Linux.
    fn semtimedop(semid: c_int, sops: *mut libc::sembuf, nsops: libc::size_t, timeout: *const libc::timespec) -> c_int;
}

/// `semctl(2)` `GETVAL`: the value of semaphore `num`.
pub fn sem_getval(semid: c_int, num: c_int) -> Result<c_int, Errno> {
    // SAFETY: GETVAL takes no fourth argument.
    check(unsafe { libc::semctl(semid, num, libc::GETVAL) })
}

/// `semctl(2)` `SETVAL`: sets semaphore `num` to `val`.
pub fn sem_setval(semid: c_int, num: c_int, val: c_int) -> Result<(), Errno> {
    // SAFETY: SETVAL reads the `val` member of union semun, an int passed by
    // value in the variadic slot.
    check(unsafe { libc::semctl(semid, num, libc::SETVAL, val) }).map(drop)
}

/// `semctl(2)` `IPC_RMID`: removes the semaphore set; sleepers get `EIDRM`.
pub fn sem_remove(semid: c_int) -> Result<(), Errno> {
    // SAFETY: IPC_RMID ignores the semaphore number and takes no fourth argument.
    check(unsafe { libc::semctl(semid, 0, libc::IPC_RMID) }).map(drop)
}

/// `shmget(2)`: the id of the segment at `key`.
///
/// `ENOENT`: none and no `IPC_CREAT`; `EEXIST`: `IPC_EXCL` and it exists;
/// `EINVAL`: `size` is out of the system's limits or larger than the existing
/// segment; `ENOSPC`/`ENOMEM`: the system is out of segments or memory.
pub fn shmget(key: libc::key_t, size: usize, flags: c_int) -> Result<c_int, Errno> {
    // SAFETY: shmget takes only integers.
    check(unsafe { libc::shmget(key, size, flags) })
}

/// `shmctl(2)` `IPC_STAT`.
pub fn shm_stat(shmid: c_int) -> Result<libc::shmid_ds, Errno> {
    // SAFETY: shmid_ds is plain old data.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable shmid_ds.
    check(unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) })?;
    Ok(ds)
}

/// `shmctl(2)` `IPC_RMID`: marks the segment for removal. It goes away when
/// the last process detaches; its key is freed at once.
pub fn shm_remove(shmid: c_int) -> Result<(), Errno> {
    // SAFETY: IPC_RMID does not read the buffer argument.
    check(unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// A segment attached with `shmat(2)`; detached with `shmdt(2)` on drop
/// (or earlier, by [`Attachment::detach`]).
#[derive(Debug)]
pub struct Attachment {
    addr: NonNull<u8>,
    len: usize,
    shmid: c_int,
    attached: bool,
}

// SAFETY: an attachment is a mapping owned by this value; moving it to another
// thread moves that ownership. All access goes through raw pointers.
unsafe impl Send for Attachment {}

impl Attachment {
    /// `shmat(2)` read-write, then `IPC_STAT` for the size.
    ///
    /// `EINVAL`/`EIDRM`: no such segment; `EACCES`: not permitted.
    pub fn attach(shmid: c_int) -> Result<Attachment, Errno> {
        let ds = shm_stat(shmid)?;
        Self::attach_sized(shmid, ds.shm_segsz)
    }

    /// `shmat(2)` read-write of a segment whose size the caller already knows.
    pub fn attach_sized(shmid: c_int, len: usize) -> Result<Attachment, Errno> {
        // SAFETY: a null address lets the kernel choose where to map.
        let p = unsafe { libc::shmat(shmid, std::ptr::null(), 0) };
        if p as isize == -1 {
            return Err(Errno::last());
        }
        let addr = NonNull::new(p as *mut u8).ok_or(Errno(libc::EFAULT))?;
        Ok(Attachment { addr, len, shmid, attached: true })
    }

    /// The segment's id.
    pub fn shmid(&self) -> c_int {
        self.shmid
    }

    /// The mapped length in bytes.
    pub fn size(&self) -> usize {
        self.len
    }

    /// The first byte of the mapping.
    ///
    /// # Panics
    /// After [`Attachment::detach`]: there is no mapping any more.
    pub fn as_ptr(&self) -> *mut u8 {
        assert!(self.attached, "segment used after it was detached");
        self.addr.as_ptr()
    }

    /// `shmdt(2)` now; the mapping must not be used afterwards.
    pub fn detach(&mut self) {
        if self.attached {
            self.attached = false;
            // SAFETY: addr came from shmat and is detached once (the flag).
            unsafe {
                libc::shmdt(self.addr.as_ptr() as *const c_void);
            }
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.detach();
    }
}
