//! Plain loops compiled for the widest vectors this CPU has: the one seam where a kernel's
//! scalar Rust becomes AVX-512 or AVX2 code without being written twice.
//!
//! The build targets every x86-64, so the compiler vectorizes element-wise loops with SSE's
//! four lanes at most. A kernel that wants more puts its work in a type implementing [`Work`]
//! and calls [`run`]: the work is inlined into a function compiled for AVX-512 (or AVX2) and
//! called there when the CPU has it, so the same loops come out with 16 (or 8) lanes. The
//! same operations run in the same order on every path (Rust never fuses a multiply and an
//! add), so every path gives the same bits.
//!
//! What the compiler vectorizes depends on what it can prove about the slices a loop touches,
//! and that is fragile. The Winograd transforms' loops (element-wise, through small functions
//! such as `add` and `subtract`) come out with full-width vectors through this seam. The
//! register-blocked loop of `cpu::shifted_rows` did not: with its slices reaching the AVX-512
//! function inside a struct, directly or through this seam, it stayed scalar and ran ten
//! times slower; with the slices as that function's own arguments it is vectorized. After
//! moving a kernel's arguments around, measure it and look for `zmm` registers in
//! `perf annotate`.

/// A piece of work whose loops [`run`] compiles for the widest vectors: implement `run` with
/// `#[inline(always)]`, so that it is inlined into each of [`run`]'s paths.
pub(crate) trait Work {
    fn run(self);
}

/// Runs `work` compiled for AVX-512 where the CPU has it, else for AVX2, else as built.
pub(crate) fn run<W: Work>(work: W) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: this CPU has AVX-512F.
            return unsafe { with_avx512(work) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2.
            return unsafe { with_avx2(work) };
        }
    }
    work.run();
}

/// See [`run`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn with_avx512<W: Work>(work: W) {
    work.run();
}

/// See [`run`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<W: Work>(work: W) {
    work.run();
}
