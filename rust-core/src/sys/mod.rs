//! The raw SysV IPC calls, each wrapped once, and every difference between
//! operating systems.
//!
//! Everything above this module sees `Result<T, Errno>` ([`Result`]); the `-1`/`errno`
//! convention is turned into a `Result` here and nowhere else. Nothing above
//! it has a `cfg` for an OS, touches a libc struct whose layout differs
//! between systems, or uses a constant whose value does: the key type
//! ([`Key`]), the `sembuf` layout ([`Sembuf`]), `SEM_UNDO`/`IPC_NOWAIT`, the
//! `shmid_ds` fields ([`ShmStat`]) and the list
//! of segments ([`shm_list`]) are settled here, once.
//!
//! One file per system family holds what differs (`linux.rs`, `freebsd.rs`,
//! `apple.rs`, `netbsd_openbsd.rs`, `solarish.rs`); each declares, from
//! that system's headers, what the libc crate lacks for it. Only the Linux
//! ones are run by this project's tests; the others are type-checked (see
//! PORTABILITY in the README). Each provides the same items, and only those:
//!
//! - `semget`, `semop`, `semctl`: the raw calls, the libc crate's or declared
//!   with `declare_sem_calls!`; `semop` takes a `sembuf` of [`Sembuf`]'s layout;
//! - `SEM_UNDO`, `GETVAL`, `SETVAL`, `SHM_RDONLY`;
//! - `semop_timed`: `semtimedop(2)`, or [`semop_polled`] where there is none;
//! - `ShmidDs`, `shmctl`, `IPC_STAT`: the `shmid_ds` that `shmctl` fills and
//!   `stat_of`, which reads it with `shm_stat_from!`;
//! - `shm_list`: the system's list of segments, or `None`;
//! - `attach_limit`: how many segments one process may have attached, where
//!   the system limits it and says so (macOS), or `None`.

use std::fmt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use libc::{c_int, c_short, c_ushort, c_void};

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "macos",
    target_os = "ios",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "solaris",
    target_os = "illumos"
)))]
compile_error!("no SysV IPC layer for this system in rust-core/src/sys (see PORTABILITY in the README)");

/// Declares the semaphore calls for a system whose libc crate lacks them,
/// with `semctl` linked to the symbol `$semctl` names.
#[allow(unused_macros)] // by the systems whose libc crate has the calls
macro_rules! declare_sem_calls {
    (semctl = $semctl:literal) => {
        extern "C" {
            pub fn semget(key: $crate::sys::Key, nsems: libc::c_int, flags: libc::c_int) -> libc::c_int;
            pub fn semop(semid: libc::c_int, ops: *mut $crate::sys::Sembuf, nsops: libc::size_t) -> libc::c_int;
            #[link_name = $semctl]
            pub fn semctl(semid: libc::c_int, semnum: libc::c_int, cmd: libc::c_int, ...) -> libc::c_int;
        }
    };
}

/// A [`ShmStat`] from the `shmid_ds` `$ds`. The fields have the same names on
/// every system but the key's; what differs is passed: the key, the raw mode
/// word, and the mode bit of a segment marked for removal (0 where none is
/// ever seen). Fields are read by value, so a packed `shmid_ds` works too.
macro_rules! shm_stat_from {
    ($ds:ident, key: $key:expr, mode: $mode:expr, removed: $removed:expr) => {{
        let mode: u32 = $mode;
        $crate::sys::ShmStat {
            key: $key,
            size: $ds.shm_segsz as usize,
            mode: mode & 0o777,
            removed: mode & $removed != 0,
            nattch: $ds.shm_nattch as u64,
            cpid: $ds.shm_cpid,
            ctime: $ds.shm_ctime as i64,
            uid: $ds.shm_perm.uid,
        }
    }};
}

#[cfg_attr(target_os = "linux", path = "linux.rs")]
#[cfg_attr(target_os = "freebsd", path = "freebsd.rs")]
#[cfg_attr(any(target_os = "macos", target_os = "ios"), path = "apple.rs")]
#[cfg_attr(any(target_os = "netbsd", target_os = "openbsd"), path = "netbsd_openbsd.rs")]
#[cfg_attr(any(target_os = "solaris", target_os = "illumos"), path = "solarish.rs")]
mod os;

/// A SysV IPC key (`key_t`): 32 bits on Linux, macOS and Solaris, 64 on the
/// BSDs. A four-character string key is the native-endian `int32` of its
/// bytes on every system (doc/FORMAT.md, 7), widened to this type.
pub type Key = libc::key_t;

/// The key no other process can open by (`IPC_PRIVATE`).
pub const IPC_PRIVATE: Key = libc::IPC_PRIVATE;
/// `shmget`/`semget` flag: create when missing.
pub const IPC_CREAT: c_int = libc::IPC_CREAT;
/// `shmget`/`semget` flag: fail with `EEXIST` when it exists.
pub const IPC_EXCL: c_int = libc::IPC_EXCL;
/// [`Sembuf::sem_flg`] bit: fail with `EAGAIN` instead of waiting.
pub const IPC_NOWAIT: c_short = libc::IPC_NOWAIT as c_short;
/// [`Sembuf::sem_flg`] bit: the kernel undoes the operation when the process exits.
pub const SEM_UNDO: c_short = os::SEM_UNDO as c_short;

/// One semaphore operation (`struct sembuf`): the same three fields, in this
/// order, on every supported system.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sembuf {
    /// The semaphore's number in the set.
    pub sem_num: c_ushort,
    /// Added to the value; 0 waits for the value to be zero.
    pub sem_op: c_short,
    /// [`IPC_NOWAIT`], [`SEM_UNDO`].
    pub sem_flg: c_short,
}

/// The fourth argument of `semctl(2)` (`union semun`, which the program
/// declares itself). It is passed by value as the union, never as a bare
/// `int`: on a 64-bit big-endian system `val` is the high half of the
/// pointer-sized argument slot, where an `int` would land in the low half.
#[repr(C)]
#[derive(Clone, Copy)]
pub union Semun {
    /// For `SETVAL`.
    pub val: c_int,
    /// For `IPC_STAT`/`IPC_SET` (a `struct semid_ds *`).
    pub buf: *mut c_void,
    /// For `GETALL`/`SETALL`.
    pub array: *mut c_ushort,
}

impl Semun {
    /// The argument for commands that read none.
    fn none() -> Semun {
        Semun { buf: std::ptr::null_mut() }
    }
}

/// What `shmctl(2)` `IPC_STAT` says about a segment, in the same terms on
/// every system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmStat {
    /// Its key ([`IPC_PRIVATE`] once removed, on the systems that free it).
    pub key: Key,
    /// Its size in bytes.
    pub size: usize,
    /// Its permission bits (`& 0o777`).
    pub mode: u32,
    /// Marked for removal and still attached somewhere: `SHM_DEST` on Linux,
    /// `SHMSEG_REMOVED` on the BSDs. Never seen on macOS (xnu refuses
    /// `IPC_STAT` on a removed segment) nor on Solaris and illumos (a removed
    /// segment's id is gone at once).
    pub removed: bool,
    /// How many attachments it has.
    pub nattch: u64,
    /// The process that created it.
    pub cpid: i32,
    /// When it was created, or last changed by `IPC_SET` (seconds since the
    /// epoch).
    pub ctime: i64,
    /// Its owner.
    pub uid: u32,
}

/// An operating system error number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub c_int);

/// What every call of this layer returns: its value, or the system's error.
pub type Result<T> = std::result::Result<T, Errno>;

impl Errno {
    /// The calling thread's current `errno`.
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // std's text for an OS error is strerror(3)'s, followed by " (os error N)".
        let text = std::io::Error::from_raw_os_error(self.0).to_string();
        let text = match text.rfind(" (os error") {
            Some(i) => &text[..i],
            None => &text,
        };
        f.write_str(text)
    }
}

/// Turns a `-1`/`errno` return into a `Result`.
fn check(rc: c_int) -> Result<c_int> {
    if rc == -1 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

/// Calls `f` again while it fails with `EINTR`.
fn retry_eintr<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    loop {
        match f() {
            Err(Errno(libc::EINTR)) => continue,
            other => return other,
        }
    }
}

/// `semget(2)`: the id of the semaphore set at `key` with `nsems` semaphores.
///
/// `ENOENT`: no set and no `IPC_CREAT`; `EEXIST`: `IPC_EXCL` and it exists;
/// `EACCES`: the mode bits in `flags` ask for more than the set grants.
pub fn semget(key: Key, nsems: c_int, flags: c_int) -> Result<c_int> {
    // SAFETY: semget takes only integers.
    check(unsafe { os::semget(key, nsems, flags) })
}

/// One `semop(2)` over `ops`, atomically; with a timeout, bounded by it.
///
/// On Linux the timeout is `semtimedop(2)`'s: the call waits in the kernel's
/// queue and is woken when the operations can be done, or when it expires.
/// Other systems have no `semtimedop` (Solaris and illumos have one, unused
/// here because this project cannot run it): there the operations are tried
/// with `IPC_NOWAIT`, and after each refusal the caller sleeps 1 ms, then 2,
/// 4, ... at most 50 ms, never past the deadline, and tries once more at the
/// deadline. So a timed wait gives up no earlier than the timeout (and
/// within about one try after it), and it sees a freed lock up to 50 ms late
/// (more on a loaded system); unlike a kernel wait it holds no place in the
/// queue, so under steady contention blocking waiters may keep overtaking it.
///
/// `EAGAIN`: `IPC_NOWAIT` was given and the call would block, or the timeout
/// expired; `EINVAL`/`EIDRM`: the set is gone; `EINTR`: a signal arrived
/// (never restarted here, so that the caller can run the signal's handler).
pub fn semop(semid: c_int, ops: &mut [Sembuf], timeout: Option<Duration>) -> Result<()> {
    match timeout {
        // SAFETY: ops points to ops.len() valid sembuf structures (the
        // system's layout: each os file asserts or declares it).
        None => check(unsafe { os::semop(semid, ops.as_mut_ptr().cast(), ops.len()) }).map(drop),
        Some(t) => os::semop_timed(semid, ops, t),
    }
}

/// [`semop`], restarted after `EINTR`: for waits that must finish.
pub fn semop_restarting(semid: c_int, ops: &mut [Sembuf]) -> Result<()> {
    retry_eintr(|| semop(semid, ops, None))
}

/// Shortest and longest sleep between the tries of [`semop_polled`].
const POLL_FIRST: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(50);

/// A timed `semop` from non-blocking tries and sleeps (see [`semop`]), for
/// systems without `semtimedop`.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn semop_polled(semid: c_int, ops: &mut [Sembuf], timeout: Duration) -> Result<()> {
    let deadline = Instant::now().checked_add(timeout);
    let saved: Vec<c_short> = ops.iter().map(|o| o.sem_flg).collect();
    for o in ops.iter_mut() {
        o.sem_flg |= IPC_NOWAIT;
    }
    let mut pause = POLL_FIRST;
    let res = loop {
        // SAFETY: ops points to ops.len() valid sembuf structures.
        match check(unsafe { os::semop(semid, ops.as_mut_ptr().cast(), ops.len()) }) {
            Err(Errno(libc::EAGAIN)) => {}
            other => break other.map(drop),
        }
        let now = Instant::now();
        let nap = match deadline {
            Some(d) if now >= d => break Err(Errno(libc::EAGAIN)),
            Some(d) => pause.min(d - now),
            None => pause,
        };
        if let Err(e) = sleep(nap) {
            break Err(e);
        }
        pause = (pause * 2).min(POLL_MAX);
    };
    for (o, f) in ops.iter_mut().zip(saved) {
        o.sem_flg = f;
    }
    res
}

/// `nanosleep(2)` once; `EINTR` when a signal cut it short.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn sleep(d: Duration) -> Result<()> {
    let ts = timespec(d);
    // SAFETY: ts is a valid timespec; the remainder is not wanted.
    check(unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) }).map(drop)
}

/// `d` as a `timespec`, the seconds capped at `time_t`'s largest.
fn timespec(d: Duration) -> libc::timespec {
    libc::timespec { tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t, tv_nsec: d.subsec_nanos() as _ }
}

/// `semctl(2)` with a `union semun` argument.
fn semctl(semid: c_int, num: c_int, cmd: c_int, arg: Semun) -> Result<c_int> {
    // SAFETY: semctl takes integers and a union semun by value; the commands
    // used here (GETVAL, SETVAL, IPC_RMID) read at most its `val`.
    check(unsafe { os::semctl(semid, num, cmd, arg) })
}

/// `semctl(2)` `GETVAL`: the value of semaphore `num`.
pub fn sem_getval(semid: c_int, num: c_int) -> Result<c_int> {
    semctl(semid, num, os::GETVAL, Semun::none())
}

/// `semctl(2)` `SETVAL`: sets semaphore `num` to `val`.
pub fn sem_setval(semid: c_int, num: c_int, val: c_int) -> Result<()> {
    semctl(semid, num, os::SETVAL, Semun { val }).map(drop)
}

/// `semctl(2)` `IPC_RMID`: removes the semaphore set; sleepers get `EIDRM`.
pub fn sem_remove(semid: c_int) -> Result<()> {
    semctl(semid, 0, libc::IPC_RMID, Semun::none()).map(drop)
}

/// `shmget(2)`: the id of the segment at `key`.
///
/// `ENOENT`: none and no `IPC_CREAT`; `EEXIST`: `IPC_EXCL` and it exists;
/// `EINVAL`: `size` is out of the system's limits or larger than the existing
/// segment; `ENOSPC`/`ENOMEM`: the system is out of segments or memory.
pub fn shmget(key: Key, size: usize, flags: c_int) -> Result<c_int> {
    // SAFETY: shmget takes only integers.
    check(unsafe { libc::shmget(key, size, flags) })
}

/// `shmctl(2)` `IPC_STAT`.
///
/// `EINVAL`/`EIDRM`: no such segment (on Solaris and illumos also one
/// already removed); `EACCES`: not readable by this process.
pub fn shm_stat(shmid: c_int) -> Result<ShmStat> {
    let mut ds = std::mem::MaybeUninit::<os::ShmidDs>::zeroed();
    // SAFETY: ds has room for the shmid_ds that this system's shmctl writes
    // (os::ShmidDs is declared as that call's buffer type).
    check(unsafe { os::shmctl(shmid, os::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: zeroed, then filled by the kernel; shmid_ds is plain old data.
    Ok(os::stat_of(&unsafe { ds.assume_init() }))
}

/// `shmctl(2)` `IPC_RMID`: marks the segment for removal. It goes away when
/// the last process detaches; its key is freed at once.
pub fn shm_remove(shmid: c_int) -> Result<()> {
    // SAFETY: IPC_RMID does not read the buffer argument.
    check(unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// Every SysV segment this process may see, as `(shmid, what IPC_STAT says)`.
///
/// From `/proc/sysvipc/shm` on Linux, the `kern.ipc.shmsegs` sysctl on
/// FreeBSD, and `shmids(2)` on Solaris and illumos. `None` where there is no
/// such list (NetBSD, OpenBSD and macOS here, or a Linux without `/proc`):
/// then what needs it (the sweep for segments orphaned by a killed writer)
/// does without.
pub fn shm_list() -> Option<Vec<(c_int, ShmStat)>> {
    os::shm_list()
}

/// How many segments one process may have attached at once, where the
/// system has such a limit and can be asked (macOS's `kern.sysv.shmseg`, 8
/// by default). `None` elsewhere: Linux and Solaris have no per-process
/// limit, and where the BSDs have one (`kern.ipc.shmseg`, 128 by default)
/// an attachment refused with `EMFILE` tells the caller instead.
pub fn attach_limit() -> Option<usize> {
    os::attach_limit()
}

/// True unless `kill(pid, 0)` says there is no such process (so also true
/// for another user's process).
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || Errno::last().0 != libc::ESRCH
}

/// A segment attached with `shmat(2)`, and detached with `shmdt(2)` when
/// dropped, and only then: the mapping lives exactly as long as this value.
#[derive(Debug)]
pub struct Attachment {
    addr: NonNull<u8>,
    len: usize,
    shmid: c_int,
}

// SAFETY: an attachment is a mapping owned by this value; moving it to another
// thread moves that ownership. All access goes through raw pointers.
unsafe impl Send for Attachment {}

/// How a segment is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-write.
    ReadWrite,
    /// Read only (`SHM_RDONLY`): for looking without the right to write.
    ReadOnly,
}

impl Attachment {
    /// `shmat(2)` of a segment whose size the caller already knows.
    ///
    /// `EINVAL`/`EIDRM`: no such segment; `EACCES`: not permitted; `EMFILE`:
    /// this process has as many segments attached as the system allows it
    /// (macOS, the BSDs).
    pub fn attach_sized(shmid: c_int, len: usize, access: Access) -> Result<Attachment> {
        let flags = match access {
            Access::ReadWrite => 0,
            Access::ReadOnly => os::SHM_RDONLY,
        };
        // SAFETY: a null address lets the kernel choose where to map.
        let p = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
        if p as isize == -1 {
            return Err(Errno::last());
        }
        let addr = NonNull::new(p as *mut u8).ok_or(Errno(libc::EFAULT))?;
        Ok(Attachment { addr, len, shmid })
    }

    /// The segment's id.
    pub fn shmid(&self) -> c_int {
        self.shmid
    }

    /// The mapped length in bytes.
    pub fn size(&self) -> usize {
        self.len
    }

    /// The first byte of the mapping, valid for [`Attachment::size`] bytes
    /// while this value lives (for writes only when attached read-write).
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // The result is ignored: shmdt fails only (EINVAL) for an address that
        // is not the start of an attachment, which this one is, and a drop
        // could not act on an error anyway.
        // SAFETY: addr is what shmat returned for this value, which owns the
        // mapping; drop runs once, and its pointers are used only while it is
        // borrowed (`Segment`), never after.
        let _ = unsafe { libc::shmdt(self.addr.as_ptr() as *const c_void) };
    }
}

/// The mode bits of an `ipc_perm.mode` that `IPC_STAT` filled on Linux: 16
/// bits wide on some targets, 32 on others, never more than 0o7777
/// (permissions, `SHM_DEST`, `SHM_LOCKED`). qemu-user (7.2) fills a 16-bit
/// field on every target but a few: on a 64-bit big-endian one (s390x) the
/// bits land in the upper half of the 32-bit field. Bits only there are
/// moved back, a no-op on a real kernel.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn perm_mode(raw: u32) -> u32 {
    if raw & 0xffff == 0 {
        raw >> 16
    } else {
        raw
    }
}

/// Linux's `SHM_DEST` (`sys/shm.h`): the `perms` bit of a segment marked for removal.
const SHM_DEST_LINUX: u32 = 0o1000;

/// A table of Linux's `/proc/sysvipc` (`shm`, `sem`, `msg`): a header line
/// naming the columns, then one line of fields per object. Its parser lives
/// here, not in `linux.rs`, so that its test runs everywhere.
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub struct ProcTable<'a> {
    columns: Vec<&'a str>,
    rows: Vec<Vec<&'a str>>,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl<'a> ProcTable<'a> {
    /// Splits `text` (a table's whole contents) into its header and rows;
    /// `None` for an empty text.
    pub fn parse(text: &'a str) -> Option<ProcTable<'a>> {
        let mut lines = text.lines();
        let columns = lines.next()?.split_whitespace().collect();
        let rows = lines.map(|l| l.split_whitespace().collect::<Vec<_>>()).filter(|f| !f.is_empty()).collect();
        Some(ProcTable { columns, rows })
    }

    /// The position of the column the header calls `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| *c == name)
    }

    /// The rows, each its fields in the header's order (a short row has
    /// fewer).
    pub fn rows(&self) -> &[Vec<&'a str>] {
        &self.rows
    }
}

/// The segments of Linux's `/proc/sysvipc/shm`, its columns found by name;
/// `None` when a column it needs is missing. A row whose fields do not parse
/// is passed over.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_proc_shm(text: &str) -> Option<Vec<(c_int, ShmStat)>> {
    let table = ProcTable::parse(text)?;
    let col = |name: &str| table.column(name);
    let (c_key, c_id, c_perms, c_size, c_cpid, c_nattch, c_uid, c_ctime) = (
        col("key")?,
        col("shmid")?,
        col("perms")?,
        col("size")?,
        col("cpid")?,
        col("nattch")?,
        col("uid")?,
        col("ctime")?,
    );
    let mut out = Vec::new();
    for f in table.rows() {
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        let (Ok(key), Ok(id), Ok(perms), Ok(size), Ok(cpid), Ok(nattch), Ok(uid), Ok(ctime)) = (
            field(c_key).parse::<i64>(),
            field(c_id).parse::<c_int>(),
            u32::from_str_radix(field(c_perms), 8),
            field(c_size).parse::<usize>(),
            field(c_cpid).parse::<i32>(),
            field(c_nattch).parse::<u64>(),
            field(c_uid).parse::<u32>(),
            field(c_ctime).parse::<i64>(),
        ) else {
            continue;
        };
        let st = ShmStat {
            key: key as Key,
            size,
            mode: perms & 0o777,
            removed: perms & SHM_DEST_LINUX != 0,
            nattch,
            cpid,
            ctime,
            uid,
        };
        out.push((id, st));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of};

    #[test]
    fn semun_is_pointer_sized_with_val_first() {
        assert_eq!(size_of::<Semun>(), size_of::<*mut c_void>());
        assert_eq!(align_of::<Semun>(), align_of::<*mut c_void>());
        let u = Semun { val: 0x0102_0304 };
        // SAFETY: reading the first 4 bytes of an initialised union.
        let first = unsafe { *(&u as *const Semun as *const c_int) };
        assert_eq!(first, 0x0102_0304, "val sits at offset 0, whatever the byte order");
    }

    #[test]
    fn perm_mode_undoes_a_16_bit_write_into_the_upper_half() {
        assert_eq!(perm_mode(0o1640), 0o1640);
        assert_eq!(perm_mode(0o1640 << 16), 0o1640);
        assert_eq!(perm_mode(0), 0);
    }

    #[test]
    fn proc_parser_reads_the_columns_by_name() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime\n\
                    \x20        0      32769  1600                  4096  4242  4242      1  1000  1000  1000  1000 1796191195 1796191195 1796191190\n\
                    \x20      1971      32770   644                 65536    17     0      0     0     0     0     0          0          0 1796191191\n";
        let l = parse_proc_shm(text).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].0, 32769);
        assert_eq!(
            l[0].1,
            ShmStat {
                key: 0,
                size: 4096,
                mode: 0o600,
                removed: true,
                nattch: 1,
                cpid: 4242,
                ctime: 1796191190,
                uid: 1000
            }
        );
        assert_eq!(l[1].1.key, 1971);
        assert!(!l[1].1.removed);
        assert_eq!(l[1].1.mode, 0o644);
        assert!(parse_proc_shm("no such columns\n").is_none());
    }

    /// The declarations this module uses on Linux against the libc crate's.
    #[cfg(target_os = "linux")]
    #[test]
    fn linux_declarations_match_libc() {
        macro_rules! offset_of {
            ($t:ty, $f:ident) => {{
                let u = std::mem::MaybeUninit::<$t>::uninit();
                let base = u.as_ptr();
                // SAFETY: only the field's address is taken, nothing is read.
                unsafe { std::ptr::addr_of!((*base).$f) as usize - base as usize }
            }};
        }
        assert_eq!(size_of::<Sembuf>(), size_of::<libc::sembuf>());
        assert_eq!(align_of::<Sembuf>(), align_of::<libc::sembuf>());
        assert_eq!(offset_of!(Sembuf, sem_num), offset_of!(libc::sembuf, sem_num));
        assert_eq!(offset_of!(Sembuf, sem_op), offset_of!(libc::sembuf, sem_op));
        assert_eq!(offset_of!(Sembuf, sem_flg), offset_of!(libc::sembuf, sem_flg));
        assert_eq!(SEM_UNDO as c_int, libc::SEM_UNDO);
        assert_eq!(IPC_NOWAIT as c_int, libc::IPC_NOWAIT);
        assert_eq!(os::GETVAL, libc::GETVAL);
        assert_eq!(os::SETVAL, libc::SETVAL);
        assert_eq!(os::SHM_RDONLY, 0o10000, "the classic value the BSDs' files declare too");
        assert_eq!(size_of::<Key>(), 4);
    }

    /// The values declared for the systems whose libc lacks them are those of
    /// the classic SysV headers; where the libc crate does have them (macOS),
    /// `apple.rs` asserts the same at compile time.
    #[test]
    fn classic_sysv_values() {
        assert_eq!(classic::SEM_UNDO, 0o10000);
        assert_eq!(classic::GETVAL, 5);
        assert_eq!(classic::SETVAL, 8);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn setval_reads_back_and_stat_and_list_agree() {
        // Removed on every path, a failed assertion included.
        struct Cleanup(Vec<(bool, c_int)>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                for &(is_sem, id) in &self.0 {
                    let _ = if is_sem { sem_remove(id) } else { shm_remove(id) };
                }
            }
        }
        let mut cleanup = Cleanup(Vec::new());
        let semid = semget(IPC_PRIVATE, 3, 0o600 | IPC_CREAT).unwrap();
        cleanup.0.push((true, semid));
        for v in [1, 0, 7, 1] {
            sem_setval(semid, 0, v).unwrap();
            assert_eq!(sem_getval(semid, 0).unwrap(), v, "SETVAL {v} read back by GETVAL");
        }
        assert_eq!(sem_getval(semid, 2).unwrap(), 0);
        // A timed semop that cannot succeed gives up with EAGAIN, both ways.
        let mut wait_zero = [Sembuf { sem_num: 0, sem_op: 0, sem_flg: 0 }];
        assert_eq!(semop(semid, &mut wait_zero, Some(Duration::from_millis(5))), Err(Errno(libc::EAGAIN)));
        assert_eq!(semop_polled(semid, &mut wait_zero, Duration::from_millis(5)), Err(Errno(libc::EAGAIN)));
        assert_eq!(wait_zero[0].sem_flg, 0, "flags put back");
        let mut take = [Sembuf { sem_num: 0, sem_op: -1, sem_flg: SEM_UNDO }];
        semop_polled(semid, &mut take, Duration::from_millis(5)).unwrap();
        assert_eq!(sem_getval(semid, 0).unwrap(), 0);
        sem_remove(semid).unwrap();

        let shmid = shmget(IPC_PRIVATE, 8192, 0o640 | IPC_CREAT).unwrap();
        cleanup.0.push((false, shmid));
        let att = Attachment::attach_sized(shmid, 8192, Access::ReadWrite).unwrap();
        let st = shm_stat(shmid).unwrap();
        assert_eq!((st.key, st.size, st.mode, st.removed, st.nattch), (IPC_PRIVATE, 8192, 0o640, false, 1));
        assert_eq!(st.cpid as u32, std::process::id());
        // SAFETY: getuid has no preconditions.
        assert_eq!(st.uid, unsafe { libc::getuid() });
        // Without /proc/sysvipc (hidden, as other systems have none) there is
        // no list to compare with.
        match shm_list() {
            Some(list) => {
                assert_eq!(list.into_iter().find(|(id, _)| *id == shmid).map(|(_, s)| s), Some(st));
            }
            None => eprintln!("skipped: no /proc/sysvipc/shm here, so no list of segments to compare with"),
        }
        shm_remove(shmid).unwrap();
        assert!(shm_stat(shmid).unwrap().removed, "still attached: marked, not gone");
        drop(att);
        assert!(shm_stat(shmid).is_err());
        assert!(process_alive(std::process::id() as i32));
    }
}

/// The semaphore constants of the classic SysV headers, which the BSDs,
/// macOS, Solaris and illumos share (`sys/sem.h`: `SEM_UNDO` 010000,
/// `GETVAL` 5, `SETVAL` 8); Linux has its own.
// Used on Linux by the test only, on macOS by compile-time assertions only.
#[allow(dead_code)]
mod classic {
    use libc::c_int;
    pub const SEM_UNDO: c_int = 0o10000;
    pub const GETVAL: c_int = 5;
    pub const SETVAL: c_int = 8;
}
