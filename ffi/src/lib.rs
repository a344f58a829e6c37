//! The C ABI of the `sharelite` crate that IPC::ShareLite's XS glue links
//! (`xs/sharelite.h` declares it). A static library private to the Perl
//! distribution: Rust users depend on `sharelite` itself.
//!
//! Every function runs its body inside one panic boundary (`guard`), which turns an error into
//! `SL_ERROR` with `errno` set and a message kept for [`sl_last_error`], and
//! turns a panic into the same (a panic never unwinds into the caller).
//! Output parameters come last, are named `out_*`, and are written only on
//! success. A `sl_share` is owned by the caller from `sl_share_open` (or
//! `sl_share_clone`) until it passes it to `sl_share_free`.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::Duration;

use libc::{c_char, c_int, size_t};

use sharelite::internals::{Kept, Plan, ShareInternals};
use sharelite::{Errno, Error, LockKind, Result, Share, Wait};

/// Success.
pub const SL_OK: c_int = 0;
/// A non-blocking or timed lock request could not be granted.
pub const SL_WOULD_BLOCK: c_int = 1;
/// Failure: `errno` is set and `sl_last_error` has the message.
pub const SL_ERROR: c_int = -1;

/// `sl_share_fetch_begin`'s plan: hand out the kept copy again (finish with
/// no buffer).
pub const SL_FETCH_UNCHANGED: c_int = 0;
/// Copy the value into the kept copy's buffer in place.
pub const SL_FETCH_FILL_KEPT: c_int = 1;
/// Copy the value into a new buffer and drop the kept copy.
pub const SL_FETCH_FILL_NEW: c_int = 2;
/// Copy the value into a new buffer and keep it as the copy.
pub const SL_FETCH_FILL_NEW_KEEP: c_int = 3;

const LOCK_SH: c_int = 1;
const LOCK_EX: c_int = 2;
const LOCK_NB: c_int = 4;
const LOCK_UN: c_int = 8;

/// An open share, opaque to C.
#[repr(C)]
pub struct sl_share {
    _private: [u8; 0],
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn fail(message: String, errno: c_int) -> c_int {
    LAST_ERROR.with(|m| *m.borrow_mut() = message);
    sharelite::internals::sys::set_errno(errno);
    SL_ERROR
}

/// Runs `f`, mapping errors and panics to `SL_ERROR` (see the module docs).
fn guard(f: impl FnOnce() -> Result<c_int>) -> c_int {
    static QUIET: Once = Once::new();
    // The default hook prints to stderr; the message is returned instead.
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(rc)) => rc,
        Ok(Err(e)) => fail(e.to_string(), e.errno()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            fail(format!("internal error in the Rust core: {what}"), libc::EFAULT)
        }
    }
}

/// # Safety
/// `share` must be null or a live handle from `sl_share_open`/`sl_share_clone`.
unsafe fn share_mut<'a>(share: *mut sl_share) -> Result<&'a mut Share> {
    // SAFETY: per the caller's guarantee the pointer came from Box::into_raw.
    unsafe { (share as *mut Share).as_mut() }.ok_or(Error::Os(Errno(libc::EFAULT)))
}

/// Opens the share at `key` with `shmget(2)`-style `flags`; `size` is the
/// segment size for a new share (at most 16: the default).
///
/// # Safety
/// `out_share` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sl_share_open(
    key: sharelite::Key,
    size: size_t,
    flags: c_int,
    out_share: *mut *mut sl_share,
) -> c_int {
    guard(|| {
        let share = Share::open_raw(key, size, flags)?;
        // SAFETY: the caller guarantees out_share is writable.
        unsafe { *out_share = Box::into_raw(Box::new(share)) as *mut sl_share };
        Ok(SL_OK)
    })
}

/// A new handle on the same share, for another thread; holds no lock.
///
/// # Safety
/// `share` must be a live handle; `out_share` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sl_share_clone(share: *mut sl_share, out_share: *mut *mut sl_share) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle.
        let copy = unsafe { share_mut(share) }?.try_clone()?;
        // SAFETY: the caller guarantees out_share is writable.
        unsafe { *out_share = Box::into_raw(Box::new(copy)) as *mut sl_share };
        Ok(SL_OK)
    })
}

/// Detaches and frees the handle, releasing a lock it holds (in the process
/// that took it). The share itself stays. `NULL` is a no-op.
///
/// # Safety
/// `share` must be null or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn sl_share_free(share: *mut sl_share) {
    if share.is_null() {
        return;
    }
    guard(|| {
        // SAFETY: the caller hands the Box back exactly once.
        drop(unsafe { Box::from_raw(share as *mut Share) });
        Ok(SL_OK)
    });
}

/// Removes the share (segments and semaphore set) now.
///
/// # Safety
/// `share` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn sl_share_remove(share: *mut sl_share) -> c_int {
    // SAFETY: the caller guarantees a live handle.
    guard(|| unsafe { share_mut(share) }?.remove().map(|()| SL_OK))
}

/// Stores `len` bytes from `data`.
///
/// # Safety
/// `share` must be a live handle; `data` valid for `len` bytes of reads (it
/// may be null when `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn sl_share_store(share: *mut sl_share, data: *const u8, len: size_t) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle.
        let s = unsafe { share_mut(share) }?;
        let value: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees data is valid for len bytes.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        s.store(value).map(|()| SL_OK)
    })
}

/// First half of a fetch (see `ShareInternals::fetch_begin`). The caller
/// reports facts: `have_copy` non-zero when it keeps a copy of the value its
/// last fetch returned, `kept_room` how many bytes of a value that copy's
/// buffer can take in place (0 unless nobody else shares it and it may be
/// written). `out_len` gets the value's length, `out_plan` what to do with
/// it: an `SL_FETCH_*` constant (`SL_FETCH_UNCHANGED` and `SL_FETCH_FILL_KEPT`
/// only when `have_copy` is set, the latter only when `out_len` <=
/// `kept_room`). On success the caller must call `sl_share_fetch_finish`.
///
/// # Safety
/// `share` must be a live handle; the out pointers valid for writes.
#[no_mangle]
pub unsafe extern "C" fn sl_share_fetch_begin(
    share: *mut sl_share,
    have_copy: c_int,
    kept_room: size_t,
    out_len: *mut size_t,
    out_plan: *mut c_int,
) -> c_int {
    guard(|| {
        let kept = Kept { copy: have_copy != 0, room: kept_room };
        // SAFETY: the caller guarantees a live handle.
        let (len, plan) = unsafe { share_mut(share) }?.fetch_begin(kept)?;
        let plan = match plan {
            Plan::Unchanged => SL_FETCH_UNCHANGED,
            Plan::FillKept => SL_FETCH_FILL_KEPT,
            Plan::FillNew { keep: false } => SL_FETCH_FILL_NEW,
            Plan::FillNew { keep: true } => SL_FETCH_FILL_NEW_KEEP,
        };
        // SAFETY: the caller guarantees the out pointers are writable.
        unsafe {
            *out_len = len;
            *out_plan = plan;
        }
        Ok(SL_OK)
    })
}

/// Second half of a fetch: copies the value into `buf` (`len` must be the
/// length `sl_share_fetch_begin` gave; `buf` null for `SL_FETCH_UNCHANGED`,
/// when the caller hands out its kept copy) and releases the lock the fetch
/// took.
///
/// # Safety
/// `share` must be a live handle; `buf` null or valid for `len` bytes of writes.
#[no_mangle]
pub unsafe extern "C" fn sl_share_fetch_finish(share: *mut sl_share, buf: *mut u8, len: size_t) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle.
        let s = unsafe { share_mut(share) }?;
        let out = if buf.is_null() {
            None
        } else {
            // SAFETY: the caller guarantees buf is valid for len bytes.
            Some(unsafe { std::slice::from_raw_parts_mut(buf, len) })
        };
        s.fetch_finish(out);
        Ok(SL_OK)
    })
}

/// Takes or releases a lock with flock(2) flags: `LOCK_SH`, `LOCK_EX` (also
/// for 0 or a lone `LOCK_NB`), `LOCK_NB`, `LOCK_UN`. A `timeout_ns` of 0 or
/// more bounds the wait. Returns `SL_WOULD_BLOCK` when `LOCK_NB` or the
/// timeout stops it; `EINVAL` for contradictory flags.
///
/// # Safety
/// `share` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn sl_share_lock(share: *mut sl_share, flags: c_int, timeout_ns: i64) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle.
        let s = unsafe { share_mut(share) }?;
        if flags & !(LOCK_SH | LOCK_EX | LOCK_NB | LOCK_UN) != 0
            || (flags & LOCK_SH != 0 && flags & LOCK_EX != 0)
            || (flags & LOCK_UN != 0 && flags & (LOCK_SH | LOCK_EX) != 0)
        {
            return Err(Error::BadFlags);
        }
        if flags & LOCK_UN != 0 {
            return s.unlock().map(|()| SL_OK);
        }
        let kind = if flags & LOCK_SH != 0 { LockKind::Shared } else { LockKind::Exclusive };
        let wait = if flags & LOCK_NB != 0 {
            Wait::No
        } else if timeout_ns >= 0 {
            Wait::For(Duration::from_nanos(timeout_ns as u64))
        } else {
            Wait::Forever
        };
        Ok(if s.lock(kind, wait)? { SL_OK } else { SL_WOULD_BLOCK })
    })
}

/// Releases whatever lock the handle holds.
///
/// # Safety
/// `share` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn sl_share_unlock(share: *mut sl_share) -> c_int {
    // SAFETY: the caller guarantees a live handle.
    guard(|| unsafe { share_mut(share) }?.unlock().map(|()| SL_OK))
}

/// The head's version.
///
/// # Safety
/// `share` must be a live handle; `out_version` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sl_share_version(share: *mut sl_share, out_version: *mut u32) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle and a writable out pointer.
        unsafe {
            *out_version = share_mut(share)?.version()?;
        }
        Ok(SL_OK)
    })
}

/// The number of segments in the chain.
///
/// # Safety
/// `share` must be a live handle; `out_count` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sl_share_num_segments(share: *mut sl_share, out_count: *mut size_t) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle and a writable out pointer.
        unsafe {
            *out_count = share_mut(share)?.num_segments()?;
        }
        Ok(SL_OK)
    })
}

/// The segment size (the head's real size).
///
/// # Safety
/// `share` must be a live handle; `out_size` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sl_share_segment_size(share: *mut sl_share, out_size: *mut size_t) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle and a writable out pointer.
        unsafe {
            *out_size = share_mut(share)?.segment_size();
        }
        Ok(SL_OK)
    })
}

/// Copies the message of this thread's last failed call into `buf` (at most
/// `cap` bytes, NUL-terminated when `cap` > 0); returns the full length.
///
/// # Safety
/// `buf` must be null or valid for `cap` bytes of writes.
#[no_mangle]
pub unsafe extern "C" fn sl_last_error(buf: *mut c_char, cap: size_t) -> size_t {
    LAST_ERROR.with(|m| {
        let m = m.borrow();
        if !buf.is_null() && cap > 0 {
            let n = m.len().min(cap - 1);
            // SAFETY: n + 1 <= cap bytes are written to buf.
            unsafe {
                std::ptr::copy_nonoverlapping(m.as_ptr(), buf as *mut u8, n);
                *buf.add(n) = 0;
            }
        }
        m.len()
    })
}
