//! How many segments this process keeps attached.
//!
//! A handle keeps its segments attached between calls (doc/FORMAT.md, 2:
//! `shm_state` tells when they are still the chain), which is what makes
//! calls cheap. Some systems limit how many segments one process may have
//! attached: macOS to 8 by default (`kern.sysv.shmseg`), the BSDs to 128
//! (`kern.ipc.shmseg`); `shmat` then fails with `EMFILE`. So every
//! attachment of this crate goes through [`attach`], which counts them and,
//! when the system refuses one:
//!
//! 1. lowers the *budget*, the number of attachments the crate keeps between
//!    calls, to half of what it holds (the rest of the limit is left to the
//!    program: Perl's own `shmread`, other libraries), and
//! 2. asks every handle that is not in a call now to let go of its
//!    attachments ([`Evict`]), then tries once more.
//!
//! A handle in a call that still gets `EMFILE` lets go of its own other
//! segments and tries again (the chain's business, `chain.rs`). At the end
//! of each call a handle keeps its attachments only while the crate holds no
//! more than the budget ([`over_budget`]), so beyond it a call re-attaches
//! the segments it uses: one `shmat` and `shmdt` per segment and call, the
//! price of staying within the limit. Where the system says its limit
//! ([`sys::attach_limit`]: macOS), the budget starts at half of it; elsewhere
//! it is unlimited until the first `EMFILE`, and on Linux, which has no such
//! limit, it stays so and nothing here costs more than a counter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, PoisonError, Weak};

use crate::sys::{self, Access, Attachment, Errno};

/// Attachments this crate holds now, in this process.
static ATTACHED: AtomicUsize = AtomicUsize::new(0);
/// How many it keeps between calls.
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static BUDGET_FROM_SYSTEM: Once = Once::new();
/// Every open handle's attachments, to be let go of when the system refuses
/// an attachment.
static HOLDERS: Mutex<Vec<Weak<dyn Evict>>> = Mutex::new(Vec::new());

/// Something that holds attachments and can let go of them when it is not
/// in use: a handle's chain (`share.rs`).
pub(crate) trait Evict: Send + Sync {
    /// Detaches everything it holds, unless it is in use right now (then
    /// nothing happens).
    fn evict_if_idle(&self);
}

/// Registers `holder`, which [`attach`] may ask to let go of its
/// attachments. Holders that are gone are forgotten on the way.
pub(crate) fn register(holder: Weak<dyn Evict>) {
    let mut all = HOLDERS.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|h| h.strong_count() > 0);
    all.push(holder);
}

/// An attachment counted against the budget (see the module docs); it
/// detaches when dropped.
#[derive(Debug)]
pub(crate) struct Mapped {
    att: Attachment,
}

impl Mapped {
    pub(crate) fn get(&self) -> &Attachment {
        &self.att
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        ATTACHED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Attaches segment `shmid` of `size` bytes (`shmat(2)`, see
/// [`Attachment::attach_sized`]); when the system refuses with `EMFILE`,
/// lowers the budget, has idle handles let go of theirs, and tries again.
pub(crate) fn attach(shmid: i32, size: usize, access: Access) -> sys::Result<Mapped> {
    BUDGET_FROM_SYSTEM.call_once(|| {
        if let Some(limit) = sys::attach_limit() {
            BUDGET.fetch_min(limit / 2, Ordering::Relaxed);
        }
    });
    let att = match Attachment::attach_sized(shmid, size, access) {
        Err(Errno(libc::EMFILE)) => {
            BUDGET.fetch_min(ATTACHED.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
            evict_idle();
            Attachment::attach_sized(shmid, size, access)?
        }
        other => other?,
    };
    ATTACHED.fetch_add(1, Ordering::Relaxed);
    Ok(Mapped { att })
}

/// True when the crate holds more attachments than it keeps between calls.
pub(crate) fn over_budget() -> bool {
    ATTACHED.load(Ordering::Relaxed) > BUDGET.load(Ordering::Relaxed)
}

/// Has every registered holder that is not in use let go of its attachments.
fn evict_idle() {
    let holders: Vec<_> =
        HOLDERS.lock().unwrap_or_else(PoisonError::into_inner).iter().filter_map(Weak::upgrade).collect();
    for h in holders {
        h.evict_if_idle();
    }
}
