//! Kernel choices by measurement, cached per adapter. Tier: GPU (tooling for the launchers).
//!
//! Some choices have no rule that holds on every device. Whether a GEMM runs on the 64×64 or
//! the 128×128 tile depends on how many workgroups the device keeps in flight, on its
//! workgroup memory and on its compiler: the size rule in [`GemmTile::for_gemm`] was set on an
//! H100, and on lavapipe the 128×128 tile is twice as fast at 256³, where the rule picks the
//! 64×64 one. A context with tuning on ([`Context::enable_tuning`]) instead times both tiles
//! the first time a *shape class* needs a choice and keeps the faster (the size rule's tile
//! unless the other is faster by more than [`descriptors::choices::INCUMBENT_MARGIN`]), so a
//! device nobody tuned for gets the kernels that are fast on it.
//!
//! - Shape class: whether M spans more than one square tile, and ⌊log₂⌋ of the number of
//!   square tiles the output makes (batch entries included), capped at 2¹². A class is timed
//!   on a proxy product of its size, its K cut so that a candidate run is at most 2²⁸ flops
//!   (about a quarter of a second on lavapipe, microseconds on a real GPU): a warm-up run
//!   each (which builds the pipeline), then the median of three rounds in which the tiles
//!   take turns.
//! - Cache: [`descriptors::choices::ChoiceFile`], in the file the caller names (`train`, whose
//!   default is `--gpu-kernels measured`, uses `~/.cache/vae-stack/kernel-choices.tsv`), keyed by the adapter's
//!   name, backend, driver and driver version, so a driver update or another GPU measures anew,
//!   and by this build's candidates, so a build with another rung or tile does too.
//! - Split K: a product whose output makes few tiles has its K cut into slices that run side
//!   by side ([`crate::kernels::matmul::k_slices_by_rule`], a rule set on an H100, where the
//!   idle multiprocessors are the cost). Whether the cut pays depends on how many workgroups
//!   the device runs at once: on lavapipe's few threads the partials are extra work. With
//!   tuning on, each class of such products (⌊log₂⌋ of its square tiles and of its K) is timed
//!   with the rule's cut and without, taking turns, on a proxy product of its shape whose K is
//!   cut so that a run is at most 2³⁰ flops, and the rule's cut stays unless keeping K whole is
//!   faster by more than [`descriptors::choices::INCUMBENT_MARGIN`]. The convolutions' split K
//!   asks the same question of the same classes.
//! - The weight gradient's split: a convolution's backward-weight is a small [C_out,
//!   C_in·kH·kW] output over a long K (N·OH·OW), and a rule set on an H100 cuts that K until
//!   the launch has about 512 workgroups
//!   ([`crate::kernels::conv2d::weight_grad_slices_by_rule`]). With tuning on, each class
//!   (`wgrad-split/t2^0/k2^16`) is timed on the layer itself (its batch cut so that a run is
//!   at most 2³⁰ flops) in the rule's slices and in the fewest the kernel allows, as the split
//!   K is.
//! - The convolutions' rungs: each of the three kernels of a convolution (forward,
//!   backward-data, backward-weight; a transposed convolution runs them too) can run on any
//!   rung of its ladder ([`crate::kernels::conv2d::ConvRung`]), and the tensor ops run the top
//!   one, the implicit GEMM. With tuning on, each class (`conv-rung/forward/t2^3/k2^9`: the
//!   kernel, a backward-data's stride, and its GEMM's tiles and K as above) is timed on the
//!   layer itself with as many of its images as the top rung runs in about 20 ms (all of
//!   them on a real GPU, a few on lavapipe), its sub-choices (tile, split K) on the size rules
//!   ([`on_the_rules`]) so that the proxy's shapes make no choices of their own; a rung more
//!   than twice as slow as the fastest in the first round takes no further turns (the lower
//!   rungs are 4–5× slower on lavapipe, and each of their runs costs seconds there), and the
//!   top rung stays unless another is faster by more than the margin.
//! - The matrix product's rungs: with tuning on, each class of products (`matmul-rung/m>64/t2^5`,
//!   the tile's classes) times the tile its class chose against the ladder's two lower rungs
//!   (tiled16, naive) on the tile's proxy product ([`time_matmul_rungs`]), kept as the
//!   convolutions' rungs are. A pinned tile pins the rung.
//! - Overrides: [`Context::with_gemm_tile`] and [`Context::pin_gemm_tile`] (`train
//!   --gemm-tile`) pin one tile for every launch (tests and the benchmarks pin theirs this
//!   way), [`Context::pin_conv_rung`] (`train --conv-rung`) one convolution rung; a context without tuning keeps the size rule. Each measurement prints a `tuning:`
//!   line; a run whose classes are all in the cache prints none.
//!
//! Same machine and same choices give the same launches, so the same bits. The choices made
//! are listed by [`Tuner::choices`] for a run's provenance.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use descriptors::choices::ChoiceFile;

use crate::context::Context;
use crate::error::Result;
use crate::kernels::conv2d::{ConvKernel, ConvRung};
use crate::kernels::matmul::{k_slices_by_rule, matmul_k_sliced, matmul_on_rung, MatView, MatmulArgs, MatmulRung};
use crate::kernels::GemmTile;
use crate::GpuBuffer;

/// The largest class: 2¹² square tiles (a 4096×4096 output) and beyond.
const MAX_CLASS_LOG2: u32 = 12;
/// The most flops one timed candidate run may take.
const PROXY_MAX_FLOPS: usize = 1 << 28;
/// The most flops one timed run of a split-K proxy may take: more than a tile's, because a
/// shorter K than the class's would ask another question (fewer slices, less to gain).
const SPLIT_PROXY_MAX_FLOPS: usize = 1 << 30;
/// The split-K choices' names in the cache: the rule's cut, K whole, or (the weight
/// gradient's) the fewest slices the kernel allows.
const K_SPLIT: &str = "k-split";
const K_WHOLE: &str = "k-whole";
const K_FEWEST: &str = "k-fewest";
/// Timed rounds of a choice after the warm-up, the candidates taking turns.
const ROUNDS: usize = 3;
/// A convolution rung this many times slower than the fastest in the first round takes no
/// further turns.
const RUNG_SLOWER_THAN: f64 = 2.0;
/// The shortest a timed run of a candidate may be ([`LaunchTimer`]): twenty times the
/// submit-and-wait around it on an H100 host (about 0.1 ms).
const MIN_TIMED_RUN: Duration = Duration::from_millis(2);
/// The most launches one timed run may record ([`LaunchTimer`]).
const MAX_LAUNCHES_PER_TIMED_RUN: usize = 1024;
/// How this build times a GPU candidate, appended to the cache's machine key: choices timed
/// one launch a run (earlier builds) measured the submit-and-wait, not the kernel, and are not
/// reused.
const LAUNCH_TIMING: &str = "launches filling 2 ms";

thread_local! {
    /// Whether this thread is timing a convolution's rungs ([`on_the_rules`]).
    static ON_THE_RULES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's launches on the size rules, as if tuning were off
/// ([`Context::tuner`] answers `None`): a convolution's rungs are timed on a proxy with fewer
/// images than the layer, and the proxy's GEMM shapes must not make (and cache) choices that
/// only the proxy needs. Other threads sharing the context keep its choices.
pub fn on_the_rules<T>(f: impl FnOnce() -> T) -> T {
    let before = ON_THE_RULES.with(|flag| flag.replace(true));
    let result = f();
    ON_THE_RULES.with(|flag| flag.set(before));
    result
}

/// Whether this thread is inside [`on_the_rules`].
pub fn timing_on_the_rules() -> bool {
    ON_THE_RULES.with(|flag| flag.get())
}

/// A context's measured choices, and the file that keeps them between runs.
pub struct Tuner {
    /// Class → chosen tile name, for this adapter.
    choices: ChoiceFile,
}

impl Tuner {
    /// A tuner for the adapter `adapter_key`, with the choices `cache` holds for it (a missing
    /// file holds none).
    pub fn new(adapter_key: String, cache: Option<PathBuf>) -> Tuner {
        let known = |name: &str| candidate_names().contains(&name);
        Tuner { choices: ChoiceFile::open(cache, cache_key(&adapter_key), known) }
    }

    /// The tile for `layers` GEMMs of [m, n] outputs: the cached choice for their class, or
    /// the faster of the two as `time` measures them (then cached); the `rule`'s tile stays
    /// unless the other is faster by more than the margin.
    pub fn gemm_tile(
        &self,
        m: usize,
        n: usize,
        layers: usize,
        rule: GemmTile,
        mut time: impl FnMut(GemmTile) -> Result<Duration>,
    ) -> Result<GemmTile> {
        let names = [tile_name(GemmTile::Square64), tile_name(GemmTile::Wide128)];
        let class = shape_class(m, n, layers);
        let chosen =
            self.choices.choose_timed_together("GEMM tiles", &class, &names, Some(tile_name(rule)), |names| {
                descriptors::choices::median_times_taking_turns(names.len(), ROUNDS, false, |i| {
                    time(tile_from_name(names[i]).unwrap_or(rule))
                })
            })?;
        Ok(tile_from_name(&chosen).unwrap_or(rule))
    }

    /// Whether a product of [m, n] outputs over `k` whose K the rule would cut should be cut:
    /// the cached choice for its class, or the faster of the two as `time(cut)` measures them,
    /// a warm-up each, then three rounds taking turns, by the median; the rule's
    /// cut stays unless K whole is faster by more than the margin.
    pub fn k_split(&self, m: usize, n: usize, k: usize, time: impl FnMut(bool) -> Result<Duration>) -> Result<bool> {
        self.cut_or_not("split K", &k_split_class(m, n, k), K_WHOLE, time)
    }

    /// Whether a convolution's weight gradient of [m, n] outputs over `k` should run in the
    /// rule's K slices (`true`) or in the fewest the kernel allows (`false`), decided as
    /// [`Tuner::k_split`] decides, per class of its own (`wgrad-split/t2^3/k2^16`).
    pub fn weight_grad_split(
        &self,
        m: usize,
        n: usize,
        k: usize,
        time: impl FnMut(bool) -> Result<Duration>,
    ) -> Result<bool> {
        self.cut_or_not("weight gradient's split", &weight_grad_split_class(m, n, k), K_FEWEST, time)
    }

    /// The rung a convolution kernel of `class` ([`conv_rung_class`]) runs on: the cached
    /// choice, or the fastest of `candidates` as `time(rung)` measures them (its first call
    /// warms every rung up), three rounds taking turns, a rung more than twice as slow as the
    /// fastest in the first round dropped after it; the first candidate (the incumbent, the
    /// implicit GEMM) stays unless another is faster by more than the margin.
    pub fn conv_rung(
        &self,
        class: &str,
        candidates: &[ConvRung],
        mut time: impl FnMut(ConvRung) -> Result<Duration>,
    ) -> Result<ConvRung> {
        let top = candidates.first().copied().unwrap_or(ConvRung::ImplicitGemm);
        let names: Vec<&str> = candidates.iter().map(|rung| rung.name()).collect();
        let chosen = self.fastest_rung("convolution's rungs", class, &names, |name| {
            time(ConvRung::from_name(name).unwrap_or(top))
        })?;
        Ok(ConvRung::from_name(&chosen).unwrap_or(top))
    }

    /// The rung `layers` matrix products of [m, n] outputs run on, `tile` being the one their
    /// tile choice gives them: the cached choice for their class (`matmul-rung/m>64/t2^5`), or
    /// the fastest of `tile` and the ladder's two lower rungs (tiled16, naive), timed and kept
    /// as [`Tuner::conv_rung`] does.
    pub fn matmul_rung(
        &self,
        m: usize,
        n: usize,
        layers: usize,
        tile: MatmulRung,
        mut time: impl FnMut(MatmulRung) -> Result<Duration>,
    ) -> Result<MatmulRung> {
        let class = format!("matmul-rung/{}", shape_class(m, n, layers));
        let names = [tile.name(), MatmulRung::SharedTile16.name(), MatmulRung::Naive.name()];
        let chosen = self.fastest_rung("matrix product's rungs", &class, &names, |name| {
            time(MatmulRung::from_name(name).unwrap_or(tile))
        })?;
        Ok(MatmulRung::from_name(&chosen).unwrap_or(tile))
    }

    /// The kept rung of `class`, or the fastest of `names` (the first is the incumbent, the
    /// top rung) as `time` measures them: three rounds taking turns (the timer warms every
    /// rung up on its first call), a rung more than twice as slow as the fastest in the first
    /// round dropped after it; the incumbent stays unless another is faster by the margin.
    fn fastest_rung(
        &self,
        what: &str,
        class: &str,
        names: &[&str],
        mut time: impl FnMut(&str) -> Result<Duration>,
    ) -> Result<String> {
        self.choices.choose_timed_together(what, class, names, names.first().copied(), |names| {
            descriptors::choices::median_times_dropping_the_slow(names.len(), ROUNDS, true, RUNG_SLOWER_THAN, |i| {
                time(names[i])
            })
        })
    }

    /// The rule's cut (`time(true)`, the incumbent) against `uncut` (`time(false)`), for `class`.
    fn cut_or_not(
        &self,
        what: &str,
        class: &str,
        uncut: &str,
        mut time: impl FnMut(bool) -> Result<Duration>,
    ) -> Result<bool> {
        if let Some(kept) = self.choices.kept(class) {
            return Ok(kept == K_SPLIT);
        }
        // The warm-up runs before the tuning line: the proxy's own GEMMs may need their tiles
        // chosen first, each with a line of its own.
        let candidates = [K_SPLIT, uncut];
        for name in candidates {
            time(name == K_SPLIT)?;
        }
        let chosen = self.choices.choose_timed_together(what, class, &candidates, Some(K_SPLIT), |names| {
            descriptors::choices::median_times_taking_turns(names.len(), ROUNDS, true, |i| time(names[i] == K_SPLIT))
        })?;
        Ok(chosen == K_SPLIT)
    }

    /// The choices made or read so far: (class, choice), in class order.
    pub fn choices(&self) -> Vec<(String, String)> {
        self.choices.choices()
    }
}

/// A choice of [`Tuner::choices`] as a run's provenance gives it: `gemm tile m>64/t2^5:
/// wide128`, `split K t2^3/k2^12: k-whole` or `weight gradient split t2^0/k2^16: k-fewest`.
pub fn describe_choice(class: &str, choice: &str) -> String {
    if let Some(rest) = class.strip_prefix("k-split/") {
        format!("split K {rest}: {choice}")
    } else if let Some(rest) = class.strip_prefix("wgrad-split/") {
        format!("weight gradient split {rest}: {choice}")
    } else if let Some(rest) = class.strip_prefix("conv-rung/") {
        format!("convolution rung {rest}: {choice}")
    } else if let Some(rest) = class.strip_prefix("matmul-rung/") {
        format!("matmul rung {rest}: {choice}")
    } else {
        format!("gemm tile {class}: {choice}")
    }
}

/// Times one candidate's launches for the tuner. On a fast GPU one launch between two waits is
/// mostly the submit and the wait (about 0.1 ms on an H100 host, where a proxy product runs in
/// 10 µs): timed so, every candidate takes the same 0.12–0.16 ms and the race goes to the noise.
/// So the first call runs the launch once untimed (its pipeline built, its pooled buffers
/// touched), then doubles the launches recorded between the two waits until a run lasts
/// `MIN_TIMED_RUN`, 2 ms ([`launches_filling`]), and every later call (every candidate of the
/// choice) times that many: each returns the time of one launch. On lavapipe one launch
/// already lasts longer, so a run stays one launch.
#[derive(Default)]
pub struct LaunchTimer {
    /// Launches per timed run, once the first call has found it.
    launches: Option<usize>,
}

impl LaunchTimer {
    /// A timer that finds its launches per run on its first call.
    pub fn new() -> LaunchTimer {
        LaunchTimer::default()
    }

    /// How long one `launch` takes on `ctx`'s device, timed over this timer's launches per run.
    pub fn time(&mut self, ctx: &Context, mut launch: impl FnMut() -> Result<()>) -> Result<Duration> {
        if let Some(launches) = self.launches {
            return Ok(timed_run(ctx, launches, &mut launch)? / launches as u32);
        }
        launch()?;
        let (launches, per_launch) =
            launches_filling(MIN_TIMED_RUN, MAX_LAUNCHES_PER_TIMED_RUN, |n| timed_run(ctx, n, &mut launch))?;
        self.launches = Some(launches);
        Ok(per_launch)
    }
}

/// `launches` of `launch` between two waits for the device, and how long they took.
pub(crate) fn timed_run(ctx: &Context, launches: usize, launch: &mut impl FnMut() -> Result<()>) -> Result<Duration> {
    ctx.synchronize()?;
    let start = Instant::now();
    for _ in 0..launches {
        launch()?;
    }
    ctx.synchronize()?;
    Ok(start.elapsed())
}

/// The fewest launches, doubling from one up to `most`, whose run (`run(n)`: n launches timed
/// together) lasts at least `shortest`, and the time of one launch in that run.
pub fn launches_filling<E>(
    shortest: Duration,
    most: usize,
    mut run: impl FnMut(usize) -> std::result::Result<Duration, E>,
) -> std::result::Result<(usize, Duration), E> {
    let mut launches = 1;
    loop {
        let took = run(launches)?;
        if took >= shortest || launches >= most {
            return Ok((launches, took / launches as u32));
        }
        launches = (launches * 2).min(most.max(1));
    }
}

/// The class of a product of [m, n] outputs over `k` whose K the rule would cut, as the cache
/// names it: `k-split/t2^3/k2^12` for 8 to 15 square tiles and a K of 4,096 to 8,191.
pub fn k_split_class(m: usize, n: usize, k: usize) -> String {
    format!("k-split/{}", tiles_and_k(m, n, k))
}

/// The class of a convolution's weight gradient of [m, n] outputs over `k` (`wgrad-split/t2^0/k2^16`).
pub fn weight_grad_split_class(m: usize, n: usize, k: usize) -> String {
    format!("wgrad-split/{}", tiles_and_k(m, n, k))
}

/// The class of a convolution kernel whose GEMM has [m, n] outputs over `k`, as the cache
/// names it: `conv-rung/forward/t2^3/k2^9`. A strided backward-data (a strided transposed
/// convolution's forward) is a class of its own per stride, `conv-rung/backward-data-s2/…`:
/// its GEMM rungs skip the taps that miss, the direct rung walks them all. So is a kernel the
/// Winograd rung computes (`winograd`), `conv-rung/forward-winograd/…`: it has one more
/// candidate.
pub fn conv_rung_class(kernel: ConvKernel, stride: [usize; 2], winograd: bool, m: usize, n: usize, k: usize) -> String {
    let name = kernel.name().trim_start_matches("conv2d_").replace('_', "-");
    let strided = match kernel {
        ConvKernel::BackwardData if stride != [1, 1] => format!("-s{}x{}", stride[0], stride[1]),
        _ => String::new(),
    };
    let winograd = if winograd { "-winograd" } else { "" };
    format!("conv-rung/{name}{strided}{winograd}/{}", tiles_and_k(m, n, k))
}

/// ⌊log₂⌋ of the square tiles of an [m, n] output and of `k`: `t2^3/k2^12`.
fn tiles_and_k(m: usize, n: usize, k: usize) -> String {
    let tiles = m.div_ceil(64).max(1) * n.div_ceil(64).max(1);
    format!("t2^{}/k2^{}", tiles.ilog2(), k.max(1).ilog2())
}

/// A timer for [`Tuner::k_split`]: each call runs a proxy product of [m, n] outputs (its K
/// cut to at most 2³⁰ flops) with the rule's cut of the proxy's K, or with K
/// whole, and returns how long it took. The buffers are allocated once, on the first call.
pub fn time_k_split(ctx: &Context, m: usize, n: usize, k: usize) -> impl FnMut(bool) -> Result<Duration> + '_ {
    let pk = k.min((SPLIT_PROXY_MAX_FLOPS / (2 * m * n).max(1)).max(16));
    let slices = k_slices_by_rule(ctx, 1, m, n, pk).max(2);
    let mut operands = None;
    let mut timer = LaunchTimer::new();
    move |cut| {
        let args = proxy_args(ctx, &mut operands, [m, n, pk])?;
        timer.time(ctx, || matmul_k_sliced(ctx, &args, if cut { slices } else { 1 }))
    }
}

/// A product [m, k]·[k, n] into [m, n] on `operands`, which are allocated on the first call
/// (the timers' proxies: their values do not change the speed of f32 arithmetic).
fn proxy_args<'a>(
    ctx: &Context,
    operands: &'a mut Option<[GpuBuffer; 3]>,
    [m, n, k]: [usize; 3],
) -> Result<MatmulArgs<'a>> {
    let [a, b, c] = match operands {
        Some(allocated) => &*allocated,
        empty => &*empty.insert([ctx.alloc(m * k)?, ctx.alloc(k * n)?, ctx.alloc(m * n)?]),
    };
    Ok(MatmulArgs::new(MatView::row_major(a, m, k), MatView::row_major(b, k, n), c, [m, n, k]))
}

/// The class of `layers` GEMMs of [m, n] outputs, as the cache names it: `m>64/t2^5` for a tall
/// output of 32 to 63 square tiles.
pub fn shape_class(m: usize, n: usize, layers: usize) -> String {
    let tiles = layers.max(1) * m.div_ceil(64).max(1) * n.div_ceil(64).max(1);
    let log2 = tiles.ilog2().min(MAX_CLASS_LOG2);
    format!("{}/t2^{log2}", if m > 64 { "m>64" } else { "m<=64" })
}

/// A timer for [`Tuner::gemm_tile`]: each call runs the proxy product of the class of (m, n,
/// layers) on the given tile and returns how long one launch took ([`LaunchTimer`]). The
/// operands are allocated on the first call.
pub fn time_gemm_tiles(
    ctx: &Context,
    m: usize,
    n: usize,
    layers: usize,
) -> impl FnMut(GemmTile) -> Result<Duration> + '_ {
    let proxy = proxy_product(m, n, layers);
    let mut operands = None;
    let mut timer = LaunchTimer::new();
    move |tile| {
        let args = proxy_args(ctx, &mut operands, proxy)?;
        timer.time(ctx, || matmul_on_rung(ctx, &args, tile.into()))
    }
}

/// The [M, N, K] of the proxy product that stands for the class of `layers` GEMMs of [m, n]
/// outputs: the class's number of square tiles, as tall as the class says M is, its K cut so
/// that a run is at most 2²⁸ flops (and 8 to 256 long).
fn proxy_product(m: usize, n: usize, layers: usize) -> [usize; 3] {
    let tiles = layers.max(1) * m.div_ceil(64).max(1) * n.div_ceil(64).max(1);
    let tiles = 1usize << tiles.ilog2().min(MAX_CLASS_LOG2);
    let rows = if m > 64 { 1usize << (tiles.ilog2().div_ceil(2)) } else { 1 };
    let (pm, pn) = ((rows * 64).min(m.max(1) * 2), tiles.div_ceil(rows) * 64);
    [pm, pn, (PROXY_MAX_FLOPS / (2 * pm * pn)).clamp(8, 256)]
}

/// A timer for [`Tuner::matmul_rung`]: each call runs the class's proxy product
/// (`proxy_product`: the tile's proxy) on the given rung and returns how long it took. The first call
/// allocates the operands (zeroed) and runs every rung once over a K of at most 16, which
/// builds their pipelines for the price of a few k-steps.
pub fn time_matmul_rungs(
    ctx: &Context,
    m: usize,
    n: usize,
    layers: usize,
) -> impl FnMut(MatmulRung) -> Result<Duration> + '_ {
    let [pm, pn, pk] = proxy_product(m, n, layers);
    let mut operands = None;
    let mut timer = LaunchTimer::new();
    move |rung| {
        let first = operands.is_none();
        let args = proxy_args(ctx, &mut operands, [pm, pn, pk])?;
        if first {
            // Zeroed (a pooled buffer may hold denormals), and every rung's pipeline built.
            for buffer in [args.a.buf, args.b.buf, args.c] {
                ctx.clear(buffer)?;
            }
            let short = pk.min(16);
            let (a, b) = (MatView::row_major(args.a.buf, pm, short), MatView::row_major(args.b.buf, short, pn));
            for warm in MatmulRung::ALL {
                matmul_on_rung(ctx, &MatmulArgs::new(a, b, args.c, [pm, pn, short]), warm)?;
            }
        }
        timer.time(ctx, || matmul_on_rung(ctx, &args, rung))
    }
}

/// Every choice this build's tuner can make: the tiles, the K cuts, the convolution and
/// matmul rungs.
fn candidate_names() -> Vec<&'static str> {
    let tiles = [GemmTile::Square64, GemmTile::Wide128].map(tile_name);
    let conv = ConvRung::ALL.map(ConvRung::name);
    let matmul = MatmulRung::ALL.map(MatmulRung::name);
    [&tiles[..], &[K_SPLIT, K_WHOLE, K_FEWEST], &conv, &matmul].concat()
}

/// The cache's key for an adapter: the adapter (name, backend, driver), this build's candidates
/// (a build with another rung or tile measures anew, as the CPU tuner's key does, instead of
/// meeting choices it cannot read) and how it times them.
fn cache_key(adapter_key: &str) -> String {
    format!("{adapter_key}, {}; {LAUNCH_TIMING}", candidate_names().join(" "))
}

/// The tile's name in the cache and in a run's provenance (`square64`, `wide128`).
pub fn tile_name(tile: GemmTile) -> &'static str {
    match tile {
        GemmTile::Square64 => "square64",
        GemmTile::Wide128 => "wide128",
    }
}

/// The tile a name of [`tile_name`] names.
pub fn tile_from_name(name: &str) -> Option<GemmTile> {
    match name {
        "square64" => Some(GemmTile::Square64),
        "wide128" => Some(GemmTile::Wide128),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_names_every_candidate_so_a_build_with_another_measures_anew() {
        let key = cache_key("Some GPU (Vulkan, driver 1.2)");
        assert!(key.starts_with("Some GPU (Vulkan, driver 1.2), ") && key.ends_with(LAUNCH_TIMING), "{key}");
        for name in ["square64", "wide128", K_SPLIT, K_WHOLE, K_FEWEST] {
            assert!(key.contains(name), "{name} missing from {key}");
        }
        for name in ConvRung::ALL.map(ConvRung::name).into_iter().chain(MatmulRung::ALL.map(MatmulRung::name)) {
            assert!(key.contains(name), "{name} missing from {key}");
        }
    }

    fn fake(square_ms: u64, wide_ms: u64) -> impl Fn(GemmTile) -> Result<Duration> {
        move |tile| {
            Ok(Duration::from_millis(match tile {
                GemmTile::Square64 => square_ms,
                GemmTile::Wide128 => wide_ms,
            }))
        }
    }

    /// A device whose every timed run costs `latency` (the submit and the wait) plus `kernel`
    /// a launch: n launches timed together take latency + n·kernel.
    fn device_run(latency_us: u64, kernel_us: u64) -> impl FnMut(usize) -> std::result::Result<Duration, ()> {
        move |n| Ok(Duration::from_micros(latency_us + n as u64 * kernel_us))
    }

    #[test]
    fn a_launch_that_fills_the_shortest_run_is_timed_alone() {
        let (launches, per_launch) =
            launches_filling(MIN_TIMED_RUN, MAX_LAUNCHES_PER_TIMED_RUN, device_run(100, 250_000)).unwrap();
        assert_eq!((launches, per_launch), (1, Duration::from_micros(250_100)));
    }

    #[test]
    fn launches_double_until_the_submit_and_wait_is_a_small_share_of_the_run() {
        // An H100 host: 150 µs to submit and wait, 13 µs a kernel. 128 launches take 1.81 ms,
        // 256 take 3.48 ms: the first run of at least 2 ms.
        let (launches, per_launch) =
            launches_filling(MIN_TIMED_RUN, MAX_LAUNCHES_PER_TIMED_RUN, device_run(150, 13)).unwrap();
        assert_eq!(launches, 256);
        let error = (per_launch.as_secs_f64() - 13e-6).abs() / 13e-6;
        assert!(error < 0.05, "one launch timed at {per_launch:?} against 13 µs");
    }

    #[test]
    fn a_run_stops_doubling_at_the_most_launches() {
        let (launches, _) = launches_filling(MIN_TIMED_RUN, 64, device_run(10, 1)).unwrap();
        assert_eq!(launches, 64);
    }

    #[test]
    fn the_faster_kernel_wins_where_one_launch_is_mostly_the_submit_and_wait() {
        // The rule's tile takes 20 µs, the other 13 µs, each behind 150 µs of submit and wait.
        // One launch a run: 170 against 163 µs, within the margin, so the slower rule's tile
        // would stay. Launches filling 2 ms a run: 20 against 13 µs.
        let one_launch = |kernel_us: u64| Duration::from_micros(150 + kernel_us);
        let tuner = Tuner::new("gpu A".into(), None);
        let square_by_one_launch = tuner
            .gemm_tile(64, 64, 1, GemmTile::Square64, |tile| {
                Ok(one_launch(if tile == GemmTile::Square64 { 20 } else { 13 }))
            })
            .unwrap();
        assert_eq!(square_by_one_launch, GemmTile::Square64, "one launch a run cannot tell them apart");
        let filled = |kernel_us: u64| {
            launches_filling(MIN_TIMED_RUN, MAX_LAUNCHES_PER_TIMED_RUN, device_run(150, kernel_us)).unwrap().1
        };
        let chosen = tuner
            .gemm_tile(64, 4096, 1, GemmTile::Square64, |tile| {
                Ok(filled(if tile == GemmTile::Square64 { 20 } else { 13 }))
            })
            .unwrap();
        assert_eq!(chosen, GemmTile::Wide128);
    }

    #[test]
    fn the_faster_tile_is_chosen_per_shape_class() {
        let tuner = Tuner::new("gpu A".into(), None);
        let (square, wide) = (GemmTile::Square64, GemmTile::Wide128);
        assert_eq!(tuner.gemm_tile(256, 256, 1, square, fake(2, 1)).unwrap(), wide);
        assert_eq!(tuner.gemm_tile(4096, 4096, 1, wide, fake(1, 2)).unwrap(), square);
        // Same class as the first (16 square tiles, tall): no new measurement.
        assert_eq!(tuner.gemm_tile(250, 250, 1, square, |_| panic!("measured twice")).unwrap(), wide);
        assert_eq!(tuner.choices().len(), 2);
    }

    #[test]
    fn the_rules_tile_stays_unless_the_other_is_faster_by_more_than_the_margin() {
        let tuner = Tuner::new("gpu A".into(), None);
        let timer = |square_us: u64, wide_us: u64| {
            move |tile| Ok(Duration::from_micros(if tile == GemmTile::Square64 { square_us } else { wide_us }))
        };
        // 3 % faster on the wide tile: within the margin, the rule's square tile stays.
        assert_eq!(tuner.gemm_tile(64, 4096, 1, GemmTile::Square64, timer(1000, 970)).unwrap(), GemmTile::Square64);
        assert_eq!(tuner.gemm_tile(64, 64, 1, GemmTile::Square64, timer(1000, 900)).unwrap(), GemmTile::Wide128);
    }

    #[test]
    fn the_rules_split_k_stays_unless_k_whole_is_faster_by_more_than_the_margin() {
        let tuner = Tuner::new("gpu A".into(), None);
        let timer = |split_ms: u64, whole_ms: u64| {
            move |cut: bool| Ok(Duration::from_micros(if cut { split_ms } else { whole_ms }))
        };
        // 3 % faster whole: within the margin, the rule's cut stays.
        assert!(tuner.k_split(64, 64, 4096, timer(1000, 970)).unwrap());
        // Twice as fast whole: K is kept whole.
        assert!(!tuner.k_split(64, 64, 1 << 16, timer(1000, 500)).unwrap());
        // The first class again (a K of 4,096 to 8,191): no new measurement.
        assert!(tuner.k_split(60, 50, 8000, |_| panic!("measured twice")).unwrap());
        assert_eq!(
            tuner.choices(),
            [
                ("k-split/t2^0/k2^12".to_string(), "k-split".to_string()),
                ("k-split/t2^0/k2^16".to_string(), "k-whole".to_string())
            ]
        );
    }

    #[test]
    fn a_split_k_choice_times_each_candidate_after_a_warm_up_taking_turns() {
        let tuner = Tuner::new("gpu A".into(), None);
        let mut order = Vec::new();
        tuner
            .k_split(64, 64, 4096, |cut| {
                order.push(cut);
                Ok(Duration::from_millis(1))
            })
            .unwrap();
        assert_eq!(order, [true, false, true, false, true, false, true, false]);
    }

    #[test]
    fn the_weight_gradients_split_is_a_choice_of_its_own_kept_as_the_fewest_slices() {
        let tuner = Tuner::new("gpu A".into(), None);
        let timer = |split_ms: u64, fewest_ms: u64| {
            move |cut: bool| Ok(Duration::from_micros(if cut { split_ms } else { fewest_ms }))
        };
        // The same sizes as a matmul's split-K class, but another question: timed anew.
        assert!(!tuner.weight_grad_split(32, 48, 65_536, timer(1000, 600)).unwrap());
        assert!(tuner.k_split(32, 48, 65_536, timer(1000, 990)).unwrap());
        assert_eq!(
            tuner.choices(),
            [
                ("k-split/t2^0/k2^16".to_string(), "k-split".to_string()),
                ("wgrad-split/t2^0/k2^16".to_string(), "k-fewest".to_string())
            ]
        );
        assert_eq!(describe_choice("wgrad-split/t2^0/k2^16", K_FEWEST), "weight gradient split t2^0/k2^16: k-fewest");
    }

    #[test]
    fn the_top_convolution_rung_stays_unless_another_is_faster_by_more_than_the_margin() {
        let tuner = Tuner::new("gpu A".into(), None);
        let timer = |direct_us: u64, tiled_us: u64, top_us: u64| {
            move |rung: ConvRung| {
                Ok(Duration::from_micros(match rung {
                    ConvRung::Direct => direct_us,
                    ConvRung::Tiled16 => tiled_us,
                    ConvRung::ImplicitGemm => top_us,
                    ConvRung::Winograd => panic!("not a candidate"),
                }))
            }
        };
        let class = |k| conv_rung_class(ConvKernel::Forward, [1, 1], false, 64, 64, k);
        let rungs = [ConvRung::ImplicitGemm, ConvRung::Tiled16, ConvRung::Direct];
        assert_eq!(tuner.conv_rung(&class(100), &rungs, timer(4000, 5000, 1000)).unwrap(), ConvRung::ImplicitGemm);
        assert_eq!(tuner.conv_rung(&class(1000), &rungs, timer(970, 5000, 1000)).unwrap(), ConvRung::ImplicitGemm);
        assert_eq!(tuner.conv_rung(&class(4000), &rungs, timer(5000, 600, 1000)).unwrap(), ConvRung::Tiled16);
        // The first class again: no new measurement.
        let again = tuner.conv_rung(&class(120), &rungs, |_| panic!("measured twice")).unwrap();
        assert_eq!(again, ConvRung::ImplicitGemm);
        assert_eq!(tuner.choices().len(), 3);
    }

    #[test]
    fn winograd_is_chosen_only_faster_by_more_than_the_margin_than_the_implicit_gemm() {
        let tuner = Tuner::new("gpu A".into(), None);
        let timer = |winograd_us: u64| {
            move |rung: ConvRung| {
                Ok(Duration::from_micros(match rung {
                    ConvRung::Winograd => winograd_us,
                    ConvRung::ImplicitGemm => 1000,
                    ConvRung::Tiled16 | ConvRung::Direct => 9000,
                }))
            }
        };
        let class = |k| conv_rung_class(ConvKernel::Forward, [1, 1], true, 64, 4096, k);
        let rungs = [ConvRung::ImplicitGemm, ConvRung::Winograd, ConvRung::Tiled16, ConvRung::Direct];
        assert_eq!(tuner.conv_rung(&class(576), &rungs, timer(980)).unwrap(), ConvRung::ImplicitGemm);
        assert_eq!(tuner.conv_rung(&class(4608), &rungs, timer(450)).unwrap(), ConvRung::Winograd);
        assert_eq!(describe_choice(&class(4608), "winograd"), "convolution rung forward-winograd/t2^6/k2^12: winograd");
    }

    #[test]
    fn a_convolution_rung_far_slower_than_the_top_one_is_timed_once() {
        let tuner = Tuner::new("gpu A".into(), None);
        let mut order = Vec::new();
        let class = conv_rung_class(ConvKernel::BackwardWeight, [2, 2], false, 64, 576, 1 << 15);
        tuner
            .conv_rung(&class, &[ConvRung::ImplicitGemm, ConvRung::Tiled16, ConvRung::Direct], |rung| {
                order.push(rung);
                Ok(Duration::from_millis(if rung == ConvRung::ImplicitGemm { 1 } else { 5 }))
            })
            .unwrap();
        use ConvRung::*;
        assert_eq!(order, [ImplicitGemm, Tiled16, Direct, ImplicitGemm, ImplicitGemm]);
    }

    #[test]
    fn a_matrix_products_tile_stays_unless_a_lower_rung_is_faster_by_more_than_the_margin() {
        let tuner = Tuner::new("gpu A".into(), None);
        let timer = |naive_us: u64, tiled_us: u64, tile_us: u64| {
            move |rung: MatmulRung| {
                Ok(Duration::from_micros(match rung {
                    MatmulRung::Naive => naive_us,
                    MatmulRung::SharedTile16 => tiled_us,
                    MatmulRung::RegisterTile64 | MatmulRung::RegisterTile128 => tile_us,
                }))
            }
        };
        let (square, wide) = (MatmulRung::RegisterTile64, MatmulRung::RegisterTile128);
        assert_eq!(tuner.matmul_rung(256, 256, 1, wide, timer(9000, 4000, 1000)).unwrap(), wide);
        assert_eq!(tuner.matmul_rung(64, 16, 1, square, timer(500, 800, 1000)).unwrap(), MatmulRung::Naive);
        assert_eq!(tuner.matmul_rung(250, 250, 1, wide, |_| panic!("measured twice")).unwrap(), wide);
        assert_eq!(
            tuner.choices(),
            [
                ("matmul-rung/m<=64/t2^0".to_string(), "naive".to_string()),
                ("matmul-rung/m>64/t2^4".to_string(), "tile128".to_string())
            ]
        );
        assert_eq!(describe_choice("matmul-rung/m<=64/t2^0", "naive"), "matmul rung m<=64/t2^0: naive");
    }

    #[test]
    fn convolution_rung_classes_name_the_kernel_and_a_backward_datas_stride() {
        assert_eq!(conv_rung_class(ConvKernel::Forward, [2, 2], false, 64, 4096, 576), "conv-rung/forward/t2^6/k2^9");
        assert_eq!(
            conv_rung_class(ConvKernel::BackwardData, [2, 2], false, 64, 4096, 576),
            "conv-rung/backward-data-s2x2/t2^6/k2^9"
        );
        assert_eq!(
            conv_rung_class(ConvKernel::BackwardWeight, [2, 2], false, 64, 576, 4096),
            "conv-rung/backward-weight/t2^3/k2^12"
        );
        assert_eq!(
            describe_choice("conv-rung/forward/t2^6/k2^9", "tiled16"),
            "convolution rung forward/t2^6/k2^9: tiled16"
        );
    }

    #[test]
    fn split_k_classes_group_products_by_their_tiles_and_their_k() {
        assert_eq!(k_split_class(64, 64, 4096), "k-split/t2^0/k2^12");
        assert_eq!(k_split_class(130, 512, 1000), "k-split/t2^4/k2^9");
        assert_eq!(describe_choice("k-split/t2^4/k2^9", K_WHOLE), "split K t2^4/k2^9: k-whole");
        assert_eq!(describe_choice("m>64/t2^4", "wide128"), "gemm tile m>64/t2^4: wide128");
    }

    #[test]
    fn shape_classes_group_outputs_by_their_number_of_square_tiles() {
        assert_eq!(shape_class(64, 64, 1), "m<=64/t2^0");
        assert_eq!(shape_class(256, 256, 1), "m>64/t2^4");
        assert_eq!(shape_class(250, 250, 1), "m>64/t2^4");
        assert_eq!(shape_class(32, 4096, 3), "m<=64/t2^7");
        assert_eq!(shape_class(1 << 14, 1 << 14, 1), "m>64/t2^12");
    }
}
