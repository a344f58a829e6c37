//! Values in SysV shared memory, wire-compatible with Perl's IPC::ShareLite 0.17.
//!
//! A share is one semaphore set and a chain of shared memory segments behind
//! one SysV key. Processes using this crate, this project's Perl module, or
//! the original 0.17 module can store and fetch the same value and lock it
//! against each other. The format and protocol are those of `WIRE.md`.
//!
//! ```no_run
//! use sharelite::{OpenOptions, LockKind, Wait};
//!
//! let mut share = OpenOptions::new().key(1971).create(true).open()?;
//! share.store(b"hello")?;
//! assert_eq!(share.fetch()?, b"hello");
//! share.lock(LockKind::Exclusive, Wait::Forever)?;
//! share.unlock()?;
//! # Ok::<(), sharelite::Error>(())
//! ```

#![warn(missing_docs)]

mod chain;
mod copy;
mod error;
pub mod ffi;
mod lock;
mod open;
mod orphans;
mod segment;
mod share;
pub mod sys;

pub use error::{Error, Result};
pub use lock::{LockKind, Wait};
pub use open::{OpenOptions, DEFAULT_SIZE};
pub use segment::HEADER;
pub use share::{LockGuard, Share, MAX_LENGTH};
pub use sys::Errno;
