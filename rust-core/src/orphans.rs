//! Which segments are orphans (doc/FORMAT.md, 6 "Removal sweeps orphans"
//! and 8): chained segments of ours that no link reaches any more, cut off
//! by a killed writer, and ones a writer was killed creating, before it could
//! tag them. Every rule for "may this segment be removed as an orphan" is
//! here, for both who ask it:
//!
//! - the removal of a share ([`sweep`]), which holds that share's exclusive
//!   lock and has just removed its chain, and
//! - a look over the whole host ([`Asker::Host`]: `sharelite gc`), which
//!   holds no lock and knows no share.
//!
//! They share the ground rules (a private segment, not already removed, of
//! ours by its header), and differ where what they know differs. The removal
//! may take a segment tagged with its head without more ado: the chain is
//! gone and its lock is held, so nothing can still reach the segment or be
//! making it. It may also take an untagged segment (a writer killed between
//! `shmget` and the tag) that matches the share it removes: its size, its
//! mode, made after its head, attached nowhere, by a process that is gone.
//! A look over the host knows no such share: an all-zero header names no
//! head, so it never takes an untagged segment; and for a tagged one it
//! needs proof that nobody is at work on it (attached nowhere, its creator
//! gone) and that its head is gone or no longer links to it.

use crate::chain::{self, WalkStop};
use crate::segment::Header;
use crate::sys::{self, ShmStat, IPC_PRIVATE};

/// Who asks whether a segment is an orphan.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Asker {
    /// The removal of the share whose head is `head`, holding its exclusive
    /// lock, after its chain was removed; `head_stat` is the head's
    /// `IPC_STAT` from before (without it, untagged segments are left alone).
    Removal { head: i32, head_stat: Option<ShmStat>, seg_size: usize },
    /// A look over the whole host, without any lock.
    Host,
}

/// Why a segment is an orphan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Tagged with the head of the share being removed.
    OfRemovedShare,
    /// Untagged (its writer was killed before tagging it), and made for the
    /// share being removed by everything known about it.
    UntaggedOfRemovedShare,
    /// Tagged with a head that no longer exists.
    HeadGone,
    /// Tagged with a head that exists but whose chain does not reach it.
    NotInChain,
}

impl Reason {
    /// The reason in a few words (`sharelite gc` prints them).
    pub fn words(self) -> &'static str {
        match self {
            Reason::OfRemovedShare => "of the share removed",
            Reason::UntaggedOfRemovedShare => "untagged, of the share removed",
            Reason::HeadGone => "head gone",
            Reason::NotInChain => "not in the chain of its head",
        }
    }
}

/// Whether segment `id` (whose `IPC_STAT` is `st`) is an orphan that `asker`
/// may remove, and why. Reads the segment's header (read-only) and, for a
/// look over the host, walks its head's chain.
pub(crate) fn verdict(id: i32, st: &ShmStat, asker: Asker) -> Option<Reason> {
    if st.key != IPC_PRIVATE || st.removed || st.size <= crate::segment::HEADER {
        return None;
    }
    let forsaken = || st.nattch == 0 && !sys::process_alive(st.cpid);
    match asker {
        Asker::Removal { head, head_stat, seg_size } => {
            if id == head || st.size != seg_size {
                return None;
            }
            let hdr = Header::peek(id, seg_size).ok()?;
            if hdr.tagged_head() == Some(head) {
                return Some(Reason::OfRemovedShare);
            }
            let like_head = head_stat.is_some_and(|h| st.mode == h.mode && st.ctime >= h.ctime);
            (like_head && hdr.is_untagged_of(head) && forsaken()).then_some(Reason::UntaggedOfRemovedShare)
        }
        Asker::Host => {
            if !forsaken() {
                return None;
            }
            let head = Header::peek(id, st.size).ok()?.tagged_head()?;
            if head == id || head < 0 {
                return None;
            }
            match sys::shm_stat(head) {
                Ok(h) => {
                    let walk = chain::walk(head, h.size);
                    // Only a walk that could read everything it reached proves
                    // the segment is not in the chain.
                    if matches!(walk.stop, Some(WalkStop::Unreadable { .. } | WalkStop::Failed { .. }))
                        || walk.shmids.contains(&id)
                    {
                        return None;
                    }
                    Some(Reason::NotInChain)
                }
                Err(e) if chain::missing(e).is_some() => Some(Reason::HeadGone),
                Err(_) => None,
            }
        }
    }
}

/// Removes the orphans of the share whose head is `head` (see
/// [`Asker::Removal`]), from the system's list of segments.
///
/// Where the system gives no list ([`sys::shm_list`]: NetBSD, OpenBSD,
/// macOS), nothing is swept: orphans of a killed writer stay until `sharelite
/// gc` (which lists segments with `ipcs`) or `ipcrm` removes them.
pub(crate) fn sweep(head: i32, head_stat: Option<ShmStat>, seg_size: usize) {
    let Some(segments) = sys::shm_list() else { return };
    let asker = Asker::Removal { head, head_stat, seg_size };
    for (id, st) in segments {
        if verdict(id, &st, asker).is_some() {
            let _ = sys::shm_remove(id);
        }
    }
}
