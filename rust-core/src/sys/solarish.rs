//! Solaris and illumos: the libc crate has the shared memory calls and
//! `shmid_ds`, but no semaphore calls, `sembuf` or constants, and no
//! `IPC_STAT` (it spells it `IPC_SEAT`); they are declared here from
//! `sys/sem.h` and `sys/ipc.h` (classic semaphore values; `IPC_STAT` is 12
//! there, not Linux's 2). `semtimedop(2)` exists there but is not used: this
//! project cannot run it. Segments are listed with `shmids(2)`. A removed
//! segment's id is gone at once (`IPC_STAT` and `shmat` fail on it), so no
//! "removed" flag is ever seen.

use libc::{c_int, c_uint};

use super::{check, ShmStat};

pub use super::classic::{GETVAL, SEM_UNDO, SETVAL};
pub(super) use super::semop_polled as semop_timed;
pub use libc::{shmctl, shmid_ds as ShmidDs, SHM_RDONLY};

declare_sem_calls!(semctl = "semctl");

/// `shmctl` command `IPC_STAT` (`sys/ipc.h`).
pub const IPC_STAT: c_int = 12;
const _: () = assert!(libc::IPC_RMID == 10 && libc::IPC_SET == 11);

extern "C" {
    /// `shmids(2)`: up to `nids` ids into `buf`, and how many exist in `*pnids`.
    fn shmids(buf: *mut c_int, nids: c_uint, pnids: *mut c_uint) -> c_int;
}

pub fn stat_of(ds: &ShmidDs) -> ShmStat {
    shm_stat_from!(ds, key: ds.shm_perm.key, mode: ds.shm_perm.mode as u32, removed: 0)
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
    Some(ids.into_iter().filter_map(|id| super::shm_stat(id).ok().map(|st| (id, st))).collect())
}

pub fn attach_limit() -> Option<usize> {
    None
}
