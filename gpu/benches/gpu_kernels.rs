//! GPU kernel throughput: matmul at 1024³, 4096×512×4608, 4096³ and 64×4096×32, conv2d
//! (forward and both backwards) at a ResNet-18 layer size (batch 64, 128→128 channels, 8×8,
//! 3×3, padding 1), and transposed convolutions of the B1 and B5 decoders; matmul and conv2d
//! also on each GEMM tile forced (`Context::with_gemm_tile`), conv2d's three kernels and
//! conv_transpose2d's forward also by their definitions (rung 1 of `ConvRung`: the cases named
//! `*_direct`) and on rung 2 (16×16 workgroup tiles, one output per invocation: `*_tiled16`);
//! and `matmul_ladder`, every rung of
//! the matmul ladder (`MatmulRung`, one launch each, K never split) at 256³, 1024³ and
//! 256×4096·4096×256 (256³'s output over a 16 times longer K).
//!
//! Throughput is reported in criterion's "elem/s" with one element = one FLOP (2 per
//! multiply-add), so "Gelem/s" reads as GFLOP/s. Each iteration records the launch
//! `VAE_BENCH_REPS` times (default 20 on a hardware adapter, 1 on a software one) and then
//! waits for the GPU (`synchronize`): one submit's latency (about 85 µs on an H100 host) is
//! spread over the launches, so the figure is the kernel's own speed, timed as
//! `benches/pytorch_gpu_kernels.py` times PyTorch's. Sample counts are small (10); on a software
//! adapter each case is timed once instead (see `Runner`).
//!
//! Run: `cargo bench -p gpu --bench gpu_kernels` (prints the adapter first; skips with a
//! message when there is none); `cargo bench -p gpu --bench gpu_kernels -- conv_transpose`
//! runs only the cases whose name contains `conv_transpose`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gpu::descriptors::Conv2dGeometry;
use gpu::kernels::conv2d::{self, ConvKernel, ConvRung};
use gpu::kernels::matmul::{matmul, matmul_on_rung, MatView, MatmulArgs, MatmulRung};
use gpu::kernels::Output;
use gpu::kernels::{winograd, GemmTile};
use gpu::{AdapterPreference, Context, GpuBuffer};

fn context() -> Option<Context> {
    match Context::new(AdapterPreference::AnyIncludingSoftware) {
        Ok(ctx) => {
            eprintln!("gpu_kernels on {}", ctx.info());
            Some(ctx)
        }
        Err(e) => {
            eprintln!("gpu_kernels: skipped, {e}");
            None
        }
    }
}

/// Deterministic O(1) data (values do not change the speed of f32 arithmetic).
fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
        .collect()
}

/// How each case is measured: criterion (10 samples) on hardware adapters; on a software
/// adapter (lavapipe: ~0.1 GFLOP/s on 2 cores, so ten 4096×512×4608 samples would take
/// about 25 minutes) one timed run per case instead, unless `VAE_BENCH_FULL=1`.
struct Runner<'a> {
    ctx: &'a Context,
    full: bool,
    /// Launches recorded per synchronize.
    reps: usize,
    /// The command line's filter (its first argument that is not an option): on a software
    /// adapter only the cases whose `group/name` contains it run (criterion filters its own).
    filter: Option<String>,
}

/// The first command-line argument that is not an option (`cargo bench -- FILTER`).
fn filter_argument() -> Option<String> {
    std::env::args().skip(1).find(|a| !a.starts_with('-'))
}

impl Runner<'_> {
    fn case(&self, c: &mut Criterion, group: &str, name: &str, flops: u64, launch: &dyn Fn()) {
        let sync = || self.ctx.synchronize().unwrap();
        if self.full {
            let mut g = c.benchmark_group(group);
            g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
            g.throughput(Throughput::Elements(flops * self.reps as u64));
            g.bench_function(name, |b| {
                b.iter(|| {
                    for _ in 0..self.reps {
                        launch();
                    }
                    sync();
                })
            });
            g.finish();
        } else {
            let id = format!("{group}/{name}");
            if self.filter.as_ref().is_some_and(|f| !id.contains(f.as_str())) {
                return;
            }
            let t = Instant::now();
            launch();
            sync();
            let s = t.elapsed().as_secs_f64();
            println!(
                "{group}/{name}: {s:.3} s, {:.3} GFLOP/s (one timed run on a software adapter)",
                flops as f64 / s / 1e9
            );
        }
    }
}

/// The matmul cases; `suffix` names a forced tile in the group's name.
fn bench_matmul(c: &mut Criterion, r: &Runner, suffix: &str) {
    let ctx = r.ctx;
    // The last: a Linear layer's data gradient in B1 (64 images, 4,096 features, 32 latents),
    // one output tile over a long K (split into slices, see matmul.rs).
    for (m, n, k) in [(1024usize, 1024usize, 1024usize), (4096, 4608, 512), (4096, 4096, 4096), (64, 32, 4096)] {
        let [a, b, out] = product_buffers(ctx, [m, n, k]);
        let args = MatmulArgs::new(MatView::row_major(&a, m, k), MatView::row_major(&b, k, n), &out, [m, n, k]);
        let flops = 2 * (m * n * k) as u64;
        r.case(c, &format!("matmul{suffix}"), &format!("{m}x{k}·{k}x{n}"), flops, &|| matmul(ctx, &args).unwrap());
    }
}

/// A [m, k] and a [k, n] operand of fixed data, and room for their product.
fn product_buffers(ctx: &Context, [m, n, k]: [usize; 3]) -> [GpuBuffer; 3] {
    [ctx.upload(&data(m * k, 1)).unwrap(), ctx.upload(&data(k * n, 2)).unwrap(), ctx.alloc(m * n).unwrap()]
}

/// Every rung of the matmul ladder at a small and a square product: what each idea buys.
fn bench_matmul_ladder(c: &mut Criterion, r: &Runner) {
    let ctx = r.ctx;
    // Each rung's pipeline is built on its first launch: build them all before anything is timed.
    let (tiny, tiny_out) = (ctx.upload(&data(4, 0)).unwrap(), ctx.alloc(4).unwrap());
    let view = MatView::row_major(&tiny, 2, 2);
    for rung in MatmulRung::ALL {
        let args = MatmulArgs::new(view, view, &tiny_out, [2, 2, 2]);
        matmul_on_rung(ctx, &args, rung).unwrap();
    }
    ctx.synchronize().unwrap();
    // 256×4096·4096×256 has 256³'s output (16 square tiles) over 16 times its K: beside it,
    // it tells whether a rung's lead at 256³ comes from the small output or from the short K
    // (the tuner times a class on a proxy whose K is at most 256).
    for (m, n, k) in [(256usize, 256usize, 256usize), (256, 256, 4096), (1024, 1024, 1024)] {
        let [a, b, out] = product_buffers(ctx, [m, n, k]);
        let args = MatmulArgs::new(MatView::row_major(&a, m, k), MatView::row_major(&b, k, n), &out, [m, n, k]);
        let flops = 2 * (m * n * k) as u64;
        for rung in MatmulRung::ALL {
            let name = format!("{}/{m}x{k}·{k}x{n}", rung.name());
            r.case(c, "matmul_ladder", &name, flops, &|| matmul_on_rung(ctx, &args, rung).unwrap());
        }
    }
}

/// The conv2d layers: name, input [N, C_in, H, W], weight [C_out, C_in, kH, kW] (3×3,
/// stride 1, padding 1). ResNet-18's 128-channel layer at 8×8 (batch 64: 128 output tiles) and
/// resnet-bn's deepest at 4×4 (B3, batch 32: 64 output tiles over a K of 4,608, where the
/// forward and backward-data split their K).
const CONV_LAYERS: [(&str, [usize; 4], [usize; 4]); 2] = [
    ("conv2d_resnet18_64x128x8x8_3x3", [64, 128, 8, 8], [128, 128, 3, 3]),
    ("conv2d_resnet_bn_32x512x4x4_3x3", [32, 512, 4, 4], [512, 512, 3, 3]),
];

/// The conv2d cases; `suffix` names a forced tile in the group's name.
fn bench_conv2d(c: &mut Criterion, r: &Runner, suffix: &str) {
    let ctx = r.ctx;
    for (name, x_shape, w_shape) in CONV_LAYERS {
        let g = Conv2dGeometry::conv2d(x_shape, w_shape, [1, 1], [1, 1], [1, 1]).unwrap();
        let x = ctx.upload(&data(g.x_len(), 3)).unwrap();
        let w = ctx.upload(&data(g.weight_len(), 4)).unwrap();
        let bias = ctx.upload(&data(g.c_out, 5)).unwrap();
        let y = ctx.alloc(g.y_len()).unwrap();
        let dy = ctx.upload(&data(g.y_len(), 6)).unwrap();
        let dx = ctx.alloc(g.x_len()).unwrap();
        let dw = ctx.alloc(g.weight_len()).unwrap();
        let group = &format!("{name}{suffix}");
        let flops = 2 * g.macs();
        // Every rung of the ladder at the size rule's tile; on a forced tile only the GEMM rung,
        // the one a tile changes.
        let rungs: &[ConvRung] = if suffix.is_empty() { &ConvRung::ALL } else { &[ConvRung::ImplicitGemm] };
        for &rung in rungs {
            r.case(c, group, &case_name("forward", rung), flops, &|| {
                conv2d::launch(ctx, ConvKernel::Forward, rung, &g, [&x, &w], Some(&bias), &y, Output::Overwrite)
                    .unwrap()
            });
            r.case(c, group, &case_name("backward_data", rung), flops, &|| {
                conv2d::launch(ctx, ConvKernel::BackwardData, rung, &g, [&dy, &w], None, &dx, Output::Overwrite)
                    .unwrap()
            });
            r.case(c, group, &case_name("backward_weight", rung), flops, &|| {
                conv2d::launch(ctx, ConvKernel::BackwardWeight, rung, &g, [&dy, &x], None, &dw, Output::Overwrite)
                    .unwrap()
            });
        }
    }
}

/// A convolution case's name: the kernel's, with `_direct` for rung 1, `_tiled16` for rung 2
/// and `_winograd` for Winograd.
fn case_name(kernel: &str, rung: ConvRung) -> String {
    match rung {
        ConvRung::Direct => format!("{kernel}_direct"),
        ConvRung::Tiled16 => format!("{kernel}_tiled16"),
        ConvRung::ImplicitGemm => kernel.to_string(),
        ConvRung::Winograd => format!("{kernel}_winograd"),
    }
}

/// A transposed-convolution layer: name, input [N, C_in, H, W], weight [C_in, C_out, kH, kW],
/// stride, padding.
type TransposedLayer = (&'static str, [usize; 4], [usize; 4], [usize; 2], [usize; 2]);

/// conv_transpose2d forward at the decoder layers of workloads B5 (`basic`, 3×32×32, batch 64:
/// two 3×3 stride-2 upsamplings and the narrow 32→3 output layer, where a GEMM tile sized for
/// wide layers would be mostly idle rows) and B1 (`conv`, 3×64×64, batch 64: three 4×4
/// stride-2 upsamplings, the last to 3 channels).
fn bench_conv_transpose2d(c: &mut Criterion, r: &Runner) {
    let ctx = r.ctx;
    let layers: [TransposedLayer; 6] = [
        ("b5_64to64_8x8_s2", [64, 64, 8, 8], [64, 64, 3, 3], [2, 2], [1, 1]),
        ("b5_64to32_16x16_s2", [64, 64, 16, 16], [64, 32, 3, 3], [2, 2], [1, 1]),
        ("b5_32to3_32x32", [64, 32, 32, 32], [32, 3, 3, 3], [1, 1], [0, 0]),
        ("b1_128to64_8x8_k4s2", [64, 128, 8, 8], [128, 64, 4, 4], [2, 2], [0, 0]),
        ("b1_64to32_16x16_k4s2", [64, 64, 16, 16], [64, 32, 4, 4], [2, 2], [0, 0]),
        ("b1_32to3_32x32_k4s2", [64, 32, 32, 32], [32, 3, 4, 4], [2, 2], [0, 0]),
    ];
    for (name, x_shape, w_shape, stride, output_padding) in layers {
        let g = Conv2dGeometry::conv_transpose2d(x_shape, w_shape, stride, [1, 1], output_padding, [1, 1]).unwrap();
        let x = ctx.upload(&data(g.x_len(), 3)).unwrap();
        let w = ctx.upload(&data(g.weight_len(), 4)).unwrap();
        let y = ctx.alloc(g.y_len()).unwrap();
        // Every input pixel meets every tap once: the transposed conv2d's multiply-adds.
        let flops = 2 * g.transposed().macs();
        // conv_transpose2d's forward is conv2d's backward-data on the transposed geometry.
        let t = g.transposed();
        // Winograd only where it computes the layer (elsewhere it is the implicit GEMM again).
        let computed = |rung| rung != ConvRung::Winograd || winograd::applies(ctx, ConvKernel::BackwardData, &t);
        for rung in ConvRung::ALL.into_iter().filter(|&rung| computed(rung)) {
            r.case(c, &case_name("conv_transpose2d_forward", rung), name, flops, &|| {
                conv2d::launch(ctx, ConvKernel::BackwardData, rung, &t, [&x, &w], None, &y, Output::Overwrite).unwrap()
            });
        }
    }
}

/// Compiles every pipeline the cases use on tiny inputs, so no timed run pays for it.
fn warm_up(ctx: &Context) {
    let g = Conv2dGeometry::conv2d([1, 1, 3, 3], [1, 1, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
    let (x, w, y) = (ctx.zeros(9).unwrap(), ctx.zeros(9).unwrap(), ctx.zeros(9).unwrap());
    for rung in ConvRung::ALL {
        conv2d::launch(ctx, ConvKernel::Forward, rung, &g, [&x, &w], None, &y, Output::Overwrite).unwrap();
        conv2d::launch(ctx, ConvKernel::BackwardData, rung, &g, [&y, &w], None, &x, Output::Overwrite).unwrap();
        conv2d::launch(ctx, ConvKernel::BackwardWeight, rung, &g, [&y, &x], None, &w, Output::Overwrite).unwrap();
    }
    let args = MatmulArgs::new(MatView::row_major(&x, 3, 3), MatView::row_major(&w, 3, 3), &y, [3, 3, 3]);
    matmul(ctx, &args).unwrap();
    ctx.synchronize().unwrap();
}

fn benches(c: &mut Criterion) {
    let Some(ctx) = context() else { return };
    let full = !ctx.is_software() || std::env::var("VAE_BENCH_FULL").is_ok_and(|v| v == "1");
    let reps = match std::env::var("VAE_BENCH_REPS") {
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                eprintln!("gpu_kernels: VAE_BENCH_REPS={v:?} is not a count of at least 1");
                std::process::exit(2);
            }
        },
        Err(_) if full && !ctx.is_software() => 20,
        Err(_) => 1,
    };
    eprintln!("gpu_kernels: {reps} launch(es) per synchronize");
    warm_up(&ctx);
    let filter = filter_argument();
    let r = Runner { ctx: &ctx, full, reps, filter: filter.clone() };
    bench_matmul(c, &r, "");
    bench_matmul_ladder(c, &r);
    bench_conv2d(c, &r, "");
    bench_conv_transpose2d(c, &r);
    // Each GEMM tile on its own (a context forcing it), so the choice the launchers make by
    // size can be checked on this device.
    for tile in [GemmTile::Square64, GemmTile::Wide128] {
        let forced = match Context::with_gemm_tile(AdapterPreference::AnyIncludingSoftware, tile) {
            Ok(forced) => forced,
            Err(e) => {
                eprintln!("gpu_kernels: no second context for the {tile:?} cases: {e}");
                return;
            }
        };
        warm_up(&forced);
        let r = Runner { ctx: &forced, full, reps, filter: filter.clone() };
        bench_matmul(c, &r, &format!("_{tile:?}"));
        bench_conv2d(c, &r, &format!("_{tile:?}"));
    }
}

criterion_group!(gpu_kernels, benches);
criterion_main!(gpu_kernels);
