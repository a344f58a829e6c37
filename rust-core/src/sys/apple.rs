//! macOS: the libc crate has the calls and the semaphore constants, which
//! are the classic ones (asserted below). Its `shmid_ds` misses the header's
//! `#pragma pack(4)`, so the one used here is declared from `sys/shm.h`. No
//! `semtimedop`; no list of segments (`ipcs` asks a private sysctl protocol).

use std::time::Duration;

use libc::{c_int, c_ushort, c_void};

use super::{check, classic, Errno, Key, Sembuf, Semun, ShmStat};

pub const SEM_UNDO: c_int = libc::SEM_UNDO;
pub const GETVAL: c_int = libc::GETVAL;
pub const SETVAL: c_int = libc::SETVAL;

const _: () = assert!(SEM_UNDO == classic::SEM_UNDO && GETVAL == classic::GETVAL && SETVAL == classic::SETVAL);
const _: () = assert!(std::mem::size_of::<Sembuf>() == std::mem::size_of::<libc::sembuf>());

/// `shm_perm.mode` bit of a removed segment still attached somewhere
/// (`SHMSEG_REMOVED`, xnu `bsd/kern/sysv_shm.c`; `IPC_STAT` copies the mode as is).
const SHMSEG_REMOVED: u32 = 0x0400;

/// `struct shmid_ds` of `sys/shm.h` (`__shmid_ds_new`), packed to 4 bytes as
/// the header declares it: 76 bytes on a 64-bit system.
#[repr(C, packed(4))]
struct ShmidDs {
    shm_perm: libc::ipc_perm,
    shm_segsz: libc::size_t,
    shm_lpid: libc::pid_t,
    shm_cpid: libc::pid_t,
    shm_nattch: c_ushort,
    shm_atime: libc::time_t,
    shm_dtime: libc::time_t,
    shm_ctime: libc::time_t,
    shm_internal: *mut c_void,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<ShmidDs>() == 76);
const _: () = assert!(std::mem::size_of::<libc::ipc_perm>() == 24);

extern "C" {
    #[link_name = "shmctl"]
    fn shmctl_packed(shmid: c_int, cmd: c_int, buf: *mut ShmidDs) -> c_int;
}

pub fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions; returns this thread's errno slot.
    unsafe { libc::__error() }
}

pub fn semget(key: Key, nsems: c_int, flags: c_int) -> c_int {
    // SAFETY: semget takes only integers.
    unsafe { libc::semget(key, nsems, flags) }
}

/// # Safety
/// `ops` points to `n` valid sembufs.
pub unsafe fn semop(semid: c_int, ops: *mut Sembuf, n: usize) -> c_int {
    // SAFETY: Sembuf has libc::sembuf's layout (asserted above).
    unsafe { libc::semop(semid, ops as *mut libc::sembuf, n) }
}

/// # Safety
/// `arg` must be what `cmd` expects.
pub unsafe fn semctl(semid: c_int, num: c_int, cmd: c_int, arg: Semun) -> c_int {
    // SAFETY: per the caller; the union is passed by value, as C does.
    unsafe { libc::semctl(semid, num, cmd, arg) }
}

pub fn semop_timed(semid: c_int, ops: &mut [Sembuf], t: Duration) -> Result<(), Errno> {
    super::semop_polled(semid, ops, t)
}

pub fn shm_stat(shmid: c_int) -> Result<ShmStat, Errno> {
    // SAFETY: ShmidDs is plain old data.
    let mut ds: ShmidDs = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable shmid_ds of the header's layout.
    check(unsafe { shmctl_packed(shmid, libc::IPC_STAT, &mut ds) })?;
    // Copies out of the packed struct (no references to its fields).
    let perm = ds.shm_perm;
    let mode = perm.mode as u32;
    Ok(ShmStat {
        key: perm._key,
        size: { ds.shm_segsz },
        mode: mode & 0o777,
        removed: mode & SHMSEG_REMOVED != 0,
        nattch: { ds.shm_nattch } as u64,
        cpid: { ds.shm_cpid },
        uid: perm.uid,
    })
}

pub fn shm_list() -> Option<Vec<(c_int, ShmStat)>> {
    None
}
