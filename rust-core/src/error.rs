//! The one error type of the crate.

use std::fmt;

use libc::c_int;

use crate::sys::Errno;

/// Why an operation on a share failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    Os(Errno),
    /// What was read from shared memory breaks the format: a length past the
    /// chain, a cycle, a dangling or foreign segment. Nothing was changed.
    Corrupt(&'static str),
    /// The key holds a segment that is not the head of a share (for example a
    /// data segment that 0.17 chained at that key). It was left alone.
    NotAShare,
    /// A value longer than the format's 32-bit length field can describe.
    TooLong(usize),
    /// Lock flags that make no sense together.
    BadFlags,
    /// The share was removed through this handle.
    Removed,
}

impl Error {
    /// The `errno` value that goes with this error (what Perl sees in `$!`).
    #[must_use]
    pub fn errno(&self) -> c_int {
        match self {
            Error::Os(e) => e.0,
            Error::Corrupt(_) => libc::EBADMSG,
            Error::NotAShare => libc::EEXIST,
            Error::TooLong(_) => libc::EOVERFLOW,
            Error::BadFlags => libc::EINVAL,
            Error::Removed => libc::EIDRM,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os(e) => write!(f, "{e}"),
            Error::Corrupt(what) => write!(f, "corrupted share: {what}"),
            Error::NotAShare => {
                write!(f, "{} (the key holds a segment that is not the head of a share)", Errno(libc::EEXIST))
            }
            Error::TooLong(n) => {
                write!(f, "{} ({n} bytes; at most {} fit the format)", Errno(libc::EOVERFLOW), i32::MAX)
            }
            Error::BadFlags => write!(f, "{} (incompatible lock flags)", Errno(libc::EINVAL)),
            Error::Removed => write!(f, "{} (the share was removed)", Errno(libc::EIDRM)),
        }
    }
}

impl std::error::Error for Error {}

/// An [`std::io::Error`] with this error's `errno` (so `raw_os_error` and
/// `kind` work) and its message.
impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        match e {
            Error::Os(errno) => std::io::Error::from_raw_os_error(errno.0),
            other => {
                let kind = std::io::Error::from_raw_os_error(other.errno()).kind();
                std::io::Error::new(kind, other)
            }
        }
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Error {
        Error::Os(e)
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
