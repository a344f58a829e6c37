//! Values in SysV shared memory, wire-compatible with Perl's IPC::ShareLite 0.17.
//!
//! A share is one semaphore set and a chain of shared memory segments behind
//! one SysV key. Processes using this crate, this project's Perl module, or
//! the original 0.17 module can store and fetch the same value and lock it
//! against each other. The format and protocol are described in the distribution's
//! `doc/FORMAT.md`.
//!
//! ```
//! use std::io::{Error, ErrorKind};
//! use sharelite::{OpenOptions, LockKind, Wait};
//! # let mut key: sharelite::Key = 0x5e1f_0000 + (std::process::id() % 0x1_0000) as sharelite::Key;
//!
//! // A new share at `key` (or the first free key after it), removed when
//! // `share` is dropped.
//! let mut share = loop {
//!     match OpenOptions::new().key(key).exclusive(true).destroy(true).open() {
//!         Err(e) if Error::from(e.clone()).kind() == ErrorKind::AlreadyExists => key += 1,
//!         other => break other?,
//!     }
//! };
//! share.store(b"hello")?;
//! assert_eq!(share.fetch()?, b"hello");
//! share.lock(LockKind::Exclusive, Wait::Forever)?;
//! share.unlock()?;
//! # Ok::<(), sharelite::Error>(())
//! ```

mod attachments;
mod chain;
mod copy;
mod error;
mod fetch_cache;
pub mod inspect;
mod lock;
mod open;
mod orphans;
mod segment;
mod share;
mod sys;

pub use error::{Error, Result};
pub use fetch_cache::{Kept, Plan};
pub use lock::{LockKind, Wait};
pub use open::{OpenOptions, DEFAULT_SIZE};
pub use share::{LockGuard, Share, MAX_LENGTH};
pub use sys::{Errno, Key};

/// Internals that this crate's own tests use to look at and damage segments,
/// behind the `internals` feature: no stability promise, not part of the API.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::chain::segments_for;
    pub use crate::fetch_cache::{fits, KEEP_MIN, MAX_SPARE};
    pub use crate::segment::{Segment, CHAIN_TAG, HEADER};
    /// Byte offsets of the header's words (doc/FORMAT.md, 2), for
    /// `Segment::header_word`.
    pub mod header {
        pub use crate::segment::{LENGTH, NEXT_SHMID, SHM_STATE, VERSION};
    }
    /// The syscall layer.
    pub mod sys {
        pub use crate::sys::*;
    }
}

/// The README's example, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
