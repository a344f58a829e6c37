//! Looking at shares from outside, without opening them (doc/FORMAT.md, 8):
//! whether a key holds a share, its header, semaphores and chain as they are
//! at one moment, and which segments are orphans. The `sharelite` command's
//! `list`, `stat` and `gc` show this.
//!
//! Nothing here takes a lock, writes, creates or initialises anything (headers
//! are read through read-only attachments, detached at once); only
//! [`remove_orphan`] removes, and only what it checks again just before. What
//! it reads is a snapshot taken without the share's lock: a store running
//! meanwhile can show as a broken or short chain.

use crate::chain;
use crate::lock::NSEMS;
use crate::orphans::{self, Asker};
use crate::segment::HEADER;
use crate::sys::{self, Errno, Key};

pub use crate::chain::{walk, LinkFault, Walk, WalkStop};
pub use crate::orphans::Reason;
pub use crate::segment::Header;

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Look {
    /// Neither a semaphore set nor a segment.
    Nothing,
    /// Something that is not a share.
    NotAShare(Objects),
    /// A share.
    Share(ShareInfo),
}

/// The SysV objects at a key, and whether each is what a share has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Objects {
    /// The semaphore set's id, if there is one.
    pub semid: Option<i32>,
    /// It has exactly the three semaphores of a share.
    pub three_semaphores: bool,
    /// The segment's id, if there is one.
    pub shmid: Option<i32>,
    /// It is larger than a header, as a share's head is.
    pub holds_data: bool,
}

impl Objects {
    /// What is missing for a share, in words.
    pub fn why_not(&self) -> String {
        let sem = match (self.semid, self.three_semaphores) {
            (Some(_), true) => "a semaphore set of 3",
            (Some(_), false) => "a semaphore set, not of 3",
            (None, _) => "no semaphore set of 3",
        };
        let shm = match (self.shmid, self.holds_data) {
            (Some(_), true) => "a shared memory segment",
            (Some(_), false) => "a shared memory segment of 16 bytes or less",
            (None, _) => "no shared memory segment over 16 bytes",
        };
        format!("{sem}, {shm}")
    }

    fn is_share(&self) -> bool {
        self.three_semaphores && self.holds_data
    }
}

/// The state of a share's chain, seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainState {
    /// Every link sound, long enough for the length.
    Sound,
    /// A link is unsound.
    Fault(LinkFault),
    /// The length needs more segments than the chain has.
    Short,
    /// The length is negative.
    BadLength,
    /// A segment could not be read for lack of permission.
    Unreadable,
    /// A segment could not be read for another reason.
    Failed,
}

impl ChainState {
    /// The state's name, as `sharelite list` shows it.
    pub fn name(self) -> &'static str {
        match self {
            ChainState::Sound => "ok",
            ChainState::Fault(LinkFault::Invalid | LinkFault::Missing) => "broken",
            ChainState::Fault(LinkFault::Loop) => "cycle",
            ChainState::Fault(LinkFault::WrongSize) => "foreign",
            ChainState::Short => "short",
            ChainState::BadLength => "bad-length",
            ChainState::Unreadable => "unreadable",
            ChainState::Failed => "error",
        }
    }
}

/// Everything known about a share from outside. What could not be read
/// (permission) is `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareInfo {
    /// The key.
    pub key: Key,
    /// The head segment's id.
    pub shmid: i32,
    /// The semaphore set's id.
    pub semid: i32,
    /// The segment size (`IPC_STAT` of the head).
    pub segment_size: Option<usize>,
    /// The head's permission bits.
    pub mode: Option<u32>,
    /// The head's owner.
    pub uid: Option<u32>,
    /// The semaphores: initialised, shared locks held, exclusive locks held.
    pub semaphores: Option<[i32; 3]>,
    /// The head's header.
    pub header: Option<Header>,
    /// The segments reached from the head, the head first.
    pub shmids: Vec<i32>,
    /// The chain's state.
    pub chain: ChainState,
    /// What is wrong, in words, unless the chain is sound.
    pub problem: Option<String>,
}

/// What `key` holds: nothing, objects that do not make a share, or a share.
/// A share is a semaphore set of exactly three semaphores and a segment
/// larger than a header at the same key, told without needing permission to
/// read either (`semget` and `shmget` with sizes, no mode bits). The rest is
/// read where permission allows.
pub fn look(key: Key) -> Look {
    let semid = sys::semget(key, 0, 0).ok();
    let shmid = sys::shmget(key, 0, 0).ok();
    if semid.is_none() && shmid.is_none() {
        return Look::Nothing;
    }
    let objects = Objects {
        semid,
        three_semaphores: semid.is_some()
            && sys::semget(key, NSEMS, 0).is_ok()
            && sys::semget(key, NSEMS + 1, 0) == Err(Errno(libc::EINVAL)),
        shmid,
        holds_data: shmid.is_some() && sys::shmget(key, HEADER + 1, 0).is_ok(),
    };
    let (Some(semid), Some(shmid)) = (semid, shmid) else { return Look::NotAShare(objects) };
    if !objects.is_share() {
        return Look::NotAShare(objects);
    }
    let st = sys::shm_stat(shmid).ok();
    let semaphores = match [0, 1, 2].map(|n| sys::sem_getval(semid, n).ok()) {
        [Some(init), Some(readers), Some(writers)] => Some([init, readers, writers]),
        _ => None,
    };
    let mut info = ShareInfo {
        key,
        shmid,
        semid,
        segment_size: st.map(|s| s.size),
        mode: st.map(|s| s.mode),
        uid: st.map(|s| s.uid),
        semaphores,
        header: None,
        shmids: Vec::new(),
        chain: ChainState::Unreadable,
        problem: Some(format!("head segment {shmid}: {}", Errno(libc::EACCES))),
    };
    let Some(size) = info.segment_size else { return Look::Share(info) };
    info.header = Header::peek(shmid, size).ok();
    let walk = chain::walk(shmid, size);
    info.shmids = walk.shmids;
    (info.chain, info.problem) = match (walk.stop, info.header) {
        (Some(stop), _) => (state_of(stop), Some(problem(stop, size))),
        (None, None) => (ChainState::Failed, Some(format!("head segment {shmid}: the header cannot be read"))),
        (None, Some(h)) if h.length < 0 => (ChainState::BadLength, Some(format!("negative length {}", h.length))),
        (None, Some(h)) if chain::segments_for(h.length as usize, size) > info.shmids.len() => {
            (ChainState::Short, Some(format!("length {} needs more than {} segments", h.length, info.shmids.len())))
        }
        (None, Some(_)) => (ChainState::Sound, None),
    };
    Look::Share(info)
}

fn state_of(stop: WalkStop) -> ChainState {
    match stop {
        WalkStop::Fault { fault, .. } => ChainState::Fault(fault),
        WalkStop::Unreadable { .. } => ChainState::Unreadable,
        WalkStop::Failed { .. } => ChainState::Failed,
    }
}

/// Where and why a walk stopped, in the words `sharelite stat` shows.
fn problem(stop: WalkStop, seg_size: usize) -> String {
    let reaching = |after: Option<i32>, shmid: i32| match after {
        Some(after) => format!("segment {after} links to segment {shmid}"),
        None => format!("head segment {shmid}"),
    };
    match stop {
        WalkStop::Fault { after, next, fault: LinkFault::Invalid } => {
            format!("invalid next_shmid {next} after segment {after}")
        }
        WalkStop::Fault { after, next, fault: LinkFault::Loop } => {
            format!("segment {after} links back to segment {next}")
        }
        WalkStop::Fault { after, next, fault: LinkFault::Missing } => {
            format!("{}: {}", reaching(Some(after), next), Errno(libc::EINVAL))
        }
        WalkStop::Fault { next, fault: LinkFault::WrongSize, .. } => match sys::shm_stat(next) {
            Ok(st) => format!("segment {next} is {} bytes, not {seg_size}", st.size),
            Err(_) => format!("segment {next} is not {seg_size} bytes"),
        },
        WalkStop::Unreadable { after, shmid } => format!("{}: {}", reaching(after, shmid), Errno(libc::EACCES)),
        WalkStop::Failed { after, shmid, errno } => format!("{}: {errno}", reaching(after, shmid)),
    }
}

/// A chained segment of ours whose share is gone or no longer reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// Its id.
    pub shmid: i32,
    /// The head it was made for (from its tag).
    pub head: i32,
    /// Its size.
    pub size: usize,
    /// Its permission bits.
    pub mode: u32,
    /// Its owner.
    pub uid: u32,
    /// The process that made it (gone).
    pub cpid: i32,
    /// Why it is an orphan.
    pub reason: Reason,
}

/// Whether segment `shmid` is an orphan that may be removed by a look over
/// the whole host, with no share's lock: private, attached nowhere, made by a
/// process that is gone, tagged in its header as a chained segment of ours,
/// and its head gone or not linking to it (doc/FORMAT.md, 8). Anything that
/// cannot be read or decided is no orphan.
pub fn orphan(shmid: i32) -> Option<Orphan> {
    let st = sys::shm_stat(shmid).ok()?;
    let reason = orphans::verdict(shmid, &st, Asker::Host)?;
    let head = Header::peek(shmid, st.size).ok()?.tagged_head()?;
    Some(Orphan { shmid, head, size: st.size, mode: st.mode, uid: st.uid, cpid: st.cpid, reason })
}

/// Why [`remove_orphan`] removed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRemoved {
    /// Checked again, it is no longer an orphan (or no longer the same
    /// segment: another creator).
    NoLongerOrphan,
    /// `IPC_RMID` failed.
    Os(Errno),
}

impl std::fmt::Display for NotRemoved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRemoved::NoLongerOrphan => f.write_str("no longer an orphan"),
            NotRemoved::Os(e) => write!(f, "{e}"),
        }
    }
}

/// Removes the segment of `o`, found by [`orphan`], after checking again
/// that it still is one, made by the same process.
///
/// # Errors
/// [`NotRemoved`] says why nothing was removed.
pub fn remove_orphan(o: &Orphan) -> std::result::Result<(), NotRemoved> {
    match orphan(o.shmid) {
        Some(now) if now.cpid == o.cpid && now.head == o.head => sys::shm_remove(o.shmid).map_err(NotRemoved::Os),
        _ => Err(NotRemoved::NoLongerOrphan),
    }
}
