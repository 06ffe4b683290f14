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
//! such as `add` and `subtract`), the element-wise maps and the f64 sums of `cpu::reduce` and
//! `cpu::batch_norm` come out with full-width vectors through this seam. The
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

#[cfg(test)]
mod tests {
    use super::*;

    /// out = a·b + c, a multiply then an add, element by element.
    struct MultiplyAdd<'a> {
        a: &'a [f32],
        b: &'a [f32],
        c: &'a [f32],
        out: &'a mut [f32],
    }

    impl Work for MultiplyAdd<'_> {
        #[inline(always)]
        fn run(self) {
            for (o, ((&a, &b), &c)) in self.out.iter_mut().zip(self.a.iter().zip(self.b).zip(self.c)) {
                *o = a * b + c;
            }
        }
    }

    #[test]
    fn every_path_this_cpu_has_gives_the_bits_of_the_plain_loop() {
        // Values whose product rounds: a fused multiply-add would differ in the last bit.
        let a: Vec<f32> = (0..1003).map(|i| 1.0 + (i as f32 * 0.37).sin() / 3.0).collect();
        let b: Vec<f32> = (0..1003).map(|i| 1.0 + (i as f32 * 0.71).cos() / 7.0).collect();
        let c: Vec<f32> = (0..1003).map(|i| -(a[i] * b[i]) + (i as f32 * 0.13).sin() * 1e-6).collect();
        let fused_differs = (0..a.len()).filter(|&i| a[i].mul_add(b[i], c[i]) != a[i] * b[i] + c[i]).count();
        assert!(fused_differs > a.len() / 2, "only {fused_differs} inputs would show a fused multiply-add");
        let mut plain = vec![0.0; a.len()];
        MultiplyAdd { a: &a, b: &b, c: &c, out: &mut plain }.run();
        let mut chosen = vec![f32::NAN; a.len()];
        run(MultiplyAdd { a: &a, b: &b, c: &c, out: &mut chosen });
        assert_eq!(
            plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            chosen.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        #[cfg(target_arch = "x86_64")]
        for (path, present) in
            [("avx512f", is_x86_feature_detected!("avx512f")), ("avx2", is_x86_feature_detected!("avx2"))]
        {
            if !present {
                eprintln!("skipped the {path} path: this CPU does not have it");
                continue;
            }
            let mut out = vec![f32::NAN; a.len()];
            let work = MultiplyAdd { a: &a, b: &b, c: &c, out: &mut out };
            // SAFETY: this CPU has the path's instructions (checked above).
            unsafe {
                if path == "avx512f" {
                    with_avx512(work)
                } else {
                    with_avx2(work)
                }
            };
            let differing = out.iter().zip(&plain).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(differing, 0, "the {path} path differs from the plain loop in {differing} elements");
        }
    }
}
