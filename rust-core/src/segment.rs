//! One attached segment and its 16-byte header (doc/FORMAT.md, 2 "The header").
//!
//! Other processes write the same memory, so every header field is read and
//! written with one volatile, aligned 32-bit access, and the data area is only
//! ever touched within the bounds of this process's own mapping.

use std::ptr;

use crate::attachments::{self, Mapped};
use crate::copy::copy_bytes;
use crate::sys::{self, Access, Errno};

/// Bytes of header at the start of every segment.
pub const HEADER: usize = 16;

/// Byte offset of the header's `next_shmid` word.
pub const NEXT_SHMID: usize = 0;
/// Byte offset of the header's `length` word.
pub const LENGTH: usize = 4;
/// Byte offset of the header's `shm_state` word.
pub const SHM_STATE: usize = 8;
/// Byte offset of the header's `version` word.
pub const VERSION: usize = 12;

/// Chained segments made by this implementation carry this tag where the head
/// keeps `shm_state`, and the head's shmid where the head keeps `version`, so
/// that one orphaned by a killed writer can still be found and removed. Both
/// fields are unused in chained segments by either implementation.
pub const CHAIN_TAG: u32 = 0x534c_4348;

/// What [`Segment::attach_checked`] found.
#[derive(Debug)]
pub enum Attached {
    /// A segment of the expected size.
    Live(Segment),
    /// A segment of the expected size already marked for removal.
    Removed(Segment),
    /// A segment of another size (attached nothing).
    WrongSize,
}

/// An attached segment of a share (always read-write; [`Header::peek`] looks
/// without writing).
#[derive(Debug)]
pub struct Segment {
    att: Mapped,
}

/// A segment's header words, as read at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `next_shmid`.
    pub next_shmid: i32,
    /// `length` (meaningful in a head).
    pub length: i32,
    /// `shm_state` (a head's), or the tag of a chained segment of ours.
    pub shm_state: u32,
    /// `version` (a head's), or the head's shmid in a chained segment of ours.
    pub version: u32,
}

impl Header {
    /// Reads the header of segment `shmid` (of `size` bytes, at least the
    /// header's 16) through a read-only attachment, detached again before
    /// returning: a look that needs only read permission and writes nothing.
    pub fn peek(shmid: i32, size: usize) -> sys::Result<Header> {
        if size < HEADER {
            return Err(Errno(libc::EINVAL));
        }
        let m = attachments::attach(shmid, size, Access::ReadOnly)?;
        let word = |off: usize| {
            // SAFETY: the mapping is page-aligned and at least HEADER bytes
            // long (checked above; the callers take the size from IPC_STAT),
            // so off is an aligned in-bounds u32; volatile because other
            // processes write it.
            unsafe { ptr::read_volatile(m.get().as_ptr().add(off) as *const u32) }
        };
        Ok(Header {
            next_shmid: word(NEXT_SHMID) as i32,
            length: word(LENGTH) as i32,
            shm_state: word(SHM_STATE),
            version: word(VERSION),
        })
    }

    /// The head this is a chained segment of, when it is one of ours (a
    /// chained segment made by this implementation carries the tag
    /// 0x534C4348, "SLCH", in `shm_state`, and its head's shmid in
    /// `version`: doc/FORMAT.md, 6).
    pub fn tagged_head(&self) -> Option<i32> {
        (self.shm_state == CHAIN_TAG).then_some(self.version as i32)
    }

    /// True while the header is one that [`Segment::init_chained`] for
    /// `head_shmid` can leave before the tag: all zero, or the head alone.
    pub(crate) fn is_untagged_of(&self, head_shmid: i32) -> bool {
        self.next_shmid == 0
            && self.length == 0
            && self.shm_state == 0
            && (self.version == 0 || self.version == head_shmid as u32)
    }
}

impl Segment {
    /// Attaches segment `shmid` read-write; `size` is its size, at least
    /// [`HEADER`] (the header accessors rely on it).
    pub(crate) fn attach_sized(shmid: i32, size: usize) -> sys::Result<Segment> {
        Ok(Segment { att: attachments::attach(shmid, size, Access::ReadWrite)? })
    }

    /// The segment's id.
    pub fn shmid(&self) -> i32 {
        self.att.get().shmid()
    }

    /// The segment's size in bytes, header included.
    // Never empty: a segment holds at least its header.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.att.get().size()
    }

    fn read(&self, off: usize) -> u32 {
        debug_assert!(off + 4 <= HEADER && HEADER <= self.att.get().size());
        // SAFETY: the mapping is page-aligned and at least HEADER bytes long
        // (checked when the share is opened, when a segment is chained, and by
        // `Segment::attach`), so
        // off is an aligned in-bounds u32; volatile because other processes
        // write it.
        unsafe { ptr::read_volatile(self.att.get().as_ptr().add(off) as *const u32) }
    }

    fn write(&self, off: usize, v: u32) {
        debug_assert!(off + 4 <= HEADER && HEADER <= self.att.get().size());
        // SAFETY: as in `read`; the mapping is writable (attached read-write).
        unsafe { ptr::write_volatile(self.att.get().as_ptr().add(off) as *mut u32, v) }
    }

    /// `next_shmid`: the next segment's id, or -1 at the end of the chain.
    pub fn next_shmid(&self) -> i32 {
        self.read(NEXT_SHMID) as i32
    }
    /// Writes `next_shmid`.
    pub fn set_next_shmid(&self, id: i32) {
        self.write(NEXT_SHMID, id as u32)
    }
    /// `length`: the value's length in bytes (in the head).
    pub fn length(&self) -> i32 {
        self.read(LENGTH) as i32
    }
    /// Writes `length`.
    pub fn set_length(&self, n: i32) {
        self.write(LENGTH, n as u32)
    }
    /// `shm_state`: changes whenever the chain is cut shorter (in the head).
    pub fn shm_state(&self) -> u32 {
        self.read(SHM_STATE)
    }
    /// Writes `shm_state`.
    pub fn set_shm_state(&self, v: u32) {
        self.write(SHM_STATE, v)
    }
    /// `version`: +1 with every store (in the head).
    pub fn version(&self) -> u32 {
        self.read(VERSION)
    }
    /// Writes `version`.
    pub fn set_version(&self, v: u32) {
        self.write(VERSION, v)
    }

    /// Writes the header of a fresh head: empty value, no successor, state 1, version 1.
    pub fn init_head(&self) {
        self.set_length(0);
        self.set_next_shmid(-1);
        self.set_shm_state(1);
        self.set_version(1);
    }

    /// Writes the header of a fresh chained segment, tagged with its head.
    ///
    /// The kernel hands out the segment zero-filled, and a writer may be
    /// killed between any two of these writes, so their order is what makes
    /// every state it can leave one the orphan sweep recognises as this
    /// head's: all zero (killed before the first write), `0 0 0 head` (head
    /// but no tag yet), then `0 0 TAG head` and `-1 0 TAG head` (tagged).
    /// The head goes first so that a half-written header names its head: a
    /// lone tag would be ambiguous when the head's shmid is 0. Writing
    /// `next_shmid` first, as before, could leave `-1 0 0 0`, which is neither
    /// zero nor tagged and was never reclaimed. `length` is already 0.
    pub fn init_chained(&self, head_shmid: i32) {
        self.write(VERSION, head_shmid as u32);
        self.write(SHM_STATE, CHAIN_TAG);
        self.set_next_shmid(-1);
    }

    /// Copies `src` into the data area at `off`; the caller keeps it in bounds.
    pub fn write_data(&self, off: usize, src: &[u8]) {
        assert!(HEADER + off + src.len() <= self.att.get().size());
        // SAFETY: the destination range lies inside the mapping (asserted) and
        // cannot overlap `src`, which is process-private memory.
        unsafe { copy_bytes(self.att.get().as_ptr().add(HEADER + off), src.as_ptr(), src.len()) }
    }

    /// Copies `dst.len()` bytes of the data area from `off` into `dst`.
    pub fn read_data(&self, off: usize, dst: &mut [u8]) {
        assert!(HEADER + off + dst.len() <= self.att.get().size());
        // SAFETY: the source range lies inside the mapping (asserted) and cannot
        // overlap `dst`, which is process-private memory.
        unsafe { copy_bytes(dst.as_mut_ptr(), self.att.get().as_ptr().add(HEADER + off), dst.len()) }
    }

    /// Attaches segment `shmid`, whose size must be `size` (at least [`HEADER`]).
    pub(crate) fn attach_checked(shmid: i32, size: usize) -> sys::Result<Attached> {
        let st = sys::shm_stat(shmid)?;
        if st.size != size {
            return Ok(Attached::WrongSize);
        }
        let seg = Segment::attach_sized(shmid, size)?;
        if st.removed {
            return Ok(Attached::Removed(seg));
        }
        Ok(Attached::Live(seg))
    }

    /// True when segment `shmid` has been removed (it lives on only while
    /// attached somewhere, and vanishes with the last detach; on Solaris and
    /// illumos its id is gone at once, so `IPC_STAT` fails).
    pub(crate) fn id_is_removed(shmid: i32) -> bool {
        match sys::shm_stat(shmid) {
            Ok(st) => st.removed,
            Err(_) => true,
        }
    }
}

/// For looking at any segment from outside a share (the crate's tests):
/// attaching whatever the size, and the header words by offset.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
impl Segment {
    /// Attaches segment `shmid` read-write, whatever its size (`shmat(2)`);
    /// `EINVAL` when it is too small to hold a header.
    pub fn attach(shmid: i32) -> sys::Result<Segment> {
        let size = sys::shm_stat(shmid)?.size;
        if size < HEADER {
            return Err(Errno(libc::EINVAL));
        }
        Segment::attach_sized(shmid, size)
    }

    /// The header word at byte `off`: [`NEXT_SHMID`], [`LENGTH`],
    /// [`SHM_STATE`] or [`VERSION`].
    ///
    /// # Panics
    /// When `off` is none of them.
    pub fn header_word(&self, off: usize) -> u32 {
        assert!(off % 4 == 0 && off < HEADER, "no header word at byte {off}");
        self.read(off)
    }

    /// Writes the header word at byte `off` (see [`Segment::header_word`]).
    ///
    /// # Panics
    /// When `off` is no header word's offset.
    pub fn set_header_word(&self, off: usize, v: u32) {
        assert!(off % 4 == 0 && off < HEADER, "no header word at byte {off}");
        self.write(off, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's layout is the wire format (doc/FORMAT.md, 2): four
    /// native-endian 32-bit words, in this order, that 0.17 also reads. The
    /// integration tests write through these constants, so this pins them.
    #[test]
    fn header_layout_is_the_wire_format() {
        assert_eq!((NEXT_SHMID, LENGTH, SHM_STATE, VERSION, HEADER), (0, 4, 8, 12, 16));
        assert_eq!(&CHAIN_TAG.to_be_bytes(), b"SLCH");
    }
}
