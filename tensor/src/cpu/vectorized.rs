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
//! One thing the compiler needs to vectorize without run-time overlap checks: that nothing
//! else writes through the slices a loop reads. It knows that of a slice passed directly as a
//! function's argument, also once that function is inlined, and not of one read out of a
//! struct. So the loops belong in small functions taking their slices as arguments (as the
//! Winograd transforms' `add` and `subtract` do); `cpu::shifted_rows` ran ten times slower
//! when its register-blocked loop read its rows out of a struct.

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
