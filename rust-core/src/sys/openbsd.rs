//! OpenBSD: the libc crate has the shared memory calls and `shmid_ds`, but no
//! semaphore calls, `sembuf` or constants; they are declared here from
//! `sys/sem.h` (classic values). No `semtimedop`; no list of segments here.
//! `key_t` is 64 bits.

use libc::c_int;

use super::ShmStat;

pub use super::classic::{GETVAL, SEM_UNDO, SETVAL};
pub(super) use super::semop_polled as semop_timed;
pub use libc::{__errno as errno_location, shmctl, shmid_ds as ShmidDs, IPC_STAT};

declare_sem_calls!(semctl = "semctl");

/// `shm_perm.mode` bit of a removed segment still attached somewhere
/// (`SHMSEG_REMOVED`, 0x0200 on OpenBSD, `sys/kern/sysv_shm.c`; `IPC_STAT`
/// copies the mode as is).
const SHMSEG_REMOVED: u32 = 0x0200;

pub fn stat_of(ds: &ShmidDs) -> ShmStat {
    shm_stat_from!(ds, key: ds.shm_perm.key, mode: ds.shm_perm.mode as u32, removed: SHMSEG_REMOVED)
}

pub fn shm_list() -> Option<Vec<(c_int, ShmStat)>> {
    None
}
