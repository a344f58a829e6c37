//! Copying between process memory and segments.
//!
//! Which copy loop is fastest depends on the CPU, and on where the destination
//! lies relative to the source modulo 4096. On many Intel CPUs `rep movsb`,
//! which glibc's `memcpy` uses for mid-sized copies, runs several times slower
//! when the destination is a few bytes ahead of the source modulo 4096 (the
//! load and store streams alias in the store buffer), and chained copies hit
//! that case: segment data starts 16 bytes into a page, so chunk k of a value
//! lands 16·k bytes ahead of where it came from. AMD Zen CPUs are not spared
//! either: on an AMD EPYC Zen 3 VM (glibc 2.36), glibc's `memcpy` was
//! measured copying at 2.8 GB/s with the destination 1 to 31 bytes ahead of
//! the source modulo 4096, against 45-90 GB/s at other distances, and there
//! 0.17 stored 128 KB values at 25K/s where this crate, with the choice below,
//! stored 191K/s. On a Zen 5 machine `memcpy` was fastest at every distance
//! (figures below). A choice fixed in the source code loses on one CPU or
//! another.
//!
//! So on x86_64 the candidates (`memcpy`, an SSE2 loop, and an AVX2 loop where
//! the CPU and OS support AVX2) are timed against each other once per process,
//! at the first copy that needs a choice, for two classes of distance: "near"
//! (destination 1..=127 bytes ahead of the source modulo 4096) and "far"
//! (everything else). `memcpy` stays unless another routine is clearly faster
//! (see [`x86::CLEAR_WIN`]), so measurement noise can only keep the library's
//! own choice. The measurement takes well under a millisecond (about 80 µs on
//! the development machine, page faults of its scratch buffer included); the
//! result is kept in an atomic. On that machine (AMD EPYC, Zen 5, glibc 2.36)
//! the timed pair of 32 KB copies takes, near: memcpy 0.50 µs, SSE2 0.69 µs,
//! AVX2 0.61 µs; far: memcpy 0.40 µs, SSE2 0.68 µs, AVX2 0.59 µs, so `memcpy`
//! is kept for both. Copies shorter than [`x86::MIN_CHOICE`] always use
//! `memcpy`: below that glibc does not use `rep movsb`, and the choice would
//! cost more than it could gain.
//!
//! Every other architecture uses `ptr::copy_nonoverlapping` (the platform's
//! `memcpy`), which is correct everywhere.

use std::ptr;

/// Copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// `src` must be valid for `n` bytes of reads, `dst` for `n` bytes of writes,
/// and the two ranges must not overlap.
pub unsafe fn copy_bytes(dst: *mut u8, src: *const u8, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if n >= x86::MIN_CHOICE {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { x86::copy_chosen(dst, src, n) };
        return;
    }
    // SAFETY: the caller guarantees valid, non-overlapping ranges.
    unsafe { ptr::copy_nonoverlapping(src, dst, n) }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm256_loadu_si256, _mm256_storeu_si256, _mm_loadu_si128, _mm_storeu_si128,
    };
    use std::ptr;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::time::Instant;

    /// Copies shorter than this always go to `memcpy`.
    pub const MIN_CHOICE: usize = 1024;

    /// A copy routine.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Routine {
        /// `ptr::copy_nonoverlapping`, that is the C library's `memcpy`.
        Memcpy = 1,
        /// 64-byte blocks of unaligned 16-byte loads and stores.
        Sse2 = 2,
        /// 128-byte blocks of unaligned 32-byte loads and stores.
        Avx2 = 3,
    }

    impl Routine {
        fn from_bits(bits: u8) -> Routine {
            match bits {
                2 => Routine::Sse2,
                3 => Routine::Avx2,
                _ => Routine::Memcpy,
            }
        }
    }

    /// A routine other than `memcpy` is chosen only when its time is below
    /// this fraction of `memcpy`'s.
    pub const CLEAR_WIN: f64 = 0.9;

    /// The routine for near distances in the low 4 bits, for far ones in the
    /// high 4; 0 until chosen.
    static CHOSEN: AtomicU8 = AtomicU8::new(0);

    /// True when `dst` is 1..=127 bytes ahead of `src` modulo 4096.
    pub fn is_near(dst: *const u8, src: *const u8) -> bool {
        let ahead = (dst as usize).wrapping_sub(src as usize) & 4095;
        (1..128).contains(&ahead)
    }

    /// The routines this CPU can run, `memcpy` first.
    pub fn available() -> Vec<Routine> {
        let mut routines = vec![Routine::Memcpy, Routine::Sse2];
        if std::is_x86_feature_detected!("avx2") {
            routines.push(Routine::Avx2);
        }
        routines
    }

    /// The routines chosen for (near, far) distances, measured on first use.
    pub fn chosen() -> (Routine, Routine) {
        let mut bits = CHOSEN.load(Ordering::Relaxed);
        if bits == 0 {
            // Two threads may both measure; either result is a valid choice.
            let (near, far) = measure();
            bits = near as u8 | (far as u8) << 4;
            CHOSEN.store(bits, Ordering::Relaxed);
        }
        (Routine::from_bits(bits & 15), Routine::from_bits(bits >> 4))
    }

    /// Copies with the routine chosen for the distance from `src` to `dst`.
    ///
    /// # Safety
    /// As for [`super::copy_bytes`].
    pub unsafe fn copy_chosen(dst: *mut u8, src: *const u8, n: usize) {
        let (near, far) = chosen();
        let routine = if is_near(dst, src) { near } else { far };
        // SAFETY: the caller's guarantees are passed on unchanged; `chosen`
        // only returns routines from `available`.
        unsafe { copy_with(routine, dst, src, n) }
    }

    /// Copies with `routine`.
    ///
    /// # Safety
    /// As for [`super::copy_bytes`], and `routine` must be one of
    /// [`available`].
    pub unsafe fn copy_with(routine: Routine, dst: *mut u8, src: *const u8, n: usize) {
        // SAFETY: the caller's guarantees are passed on unchanged; AVX2 is
        // used only when `available` found it.
        unsafe {
            match routine {
                Routine::Memcpy => ptr::copy_nonoverlapping(src, dst, n),
                Routine::Sse2 => copy_sse2(dst, src, n),
                Routine::Avx2 => copy_avx2(dst, src, n),
            }
        }
    }

    /// Bytes per timed copy: the source and destination together exceed
    /// the first-level cache, as chained copies of 64 KB chunks do.
    const BLOCK: usize = 32 * 1024;
    /// Samples per routine and distance; the fastest one counts.
    const SAMPLES: usize = 5;
    /// Distances (destination ahead of source, modulo 4096) timed per class:
    /// near ones as a store's chunks land, far ones as a fetch's do.
    const NEAR: [usize; 2] = [16, 64];
    const FAR: [usize; 2] = [0, 4096 - 16];

    /// Times every available routine on both classes of distance and returns
    /// the choice for (near, far).
    fn measure() -> (Routine, Routine) {
        let routines = available();
        // Source at 16 bytes into a page, as segment data is; the destination
        // one block (a multiple of 4096) plus the distance further on.
        let mut buf = vec![0x5au8; 4096 + 2 * BLOCK + 4096];
        let base = buf.as_mut_ptr();
        let src_off = (4096 - (base as usize & 4095)) % 4096 + 16;
        let pick = |distances: &[usize]| {
            let mut best = vec![f64::MAX; routines.len() * distances.len()];
            for round in 0..=SAMPLES {
                for (d, &ahead) in distances.iter().enumerate() {
                    for (r, &routine) in routines.iter().enumerate() {
                        // SAFETY: src_off + 2 * BLOCK + 127 < buf.len() and
                        // src_off + BLOCK + 4080 + BLOCK < buf.len(), so both
                        // ranges lie in `buf`; they are BLOCK + ahead apart
                        // and BLOCK long, so they do not overlap; `routine`
                        // comes from `available`.
                        let secs = unsafe {
                            let src = base.add(src_off);
                            let dst = base.add(src_off + BLOCK + ahead);
                            let t0 = Instant::now();
                            copy_with(routine, dst, src, BLOCK);
                            t0.elapsed().as_secs_f64()
                        };
                        // Round 0 warms caches and pages and is not counted.
                        if round > 0 {
                            let slot = &mut best[r * distances.len() + d];
                            *slot = slot.min(secs);
                        }
                    }
                }
            }
            let totals: Vec<f64> = best.chunks(distances.len()).map(|c| c.iter().sum()).collect();
            choose(&routines, &totals)
        };
        let near = pick(&NEAR);
        let far = pick(&FAR);
        drop(buf);
        (near, far)
    }

    /// The fastest of `routines` by `times` (same order, `memcpy` first),
    /// unless it does not beat `memcpy` clearly.
    pub fn choose(routines: &[Routine], times: &[f64]) -> Routine {
        let mut best = 0;
        for i in 1..routines.len() {
            if times[i] < times[best] {
                best = i;
            }
        }
        if best != 0 && times[best] < CLEAR_WIN * times[0] {
            routines[best]
        } else {
            routines[0]
        }
    }

    /// Defines `$name`, a copy in blocks of four unaligned `$vec` loads, then
    /// four stores, with `memcpy` for the tail under one block.
    macro_rules! block_copy {
        ($(#[$attr:meta])* $name:ident, $vec:ty, $load:ident, $store:ident) => {
            $(#[$attr])*
            unsafe fn $name(dst: *mut u8, src: *const u8, n: usize) {
                const BLOCK: usize = 4 * std::mem::size_of::<$vec>();
                let mut i = 0;
                while i + BLOCK <= n {
                    // SAFETY: i + BLOCK <= n keeps every access in bounds; the
                    // caller guarantees the instructions (SSE2 is part of the
                    // x86_64 baseline); unaligned loads and stores are allowed.
                    unsafe {
                        let s = src.add(i) as *const $vec;
                        let d = dst.add(i) as *mut $vec;
                        let a = $load(s);
                        let b = $load(s.add(1));
                        let c = $load(s.add(2));
                        let e = $load(s.add(3));
                        $store(d, a);
                        $store(d.add(1), b);
                        $store(d.add(2), c);
                        $store(d.add(3), e);
                    }
                    i += BLOCK;
                }
                // SAFETY: the rest, shorter than a block, is in bounds.
                unsafe { ptr::copy_nonoverlapping(src.add(i), dst.add(i), n - i) }
            }
        };
    }

    block_copy!(
        /// Copies in 64-byte blocks of unaligned 16-byte loads and stores.
        ///
        /// # Safety
        /// As for [`super::copy_bytes`].
        copy_sse2, __m128i, _mm_loadu_si128, _mm_storeu_si128
    );

    block_copy!(
        /// Copies in 128-byte blocks of unaligned 32-byte loads and stores.
        ///
        /// # Safety
        /// As for [`super::copy_bytes`], and the CPU must support AVX2.
        #[target_feature(enable = "avx2")]
        copy_avx2, __m256i, _mm256_loadu_si256, _mm256_storeu_si256
    );
}

#[cfg(test)]
mod tests {
    use super::copy_bytes;

    /// Lengths around every block size and tail of the routines.
    fn lengths() -> Vec<usize> {
        let mut v: Vec<usize> = (0..=300).collect();
        v.extend([511, 512, 513, 1023, 1024, 1025, 1151, 4095, 4096, 4097, 16_391, 65_520]);
        v
    }

    /// Source bytes that differ from their neighbours and from the guard.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n as u32).map(|i| (i.wrapping_mul(131) >> 3) as u8 ^ 0xa5).collect()
    }

    /// Copies `n` bytes from `src_mis` bytes past a 64-byte boundary to
    /// `dst_mis` past one, with `copy`, and checks the bytes and the guards.
    fn check(copy: &dyn Fn(*mut u8, *const u8, usize), n: usize, src_mis: usize, dst_mis: usize) {
        const GUARD: usize = 200;
        let src_buf = pattern(n + 128);
        let mut dst_buf = vec![0xeeu8; n + 128 + 2 * GUARD];
        let s = (64 - (src_buf.as_ptr() as usize & 63)) % 64 + src_mis;
        let d = GUARD + (64 - ((dst_buf.as_ptr() as usize + GUARD) & 63)) % 64 + dst_mis;
        copy(dst_buf[d..].as_mut_ptr(), src_buf[s..].as_ptr(), n);
        assert_eq!(&dst_buf[d..d + n], &src_buf[s..s + n], "n {n} src +{src_mis} dst +{dst_mis}");
        assert!(dst_buf[..d].iter().all(|&b| b == 0xee), "wrote before: n {n}");
        assert!(dst_buf[d + n..].iter().all(|&b| b == 0xee), "wrote after: n {n}");
    }

    #[test]
    fn copy_bytes_copies_every_length_and_alignment() {
        for n in lengths() {
            for src_mis in [0, 1, 15, 16, 33, 63] {
                for dst_mis in [0, 1, 7, 16, 48, 63] {
                    // SAFETY: `check` passes in-bounds ranges of two vectors.
                    check(&|d, s, n| unsafe { copy_bytes(d, s, n) }, n, src_mis, dst_mis);
                }
            }
        }
    }

    /// Every distance modulo 4096, so both classes and their edges are used.
    #[test]
    fn copy_bytes_copies_at_every_distance() {
        for n in [1023, 1024, 5000, 65_520] {
            let src = pattern(n);
            let span = n.next_multiple_of(4096) + 4096;
            let mut buf = vec![0u8; 2 * span + 4096];
            let base = (4096 - (buf.as_ptr() as usize & 4095)) % 4096;
            for ahead in 0..4096 {
                let d = base + span + ahead;
                buf[d - 1] = 0xee;
                buf[d + n] = 0xee;
                // SAFETY: d + n < buf.len(), and `src` is its own vector.
                unsafe { copy_bytes(buf[d..].as_mut_ptr(), src.as_ptr(), n) };
                assert_eq!(&buf[d..d + n], &src[..], "n {n} ahead {ahead}");
                assert_eq!((buf[d - 1], buf[d + n]), (0xee, 0xee), "n {n} ahead {ahead}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::super::x86::{available, choose, chosen, copy_with, is_near, Routine, CLEAR_WIN};
        use super::{check, lengths};

        #[test]
        fn every_routine_copies_every_length_and_alignment() {
            for routine in available() {
                for n in lengths() {
                    for src_mis in [0, 1, 16, 31, 63] {
                        for dst_mis in [0, 3, 16, 32, 63] {
                            // SAFETY: `check` passes in-bounds ranges of two
                            // vectors; `routine` comes from `available`.
                            let copy = |d, s, n| unsafe { copy_with(routine, d, s, n) };
                            check(&copy, n, src_mis, dst_mis);
                        }
                    }
                }
            }
        }

        #[test]
        fn the_choice_is_an_available_routine_and_stays() {
            let first = chosen();
            let routines = available();
            assert!(routines.contains(&first.0) && routines.contains(&first.1));
            assert_eq!(chosen(), first);
        }

        #[test]
        fn memcpy_stays_unless_clearly_beaten() {
            let r = [Routine::Memcpy, Routine::Sse2, Routine::Avx2];
            assert_eq!(choose(&r, &[1.0, 0.95, 0.99]), Routine::Memcpy);
            assert_eq!(choose(&r, &[1.0, 1.2, CLEAR_WIN]), Routine::Memcpy);
            assert_eq!(choose(&r, &[1.0, 0.5, 0.7]), Routine::Sse2);
            assert_eq!(choose(&r, &[1.0, 0.7, 0.5]), Routine::Avx2);
            assert_eq!(choose(&r[..1], &[1.0]), Routine::Memcpy);
        }

        #[test]
        fn near_means_1_to_127_ahead_modulo_4096() {
            let base = 0x10000 as *const u8;
            let at = |ahead: usize| (0x10000 + ahead) as *const u8;
            assert!(!is_near(at(0), base));
            assert!(is_near(at(1), base));
            assert!(is_near(at(127), base));
            assert!(!is_near(at(128), base));
            assert!(is_near(at(4096 * 7 + 16), base));
            assert!(!is_near(base, at(16)));
        }
    }
}
