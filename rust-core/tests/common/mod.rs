//! Helpers shared by the integration tests: a PRNG, keys of their own, the
//! tests' own segment count, and a look at the SysV objects behind a share
//! (header words, the chain walk, the system's list of segments).
//!
//! They stand on the crate's syscall layer (`internals::sys`) and its
//! segment type (`internals::Segment`), so the raw calls and the header
//! layout are known in one place. What the crate has no call for stays
//! here: a semaphore set's mode (its `semid_ds` and how the mode reads differ
//! per system), this process's start time, and whether this process has a
//! segment mapped. A test removes only what it made: objects whose ids it
//! got back, or reached from them (a chain from its head); [`free_key`]
//! gives keys at which nothing existed.
//!
//! Not every system gives what a check needs: a list of segments
//! (`sys::shm_list`: none on NetBSD, OpenBSD and macOS, nor on a Linux
//! without /proc/sysvipc), a semaphore set's `IPC_STAT` in the libc crate
//! (none for NetBSD, OpenBSD, Solaris and illumos), /proc/sysvipc/sem and
//! /proc/self/maps (Linux only). There the helpers say so on stderr, once
//! each ([`skipped`]), and return `None`; the check is skipped, never taken
//! as passed. Nothing here panics inside a `Drop`.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

use sharelite::internals::sys::{self, Errno, Key, ShmStat, IPC_CREAT, IPC_PRIVATE};
use sharelite::internals::{Segment, HEADER};
// ----- a small PRNG -------------------------------------------------------------------

/// A small xorshift generator: reproducible from its seed, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo) as u64 + 1)) as i64
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ----- the segment count ------------------------------------------------------------

/// How many segments (head included) a value of `len` bytes takes in
/// segments of `seg_size` bytes: the crate's count (pinned to literal
/// numbers by its unit test); the tests check that real chains have it.
pub use sharelite::internals::segments_for as segs;

// ----- segments and semaphore sets, through the crate's sys layer --------------------

/// The segment at `key` (`shmget(key, 0, 0)`).
pub fn shm_at_key(key: Key) -> Result<i32, Errno> {
    sys::shmget(key, 0, 0)
}

/// The semaphore set at `key` (`semget(key, 0, 0)`).
pub fn sem_at_key(key: Key) -> Result<i32, Errno> {
    sys::semget(key, 0, 0)
}

/// A new IPC_PRIVATE segment of `size` bytes, mode 0600: the caller owns it.
pub fn shm_create_private(size: usize) -> i32 {
    sys::shmget(IPC_PRIVATE, size, 0o600 | IPC_CREAT).unwrap_or_else(|e| panic!("shmget(IPC_PRIVATE, {size}): {e}"))
}

/// `IPC_STAT` of segment `id`, or None when there is none.
pub fn shm_stat(id: i32) -> Option<ShmStat> {
    sys::shm_stat(id).ok()
}

/// `IPC_RMID` of segment `id` (one the caller made or reached from its own).
pub fn shm_rmid(id: i32) {
    let _ = sys::shm_remove(id);
}

/// `IPC_RMID` of semaphore set `semid` (one the caller made).
pub fn sem_rmid(semid: i32) {
    let _ = sys::sem_remove(semid);
}

/// `GETVAL` of semaphore `n`: its value, or -1 when it cannot be read.
pub fn sem_getval(semid: i32, n: i32) -> i32 {
    sys::sem_getval(semid, n).unwrap_or(-1)
}

pub fn sem_exists(semid: i32) -> bool {
    sys::sem_getval(semid, 0).is_ok()
}

/// The value of semaphore `n`; panics when it cannot be read.
pub fn sem_val(semid: i32, n: i32) -> i32 {
    sys::sem_getval(semid, n).unwrap_or_else(|e| panic!("GETVAL failed: {e}"))
}

/// Writes `msg` on stderr as it is, past the test harness's capture (which
/// takes only `eprintln!`), so that a skip shows in `cargo test`'s output.
pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Says once per process, on stderr, that the checks needing `what` are
/// skipped here and why.
pub fn skipped(what: &'static str, why: &str) {
    static SAID: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.contains(&what) {
        said.push(what);
        note(&format!("skipped here: the checks that need {what} ({why})"));
    }
}

/// The permission bits of semaphore set `semid` (`semctl` `IPC_STAT`), or
/// None where the libc crate declares no `semid_ds`, `semctl` or `IPC_STAT`
/// for this system (NetBSD, OpenBSD, Solaris, illumos).
///
/// The crate's sys layer has no such call: `semid_ds` differs per system.
/// The mode is read as the sys layer reads a segment's (`sys::perm_mode`:
/// qemu-user's 16-bit write on s390x undone; a no-op elsewhere).
#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "macos", target_os = "ios"))]
pub fn sem_mode(semid: i32) -> Option<u32> {
    // SAFETY: semid_ds is plain old data, so all zeroes is a valid value;
    // the fourth argument is a union semun whose `buf` points to it, valid
    // and writable for IPC_STAT to fill.
    let (rc, ds) = unsafe {
        let mut ds: libc::semid_ds = std::mem::zeroed();
        let arg = sys::Semun { buf: &mut ds as *mut libc::semid_ds as *mut libc::c_void };
        (libc::semctl(semid, 0, libc::IPC_STAT, arg), ds)
    };
    assert_eq!(rc, 0, "semctl IPC_STAT: {}", Errno::last());
    // (By value: macOS's semid_ds is packed.)
    let raw = ds.sem_perm.mode;
    Some(sys::perm_mode(raw as u32) & 0o777)
}

/// See the other `sem_mode`: here the libc crate has no `semid_ds`.
#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "macos", target_os = "ios")))]
pub fn sem_mode(_semid: i32) -> Option<u32> {
    skipped("a semaphore set's IPC_STAT", "the libc crate declares no semid_ds or semctl for this system");
    None
}

// ----- segment headers and chains ------------------------------------------------------

/// Segment `id` attached for a look at its header and data, for as long as
/// the value lives (None: cannot attach).
pub fn segment(id: i32) -> Option<Segment> {
    Segment::attach(id).ok()
}

/// The header word at byte `off` of segment `id` (an offset from
/// `internals::header`; None: cannot attach).
pub fn read_word(id: i32, off: usize) -> Option<u32> {
    segment(id).map(|s| s.header_word(off))
}

/// Writes the header word at byte `off` of segment `id` (an offset from
/// `internals::header`); panics if it cannot.
pub fn write_word(id: i32, off: usize, v: u32) {
    segment(id).expect("attach to write").set_header_word(off, v)
}

/// Writes `bytes` at the start of the data area of segment `id`; panics if it cannot.
pub fn write_data(id: i32, bytes: &[u8]) {
    segment(id).expect("attach to write").write_data(0, bytes)
}

/// The data bytes of segment `id` (everything after the header).
pub fn read_data(id: i32) -> Vec<u8> {
    let s = segment(id).expect("attach to read");
    let mut data = vec![0; s.len() - HEADER];
    s.read_data(0, &mut data);
    data
}

/// Shmids of the chain starting at `head`, following next_shmid (head
/// included; bounded, a cycle ends it). Unlike the crate's walk it checks
/// nothing else, so that a test sees where a link really leads.
pub fn chain_ids(head: i32) -> Vec<i32> {
    let mut ids = vec![];
    let mut seen = HashSet::new();
    let mut id = head;
    while id >= 0 && seen.insert(id) && ids.len() < 100_000 {
        let Some(next) = segment(id).map(|s| s.next_shmid()) else { break };
        ids.push(id);
        id = next;
    }
    ids
}

// ----- the system's lists ---------------------------------------------------------------

/// Every segment as the system lists it (`sys::shm_list`: /proc/sysvipc/shm
/// on Linux), or None (said once) where it gives no list.
fn shm_list() -> Option<Vec<(i32, ShmStat)>> {
    let list = sys::shm_list();
    if list.is_none() {
        skipped(
            "the system's list of segments",
            "sys::shm_list gives none: NetBSD, OpenBSD, macOS, a Linux without /proc/sysvipc",
        );
    }
    list
}

/// Segment `id` as the system's list shows it, or where there is no list as
/// `IPC_STAT` shows it (the same fields). Panics when it is in neither.
pub fn shm_listed(id: i32) -> ShmStat {
    match shm_list() {
        Some(list) => list
            .into_iter()
            .find_map(|(i, st)| (i == id).then_some(st))
            .unwrap_or_else(|| panic!("shmid {id} not in the system's list of segments")),
        None => shm_stat(id).unwrap_or_else(|| panic!("shmid {id}: IPC_STAT fails")),
    }
}

/// The perms column (octal) of semaphore set `semid` in /proc/sysvipc/sem
/// (the crate lists no semaphore sets; it reads the table with
/// `sys::ProcTable`), or None (said once) where there is no such file.
pub fn proc_sem_perms(semid: i32) -> Option<u32> {
    let Ok(text) = std::fs::read_to_string("/proc/sysvipc/sem") else {
        skipped("/proc/sysvipc/sem", "Linux only");
        return None;
    };
    let table = sys::ProcTable::parse(&text).expect("/proc/sysvipc/sem has a header");
    let (c_id, c_perms) = (table.column("semid").expect("semid column"), table.column("perms").expect("perms column"));
    let row = table.rows().iter().find(|f| f.get(c_id).and_then(|s| s.parse::<i32>().ok()) == Some(semid));
    let row = row.unwrap_or_else(|| panic!("semid {semid} not in /proc/sysvipc/sem"));
    Some(u32::from_str_radix(row[c_perms], 8).expect("perms in octal"))
}

/// Does this process have segment `id` mapped? (In /proc/self/maps a SysV
/// segment shows as /SYSV<key> with its shmid as the inode.) None where
/// there is no /proc/self/maps (Linux only).
pub fn mapped_here(id: i32) -> Option<bool> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    Some(maps.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 6 && f[5].starts_with("/SYSV") && f[4].parse::<i32>().ok() == Some(id)
    }))
}

/// Is segment `id` gone as far as this process goes: there is none, or it is
/// marked for removal and this process does not have it mapped. (Another
/// process may hold a removed segment a moment longer: a concurrent orphan
/// sweep attaches every private segment of its size to read the header.)
/// Where this process's mappings cannot be read, a removed segment counts
/// as gone only once nobody has it attached.
pub fn gone_here(id: i32) -> bool {
    match shm_stat(id) {
        None => true,
        Some(st) => st.removed && mapped_here(id).map_or(st.nattch == 0, |m| !m),
    }
}

/// When this process started, in seconds since the epoch (rounded down):
/// the time [`START`] recorded before `main`.
fn started() -> i64 {
    START.load(Ordering::Relaxed)
}

/// Seconds since the epoch when this process started, set before `main` by
/// [`record_start`] (every segment this process makes is at least as new).
static START: AtomicI64 = AtomicI64::new(i64::MAX);

/// Records [`START`]: run by the loader before `main`, from the section of
/// constructors (`.init_array` on ELF systems, `__mod_init_func` on macOS).
extern "C" fn record_start() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    START.store(now, Ordering::Relaxed);
}

#[used]
#[cfg_attr(any(target_os = "macos", target_os = "ios"), link_section = "__DATA,__mod_init_func")]
#[cfg_attr(not(any(target_os = "macos", target_os = "ios")), link_section = ".init_array")]
static RECORD_START: extern "C" fn() = record_start;

/// Was segment `st` made by this very process? Its pid, and made since it
/// started: a segment that an earlier process of the same pid made outlives
/// that process.
fn mine(st: &ShmStat) -> bool {
    st.cpid as u32 == std::process::id() && st.ctime >= started()
}

/// IPC_PRIVATE segments of `size` bytes made by this very process (see
/// `mine`) and not gone (see [`gone_here`]): the segments the code under
/// test made in it (to see whether a call created or removed any). None
/// (said once) where the system gives no list of segments.
pub fn made_here(size: usize) -> Option<BTreeSet<i32>> {
    Some(
        shm_list()?
            .into_iter()
            .filter(|(_, st)| st.key == IPC_PRIVATE && st.size == size && mine(st))
            .filter(|&(id, st)| !st.removed || mapped_here(id).unwrap_or(st.nattch > 0))
            .map(|(id, _)| id)
            .collect(),
    )
}

/// Asserts that the segments [`made_here`] of `size` are still `before`
/// (skipped where there is no list: then `before` is None).
pub fn assert_made_unchanged(size: usize, before: &Option<BTreeSet<i32>>, what: &str) {
    if let Some(before) = before {
        let now = made_here(size).expect("the system's list of segments went away");
        assert_eq!(&now, before, "{what}");
    }
}

/// Is segment `id` one this very process made (see `mine`)?
pub fn made_by_me(id: i32) -> bool {
    shm_stat(id).is_some_and(|st| mine(&st))
}

/// `IPC_RMID` of segment `id` if this very process made it (an id a test
/// got back, or reached from one, may name another's segment by now).
pub fn rmid_made_here(id: i32) {
    if made_by_me(id) {
        shm_rmid(id);
    }
}

// ----- the system's limits -------------------------------------------------------------

/// Held by the tests that need many segments at once (see [`room`]).
static ROOM: Mutex<()> = Mutex::new(());

/// Room for up to `want` segments of `size` bytes, for one test: waits until
/// no other test holds room, then tries how many such segments the system
/// lets this process make now (IPC_PRIVATE, removed at once), up to `want`.
/// Returns that count, and the guard that keeps the room the test's until it
/// drops it. A count below `want` means the system refused one for a limit
/// of its own, which is said on stderr: ENOSPC (segments in all, `shmmni`,
/// or their total size), ENOMEM (total size, `shmall`), EINVAL (larger than
/// a segment may be, `shmmax`). Any other error panics.
pub fn room(want: usize, size: usize, test: &str) -> (usize, MutexGuard<'static, ()>) {
    let guard = ROOM.lock().unwrap_or_else(|e| e.into_inner());
    let mut made = vec![];
    let mut refused = None;
    while made.len() < want {
        match sys::shmget(IPC_PRIVATE, size, 0o600 | IPC_CREAT) {
            Ok(id) => made.push(id),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let got = made.len();
    for id in made {
        shm_rmid(id);
    }
    if let Some(e) = refused {
        let limit = match e.0 {
            libc::ENOSPC => "segments in all (shmmni) or their total size",
            libc::ENOMEM => "the total size of segments (shmall)",
            libc::EINVAL => "the size of one segment (shmmax)",
            _ => panic!("{test}: shmget(IPC_PRIVATE, {size}) for room: {e}"),
        };
        note(&format!("{test}: room for {got} of the {want} segments of {size} bytes it wants: the system's limit on {limit} ({e})"));
    }
    (got, guard)
}

/// [`room`] for `n` segments of `size` bytes and a few more (for the tests
/// running beside it), or None where the system allows fewer now: then the
/// caller skips, the limit named on stderr.
pub fn room_for(n: usize, size: usize, test: &str) -> Option<MutexGuard<'static, ()>> {
    let (got, guard) = room(n + ROOM_MARGIN, size, test);
    if got < n + ROOM_MARGIN {
        note(&format!("{test}: skipped, it needs {n} segments of {size} bytes at once"));
        return None;
    }
    Some(guard)
}

/// How many segments one process may have attached at once, where the
/// system limits it below 64 (macOS: `kern.sysv.shmseg`, 8 by default; the
/// BSDs): found once by attaching one private segment of this process's own
/// again and again until `shmat` fails with `EMFILE`, then detaching and
/// removing it. `None` where 64 attachments are allowed.
pub fn attach_limit() -> Option<usize> {
    static LIMIT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let id = shm_create_private(4096);
        let mut addrs = vec![];
        let mut refused = false;
        while addrs.len() < 64 {
            // SAFETY: shmat of a segment of our own, at an address the kernel
            // chooses; each mapping is detached below and never touched.
            let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
            if p as isize == -1 {
                refused = Errno::last().0 == libc::EMFILE;
                break;
            }
            addrs.push(p);
        }
        let n = addrs.len();
        for p in addrs {
            // SAFETY: p is a mapping made above, detached once.
            unsafe { libc::shmdt(p) };
        }
        shm_rmid(id);
        refused.then(|| {
            note(&format!("a process may attach only {n} segments at once here (EMFILE)"));
            n
        })
    })
}

/// Segments left for the tests that run beside one holding [`room`].
pub const ROOM_MARGIN: usize = 8;

// ----- keys ----------------------------------------------------------------------------------

/// True when a segment or a semaphore set exists at `key`, also one this
/// process may not open.
pub fn key_taken(key: Key) -> bool {
    !matches!(shm_at_key(key), Err(Errno(libc::ENOENT))) || !matches!(sem_at_key(key), Err(Errno(libc::ENOENT)))
}

static KEYS: Mutex<Option<(Rng, Vec<Key>)>> = Mutex::new(None);

/// A key of this test process's own: at which no segment and no semaphore
/// set existed when handed out, and never handed out before. Drawn from
/// 0x08000000..0x0FFFFFFF (no string key of printable characters; the Perl
/// suite draws from 0x10000000..). SHARELITE_TEST_KEY_SEED fixes the sequence.
pub fn free_key() -> Key {
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    let (rng, given) = keys.get_or_insert_with(|| {
        let seed = std::env::var("SHARELITE_TEST_KEY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            let t =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            t ^ ((std::process::id() as u64) << 32)
        });
        (Rng::new(seed), vec![])
    });
    for _ in 0..10_000 {
        let k = 0x0800_0000 + rng.below(0x0800_0000) as Key;
        if !given.contains(&k) && !key_taken(k) {
            given.push(k);
            return k;
        }
    }
    panic!("no free key found");
}
