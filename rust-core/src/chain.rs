//! The chain of segments behind a share (doc/FORMAT.md, 1 and 3): the head,
//! the segments attached after it, and the rules for following, validating,
//! growing, trimming and repairing links.
//!
//! Links come from shared memory that any process (or a killed writer) may
//! have left in any state, so every link is checked before it is followed:
//! an id seen before is a loop, a segment of another size is not ours, a
//! missing one is a dangling link. A reader refuses such a chain; a writer
//! holding the exclusive lock cuts the link and carries on.

use std::collections::HashSet;

use libc::c_int;

use crate::error::{Error, Result};
use crate::segment::{Attached, Segment, HEADER};
use crate::sys::{self, Errno};

/// How many segments (head included) a value of `len` bytes occupies in a
/// chain of `seg_size`-byte segments: each holds `seg_size - HEADER` bytes of
/// it, and even an empty value has its head (doc/FORMAT.md, 3).
pub fn segments_for(len: usize, seg_size: usize) -> usize {
    len.div_ceil(seg_size - HEADER).max(1)
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

/// What [`Chain::attach_next`] found after the last attached segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// One more segment is attached.
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

/// A share's head and the segments attached after it, in chain order.
#[derive(Debug)]
pub(crate) struct Chain {
    head: Segment,
    /// Segments after the head, as far as attached.
    rest: Vec<Segment>,
    /// Every shmid in `head` + `rest`, to refuse cycles.
    ids: HashSet<i32>,
    seg_size: usize,
    /// The head's `shm_state` when `rest` was last known to be valid.
    shm_state: u32,
}

impl Chain {
    /// The chain of a freshly attached head; nothing past it attached yet.
    pub(crate) fn new(head: Segment) -> Chain {
        let mut ids = HashSet::new();
        ids.insert(head.shmid());
        Chain { seg_size: head.len(), shm_state: head.shm_state(), head, rest: Vec::new(), ids }
    }

    pub(crate) fn head(&self) -> &Segment {
        &self.head
    }

    /// The size of every segment, header included.
    pub(crate) fn seg_size(&self) -> usize {
        self.seg_size
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

    /// Store step 2: forget attachments past the head when the chain changed.
    pub(crate) fn sync_state(&mut self) {
        let state = self.head.shm_state();
        if state != self.shm_state {
            self.drop_from(0);
            self.shm_state = state;
        }
    }

    /// Detaches every attached segment from `rest[keep]` on.
    fn drop_from(&mut self, keep: usize) {
        for seg in self.rest.drain(keep..) {
            self.ids.remove(&seg.shmid());
        }
    }

    /// Segment `i` of the chain, 0 being the head; it must be attached.
    fn segment(&self, i: usize) -> &Segment {
        if i == 0 {
            &self.head
        } else {
            &self.rest[i - 1]
        }
    }

    fn last(&self) -> &Segment {
        self.rest.last().unwrap_or(&self.head)
    }

    /// Segments attached, head included.
    pub(crate) fn attached(&self) -> usize {
        self.rest.len() + 1
    }

    fn bump_state(&mut self) {
        let s = self.head.shm_state().wrapping_add(1);
        self.head.set_shm_state(s);
        self.shm_state = s;
    }

    /// Attaches the segment after the last attached one. A link that leads
    /// nowhere sound — to a segment that no longer exists, a loop, a segment
    /// of another size, an invalid id — is an error with [`BadLink::Refuse`],
    /// and is cut (reported as the end) with [`BadLink::Cut`].
    pub(crate) fn attach_next(&mut self, bad: BadLink) -> Result<Next> {
        let next = self.last().next_shmid();
        if next == -1 {
            return Ok(Next::End);
        }
        let broken = if next < 0 {
            Some("invalid segment id in the chain")
        } else if self.ids.contains(&next) {
            Some("the segment chain loops")
        } else {
            None
        };
        if let Some(why) = broken {
            if bad == BadLink::Refuse {
                return Err(Error::Corrupt(why));
            }
            self.cut_after_last();
            return Ok(Next::End);
        }
        match (Segment::attach_checked(next, self.seg_size), bad) {
            // A segment marked for removal but still attached somewhere is
            // readable now and gone with the last detach: a reader may use
            // it, a writer cuts it off.
            (Ok(Attached::Live(seg)), _) | (Ok(Attached::Removed(seg)), BadLink::Refuse) => {
                self.ids.insert(next);
                self.rest.push(seg);
                Ok(Next::Attached)
            }
            (Ok(Attached::WrongSize), BadLink::Refuse) => {
                Err(Error::Corrupt("a chained segment has another size than the head"))
            }
            // A writer died between removing segments and cutting the link
            // (0.17 does that), or the link was damaged: cut it, touch
            // nothing it pointed to.
            (Ok(Attached::WrongSize | Attached::Removed(_)), BadLink::Cut)
            | (Err(Errno(libc::EINVAL | libc::EIDRM)), BadLink::Cut) => {
                self.cut_after_last();
                Ok(Next::End)
            }
            (Err(Errno(libc::EINVAL | libc::EIDRM)), BadLink::Refuse) => {
                Err(Error::Corrupt("the chain links to a segment that does not exist"))
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    fn cut_after_last(&mut self) {
        self.last().set_next_shmid(-1);
        self.bump_state();
    }

    /// Attaches the whole chain, refusing bad links; returns its length.
    pub(crate) fn attach_all(&mut self) -> Result<usize> {
        while self.attach_next(BadLink::Refuse)? == Next::Attached {}
        Ok(self.attached())
    }

    /// With the exclusive lock: drops attached segments past `keep` that were
    /// removed behind this handle's back (by a killed 0.17 writer), cutting
    /// the chain before the first of them. Only segments past the current
    /// value are checked: in a sound share there are none.
    pub(crate) fn drop_removed_surplus(&mut self, keep: usize) {
        let from = keep.max(1) - 1;
        if let Some(i) = self.rest.iter().skip(from).position(|s| s.is_removed()) {
            self.drop_from(from + i);
            self.cut_after_last();
        }
    }

    /// Makes `count` segments (head included) attached, following the chain;
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
        while self.attached() < count {
            if self.attach_next(bad)? == Next::Attached {
                continue;
            }
            if grow == Grow::No {
                return Err(Error::Corrupt("the length runs past the end of the chain"));
            }
            // Every segment carries the share's permission bits, whoever
            // grows the chain: the head's, as the system reports them now.
            let mode = sys::shm_stat(self.head.shmid())?.mode;
            let first_new = self.rest.len();
            while self.attached() < count {
                match self.create_segment(mode) {
                    Ok(seg) => {
                        self.last().set_next_shmid(seg.shmid());
                        self.ids.insert(seg.shmid());
                        self.rest.push(seg);
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

    /// Unlinks and removes the attached segments from `rest[first]` on:
    /// segments this handle created and linked under the exclusive lock, so
    /// no other process can have reached them. The link to the first is cut
    /// before anything is removed.
    fn remove_from(&mut self, first: usize) {
        self.segment(first).set_next_shmid(-1);
        for seg in self.rest.drain(first..) {
            self.ids.remove(&seg.shmid());
            let _ = sys::shm_remove(seg.shmid());
        }
    }

    /// A new chained segment: private key (never findable by key), the
    /// share's permission bits `mode`, empty header tagged with the head.
    fn create_segment(&self, mode: u32) -> Result<Segment> {
        let id = sys::shmget(sys::IPC_PRIVATE, self.seg_size, mode as c_int | sys::IPC_CREAT | sys::IPC_EXCL)?;
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

    /// Copies `value` into the data areas of the first segments, which must
    /// be attached ([`Chain::ensure`]).
    pub(crate) fn write_value(&self, value: &[u8]) {
        for (i, chunk) in value.chunks(self.data_size()).enumerate() {
            self.segment(i).write_data(0, chunk);
        }
    }

    /// Fills `buf` from the data areas of the first segments, which must be
    /// attached ([`Chain::ensure`]).
    pub(crate) fn read_value(&self, buf: &mut [u8]) {
        for (i, chunk) in buf.chunks_mut(self.data_size()).enumerate() {
            self.segment(i).read_data(0, chunk);
        }
    }

    /// Removes every segment after the first `keep` (head included), from the
    /// tail back: each link is cut before the segment it pointed to is removed.
    /// A writer killed at any instant leaves a sound chain, and at most one
    /// segment that nothing links to (swept on removal if it is ours). The
    /// walk stops at anything it cannot vouch for (another size, a missing
    /// segment, a loop): such a link is cut, never followed into a removal.
    pub(crate) fn trim(&mut self, keep: usize) {
        let keep = keep.max(1);
        if self.rest.len() < keep && self.segment(keep - 1).next_shmid() == -1 {
            return;
        }
        let mut surplus = self.rest.split_off((keep - 1).min(self.rest.len()));
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
}

#[cfg(test)]
mod tests {
    use super::segments_for;

    #[test]
    fn segment_counts_of_the_format() {
        let counts: Vec<usize> = [0, 1, 4080, 4081, 8160, 8161].iter().map(|&n| segments_for(n, 4096)).collect();
        assert_eq!(counts, [1, 1, 1, 2, 2, 3]);
        assert_eq!(segments_for(300 * 1024, 65536), 5);
    }
}
