//! A share: the handle on one semaphore set and the chain of segments behind
//! one key, with the store, fetch, lock and remove operations of doc/FORMAT.md (5).

use libc::c_int;

use crate::chain::{Chain, Grow};
use crate::error::{Error, Result};
use crate::fetch_cache::{FetchCache, Kept, Plan, Stamp};
use crate::lock::{self, LockKind, Wait};
use crate::open::{self, OpenOptions};
use crate::orphans;
use crate::segment::Segment;
use crate::sys::{self, Key};

/// The longest value the format's int32 length field can describe.
pub const MAX_LENGTH: usize = i32::MAX as usize;

impl OpenOptions {
    /// Opens (or creates) the share.
    ///
    /// A share with no key is private: only this process (and its
    /// children) can use it, and it is removed when the handle is dropped
    /// unless [`OpenOptions::destroy`] says otherwise. A keyed share stays
    /// until removed, unless `destroy(true)` is given.
    ///
    /// ```
    /// use sharelite::OpenOptions;
    /// # let mut key = 0x5e1f_0000 + (std::process::id() % 0x1_0000) as i32;
    /// # let share = loop {
    /// #     match OpenOptions::new().key(key).exclusive(true).open() {
    /// #         Err(e) if e.errno() == sharelite::Error::NotAShare.errno() => key += 1,
    /// #         other => break other?,
    /// #     }
    /// # };
    /// # drop(share); // `key` now holds a share of this example's own
    /// // Open the share at `key`, creating it if needed, readable by this
    /// // user only, and remove it when `share` is dropped.
    /// let share = OpenOptions::new().key(key).create(true).mode(0o600).destroy(true).open()?;
    /// // A private share, removed on drop.
    /// let scratch = OpenOptions::new().create(true).open()?;
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Os`] with `ENOENT` when the share does not exist and
    /// `create` is not set, `EEXIST` with `exclusive` when it exists,
    /// `EACCES` when the mode forbids it, `EINVAL` or `ENOSPC` for a size or
    /// count the system refuses; [`Error::NotAShare`] when the key holds a
    /// segment that is not the head of a share.
    pub fn open(&self) -> Result<Share> {
        let mut share = Share::open_with_flags(self.key, self.size, self.flags())?;
        share.destroy = self.destroy.unwrap_or(self.key == libc::IPC_PRIVATE);
        Ok(share)
    }
}

/// A fetch between [`Share::begin_fetch`] and [`Share::finish_fetch`].
#[derive(Debug)]
struct PendingFetch {
    took_lock: bool,
    seen: Stamp,
    plan: Plan,
}

/// What a handle has of its share: the attached chain until the share is
/// removed through it; after that, only what the accessors report.
#[derive(Debug)]
enum State {
    Open(Chain),
    /// Removed by [`Share::remove`]: the chain was dropped, so nothing is
    /// attached any more.
    Removed {
        shmid: c_int,
        seg_size: usize,
    },
}

impl State {
    /// The chain; [`Error::Removed`] once removed.
    fn chain(&self) -> Result<&Chain> {
        match self {
            State::Open(chain) => Ok(chain),
            State::Removed { .. } => Err(Error::Removed),
        }
    }

    /// The chain, to change; [`Error::Removed`] once removed.
    fn chain_mut(&mut self) -> Result<&mut Chain> {
        match self {
            State::Open(chain) => Ok(chain),
            State::Removed { .. } => Err(Error::Removed),
        }
    }
}

/// An open share.
///
/// Segments stay attached between calls; the chain is re-read only when the
/// head's `shm_state` says it changed. Locks held through this handle are
/// released when it is dropped (in the process that took them).
#[derive(Debug)]
pub struct Share {
    key: Key,
    semid: c_int,
    state: State,
    lock: Option<LockKind>,
    cache: FetchCache,
    pending: Option<PendingFetch>,
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
    pub(crate) fn open_with_flags(key: Key, size: usize, flags: c_int) -> Result<Share> {
        let opened = open::open(key, size, flags)?;
        Ok(Share::with_head(key, opened.semid, flags & 0o777, opened.head))
    }

    fn with_head(key: Key, semid: c_int, mode: c_int, head: Segment) -> Share {
        Share {
            key,
            semid,
            state: State::Open(Chain::new(head, mode)),
            lock: None,
            cache: FetchCache::default(),
            pending: None,
            destroy: false,
            pid: std::process::id(),
        }
    }

    /// A second, independent handle on the same share (for another thread):
    /// same semaphore set and head, no lock held.
    ///
    /// # Errors
    /// [`Error::Removed`] after [`Share::remove`]; [`Error::Os`] when the head
    /// cannot be attached again (it was removed elsewhere, or the system's limit
    /// of attachments is reached).
    pub fn try_clone(&self) -> Result<Share> {
        let chain = self.state.chain()?;
        let att = sys::Attachment::attach_sized(chain.head().shmid(), chain.seg_size())?;
        Ok(Share::with_head(self.key, self.semid, chain.mode(), Segment::new(att)))
    }

    /// The key the share was opened with.
    #[must_use]
    pub fn key(&self) -> Key {
        self.key
    }
    /// The semaphore set's id.
    #[must_use]
    pub fn semid(&self) -> c_int {
        self.semid
    }
    /// The head segment's id.
    #[must_use]
    pub fn shmid(&self) -> c_int {
        match &self.state {
            State::Open(chain) => chain.head().shmid(),
            State::Removed { shmid, .. } => *shmid,
        }
    }
    /// The size of every segment (the head's real size), header included.
    #[must_use]
    pub fn segment_size(&self) -> usize {
        match &self.state {
            State::Open(chain) => chain.seg_size(),
            State::Removed { seg_size, .. } => *seg_size,
        }
    }
    /// The lock this handle holds.
    #[must_use]
    pub fn held(&self) -> Option<LockKind> {
        self.lock
    }

    /// The start of every call that acts on the share: fails after
    /// [`Share::remove`], and ends a fetch the caller left half done (one
    /// [`Share::begin_fetch`] not followed by [`Share::finish_fetch`]),
    /// releasing the lock it took. Whether the caller kept what that fetch
    /// found is unknown, so the next fetch copies.
    fn enter(&mut self) -> Result<()> {
        self.state.chain()?;
        if let Some(p) = self.pending.take() {
            self.cache.forget();
            if p.took_lock {
                let _ = lock::release(self.semid, LockKind::Shared);
            }
        }
        Ok(())
    }

    /// The head's version: 1 when created, +1 for every store (wrapping).
    /// Read without a lock, as 0.17 does.
    ///
    /// ```
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// let before = share.version()?;
    /// share.store(b"x")?;
    /// assert_eq!(share.version()?, before.wrapping_add(1));
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Removed`] after [`Share::remove`].
    pub fn version(&self) -> Result<u32> {
        Ok(self.state.chain()?.head().version())
    }

    // ----- locking -------------------------------------------------------

    /// Takes a lock. Returns `Ok(false)` when `wait` is [`Wait::No`] and the
    /// lock is taken elsewhere, or when a [`Wait::For`] timeout expires.
    ///
    /// Asking for the kind already held succeeds at once. Asking for the other
    /// kind first releases the one held (as 0.17 does): if the new one cannot
    /// be had, the handle holds none.
    ///
    /// ```
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
    ///
    /// # Errors
    /// [`Error::Removed`] after [`Share::remove`]; [`Error::Os`] with `EINTR`
    /// when a signal interrupted the wait, `EIDRM`/`EINVAL` when the share was
    /// removed elsewhere.
    pub fn lock(&mut self, kind: LockKind, wait: Wait) -> Result<bool> {
        self.enter()?;
        if self.lock == Some(kind) {
            return Ok(true);
        }
        self.unlock()?;
        let got = lock::take(self.semid, kind, wait)?;
        if got {
            self.lock = Some(kind);
        }
        Ok(got)
    }

    /// Takes a lock held until the returned guard is dropped; `Ok(None)` when
    /// `wait` gave up (see [`Share::lock`]). The guard gives access to the
    /// share's methods meanwhile.
    ///
    /// ```
    /// # use sharelite::{OpenOptions, LockKind, Wait};
    /// let mut share = OpenOptions::new().create(true).open()?;
    /// if let Some(mut held) = share.lock_guard(LockKind::Exclusive, Wait::No)? {
    ///     let n: u64 = String::from_utf8_lossy(&held.fetch()?).parse().unwrap_or(0);
    ///     held.store((n + 1).to_string().as_bytes())?;
    /// }
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Share::lock`].
    pub fn lock_guard(&mut self, kind: LockKind, wait: Wait) -> Result<Option<LockGuard<'_>>> {
        if self.lock(kind, wait)? {
            Ok(Some(LockGuard { share: self }))
        } else {
            Ok(None)
        }
    }

    /// Releases whatever lock this handle holds (nothing held is fine).
    ///
    /// # Errors
    /// [`Error::Removed`] after [`Share::remove`]; [`Error::Os`] when the
    /// semaphore set was removed elsewhere.
    pub fn unlock(&mut self) -> Result<()> {
        self.enter()?;
        if let Some(kind) = self.lock.take() {
            lock::release(self.semid, kind)?;
        }
        Ok(())
    }

    /// Runs `f` holding the exclusive lock, then puts the handle's lock back
    /// as it was, on every path.
    fn with_exclusive<T>(&mut self, f: impl FnOnce(&mut Share) -> Result<T>) -> Result<T> {
        self.enter()?;
        let before = self.lock;
        if before != Some(LockKind::Exclusive) {
            self.lock(LockKind::Exclusive, Wait::Forever)?;
        }
        let out = f(self);
        if before != Some(LockKind::Exclusive) {
            let released = self.unlock();
            if before == Some(LockKind::Shared) {
                // The work is done: a signal must not make it look failed.
                lock::take_restarting(self.semid, LockKind::Shared)?;
                self.lock = Some(LockKind::Shared);
            }
            released?;
        }
        out
    }

    /// Runs `f` holding at least the shared lock (taking it unless a lock is
    /// held), releasing what was taken here on every path.
    fn with_shared<T>(&mut self, f: impl FnOnce(&mut Share) -> Result<T>) -> Result<T> {
        let took_lock = self.lock.is_none();
        if took_lock {
            lock::take(self.semid, LockKind::Shared, Wait::Forever)?;
        }
        let out = f(self);
        if took_lock {
            let _ = lock::release(self.semid, LockKind::Shared);
        }
        out
    }

    // ----- store / fetch -------------------------------------------------

    /// Stores `value` (doc/FORMAT.md, 5.3 "Store"), taking the exclusive lock unless this
    /// handle holds it. The chain is grown first, so a failure to get a
    /// segment leaves the old value whole; a writer killed at any instant
    /// leaves a chain both implementations can use.
    ///
    /// ```
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// share.store(b"any bytes, of any length")?;
    /// share.store(&vec![0u8; 1 << 20])?; // grows the chain as needed
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TooLong`] for a value over [`MAX_LENGTH`]; [`Error::Removed`];
    /// [`Error::Os`] when the lock cannot be had or a segment cannot be created
    /// (`ENOSPC`, `ENOMEM`: the system's limits; every segment the store made is
    /// removed again, and the old value stays whole).
    pub fn store(&mut self, value: &[u8]) -> Result<()> {
        if value.len() > MAX_LENGTH {
            return Err(Error::TooLong(value.len()));
        }
        self.with_exclusive(|s| s.store_locked(value))
    }

    fn store_locked(&mut self, value: &[u8]) -> Result<()> {
        let chain = self.state.chain_mut()?;
        chain.sync_state();
        let in_use = chain.segments_for(chain.head().length().max(0) as usize);
        chain.drop_removed_surplus(in_use);
        let needed = chain.segments_for(value.len());
        chain.ensure(needed, Grow::Yes)?;

        let head = chain.head();
        head.set_length(0);
        chain.write_value(value);
        // The version first: a writer killed before the length is set leaves
        // an empty value under a new version, never an old stamp on new data.
        head.set_version(head.version().wrapping_add(1));
        head.set_length(value.len() as i32);
        chain.trim(needed);
        Ok(())
    }

    /// First half of a fetch: takes the shared lock unless a lock is held,
    /// validates the header and attaches what the value needs. Returns the
    /// value's length and what the caller, holding `kept`, does with it
    /// ([`FetchCache::plan`]). Must be followed by [`Share::finish_fetch`];
    /// any other call ends it first.
    pub(crate) fn begin_fetch(&mut self, kept: Kept) -> Result<(usize, Plan)> {
        self.enter()?;
        let took_lock = self.lock.is_none();
        if took_lock {
            lock::take(self.semid, LockKind::Shared, Wait::Forever)?;
        }
        match self.fetch_prepare(kept) {
            Ok((seen, plan)) => {
                self.pending = Some(PendingFetch { took_lock, seen, plan });
                Ok((seen.len(), plan))
            }
            Err(e) => {
                if took_lock {
                    let _ = lock::release(self.semid, LockKind::Shared);
                }
                Err(e)
            }
        }
    }

    fn fetch_prepare(&mut self, kept: Kept) -> Result<(Stamp, Plan)> {
        let chain = self.state.chain_mut()?;
        chain.sync_state();
        let head = chain.head();
        let length = head.length();
        if length < 0 {
            return Err(Error::Corrupt("negative length"));
        }
        let seen = Stamp { version: head.version(), length, shm_state: chain.shm_state() };
        let plan = self.cache.plan(seen, kept);
        if plan != Plan::Unchanged {
            chain.ensure(chain.segments_for(seen.len()), Grow::No)?;
        }
        Ok((seen, plan))
    }

    /// Second half of a fetch: copies the value into `out` (exactly the length
    /// `begin_fetch` returned; `None` to hand out the caller's unchanged
    /// copy) and releases the lock `begin_fetch` took.
    pub(crate) fn finish_fetch(&mut self, out: Option<&mut [u8]>) {
        let Some(p) = self.pending.take() else { return };
        // A fetch is pending only on an open share: `remove` ends it first.
        let copied = match (out, self.state.chain()) {
            (Some(buf), Ok(chain)) => {
                let n = p.seen.len().min(buf.len());
                chain.read_value(&mut buf[..n]);
                Some(n)
            }
            _ => None,
        };
        self.cache.finished(p.seen, p.plan, copied);
        if p.took_lock {
            let _ = lock::release(self.semid, LockKind::Shared);
        }
    }

    /// Fetches the value into `buf` (cleared first, then filled).
    ///
    /// ```
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// let mut buf = Vec::new();
    /// for _ in 0..3 {
    ///     share.fetch_into(&mut buf)?; // reuses buf's allocation
    ///     println!("{} bytes", buf.len());
    /// }
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the header or the chain breaks the format (a
    /// loop, a length past the chain, a dangling link): nothing is changed;
    /// [`Error::Removed`]; [`Error::Os`] when the lock cannot be had.
    pub fn fetch_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let (len, _) = self.begin_fetch(Kept::NONE)?;
        buf.clear();
        buf.resize(len, 0);
        self.finish_fetch(Some(buf));
        Ok(())
    }

    /// Fetches the value.
    ///
    /// ```
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// let value = share.fetch()?; // empty when nothing was stored
    /// assert!(value.is_empty());
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Share::fetch_into`].
    pub fn fetch(&mut self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.fetch_into(&mut v)?;
        Ok(v)
    }

    /// The number of segments in the chain, head included.
    ///
    /// ```
    /// # let mut share = sharelite::OpenOptions::new().create(true).size(4096).open()?;
    /// share.store(&[7u8; 10_000])?;
    /// assert_eq!(share.num_segments()?, 3); // 4080 data bytes per segment
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Share::fetch_into`].
    pub fn num_segments(&mut self) -> Result<usize> {
        self.enter()?;
        self.with_shared(|s| {
            let chain = s.state.chain_mut()?;
            chain.sync_state();
            chain.attach_all()
        })
    }

    // ----- removal -------------------------------------------------------

    /// Removes the share: every segment of the chain (and chained segments of
    /// ours orphaned by killed writers), then the semaphore set. Takes the
    /// exclusive lock first. Later calls on this handle fail with `EIDRM`.
    ///
    /// ```
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// share.remove()?;
    /// assert!(share.fetch().is_err());
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Removed`] when already removed through this handle;
    /// [`Error::Os`] when the lock cannot be had or the semaphore set is gone.
    pub fn remove(&mut self) -> Result<()> {
        self.enter()?;
        if self.lock != Some(LockKind::Exclusive) {
            self.lock(LockKind::Exclusive, Wait::Forever)?;
        }
        let chain = self.state.chain_mut()?;
        let (head, seg_size) = (chain.head().shmid(), chain.seg_size());
        let head_ctime = sys::shm_stat(head).ok().map(|st| st.ctime);
        chain.trim(1);
        let _ = sys::shm_remove(head);
        orphans::sweep(head, head_ctime, seg_size, chain.mode());
        // Dropping the chain unmaps the head now, so the segment goes at
        // once; the handle keeps only what its accessors report.
        self.state = State::Removed { shmid: head, seg_size };
        self.lock = None;
        self.cache.forget();
        sys::sem_remove(self.semid)?;
        Ok(())
    }
}

/// The split fetch and the open by raw `shmget(2)` flags that the C ABI
/// crate (`sharelite-ffi`) needs: the XS asks for the length, allocates a
/// Perl string, then has it filled, under one shared lock.
#[cfg(feature = "internals")]
pub trait ShareInternals: Sized {
    /// Opens the share at `key` with `shmget(2)`-style `flags` (mode bits,
    /// `IPC_CREAT`, `IPC_EXCL`), as 0.17's `new_share` does.
    ///
    /// # Errors
    /// As [`OpenOptions::open`].
    fn open_raw(key: Key, size: usize, flags: c_int) -> Result<Self>;
    /// First half of a fetch: takes the shared lock unless a lock is held,
    /// validates the header and attaches what the value needs. Returns the
    /// value's length and what the caller, holding `kept`, does with it (the
    /// fetch cache's decision, `fetch_cache.rs`). Must be followed by
    /// [`ShareInternals::fetch_finish`]; any other call ends it.
    ///
    /// # Errors
    /// As [`Share::fetch`].
    fn fetch_begin(&mut self, kept: Kept) -> Result<(usize, Plan)>;
    /// Second half of a fetch: copies the value into `out` (exactly the
    /// length `fetch_begin` returned; `None` to hand out the caller's
    /// unchanged copy) and releases the lock `fetch_begin` took.
    fn fetch_finish(&mut self, out: Option<&mut [u8]>);
}

#[cfg(feature = "internals")]
impl ShareInternals for Share {
    fn open_raw(key: Key, size: usize, flags: c_int) -> Result<Share> {
        Share::open_with_flags(key, size, flags)
    }
    fn fetch_begin(&mut self, kept: Kept) -> Result<(usize, Plan)> {
        self.begin_fetch(kept)
    }
    fn fetch_finish(&mut self, out: Option<&mut [u8]>) {
        self.finish_fetch(out)
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
        if matches!(self.state, State::Open(_)) && self.pid == std::process::id() {
            if self.destroy {
                let _ = self.remove();
            } else {
                let _ = self.unlock();
            }
        }
    }
}
