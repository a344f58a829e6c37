//! Linux (glibc and musl): the libc crate declares everything but
//! `semtimedop`, which both C libraries provide.

use std::time::Duration;

use libc::{c_int, size_t};

use super::{check, Key, Sembuf, ShmStat, SHM_DEST_LINUX};

pub use libc::{semctl, semget, semop};
pub use libc::{shmctl, shmid_ds as ShmidDs, GETVAL, IPC_STAT, SEM_UNDO, SETVAL, SHM_RDONLY};

const _: () = assert!(std::mem::size_of::<Sembuf>() == std::mem::size_of::<libc::sembuf>());

extern "C" {
    fn semtimedop(semid: c_int, sops: *mut libc::sembuf, nsops: size_t, timeout: *const libc::timespec) -> c_int;
}

/// `semtimedop(2)`.
pub fn semop_timed(semid: c_int, ops: &mut [Sembuf], t: Duration) -> super::Result<()> {
    let ts = super::timespec(t);
    // SAFETY: ops points to ops.len() valid sembufs of libc's layout, and ts
    // lives for the whole call.
    check(unsafe { semtimedop(semid, ops.as_mut_ptr().cast(), ops.len(), &ts) }).map(drop)
}

pub fn stat_of(ds: &ShmidDs) -> ShmStat {
    shm_stat_from!(ds, key: perm_key(&ds.shm_perm), mode: super::perm_mode(ds.shm_perm.mode as u32), removed: SHM_DEST_LINUX)
}

#[cfg(not(target_env = "musl"))]
fn perm_key(p: &libc::ipc_perm) -> Key {
    p.__key
}

#[cfg(target_env = "musl")]
#[allow(deprecated)]
fn perm_key(p: &libc::ipc_perm) -> Key {
    p.__ipc_perm_key
}

pub fn shm_list() -> Option<Vec<(c_int, ShmStat)>> {
    super::parse_proc_shm(&std::fs::read_to_string("/proc/sysvipc/shm").ok()?)
}

pub fn attach_limit() -> Option<usize> {
    None
}
