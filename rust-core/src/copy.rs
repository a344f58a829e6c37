//! Copying between process memory and segments.
//!
//! glibc's `memcpy` uses `rep movsb` for mid-sized copies, and on common x86
//! CPUs that runs about ten times slower when the destination sits a few bytes
//! ahead of the source modulo 4096 (the two streams alias in the store buffer).
//! Segment data starts 16 bytes into a page, so chained copies hit that case
//! often. For those distances a plain vector loop is used instead.

use std::ptr;

/// Copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// `src` must be valid for `n` bytes of reads, `dst` for `n` bytes of writes,
/// and the two ranges must not overlap.
pub unsafe fn copy_bytes(dst: *mut u8, src: *const u8, n: usize) {
    let ahead = (dst as usize).wrapping_sub(src as usize) & 4095;
    if n >= 1024 && (1..128).contains(&ahead) {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { copy_vectors(dst, src, n) }
    } else {
        // SAFETY: the caller guarantees valid, non-overlapping ranges.
        unsafe { ptr::copy_nonoverlapping(src, dst, n) }
    }
}

/// Copies in 64-byte blocks of unaligned 16-byte loads and stores.
///
/// # Safety
/// As for [`copy_bytes`].
#[cfg(target_arch = "x86_64")]
unsafe fn copy_vectors(dst: *mut u8, src: *const u8, n: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n keeps every access in bounds; SSE2 is part of
        // the x86_64 baseline; unaligned loads and stores are allowed.
        unsafe {
            let s = src.add(i) as *const __m128i;
            let d = dst.add(i) as *mut __m128i;
            let a = _mm_loadu_si128(s);
            let b = _mm_loadu_si128(s.add(1));
            let c = _mm_loadu_si128(s.add(2));
            let e = _mm_loadu_si128(s.add(3));
            _mm_storeu_si128(d, a);
            _mm_storeu_si128(d.add(1), b);
            _mm_storeu_si128(d.add(2), c);
            _mm_storeu_si128(d.add(3), e);
        }
        i += 64;
    }
    // SAFETY: the rest, fewer than 64 bytes, is in bounds.
    unsafe { ptr::copy_nonoverlapping(src.add(i), dst.add(i), n - i) }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn copy_vectors(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: as for copy_bytes.
    unsafe { ptr::copy_nonoverlapping(src, dst, n) }
}

#[cfg(test)]
mod tests {
    use super::copy_bytes;

    #[test]
    fn copies_every_distance_and_length() {
        let src: Vec<u8> = (0..20000u32).map(|i| (i * 7 + 3) as u8).collect();
        for &n in &[0usize, 1, 63, 64, 65, 1023, 1024, 4097, 9000] {
            for off in [0usize, 1, 16, 31, 100, 4000] {
                let mut dst = vec![0u8; n + off + 8];
                // SAFETY: both ranges are in bounds of distinct vectors.
                unsafe { copy_bytes(dst.as_mut_ptr().add(off), src.as_ptr(), n) };
                assert_eq!(&dst[off..off + n], &src[..n]);
                assert!(dst[..off].iter().all(|&b| b == 0));
                assert!(dst[off + n..].iter().all(|&b| b == 0));
            }
        }
    }
}
