//! Shared test helpers: the context (or a skip), a seeded random generator, poisoned output
//! buffers and the tolerance check against f64 references.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use gpu::{Context, GpuBuffer};

/// Relative tolerance of every comparison against an f64 reference.
pub const TOL: f64 = 1e-4;

/// The shared context, or `None` (after printing why) when there is no adapter and
/// `VAE_REQUIRE_GPU` is not 1; see [`gpu::test_context`].
pub fn ctx() -> Option<&'static Context> {
    gpu::test_context()
}

/// A context of the test's own, for a test that counts what its context does (launches,
/// read-backs, pool bytes), which tests sharing one would add to; `None` as [`ctx`].
pub fn own_ctx() -> Option<Context> {
    ctx()?;
    Some(Context::new(gpu::AdapterPreference::AnyIncludingSoftware).unwrap())
}

/// A context whose tiled GEMMs all run on the 128×128 tile (`Context::with_gemm_tile`), so
/// small problems check it; created once, after [`ctx`] found an adapter.
pub fn wide_tile_context() -> &'static Context {
    static WIDE: std::sync::OnceLock<Context> = std::sync::OnceLock::new();
    WIDE.get_or_init(|| {
        Context::with_gemm_tile(gpu::AdapterPreference::AnyIncludingSoftware, gpu::kernels::GemmTile::Wide128).unwrap()
    })
}

/// A context of the test's own with tuning on, keeping its choices in a scratch folder (removed
/// when the returned guard drops), and the cache file's path.
pub fn tuning_context() -> (tempfile::TempDir, std::path::PathBuf, Context) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("choices.tsv");
    let tuned = Context::new(gpu::AdapterPreference::AnyIncludingSoftware).unwrap();
    assert!(tuned.enable_tuning(Some(path.clone())));
    (dir, path, tuned)
}

/// xorshift64* seeded from the clock (or `VAE_TEST_SEED`), so every run draws new inputs;
/// failures print the seed to reproduce them.
pub struct Rng {
    state: u64,
    pub seed: u64,
}

impl Rng {
    pub fn new() -> Self {
        let seed = std::env::var("VAE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
        });
        Rng { state: seed.max(1), seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// n values uniform in [lo, hi) (never exactly 0 in practice; callers that need a sign
    /// use ranges that exclude 0).
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// n values with |x| in [0.1, 1) and a random sign: nonzero, O(1).
    pub fn signed(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let m = self.uniform(0.1, 1.0);
                if self.next_u64() & 1 == 0 {
                    m
                } else {
                    -m
                }
            })
            .collect()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A buffer of `len` NaNs: any element a kernel fails to write fails the comparison.
pub fn poisoned(ctx: &Context, len: usize) -> GpuBuffer {
    let buf = ctx.alloc(len).unwrap();
    ctx.fill(&buf, f32::NAN).unwrap();
    buf
}

pub fn upload(ctx: &Context, data: &[f32]) -> GpuBuffer {
    ctx.upload(data).unwrap()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Checks |got − want| ≤ TOL·max(|want|, scale) element-wise, where `scale` is the natural
/// magnitude of the computation (1 for O(1) element-wise maps; Σ|aᵢ·bᵢ| for a dot product,
/// so that cancellation does not turn rounding into a large relative error). Prints the
/// seed and the first mismatches on failure.
pub fn assert_close(what: &str, rng: &Rng, got: &[f32], want: &[f64], scale: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: length (seed {})", rng.seed);
    let mut bad = Vec::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let denom = w.abs().max(scale(i)).max(1e-30);
        let err = (g as f64 - w).abs() / denom;
        if err.is_nan() || err > TOL {
            bad.push((i, g, w, err));
        }
    }
    if !bad.is_empty() {
        let first: Vec<String> =
            bad.iter().take(8).map(|(i, g, w, e)| format!("[{i}] got {g} want {w} (rel err {e:.2e})")).collect();
        panic!(
            "{what}: {} of {} elements off (seed {}, rerun with VAE_TEST_SEED={}):\n  {}",
            bad.len(),
            got.len(),
            rng.seed,
            rng.seed,
            first.join("\n  ")
        );
    }
}

/// [`assert_close`] with scale 1 (absolute error 1e-4 for values below 1).
pub fn assert_close_unit(what: &str, rng: &Rng, got: &[f32], want: &[f64]) {
    assert_close(what, rng, got, want, |_| 1.0);
}

/// The f64 values of an f32 slice, and of their magnitudes: a reference run on the
/// magnitudes gives each element of a sum of products its natural scale, so cancellation does
/// not turn rounding into a large relative error.
pub fn f64s(v: &[f32]) -> (Vec<f64>, Vec<f64>) {
    (v.iter().map(|&x| x as f64).collect(), v.iter().map(|&x| (x as f64).abs()).collect())
}

/// A small op table for the launcher tests (the real table, with every op, is the tensor
/// crate's `elementwise_table`; its rows are tested there and in the workspace's tests/).
pub mod ops {
    use std::sync::OnceLock;

    use gpu::kernels::elementwise::{ElementwiseShader, OpCode, OpTable, View};
    use gpu::{Context, GpuBuffer};

    /// Unary codes: −x, eˣ, x + α.
    pub const NEG: u32 = 0;
    pub const EXP: u32 = 1;
    pub const ADD_SCALAR: u32 = 2;
    /// Unary backward code 0: g·s.
    /// Binary codes: a + b, a − b, a·b, a / b, NaN-propagating max.
    pub const ADD: u32 = 0;
    pub const SUB: u32 = 1;
    pub const MUL: u32 = 2;
    pub const DIV: u32 = 3;
    pub const MAX: u32 = 4;
    pub const BINARY: [u32; 5] = [ADD, SUB, MUL, DIV, MAX];

    /// f64 references of the binary codes.
    pub fn binary_ref(code: u32, a: f64, b: f64) -> f64 {
        match code {
            ADD => a + b,
            SUB => a - b,
            MUL => a * b,
            DIV => a / b,
            _ => a.max(b),
        }
    }

    pub fn shader() -> &'static ElementwiseShader {
        static SHADER: OnceLock<ElementwiseShader> = OnceLock::new();
        SHADER.get_or_init(|| {
            ElementwiseShader::new(&OpTable {
                unary: &["-x", "exp(x)", "x + alpha"],
                unary_backward: &["g * s", "g * s", "g * s"],
                binary: &["a + b", "a - b", "a * b", "a / b", "select(select(max(a, b), b, is_nan(b)), a, is_nan(a))"],
            })
        })
    }

    /// out = op(x) for dense buffers of x's length.
    pub fn unary(ctx: &Context, code: u32, alpha: f32, x: &GpuBuffer, out: &GpuBuffer) -> gpu::Result<()> {
        let shape = [x.len()];
        let op = OpCode { code, alpha, beta: 0.0 };
        shader().unary(ctx, op, &View::dense(x, &shape), &View::dense(out, &shape), &shape)
    }
}
