//! The look from outside (`sharelite::inspect`) on real shares: what a key
//! holds, the header, the semaphores and the chain's state, including chains
//! damaged in each way the format names; and that looking changes nothing.

mod common;

use sharelite::inspect::{self, ChainState, LinkFault, Look};
use sharelite::internals::header::{LENGTH, NEXT_SHMID};
use sharelite::internals::sys;
use sharelite::{OpenOptions, Share};

use common::{chain_ids, free_key, read_word, shm_create_private, shm_rmid, write_word};

/// A keyed share of 4096-byte segments holding `len` bytes, removed on drop.
struct Keyed(Share);

impl Keyed {
    fn new(len: usize) -> Keyed {
        let mut s = OpenOptions::new().key(free_key()).exclusive(true).size(4096).destroy(true).open().expect("create");
        s.store(&vec![b'v'; len]).expect("store");
        Keyed(s)
    }
    fn look(&self) -> inspect::ShareInfo {
        match inspect::look(self.0.key()) {
            Look::Share(i) => i,
            other => panic!("not a share: {other:?}"),
        }
    }
}

#[test]
fn a_sound_share() {
    let k = Keyed::new(10_000);
    let words = |id: i32| [NEXT_SHMID, LENGTH].map(|off| read_word(id, off));
    let before: Vec<_> = chain_ids(k.0.shmid()).into_iter().map(words).collect();
    let i = k.look();
    assert_eq!((i.key, i.shmid, i.semid, i.segment_size), (k.0.key(), k.0.shmid(), k.0.semid(), Some(4096)));
    assert_eq!(i.mode, Some(0o666));
    assert_eq!(i.semaphores, Some([1, 0, 0]), "initialised, no lock held");
    let h = i.header.expect("the header is readable");
    assert_eq!((h.length, h.version), (10_000, 2));
    assert_eq!(i.shmids, chain_ids(k.0.shmid()));
    assert_eq!(i.shmids.len(), common::segs(10_000, 4096));
    assert_eq!((i.chain, i.chain.name(), i.problem), (ChainState::Sound, "ok", None));
    let after: Vec<_> = chain_ids(k.0.shmid()).into_iter().map(words).collect();
    assert_eq!(before, after, "looking changed nothing");
}

#[test]
fn nothing_and_not_a_share() {
    let key = free_key();
    assert_eq!(inspect::look(key), Look::Nothing);
    // A lone segment at a key (as 0.17 chains at key+1): not a share.
    let lone = sys::shmget(key, 4096, 0o600 | sys::IPC_CREAT | sys::IPC_EXCL).expect("a segment at a free key");
    match inspect::look(key) {
        Look::NotAShare(o) => {
            assert_eq!(o.semid, None);
            assert_eq!(o.shmid, Some(lone));
            assert!(o.holds_data);
            assert_eq!(o.why_not(), "no semaphore set of 3, a shared memory segment");
        }
        other => panic!("{other:?}"),
    }
    shm_rmid(lone);
}

#[test]
fn damaged_chains_have_their_state() {
    let k = Keyed::new(10_000);
    let ids = chain_ids(k.0.shmid());
    let (head, second, third) = (ids[0], ids[1], ids[2]);

    write_word(third, NEXT_SHMID, second as u32);
    assert_eq!(k.look().chain, ChainState::Fault(LinkFault::Loop));
    assert_eq!(k.look().chain.name(), "cycle");

    write_word(third, NEXT_SHMID, (-7i32) as u32);
    assert_eq!(k.look().chain, ChainState::Fault(LinkFault::Invalid));

    let other = shm_create_private(8192);
    write_word(third, NEXT_SHMID, other as u32);
    let i = k.look();
    assert_eq!((i.chain, i.chain.name()), (ChainState::Fault(LinkFault::WrongSize), "foreign"));
    assert_eq!(i.problem.as_deref(), Some(format!("segment {other} is 8192 bytes, not 4096").as_str()));
    shm_rmid(other);
    assert_eq!(k.look().chain.name(), "broken", "a link to a removed segment");

    write_word(third, NEXT_SHMID, -1i32 as u32);
    write_word(head, LENGTH, 20_000);
    assert_eq!(k.look().chain, ChainState::Short);
    write_word(head, LENGTH, (-5i32) as u32);
    assert_eq!(k.look().chain, ChainState::BadLength);
    write_word(head, LENGTH, 10_000);
    assert_eq!(k.look().chain, ChainState::Sound);
}
