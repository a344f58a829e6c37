//! The chain of segments behind a share (doc/FORMAT.md, 1 and 3): the head,
//! the segments reached after it, and the rules for following, validating,
//! growing, trimming and repairing links.
//!
//! Links come from shared memory that any process (or a killed writer) may
//! have left in any state, so every link is checked before it is followed
//! ([`follow`], [`LinkFault`]): an id seen before is a loop, a segment of
//! another size is not ours, a missing one is a dangling link. A reader
//! refuses such a chain; a writer holding the exclusive lock cuts the link
//! and carries on. The same checks serve the look from outside
//! (`inspect.rs`).
//!
//! Segments are attached as they are reached and stay attached between
//! calls, within the budget of `attachments.rs`: when the system refuses an
//! attachment (`EMFILE`), the chain lets go of its other segments past the
//! head and tries again, and at the end of a call over the budget
//! ([`Chain::settle`]) it forgets what it reached, so that the next call
//! follows the links again.

use std::collections::HashSet;

use libc::c_int;

use crate::attachments;
use crate::error::{Error, Result};
use crate::segment::{Attached, Header, Segment, HEADER};
use crate::sys::{self, Errno};

/// How many segments (head included) a value of `len` bytes occupies in a
/// chain of `seg_size`-byte segments: each holds `seg_size - HEADER` bytes of
/// it, and even an empty value has its head (doc/FORMAT.md, 3).
pub fn segments_for(len: usize, seg_size: usize) -> usize {
    len.div_ceil(seg_size - HEADER).max(1)
}

/// What is wrong with a link (doc/FORMAT.md, 6 "Everything read is checked").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkFault {
    /// A negative id other than -1.
    Invalid,
    /// An id already in the chain.
    Loop,
    /// No segment has that id (any more).
    Missing,
    /// The segment has another size than the head.
    WrongSize,
}

impl LinkFault {
    /// The fault in words, as [`Error::Corrupt`] reports it.
    pub fn why(self) -> &'static str {
        match self {
            LinkFault::Invalid => "invalid segment id in the chain",
            LinkFault::Loop => "the segment chain loops",
            LinkFault::Missing => "the chain links to a segment that does not exist",
            LinkFault::WrongSize => "a chained segment has another size than the head",
        }
    }
}

/// The first check of a link read from a header, before anything is attached:
/// `None` at the end of the chain (-1); the id to follow; or the fault of a
/// negative id or of one already in the chain (`seen`).
pub(crate) fn follow(next: i32, seen: &HashSet<i32>) -> std::result::Result<Option<i32>, LinkFault> {
    if next == -1 {
        Ok(None)
    } else if next < 0 {
        Err(LinkFault::Invalid)
    } else if seen.contains(&next) {
        Err(LinkFault::Loop)
    } else {
        Ok(Some(next))
    }
}

/// The fault of a link whose target could not be attached or stat'ed with
/// `e`, if that error means there is no such segment.
pub(crate) fn missing(e: Errno) -> Option<LinkFault> {
    matches!(e.0, libc::EINVAL | libc::EIDRM).then_some(LinkFault::Missing)
}

/// A chain as seen from outside, without its lock (doc/FORMAT.md, 8): the
/// segments reached from the head, and why the walk stopped early if it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// The shmids reached, the head first (empty when the head could not be
    /// read).
    pub shmids: Vec<i32>,
    /// Why the walk stopped before the end of the chain, if it did.
    pub stop: Option<WalkStop>,
}

/// Why a [`Walk`] stopped before the end of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkStop {
    /// The link `next` in segment `after` is unsound.
    Fault {
        /// The segment whose link it is.
        after: i32,
        /// The link.
        next: i32,
        /// What is wrong with it.
        fault: LinkFault,
    },
    /// No permission to read segment `shmid`.
    Unreadable {
        /// The segment whose link led there (`None`: the head).
        after: Option<i32>,
        /// The segment.
        shmid: i32,
    },
    /// Segment `shmid` could not be read for another reason.
    Failed {
        /// The segment whose link led there (`None`: the head).
        after: Option<i32>,
        /// The segment.
        shmid: i32,
        /// Why.
        errno: Errno,
    },
}

/// Follows the chain from `head` (a segment of `seg_size` bytes) by
/// `next_shmid`, checking every link as a reader does (an invalid id, a
/// loop, the size, a missing segment: [`LinkFault`]) and reading each header through a read-only
/// attachment detached again at once: nothing is locked, written or
/// created. Each segment is visited once, so the walk ends on any chain.
pub fn walk(head: i32, seg_size: usize) -> Walk {
    let mut w = Walk { shmids: Vec::new(), stop: None };
    let mut seen = HashSet::new();
    let mut cur = head;
    loop {
        let hdr = match Header::peek(cur, seg_size) {
            Ok(h) => h,
            Err(e) => {
                w.stop = Some(unreadable(w.shmids.last().copied(), cur, e));
                return w;
            }
        };
        w.shmids.push(cur);
        seen.insert(cur);
        let next = match follow(hdr.next_shmid, &seen) {
            Ok(None) => return w,
            Ok(Some(next)) => next,
            Err(fault) => {
                w.stop = Some(WalkStop::Fault { after: cur, next: hdr.next_shmid, fault });
                return w;
            }
        };
        let fault = match sys::shm_stat(next) {
            Ok(st) if st.size == seg_size => None,
            Ok(_) => Some(LinkFault::WrongSize),
            Err(e) => match missing(e) {
                Some(fault) => Some(fault),
                None => {
                    w.stop = Some(unreadable(Some(cur), next, e));
                    return w;
                }
            },
        };
        if let Some(fault) = fault {
            w.stop = Some(WalkStop::Fault { after: cur, next, fault });
            return w;
        }
        cur = next;
    }
}

fn unreadable(after: Option<i32>, shmid: i32, e: Errno) -> WalkStop {
    match e.0 {
        libc::EACCES => WalkStop::Unreadable { after, shmid },
        _ => WalkStop::Failed { after, shmid, errno: e },
    }
}

/// What to do with a link that leads nowhere sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadLink {
    /// Report the chain as corrupt (readers: nothing may be changed).
    Refuse,
    /// Cut the link there (a writer with the exclusive lock, about to
    /// overwrite the value).
    Cut,
}

/// What [`Chain::attach_next`] found after the last segment reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// One more segment is reached.
    Attached,
    /// The chain ends there (or was cut there).
    End,
}

/// Whether [`Chain::ensure`] may create segments where the chain ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grow {
    /// Only follow existing links (a fetch).
    No,
    /// Create and link new segments as needed (a store).
    Yes,
}

/// One segment of the chain: its id, checked when it was reached, and its
/// attachment while attached.
#[derive(Debug)]
struct Link {
    shmid: i32,
    seg: Option<Segment>,
}

impl Link {
    fn attached(seg: Segment) -> Link {
        Link { shmid: seg.shmid(), seg: Some(seg) }
    }
}

/// A share's head and the segments reached after it, in chain order.
#[derive(Debug)]
pub(crate) struct Chain {
    head: Link,
    /// Segments after the head, as far as reached.
    rest: Vec<Link>,
    /// Every shmid in `head` + `rest`, to refuse cycles.
    ids: HashSet<i32>,
    seg_size: usize,
    /// The head's `shm_state` when `rest` was last known to be valid.
    shm_state: u32,
}

impl Chain {
    /// The chain of a freshly attached head; nothing past it reached yet.
    pub(crate) fn new(head: Segment) -> Chain {
        let mut ids = HashSet::new();
        ids.insert(head.shmid());
        Chain { seg_size: head.len(), shm_state: head.shm_state(), head: Link::attached(head), rest: Vec::new(), ids }
    }

    /// The start of every call: attaches the head if an earlier call let go
    /// of it (see the module docs). `EINVAL`/`EIDRM` when it was removed
    /// meanwhile.
    pub(crate) fn ready(&mut self) -> Result<()> {
        if self.head.seg.is_none() {
            self.head.seg = Some(self.attach_fresh(self.head.shmid)?);
        }
        Ok(())
    }

    /// The head, attached by [`Chain::ready`] at the start of the call.
    pub(crate) fn head(&self) -> &Segment {
        self.head.seg.as_ref().expect("the head is attached during every call (Chain::ready)")
    }

    /// The end of every call: over the budget of attachments, forgets the
    /// segments past the head, then lets go of the head too while still over.
    pub(crate) fn settle(&mut self) {
        if attachments::over_budget() {
            self.forget_rest();
            if attachments::over_budget() {
                self.head.seg = None;
            }
        }
    }

    /// Lets go of every attachment, when no call is running: the next call
    /// attaches the head again and follows the links from there.
    pub(crate) fn evict(&mut self) {
        self.forget_rest();
        self.head.seg = None;
    }

    fn data_size(&self) -> usize {
        self.seg_size - HEADER
    }

    /// How many segments (head included) a value of `len` bytes occupies.
    pub(crate) fn segments_for(&self, len: usize) -> usize {
        segments_for(len, self.seg_size)
    }

    /// The `shm_state` this handle knows the chain by.
    pub(crate) fn shm_state(&self) -> u32 {
        self.shm_state
    }

    /// Store step 2: forget what was reached past the head when the chain
    /// changed.
    pub(crate) fn sync_state(&mut self) {
        let state = self.head().shm_state();
        if state != self.shm_state {
            self.forget_rest();
            self.shm_state = state;
        }
    }

    /// Forgets (and detaches) every segment reached past the head: the next
    /// use follows the links from the head again.
    pub(crate) fn forget_rest(&mut self) {
        self.drop_from(0);
    }

    /// Forgets (and detaches) the segments from `rest[keep]` on.
    fn drop_from(&mut self, keep: usize) {
        for link in self.rest.drain(keep..) {
            self.ids.remove(&link.shmid);
        }
    }

    /// Segments reached, head included.
    pub(crate) fn reached(&self) -> usize {
        self.rest.len() + 1
    }

    /// Attaches and checks a segment not reached before ([`Chain::with_room`]).
    fn attach_checked(&mut self, shmid: i32) -> sys::Result<Attached> {
        let size = self.seg_size;
        self.with_room(|| Segment::attach_checked(shmid, size))
    }

    /// Attaches a segment already checked: the head, or one reached in this
    /// call ([`Chain::with_room`]).
    fn attach_fresh(&mut self, shmid: i32) -> sys::Result<Segment> {
        let size = self.seg_size;
        self.with_room(|| Segment::attach_sized(shmid, size))
    }

    /// Runs `attach`; when the system refuses the attachment (`EMFILE`),
    /// makes room among this chain's own attachments and runs it once more.
    fn with_room<T>(&mut self, attach: impl Fn() -> sys::Result<T>) -> sys::Result<T> {
        match attach() {
            Err(Errno(libc::EMFILE)) => {
                self.detach_rest();
                attach()
            }
            other => other,
        }
    }

    /// Detaches the segments past the head but keeps them reached: they were
    /// checked under the lock this call holds, so they are attached again by
    /// id when needed.
    fn detach_rest(&mut self) {
        for link in &mut self.rest {
            link.seg = None;
        }
    }

    /// Segment `i` of the chain, 0 being the head; it must have been reached.
    fn segment(&mut self, i: usize) -> Result<&Segment> {
        if i == 0 {
            return Ok(self.head());
        }
        Ok(link_segment(&mut self.rest, i - 1, self.seg_size)?)
    }

    /// The last segment reached.
    fn last(&mut self) -> Result<&Segment> {
        self.segment(self.rest.len())
    }

    fn bump_state(&mut self) {
        let s = self.head().shm_state().wrapping_add(1);
        self.head().set_shm_state(s);
        self.shm_state = s;
    }

    /// Reaches the segment after the last one reached. A link that leads
    /// nowhere sound — to a segment that no longer exists, a loop, a segment
    /// of another size, an invalid id — is an error with [`BadLink::Refuse`],
    /// and is cut (reported as the end) with [`BadLink::Cut`].
    pub(crate) fn attach_next(&mut self, bad: BadLink) -> Result<Next> {
        let next = match follow(self.last()?.next_shmid(), &self.ids) {
            Ok(None) => return Ok(Next::End),
            Ok(Some(next)) => next,
            Err(fault) if bad == BadLink::Refuse => return Err(Error::Corrupt(fault.why())),
            Err(_) => {
                self.cut_after_last()?;
                return Ok(Next::End);
            }
        };
        match (self.attach_checked(next), bad) {
            // A segment marked for removal but still attached somewhere is
            // readable now and gone with the last detach: a reader may use
            // it, a writer cuts it off.
            (Ok(Attached::Live(seg)), _) | (Ok(Attached::Removed(seg)), BadLink::Refuse) => {
                self.ids.insert(next);
                self.rest.push(Link::attached(seg));
                Ok(Next::Attached)
            }
            (Ok(Attached::WrongSize), BadLink::Refuse) => Err(Error::Corrupt(LinkFault::WrongSize.why())),
            // A writer died between removing segments and cutting the link
            // (0.17 does that), or the link was damaged: cut it, touch
            // nothing it pointed to.
            (Ok(Attached::WrongSize | Attached::Removed(_)), BadLink::Cut) => {
                self.cut_after_last()?;
                Ok(Next::End)
            }
            (Err(e), _) => match (missing(e), bad) {
                (Some(_), BadLink::Cut) => {
                    self.cut_after_last()?;
                    Ok(Next::End)
                }
                (Some(fault), BadLink::Refuse) => Err(Error::Corrupt(fault.why())),
                (None, _) => Err(e.into()),
            },
        }
    }

    fn cut_after_last(&mut self) -> Result<()> {
        self.last()?.set_next_shmid(-1);
        self.bump_state();
        Ok(())
    }

    /// Reaches the whole chain, refusing bad links; returns its length.
    pub(crate) fn attach_all(&mut self) -> Result<usize> {
        while self.attach_next(BadLink::Refuse)? == Next::Attached {}
        Ok(self.reached())
    }

    /// With the exclusive lock: forgets reached segments past `keep` that
    /// were removed behind this handle's back (by a killed 0.17 writer),
    /// cutting the chain before the first of them. Only segments past the
    /// current value are checked: in a sound share there are none.
    pub(crate) fn drop_removed_surplus(&mut self, keep: usize) -> Result<()> {
        let from = keep.max(1) - 1;
        if let Some(i) = self.rest.iter().skip(from).position(|l| Segment::id_is_removed(l.shmid)) {
            self.drop_from(from + i);
            self.cut_after_last()?;
        }
        Ok(())
    }

    /// Makes `count` segments (head included) reached, following the chain;
    /// with [`Grow::Yes`], creates and links new segments where it ends.
    ///
    /// A store that cannot get every segment it needs (the system's segment
    /// or memory limits) fails having removed each segment it created here,
    /// so the system holds exactly what it held before the call.
    pub(crate) fn ensure(&mut self, count: usize, grow: Grow) -> Result<()> {
        let bad = match grow {
            Grow::Yes => BadLink::Cut,
            Grow::No => BadLink::Refuse,
        };
        while self.reached() < count {
            if self.attach_next(bad)? == Next::Attached {
                continue;
            }
            if grow == Grow::No {
                return Err(Error::Corrupt("the length runs past the end of the chain"));
            }
            // Every segment carries the share's permission bits, whoever
            // grows the chain: the head's, as the system reports them now.
            let mode = sys::shm_stat(self.head.shmid)?.mode;
            let first_new = self.rest.len();
            while self.reached() < count {
                let made = self.create_segment(mode).and_then(|seg| {
                    self.last()?.set_next_shmid(seg.shmid());
                    Ok(seg)
                });
                match made {
                    Ok(seg) => {
                        self.ids.insert(seg.shmid());
                        self.rest.push(Link::attached(seg));
                    }
                    Err(e) => {
                        self.remove_from(first_new);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Unlinks and removes the segments from `rest[first]` on: segments this
    /// handle created and linked under the exclusive lock, so no other
    /// process can have reached them. The link to the first is cut before
    /// anything is removed (if that segment cannot be attached to cut it,
    /// nothing is removed: a link must never lead to a removed segment).
    fn remove_from(&mut self, first: usize) {
        if first >= self.rest.len() {
            return;
        }
        if self.segment(first).map(|s| s.set_next_shmid(-1)).is_err() {
            return;
        }
        for link in self.rest.drain(first..) {
            self.ids.remove(&link.shmid);
            let _ = sys::shm_remove(link.shmid);
        }
    }

    /// A new chained segment: private key (never findable by key), the
    /// share's permission bits `mode`, empty header tagged with the head.
    fn create_segment(&mut self, mode: u32) -> Result<Segment> {
        let id = sys::shmget(sys::IPC_PRIVATE, self.seg_size, mode as c_int | sys::IPC_CREAT | sys::IPC_EXCL)?;
        match self.attach_fresh(id) {
            Ok(seg) => {
                seg.init_chained(self.head.shmid);
                Ok(seg)
            }
            Err(e) => {
                let _ = sys::shm_remove(id);
                Err(e.into())
            }
        }
    }

    /// Copies `value` into the data areas of the first segments, which must
    /// have been reached ([`Chain::ensure`]).
    pub(crate) fn write_value(&mut self, value: &[u8]) -> Result<()> {
        for (i, chunk) in value.chunks(self.data_size()).enumerate() {
            self.segment(i)?.write_data(0, chunk);
        }
        Ok(())
    }

    /// Fills `buf` from the data areas of the first segments, which must have
    /// been reached ([`Chain::ensure`]).
    pub(crate) fn read_value(&mut self, buf: &mut [u8]) -> Result<()> {
        for (i, chunk) in buf.chunks_mut(self.data_size()).enumerate() {
            self.segment(i)?.read_data(0, chunk);
        }
        Ok(())
    }

    /// Removes every segment after the first `keep` (head included), from the
    /// tail back: each link is cut before the segment it pointed to is removed.
    /// A writer killed at any instant leaves a sound chain, and at most one
    /// segment that nothing links to (swept on removal if it is ours). The
    /// walk stops at anything it cannot vouch for (another size, a missing
    /// segment, a loop): such a link is cut, never followed into a removal.
    /// If a segment cannot be attached (the system's limit), trimming stops
    /// there, the chain still sound: surplus segments are only longer than
    /// the value needs, and the next store trims them.
    pub(crate) fn trim(&mut self, keep: usize) {
        let keep = keep.max(1);
        let _ = self.trim_from(keep);
    }

    fn trim_from(&mut self, keep: usize) -> Result<()> {
        if self.rest.len() < keep && self.segment(keep - 1)?.next_shmid() == -1 {
            return Ok(());
        }
        let mut surplus = self.rest.split_off((keep - 1).min(self.rest.len()));
        for l in &surplus {
            self.ids.remove(&l.shmid);
        }
        // Follow the links past what was reached, checking each as a reader
        // would.
        loop {
            let next = match surplus.len() {
                0 => self.segment(keep - 1)?.next_shmid(),
                n => self.surplus_segment(&mut surplus, n - 1)?.next_shmid(),
            };
            let Ok(Some(next)) = follow(next, &self.ids) else { break };
            if surplus.iter().any(|l| l.shmid == next) {
                break;
            }
            let found = match self.attach_checked(next) {
                // Room among the surplus's own attachments: their links are
                // cut below through attachments made again by id.
                Err(Errno(libc::EMFILE)) => {
                    for l in &mut surplus {
                        l.seg = None;
                    }
                    self.attach_checked(next)
                }
                other => other,
            };
            match found {
                Ok(Attached::Live(seg) | Attached::Removed(seg)) => surplus.push(Link::attached(seg)),
                // The system's limit, not a bad link: removing the segments
                // walked so far would orphan the rest. Leave the chain whole.
                Err(Errno(libc::EMFILE)) => return Ok(()),
                _ => break,
            }
        }
        if surplus.is_empty() && self.segment(keep - 1)?.next_shmid() == -1 {
            return Ok(());
        }
        self.bump_state();
        while let Some(link) = surplus.pop() {
            match surplus.len() {
                0 => self.segment(keep - 1)?.set_next_shmid(-1),
                n => self.surplus_segment(&mut surplus, n - 1)?.set_next_shmid(-1),
            }
            let _ = sys::shm_remove(link.shmid);
        }
        self.segment(keep - 1)?.set_next_shmid(-1);
        Ok(())
    }
}

impl Chain {
    /// The segment of `surplus[j]` (links split off this chain by a trim),
    /// attached again if it is not; when the system refuses, the chain's own
    /// segments past the head let go of theirs too.
    fn surplus_segment<'s>(&mut self, surplus: &'s mut [Link], j: usize) -> sys::Result<&'s Segment> {
        if let Err(Errno(libc::EMFILE)) = link_segment(surplus, j, self.seg_size) {
            self.detach_rest();
        }
        link_segment(surplus, j, self.seg_size)
    }
}

/// The segment of `links[j]`, attached again by id if it is not (it was
/// checked when reached, under the lock this call holds); when the system
/// refuses, the other links let go of theirs first.
fn link_segment(links: &mut [Link], j: usize, size: usize) -> sys::Result<&Segment> {
    if links[j].seg.is_none() {
        let seg = match Segment::attach_sized(links[j].shmid, size) {
            Err(Errno(libc::EMFILE)) => {
                for l in links.iter_mut() {
                    l.seg = None;
                }
                Segment::attach_sized(links[j].shmid, size)?
            }
            other => other?,
        };
        links[j].seg = Some(seg);
    }
    Ok(links[j].seg.as_ref().expect("attached just above"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_counts_of_the_format() {
        let counts: Vec<usize> = [0, 1, 4080, 4081, 8160, 8161].iter().map(|&n| segments_for(n, 4096)).collect();
        assert_eq!(counts, [1, 1, 1, 2, 2, 3]);
        assert_eq!(segments_for(300 * 1024, 65536), 5);
    }

    #[test]
    fn links_are_checked_before_they_are_followed() {
        let seen: HashSet<i32> = [5, 9].into_iter().collect();
        assert_eq!(follow(-1, &seen), Ok(None));
        assert_eq!(follow(7, &seen), Ok(Some(7)));
        assert_eq!(follow(0, &seen), Ok(Some(0)), "0 is a valid shmid");
        assert_eq!(follow(-2, &seen), Err(LinkFault::Invalid));
        assert_eq!(follow(i32::MIN, &seen), Err(LinkFault::Invalid));
        assert_eq!(follow(9, &seen), Err(LinkFault::Loop));
        assert_eq!(missing(Errno(libc::EINVAL)), Some(LinkFault::Missing));
        assert_eq!(missing(Errno(libc::EIDRM)), Some(LinkFault::Missing));
        assert_eq!(missing(Errno(libc::EACCES)), None);
    }
}
