//! Linux (glibc and musl): the libc crate declares everything but
//! `semtimedop`, which both C libraries provide.

use std::time::Duration;

use libc::{c_int, size_t};

use super::{check, Errno, Key, Sembuf, Semun, ShmStat};

pub const SEM_UNDO: c_int = libc::SEM_UNDO;
pub const GETVAL: c_int = libc::GETVAL;
pub const SETVAL: c_int = libc::SETVAL;

/// `shm_perm.mode` bit of a segment marked for removal (`SHM_DEST`, `linux/shm.h`).
const SHM_DEST: u32 = 0o1000;

const _: () = assert!(std::mem::size_of::<Sembuf>() == std::mem::size_of::<libc::sembuf>());

pub fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions; returns this thread's errno slot.
    unsafe { libc::__errno_location() }
}

pub fn semget(key: Key, nsems: c_int, flags: c_int) -> c_int {
    // SAFETY: semget takes only integers.
    unsafe { libc::semget(key, nsems, flags) }
}

/// # Safety
/// `ops` points to `n` valid sembufs.
pub unsafe fn semop(semid: c_int, ops: *mut Sembuf, n: usize) -> c_int {
    // SAFETY: Sembuf has libc::sembuf's layout (asserted above); the caller
    // guarantees the pointer.
    unsafe { libc::semop(semid, ops as *mut libc::sembuf, n) }
}

/// # Safety
/// `arg` must be what `cmd` expects.
pub unsafe fn semctl(semid: c_int, num: c_int, cmd: c_int, arg: Semun) -> c_int {
    // SAFETY: per the caller; the union is passed by value, as C does.
    unsafe { libc::semctl(semid, num, cmd, arg) }
}

extern "C" {
    fn semtimedop(semid: c_int, sops: *mut libc::sembuf, nsops: size_t, timeout: *const libc::timespec) -> c_int;
}

/// `semtimedop(2)`.
pub fn semop_timed(semid: c_int, ops: &mut [Sembuf], t: Duration) -> Result<(), Errno> {
    let ts = libc::timespec {
        tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as _,
    };
    // SAFETY: ops points to ops.len() valid sembufs of libc's layout, and ts
    // lives for the whole call.
    check(unsafe { semtimedop(semid, ops.as_mut_ptr() as *mut libc::sembuf, ops.len(), &ts) }).map(drop)
}

pub fn shm_stat(shmid: c_int) -> Result<ShmStat, Errno> {
    // SAFETY: shmid_ds is plain old data.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable shmid_ds.
    check(unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) })?;
    let mode = mode_bits(ds.shm_perm.mode as u32);
    Ok(ShmStat {
        key: perm_key(&ds.shm_perm),
        size: ds.shm_segsz as usize,
        mode: mode & 0o777,
        removed: mode & SHM_DEST != 0,
        nattch: ds.shm_nattch as u64,
        cpid: ds.shm_cpid,
        uid: ds.shm_perm.uid,
    })
}

/// `shm_perm.mode` as the kernel keeps it: 16 bits wide on some targets, 32
/// on others, and never more than 0o7777 (permissions, `SHM_DEST`,
/// `SHM_LOCKED`). qemu-user (7.2) fills a 16-bit field on every target but a
/// few: on a 64-bit big-endian one (s390x) the bits land in the upper half of
/// the 32-bit field. Bits only there are moved back, a no-op on a real kernel.
fn mode_bits(raw: u32) -> u32 {
    if raw & 0xffff == 0 {
        raw >> 16
    } else {
        raw
    }
}

#[cfg(test)]
#[test]
fn mode_bits_undoes_a_16_bit_write_into_the_upper_half() {
    assert_eq!(mode_bits(0o1640), 0o1640);
    assert_eq!(mode_bits(0o1640 << 16), 0o1640);
    assert_eq!(mode_bits(0), 0);
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
