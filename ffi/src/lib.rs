//! The C ABI of the `sharelite` crate that IPC::ShareLite's XS glue links.
//! A static library private to the Perl distribution: Rust users depend on
//! `sharelite` itself. It uses only that crate's public API.
//!
//! `xs/sharelite.h` is generated from this file by cbindgen
//! (`ffi/cbindgen.toml`; `t/tools/gen-header` writes it, and CI checks that
//! doing so changes nothing), so the C declarations are this file's.
//!
//! Every function runs its body inside one panic boundary (`guard`): an
//! error becomes `SL_ERROR`, a panic `SL_PANIC`, each with a message for
//! [`sl_last_error`] and an error number for [`sl_last_errno`]. A panic never
//! unwinds into the caller, and the process's panic hook is left as it is
//! (another Rust library loaded into the same perl keeps its own). Output
//! parameters come last, are named `out_*`, and are written only on success.
//! A `sl_share` is owned by the caller from `sl_share_open` (or
//! `sl_share_clone`) until it passes it to `sl_share_free`.

// The C names are the ABI's.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use libc::{c_char, c_int, c_void, key_t, size_t};

use sharelite::inspect::{self, Look};
use sharelite::{Errno, Error, Kept, LockKind, OpenOptions, Plan, Result, Share, Wait};

/// Success.
pub const SL_OK: c_int = 0;
/// A non-blocking or timed lock request could not be granted.
pub const SL_WOULD_BLOCK: c_int = 1;
/// Failure: `sl_last_errno` says why, `sl_last_error` in words.
pub const SL_ERROR: c_int = -1;
/// A bug: the Rust core panicked. `sl_last_error` has the panic's message,
/// `sl_last_errno` is 0. The handle may be left in any state but a memory-safe
/// one; freeing it is safe.
pub const SL_PANIC: c_int = -2;

/// A fetch's plan, as the core's fetch cache decided it (see
/// `sharelite::Plan`): hand out the kept copy again; the destination is not
/// asked for.
pub const SL_FETCH_UNCHANGED: c_int = 0;
/// Copy the value into the kept copy's buffer in place (the length is at
/// most the `kept_room` the caller reported).
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
pub struct sl_share {
    _private: [u8; 0],
}

/// Where `sl_share_fetch` copies the value: called once, under the lock,
/// with the caller's `ctx`, the value's length and the plan (an
/// `SL_FETCH_*` other than `SL_FETCH_UNCHANGED`); returns a buffer of at
/// least `len` writable bytes, or NULL when it has none (the fetch then fails
/// with `ENOMEM`). It must return normally: no `longjmp` (Perl's `croak`)
/// across the Rust frames that call it.
pub type sl_fetch_dest = Option<unsafe extern "C" fn(ctx: *mut c_void, len: size_t, plan: c_int) -> *mut u8>;

thread_local! {
    static LAST_ERROR: RefCell<(String, c_int)> = const { RefCell::new((String::new(), 0)) };
}

fn fail(status: c_int, message: String, errno: c_int) -> c_int {
    LAST_ERROR.with(|m| *m.borrow_mut() = (message, errno));
    status
}

/// Runs `f`, mapping errors to `SL_ERROR` and panics to `SL_PANIC` (see the
/// module docs).
fn guard(f: impl FnOnce() -> Result<c_int>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(rc)) => rc,
        Ok(Err(e)) => fail(SL_ERROR, e.to_string(), e.errno()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            fail(SL_PANIC, format!("internal error (a bug) in the Rust core: {what}"), 0)
        }
    }
}

/// # Safety
/// `share` must be null or a live handle from `sl_share_open`/`sl_share_clone`.
unsafe fn share_mut<'a>(share: *mut sl_share) -> Result<&'a mut Share> {
    // SAFETY: per the caller's guarantee the pointer came from Box::into_raw.
    unsafe { (share as *mut Share).as_mut() }.ok_or(Error::Os(Errno(libc::EFAULT)))
}

fn into_handle(share: Share) -> *mut sl_share {
    Box::into_raw(Box::new(share)) as *mut sl_share
}

/// Opens the share at `key` with `shmget(2)`-style `flags` (permission bits,
/// `IPC_CREAT`, `IPC_EXCL`; other bits are ignored); `size` is the segment
/// size for a new share (at most 16: the default). With `destroy` non-zero
/// the share is removed when the handle is freed (see `sl_share_free`).
///
/// # Safety
/// `out_share` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sl_share_open(
    key: key_t,
    size: size_t,
    flags: c_int,
    destroy: c_int,
    out_share: *mut *mut sl_share,
) -> c_int {
    guard(|| {
        let share = OpenOptions::new()
            .key(key)
            .size(size)
            .mode(flags as u32 & 0o777)
            .create(flags & libc::IPC_CREAT != 0)
            .exclusive(flags & libc::IPC_EXCL != 0)
            .destroy(destroy != 0)
            .open()?;
        // SAFETY: the caller guarantees out_share is writable.
        unsafe { *out_share = into_handle(share) };
        Ok(SL_OK)
    })
}

/// A new handle on the same share, for another thread; holds no lock, and
/// never removes the share when freed.
///
/// # Safety
/// `share` must be a live handle; `out_share` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sl_share_clone(share: *mut sl_share, out_share: *mut *mut sl_share) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle.
        let copy = unsafe { share_mut(share) }?.try_clone()?;
        // SAFETY: the caller guarantees out_share is writable.
        unsafe { *out_share = into_handle(copy) };
        Ok(SL_OK)
    })
}

/// Frees the handle and unmaps its segments. In the process that opened
/// it, this releases the lock it holds, and removes the share when the
/// handle was opened (not cloned) with destroy set; in any other process (a
/// forked child) it does neither. `NULL` is a no-op.
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

/// Sets whether freeing the handle removes the share (see `sl_share_free`).
///
/// # Safety
/// `share` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn sl_share_set_destroy(share: *mut sl_share, destroy: c_int) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle.
        unsafe { share_mut(share) }?.set_destroy(destroy != 0);
        Ok(SL_OK)
    })
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

fn plan_code(plan: Plan) -> c_int {
    match plan {
        Plan::Unchanged => SL_FETCH_UNCHANGED,
        Plan::FillKept => SL_FETCH_FILL_KEPT,
        Plan::FillNew { keep: false } => SL_FETCH_FILL_NEW,
        Plan::FillNew { keep: true } => SL_FETCH_FILL_NEW_KEEP,
    }
}

/// Fetches the value under one shared lock (unless the handle holds a
/// lock), taken and released within this call (`sharelite::Share::fetch_with`).
/// The caller reports facts: `have_copy` non-zero when it keeps a copy of
/// the value its last fetch through this handle returned, `kept_room` how
/// many bytes of a value that copy's buffer can take in place (0 unless
/// nobody else shares it and it may be written). `out_plan` gets what to do:
/// `SL_FETCH_UNCHANGED` (only with `have_copy`: `dest` was not called, hand
/// out the kept copy) or the plan `dest` was called with, the value copied
/// into the buffer it returned.
///
/// # Safety
/// `share` must be a live handle; `dest` must keep the promises of
/// `sl_fetch_dest`; `out_plan` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sl_share_fetch(
    share: *mut sl_share,
    have_copy: c_int,
    kept_room: size_t,
    dest: sl_fetch_dest,
    ctx: *mut c_void,
    out_plan: *mut c_int,
) -> c_int {
    guard(|| {
        // SAFETY: the caller guarantees a live handle.
        let s = unsafe { share_mut(share) }?;
        let dest = dest.ok_or(Error::Os(Errno(libc::EINVAL)))?;
        let kept = Kept { copy: have_copy != 0, room: kept_room };
        let mut no_buffer = false;
        let plan = s.fetch_with(kept, |len, plan| {
            // SAFETY: the caller vouches for dest and ctx.
            let buf = unsafe { dest(ctx, len, plan_code(plan)) };
            if buf.is_null() {
                no_buffer = true;
                &mut []
            } else {
                // SAFETY: dest returned a buffer of at least len writable bytes.
                unsafe { std::slice::from_raw_parts_mut(buf, len) }
            }
        })?;
        if no_buffer {
            return Err(Error::Os(Errno(libc::ENOMEM)));
        }
        // SAFETY: the caller guarantees out_plan is writable.
        unsafe { *out_plan = plan_code(plan) };
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

/// `sl_field`'s kind: a number (`number`).
pub const SL_FIELD_NUMBER: c_int = 0;
/// `sl_field`'s kind: a string (`text`, NUL-terminated, valid during the call).
pub const SL_FIELD_TEXT: c_int = 1;
/// `sl_field`'s kind: one more number (`number`) of the list called `name`.
pub const SL_FIELD_LIST_ITEM: c_int = 2;

/// Receives one field of what `sl_look` or `sl_orphan` found: its `name`
/// (NUL-terminated, static), its kind (`SL_FIELD_*`) and its value. Called
/// once for each field known, within the call; it must return normally.
pub type sl_field =
    Option<unsafe extern "C" fn(ctx: *mut c_void, name: *const c_char, kind: c_int, number: i64, text: *const c_char)>;

/// A field name as a C string.
macro_rules! cname {
    ($name:literal) => {
        concat!($name, "\0").as_ptr() as *const c_char
    };
}

/// Hands fields to a caller's `sl_field`.
struct Fields {
    emit: unsafe extern "C" fn(*mut c_void, *const c_char, c_int, i64, *const c_char),
    ctx: *mut c_void,
}

impl Fields {
    fn new(emit: sl_field, ctx: *mut c_void) -> Result<Fields> {
        Ok(Fields { emit: emit.ok_or(Error::Os(Errno(libc::EINVAL)))?, ctx })
    }
    fn number(&self, name: *const c_char, v: i64) {
        // SAFETY: the caller of sl_look/sl_orphan vouches for emit and ctx;
        // name is a static C string.
        unsafe { (self.emit)(self.ctx, name, SL_FIELD_NUMBER, v, std::ptr::null()) }
    }
    fn item(&self, name: *const c_char, v: i64) {
        // SAFETY: as in `number`.
        unsafe { (self.emit)(self.ctx, name, SL_FIELD_LIST_ITEM, v, std::ptr::null()) }
    }
    fn text(&self, name: *const c_char, v: &str) {
        let v = std::ffi::CString::new(v.replace('\0', " ")).expect("no NUL left");
        // SAFETY: as in `number`; v lives until the call returns.
        unsafe { (self.emit)(self.ctx, name, SL_FIELD_TEXT, 0, v.as_ptr()) }
    }
}

/// What `key` holds, looked at from outside without opening it
/// (`sharelite::inspect::look`): nothing is locked, written or created.
/// Fields: `found` (text: `nothing`, `not-a-share` or `share`); for
/// `not-a-share`, `why_not` (text) and `semid`/`shmid` where there is one;
/// for a share, `key`, `shmid`, `semid`, and where permission allowed them
/// `segment_size`, `mode`, `uid`, `initialised`, `readers`, `writers`,
/// `next_shmid`, `length`, `shm_state`, `version`, then `shmids` (a list,
/// the head first), `chain` (text: `ok`, `broken`, `cycle`, `foreign`,
/// `short`, `bad-length`, `unreadable` or `error`) and, unless `ok`,
/// `problem` (text).
///
/// # Safety
/// `emit` must keep the promises of `sl_field` for `ctx`.
#[no_mangle]
pub unsafe extern "C" fn sl_look(key: key_t, emit: sl_field, ctx: *mut c_void) -> c_int {
    guard(|| {
        let f = Fields::new(emit, ctx)?;
        match inspect::look(key) {
            Look::Nothing => f.text(cname!("found"), "nothing"),
            Look::NotAShare(o) => {
                f.text(cname!("found"), "not-a-share");
                f.text(cname!("why_not"), &o.why_not());
                if let Some(id) = o.semid {
                    f.number(cname!("semid"), id.into());
                }
                if let Some(id) = o.shmid {
                    f.number(cname!("shmid"), id.into());
                }
            }
            Look::Share(i) => {
                f.text(cname!("found"), "share");
                f.number(cname!("key"), i.key.into());
                f.number(cname!("shmid"), i.shmid.into());
                f.number(cname!("semid"), i.semid.into());
                if let Some(size) = i.segment_size {
                    f.number(cname!("segment_size"), size as i64);
                }
                if let Some(mode) = i.mode {
                    f.number(cname!("mode"), mode.into());
                }
                if let Some(uid) = i.uid {
                    f.number(cname!("uid"), uid.into());
                }
                if let Some([init, readers, writers]) = i.semaphores {
                    f.number(cname!("initialised"), init.into());
                    f.number(cname!("readers"), readers.into());
                    f.number(cname!("writers"), writers.into());
                }
                if let Some(h) = i.header {
                    f.number(cname!("next_shmid"), h.next_shmid.into());
                    f.number(cname!("length"), h.length.into());
                    f.number(cname!("shm_state"), h.shm_state.into());
                    f.number(cname!("version"), h.version.into());
                }
                for id in &i.shmids {
                    f.item(cname!("shmids"), (*id).into());
                }
                f.text(cname!("chain"), i.chain.name());
                if let Some(p) = &i.problem {
                    f.text(cname!("problem"), p);
                }
            }
        }
        Ok(SL_OK)
    })
}

/// Whether segment `shmid` is an orphan that a look over the whole host may
/// remove (`sharelite::inspect::orphan`): `out_found` gets 1 (and `emit` the
/// fields `shmid`, `head`, `size`, `mode`, `uid`, `cpid` and `reason`, text)
/// or 0.
///
/// # Safety
/// `emit` must keep the promises of `sl_field` for `ctx`; `out_found` must be
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn sl_orphan(shmid: c_int, emit: sl_field, ctx: *mut c_void, out_found: *mut c_int) -> c_int {
    guard(|| {
        let f = Fields::new(emit, ctx)?;
        let found = inspect::orphan(shmid);
        if let Some(o) = found {
            f.number(cname!("shmid"), o.shmid.into());
            f.number(cname!("head"), o.head.into());
            f.number(cname!("size"), o.size as i64);
            f.number(cname!("mode"), o.mode.into());
            f.number(cname!("uid"), o.uid.into());
            f.number(cname!("cpid"), o.cpid.into());
            f.text(cname!("reason"), o.reason.words());
        }
        // SAFETY: the caller guarantees out_found is writable.
        unsafe { *out_found = c_int::from(found.is_some()) };
        Ok(SL_OK)
    })
}

/// Removes segment `shmid` if, checked again now, it still is an orphan made
/// for head `head` by process `cpid` (`sharelite::inspect::remove_orphan`).
/// Otherwise nothing is removed: `SL_ERROR` with the reason (errno 0 when it
/// is no longer an orphan).
#[no_mangle]
pub extern "C" fn sl_remove_orphan(shmid: c_int, head: c_int, cpid: c_int) -> c_int {
    guard(|| {
        Ok(match inspect::orphan(shmid).filter(|o| o.head == head && o.cpid == cpid) {
            None => fail(SL_ERROR, format!("segment {shmid} is no longer an orphan"), 0),
            Some(o) => match inspect::remove_orphan(&o) {
                Ok(()) => SL_OK,
                Err(inspect::NotRemoved::Os(e)) => fail(SL_ERROR, format!("segment {shmid}: {e}"), e.0),
                Err(why) => fail(SL_ERROR, format!("segment {shmid} is {why}"), 0),
            },
        })
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
        let m = &m.borrow().0;
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

/// The error number (`errno` value) of this thread's last failed call: 0
/// after `SL_PANIC`.
#[no_mangle]
pub extern "C" fn sl_last_errno() -> c_int {
    LAST_ERROR.with(|m| m.borrow().1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn last_error() -> String {
        let mut buf = [0 as c_char; 256];
        // SAFETY: buf is valid for its length.
        let n = unsafe { sl_last_error(buf.as_mut_ptr(), buf.len()) };
        let bytes: Vec<u8> = buf[..n.min(255)].iter().map(|&c| c as u8).collect();
        String::from_utf8(bytes).unwrap()
    }

    /// A panic is caught at the boundary with a status of its own and its
    /// message, and the panic hook in place (another library's) is the one
    /// that still sees it: the boundary never replaces it.
    #[test]
    fn a_panic_is_sl_panic_and_the_hook_is_left_alone() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        let rc = guard(|| panic!("deliberate"));
        let rc_again = guard(|| panic!("again"));
        let hook = std::panic::take_hook();
        std::panic::set_hook(before);
        drop(hook);
        assert_eq!((rc, rc_again), (SL_PANIC, SL_PANIC));
        assert_eq!(seen.load(Ordering::SeqCst), 2, "the hook in place saw both panics");
        assert_eq!(sl_last_errno(), 0);
        assert!(last_error().contains("again"), "{}", last_error());
    }

    #[test]
    fn an_error_is_sl_error_with_its_errno() {
        let rc = guard(|| Err(Error::Os(Errno(libc::ENOENT))));
        assert_eq!(rc, SL_ERROR);
        assert_eq!(sl_last_errno(), libc::ENOENT);
        assert_eq!(last_error(), Errno(libc::ENOENT).to_string());
    }

    unsafe extern "C" fn into_vec(ctx: *mut c_void, len: size_t, _plan: c_int) -> *mut u8 {
        // SAFETY: the test passes a Vec<u8> as ctx.
        let v = unsafe { &mut *(ctx as *mut Vec<u8>) };
        v.resize(len, 0);
        v.as_mut_ptr()
    }

    unsafe extern "C" fn no_memory(_: *mut c_void, _: size_t, _: c_int) -> *mut u8 {
        std::ptr::null_mut()
    }

    /// Open, store, fetch through the ABI; a destination with no memory and a
    /// missing destination fail cleanly, leaving no lock held.
    #[test]
    fn fetch_through_the_abi() {
        let mut share = std::ptr::null_mut();
        // SAFETY: out pointers are valid; the handle is freed at the end.
        unsafe {
            assert_eq!(sl_share_open(libc::IPC_PRIVATE, 4096, 0o600 | libc::IPC_CREAT, 1, &mut share), SL_OK);
            assert_eq!(sl_share_store(share, b"hello".as_ptr(), 5), SL_OK);
            let mut got = Vec::new();
            let mut plan = -1;
            let ctx = &mut got as *mut Vec<u8> as *mut c_void;
            assert_eq!(sl_share_fetch(share, 0, 0, Some(into_vec), ctx, &mut plan), SL_OK);
            assert_eq!((got.as_slice(), plan), (&b"hello"[..], SL_FETCH_FILL_NEW));
            assert_eq!(sl_share_fetch(share, 1, 0, Some(into_vec), ctx, &mut plan), SL_OK);
            assert_eq!(plan, SL_FETCH_UNCHANGED);

            assert_eq!(sl_share_fetch(share, 0, 0, Some(no_memory), ctx, &mut plan), SL_ERROR);
            assert_eq!(sl_last_errno(), libc::ENOMEM);
            assert_eq!(sl_share_fetch(share, 0, 0, None, ctx, &mut plan), SL_ERROR);
            assert_eq!(sl_last_errno(), libc::EINVAL);
            // No lock was left held: an exclusive one is free.
            assert_eq!(sl_share_lock(share, LOCK_EX | LOCK_NB, -1), SL_OK);
            assert_eq!(sl_share_unlock(share), SL_OK);
            sl_share_free(share);
        }
    }
}
