//! A share: the handle on one semaphore set and the chain of segments behind
//! one key, with the store, fetch, lock and remove operations of doc/FORMAT.md (5).

use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use libc::c_int;

use crate::attachments::{self, Evict};
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
    /// # let mut key: sharelite::Key = 0x5e1f_0000 + (std::process::id() % 0x1_0000) as sharelite::Key;
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
        let opened = open::open(self.key, self.size, self.flags())?;
        let mut share = Share::with_head(self.key, opened.semid, opened.head);
        share.destroy = self.destroy.unwrap_or(self.key == libc::IPC_PRIVATE);
        Ok(share)
    }
}

/// A handle's chain, behind a lock of its own so that, while the handle is
/// not in a call, another handle of the process that needs room can make it
/// let go of its attachments (`attachments.rs`). The lock is this process's
/// only; it is never contended in a call but by such a request.
type SharedChain = Arc<Mutex<Chain>>;

impl Evict for Mutex<Chain> {
    fn evict_if_idle(&self) {
        match self.try_lock() {
            Ok(mut chain) => chain.evict(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().evict(),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
    }
}

/// The chain in use for one call: attached head, and on the way out
/// (whatever the path) the chain settles within the budget of attachments.
struct InCall<'a>(MutexGuard<'a, Chain>);

impl<'a> InCall<'a> {
    fn enter(chain: &'a SharedChain) -> Result<InCall<'a>> {
        let mut guard = chain.lock().unwrap_or_else(PoisonError::into_inner);
        guard.ready()?;
        Ok(InCall(guard))
    }
}

impl std::ops::Deref for InCall<'_> {
    type Target = Chain;
    fn deref(&self) -> &Chain {
        &self.0
    }
}

impl std::ops::DerefMut for InCall<'_> {
    fn deref_mut(&mut self) -> &mut Chain {
        &mut self.0
    }
}

impl Drop for InCall<'_> {
    fn drop(&mut self) {
        self.0.settle();
    }
}

/// How a handle came to be, which decides whether dropping it may remove
/// the share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Opened by [`OpenOptions::open`]: removes the share when dropped with
    /// `destroy` set.
    Opened,
    /// Made by [`Share::try_clone`] (a Perl thread's copy of an object):
    /// never removes the share when dropped, whatever `destroy` says.
    Cloned,
}

/// An open share.
///
/// Segments stay attached between calls; the chain is re-read only when the
/// head's `shm_state` says it changed.
///
/// Dropping a handle, in the process that opened it, releases the lock it
/// holds, and removes the share when [`Share::set_destroy`] (or
/// [`OpenOptions::destroy`]) asked for it and the handle was not made by
/// [`Share::try_clone`]. In any other process (a forked child's copy) it only
/// unmaps: `SEM_UNDO` bookkeeping is per process, so a child must not undo
/// its parent's lock, nor remove its parent's share. This is the one place
/// that rule is decided (doc/FORMAT.md, 6 "Locks are kept exact").
#[derive(Debug)]
pub struct Share {
    key: Key,
    semid: c_int,
    shmid: c_int,
    seg_size: usize,
    /// The chain; `None` once removed through this handle.
    chain: Option<SharedChain>,
    lock: Option<LockKind>,
    cache: FetchCache,
    destroy: bool,
    origin: Origin,
    pid: u32,
}

impl Share {
    fn with_head(key: Key, semid: c_int, head: Segment) -> Share {
        let (shmid, seg_size) = (head.shmid(), head.len());
        let chain: SharedChain = Arc::new(Mutex::new(Chain::new(head)));
        let holder: std::sync::Weak<dyn Evict> = Arc::downgrade(&chain) as _;
        attachments::register(holder);
        Share {
            key,
            semid,
            shmid,
            seg_size,
            chain: Some(chain),
            lock: None,
            cache: FetchCache::default(),
            destroy: false,
            origin: Origin::Opened,
            pid: std::process::id(),
        }
    }

    /// A second, independent handle on the same share (for another thread):
    /// same semaphore set and head, no lock held. Dropping it never removes
    /// the share, whatever [`Share::set_destroy`] says: only the handle that
    /// opened the share does.
    ///
    /// # Errors
    /// [`Error::Removed`] after [`Share::remove`]; [`Error::Os`] when the head
    /// cannot be attached again (it was removed elsewhere, or the system's limit
    /// of attachments is reached).
    pub fn try_clone(&self) -> Result<Share> {
        self.open_chain()?;
        let head = Segment::attach_sized(self.shmid, self.seg_size)?;
        let mut copy = Share::with_head(self.key, self.semid, head);
        copy.destroy = self.destroy;
        copy.origin = Origin::Cloned;
        Ok(copy)
    }

    /// Whether dropping this handle removes the share (see [`Share`]).
    pub fn set_destroy(&mut self, yes: bool) {
        self.destroy = yes;
    }

    /// What [`Share::set_destroy`] last set (or [`OpenOptions::destroy`]).
    #[must_use]
    pub fn destroy(&self) -> bool {
        self.destroy
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
        self.shmid
    }
    /// The size of every segment (the head's real size), header included.
    #[must_use]
    pub fn segment_size(&self) -> usize {
        self.seg_size
    }

    /// The chain; [`Error::Removed`] once removed through this handle.
    fn open_chain(&self) -> Result<&SharedChain> {
        self.chain.as_ref().ok_or(Error::Removed)
    }

    /// The chain for one call ([`InCall`]).
    fn in_call(&self) -> Result<InCall<'_>> {
        InCall::enter(self.open_chain()?)
    }
    /// The lock this handle holds.
    #[must_use]
    pub fn held(&self) -> Option<LockKind> {
        self.lock
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
        Ok(self.in_call()?.head().version())
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
        self.open_chain()?;
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
        self.open_chain()?;
        if let Some(kind) = self.lock.take() {
            lock::release(self.semid, kind)?;
        }
        Ok(())
    }

    /// Runs `f` holding the exclusive lock, then puts the handle's lock back
    /// as it was, on every path.
    fn with_exclusive<T>(&mut self, f: impl FnOnce(&mut Share) -> Result<T>) -> Result<T> {
        self.open_chain()?;
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
    /// held), releasing what was taken here on every path, a panic in `f`
    /// included.
    fn with_shared<T>(&mut self, f: impl FnOnce(&mut Share) -> Result<T>) -> Result<T> {
        self.open_chain()?;
        let _taken = if self.lock.is_none() { Some(lock::Held::take_shared(self.semid)?) } else { None };
        f(self)
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
        let mut chain = self.in_call()?;
        chain.sync_state();
        let in_use = chain.segments_for(chain.head().length().max(0) as usize);
        chain.drop_removed_surplus(in_use)?;
        let needed = chain.segments_for(value.len());
        chain.ensure(needed, Grow::Yes)?;

        chain.head().set_length(0);
        chain.write_value(value)?;
        // The version first: a writer killed before the length is set leaves
        // an empty value under a new version, never an old stamp on new data.
        let head = chain.head();
        head.set_version(head.version().wrapping_add(1));
        head.set_length(value.len() as i32);
        chain.trim(needed);
        Ok(())
    }

    /// Fetches the value into memory that `dest` provides once the length is
    /// known: the shared lock (unless this handle holds a lock) is taken and
    /// released within this call, and the value is copied once, straight
    /// from the segments into the slice `dest` returns.
    ///
    /// `kept` tells what the caller holds from its earlier fetches through
    /// this handle, and the handle's fetch cache decides what to do
    /// (`Plan`, see its variants): with [`Plan::Unchanged`] nothing was
    /// stored since the caller's kept copy was fetched, so `dest` is not
    /// called and the caller hands out its copy again; otherwise `dest` is
    /// called once with the value's length and the plan, and the value is
    /// copied into what it returns (only as much as fits: a shorter slice
    /// gets the value's first bytes, and the fetch does not count as
    /// complete for the cache). A caller that keeps nothing passes
    /// [`Kept::NONE`].
    ///
    /// ```
    /// use sharelite::{Kept, Plan};
    /// # let mut share = sharelite::OpenOptions::new().create(true).open()?;
    /// share.store(b"hello")?;
    /// let mut page = [0u8; 4096];
    /// let mut len = 0;
    /// share.fetch_with(Kept::NONE, |n, _| {
    ///     len = n.min(page.len());
    ///     &mut page[..len]
    /// })?;
    /// assert_eq!(&page[..len], b"hello");
    ///
    /// // Keeping a copy: an unchanged value is not copied again.
    /// let mut kept = Vec::new();
    /// share.fetch_with(Kept::NONE, |n, _| {
    ///     kept.resize(n, 0);
    ///     &mut kept[..]
    /// })?;
    /// let plan = share.fetch_with(Kept { copy: true, room: 0 }, |_, _| unreachable!())?;
    /// assert_eq!(plan, Plan::Unchanged);
    /// # Ok::<(), sharelite::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Share::fetch_into`]; `dest` is not called then.
    pub fn fetch_with<'b>(&mut self, kept: Kept, dest: impl FnOnce(usize, Plan) -> &'b mut [u8]) -> Result<Plan> {
        if self.lock.is_none() && self.unchanged_unlocked(kept)? {
            return Ok(Plan::Unchanged);
        }
        self.with_shared(|s| {
            let Share { chain, cache, .. } = s;
            let mut chain = InCall::enter(chain.as_ref().ok_or(Error::Removed)?)?;
            chain.sync_state();
            let head = chain.head();
            let length = head.length();
            if length < 0 {
                return Err(Error::Corrupt("negative length"));
            }
            let seen = Stamp { version: head.version(), length, shm_state: chain.shm_state() };
            let plan = cache.plan(seen, kept);
            if plan == Plan::Unchanged {
                cache.finished(seen, plan, None);
                return Ok(plan);
            }
            let needed = chain.segments_for(seen.len());
            chain.ensure(needed, Grow::No)?;
            let buf = dest(seen.len(), plan);
            let n = seen.len().min(buf.len());
            chain.read_value(&mut buf[..n])?;
            cache.finished(seen, plan, Some(n));
            Ok(plan)
        })
    }

    /// True when the caller's kept copy is still the value, told without the
    /// lock: the head's stamp, the writer semaphore, the stamp again
    /// ([`FetchCache::unchanged_unlocked`] says why that is enough).
    fn unchanged_unlocked(&self, kept: Kept) -> Result<bool> {
        let chain = InCall::enter(self.open_chain()?)?;
        let head = chain.head();
        // The stamp's loads stay on their side of the semaphore read: after
        // whatever came before (the first time, nothing that matters; the
        // second, the system call's read of the semaphore), before whatever
        // comes after.
        let stamp = || {
            fence(Ordering::Acquire);
            let seen = Stamp { version: head.version(), length: head.length(), shm_state: head.shm_state() };
            fence(Ordering::Acquire);
            seen
        };
        Ok(self.cache.unchanged_unlocked(kept, stamp, || lock::writer_idle(self.semid)))
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
        self.fetch_with(Kept::NONE, |len, _| {
            buf.clear();
            buf.resize(len, 0);
            buf.as_mut_slice()
        })?;
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
        self.with_shared(|s| {
            let mut chain = s.in_call()?;
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
        self.open_chain()?;
        if self.lock != Some(LockKind::Exclusive) {
            self.lock(LockKind::Exclusive, Wait::Forever)?;
        }
        let (head, seg_size) = (self.shmid, self.seg_size);
        let head_stat = sys::shm_stat(head).ok();
        // The chain as it is now, from the head: what this handle reached
        // earlier may have been cut and relinked by others since.
        let mut chain = self.in_call()?;
        chain.forget_rest();
        chain.trim(1);
        drop(chain);
        let _ = sys::shm_remove(head);
        orphans::sweep(head, head_stat, seg_size);
        // Dropping the chain unmaps the head now, so the segment goes at
        // once; the handle keeps only what its accessors report.
        self.chain = None;
        self.lock = None;
        self.cache.forget();
        sys::sem_remove(self.semid)?;
        Ok(())
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
    /// The rule of [`Share`]'s docs: only in the opening process; removal
    /// only through the handle that opened the share.
    fn drop(&mut self) {
        if self.chain.is_some() && self.pid == std::process::id() {
            if self.destroy && self.origin == Origin::Opened {
                let _ = self.remove();
            } else {
                let _ = self.unlock();
            }
        }
    }
}
