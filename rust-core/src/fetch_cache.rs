//! The fetch cache's policy, all of it: when a fetch may hand out again the
//! copy its caller kept from an earlier fetch, when it may refill that copy's
//! buffer in place, and whether the caller keeps what it fetched.
//!
//! The caller of [`Share::fetch_with`](crate::Share::fetch_with) (the XS
//! glue, or a Rust program) reports facts about the memory it holds, as a
//! [`Kept`]; [`FetchCache::plan`] answers with a [`Plan`], which the caller
//! carries out. The caller decides nothing itself: no threshold, no size rule
//! and no "is it still current" lives anywhere else.
//!
//! The rules:
//! - **Unchanged**: the caller keeps a copy, and the head's stamp (`version`,
//!   `length`, `shm_state`) read under the shared lock equals the stamp of the
//!   handle's last complete fetch. Every store changes the version (and a
//!   store of the same bytes is still a store), so nothing was stored since:
//!   the kept copy is handed out again, and nothing is copied.
//! - **Unchanged, without the lock** ([`FetchCache::unchanged_unlocked`]):
//!   the same answer may be had without taking the lock, from the stamp read
//!   twice around one read of the writer semaphore; see there for why, and
//!   for the cases that take the lock instead.
//! - Values shorter than [`KEEP_MIN`] are never kept: copied into a new
//!   buffer, and a kept copy is dropped.
//! - A longer value is copied into the kept copy's buffer in place when the
//!   caller says it may be written and the value fits with at most
//!   `len / 2 + MAX_SPARE` bytes to spare ([`fits`]); otherwise into a new
//!   buffer, which the caller keeps.
//! - A fetch is complete, and its stamp remembered, when the caller took the
//!   whole value (or handed out its unchanged copy). A fetch cut short, or one
//!   the caller left unfinished, forgets the stamp: the next one copies.

/// Values shorter than this are copied afresh on every fetch and never kept:
/// Perl shares (copy-on-write) only larger buffers, and copying a small value
/// is cheap.
pub const KEEP_MIN: usize = 4096;

/// The spare room, beyond half the value's length, that a kept buffer may
/// have for the value to be copied into it in place. A buffer left much
/// larger by an earlier, longer value is let go instead of pinning its memory.
pub const MAX_SPARE: usize = 4096;

/// What a fetch saw of the head; equal stamps mean an unchanged value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) version: u32,
    /// Never negative: the fetch refuses a head with a negative length.
    pub(crate) length: i32,
    pub(crate) shm_state: u32,
}

impl Stamp {
    /// The value's length.
    pub(crate) fn len(self) -> usize {
        self.length.max(0) as usize
    }
}

/// What the caller of [`Share::fetch_with`](crate::Share::fetch_with) holds
/// from its earlier fetches through the same handle: facts, not choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// It keeps a copy of the value its last fetch through this handle
    /// returned.
    pub copy: bool,
    /// How many bytes of a value the kept copy's buffer can take in place: 0
    /// unless the caller alone holds that buffer and may write it.
    pub room: usize,
}

impl Kept {
    /// Nothing kept: a caller that brings a buffer of its own every time.
    pub const NONE: Kept = Kept { copy: false, room: 0 };
}

/// What the caller of [`Share::fetch_with`](crate::Share::fetch_with) does
/// with the value the fetch found, as the handle's fetch cache decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing was stored since the kept copy was fetched: hand it out again.
    /// Nothing is copied (the destination is not asked for).
    Unchanged,
    /// Copy the value into the kept copy's buffer in place (it fits: the
    /// value's length is at most [`Kept::room`]) and hand that out.
    FillKept,
    /// Copy the value into a new buffer; with `keep` it becomes the kept
    /// copy, else the kept copy (if any) is dropped.
    FillNew {
        /// Keep the new buffer as the copy.
        keep: bool,
    },
}

/// True when a value of `len` bytes goes into a buffer with `room` bytes in
/// place: it fits, and leaves at most `len / 2 + MAX_SPARE` bytes unused.
#[must_use]
pub fn fits(room: usize, len: usize) -> bool {
    room >= len && room - len <= len / 2 + MAX_SPARE
}

/// A handle's memory of its last complete fetch, and the rules above.
#[derive(Debug, Default)]
pub(crate) struct FetchCache {
    /// The stamp of the value the caller holds whole, if it does.
    current: Option<Stamp>,
}

impl FetchCache {
    /// What a fetch that saw `seen` under the shared lock does, for a caller
    /// holding `kept`.
    pub(crate) fn plan(&self, seen: Stamp, kept: Kept) -> Plan {
        if kept.copy && self.current == Some(seen) {
            return Plan::Unchanged;
        }
        let len = seen.len();
        if len < KEEP_MIN {
            Plan::FillNew { keep: false }
        } else if kept.copy && fits(kept.room, len) {
            Plan::FillKept
        } else {
            Plan::FillNew { keep: true }
        }
    }

    /// Whether the caller's kept copy may be handed out again without taking
    /// the lock: `stamp` reads the head's stamp, `writer_idle` reads the
    /// writer semaphore (true when it is 0; false also when it cannot be
    /// read). The order of the reads is the rule (doc/FORMAT.md, 6 "Unchanged
    /// values are not copied again"):
    ///
    /// 1. S1 = the stamp; unless it is the kept copy's stamp S, no (take the
    ///    lock).
    /// 2. At the moment T of the semaphore read, no exclusive lock is held;
    ///    otherwise no.
    /// 3. S2 = the stamp again; unless it is still S, no.
    ///
    /// Why a yes is right: every store that completes, by either
    /// implementation, bumps `version` while holding the exclusive lock, so
    /// S1 = S2 means no store completed between the two reads (short of
    /// 2**32 of them), and the semaphore at T means none was in progress at
    /// T. If the share was quiet at S1, the value at S1 is the kept copy
    /// (S1 = S, and S was read with the value under the lock), and handing it
    /// out is a fetch at S1, inside this call. If a store was in progress at
    /// S1, it ended before T: completed, then `version` moved and S2 differs;
    /// or killed (its semaphore undone by the kernel): a killed store of
    /// ours leaves length 0 (seen at S2 unless the kept value is empty,
    /// which is then what it left), and one of 0.17 killed after setting the
    /// length back and before bumping the version is the one case the locked
    /// check cannot see either (POD BUGS). A store that fails or is killed
    /// between S1 and T, followed after T by a 0.17 writer that sets the old
    /// length back before bumping the version, may let S2 equal S while
    /// that writer runs: the fetch then hands out the value of S1, before
    /// the interrupted store, which is still a value the share had during
    /// this call, and no process can have fetched the running writer's value
    /// before it bumps the version (it holds the exclusive lock).
    ///
    /// The caller reads the stamp with loads that the CPU and the compiler
    /// may not move across the semaphore read (acquire fences on both sides
    /// of it: on weakly ordered CPUs the loads of S1 must be done before T,
    /// those of S2 after).
    pub(crate) fn unchanged_unlocked(
        &self,
        kept: Kept,
        mut stamp: impl FnMut() -> Stamp,
        writer_idle: impl FnOnce() -> bool,
    ) -> bool {
        let Some(s) = self.current.filter(|_| kept.copy) else { return false };
        stamp() == s && writer_idle() && stamp() == s
    }

    /// Records how a fetch planned as `plan` ended: `copied` is how many
    /// bytes of the value the caller took, `None` when it took none (which
    /// is a complete fetch only for [`Plan::Unchanged`]).
    pub(crate) fn finished(&mut self, seen: Stamp, plan: Plan, copied: Option<usize>) {
        let whole = match copied {
            Some(n) => n == seen.len(),
            None => plan == Plan::Unchanged,
        };
        self.current = if whole { Some(seen) } else { None };
    }

    /// Forgets the last fetch: the next one copies (a fetch left unfinished,
    /// a removed share).
    pub(crate) fn forget(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(version: u32, length: usize) -> Stamp {
        Stamp { version, length: length as i32, shm_state: 7 }
    }

    fn kept(room: usize) -> Kept {
        Kept { copy: true, room }
    }

    /// A cache whose last complete fetch saw `seen`.
    fn after(seen: Stamp) -> FetchCache {
        let mut c = FetchCache::default();
        c.finished(seen, c.plan(seen, Kept::NONE), Some(seen.len()));
        c
    }

    #[test]
    fn unchanged_needs_a_kept_copy_and_the_same_stamp() {
        let s = stamp(3, 10_000);
        let c = after(s);
        assert_eq!(c.plan(s, kept(0)), Plan::Unchanged);
        assert_eq!(c.plan(s, kept(10_000)), Plan::Unchanged, "unchanged wins over a fill in place");
        // A small value is never kept, but a caller that says it holds it
        // current gets it handed out unchanged too.
        assert_eq!(after(stamp(3, 10)).plan(stamp(3, 10), kept(0)), Plan::Unchanged);
        assert_ne!(c.plan(s, Kept::NONE), Plan::Unchanged, "no copy kept");
        assert_ne!(c.plan(stamp(4, 10_000), kept(0)), Plan::Unchanged, "another version");
        assert_ne!(c.plan(stamp(3, 9_999), kept(0)), Plan::Unchanged, "another length");
        let moved = Stamp { shm_state: 8, ..s };
        assert_ne!(c.plan(moved, kept(0)), Plan::Unchanged, "another chain");
        assert_ne!(FetchCache::default().plan(s, kept(0)), Plan::Unchanged, "no fetch yet");
    }

    #[test]
    fn small_values_are_copied_afresh_and_never_kept() {
        let c = FetchCache::default();
        for len in [0, 1, 100, KEEP_MIN - 1] {
            for k in [Kept::NONE, kept(0), kept(len), kept(KEEP_MIN * 2)] {
                assert_eq!(c.plan(stamp(1, len), k), Plan::FillNew { keep: false }, "len {len}, {k:?}");
            }
        }
    }

    #[test]
    fn large_values_fill_the_kept_buffer_when_it_fits() {
        let c = FetchCache::default();
        for len in [KEEP_MIN, 10_000, 1 << 20] {
            let s = stamp(1, len);
            assert_eq!(c.plan(s, kept(len)), Plan::FillKept, "exact fit, len {len}");
            assert_eq!(c.plan(s, kept(len + len / 2 + MAX_SPARE)), Plan::FillKept, "most spare, len {len}");
            assert_eq!(c.plan(s, kept(len + len / 2 + MAX_SPARE + 1)), Plan::FillNew { keep: true }, "too big");
            assert_eq!(c.plan(s, kept(len - 1)), Plan::FillNew { keep: true }, "too small, len {len}");
            assert_eq!(c.plan(s, kept(0)), Plan::FillNew { keep: true }, "shared or read-only");
            assert_eq!(c.plan(s, Kept::NONE), Plan::FillNew { keep: true }, "nothing kept");
            // Room without a kept copy is no buffer to fill.
            assert_eq!(c.plan(s, Kept { copy: false, room: len }), Plan::FillNew { keep: true });
        }
    }

    #[test]
    fn fits_rule() {
        assert!(fits(0, 0));
        assert!(fits(MAX_SPARE, 0));
        assert!(!fits(MAX_SPARE + 1, 0));
        assert!(fits(10_000 + 5_000 + MAX_SPARE, 10_000));
        assert!(!fits(10_000 + 5_000 + MAX_SPARE + 1, 10_000));
        assert!(!fits(9_999, 10_000));
        // No overflow at the extremes.
        assert!(fits(usize::MAX, usize::MAX));
        assert!(!fits(usize::MAX, 0));
        assert!(!fits(0, usize::MAX));
    }

    #[test]
    fn only_a_whole_copy_completes_a_fetch() {
        let s = stamp(5, 8192);
        let mut c = FetchCache::default();
        c.finished(s, Plan::FillNew { keep: true }, Some(8192));
        assert_eq!(c.plan(s, kept(0)), Plan::Unchanged, "whole copy into a new buffer");

        c.finished(s, Plan::FillKept, Some(8191));
        assert_ne!(c.plan(s, kept(0)), Plan::Unchanged, "a short buffer");

        c.finished(s, Plan::FillKept, Some(8192));
        assert_eq!(c.plan(s, kept(0)), Plan::Unchanged, "whole copy in place");

        c.finished(s, Plan::Unchanged, None);
        assert_eq!(c.plan(s, kept(0)), Plan::Unchanged, "unchanged stays unchanged");

        c.finished(s, Plan::FillNew { keep: true }, None);
        assert_ne!(c.plan(s, kept(0)), Plan::Unchanged, "a fill that took nothing");

        c.finished(s, Plan::Unchanged, Some(8192));
        assert_eq!(c.plan(s, kept(0)), Plan::Unchanged, "copied though unchanged");
    }

    /// The unlocked check: the stamp before and after the semaphore read must
    /// both be the kept copy's, and the writer idle in between.
    #[test]
    fn unchanged_without_the_lock_needs_two_stamps_and_an_idle_writer() {
        use std::cell::Cell;
        let s = stamp(4, 5000);
        let c = after(s);
        let reads = Cell::new(0);
        // The stamp as a sequence of reads: what the share shows each time.
        let seq = |stamps: Vec<Stamp>| {
            reads.set(0);
            let stamps = stamps.clone();
            let r = &reads;
            move || {
                let i = r.get();
                r.set(i + 1);
                stamps[i.min(stamps.len() - 1)]
            }
        };
        assert!(c.unchanged_unlocked(kept(0), seq(vec![s, s]), || true));
        assert_eq!(reads.get(), 2, "read before and after the semaphore");
        assert!(!c.unchanged_unlocked(kept(0), seq(vec![s, s]), || false), "a writer at work");
        assert!(!c.unchanged_unlocked(kept(0), seq(vec![stamp(5, 5000), s]), || true), "changed before");
        assert_eq!(reads.get(), 1, "no semaphore read or second stamp once the first differs");
        assert!(!c.unchanged_unlocked(kept(0), seq(vec![s, stamp(5, 5000)]), || true), "changed meanwhile");
        let emptied = Stamp { length: 0, ..s };
        assert!(!c.unchanged_unlocked(kept(0), seq(vec![s, emptied]), || true), "a store killed meanwhile");
        assert!(!c.unchanged_unlocked(Kept::NONE, seq(vec![s, s]), || true), "nothing kept");
        assert!(!FetchCache::default().unchanged_unlocked(kept(0), seq(vec![s, s]), || true), "no fetch yet");
        let mut forgot = after(s);
        forgot.forget();
        assert!(!forgot.unchanged_unlocked(kept(0), seq(vec![s, s]), || true), "forgotten");
    }

    #[test]
    fn forget_makes_the_next_fetch_copy() {
        let s = stamp(9, 5000);
        let mut c = after(s);
        c.forget();
        assert_eq!(c.plan(s, kept(5000)), Plan::FillKept);
        assert_eq!(c.plan(s, kept(0)), Plan::FillNew { keep: true });
    }

    #[test]
    fn a_store_seen_mid_way_is_a_new_stamp() {
        // A newer stamp completes and replaces the older one.
        let old = stamp(1, 4096);
        let new = stamp(2, 4096);
        let mut c = after(old);
        assert_eq!(c.plan(new, kept(4096)), Plan::FillKept);
        c.finished(new, Plan::FillKept, Some(4096));
        assert_eq!(c.plan(new, kept(0)), Plan::Unchanged);
        assert_ne!(c.plan(old, kept(0)), Plan::Unchanged);
    }
}
