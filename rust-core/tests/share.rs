//! Behaviour of `Share` on real SysV segments and semaphores (doc/FORMAT.md).
//!
//! Every share a test makes sits in a `Guard` that removes it on drop, also
//! when the test panics. Tests run in parallel threads of one process: keyed
//! tests each use a key of their own (`common::free_key`, free when handed
//! out); most tests use private shares and `try_clone` for a second handle.

mod common;
use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sharelite::inspect::Header;
use sharelite::internals::header::{LENGTH, NEXT_SHMID, SHM_STATE, VERSION};
use sharelite::internals::sys::{Key, IPC_PRIVATE};
use sharelite::internals::{HEADER, KEEP_MIN};
use sharelite::Errno;
use sharelite::{Error, Kept, LockKind, OpenOptions, Plan, Share, Wait, DEFAULT_SIZE};

// ----- helpers --------------------------------------------------------------

use common::{
    attach_limit, chain_ids, free_key, gone_here, made_here, note, proc_sem_perms, read_data, rmid_made_here, room,
    room_for, segment, segs, sem_at_key, sem_exists, sem_mode, sem_rmid, sem_val, shm_at_key, shm_create_private,
    shm_listed, shm_rmid, shm_stat, write_data, write_word, Rng, ROOM_MARGIN,
};

fn pattern(n: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed ^ n as u64).bytes(n)
}

/// A share that is removed when the guard goes out of scope.
struct Guard {
    share: Share,
    semid: i32,
    head: i32,
    size: usize,
}

impl Guard {
    fn new(share: Share) -> Guard {
        Guard { semid: share.semid(), head: share.shmid(), size: share.segment_size(), share }
    }
}

impl Deref for Guard {
    type Target = Share;
    fn deref(&self) -> &Share {
        &self.share
    }
}

impl DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Share {
        &mut self.share
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if thread::panicking() {
            // Another handle or thread may hold a lock: do not wait for it.
            force_cleanup(self.semid, self.head, self.size);
        } else {
            let _ = self.share.remove();
        }
    }
}

/// Removes a share without its lock: semaphore set first (wakes sleepers),
/// then its chain and any segment cut off from it (made by this process and
/// tagged as a chained segment of this head), each checked to be made here.
fn force_cleanup(semid: i32, head: i32, size: usize) {
    sem_rmid(semid);
    let mut ids = chain_ids(head);
    ids.extend(
        made_here(size)
            .into_iter()
            .flatten()
            .filter(|&id| id != head && Header::peek(id, size).ok().and_then(|h| h.tagged_head()) == Some(head)),
    );
    for id in ids {
        rmid_made_here(id);
    }
}

fn private(size: usize) -> Guard {
    Guard::new(OpenOptions::new().create(true).size(size).open().expect("create private share"))
}

fn is_errno<T: std::fmt::Debug>(r: sharelite::Result<T>, errno: i32) -> bool {
    match r {
        Err(Error::Os(Errno(e))) => e == errno,
        _ => false,
    }
}

// ----- open / create ----------------------------------------------------------

#[test]
fn open_create_exclusive_and_missing() {
    let k = free_key();
    // Not there yet.
    let e = OpenOptions::new().key(k).open().unwrap_err();
    assert_eq!(e, Error::Os(Errno(libc::ENOENT)));
    assert_eq!(e.errno(), libc::ENOENT);

    // exclusive implies create.
    let mut a = Guard::new(OpenOptions::new().key(k).exclusive(true).size(100).open().expect("exclusive create"));
    assert_eq!(a.key(), k);
    assert_eq!(a.segment_size(), 100);
    assert_eq!(a.held(), None);
    assert_eq!(a.fetch().unwrap(), b"");
    assert_eq!(a.num_segments().unwrap(), 1);
    assert_eq!(a.version().unwrap(), 1);

    // The head and the semaphore set are at key k.
    let head = shm_listed(a.shmid());
    assert_eq!(head.key, k);
    assert_eq!(head.size, 100);
    assert_eq!(sem_at_key(k), Ok(a.semid()));
    assert_eq!(sem_val(a.semid(), 0), 1, "sem[0] marks the share initialised");
    assert_eq!(sem_val(a.semid(), 1), 0);
    assert_eq!(sem_val(a.semid(), 2), 0);

    // A second exclusive create fails with EEXIST, with or without create(true).
    let e = OpenOptions::new().key(k).exclusive(true).open().unwrap_err();
    assert_eq!(e, Error::Os(Errno(libc::EEXIST)));
    assert_eq!(e.errno(), libc::EEXIST);
    let e = OpenOptions::new().key(k).create(true).exclusive(true).open().unwrap_err();
    assert_eq!(e.errno(), libc::EEXIST);

    // Opening (with or without create) finds the same objects.
    let mut b = OpenOptions::new().key(k).open().expect("open existing");
    let mut c = OpenOptions::new().key(k).create(true).open().expect("open existing with create");
    for h in [&b, &c] {
        assert_eq!(h.shmid(), a.shmid());
        assert_eq!(h.semid(), a.semid());
        assert_eq!(h.key(), k);
    }
    // A failed exclusive open must not have damaged anything.
    assert_eq!(sem_val(a.semid(), 0), 1);

    let v = pattern(1000, 1);
    b.store(&v).unwrap();
    assert_eq!(a.fetch().unwrap(), v);
    assert_eq!(c.fetch().unwrap(), v);
    assert_eq!(c.num_segments().unwrap(), segs(1000, 100));
    // Re-opening does not re-initialise the head.
    let mut d = OpenOptions::new().key(k).create(true).size(100).open().unwrap();
    assert_eq!(d.fetch().unwrap(), v);
    assert_eq!(d.version().unwrap(), 2);
    drop((b, c, d));

    let sem = a.semid();
    a.remove().unwrap();
    assert!(!sem_exists(sem));
    let e = OpenOptions::new().key(k).open().unwrap_err();
    assert_eq!(e, Error::Os(Errno(libc::ENOENT)));
    assert!(shm_at_key(k).is_err(), "head at key k is gone");
}

#[test]
fn missing_share_is_enoent() {
    let k = free_key();
    for size in [0, 100, DEFAULT_SIZE] {
        let r = OpenOptions::new().key(k).size(size).open();
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Os(Errno(libc::ENOENT))), "{e:?}");
        assert_eq!(e.errno(), libc::ENOENT);
    }
    assert!(is_errno(OpenOptions::new().key(k).mode(0o600).open(), libc::ENOENT));
    // Nothing was left behind by the failed opens.
    assert!(sem_at_key(k).is_err());
    assert!(shm_at_key(k).is_err());
}

#[test]
fn default_size_and_small_sizes() {
    let a = Guard::new(OpenOptions::new().create(true).open().unwrap());
    assert_eq!(a.segment_size(), DEFAULT_SIZE);
    assert_eq!(DEFAULT_SIZE, 65536);
    assert_eq!(shm_stat(a.shmid()).unwrap().size, 65536);
    for size in [0, 1, 15, 16] {
        let s = private(size);
        assert_eq!(s.segment_size(), 65536, "size {size} means the default");
        assert_eq!(shm_stat(s.shmid()).unwrap().size, 65536);
    }
    let mut s = private(17);
    assert_eq!(s.segment_size(), 17);
    assert_eq!(shm_stat(s.shmid()).unwrap().size, 17);
    // One data byte per segment.
    s.store(b"abc").unwrap();
    assert_eq!(s.num_segments().unwrap(), 3);
    assert_eq!(s.fetch().unwrap(), b"abc");
}

#[test]
fn reopen_with_other_size_keeps_original() {
    let k = free_key();
    let a = Guard::new(OpenOptions::new().key(k).create(true).size(100).open().unwrap());
    assert_eq!(a.segment_size(), 100);
    let mut b = OpenOptions::new().key(k).size(4096).open().expect("reopen with larger size");
    assert_eq!(b.segment_size(), 100);
    let mut c = OpenOptions::new().key(k).create(true).size(4096).open().expect("reopen+create with larger size");
    assert_eq!(c.segment_size(), 100);
    let d = OpenOptions::new().key(k).size(50).open().expect("reopen with smaller size");
    assert_eq!(d.segment_size(), 100);
    let e = OpenOptions::new().key(k).size(0).open().expect("reopen with default size");
    assert_eq!(e.segment_size(), 100);

    let v = pattern(1000, 2);
    b.store(&v).unwrap();
    assert_eq!(c.num_segments().unwrap(), segs(1000, 100));
    assert_eq!(c.fetch().unwrap(), v);
    let ids = chain_ids(a.shmid());
    assert_eq!(ids.len(), segs(1000, 100));
    for id in &ids {
        assert_eq!(shm_listed(*id).size, 100, "every segment has the head's size");
    }
    drop((b, c, d, e));
}

// ----- store / fetch ----------------------------------------------------------

/// Checks the wire layout of the stored value: head length, chunks of
/// S-16 bytes at offset 16 of each segment in chain order, next_shmid -1 at the end.
fn check_layout(head: i32, value: &[u8], seg_size: usize) {
    let ids = chain_ids(head);
    let ds = seg_size - HEADER;
    assert_eq!(ids.len(), segs(value.len(), seg_size));
    let h = segment(head).unwrap();
    assert_eq!(h.length(), value.len() as i32, "head length");
    for (i, id) in ids.iter().enumerate() {
        let data = read_data(*id);
        let lo = (i * ds).min(value.len());
        let hi = ((i + 1) * ds).min(value.len());
        assert_eq!(&data[..hi - lo], &value[lo..hi], "data of segment {i}");
        if i > 0 {
            assert_eq!(segment(*id).unwrap().length(), 0, "length of a chained segment");
        }
    }
    assert_eq!(segment(*ids.last().unwrap()).unwrap().next_shmid(), -1);
}

#[test]
fn store_fetch_boundaries_small_segments() {
    // 5000 bytes in 60 segments, while the other handle holds the chain before.
    let Some(_room) = room_for(2 * 61, 100, "store_fetch_boundaries_small_segments") else { return };
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    let ds = 100 - HEADER;
    assert_eq!(ds, 84);
    let lens = [0, 1, 2, ds - 1, ds, ds + 1, 2 * ds - 1, 2 * ds, 2 * ds + 1, 10 * ds, 10 * ds + 1, 5000, 1, 0];
    for (i, &n) in lens.iter().enumerate() {
        let v = pattern(n, 10 + i as u64);
        a.store(&v).unwrap();
        assert_eq!(a.fetch().unwrap(), v, "fetch through the storing handle, len {n}");
        assert_eq!(b.fetch().unwrap(), v, "fetch through another handle, len {n}");
        let want = segs(n, 100);
        assert_eq!(a.num_segments().unwrap(), want, "num_segments for len {n}");
        assert_eq!(b.num_segments().unwrap(), want, "num_segments (other handle) for len {n}");
        check_layout(a.shmid(), &v, 100);
        // and the other way round
        let w = pattern(n, 1000 + i as u64);
        b.store(&w).unwrap();
        assert_eq!(a.fetch().unwrap(), w);
        let mut buf = vec![7u8; 3];
        a.fetch_into(&mut buf).unwrap();
        assert_eq!(buf, w, "fetch_into replaces the buffer's contents");
    }
    drop(b);
}

#[test]
fn store_fetch_boundaries_default_size() {
    let mut a = private(0);
    let mut b = a.try_clone().unwrap();
    let ds = DEFAULT_SIZE - HEADER;
    for (i, &n) in [0, 1, ds, ds + 1, 3 * ds + 7, 0].iter().enumerate() {
        let v = pattern(n, 20 + i as u64);
        a.store(&v).unwrap();
        assert_eq!(b.fetch().unwrap(), v, "len {n}");
        assert_eq!(b.num_segments().unwrap(), segs(n, DEFAULT_SIZE), "num_segments for len {n}");
        assert_eq!(a.num_segments().unwrap(), segs(n, DEFAULT_SIZE));
    }
    drop(b);
}

#[test]
fn store_empty_keeps_only_head() {
    let mut a = private(100);
    a.store(&pattern(900, 3)).unwrap();
    assert_eq!(a.num_segments().unwrap(), 11);
    a.store(b"").unwrap();
    assert_eq!(a.num_segments().unwrap(), 1);
    assert_eq!(a.fetch().unwrap(), b"");
    let h = segment(a.shmid()).unwrap();
    assert_eq!(h.next_shmid(), -1);
    assert_eq!(h.length(), 0);
}

#[test]
fn many_segments() {
    let Some(_room) = room_for(2 * 301, 100, "many_segments") else { return };
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    let n = 84 * 300 - 5;
    let v = pattern(n, 4);
    a.store(&v).unwrap();
    assert_eq!(a.num_segments().unwrap(), 300);
    assert_eq!(b.fetch().unwrap(), v);
    assert_eq!(b.num_segments().unwrap(), 300);
    let ids = chain_ids(a.shmid());
    assert_eq!(ids.len(), 300);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 300);
    // Rewrite in place (same count), then grow by one.
    let w = pattern(n, 5);
    b.store(&w).unwrap();
    assert_eq!(chain_ids(a.shmid()), ids, "same-length store reuses the chain");
    assert_eq!(a.fetch().unwrap(), w);
    let w2 = pattern(n + 84, 6);
    a.store(&w2).unwrap();
    assert_eq!(b.fetch().unwrap(), w2);
    assert_eq!(b.num_segments().unwrap(), 301);
    check_layout(a.shmid(), &w2, 100);
    let all = chain_ids(a.shmid());
    a.store(b"x").unwrap();
    assert_eq!(b.fetch().unwrap(), b"x");
    drop(b);
    for id in &all[1..] {
        assert!(gone_here(*id), "segment {id} survived shrinking to one segment");
    }
}

#[test]
fn shrinking_removes_segments() {
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    let long = pattern(84 * 10, 7);
    a.store(&long).unwrap();
    let ids = chain_ids(a.shmid());
    assert_eq!(ids.len(), 10);
    let state0 = segment(a.shmid()).unwrap().shm_state();

    // The storing handle shrinks; nobody else has the tail attached.
    let short = pattern(84 * 3 - 1, 8);
    a.store(&short).unwrap();
    assert_eq!(chain_ids(a.shmid()), ids[..3].to_vec());
    for id in &ids[3..] {
        assert!(gone_here(*id), "shmid {id} still exists after shrinking");
    }
    for id in &ids[..3] {
        assert!(shm_stat(*id).is_some(), "shmid {id} of the kept chain is gone");
    }
    let state1 = segment(a.shmid()).unwrap().shm_state();
    assert_eq!(state1, state0.wrapping_add(1), "shm_state is bumped when the chain is shortened");
    assert_eq!(a.num_segments().unwrap(), 3);
    assert_eq!(b.fetch().unwrap(), short);

    // Growing or storing the same count does not bump shm_state.
    let mid = pattern(84 * 6, 9);
    a.store(&mid).unwrap();
    a.store(&mid).unwrap();
    assert_eq!(segment(a.shmid()).unwrap().shm_state(), state1);

    // b has the 6-segment chain attached; a shrinks through other ids, b follows.
    assert_eq!(b.fetch().unwrap(), mid);
    let ids6 = chain_ids(a.shmid());
    assert_eq!(ids6.len(), 6);
    a.store(b"tiny").unwrap();
    assert_eq!(segment(a.shmid()).unwrap().shm_state(), state1.wrapping_add(1));
    assert_eq!(b.fetch().unwrap(), b"tiny");
    assert_eq!(b.num_segments().unwrap(), 1);
    // Once b has seen the new shm_state it must have let go of the removed segments.
    for id in &ids6[1..] {
        assert!(gone_here(*id), "shmid {id} still exists: a handle kept a removed segment attached");
    }
    // Growing again through b after the shrink uses fresh, valid segments.
    let again = pattern(84 * 4 + 1, 10);
    b.store(&again).unwrap();
    assert_eq!(a.fetch().unwrap(), again);
    assert_eq!(a.num_segments().unwrap(), 5);
    check_layout(a.shmid(), &again, 100);

    // Shrinking through b, the handle that did not build the chain.
    let a_ids = chain_ids(a.shmid());
    b.store(&pattern(100, 11)).unwrap();
    assert_eq!(a.fetch().unwrap(), pattern(100, 11));
    for id in &a_ids[2..] {
        assert!(gone_here(*id), "shmid {id} survived a shrink through another handle");
    }
    drop(b);
}

#[test]
fn version_increments_and_wraps() {
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    assert_eq!(a.version().unwrap(), 1);
    assert_eq!(segment(a.shmid()).unwrap().version(), 1);
    a.store(b"one").unwrap();
    assert_eq!(a.version().unwrap(), 2);
    assert_eq!(b.version().unwrap(), 2);
    a.fetch().unwrap();
    b.fetch().unwrap();
    b.num_segments().unwrap();
    assert_eq!(a.version().unwrap(), 2, "reads do not bump the version");
    b.store(&pattern(500, 12)).unwrap();
    assert_eq!(a.version().unwrap(), 3);
    a.store(b"").unwrap();
    assert_eq!(b.version().unwrap(), 4);

    // Wrap: version is a uint32 that wraps.
    write_word(a.shmid(), VERSION, u32::MAX - 1);
    assert_eq!(a.version().unwrap(), u32::MAX - 1);
    a.store(b"x").unwrap();
    assert_eq!(b.version().unwrap(), u32::MAX);
    b.store(b"y").unwrap();
    assert_eq!(a.version().unwrap(), 0);
    a.store(&pattern(300, 13)).unwrap();
    assert_eq!(a.version().unwrap(), 1);
    assert_eq!(b.fetch().unwrap(), pattern(300, 13));

    // shm_state wraps too (it is bumped on every shrink).
    write_word(a.shmid(), SHM_STATE, u32::MAX);
    a.store(b"z").unwrap();
    assert_eq!(segment(a.shmid()).unwrap().shm_state(), 0);
    assert_eq!(b.fetch().unwrap(), b"z");
    assert_eq!(b.num_segments().unwrap(), 1);
    drop(b);
}

// ----- locks --------------------------------------------------------------------

#[test]
fn exclusive_excludes_everyone() {
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    let sem = a.semid();
    assert_eq!(a.lock(LockKind::Exclusive, Wait::Forever), Ok(true));
    assert_eq!(a.held(), Some(LockKind::Exclusive));
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (0, 1));
    assert_eq!(b.lock(LockKind::Exclusive, Wait::No), Ok(false));
    assert_eq!(b.held(), None);
    assert_eq!(b.lock(LockKind::Shared, Wait::No), Ok(false));
    assert_eq!(b.held(), None);
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (0, 1), "failed attempts leave no trace");
    // Asking again for the held kind succeeds at once, without stacking.
    assert_eq!(a.lock(LockKind::Exclusive, Wait::No), Ok(true));
    assert_eq!(sem_val(sem, 2), 1);
    // Store and fetch through the holder keep the lock.
    a.store(b"held").unwrap();
    assert_eq!(a.fetch().unwrap(), b"held");
    assert_eq!(a.held(), Some(LockKind::Exclusive));
    assert_eq!(sem_val(sem, 2), 1);

    a.unlock().unwrap();
    assert_eq!(a.held(), None);
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (0, 0));
    assert_eq!(b.lock(LockKind::Exclusive, Wait::No), Ok(true));
    assert_eq!(a.lock(LockKind::Exclusive, Wait::No), Ok(false));
    assert_eq!(a.lock(LockKind::Shared, Wait::No), Ok(false));
    b.unlock().unwrap();
    b.unlock().unwrap(); // nothing held: fine
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (0, 0));
    drop(b);
}

#[test]
fn shared_allows_shared_and_converts() {
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    let mut c = a.try_clone().unwrap();
    let sem = a.semid();
    assert_eq!(a.lock(LockKind::Shared, Wait::No), Ok(true));
    assert_eq!(b.lock(LockKind::Shared, Wait::No), Ok(true));
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (2, 0));
    assert_eq!(c.lock(LockKind::Exclusive, Wait::No), Ok(false));
    assert_eq!(c.held(), None);
    // Readers can fetch while holding SH.
    assert_eq!(a.fetch().unwrap(), b"");
    assert_eq!(a.held(), Some(LockKind::Shared));
    // SH -> EX is refused while another reader holds SH; the handle then holds nothing.
    assert_eq!(a.lock(LockKind::Exclusive, Wait::No), Ok(false));
    assert_eq!(a.held(), None);
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (1, 0));
    b.unlock().unwrap();
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (0, 0));

    // SH -> EX -> SH with nobody else around.
    assert_eq!(a.lock(LockKind::Shared, Wait::Forever), Ok(true));
    assert_eq!(a.lock(LockKind::Exclusive, Wait::Forever), Ok(true));
    assert_eq!(a.held(), Some(LockKind::Exclusive));
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (0, 1));
    assert_eq!(b.lock(LockKind::Shared, Wait::No), Ok(false));
    assert_eq!(a.lock(LockKind::Shared, Wait::No), Ok(true));
    assert_eq!(a.held(), Some(LockKind::Shared));
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (1, 0));
    assert_eq!(b.lock(LockKind::Shared, Wait::No), Ok(true));
    assert_eq!(c.lock(LockKind::Exclusive, Wait::No), Ok(false));
    a.unlock().unwrap();
    b.unlock().unwrap();
    assert_eq!(c.lock(LockKind::Exclusive, Wait::No), Ok(true));
    c.unlock().unwrap();

    // A store through a handle holding SH: EX for the store, SH again after.
    assert_eq!(a.lock(LockKind::Shared, Wait::No), Ok(true));
    a.store(&pattern(400, 14)).unwrap();
    assert_eq!(a.held(), Some(LockKind::Shared));
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (1, 0));
    assert_eq!(b.fetch().unwrap(), pattern(400, 14));
    assert_eq!(c.lock(LockKind::Exclusive, Wait::No), Ok(false));
    a.unlock().unwrap();
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (0, 0));
    drop((b, c));
}

#[test]
fn unlock_then_relock_really_locks() {
    // 0.17 kept its "locked" state after LOCK_UN, so the next lock did nothing.
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    let sem = a.semid();
    for round in 0..5 {
        assert_eq!(a.lock(LockKind::Exclusive, Wait::No), Ok(true), "round {round}");
        assert_eq!(sem_val(sem, 2), 1);
        assert_eq!(b.lock(LockKind::Shared, Wait::No), Ok(false), "round {round}");
        a.unlock().unwrap();
        assert_eq!(sem_val(sem, 2), 0);
        assert_eq!(b.lock(LockKind::Shared, Wait::No), Ok(true));
        b.unlock().unwrap();
        assert_eq!(a.lock(LockKind::Shared, Wait::No), Ok(true));
        assert_eq!(sem_val(sem, 1), 1);
        assert_eq!(b.lock(LockKind::Exclusive, Wait::No), Ok(false));
        a.unlock().unwrap();
        assert_eq!(sem_val(sem, 1), 0);
    }
    // A store after unlock does not leave the lock held.
    a.lock(LockKind::Exclusive, Wait::Forever).unwrap();
    a.unlock().unwrap();
    a.store(b"after").unwrap();
    assert_eq!(a.held(), None);
    assert_eq!((sem_val(sem, 1), sem_val(sem, 2)), (0, 0));
    assert_eq!(b.lock(LockKind::Exclusive, Wait::No), Ok(true));
    // Dropping a handle releases its lock.
    drop(b);
    assert_eq!(sem_val(sem, 2), 0);
    assert_eq!(a.lock(LockKind::Exclusive, Wait::No), Ok(true));
    a.unlock().unwrap();
}

#[test]
fn timed_lock_waits_then_gives_up() {
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    a.lock(LockKind::Exclusive, Wait::Forever).unwrap();
    for kind in [LockKind::Exclusive, LockKind::Shared] {
        let t = Instant::now();
        assert_eq!(b.lock(kind, Wait::For(Duration::from_millis(50))), Ok(false), "{kind:?}");
        let el = t.elapsed();
        assert!(el >= Duration::from_millis(40), "{kind:?} gave up after {el:?}");
        assert!(el < Duration::from_secs(3), "{kind:?} waited {el:?}");
        assert_eq!(b.held(), None);
    }
    a.unlock().unwrap();
    a.lock(LockKind::Shared, Wait::Forever).unwrap();
    let t = Instant::now();
    assert_eq!(b.lock(LockKind::Exclusive, Wait::For(Duration::from_millis(50))), Ok(false));
    assert!(t.elapsed() >= Duration::from_millis(40));
    assert_eq!(b.lock(LockKind::Shared, Wait::For(Duration::from_millis(50))), Ok(true));
    b.unlock().unwrap();
    a.unlock().unwrap();
    let t = Instant::now();
    assert_eq!(b.lock(LockKind::Exclusive, Wait::For(Duration::from_millis(50))), Ok(true));
    assert!(t.elapsed() < Duration::from_secs(1));
    b.unlock().unwrap();

    // A timed wait that the holder ends early succeeds.
    a.lock(LockKind::Exclusive, Wait::Forever).unwrap();
    let holder = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        a.unlock().unwrap();
        a
    });
    let t = Instant::now();
    let got = b.lock(LockKind::Exclusive, Wait::For(Duration::from_secs(10)));
    let el = t.elapsed();
    let a = holder.join().unwrap();
    assert_eq!(got, Ok(true));
    assert!(el >= Duration::from_millis(50) && el < Duration::from_secs(10), "{el:?}");
    b.unlock().unwrap();
    drop(b);
    drop(a); // the guard
}

#[test]
fn fetch_waits_for_writer() {
    let mut a = private(100);
    let b = a.try_clone().unwrap();
    a.lock(LockKind::Exclusive, Wait::Forever).unwrap();
    a.store(&pattern(700, 15)).unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut b = b;
        let r = b.fetch();
        let _ = tx.send(r);
        b
    });
    let early = rx.recv_timeout(Duration::from_millis(200));
    let held_at_timeout = early.is_err();
    a.unlock().unwrap();
    let got = match early {
        Ok(r) => r,
        Err(_) => rx.recv_timeout(Duration::from_secs(10)).expect("fetch did not finish after unlock"),
    };
    let b = reader.join().unwrap();
    assert!(held_at_timeout, "fetch returned while another handle held the exclusive lock");
    assert_eq!(got.unwrap(), pattern(700, 15));
    drop(b);
}

// ----- fetch_with -------------------------------------------------------------------

/// A kept copy whose buffer cannot be written in place.
const COPY: Kept = Kept { copy: true, room: 0 };
/// The plan for a value too small to keep.
const SMALL: Plan = Plan::FillNew { keep: false };

/// One `fetch_with` reporting `kept`: the plan, and the bytes copied (None
/// when the destination was not asked for).
fn planned(s: &mut Share, kept: Kept) -> (Plan, Option<Vec<u8>>) {
    let mut got = None;
    let plan = s.fetch_with(kept, |n, _| got.insert(vec![0; n]).as_mut_slice()).expect("fetch_with");
    (plan, got)
}

#[test]
fn fetch_with_a_kept_copy() {
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    a.store(b"abc").unwrap();
    let abc = Some(b"abc".to_vec());

    // No completed fetch yet: never unchanged.
    assert_eq!(planned(&mut a, COPY), (SMALL, abc.clone()));
    assert_eq!(planned(&mut a, COPY), (Plan::Unchanged, None));
    assert_eq!(planned(&mut a, COPY), (Plan::Unchanged, None), "unchanged stays unchanged");
    // Nothing kept: never unchanged.
    assert_eq!(planned(&mut a, Kept::NONE), (SMALL, abc.clone()));
    assert_eq!(planned(&mut a, COPY), (Plan::Unchanged, None));

    // A store through another handle, same length: changed.
    b.store(b"xyz").unwrap();
    assert_eq!(planned(&mut a, COPY), (SMALL, Some(b"xyz".to_vec())));
    assert_eq!(planned(&mut a, COPY), (Plan::Unchanged, None));

    // A store of the very same bytes, through this handle: still a store.
    a.store(b"xyz").unwrap();
    assert_eq!(planned(&mut a, COPY).0, SMALL);

    // A multi-segment value changed by another handle.
    let v = pattern(1000, 16);
    b.store(&v).unwrap();
    assert_eq!(planned(&mut a, COPY), (SMALL, Some(v.clone())));
    assert_eq!(planned(&mut a, COPY), (Plan::Unchanged, None));
    // Shrinking store through another handle.
    b.store(&v[..100]).unwrap();
    assert_eq!(planned(&mut a, COPY), (SMALL, Some(v[..100].to_vec())));
    // fetch() counts as a completed fetch.
    assert_eq!(a.fetch().unwrap(), &v[..100]);
    assert_eq!(planned(&mut a, COPY), (Plan::Unchanged, None));
    // Nothing stored by anyone, but the other handle fetched: unchanged.
    b.fetch().unwrap();
    b.num_segments().unwrap();
    assert_eq!(planned(&mut a, COPY), (Plan::Unchanged, None));

    // While the destination is asked for, the shared lock is held; after
    // the call, nothing is.
    b.store(b"q").unwrap();
    let mut buf = Vec::new();
    let mut exclusive_then = None;
    a.fetch_with(Kept::NONE, |n, _| {
        exclusive_then = Some(b.lock(LockKind::Exclusive, Wait::No));
        buf.resize(n, 0);
        &mut buf[..]
    })
    .unwrap();
    assert_eq!(exclusive_then, Some(Ok(false)), "the fetch held the shared lock");
    assert_eq!(buf, b"q");
    assert_eq!(a.held(), None);
    assert_eq!(b.lock(LockKind::Exclusive, Wait::No), Ok(true));
    b.unlock().unwrap();

    // A destination that panics leaves no lock held.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = a.fetch_with(Kept::NONE, |_, _| panic!("the destination panics (expected by the test)"));
    }));
    assert!(r.is_err());
    assert_eq!((sem_val(a.semid(), 1), sem_val(a.semid(), 2)), (0, 0));
    assert_eq!(a.fetch().unwrap(), b"q");

    // With a lock held, the fetch takes none of its own.
    a.lock(LockKind::Exclusive, Wait::Forever).unwrap();
    let semid = a.semid();
    let mut readers_then = -1;
    let mut one = vec![];
    a.fetch_with(Kept::NONE, |n, _| {
        readers_then = sem_val(semid, 1);
        one.resize(n, 0);
        &mut one[..]
    })
    .unwrap();
    assert_eq!((one.as_slice(), readers_then), (&b"q"[..], 0));
    assert_eq!(a.held(), Some(LockKind::Exclusive));
    assert_eq!(sem_val(a.semid(), 2), 1);
    a.unlock().unwrap();
    drop(b);
}

/// Values of `KEEP_MIN` bytes or more, through a real share: kept, filled
/// into the kept buffer in place when it fits, and only a whole copy counts.
#[test]
fn fetch_with_large_values() {
    let mut a = private(4096);
    let mut b = a.try_clone().unwrap();
    let v = pattern(3 * KEEP_MIN, 18);
    let n = v.len();
    b.store(&v).unwrap();

    // No buffer to fill: a new one, kept.
    assert_eq!(planned(&mut a, COPY), (Plan::FillNew { keep: true }, Some(v.clone())));
    let mut kept = v.clone();
    let room = Kept { copy: true, room: n };
    assert_eq!(planned(&mut a, room), (Plan::Unchanged, None));

    // A new value that fits the kept buffer: filled in place.
    let w = pattern(n - 10, 19);
    b.store(&w).unwrap();
    let plan = a.fetch_with(room, |len, _| &mut kept[..len]).unwrap();
    assert_eq!(plan, Plan::FillKept);
    assert_eq!(kept[..n - 10], w[..]);
    assert_eq!(planned(&mut a, room), (Plan::Unchanged, None));

    // Into a short buffer: not a complete fetch.
    b.store(&w).unwrap();
    assert_eq!(a.fetch_with(room, |_, _| &mut kept[..5]).unwrap(), Plan::FillKept);
    assert_eq!(kept[..5], w[..5]);
    assert_eq!(a.fetch_with(room, |len, _| &mut kept[..len]).unwrap(), Plan::FillKept, "copied again");
    assert_eq!(planned(&mut a, room), (Plan::Unchanged, None));

    // Too small to keep.
    b.store(&w[..KEEP_MIN - 1]).unwrap();
    assert_eq!(planned(&mut a, room).0, SMALL);
    // A buffer far larger than the value is not filled.
    b.store(&w[..KEEP_MIN]).unwrap();
    assert_eq!(planned(&mut a, room), (Plan::FillNew { keep: true }, Some(w[..KEEP_MIN].to_vec())));
    assert_eq!((sem_val(a.semid(), 1), sem_val(a.semid(), 2)), (0, 0));
    drop(b);
}

// ----- remove -------------------------------------------------------------------

#[test]
fn remove_then_every_call_fails() {
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    a.store(&pattern(1000, 17)).unwrap();
    b.fetch().unwrap(); // b has the chain attached
    let ids = chain_ids(a.shmid());
    assert_eq!(ids.len(), 12);
    let sem = a.semid();

    a.remove().expect("remove");
    assert!(!sem_exists(sem), "semaphore set removed");
    assert_eq!(a.version(), Err(Error::Removed));
    assert_eq!(a.fetch(), Err(Error::Removed));
    let mut buf = vec![];
    assert_eq!(a.fetch_into(&mut buf), Err(Error::Removed));
    assert_eq!(a.fetch_with(COPY, |_, _| unreachable!()), Err(Error::Removed));
    assert_eq!(a.store(b"x"), Err(Error::Removed));
    assert_eq!(a.num_segments(), Err(Error::Removed));
    assert_eq!(a.lock(LockKind::Exclusive, Wait::No), Err(Error::Removed));
    assert_eq!(a.lock(LockKind::Shared, Wait::Forever), Err(Error::Removed));
    assert!(matches!(a.try_clone(), Err(Error::Removed)));
    assert_eq!(a.remove(), Err(Error::Removed));
    assert_eq!(Error::Removed.errno(), libc::EIDRM);

    // The other handle now gets system errors, never a hang or stale data.
    for r in [b.fetch().map(drop), b.store(b"y"), b.num_segments().map(drop)] {
        match r {
            Err(Error::Os(Errno(e))) => assert!(e == libc::EINVAL || e == libc::EIDRM, "errno {e}"),
            other => panic!("expected EINVAL/EIDRM from a removed share, got {other:?}"),
        }
    }
    assert!(matches!(b.lock(LockKind::Exclusive, Wait::No), Err(Error::Os(_))));
    drop(b);
    check_removed(a, &ids);
}

/// After `remove()`: every chained segment is gone; the head, which the
/// removed handle may still have mapped, is at least marked for destruction
/// (and its key freed), and is gone once the handle is dropped.
fn check_removed(a: Guard, ids: &[i32]) {
    for id in &ids[1..] {
        assert!(gone_here(*id), "chained shmid {id} survived remove()");
    }
    if let Some(st) = shm_stat(ids[0]) {
        assert!(st.removed, "head {} not marked for removal", ids[0]);
        assert_eq!(st.key, IPC_PRIVATE, "head key not freed");
    }
    drop(a);
    assert!(gone_here(ids[0]), "head {} survived remove() and drop", ids[0]);
}

#[test]
fn remove_while_other_handle_grew_chain() {
    // The removing handle never attached the tail: remove still finds it.
    let mut a = private(100);
    let mut b = a.try_clone().unwrap();
    b.store(&pattern(84 * 20, 18)).unwrap();
    let ids = chain_ids(a.shmid());
    assert_eq!(ids.len(), 20);
    drop(b);
    a.remove().unwrap();
    check_removed(a, &ids);
}

// ----- segments: keys and modes ---------------------------------------------------------

fn check_modes(a: &mut Share, mode: u32, head_key: Key) {
    a.store(&pattern(500, 19)).unwrap();
    let ids = chain_ids(a.shmid());
    assert_eq!(ids.len(), 6);
    let head = shm_listed(ids[0]);
    assert_eq!(head.key, head_key);
    assert_eq!(head.mode, mode, "head perms");
    for id in &ids[1..] {
        let e = shm_listed(*id);
        assert_eq!(e.key, 0, "chained segment {id} must be IPC_PRIVATE");
        assert_eq!(e.mode, mode, "chained segment {id} perms");
        assert_eq!(e.size, a.segment_size());
        assert_eq!(e.cpid as u32, std::process::id());
    }
    if let Some(m) = sem_mode(a.semid()) {
        assert_eq!(m, mode, "semaphore set perms");
    }
    if let Some(p) = proc_sem_perms(a.semid()) {
        assert_eq!(p & 0o777, mode, "semaphore set perms in /proc/sysvipc/sem");
    }
}

#[test]
fn chained_segments_private_with_share_mode() {
    let mut a = Guard::new(OpenOptions::new().create(true).size(100).mode(0o600).open().unwrap());
    check_modes(&mut a, 0o600, 0);
    let mut d = private(100);
    check_modes(&mut d, 0o666, 0);
    let k = free_key();
    let mut k3 = Guard::new(OpenOptions::new().key(k).create(true).size(100).mode(0o640).open().unwrap());
    check_modes(&mut k3, 0o640, k);
    // A later store that grows the chain uses the same mode.
    k3.store(&pattern(84 * 9, 20)).unwrap();
    for id in &chain_ids(k3.shmid())[1..] {
        let e = shm_listed(*id);
        assert_eq!((e.key, e.mode), (0, 0o640));
    }
}

#[test]
fn reads_a_chain_written_by_another_implementation() {
    // Build a 4-segment chain by hand in the wire format (as 0.17 would, with
    // no tags), then read, overwrite, shrink it and remove it through the API.
    let mut a = private(64);
    let value = pattern(48 * 3 + 5, 21);
    let mut ids = vec![a.shmid()];
    for _ in 0..3 {
        ids.push(shm_create_private(64));
    }
    let raw_ids = ids[1..].to_vec();
    let cleanup = RawCleanup(raw_ids.clone());
    for (i, id) in ids.iter().enumerate() {
        let chunk = &value[(i * 48).min(value.len())..((i + 1) * 48).min(value.len())];
        let next = ids.get(i + 1).copied().unwrap_or(-1);
        write_word(*id, NEXT_SHMID, next as u32);
        if i > 0 {
            write_word(*id, LENGTH, 0);
        }
        write_data(*id, chunk);
    }
    write_word(a.shmid(), LENGTH, value.len() as u32);
    write_word(a.shmid(), VERSION, 77);
    let mut b = a.try_clone().unwrap();
    assert_eq!(b.fetch().unwrap(), value);
    assert_eq!(b.num_segments().unwrap(), 4);
    assert_eq!(b.version().unwrap(), 77);
    let v2 = pattern(48 * 4, 22);
    b.store(&v2).unwrap();
    assert_eq!(chain_ids(a.shmid()), ids, "same-size store reuses the foreign chain");
    assert_eq!(a.fetch().unwrap(), v2);
    a.store(&v2[..48]).unwrap();
    assert_eq!(b.fetch().unwrap(), &v2[..48]);
    drop(b);
    for id in &raw_ids {
        assert!(gone_here(*id), "surplus segment {id} not removed");
    }
    drop(cleanup);
}

struct RawCleanup(Vec<i32>);

impl Drop for RawCleanup {
    fn drop(&mut self) {
        for id in &self.0 {
            rmid_made_here(*id);
        }
    }
}

// ----- concurrency ------------------------------------------------------------------------

fn make_value(seed: u64, len: usize) -> Vec<u8> {
    if len < 12 {
        return vec![len as u8; len];
    }
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&seed.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    v.extend(Rng::new(seed).bytes(len - 12));
    v
}

fn check_value(v: &[u8]) {
    if v.len() < 12 {
        assert!(v.iter().all(|&b| b as usize == v.len()), "torn short value {v:?}");
        return;
    }
    let seed = u64::from_le_bytes(v[..8].try_into().unwrap());
    let len = u32::from_le_bytes(v[8..12].try_into().unwrap()) as usize;
    assert_eq!(len, v.len(), "torn value: length field");
    assert!(v == make_value(seed, len).as_slice(), "torn value: contents (len {len})");
}

#[test]
fn concurrent_handles_never_see_torn_values() {
    // Values of up to 1500 bytes (18 segments) in five handles, each of which
    // may hold a chain no longer linked; shorter ones where the system allows
    // fewer segments.
    let test = "concurrent_handles_never_see_torn_values";
    let (got, _room) = room(5 * 18 + ROOM_MARGIN, 100, test);
    let mut max_len = ((got.saturating_sub(ROOM_MARGIN) / 5).max(1) * 84).min(1500) as u64;
    // Under a limit on attachments (macOS), four calls at once each hold the
    // head and what they reach: one-segment values keep them within it.
    if attach_limit().is_some_and(|n| n < 4 * 19) {
        max_len = 84;
    }
    if max_len < 1500 {
        note(&format!("{test}: values of at most {max_len} bytes, not 1500"));
    }
    let a = private(100);
    let mut workers = vec![];
    for t in 0..4u64 {
        let mut h = a.try_clone().unwrap();
        workers.push(thread::spawn(move || {
            let mut rng = Rng::new(100 + t);
            for i in 0..300 {
                match rng.below(5) {
                    0 | 1 => {
                        let len = rng.below(max_len) as usize;
                        h.store(&make_value(rng.next(), len)).unwrap();
                    }
                    2 => {
                        h.lock(LockKind::Shared, Wait::Forever).unwrap();
                        let v1 = h.fetch().unwrap();
                        thread::yield_now();
                        let v2 = h.fetch().unwrap();
                        assert_eq!(v1, v2, "value changed under a shared lock");
                        let n = h.num_segments().unwrap();
                        assert_eq!(n, segs(v1.len(), 100));
                        h.unlock().unwrap();
                        check_value(&v1);
                    }
                    3 => {
                        h.lock(LockKind::Exclusive, Wait::Forever).unwrap();
                        let len = rng.below(max_len) as usize;
                        let v = make_value(rng.next(), len);
                        h.store(&v).unwrap();
                        assert_eq!(h.fetch().unwrap(), v, "iteration {i}");
                        h.unlock().unwrap();
                    }
                    _ => check_value(&h.fetch().unwrap()),
                }
            }
            h
        }));
    }
    let handles: Vec<Share> = workers.into_iter().map(|w| w.join().expect("worker panicked")).collect();
    drop(handles);
    let mut a = a;
    check_value(&a.fetch().unwrap());
    assert_eq!((sem_val(a.semid(), 1), sem_val(a.semid(), 2)), (0, 0));
}

/// A 0.17 writer killed between removing surplus segments and cutting the
/// link leaves links to segments that live on only while some process still
/// has them attached. A handle of ours that cached them must not write the
/// next value into them: once they vanish, nobody could read it.
#[test]
fn removed_but_still_attached_segments_are_cut_off() {
    let mut a = private(64);
    let data = 64 - HEADER;
    let long = pattern(data * 3, 7);
    a.store(&long).unwrap();
    let mut b = a.try_clone().unwrap();
    assert_eq!(b.fetch().unwrap(), long);
    let ids = chain_ids(a.shmid());
    assert_eq!(ids.len(), 3);

    // The killed 0.17 writer: stored a one-segment value, removed the
    // surplus, died before cutting the link (shm_state not bumped either).
    write_word(ids[0], LENGTH, 10);
    shm_rmid(ids[1]);
    shm_rmid(ids[2]);

    let value = pattern(data * 3, 9);
    b.store(&value).unwrap();
    drop(b);
    // Every attachment to the old segments is gone now; they are too.
    let mut c = a.try_clone().unwrap();
    assert_eq!(c.fetch().unwrap(), value);
    let now = chain_ids(a.shmid());
    assert!(ids[1..].iter().all(|&id| !now.contains(&id)));
    // Removing through `a`, which reached the old segments, removes the
    // chain as it is now: the segments b linked instead.
    drop((a, c));
    for id in &now[1..] {
        assert!(gone_here(*id), "segment {id} that b linked is removed with the share");
    }
}

/// A store over a damaged chain (a loop, a link to a segment of another
/// size, an invalid id) cuts the bad link and writes its value into segments
/// of its own; it never writes into, or removes, what the link pointed to.
#[test]
fn store_cuts_damaged_links_and_spares_their_targets() {
    let mut a = private(64);
    let data = 64 - HEADER;
    a.store(&pattern(data * 2, 1)).unwrap();
    let ids = chain_ids(a.shmid());
    assert_eq!(ids.len(), 2);

    let foreign = shm_create_private(4096);
    for bad in [foreign, ids[0], -7] {
        // The second segment now links to something it must not follow.
        write_word(ids[1], NEXT_SHMID, bad as u32);
        let mut b = a.try_clone().unwrap();
        let value = pattern(data * 4, bad as u64);
        b.store(&value).unwrap();
        let mut c = a.try_clone().unwrap();
        assert_eq!(c.fetch().unwrap(), value, "after a store over link {bad}");
        assert_eq!(c.num_segments().unwrap(), 4);
        assert!(!chain_ids(a.shmid()).contains(&foreign));
        a.store(&pattern(data * 2, 1)).unwrap();
    }
    let ds = shm_stat(foreign).expect("the foreign segment is still there");
    assert_eq!(ds.size, 4096);
    shm_rmid(foreign);
}
