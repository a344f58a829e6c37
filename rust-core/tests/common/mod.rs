//! Helpers shared by the integration tests: a PRNG, keys of their own, and
//! access to the SysV objects behind a share (header words, the chain walk,
//! /proc/sysvipc rows).
//!
//! Every raw call of the tests is here, wrapped once, each `unsafe` block
//! with the reason it is sound. A test removes only what it made: objects
//! whose ids it got back, or reached from them (a chain from its head);
//! [`free_key`] gives keys at which nothing existed.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use sharelite::internals::HEADER;

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

// ----- raw calls, each wrapped once --------------------------------------------------

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// The segment at `key` (`shmget(key, 0, 0)`), or the errno.
pub fn shm_at_key(key: i32) -> Result<i32, i32> {
    // SAFETY: shmget takes only integers; size 0 and no flags only look up.
    let id = unsafe { libc::shmget(key, 0, 0) };
    if id >= 0 {
        Ok(id)
    } else {
        Err(errno())
    }
}

/// The semaphore set at `key` (`semget(key, 0, 0)`), or the errno.
pub fn sem_at_key(key: i32) -> Result<i32, i32> {
    // SAFETY: semget takes only integers; no flags only look up.
    let id = unsafe { libc::semget(key, 0, 0) };
    if id >= 0 {
        Ok(id)
    } else {
        Err(errno())
    }
}

/// A new IPC_PRIVATE segment of `size` bytes, mode 0600: the caller owns it.
pub fn shm_create_private(size: usize) -> i32 {
    // SAFETY: shmget takes only integers.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, size, 0o600 | libc::IPC_CREAT) };
    assert!(id >= 0, "shmget(IPC_PRIVATE, {size}): {}", std::io::Error::last_os_error());
    id
}

/// `IPC_STAT` of segment `id`, or None when there is none.
pub fn shm_stat(id: i32) -> Option<libc::shmid_ds> {
    // SAFETY: shmid_ds is plain old data: all zeroes is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable shmid_ds for IPC_STAT to fill.
    let rc = unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) };
    (rc == 0).then_some(ds)
}

/// `IPC_RMID` of segment `id` (one the caller made or reached from its own).
pub fn shm_rmid(id: i32) {
    // SAFETY: IPC_RMID does not read the buffer argument.
    unsafe {
        libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
    }
}

/// `IPC_RMID` of semaphore set `semid` (one the caller made).
pub fn sem_rmid(semid: i32) {
    // SAFETY: IPC_RMID ignores the semaphore number and takes no fourth argument.
    unsafe {
        libc::semctl(semid, 0, libc::IPC_RMID);
    }
}

/// `GETVAL` of semaphore `n`: its value, or -1 when it cannot be read.
pub fn sem_getval(semid: i32, n: i32) -> i32 {
    // SAFETY: GETVAL takes no fourth argument.
    unsafe { libc::semctl(semid, n, libc::GETVAL) }
}

pub fn sem_exists(semid: i32) -> bool {
    sem_getval(semid, 0) != -1
}

/// The value of semaphore `n`; panics when it cannot be read.
pub fn sem_val(semid: i32, n: i32) -> i32 {
    let v = sem_getval(semid, n);
    assert!(v >= 0, "GETVAL failed: {}", std::io::Error::last_os_error());
    v
}

/// An `ipc_perm.mode` read with IPC_STAT: qemu-user (7.2) writes it 16 bits
/// wide, so on s390x it lands in the upper half of the 32-bit field (a real
/// kernel never sets bits there; the core's sys layer does the same).
pub fn perm_mode(raw: u32) -> u32 {
    if raw & 0xffff == 0 {
        raw >> 16
    } else {
        raw
    }
}

/// The permission bits of semaphore set `semid` (IPC_STAT).
pub fn sem_mode(semid: i32) -> u32 {
    // SAFETY: semid_ds is plain old data: all zeroes is a valid value.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: the fourth argument is union semun's `buf`, a valid, writable semid_ds.
    let rc = unsafe { libc::semctl(semid, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) };
    assert_eq!(rc, 0, "semctl IPC_STAT: {}", std::io::Error::last_os_error());
    perm_mode(ds.sem_perm.mode as u32) & 0o777
}

/// Segment `id` attached read-write for as long as this lives.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(id: i32) -> Option<Mapping> {
        let len = shm_stat(id)?.shm_segsz;
        // SAFETY: a null address lets the kernel choose where to map.
        let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if p as isize == -1 {
            return None;
        }
        Some(Mapping { addr: p as *mut u8, len })
    }

    fn check(&self, off: usize, n: usize) {
        assert!(
            off.checked_add(n).is_some_and(|end| end <= self.len),
            "{n} bytes at {off} past a {}-byte segment",
            self.len
        );
    }

    fn read_u32(&self, off: usize) -> u32 {
        self.check(off, 4);
        // SAFETY: in bounds (checked); shmat maps at a page boundary and
        // callers pass multiples of 4, so the word is aligned. Volatile: other
        // processes write this memory.
        unsafe { std::ptr::read_volatile(self.addr.add(off) as *const u32) }
    }

    fn write_u32(&self, off: usize, v: u32) {
        self.check(off, 4);
        // SAFETY: as in read_u32; the mapping is writable (attached read-write).
        unsafe { std::ptr::write_volatile(self.addr.add(off) as *mut u32, v) }
    }

    fn read(&self, off: usize, n: usize) -> Vec<u8> {
        self.check(off, n);
        // SAFETY: off..off+n is inside the mapping (checked), which stays
        // attached while self lives; u8 has no alignment or validity needs.
        unsafe { std::slice::from_raw_parts(self.addr.add(off), n).to_vec() }
    }

    fn write(&self, off: usize, bytes: &[u8]) {
        self.check(off, bytes.len());
        // SAFETY: the destination is inside the writable mapping (checked) and
        // cannot overlap `bytes`, which lives in this process's own memory.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.addr.add(off), bytes.len()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: addr came from shmat and is detached once, here.
        unsafe {
            libc::shmdt(self.addr as *const libc::c_void);
        }
    }
}

// ----- segment headers and chains ------------------------------------------------------

/// The 32-bit word at byte `off` of segment `id` (None: cannot attach).
pub fn read_word(id: i32, off: usize) -> Option<u32> {
    Mapping::new(id).map(|m| m.read_u32(off))
}

/// Writes the 32-bit word at byte `off` of segment `id`; panics if it cannot.
pub fn write_word(id: i32, off: usize, v: u32) {
    Mapping::new(id).expect("attach to write").write_u32(off, v)
}

/// Writes `bytes` at byte `off` of segment `id`; panics if it cannot.
pub fn write_bytes(id: i32, off: usize, bytes: &[u8]) {
    Mapping::new(id).expect("attach to write").write(off, bytes)
}

/// The four header words of segment `id`: next_shmid, length, shm_state, version.
pub fn read_header(id: i32) -> Option<[u32; 4]> {
    let m = Mapping::new(id)?;
    Some(std::array::from_fn(|i| m.read_u32(4 * i)))
}

/// The data bytes of segment `id` (everything after the header).
pub fn read_data(id: i32) -> Vec<u8> {
    let m = Mapping::new(id).expect("attach to read");
    m.read(HEADER, m.len - HEADER)
}

/// Shmids of the chain starting at `head`, following next_shmid (head
/// included; bounded, a cycle ends it).
pub fn chain_ids(head: i32) -> Vec<i32> {
    let mut ids = vec![];
    let mut seen = HashSet::new();
    let mut id = head;
    while id >= 0 && seen.insert(id) && ids.len() < 100_000 {
        let Some(next) = read_word(id, 0) else { break };
        ids.push(id);
        id = next as i32;
    }
    ids
}

// ----- /proc/sysvipc ------------------------------------------------------------------------

/// A row of /proc/sysvipc/shm (columns found by the names in its header).
#[derive(Debug, Clone)]
pub struct ProcShm {
    pub key: i64,
    pub id: i32,
    /// Octal in the file; includes SHM_DEST for a segment marked for removal.
    pub perms: u32,
    pub size: usize,
    pub cpid: u32,
    /// Creation (or last IPC_SET) time, seconds since the epoch.
    pub ctime: u64,
}

pub fn proc_shm() -> Vec<ProcShm> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    let mut lines = text.lines();
    let cols: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = |name: &str| cols.iter().position(|c| *c == name).unwrap_or_else(|| panic!("no {name} column"));
    let (key, id, perms, size, cpid, ctime) =
        (col("key"), col("shmid"), col("perms"), col("size"), col("cpid"), col("ctime"));
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(ProcShm {
                key: f.get(key)?.parse().ok()?,
                id: f.get(id)?.parse().ok()?,
                perms: u32::from_str_radix(f.get(perms)?, 8).ok()?,
                size: f.get(size)?.parse().ok()?,
                cpid: f.get(cpid)?.parse().ok()?,
                ctime: f.get(ctime)?.parse().ok()?,
            })
        })
        .collect()
}

pub fn proc_shm_entry(id: i32) -> ProcShm {
    proc_shm().into_iter().find(|e| e.id == id).unwrap_or_else(|| panic!("shmid {id} not in /proc/sysvipc/shm"))
}

/// The perms column (octal) of semaphore set `semid` in /proc/sysvipc/sem.
pub fn proc_sem_perms(semid: i32) -> u32 {
    let text = std::fs::read_to_string("/proc/sysvipc/sem").expect("read /proc/sysvipc/sem");
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1).and_then(|s| s.parse::<i32>().ok()) == Some(semid) {
            return u32::from_str_radix(f[2], 8).unwrap();
        }
    }
    panic!("semid {semid} not in /proc/sysvipc/sem")
}

/// `shm_perm.mode` flag of a segment marked for removal (linux/shm.h).
pub const SHM_DEST: u32 = 0o1000;

/// Does this process have segment `id` mapped? (In /proc/self/maps a SysV
/// segment shows as /SYSV<key> with its shmid as the inode.)
pub fn mapped_here(id: i32) -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|maps| {
        maps.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 6 && f[5].starts_with("/SYSV") && f[4].parse::<i32>().ok() == Some(id)
        })
    })
}

/// Is segment `id` gone as far as this process goes: there is none, or it is
/// marked for removal and this process does not have it mapped. (Another
/// process may hold a removed segment a moment longer: a concurrent orphan
/// sweep attaches every private segment of its size to read the header.)
pub fn gone_here(id: i32) -> bool {
    match shm_stat(id) {
        None => true,
        Some(d) => perm_mode(d.shm_perm.mode as u32) & SHM_DEST != 0 && !mapped_here(id),
    }
}

/// When this process started, in seconds since the epoch (rounded down):
/// /proc/self/stat's start time (clock ticks after boot) plus /proc/stat's
/// boot time.
fn started() -> u64 {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
        // The fields after the command name (which may hold spaces) in parentheses.
        let rest = &stat[stat.rfind(')').expect("/proc/self/stat") + 2..];
        let ticks: u64 = rest.split_whitespace().nth(19).and_then(|s| s.parse().ok()).expect("start time");
        let boot: u64 = std::fs::read_to_string("/proc/stat")
            .expect("read /proc/stat")
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
            .expect("btime");
        // SAFETY: sysconf only reads a system constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        boot + ticks / hz
    })
}

/// Was a segment with creator `cpid` and creation time `ctime` made by this
/// very process? Its pid, and made since it started: a segment that an
/// earlier process of the same pid made outlives that process.
fn mine(cpid: u32, ctime: u64) -> bool {
    cpid == std::process::id() && ctime >= started()
}

/// IPC_PRIVATE segments of `size` bytes made by this very process (see
/// `mine`) and not gone (see [`gone_here`]): the segments the code under
/// test made in it (to see whether a call created or removed any).
pub fn made_here(size: usize) -> BTreeSet<i32> {
    proc_shm()
        .into_iter()
        .filter(|e| e.key == 0 && e.size == size && mine(e.cpid, e.ctime))
        .filter(|e| e.perms & SHM_DEST == 0 || mapped_here(e.id))
        .map(|e| e.id)
        .collect()
}

/// Is segment `id` one this very process made (see `mine`)?
pub fn made_by_me(id: i32) -> bool {
    shm_stat(id).is_some_and(|d| mine(d.shm_cpid as u32, d.shm_ctime as u64))
}

/// `IPC_RMID` of segment `id` if this very process made it (an id a test
/// got back, or reached from one, may name another's segment by now).
pub fn rmid_made_here(id: i32) {
    if made_by_me(id) {
        shm_rmid(id);
    }
}

// ----- keys ----------------------------------------------------------------------------------

/// True when a segment or a semaphore set exists at `key`, also one this
/// process may not open.
pub fn key_taken(key: i32) -> bool {
    shm_at_key(key).map_or_else(|e| e != libc::ENOENT, |_| true)
        || sem_at_key(key).map_or_else(|e| e != libc::ENOENT, |_| true)
}

static KEYS: Mutex<Option<(Rng, Vec<i32>)>> = Mutex::new(None);

/// A key of this test process's own: at which no segment and no semaphore
/// set existed when handed out, and never handed out before. Drawn from
/// 0x08000000..0x0FFFFFFF (no string key of printable characters; the Perl
/// suite draws from 0x10000000..). SHARELITE_TEST_KEY_SEED fixes the sequence.
pub fn free_key() -> i32 {
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
        let k = 0x0800_0000 + rng.below(0x0800_0000) as i32;
        if !given.contains(&k) && !key_taken(k) {
            given.push(k);
            return k;
        }
    }
    panic!("no free key found");
}
