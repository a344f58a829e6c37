//! Finding the segments of a share that no link reaches any more: chained
//! segments of ours (tagged with the head) cut off by a killed writer, and
//! ones a writer was killed creating, before it could tag them.

use libc::c_int;

use crate::segment::{Attached, Segment};
use crate::sys::{self, Errno};

/// `shm_perm.mode` flag of a segment marked for removal (Linux).
const SHM_DEST: u32 = 0o1000;

/// Removes the orphans of the share whose head is `head` (segments of
/// `seg_size` bytes and permission bits `mode`). They are known by what
/// they are: private, this share's size, and either tagged with this head,
/// or not yet tagged (a header all zero, or naming this head without the tag), this share's mode, attached nowhere and
/// made by a process that is gone.
pub(crate) fn sweep(head: c_int, seg_size: usize, mode: c_int) {
    let Ok(text) = std::fs::read_to_string("/proc/sysvipc/shm") else { return };
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return };
    let cols: Vec<&str> = header.split_whitespace().collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(c_key), Some(c_id), Some(c_perms), Some(c_size), Some(c_cpid), Some(c_nattch)) =
        (col("key"), col("shmid"), col("perms"), col("size"), col("cpid"), col("nattch"))
    else {
        return;
    };
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        if field(c_key) != "0" || field(c_size).parse::<usize>().ok() != Some(seg_size) {
            continue;
        }
        let (Ok(id), Ok(perms), Ok(cpid), Ok(nattch)) = (
            field(c_id).parse::<i32>(),
            u32::from_str_radix(field(c_perms), 8),
            field(c_cpid).parse::<i32>(),
            field(c_nattch).parse::<u64>(),
        ) else {
            continue;
        };
        if id == head || perms & SHM_DEST != 0 {
            continue;
        }
        let untagged_candidate = nattch == 0 && perms & 0o777 == mode as u32 && !process_alive(cpid);
        if let Ok(Attached::Live(seg)) = Segment::attach_checked(id, seg_size) {
            if seg.is_chained_of(head) || (untagged_candidate && seg.is_untagged_of(head)) {
                let _ = sys::shm_remove(id);
            }
        }
    }
}

/// True unless `kill(pid, 0)` says there is no such process.
fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || Errno::last().0 != libc::ESRCH
}
