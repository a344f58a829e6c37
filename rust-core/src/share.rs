//! A share: one semaphore set and a chain of segments behind one key,
//! following the 0.17 format and locking protocol of `WIRE.md`.

use std::collections::HashSet;
use std::time::Duration;

use libc::{c_int, c_short, key_t};

use crate::error::{Error, Result};
use crate::segment::{Attached, Segment, HEADER};
use crate::sys::{self, Errno};

/// Segment size used when none (or one of at most 16 bytes) is asked for.
pub const DEFAULT_SIZE: usize = 65536;

/// The longest value the format's int32 length field can describe.
pub const MAX_LENGTH: usize = i32::MAX as usize;

const SEM_INIT: u16 = 0;
const SEM_READERS: u16 = 1;
const SEM_WRITER: u16 = 2;

/// The kind of lock a handle holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Many holders at once; excludes writers.
    Shared,
    /// One holder; excludes everyone else.
    Exclusive,
}

/// How long a lock request may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Until the lock is free.
    Forever,
    /// Not at all (`LOCK_NB`).
    No,
    /// At most this long (`semtimedop(2)`).
    For(Duration),
}

/// How to open a share; see [`OpenOptions::open`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    key: key_t,
    create: bool,
    exclusive: bool,
    mode: u32,
    size: usize,
    destroy: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            key: libc::IPC_PRIVATE,
            create: false,
            exclusive: false,
            mode: 0o666,
            size: DEFAULT_SIZE,
            destroy: false,
        }
    }
}

impl OpenOptions {
    /// Options for opening an existing share with 0.17's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// The SysV key; `IPC_PRIVATE` (0) makes a share no other process can open by key.
    pub fn key(&mut self, key: key_t) -> &mut Self {
        self.key = key;
        self
    }
    /// Create the share when it does not exist.
    pub fn create(&mut self, yes: bool) -> &mut Self {
        self.create = yes;
        self
    }
    /// Fail with `EEXIST` when the share exists (implies `create`).
    pub fn exclusive(&mut self, yes: bool) -> &mut Self {
        self.exclusive = yes;
        self
    }
    /// Permission bits of the segments and the semaphore set (default 0666).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }
    /// Segment size for a new share; at most 16 means the default 65536.
    /// An existing share keeps its own size.
    pub fn size(&mut self, size: usize) -> &mut Self {
        self.size = size;
        self
    }
    /// Remove the share when the [`Share`] is dropped, in the process that
    /// opened it (a forked child's copy never removes it).
    pub fn destroy(&mut self, yes: bool) -> &mut Self {
        self.destroy = yes;
        self
    }
    /// The equivalent `shmget(2)` flags.
    pub fn flags(&self) -> c_int {
        let mut f = self.mode as c_int;
        if self.create || self.exclusive {
            f |= libc::IPC_CREAT;
        }
        if self.exclusive {
            f |= libc::IPC_EXCL;
        }
        f
    }
    /// Opens (or creates) the share.
    ///
    /// ```no_run
    /// use sharelite::OpenOptions;
    /// // Create the share at key 1971 if needed, readable by this user only,
    /// // and remove it when `share` is dropped.
    /// let share = OpenOptions::new().key(1971).create(true).mode(0o600).destroy(true).open()?;
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    pub fn open(&self) -> Result<Share> {
        let mut share = Share::open_raw(self.key, self.size, self.flags())?;
        share.destroy = self.destroy;
        Ok(share)
    }
}

/// What the last completed fetch saw; equal triples mean an unchanged value.
type Stamp = (u32, i32, u32);

#[derive(Debug)]
struct PendingFetch {
    took_lock: bool,
    stamp: Stamp,
    len: usize,
    unchanged: bool,
}

/// An open share.
///
/// Segments stay attached between calls; the chain is re-read only when the
/// head's `shm_state` says it changed. Locks held through this handle are
/// released when it is dropped (in the process that took them).
#[derive(Debug)]
pub struct Share {
    key: key_t,
    semid: c_int,
    mode: c_int,
    seg_size: usize,
    head: Segment,
    /// Segments after the head, in chain order, as far as attached.
    chain: Vec<Segment>,
    /// Every shmid in `head` + `chain`, to refuse cycles.
    ids: HashSet<i32>,
    shm_state: u32,
    lock: Option<LockKind>,
    last_fetch: Option<Stamp>,
    pending: Option<PendingFetch>,
    removed: bool,
    destroy: bool,
    pid: u32,
}

impl Share {
    /// Opens the share at `key` with `shmget(2)`-style `flags` (mode bits,
    /// `IPC_CREAT`, `IPC_EXCL`), as 0.17's `new_share` does.
    ///
    /// Errors: `ENOENT` when it does not exist and `IPC_CREAT` is not given,
    /// `EEXIST` with `IPC_EXCL` when it exists (or when the key holds a segment
    /// that is no share head), `EACCES` when the mode forbids it, `EINVAL` or
    /// `ENOSPC` for a size or count the system refuses.
    pub fn open_raw(key: key_t, size: usize, flags: c_int) -> Result<Share> {
        let size = if size <= HEADER { DEFAULT_SIZE } else { size };
        loop {
            let (semid, sem_created) = open_semaphores(key, flags)?;
            match open_head(key, size, flags, semid, sem_created) {
                Err(Retry::Again) => continue,
                Err(Retry::Fail(e)) => {
                    if sem_created {
                        let _ = sys::sem_remove(semid);
                    }
                    return Err(e);
                }
                Ok(head) => return Ok(Share::with_head(key, semid, flags & 0o777, head)),
            }
        }
    }

    fn with_head(key: key_t, semid: c_int, mode: c_int, head: Segment) -> Share {
        let mut ids = HashSet::new();
        ids.insert(head.shmid());
        Share {
            key,
            semid,
            mode,
            seg_size: head.len(),
            shm_state: head.shm_state(),
            head,
            chain: Vec::new(),
            ids,
            lock: None,
            last_fetch: None,
            pending: None,
            removed: false,
            destroy: false,
            pid: std::process::id(),
        }
    }

    /// A second, independent handle on the same share (for another thread):
    /// same semaphore set and head, no lock held.
    pub fn try_clone(&self) -> Result<Share> {
        self.usable()?;
        let att = sys::Attachment::attach_sized(self.head.shmid(), self.seg_size)?;
        Ok(Share::with_head(self.key, self.semid, self.mode, Segment::new(att)))
    }

    /// The key the share was opened with.
    pub fn key(&self) -> key_t {
        self.key
    }
    /// The semaphore set's id.
    pub fn semid(&self) -> c_int {
        self.semid
    }
    /// The head segment's id.
    pub fn shmid(&self) -> c_int {
        self.head.shmid()
    }
    /// The size of every segment (the head's real size), header included.
    pub fn segment_size(&self) -> usize {
        self.seg_size
    }
    /// The lock this handle holds.
    pub fn held(&self) -> Option<LockKind> {
        self.lock
    }
    fn data_size(&self) -> usize {
        self.seg_size - HEADER
    }

    fn usable(&self) -> Result<()> {
        if self.removed {
            Err(Error::Removed)
        } else {
            Ok(())
        }
    }

    /// The head's version: 1 when created, +1 for every store (wrapping).
    /// Read without a lock, as 0.17 does.
    ///
    /// ```no_run
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// let before = share.version()?;
    /// share.store(b"x")?;
    /// assert_eq!(share.version()?, before.wrapping_add(1));
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    pub fn version(&self) -> Result<u32> {
        self.usable()?;
        Ok(self.head.version())
    }

    // ----- locking -------------------------------------------------------

    /// The `semop` list that takes a lock (WIRE.md, "Semaphore operations").
    fn lock_ops(kind: LockKind, extra: c_short) -> ([libc::sembuf; 3], usize) {
        let op = |num: u16, op: c_short, flg: c_short| libc::sembuf { sem_num: num, sem_op: op, sem_flg: flg | extra };
        let undo = libc::SEM_UNDO as c_short;
        match kind {
            LockKind::Exclusive => ([op(SEM_READERS, 0, 0), op(SEM_WRITER, 0, 0), op(SEM_WRITER, 1, undo)], 3),
            LockKind::Shared => ([op(SEM_WRITER, 0, 0), op(SEM_READERS, 1, undo), op(SEM_READERS, 0, 0)], 2),
        }
    }

    fn sem_lock(&self, kind: LockKind, wait: Wait) -> Result<bool> {
        let nowait = if wait == Wait::No { libc::IPC_NOWAIT as c_short } else { 0 };
        let timeout = match wait {
            Wait::For(d) => Some(d),
            _ => None,
        };
        let (mut ops, n) = Self::lock_ops(kind, nowait);
        match sys::semop(self.semid, &mut ops[..n], timeout) {
            Ok(()) => Ok(true),
            Err(Errno(libc::EAGAIN)) if wait != Wait::Forever => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The `semop` that releases a lock.
    fn unlock_op(kind: LockKind) -> libc::sembuf {
        let sem_num = match kind {
            LockKind::Exclusive => SEM_WRITER,
            LockKind::Shared => SEM_READERS,
        };
        libc::sembuf { sem_num, sem_op: -1, sem_flg: (libc::SEM_UNDO | libc::IPC_NOWAIT) as c_short }
    }

    fn sem_unlock(&self, kind: LockKind) -> Result<()> {
        sys::semop(self.semid, &mut [Self::unlock_op(kind)], None)?;
        Ok(())
    }

    /// Takes a lock. Returns `Ok(false)` when `wait` is [`Wait::No`] and the
    /// lock is taken elsewhere, or when a [`Wait::For`] timeout expires.
    ///
    /// Asking for the kind already held succeeds at once. Asking for the other
    /// kind first releases the one held (as 0.17 does): if the new one cannot
    /// be had, the handle holds none.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// use sharelite::{LockKind, Wait};
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// if share.lock(LockKind::Exclusive, Wait::For(Duration::from_secs(2)))? {
    ///     share.store(b"mine for now")?;
    ///     share.unlock()?;
    /// } else {
    ///     eprintln!("still locked elsewhere after 2 s");
    /// }
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    pub fn lock(&mut self, kind: LockKind, wait: Wait) -> Result<bool> {
        self.usable()?;
        self.end_fetch();
        if self.lock == Some(kind) {
            return Ok(true);
        }
        self.unlock()?;
        let got = self.sem_lock(kind, wait)?;
        if got {
            self.lock = Some(kind);
        }
        Ok(got)
    }

    /// Takes a lock held until the returned guard is dropped; `Ok(None)` when
    /// `wait` gave up (see [`Share::lock`]). The guard gives access to the
    /// share's methods meanwhile.
    ///
    /// ```no_run
    /// # use sharelite::{OpenOptions, LockKind, Wait};
    /// let mut share = OpenOptions::new().key(1971).open()?;
    /// if let Some(mut held) = share.lock_guard(LockKind::Exclusive, Wait::No)? {
    ///     let n: u64 = String::from_utf8_lossy(&held.fetch()?).parse().unwrap_or(0);
    ///     held.store((n + 1).to_string().as_bytes())?;
    /// }
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    pub fn lock_guard(&mut self, kind: LockKind, wait: Wait) -> Result<Option<LockGuard<'_>>> {
        if self.lock(kind, wait)? {
            Ok(Some(LockGuard { share: self }))
        } else {
            Ok(None)
        }
    }

    /// Releases whatever lock this handle holds (nothing held is fine).
    pub fn unlock(&mut self) -> Result<()> {
        self.usable()?;
        self.end_fetch();
        if let Some(kind) = self.lock.take() {
            self.sem_unlock(kind)?;
        }
        Ok(())
    }

    /// Runs `f` holding the exclusive lock, then puts the handle's lock back
    /// as it was, on every path.
    fn with_exclusive<T>(&mut self, f: impl FnOnce(&mut Share) -> Result<T>) -> Result<T> {
        self.usable()?;
        self.end_fetch();
        let before = self.lock;
        if before != Some(LockKind::Exclusive) {
            self.lock(LockKind::Exclusive, Wait::Forever)?;
        }
        let out = f(self);
        if before != Some(LockKind::Exclusive) {
            let released = self.unlock();
            if before == Some(LockKind::Shared) {
                // The work is done: a signal must not make it look failed.
                let (mut ops, n) = Self::lock_ops(LockKind::Shared, 0);
                sys::semop_restarting(self.semid, &mut ops[..n])?;
                self.lock = Some(LockKind::Shared);
            }
            released?;
        }
        out
    }

    // ----- the chain -----------------------------------------------------

    /// Store step 2: forget attachments past the head when the chain changed.
    fn sync_state(&mut self) {
        let state = self.head.shm_state();
        if state != self.shm_state {
            self.drop_chain_from(0);
            self.shm_state = state;
        }
    }

    fn drop_chain_from(&mut self, keep: usize) {
        for seg in self.chain.drain(keep..) {
            self.ids.remove(&seg.shmid());
        }
    }

    fn segment(&self, i: usize) -> &Segment {
        if i == 0 {
            &self.head
        } else {
            &self.chain[i - 1]
        }
    }

    fn last(&self) -> &Segment {
        self.chain.last().unwrap_or(&self.head)
    }

    fn bump_state(&mut self) {
        let s = self.head.shm_state().wrapping_add(1);
        self.head.set_shm_state(s);
        self.shm_state = s;
    }

    /// Attaches the segment after the last attached one. `Ok(None)` at the end
    /// of the chain. With `repair` (exclusive lock held, about to overwrite
    /// the value), a link that leads nowhere sound — to a segment that no
    /// longer exists, a loop, a segment of another size, an invalid id — is
    /// cut and reported as the end; without, it is an error.
    fn attach_next(&mut self, repair: bool) -> Result<Option<()>> {
        let next = self.last().next_shmid();
        if next == -1 {
            return Ok(None);
        }
        let broken = if next < 0 {
            Some("invalid segment id in the chain")
        } else if self.ids.contains(&next) {
            Some("the segment chain loops")
        } else {
            None
        };
        if let Some(why) = broken {
            if !repair {
                return Err(Error::Corrupt(why));
            }
            self.cut_after_last();
            return Ok(None);
        }
        match (Segment::attach_checked(next, self.seg_size), repair) {
            // A segment marked for removal but still attached somewhere is
            // readable now and gone with the last detach: a reader may use
            // it, a writer cuts it off.
            (Ok(Attached::Live(seg)), _) | (Ok(Attached::Removed(seg)), false) => {
                self.ids.insert(next);
                self.chain.push(seg);
                Ok(Some(()))
            }
            (Ok(Attached::WrongSize), false) => Err(Error::Corrupt("a chained segment has another size than the head")),
            // A writer died between removing segments and cutting the link
            // (0.17 does that), or the link was damaged: cut it, touch
            // nothing it pointed to.
            (Ok(Attached::WrongSize | Attached::Removed(_)), true) | (Err(Errno(libc::EINVAL | libc::EIDRM)), true) => {
                self.cut_after_last();
                Ok(None)
            }
            (Err(Errno(libc::EINVAL | libc::EIDRM)), false) => {
                Err(Error::Corrupt("the chain links to a segment that does not exist"))
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    fn cut_after_last(&mut self) {
        self.last().set_next_shmid(-1);
        self.bump_state();
    }

    /// With the exclusive lock: drops attached segments past `keep` that were
    /// removed behind this handle's back (by a killed 0.17 writer), cutting
    /// the chain before the first of them. Only segments past the current
    /// value are checked: in a sound share there are none.
    fn drop_removed_surplus(&mut self, keep: usize) {
        let from = keep.max(1) - 1;
        if let Some(i) = self.chain.iter().skip(from).position(|s| s.is_removed()) {
            self.drop_chain_from(from + i);
            self.cut_after_last();
        }
    }

    /// Makes `count` segments (head included) attached, following the chain;
    /// with `grow`, creates and links new segments where it ends.
    fn ensure_segments(&mut self, count: usize, grow: bool) -> Result<()> {
        while self.chain.len() + 1 < count {
            if self.attach_next(grow)?.is_some() {
                continue;
            }
            if !grow {
                return Err(Error::Corrupt("the length runs past the end of the chain"));
            }
            let seg = self.create_segment()?;
            self.last().set_next_shmid(seg.shmid());
            self.ids.insert(seg.shmid());
            self.chain.push(seg);
        }
        Ok(())
    }

    /// A new chained segment: private key (never findable by key), the
    /// share's mode, empty header tagged with the head.
    fn create_segment(&self) -> Result<Segment> {
        let id = sys::shmget(libc::IPC_PRIVATE, self.seg_size, self.mode | libc::IPC_CREAT | libc::IPC_EXCL)?;
        match sys::Attachment::attach_sized(id, self.seg_size) {
            Ok(att) => {
                let seg = Segment::new(att);
                seg.init_chained(self.head.shmid());
                Ok(seg)
            }
            Err(e) => {
                let _ = sys::shm_remove(id);
                Err(e.into())
            }
        }
    }

    fn segments_for(&self, len: usize) -> usize {
        len.div_ceil(self.data_size()).max(1)
    }

    /// Removes every segment after the first `keep` (head included), from the
    /// tail back: each link is cut before the segment it pointed to is removed.
    /// A writer killed at any instant leaves a sound chain, and at most one
    /// segment that nothing links to (swept on removal if it is ours). The
    /// walk stops at anything it cannot vouch for (another size, a missing
    /// segment, a loop): such a link is cut, never followed into a removal.
    fn trim_chain(&mut self, keep: usize) {
        let keep = keep.max(1);
        if self.chain.len() < keep && self.segment(keep - 1).next_shmid() == -1 {
            return;
        }
        let mut surplus = self.chain.split_off((keep - 1).min(self.chain.len()));
        for s in &surplus {
            self.ids.remove(&s.shmid());
        }
        loop {
            let next = surplus.last().unwrap_or_else(|| self.segment(keep - 1)).next_shmid();
            if next < 0 || self.ids.contains(&next) || surplus.iter().any(|s| s.shmid() == next) {
                break;
            }
            match Segment::attach_checked(next, self.seg_size).ok().and_then(Attached::segment) {
                Some(seg) => surplus.push(seg),
                None => break,
            }
        }
        if surplus.is_empty() && self.segment(keep - 1).next_shmid() == -1 {
            return;
        }
        self.bump_state();
        while let Some(seg) = surplus.pop() {
            surplus.last().unwrap_or_else(|| self.segment(keep - 1)).set_next_shmid(-1);
            let _ = sys::shm_remove(seg.shmid());
        }
        self.segment(keep - 1).set_next_shmid(-1);
    }

    // ----- store / fetch -------------------------------------------------

    /// Stores `value` (WIRE.md "Store"), taking the exclusive lock unless this
    /// handle holds it. The chain is grown first, so a failure to get a
    /// segment leaves the old value whole; a writer killed at any instant
    /// leaves a chain both implementations can use.
    ///
    /// ```no_run
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// share.store(b"any bytes, of any length")?;
    /// share.store(&vec![0u8; 1 << 20])?; // grows the chain as needed
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    pub fn store(&mut self, value: &[u8]) -> Result<()> {
        if value.len() > MAX_LENGTH {
            return Err(Error::TooLong(value.len()));
        }
        self.with_exclusive(|s| s.store_locked(value))
    }

    fn store_locked(&mut self, value: &[u8]) -> Result<()> {
        self.sync_state();
        let in_use = self.segments_for(self.head.length().max(0) as usize);
        self.drop_removed_surplus(in_use);
        let needed = self.segments_for(value.len());
        self.ensure_segments(needed, true)?;

        self.head.set_length(0);
        let ds = self.data_size();
        for (i, chunk) in value.chunks(ds).enumerate() {
            self.segment(i).write_data(0, chunk);
        }
        // The version first: a writer killed before the length is set leaves
        // an empty value under a new version, never an old stamp on new data.
        self.head.set_version(self.head.version().wrapping_add(1));
        self.head.set_length(value.len() as i32);
        self.trim_chain(needed);
        Ok(())
    }

    /// First half of a fetch: takes the shared lock unless a lock is held,
    /// validates the header and attaches what the value needs. Returns the
    /// value's length, and `true` when `have_copy` is set and nothing was
    /// stored since the last completed fetch through this handle. Must be
    /// followed by [`Share::fetch_finish`]; any other call ends it first.
    pub fn fetch_begin(&mut self, have_copy: bool) -> Result<(usize, bool)> {
        self.usable()?;
        self.end_fetch();
        let took_lock = self.lock.is_none();
        if took_lock {
            self.sem_lock(LockKind::Shared, Wait::Forever)?;
        }
        match self.fetch_prepare(have_copy) {
            Ok((len, stamp, unchanged)) => {
                self.pending = Some(PendingFetch { took_lock, stamp, len, unchanged });
                Ok((len, unchanged))
            }
            Err(e) => {
                if took_lock {
                    let _ = self.sem_unlock(LockKind::Shared);
                }
                Err(e)
            }
        }
    }

    fn fetch_prepare(&mut self, have_copy: bool) -> Result<(usize, Stamp, bool)> {
        self.sync_state();
        let length = self.head.length();
        if length < 0 {
            return Err(Error::Corrupt("negative length"));
        }
        let stamp = (self.head.version(), length, self.shm_state);
        if have_copy && self.last_fetch == Some(stamp) {
            return Ok((length as usize, stamp, true));
        }
        let len = length as usize;
        self.ensure_segments(self.segments_for(len), false)?;
        Ok((len, stamp, false))
    }

    /// Second half of a fetch: copies the value into `out` (exactly the length
    /// `fetch_begin` returned; `None` to keep the caller's unchanged copy) and
    /// releases the lock `fetch_begin` took.
    pub fn fetch_finish(&mut self, out: Option<&mut [u8]>) {
        let Some(p) = self.pending.take() else { return };
        // The caller holds the value now if it kept an unchanged copy or got
        // the whole value here; only then may a later fetch say "unchanged".
        let complete = match out {
            Some(buf) => {
                let ds = self.data_size();
                let n = p.len.min(buf.len());
                for (i, chunk) in buf[..n].chunks_mut(ds).enumerate() {
                    self.segment(i).read_data(0, chunk);
                }
                n == p.len
            }
            None => p.unchanged,
        };
        self.last_fetch = if complete { Some(p.stamp) } else { None };
        if p.took_lock {
            let _ = self.sem_unlock(LockKind::Shared);
        }
    }

    fn end_fetch(&mut self) {
        if self.pending.is_some() {
            self.fetch_finish(None);
            self.last_fetch = None;
        }
    }

    /// Fetches the value into `buf` (cleared first, then filled).
    ///
    /// ```no_run
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// let mut buf = Vec::new();
    /// for _ in 0..3 {
    ///     share.fetch_into(&mut buf)?; // reuses buf's allocation
    ///     println!("{} bytes", buf.len());
    /// }
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    pub fn fetch_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let (len, _) = self.fetch_begin(false)?;
        buf.clear();
        buf.resize(len, 0);
        self.fetch_finish(Some(buf));
        Ok(())
    }

    /// Fetches the value.
    ///
    /// ```no_run
    /// # let mut share = sharelite::OpenOptions::new().key(1971).open()?;
    /// let value = share.fetch()?; // empty when nothing was stored
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    pub fn fetch(&mut self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.fetch_into(&mut v)?;
        Ok(v)
    }

    /// The number of segments in the chain, head included.
    ///
    /// ```no_run
    /// # let mut share = sharelite::OpenOptions::new().create(true).size(4096).open()?;
    /// share.store(&[7u8; 10_000])?;
    /// assert_eq!(share.num_segments()?, 3); // 4080 data bytes per segment
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    pub fn num_segments(&mut self) -> Result<usize> {
        self.usable()?;
        self.end_fetch();
        let took_lock = self.lock.is_none();
        if took_lock {
            self.sem_lock(LockKind::Shared, Wait::Forever)?;
        }
        self.sync_state();
        let res = loop {
            match self.attach_next(false) {
                Ok(Some(())) => continue,
                Ok(None) => break Ok(self.chain.len() + 1),
                Err(e) => break Err(e),
            }
        };
        if took_lock {
            let _ = self.sem_unlock(LockKind::Shared);
        }
        res
    }

    // ----- removal -------------------------------------------------------

    /// Removes the share: every segment of the chain (and chained segments of
    /// ours orphaned by killed writers), then the semaphore set. Takes the
    /// exclusive lock first. Later calls on this handle fail with `EIDRM`.
    ///
    /// ```no_run
    /// # let mut share = sharelite::OpenOptions::new().key(1971).open()?;
    /// share.remove()?;
    /// assert!(share.fetch().is_err());
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    pub fn remove(&mut self) -> Result<()> {
        self.usable()?;
        self.end_fetch();
        if self.lock != Some(LockKind::Exclusive) {
            self.lock(LockKind::Exclusive, Wait::Forever)?;
        }
        let head_id = self.head.shmid();
        self.trim_chain(1);
        let _ = sys::shm_remove(head_id);
        self.sweep_orphans();
        self.removed = true;
        self.lock = None;
        self.last_fetch = None;
        // Nothing touches the head once `removed` is set (every entry point
        // checks `usable` first): unmap it now, so the segment goes at once.
        self.head.detach();
        sys::sem_remove(self.semid)?;
        Ok(())
    }

    /// Removes segments of this share that no link reaches any more: chained
    /// segments of ours (tagged with the head) cut off by a killed writer, and
    /// ones a writer was killed creating, before it could tag them. Those are
    /// known by what they are: private, this share's size and mode, a header
    /// still all zero, attached nowhere, made by a process that is gone.
    fn sweep_orphans(&self) {
        let Ok(text) = std::fs::read_to_string("/proc/sysvipc/shm") else { return };
        let mut lines = text.lines();
        let Some(header) = lines.next() else { return };
        let cols: Vec<&str> = header.split_whitespace().collect();
        let col = |name: &str| cols.iter().position(|c| *c == name);
        let (Some(c_key), Some(c_id), Some(c_perms), Some(c_size), Some(c_cpid), Some(c_nattch)) =
            (col("key"), col("shmid"), col("perms"), col("size"), col("cpid"), col("nattch"))
        else {
            return;
        };
        let head = self.head.shmid();
        for line in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            let field = |i: usize| f.get(i).copied().unwrap_or("");
            if field(c_key) != "0" || field(c_size).parse::<usize>().ok() != Some(self.seg_size) {
                continue;
            }
            let (Ok(id), Ok(perms), Ok(cpid), Ok(nattch)) = (
                field(c_id).parse::<i32>(),
                u32::from_str_radix(field(c_perms), 8),
                field(c_cpid).parse::<i32>(),
                field(c_nattch).parse::<u64>(),
            ) else {
                continue;
            };
            if id == head || perms & 0o1000 != 0 {
                continue;
            }
            let untagged_candidate = nattch == 0 && perms & 0o777 == self.mode as u32 && !process_alive(cpid);
            if let Ok(Attached::Live(seg)) = Segment::attach_checked(id, self.seg_size) {
                if seg.is_chained_of(head) || (untagged_candidate && seg.header_is_zero()) {
                    let _ = sys::shm_remove(id);
                }
            }
        }
    }
}

/// A lock taken by [`Share::lock_guard`], released on drop.
#[derive(Debug)]
pub struct LockGuard<'a> {
    share: &'a mut Share,
}

impl std::ops::Deref for LockGuard<'_> {
    type Target = Share;
    fn deref(&self) -> &Share {
        self.share
    }
}

impl std::ops::DerefMut for LockGuard<'_> {
    fn deref_mut(&mut self) -> &mut Share {
        self.share
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.share.unlock();
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        // Locks belong to the process that took them (SEM_UNDO is per
        // process): a forked child's copy must not release its parent's.
        if !self.removed && self.pid == std::process::id() {
            if self.destroy {
                let _ = self.remove();
            } else {
                let _ = self.unlock();
            }
        }
    }
}

/// True unless `kill(pid, 0)` says there is no such process.
fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || Errno::last().0 != libc::ESRCH
}

enum Retry {
    Again,
    Fail(Error),
}

impl From<Errno> for Retry {
    fn from(e: Errno) -> Retry {
        Retry::Fail(e.into())
    }
}

/// Open step 1: the semaphore set. Returns whether this call created it.
fn open_semaphores(key: key_t, flags: c_int) -> Result<(c_int, bool)> {
    let mode = flags & 0o777;
    if key == libc::IPC_PRIVATE {
        return Ok((sys::semget(key, 3, mode | libc::IPC_CREAT)?, true));
    }
    if flags & libc::IPC_EXCL != 0 {
        return Ok((sys::semget(key, 3, mode | libc::IPC_CREAT | libc::IPC_EXCL)?, true));
    }
    loop {
        match sys::semget(key, 3, mode) {
            Ok(id) => return Ok((id, false)),
            Err(Errno(libc::ENOENT)) if flags & libc::IPC_CREAT != 0 => {
                match sys::semget(key, 3, mode | libc::IPC_CREAT | libc::IPC_EXCL) {
                    Ok(id) => return Ok((id, true)),
                    Err(Errno(libc::EEXIST)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Open steps 2 to 6: the head segment, initialised once.
fn open_head(
    key: key_t,
    size: usize,
    flags: c_int,
    semid: c_int,
    sem_created: bool,
) -> std::result::Result<Segment, Retry> {
    let mode = flags & 0o777;
    // An initialised share can be attached without the lock: nothing here
    // reads the header, and every later read takes a lock first.
    if !sem_created && sys::sem_getval(semid, SEM_INIT as c_int).map_err(gone)? == 1 {
        match sys::shmget(key, 0, mode) {
            Ok(id) => return attach_head(id),
            Err(Errno(libc::ENOENT)) if flags & libc::IPC_CREAT != 0 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (mut lock, n) = Share::lock_ops(LockKind::Exclusive, 0);
    sys::semop(semid, &mut lock[..n], None).map_err(gone)?;
    let res = open_head_locked(key, size, flags, semid, sem_created);
    let mut unlock = [Share::unlock_op(LockKind::Exclusive)];
    let _ = sys::semop(semid, &mut unlock, None);
    res
}

fn open_head_locked(
    key: key_t,
    size: usize,
    flags: c_int,
    semid: c_int,
    sem_created: bool,
) -> std::result::Result<Segment, Retry> {
    let mode = flags & 0o777;
    let initialised = sys::sem_getval(semid, SEM_INIT as c_int)? == 1;
    let (shmid, created) = if key == libc::IPC_PRIVATE {
        (sys::shmget(key, size, mode | libc::IPC_CREAT)?, true)
    } else {
        loop {
            match sys::shmget(key, 0, mode) {
                Ok(id) if flags & libc::IPC_EXCL != 0 => {
                    let _ = id;
                    return Err(Errno(libc::EEXIST).into());
                }
                // A segment that predates its semaphore set is no share head:
                // most likely a data segment 0.17 chained at this key.
                Ok(_) if sem_created && !initialised => return Err(Retry::Fail(Error::NotAShare)),
                Ok(id) => break (id, false),
                Err(Errno(libc::ENOENT)) if flags & libc::IPC_CREAT != 0 => {
                    match sys::shmget(key, size, mode | libc::IPC_CREAT | libc::IPC_EXCL) {
                        Ok(id) => break (id, true),
                        Err(Errno(libc::EEXIST)) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let head = match attach_head(shmid) {
        Ok(h) => h,
        Err(e) => {
            if created {
                let _ = sys::shm_remove(shmid);
            }
            return Err(e);
        }
    };
    if created || !initialised {
        head.init_head();
        if let Err(e) = sys::sem_setval(semid, SEM_INIT as c_int, 1) {
            drop(head);
            if created {
                let _ = sys::shm_remove(shmid);
            }
            return Err(e.into());
        }
    }
    Ok(head)
}

fn attach_head(shmid: c_int) -> std::result::Result<Segment, Retry> {
    let att = sys::Attachment::attach(shmid)?;
    if att.len() <= HEADER {
        return Err(Retry::Fail(Error::Corrupt("the head segment is too small")));
    }
    Ok(Segment::new(att))
}

/// The semaphore set vanished under us (removed by its owner): start again.
fn gone(e: Errno) -> Retry {
    match e.0 {
        libc::EINVAL | libc::EIDRM => Retry::Again,
        _ => Retry::Fail(e.into()),
    }
}
