//! NetBSD: the libc crate has the shared memory calls and `shmid_ds`, but no
//! semaphore calls, `sembuf` or constants; they are declared here from
//! `sys/sem.h` (classic values; `semctl` is the `__semctl50` symbol since
//! NetBSD 5). No `semtimedop`; no list of segments here. `key_t` is 64 bits.

use std::time::Duration;

use libc::{c_int, size_t};

use super::{check, classic, Errno, Key, Sembuf, Semun, ShmStat};

pub const SEM_UNDO: c_int = classic::SEM_UNDO;
pub const GETVAL: c_int = classic::GETVAL;
pub const SETVAL: c_int = classic::SETVAL;

/// `shm_perm.mode` bit of a removed segment still attached somewhere
/// (`SHMSEG_REMOVED`, `sys/kern/sysv_shm.c`).
const SHMSEG_REMOVED: u32 = 0x0400;

extern "C" {
    #[link_name = "semget"]
    fn sys_semget(key: Key, nsems: c_int, flags: c_int) -> c_int;
    #[link_name = "semop"]
    fn sys_semop(semid: c_int, ops: *mut Sembuf, nsops: size_t) -> c_int;
    #[link_name = "__semctl50"]
    fn sys_semctl(semid: c_int, semnum: c_int, cmd: c_int, ...) -> c_int;
}

pub fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions; returns this thread's errno slot.
    unsafe { libc::__errno() }
}

pub fn semget(key: Key, nsems: c_int, flags: c_int) -> c_int {
    // SAFETY: semget takes only integers.
    unsafe { sys_semget(key, nsems, flags) }
}

/// # Safety
/// `ops` points to `n` valid sembufs.
pub unsafe fn semop(semid: c_int, ops: *mut Sembuf, n: usize) -> c_int {
    // SAFETY: per the caller.
    unsafe { sys_semop(semid, ops, n) }
}

/// # Safety
/// `arg` must be what `cmd` expects.
pub unsafe fn semctl(semid: c_int, num: c_int, cmd: c_int, arg: Semun) -> c_int {
    // SAFETY: per the caller; the union is passed by value, as C does.
    unsafe { sys_semctl(semid, num, cmd, arg) }
}

pub fn semop_timed(semid: c_int, ops: &mut [Sembuf], t: Duration) -> Result<(), Errno> {
    super::semop_polled(semid, ops, t)
}

pub fn shm_stat(shmid: c_int) -> Result<ShmStat, Errno> {
    // SAFETY: shmid_ds is plain old data.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable shmid_ds (libc links __shmctl50).
    check(unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) })?;
    let mode = ds.shm_perm.mode as u32;
    Ok(ShmStat {
        key: ds.shm_perm._key,
        size: ds.shm_segsz,
        mode: mode & 0o777,
        removed: mode & SHMSEG_REMOVED != 0,
        nattch: ds.shm_nattch as u64,
        cpid: ds.shm_cpid,
        uid: ds.shm_perm.uid,
    })
}

pub fn shm_list() -> Option<Vec<(c_int, ShmStat)>> {
    None
}
