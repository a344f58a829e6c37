//! NetBSD and OpenBSD: the libc crate has the shared memory calls and
//! `shmid_ds`, but no semaphore calls, `sembuf` or constants; they are
//! declared here from `sys/sem.h` (classic values). No `semtimedop`; no list
//! of segments here. `key_t` is 64 bits. The two differ in three facts,
//! marked below: `semctl`'s symbol, the "removed" bit, and the key's field.

use libc::c_int;

use super::ShmStat;

pub use super::classic::{GETVAL, SEM_UNDO, SETVAL};
pub(super) use super::semop_polled as semop_timed;
pub use libc::{shmctl, shmid_ds as ShmidDs, IPC_STAT};

/// `shmat` flag: attach read-only (`sys/shm.h` of both: 010000).
pub const SHM_RDONLY: libc::c_int = 0o10000;

// NetBSD: `semctl` is the `__semctl50` symbol since NetBSD 5.
#[cfg(target_os = "netbsd")]
declare_sem_calls!(semctl = "__semctl50");
#[cfg(target_os = "openbsd")]
declare_sem_calls!(semctl = "semctl");

/// `shm_perm.mode` bit of a removed segment still attached somewhere
/// (`SHMSEG_REMOVED`, `sys/kern/sysv_shm.c`: 0x0400 on NetBSD, 0x0200 on
/// OpenBSD; `IPC_STAT` copies the mode as is).
#[cfg(target_os = "netbsd")]
const SHMSEG_REMOVED: u32 = 0x0400;
#[cfg(target_os = "openbsd")]
const SHMSEG_REMOVED: u32 = 0x0200;

pub fn stat_of(ds: &ShmidDs) -> ShmStat {
    // The key's field: `_key` on NetBSD, `key` on OpenBSD.
    #[cfg(target_os = "netbsd")]
    let key = ds.shm_perm._key;
    #[cfg(target_os = "openbsd")]
    let key = ds.shm_perm.key;
    shm_stat_from!(ds, key: key, mode: ds.shm_perm.mode as u32, removed: SHMSEG_REMOVED)
}

pub fn shm_list() -> Option<Vec<(c_int, ShmStat)>> {
    None
}

pub fn attach_limit() -> Option<usize> {
    None
}
