//! Solaris and illumos: the libc crate has the shared memory calls and
//! `shmid_ds`, but no semaphore calls, `sembuf` or constants, and no
//! `IPC_STAT` (it spells it `IPC_SEAT`); they are declared here from
//! `sys/sem.h` and `sys/ipc.h` (classic semaphore values; `IPC_STAT` is 12
//! there, not Linux's 2). `semtimedop(2)` exists there but is not used: this
//! project cannot run it. Segments are listed with `shmids(2)`. A removed
//! segment's id is gone at once (`IPC_STAT` and `shmat` fail on it), so no
//! "removed" flag is ever seen.

use std::time::Duration;

use libc::{c_int, c_uint, size_t};

use super::{check, classic, Errno, Key, Sembuf, Semun, ShmStat};

pub const SEM_UNDO: c_int = classic::SEM_UNDO;
pub const GETVAL: c_int = classic::GETVAL;
pub const SETVAL: c_int = classic::SETVAL;

/// `shmctl` command `IPC_STAT` (`sys/ipc.h`).
const IPC_STAT: c_int = 12;
const _: () = assert!(libc::IPC_RMID == 10 && libc::IPC_SET == 11);

extern "C" {
    #[link_name = "semget"]
    fn sys_semget(key: Key, nsems: c_int, flags: c_int) -> c_int;
    #[link_name = "semop"]
    fn sys_semop(semid: c_int, ops: *mut Sembuf, nsops: size_t) -> c_int;
    #[link_name = "semctl"]
    fn sys_semctl(semid: c_int, semnum: c_int, cmd: c_int, ...) -> c_int;
    /// `shmids(2)`: up to `nids` ids into `buf`, and how many exist in `*pnids`.
    fn shmids(buf: *mut c_int, nids: c_uint, pnids: *mut c_uint) -> c_int;
}

pub fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions; returns this thread's errno slot.
    unsafe { libc::___errno() }
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
    // SAFETY: ds is a valid, writable shmid_ds.
    check(unsafe { libc::shmctl(shmid, IPC_STAT, &mut ds) })?;
    Ok(ShmStat {
        key: ds.shm_perm.key,
        size: ds.shm_segsz,
        mode: ds.shm_perm.mode as u32 & 0o777,
        removed: false,
        nattch: ds.shm_nattch as u64,
        cpid: ds.shm_cpid,
        uid: ds.shm_perm.uid,
    })
}

pub fn shm_list() -> Option<Vec<(c_int, ShmStat)>> {
    let mut ids: Vec<c_int> = Vec::new();
    loop {
        let mut n: c_uint = 0;
        // SAFETY: ids has room for ids.capacity() ints; the call writes at most that many.
        check(unsafe { shmids(ids.as_mut_ptr(), ids.capacity() as c_uint, &mut n) }).ok()?;
        if n as usize <= ids.capacity() {
            // SAFETY: the call wrote n ids.
            unsafe { ids.set_len(n as usize) };
            break;
        }
        ids.reserve(n as usize + 16);
    }
    // A segment removed since is left out.
    Some(ids.into_iter().filter_map(|id| shm_stat(id).ok().map(|st| (id, st))).collect())
}
