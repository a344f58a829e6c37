//! Corrupted and hostile headers (doc/FORMAT.md, 6: everything read is checked):
//! a read must never hang, panic, create segments or return a wrong-length
//! value; it reports `Error::Corrupt` (or a system error) instead.
//!
//! The property test owns every segment of size 64 this process makes (other
//! tests here use other sizes), so it can watch the system's list of
//! segments for any segment appearing or disappearing (where the system
//! gives one: elsewhere those checks are skipped, see `common::made_here`). Set SHARELITE_CORRUPTION_SEED and
//! SHARELITE_CORRUPTION_ITERS to replay or lengthen a run.

mod common;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sharelite::internals::header::{LENGTH, NEXT_SHMID, SHM_STATE, VERSION};
use sharelite::internals::HEADER;
use sharelite::{Error, LockKind, OpenOptions, Share, Wait};

const SIZE: usize = 64;
const DATA: usize = SIZE - HEADER;
const CALL_LIMIT: Duration = Duration::from_secs(2);
/// The header's words, in the order the property test numbers its fields.
const FIELDS: [usize; 4] = [NEXT_SHMID, LENGTH, SHM_STATE, VERSION];

// ----- helpers ----------------------------------------------------------------

use common::{
    assert_made_unchanged, chain_ids, gone_here, made_here, note, read_word, rmid_made_here, room, room_for, segs,
    sem_exists, sem_getval, sem_rmid, shm_create_private, shm_stat, write_word, Rng, ROOM_MARGIN,
};

/// Runs `f` on `share` in another thread; fails the test if it panics or takes
/// longer than CALL_LIMIT. The share comes back with the result.
fn watched<T: Send + 'static>(
    share: Share,
    what: &str,
    ctx: &str,
    f: impl FnOnce(&mut Share) -> T + Send + 'static,
) -> (Share, T) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut share = share;
        let r = catch_unwind(AssertUnwindSafe(|| f(&mut share)));
        let _ = tx.send((share, r));
    });
    match rx.recv_timeout(CALL_LIMIT) {
        Ok((share, Ok(v))) => (share, v),
        Ok((_, Err(_))) => panic!("{ctx}: {what} panicked"),
        Err(_) => panic!("{ctx}: {what} did not return within {CALL_LIMIT:?} (hang or loop)"),
    }
}

/// A share plus every segment id we know of; cleans up on drop even after a
/// panic (semaphore set first, so nothing waits for a lock a stuck thread holds).
struct Guard {
    share: Option<Share>,
    semid: i32,
    size: usize,
    extra: Vec<i32>,
}

impl Guard {
    fn new(share: Share) -> Guard {
        Guard { semid: share.semid(), size: share.segment_size(), share: Some(share), extra: vec![] }
    }
    fn share(&mut self) -> &mut Share {
        self.share.as_mut().unwrap()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let panicking = thread::panicking();
        if panicking {
            sem_rmid(self.semid);
        }
        let mut ids: Vec<i32> = self.extra.clone();
        if let Some(mut s) = self.share.take() {
            ids.extend(chain_ids(s.shmid()));
            if !panicking {
                let _ = s.remove();
            }
            drop(s);
        }
        if panicking {
            // Every IPC_PRIVATE segment of this size made in this process is
            // this test's own (the other tests here use other sizes).
            ids.extend(made_here(self.size).into_iter().flatten());
        }
        for id in ids {
            rmid_made_here(id);
        }
        if panicking {
            sem_rmid(self.semid);
        }
    }
}

fn private(size: usize) -> Guard {
    Guard::new(OpenOptions::new().create(true).size(size).mode(0o600).open().expect("create private share"))
}

// ----- the property test -----------------------------------------------------------

#[derive(Debug)]
enum FetchExpect {
    /// The corruption does not touch what the value needs: exactly the value.
    Exact,
    /// Err(Corrupt).
    Corrupt,
    /// Ok of this length whose first `prefix` bytes are the stored ones.
    Prefix { len: usize, prefix: usize },
    /// Err(Corrupt | Os), or Ok of the stored length with the first `prefix` bytes right.
    Any { prefix: usize },
}

#[derive(Debug)]
enum CountExpect {
    Exactly(usize),
    Corrupt,
    Any,
}

#[derive(Default, Debug)]
struct Stats {
    fetch_ok: usize,
    fetch_corrupt: usize,
    fetch_os: usize,
    store_ok: usize,
    store_err: usize,
    remove_err: usize,
}

fn check_fetch(r: &sharelite::Result<Vec<u8>>, exp: &FetchExpect, value: &[u8], ctx: &str) {
    match (exp, r) {
        (FetchExpect::Exact, Ok(v)) => assert!(v == value, "{ctx}: fetch returned other bytes (len {})", v.len()),
        (FetchExpect::Exact, Err(e)) => panic!("{ctx}: fetch failed ({e:?}) though the value was intact"),
        (FetchExpect::Corrupt, Err(Error::Corrupt(_))) => {}
        (FetchExpect::Corrupt, other) => panic!("{ctx}: expected Err(Corrupt), got {}", show(other)),
        (FetchExpect::Prefix { len, prefix }, Ok(v)) => {
            assert_eq!(v.len(), *len, "{ctx}: fetch length");
            assert!(v[..*prefix] == value[..*prefix], "{ctx}: fetch prefix differs");
        }
        (FetchExpect::Prefix { .. }, Err(e)) => panic!("{ctx}: fetch failed ({e:?}), expected a value"),
        (FetchExpect::Any { prefix }, Ok(v)) => {
            assert_eq!(v.len(), value.len(), "{ctx}: fetch length");
            assert!(v[..*prefix] == value[..*prefix], "{ctx}: fetch prefix differs");
        }
        (FetchExpect::Any { .. }, Err(Error::Corrupt(_) | Error::Os(_))) => {}
        (FetchExpect::Any { .. }, Err(e)) => panic!("{ctx}: unexpected error kind {e:?}"),
    }
}

fn show(r: &sharelite::Result<Vec<u8>>) -> String {
    match r {
        Ok(v) => format!("Ok(<{} bytes>)", v.len()),
        Err(e) => format!("Err({e:?})"),
    }
}

fn check_count(r: &sharelite::Result<usize>, exp: &CountExpect, ctx: &str) {
    match (exp, r) {
        (CountExpect::Exactly(n), Ok(k)) => assert_eq!(k, n, "{ctx}: num_segments"),
        (CountExpect::Corrupt, Err(Error::Corrupt(_))) => {}
        (CountExpect::Any, Ok(_) | Err(Error::Corrupt(_) | Error::Os(_))) => {}
        (exp, r) => panic!("{ctx}: num_segments expected {exp:?}, got {r:?}"),
    }
}

/// Values of up to 2000 bytes (42 segments), fewer where the system allows
/// fewer segments (see `corrupted_headers_never_hang_panic_or_grow`).
const MAX_VALUE: usize = 2000;

fn one_case(rng: &mut Rng, ctx0: &str, stats: &mut Stats, max_n: usize) {
    let baseline = made_here(SIZE);
    let n = rng.below(max_n as u64 + 1) as usize;
    let value = rng.bytes(n);
    let m = segs(n, SIZE);

    let mut g = private(SIZE);
    let head = g.share().shmid();
    let semid = g.semid;
    {
        // Store through a handle that is then dropped, so no attachment keeps
        // a segment alive once the core removes it.
        let mut w = g.share().try_clone().unwrap();
        w.store(&value).unwrap();
    }
    let ids = chain_ids(head);
    assert_eq!(ids.len(), m, "{ctx0}: chain of a fresh store (len {n})");

    // --- corrupt one field of one segment
    let i = rng.below(m as u64) as usize;
    let field = rng.below(4) as usize;
    let off = FIELDS[field];
    let orig = read_word(ids[i], off).unwrap();
    let mut removed_id = None;
    let mut foreign_same = None;
    let mut foreign_other = None;
    let (new, kind): (u32, &str) = match field {
        0 => match rng.below(9) {
            0 => (rng.next() as u32, "random"),
            1 => ((-5i32) as u32, "-5"),
            2 => (ids[i] as u32, "self id"),
            3 => (head as u32, "head id"),
            4 => (ids[rng.below(m as u64) as usize] as u32, "another segment's id"),
            5 => {
                let id = shm_create_private(SIZE);
                rmid_made_here(id);
                removed_id = Some(id);
                (id as u32, "removed id")
            }
            6 => ((-1i32) as u32, "-1"),
            7 => {
                let id = shm_create_private(SIZE);
                g.extra.push(id);
                write_word(id, NEXT_SHMID, -1i32 as u32);
                foreign_same = Some(id);
                (id as u32, "foreign segment, same size")
            }
            _ => {
                let id = shm_create_private(2 * SIZE);
                g.extra.push(id);
                write_word(id, NEXT_SHMID, -1i32 as u32);
                foreign_other = Some(id);
                (id as u32, "foreign segment, other size")
            }
        },
        1 => {
            let past = (m * DATA) as i64;
            match rng.below(5) {
                0 => (rng.range(i32::MIN as i64, -1) as i32 as u32, "negative length"),
                1 => (rng.range(past + 1, i32::MAX as i64) as u32, "huge length"),
                2 => (i32::MAX as u32, "i32::MAX length"),
                3 => ((past + 1) as u32, "length just past the chain"),
                _ => (rng.range(0, past) as u32, "length within the chain"),
            }
        }
        2 => (rng.next() as u32, "random shm_state"),
        _ => (rng.next() as u32, "random version"),
    };
    write_word(ids[i], off, new);
    let ctx =
        format!("{ctx0}: len {n} ({m} segs), segment {i} field {off} {orig:#x} -> {new:#x} ({kind}); chain {ids:?}");

    // --- what a fetch and a count may return
    let (fexp, cexp) = if new == orig {
        (FetchExpect::Exact, CountExpect::Exactly(m))
    } else if field == 0 {
        let v = new as i32;
        let last = i == m - 1;
        let keep = ((i + 1) * DATA).min(n);
        let whole = if last { FetchExpect::Exact } else { FetchExpect::Corrupt };
        if v == -1 {
            (whole, CountExpect::Exactly(i + 1))
        } else if v < -1 {
            (whole, CountExpect::Corrupt)
        } else if let Some(j) = ids.iter().position(|&x| x == v) {
            if j <= i {
                (whole, CountExpect::Corrupt) // a cycle
            } else {
                // Skips segments: the chain is then too short for the length.
                (whole, CountExpect::Exactly(i + 1 + m - j))
            }
        } else if Some(v) == removed_id || Some(v) == foreign_other {
            (whole, CountExpect::Corrupt)
        } else if Some(v) == foreign_same {
            let f = if last {
                FetchExpect::Exact
            } else if i + 2 >= m {
                FetchExpect::Prefix { len: n, prefix: keep }
            } else {
                FetchExpect::Corrupt
            };
            (f, CountExpect::Exactly(i + 2))
        } else {
            let f = if last { FetchExpect::Exact } else { FetchExpect::Any { prefix: keep } };
            (f, CountExpect::Any)
        }
    } else if field == 1 && i == 0 {
        let v = new as i32;
        let f = if v < 0 || v as usize > m * DATA {
            FetchExpect::Corrupt
        } else {
            FetchExpect::Prefix { len: v as usize, prefix: (v as usize).min(n) }
        };
        (f, CountExpect::Exactly(m))
    } else {
        // Unused length of a chained segment, shm_state, version, or our tag.
        (FetchExpect::Exact, CountExpect::Exactly(m))
    };

    // --- read through a fresh handle: no hang, no panic, nothing created
    let before = made_here(SIZE);
    let fresh = g.share().try_clone().unwrap();
    let (fresh, got) = watched(fresh, "fetch", &ctx, |s| s.fetch());
    check_fetch(&got, &fexp, &value, &ctx);
    match &got {
        Ok(_) => stats.fetch_ok += 1,
        Err(Error::Corrupt(_)) => stats.fetch_corrupt += 1,
        Err(_) => stats.fetch_os += 1,
    }
    assert_made_unchanged(SIZE, &before, &format!("{ctx}: fetch created or removed segments"));
    let (fresh, count) = watched(fresh, "num_segments", &ctx, |s| s.num_segments());
    check_count(&count, &cexp, &ctx);
    assert_made_unchanged(SIZE, &before, &format!("{ctx}: num_segments created or removed segments"));
    let (fresh, again) = watched(fresh, "second fetch", &ctx, |s| s.fetch());
    check_fetch(&again, &fexp, &value, &ctx);
    assert_made_unchanged(SIZE, &before, &format!("{ctx}: fetch created or removed segments"));
    assert_eq!(sem_getval(semid, 1), 0, "{ctx}: a read left the shared lock held");

    // --- a store: succeeds (and then reads back) or reports the corruption
    let w_len = rng.below(max_n as u64 + 1) as usize;
    let w = rng.bytes(w_len);
    let w2 = w.clone();
    let (fresh, stored) = watched(fresh, "store", &ctx, move |s| s.store(&w2));
    let header_only = field != 0; // length/state/version/tag: store must cope
    match &stored {
        Ok(()) => {
            stats.store_ok += 1;
            let (_fresh, r) = watched(fresh, "fetch after store", &ctx, |s| (s.fetch(), s.num_segments()));
            assert!(r.0.as_ref().is_ok_and(|v| *v == w), "{ctx}: fetch after a successful store: {}", show(&r.0));
            assert_eq!(r.1, Ok(segs(w_len, SIZE)), "{ctx}: num_segments after a successful store");
            let other = g.share().try_clone().unwrap();
            let (_other, r) = watched(other, "fetch (other handle) after store", &ctx, |s| s.fetch());
            assert!(r.as_ref().is_ok_and(|v| *v == w), "{ctx}: other handle after store: {}", show(&r));
        }
        Err(e) => {
            stats.store_err += 1;
            assert!(!header_only, "{ctx}: store failed ({e:?}) though only a header field was corrupted");
            assert!(matches!(e, Error::Corrupt(_) | Error::Os(_)), "{ctx}: store error {e:?}");
            // A failed store changes nothing.
            let (_fresh, r) = watched(fresh, "fetch after failed store", &ctx, |s| s.fetch());
            match (&got, &r) {
                (Ok(a), Ok(b)) => assert!(a == b, "{ctx}: a failed store changed the value"),
                (Err(_), Err(_)) => {}
                _ => panic!("{ctx}: a failed store changed the outcome of fetch: {} then {}", show(&got), show(&r)),
            }
        }
    }
    assert_eq!((sem_getval(semid, 1), sem_getval(semid, 2)), (0, 0), "{ctx}: a lock was left held");
    // Every segment this case saw in a chain, for the cleanup at the end.
    let mut seen: BTreeSet<i32> = ids.iter().copied().collect();
    seen.extend(chain_ids(head));

    // --- removal takes everything of ours with it
    let removed = g.share().remove();
    match &removed {
        Ok(()) => {
            assert!(!sem_exists(semid), "{ctx}: semaphore set survived remove()");
            if let (Some(now), Some(baseline)) = (made_here(SIZE), &baseline) {
                let ext: BTreeSet<i32> = g.extra.iter().copied().collect();
                let left: Vec<i32> = now.difference(baseline).filter(|id| !ext.contains(id)).copied().collect();
                // The removed handle may keep the head mapped (marked for removal) until dropped.
                let left: Vec<i32> = left.into_iter().filter(|&id| id != head).collect();
                assert!(left.is_empty(), "{ctx}: segments left after remove(): {left:?}");
            }
        }
        Err(e) => {
            stats.remove_err += 1;
            eprintln!("{ctx}: remove() failed: {e:?}; removing leftovers by id");
        }
    }
    drop(g); // removes extras and, after a failed remove, whatever is left
    if let (Some(now), Some(baseline)) = (made_here(SIZE), &baseline) {
        let left: Vec<i32> = now.difference(baseline).copied().collect();
        for id in &left {
            rmid_made_here(*id);
        }
        assert!(left.is_empty() || removed.is_err(), "{ctx}: segments left after dropping the share: {left:?}");
    }
    // Without a list of segments the core sweeps no orphans, and neither can
    // the check above: what the corruption cut off (made here, of this size,
    // and so this test's own) is removed by the ids this case saw.
    for id in seen {
        if shm_stat(id).is_some_and(|st| st.size == SIZE) {
            rmid_made_here(id);
        }
    }
}

#[test]
fn corrupted_headers_never_hang_panic_or_grow() {
    let seed = std::env::var("SHARELITE_CORRUPTION_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
    let iters: usize = std::env::var("SHARELITE_CORRUPTION_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(1200);
    eprintln!("corruption: seed {seed:#x} (SHARELITE_CORRUPTION_SEED to replay), {iters} iterations");
    // A case has up to two chains of values at once (what a corrupted link
    // cut off, and the chain a store makes anew) and three segments more:
    // where the system allows fewer segments, the values are shorter.
    let test = "corrupted_headers_never_hang_panic_or_grow";
    let (got, _room) = room(2 * segs(MAX_VALUE, SIZE) + 3 + ROOM_MARGIN, SIZE, test);
    let max_n = ((got.saturating_sub(3 + ROOM_MARGIN) / 2).max(1) * DATA).min(MAX_VALUE);
    if max_n < MAX_VALUE {
        note(&format!("{test}: values of at most {max_n} bytes ({} segments), not {MAX_VALUE}", segs(max_n, SIZE)));
    }
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    let t = Instant::now();
    for it in 0..iters {
        let ctx = format!("seed {seed:#x} iteration {it}");
        one_case(&mut rng, &ctx, &mut stats, max_n);
    }
    eprintln!("corruption: {stats:?} in {:?}", t.elapsed());
    assert!(stats.fetch_ok > 0 && stats.fetch_corrupt > 0, "{stats:?}");
    if let Some(left) = made_here(SIZE) {
        assert_eq!(left, BTreeSet::new(), "segments of size {SIZE} left behind");
    }
}

// ----- deterministic cases ----------------------------------------------------------

/// 0.17 removes surplus segments before it cuts the chain; a writer killed in
/// between leaves a link to a removed segment. Reads report it, the next store
/// that needs the chain repairs it, and no lock stays held.
#[test]
fn dangling_link_of_killed_writer() {
    const S: usize = 80;
    let Some(_room) = room_for(2 * 10 + 1, S, "dangling_link_of_killed_writer") else { return };
    let ds = S - HEADER;
    let mut g = private(S);
    let head = g.share().shmid();
    let long: Vec<u8> = (0..ds * 10).map(|i| (i * 7) as u8).collect();
    {
        let mut w = g.share().try_clone().unwrap();
        w.store(&long).unwrap();
    }
    let ids = chain_ids(head);
    assert_eq!(ids.len(), 10);
    // The interrupted shrinking store: value of 3 segments written, length set,
    // segments 3.. removed, link from segment 2 not yet cut.
    let short = &long[..ds * 3 - 4];
    write_word(head, LENGTH, short.len() as u32);
    for id in &ids[3..] {
        rmid_made_here(*id);
    }
    let before = made_here(S);
    let mut a = g.share().try_clone().unwrap();
    let mut b = g.share().try_clone().unwrap();
    assert_eq!(a.fetch().unwrap(), short, "the value does not need the dangling link");
    assert!(matches!(a.num_segments(), Err(Error::Corrupt(_))), "{:?}", a.num_segments());
    assert_made_unchanged(S, &before, "reads changed the segments");
    // The same length again: the dangling link is past what is needed, store cuts it.
    a.store(short).unwrap();
    assert_eq!(b.num_segments().unwrap(), 3);
    // Simulate the crash again, then a store that needs the removed segments.
    let ids = chain_ids(head);
    let extra = {
        let id = shm_create_private(S);
        rmid_made_here(id);
        id
    };
    write_word(ids[2], NEXT_SHMID, extra as u32);
    assert!(matches!(b.num_segments(), Err(Error::Corrupt(_))));
    b.store(&long).expect("a store repairs a link to a removed segment");
    assert_eq!(b.held(), None);
    assert_eq!(a.lock(LockKind::Exclusive, Wait::No), Ok(true), "the failed/repaired store kept the lock");
    a.unlock().unwrap();
    assert_eq!(a.fetch().unwrap(), long);
    assert_eq!(a.num_segments().unwrap(), 10);
    drop((a, b));
    let all = chain_ids(head);
    g.share().remove().unwrap();
    for id in &all[1..] {
        assert!(gone_here(*id), "segment {id} survived remove()");
    }
}

/// Cycles and lengths past the chain: 0.17 loops for ever or creates segments
/// on read. Each case must fail fast with Corrupt and create nothing.
#[test]
fn cycles_and_hostile_lengths() {
    const S: usize = 96;
    let Some(_room) = room_for(2 * 5, S, "cycles_and_hostile_lengths") else { return };
    let ds = S - HEADER;
    let mut g = private(S);
    let head = g.share().shmid();
    let value: Vec<u8> = (0..ds * 5).map(|i| i as u8).collect();
    g.share().store(&value).unwrap();
    let ids = chain_ids(head);
    assert_eq!(ids.len(), 5);
    let before = made_here(S);
    type Case = (&'static str, Vec<(i32, usize, u32)>, bool);
    let cases: Vec<Case> = vec![
        ("head links to itself", vec![(head, NEXT_SHMID, head as u32)], true),
        ("last links to head", vec![(ids[4], NEXT_SHMID, head as u32)], false),
        ("last links to itself", vec![(ids[4], NEXT_SHMID, ids[4] as u32)], false),
        ("two-segment cycle", vec![(ids[2], NEXT_SHMID, ids[1] as u32)], true),
        ("length past the chain", vec![(head, LENGTH, (ds * 5 + 1) as u32)], true),
        ("length i32::MAX", vec![(head, LENGTH, i32::MAX as u32)], true),
        ("length -1", vec![(head, LENGTH, u32::MAX)], true),
        ("cycle and huge length", vec![(ids[4], NEXT_SHMID, ids[3] as u32), (head, LENGTH, i32::MAX as u32)], true),
        ("chain cut short", vec![(ids[1], NEXT_SHMID, u32::MAX)], true),
    ];
    for (name, writes, fetch_fails) in cases {
        let saved: Vec<(i32, usize, u32)> =
            writes.iter().map(|&(id, off, _)| (id, off, read_word(id, off).unwrap())).collect();
        for &(id, off, v) in &writes {
            write_word(id, off, v);
        }
        let h = g.share().try_clone().unwrap();
        let t = Instant::now();
        let (h, r) = watched(h, "fetch", name, |s| s.fetch());
        if fetch_fails {
            assert!(matches!(r, Err(Error::Corrupt(_))), "{name}: {}", show(&r));
        } else {
            assert_eq!(r.as_deref().ok(), Some(&value[..]), "{name}");
        }
        let (_h, c) = watched(h, "num_segments", name, |s| s.num_segments());
        assert!(matches!(c, Err(Error::Corrupt(_)) | Ok(_)), "{name}: {c:?}");
        if name.contains("cycle") || name.contains("links to") {
            assert!(matches!(c, Err(Error::Corrupt(_))), "{name}: num_segments {c:?}");
        }
        assert!(t.elapsed() < CALL_LIMIT, "{name}: too slow");
        assert_made_unchanged(S, &before, &format!("{name}: reads created or removed segments"));
        for (id, off, v) in saved {
            write_word(id, off, v);
        }
        assert_eq!(g.share().fetch().unwrap(), value, "{name}: restored");
    }
}
