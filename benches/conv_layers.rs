//! Every convolution layer shape of the B1, B2, B3 and B5 workloads, timed one kernel at a time,
//! in a table: median ms and GFLOP/s of the forward, backward-data and backward-weight kernels
//! (f32, CPU, rayon's thread count, its workers kept awake between calls as in a step); "×3"
//! after a name means the step runs that shape three times. The step bench (`train_step`) says which op family dominates; this says which layer
//! shape inside it is slow. `benches/pytorch_conv_layers.py` prints the same rows for PyTorch
//! (both read their layers from `benches/conv_layers.txt`).
//!
//!     cargo bench --bench conv_layers                  # every layer, 15 repetitions
//!     cargo bench --bench conv_layers -- --reps 40 --layers B1 --kernels fwd,data
//!     cargo bench --bench conv_layers -- --tune-kernels --layers B5,B1   # train's default kernels
//!
//! `--tune-kernels` turns the CPU tuner on (`tensor::cpu::tuning`, as `train` does): each
//! kernel's cut or way is timed in its warm-up call, before the timed repetitions.
//! `--cpu-gemm NAME` pins the f32 GEMM kernel (`train --cpu-gemm`), and with it the instruction
//! set of the kernels that follow the GEMM's: `avx2-6x16-kc256` on an AVX-512 CPU stands in
//! for one without AVX-512.
//!
//! Flops are counted as in `benches/conv.rs`: 2·(multiply-adds), padding taps included.

mod common;

use common::{flag, layer_chosen, print_layer_row, print_layer_table_header, step_median_ms};
use tensor::ops::conv2d::{conv2d, conv2d_backward_data, conv2d_backward_weight, Conv2dParams};
use tensor::ops::conv_transpose2d::{
    conv_transpose2d, conv_transpose2d_backward_data, conv_transpose2d_backward_weight, ConvTranspose2dParams,
};
use tensor::{DType, Rng, Tensor};

// The allocator `train` and the step bench run on: without it, a kernel whose scratch or
// output buffer is larger than glibc's mmap threshold is given fresh pages on every call, and
// pays page faults that the training step never pays (see `tensor::cpu::caching_allocator`).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

/// One layer shape, a row of `benches/conv_layers.txt`.
struct Layer {
    workload: String,
    /// How many layers of the step have this shape.
    count: usize,
    transposed: bool,
    batch: usize,
    c_in: usize,
    c_out: usize,
    /// Input height and width.
    hw: usize,
    k: usize,
    stride: usize,
    pad: usize,
    out_pad: usize,
}

/// The convolutions of `conv` (B1), `basic` (B5), `resnet18` (B2) and `resnet-bn` (B3), each
/// distinct shape once with its count: the table PyTorch's side reads too.
fn layers() -> Vec<Layer> {
    let table = include_str!("conv_layers.txt");
    let rows = table.lines().filter(|line| !line.trim().is_empty() && !line.starts_with('#'));
    rows.map(|row| {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let n = |i: usize| cols[i].parse::<usize>().unwrap_or_else(|_| panic!("conv_layers.txt: {row:?}"));
        assert!(cols.len() == 11 && ["conv", "convT"].contains(&cols[2]), "conv_layers.txt: bad row {row:?}");
        Layer {
            workload: cols[0].to_string(),
            count: n(1),
            transposed: cols[2] == "convT",
            batch: n(3),
            c_in: n(4),
            c_out: n(5),
            hw: n(6),
            k: n(7),
            stride: n(8),
            pad: n(9),
            out_pad: n(10),
        }
    })
    .collect()
}

/// " ×3" for a shape the step runs three times; nothing for one it runs once.
fn times_suffix(count: usize) -> String {
    if count > 1 {
        format!(" ×{count}")
    } else {
        String::new()
    }
}

/// The median, or NaN for a kernel left out with `--kernels`.
fn timed(enabled: bool, reps: usize, f: impl FnMut() + Send) -> f64 {
    if enabled {
        step_median_ms(reps, f)
    } else {
        f64::NAN
    }
}

fn main() {
    let reps: usize = flag("--reps").and_then(|s| s.parse().ok()).unwrap_or(15);
    if let Some(name) = flag("--cpu-gemm") {
        if let Err(e) = tensor::cpu::gemm::choose_f32_kernel(&name, tensor::cpu::gemm::KernelChoice::Pinned) {
            eprintln!("conv_layers: --cpu-gemm {name}: {e}");
            std::process::exit(2);
        }
    }
    if std::env::args().any(|a| a == "--tune-kernels") {
        tensor::cpu::tuning::enable_tuning(None);
    }
    let only = flag("--layers");
    let kernels = flag("--kernels").unwrap_or_else(|| "fwd,data,weight".into());
    let run = |kernel: &str| kernels.split(',').any(|k| k == kernel);
    let mut rng = Rng::new(0);
    let random = |shape: &[usize], rng: &mut Rng| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, rng);

    print_layer_table_header(reps);
    for (i, l) in layers().iter().enumerate().filter(|(i, l)| layer_chosen(only.as_deref(), *i, &l.workload)) {
        let x = random(&[l.batch, l.c_in, l.hw, l.hw], &mut rng);
        let (name, times, flops) = if l.transposed {
            let p = ConvTranspose2dParams::new(l.stride, l.pad).with_output_padding(l.out_pad);
            let w = random(&[l.c_in, l.c_out, l.k, l.k], &mut rng);
            let b = random(&[l.c_out], &mut rng);
            let y = conv_transpose2d(&x, &w, Some(&b), &p).expect("conv_transpose2d");
            let gy = random(y.shape(), &mut rng);
            let flops = 2.0 * (l.batch * l.c_in * l.hw * l.hw * l.c_out * l.k * l.k) as f64;
            let times = [
                timed(run("fwd"), reps, || drop(conv_transpose2d(&x, &w, Some(&b), &p).expect("fwd"))),
                timed(run("data"), reps, || drop(conv_transpose2d_backward_data(&gy, &w, &p).expect("bwd data"))),
                timed(run("weight"), reps, || {
                    drop(conv_transpose2d_backward_weight(&gy, &x, w.shape(), &p).expect("bwd w"))
                }),
            ];
            let name = format!(
                "ConvT({},{},{},{}) {}→{} {}→{}{}",
                l.k,
                l.stride,
                l.pad,
                l.out_pad,
                l.c_in,
                l.c_out,
                l.hw,
                y.shape()[2],
                times_suffix(l.count)
            );
            (name, times, flops)
        } else {
            let p = Conv2dParams::new(l.stride, l.pad);
            let w = random(&[l.c_out, l.c_in, l.k, l.k], &mut rng);
            let b = random(&[l.c_out], &mut rng);
            let y = conv2d(&x, &w, Some(&b), &p).expect("conv2d");
            let gy = random(y.shape(), &mut rng);
            let (oh, ow) = (y.shape()[2], y.shape()[3]);
            let flops = 2.0 * (l.batch * l.c_out * oh * ow * l.c_in * l.k * l.k) as f64;
            let times = [
                timed(run("fwd"), reps, || drop(conv2d(&x, &w, Some(&b), &p).expect("fwd"))),
                timed(run("data"), reps, || drop(conv2d_backward_data(&gy, &w, x.shape(), &p).expect("bwd data"))),
                timed(run("weight"), reps, || drop(conv2d_backward_weight(&gy, &x, w.shape(), &p).expect("bwd w"))),
            ];
            let name = format!(
                "Conv({},{},{}) {}→{} {}→{}{}",
                l.k,
                l.stride,
                l.pad,
                l.c_in,
                l.c_out,
                l.hw,
                oh,
                times_suffix(l.count)
            );
            (name, times, flops)
        };
        print_layer_row(&l.workload, &format!("{i}: {name}"), flops, times, 2);
    }
}
