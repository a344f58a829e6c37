//! Opening a share (doc/FORMAT.md, 5.1 "Open"): the options, the races between
//! processes creating the same key, and the one-time head initialisation.
//! (`OpenOptions::open`, which makes the [`Share`](crate::Share), is in `share.rs`.)

use libc::c_int;

use crate::error::{Error, Result};
use crate::lock::{self, NSEMS, SEM_INIT};
use crate::segment::{Segment, HEADER};
use crate::sys::{self, Errno, Key, IPC_CREAT, IPC_EXCL, IPC_PRIVATE};

/// Segment size used when none (or one of at most 16 bytes) is asked for.
pub const DEFAULT_SIZE: usize = 65536;

/// How to open a share; see [`OpenOptions::open`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub(crate) key: Key,
    create: bool,
    exclusive: bool,
    mode: u32,
    pub(crate) size: usize,
    pub(crate) destroy: Option<bool>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            key: IPC_PRIVATE,
            create: false,
            exclusive: false,
            mode: 0o666,
            size: DEFAULT_SIZE,
            destroy: None,
        }
    }
}

impl OpenOptions {
    /// Options for opening an existing share with 0.17's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// The SysV key; `IPC_PRIVATE` (0) makes a share no other process can open by key.
    pub fn key(&mut self, key: Key) -> &mut Self {
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
    /// Remove the share when the [`Share`](crate::Share) is dropped, in the
    /// process that opened it (a forked child's copy never removes it).
    /// Default: yes for a private share (no key), no for a keyed one.
    pub fn destroy(&mut self, yes: bool) -> &mut Self {
        self.destroy = Some(yes);
        self
    }
    /// The equivalent `shmget(2)` flags.
    pub(crate) fn flags(&self) -> c_int {
        let mut f = self.mode as c_int;
        if self.create || self.exclusive {
            f |= IPC_CREAT;
        }
        if self.exclusive {
            f |= IPC_EXCL;
        }
        f
    }
}

/// The objects of an open share, as the open protocol leaves them.
pub(crate) struct Opened {
    pub semid: c_int,
    pub head: Segment,
}

/// Opens the share at `key` with `shmget(2)`-style `flags` (mode bits,
/// `IPC_CREAT`, `IPC_EXCL`), as 0.17's `new_share` does.
pub(crate) fn open(key: Key, size: usize, flags: c_int) -> Result<Opened> {
    let size = if size <= HEADER { DEFAULT_SIZE } else { size };
    loop {
        let (semid, sem_created) = open_semaphores(key, flags)?;
        match (HeadOpen { key, size, flags, semid, sem_created }).open() {
            Err(Retry::Again) => continue,
            Err(Retry::Fail(e)) => {
                if sem_created {
                    let _ = sys::sem_remove(semid);
                }
                return Err(e);
            }
            Ok(head) => return Ok(Opened { semid, head }),
        }
    }
}

/// Why an open attempt stopped.
enum Retry {
    /// The semaphore set vanished under us (removed by its owner): start again.
    Again,
    Fail(Error),
}

impl From<Errno> for Retry {
    fn from(e: Errno) -> Retry {
        Retry::Fail(e.into())
    }
}

/// Step 1: the semaphore set. Returns whether this call created it.
fn open_semaphores(key: Key, flags: c_int) -> Result<(c_int, bool)> {
    let mode = flags & 0o777;
    if key == IPC_PRIVATE {
        return Ok((sys::semget(key, NSEMS, mode | IPC_CREAT)?, true));
    }
    if flags & IPC_EXCL != 0 {
        return Ok((sys::semget(key, NSEMS, mode | IPC_CREAT | IPC_EXCL)?, true));
    }
    let found = find_or_create(
        flags & IPC_CREAT != 0,
        || sys::semget(key, NSEMS, mode),
        || sys::semget(key, NSEMS, mode | IPC_CREAT | IPC_EXCL),
    )?;
    Ok(found)
}

/// The object `find` opens, or where there is none and `create` is set, the
/// one `make` creates exclusively; when another process creates it first,
/// `find` is asked again. Returns the id and whether this call created it.
fn find_or_create(
    create: bool,
    find: impl Fn() -> sys::Result<c_int>,
    make: impl Fn() -> sys::Result<c_int>,
) -> sys::Result<(c_int, bool)> {
    loop {
        match find() {
            Ok(id) => return Ok((id, false)),
            Err(Errno(libc::ENOENT)) if create => match make() {
                Ok(id) => return Ok((id, true)),
                Err(Errno(libc::EEXIST)) => continue,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

/// Steps 2 to 6: the head segment at `key`, initialised once, for the
/// semaphore set `semid` that step 1 opened (and created, if `sem_created`).
#[derive(Clone, Copy)]
struct HeadOpen {
    key: Key,
    size: usize,
    flags: c_int,
    semid: c_int,
    sem_created: bool,
}

impl HeadOpen {
    fn open(&self) -> std::result::Result<Segment, Retry> {
        let HeadOpen { key, flags, semid, sem_created, .. } = *self;
        // An initialised share can be attached without the lock: nothing here
        // reads the header, and every later read takes a lock first.
        if !sem_created && sys::sem_getval(semid, SEM_INIT as c_int).map_err(gone)? == 1 {
            match sys::shmget(key, 0, flags & 0o777) {
                Ok(id) => return attach_head(id),
                Err(Errno(libc::ENOENT)) if flags & IPC_CREAT != 0 => {}
                Err(e) => return Err(e.into()),
            }
        }
        lock::take_exclusive_raw(semid).map_err(gone)?;
        let res = self.open_locked();
        let _ = lock::release(semid, lock::LockKind::Exclusive);
        res
    }

    fn open_locked(&self) -> std::result::Result<Segment, Retry> {
        let HeadOpen { key, size, flags, semid, sem_created } = *self;
        let mode = flags & 0o777;
        let initialised = sys::sem_getval(semid, SEM_INIT as c_int)? == 1;
        let (shmid, created) = if key == IPC_PRIVATE {
            (sys::shmget(key, size, mode | IPC_CREAT)?, true)
        } else {
            let (id, created) = find_or_create(
                flags & IPC_CREAT != 0,
                || sys::shmget(key, 0, mode),
                || sys::shmget(key, size, mode | IPC_CREAT | IPC_EXCL),
            )?;
            if !created && flags & IPC_EXCL != 0 {
                return Err(Errno(libc::EEXIST).into());
            }
            // A segment that predates its semaphore set is no share head: most
            // likely a data segment 0.17 chained at this key.
            if !created && sem_created && !initialised {
                return Err(Retry::Fail(Error::NotAShare));
            }
            (id, created)
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
}

fn attach_head(shmid: c_int) -> std::result::Result<Segment, Retry> {
    let size = sys::shm_stat(shmid)?.size;
    if size <= HEADER {
        return Err(Retry::Fail(Error::Corrupt("the head segment is too small")));
    }
    Ok(Segment::attach_sized(shmid, size)?)
}

/// The set vanished under us (removed by its owner): start again.
fn gone(e: Errno) -> Retry {
    match e.0 {
        libc::EINVAL | libc::EIDRM => Retry::Again,
        _ => Retry::Fail(e.into()),
    }
}
