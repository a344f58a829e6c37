//! FreeBSD: the libc crate has the calls, `sembuf` and `shmid_ds`, but not
//! the `semctl` commands or `SEM_UNDO` (classic values, `sys/sem.h`). No
//! `semtimedop`. `key_t` is 64 bits.

use libc::{c_int, c_void};

use super::{check, Sembuf, ShmStat};

pub use super::classic::{GETVAL, SEM_UNDO, SETVAL};
pub(super) use super::semop_polled as semop_timed;
pub use libc::{semctl, semget, semop};
pub use libc::{shmctl, shmid_ds as ShmidDs, IPC_STAT, SHM_RDONLY};

/// `shm_perm.mode` bits the kernel keeps beside the permissions
/// (`sys/kern/sysv_shm.c`; `IPC_STAT` and the sysctl copy the mode as is).
const SHMSEG_REMOVED: u32 = 0x0400;
const SHMSEG_ALLOCATED: u32 = 0x0800;

const _: () = assert!(std::mem::size_of::<Sembuf>() == std::mem::size_of::<libc::sembuf>());

pub fn stat_of(ds: &ShmidDs) -> ShmStat {
    shm_stat_from!(ds, key: ds.shm_perm.key, mode: ds.shm_perm.mode as u32, removed: SHMSEG_REMOVED)
}

/// One element of `kern.ipc.shmsegs` (`struct shmid_kernel`, `sys/shm.h`
/// with `_WANT_SYSVSHM_INTERNALS`): the `shmid_ds`, then three kernel
/// pointers (object, MAC label, creator's credentials).
#[repr(C)]
struct ShmidKernel {
    u: libc::shmid_ds,
    _object: *mut c_void,
    _label: *mut c_void,
    _cred: *mut c_void,
}

/// The `kern.ipc.shmsegs` sysctl, as `ipcs(1)` reads it: one `shmid_kernel`
/// per slot; a slot in use has `SHMSEG_ALLOCATED`, and its id is
/// `IXSEQ_TO_IPCID` (`sys/ipc.h`): the sequence number above the slot index.
pub fn shm_list() -> Option<Vec<(c_int, ShmStat)>> {
    let name = b"kern.ipc.shmsegs\0".as_ptr() as *const libc::c_char;
    let mut len: libc::size_t = 0;
    // SAFETY: a null buffer asks for the size only.
    check(unsafe { libc::sysctlbyname(name, std::ptr::null_mut(), &mut len, std::ptr::null(), 0) }).ok()?;
    let stride = std::mem::size_of::<ShmidKernel>();
    // Room for slots added meanwhile.
    let mut buf: Vec<ShmidKernel> = Vec::with_capacity(len / stride + 16);
    let mut len = buf.capacity() * stride;
    // SAFETY: buf has room for len bytes; the kernel writes at most that.
    check(unsafe { libc::sysctlbyname(name, buf.as_mut_ptr() as *mut c_void, &mut len, std::ptr::null(), 0) }).ok()?;
    if len % stride != 0 {
        return None; // not the layout declared here: no list rather than a wrong one
    }
    // SAFETY: the kernel filled len / stride elements, plain old data.
    unsafe { buf.set_len(len / stride) };
    let mut out = Vec::new();
    for (ix, k) in buf.iter().enumerate() {
        let p = &k.u.shm_perm;
        if (p.mode as u32) & SHMSEG_ALLOCATED == 0 {
            continue;
        }
        let id = ((p.seq as c_int) << 16) | (ix as c_int & 0xffff);
        out.push((id, stat_of(&k.u)));
    }
    Some(out)
}

pub fn attach_limit() -> Option<usize> {
    None
}
