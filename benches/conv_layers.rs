//! Every convolution layer shape of the B1, B2, B3 and B5 workloads, timed one kernel at a time,
//! in a table: median ms and GFLOP/s of the forward, backward-data and backward-weight kernels
//! (f32, CPU, rayon's thread count); "×3" after a name means the step runs that shape three
//! times. The step bench (`train_step`) says which op family dominates; this says which layer
//! shape inside it is slow. `benches/pytorch_conv_layers.py` prints the same rows for PyTorch.
//!
//!     cargo bench --bench conv_layers                  # every layer, 15 repetitions
//!     cargo bench --bench conv_layers -- --reps 40 --layers B1 --kernels fwd,data
//!
//! Flops are counted as in `benches/conv.rs`: 2·(multiply-adds), padding taps included.

mod common;

use common::{flag, layer_chosen, median_ms, print_layer_row, print_layer_table_header};
use tensor::ops::conv2d::{conv2d, conv2d_backward_data, conv2d_backward_weight, Conv2dParams};
use tensor::ops::conv_transpose2d::{
    conv_transpose2d, conv_transpose2d_backward_data, conv_transpose2d_backward_weight, ConvTranspose2dParams,
};
use tensor::{DType, Rng, Tensor};

/// One layer shape: conv (true) or transposed conv, batch, c_in, c_out, input size, kernel,
/// stride, padding, output padding, and how many layers of the step have it.
struct Layer {
    workload: &'static str,
    count: usize,
    transposed: bool,
    batch: usize,
    c_in: usize,
    c_out: usize,
    hw: usize,
    k: usize,
    stride: usize,
    pad: usize,
    out_pad: usize,
}

const fn layer(
    workload: &'static str,
    count: usize,
    transposed: bool,
    batch: usize,
    io: (usize, usize),
    hw: usize,
    ksp: (usize, usize, usize, usize),
) -> Layer {
    Layer {
        workload,
        count,
        transposed,
        batch,
        c_in: io.0,
        c_out: io.1,
        hw,
        k: ksp.0,
        stride: ksp.1,
        pad: ksp.2,
        out_pad: ksp.3,
    }
}

/// The convolutions of `conv` (B1: 3×64×64, batch 64), `basic` (B5: 3×32×32, batch 64),
/// `resnet18` (B2: 3×32×32, batch 64) and `resnet-bn` (B3: 3×64×64, batch 32), each distinct
/// shape once with its count (docs/architectures.md).
const LAYERS: [Layer; 44] = [
    layer("B1", 1, false, 64, (3, 32), 64, (3, 2, 1, 0)),
    layer("B1", 1, false, 64, (32, 64), 32, (3, 2, 1, 0)),
    layer("B1", 1, false, 64, (64, 128), 16, (3, 2, 1, 0)),
    layer("B1", 1, true, 64, (128, 64), 8, (4, 2, 1, 0)),
    layer("B1", 1, true, 64, (64, 32), 16, (4, 2, 1, 0)),
    layer("B1", 1, true, 64, (32, 3), 32, (4, 2, 1, 0)),
    layer("B5", 1, false, 64, (3, 32), 32, (3, 2, 1, 0)),
    layer("B5", 1, false, 64, (32, 64), 16, (3, 2, 1, 0)),
    layer("B5", 1, true, 64, (64, 64), 8, (3, 2, 1, 1)),
    layer("B5", 1, true, 64, (64, 32), 16, (3, 2, 1, 1)),
    layer("B5", 1, true, 64, (32, 3), 32, (3, 1, 1, 0)),
    layer("B2", 1, false, 64, (3, 64), 32, (7, 2, 3, 0)),
    layer("B2", 4, false, 64, (64, 64), 8, (3, 1, 1, 0)),
    layer("B2", 1, false, 64, (64, 128), 8, (3, 2, 1, 0)),
    layer("B2", 1, false, 64, (64, 128), 8, (1, 2, 0, 0)),
    layer("B2", 3, false, 64, (128, 128), 4, (3, 1, 1, 0)),
    layer("B2", 1, false, 64, (128, 256), 4, (3, 2, 1, 0)),
    layer("B2", 1, false, 64, (128, 256), 4, (1, 2, 0, 0)),
    layer("B2", 3, false, 64, (256, 256), 2, (3, 1, 1, 0)),
    layer("B2", 1, false, 64, (256, 512), 2, (3, 2, 1, 0)),
    layer("B2", 1, false, 64, (256, 512), 2, (1, 2, 0, 0)),
    layer("B2", 3, false, 64, (512, 512), 1, (3, 1, 1, 0)),
    layer("B2", 3, true, 64, (512, 512), 1, (3, 1, 1, 0)),
    layer("B2", 2, true, 64, (512, 256), 2, (3, 1, 1, 0)),
    layer("B2", 3, true, 64, (256, 256), 2, (3, 1, 1, 0)),
    layer("B2", 2, true, 64, (256, 128), 4, (3, 1, 1, 0)),
    layer("B2", 3, true, 64, (128, 128), 4, (3, 1, 1, 0)),
    layer("B2", 2, true, 64, (128, 64), 8, (3, 1, 1, 0)),
    layer("B2", 4, true, 64, (64, 64), 8, (3, 1, 1, 0)),
    layer("B2", 1, true, 64, (64, 3), 32, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (3, 64), 64, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (64, 128), 64, (3, 2, 1, 0)),
    layer("B3", 2, false, 32, (128, 128), 32, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (128, 256), 32, (3, 2, 1, 0)),
    layer("B3", 2, false, 32, (256, 256), 16, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (256, 512), 16, (3, 2, 1, 0)),
    layer("B3", 1, false, 32, (512, 512), 8, (3, 2, 1, 0)),
    layer("B3", 3, false, 32, (512, 512), 8, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (512, 512), 4, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (512, 256), 16, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (256, 128), 32, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (128, 64), 64, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (64, 64), 64, (3, 1, 1, 0)),
    layer("B3", 1, false, 32, (64, 3), 64, (3, 1, 1, 0)),
];

/// " ×3" for a shape the step runs three times; nothing for one it runs once.
fn times_suffix(count: usize) -> String {
    if count > 1 {
        format!(" ×{count}")
    } else {
        String::new()
    }
}

/// The median, or NaN for a kernel left out with `--kernels`.
fn timed(enabled: bool, reps: usize, f: impl FnMut()) -> f64 {
    if enabled {
        median_ms(reps, f)
    } else {
        f64::NAN
    }
}

fn main() {
    let reps: usize = flag("--reps").and_then(|s| s.parse().ok()).unwrap_or(15);
    let only = flag("--layers");
    let kernels = flag("--kernels").unwrap_or_else(|| "fwd,data,weight".into());
    let run = |kernel: &str| kernels.split(',').any(|k| k == kernel);
    let mut rng = Rng::new(0);
    let random = |shape: &[usize], rng: &mut Rng| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, rng);

    print_layer_table_header(reps);
    for (i, l) in LAYERS.iter().enumerate().filter(|(i, l)| layer_chosen(only.as_deref(), *i, l.workload)) {
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
        print_layer_row(l.workload, &format!("{i}: {name}"), flops, times, 2);
    }
}
