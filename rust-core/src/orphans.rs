//! Finding the segments of a share that no link reaches any more: chained
//! segments of ours (tagged with the head) cut off by a killed writer, and
//! ones a writer was killed creating, before it could tag them.

use libc::c_int;

use crate::segment::{Attached, Segment};
use crate::sys::{self, IPC_PRIVATE};

/// Removes the orphans of the share whose head is `head` (segments of
/// `seg_size` bytes). They are known by what they are: private, this
/// share's size, and either tagged with this head, or not yet tagged (a
/// header all zero, or naming this head without the tag) with the head's
/// permission bits, attached nowhere, made by a process that is gone, and no
/// earlier than the head (`head_stat`, its IPC_STAT before removal; without
/// it, untagged segments are left alone). An
/// all-zero header names no head, so those last conditions are what keep
/// the sweep off another program's fresh private segment.
///
/// Where the system gives no list of its segments ([`sys::shm_list`]:
/// NetBSD, OpenBSD, macOS), nothing is swept: orphans of a killed writer
/// stay until removed by hand (`ipcrm`).
pub(crate) fn sweep(head: c_int, head_stat: Option<sys::ShmStat>, seg_size: usize) {
    let Some(segments) = sys::shm_list() else { return };
    for (id, st) in segments {
        if st.key != IPC_PRIVATE || st.size != seg_size || id == head || st.removed {
            continue;
        }
        let untagged_candidate = st.nattch == 0
            && head_stat.is_some_and(|h| st.mode == h.mode && st.ctime >= h.ctime)
            && !sys::process_alive(st.cpid);
        if let Ok(Attached::Live(seg)) = Segment::attach_checked(id, seg_size) {
            if seg.is_chained_of(head) || (untagged_candidate && seg.is_untagged_of(head)) {
                let _ = sys::shm_remove(id);
            }
        }
    }
}
