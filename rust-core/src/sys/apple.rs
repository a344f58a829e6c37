//! macOS: the libc crate has the calls and the semaphore constants, which
//! are the classic ones (asserted below). Its `shmid_ds` misses the header's
//! `#pragma pack(4)`, so the one used here is declared from `sys/shm.h`. No
//! `semtimedop`; no list of segments (`ipcs` asks a private sysctl protocol).

use libc::{c_int, c_ushort, c_void};

use super::{classic, Sembuf, ShmStat};

pub(super) use super::semop_polled as semop_timed;
pub use libc::{semctl, semget, semop, GETVAL, IPC_STAT, SEM_UNDO, SETVAL, SHM_RDONLY};

const _: () = assert!(SEM_UNDO == classic::SEM_UNDO && GETVAL == classic::GETVAL && SETVAL == classic::SETVAL);
const _: () = assert!(std::mem::size_of::<Sembuf>() == std::mem::size_of::<libc::sembuf>());

/// `shm_perm.mode` bit of a removed segment still attached somewhere
/// (`SHMSEG_REMOVED`, xnu `bsd/kern/sysv_shm.c`; `IPC_STAT` copies the mode as is).
const SHMSEG_REMOVED: u32 = 0x0400;

/// `struct shmid_ds` of `sys/shm.h` (`__shmid_ds_new`), packed to 4 bytes as
/// the header declares it: 76 bytes on a 64-bit system.
#[repr(C, packed(4))]
pub struct ShmidDs {
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
    /// `shmctl(2)` with the header's layout (libc's declaration takes its own).
    pub fn shmctl(shmid: c_int, cmd: c_int, buf: *mut ShmidDs) -> c_int;
}

pub fn stat_of(ds: &ShmidDs) -> ShmStat {
    shm_stat_from!(ds, key: { ds.shm_perm }._key, mode: { ds.shm_perm }.mode as u32, removed: SHMSEG_REMOVED)
}

pub fn shm_list() -> Option<Vec<(c_int, ShmStat)>> {
    None
}

/// `kern.sysv.shmseg`: segments one process may have attached (8 by
/// default). The kernel keeps it as a 64-bit or 32-bit integer depending on
/// the release; the length the sysctl returns says which.
pub fn attach_limit() -> Option<usize> {
    let mut buf = [0u8; 8];
    let mut len: libc::size_t = buf.len();
    let name = b"kern.sysv.shmseg\0";
    // SAFETY: name is NUL-terminated; buf and len describe a writable buffer
    // of len bytes; no new value is set.
    let rc =
        unsafe { libc::sysctlbyname(name.as_ptr().cast(), buf.as_mut_ptr().cast(), &mut len, std::ptr::null_mut(), 0) };
    let n = match (rc, len) {
        (0, 4) => i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as i64,
        (0, 8) => i64::from_ne_bytes(buf),
        _ => return None,
    };
    usize::try_from(n).ok().filter(|&n| n > 0)
}
