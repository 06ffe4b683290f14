//! Benchmarks of the batch-norm, interpolation and pooling CPU kernels on a ResNet-sized
//! activation [64, 128, 16, 16] f32: batch-norm training forward, backward and both, nearest and
//! bilinear ×2 upsampling forward and backward, and ResNet-18's 3×3 stride-2 max pool forward
//! and backward; and the element-wise sigmoid, tanh (and libm's tanhf) and ReLU on the same activation, each op beside the
//! bare loop it should cost (`cpu::elementwise::map`: a formula not inlined into the op's loop
//! shows as the gap). Throughput counts the bytes of every tensor each op reads
//! and writes once (inputs + outputs), so the numbers compare against memory bandwidth.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor::ops::batch_norm::{batch_norm_train, batch_norm_train_backward};
use tensor::ops::interpolate::{
    upsample_bilinear2d, upsample_bilinear2d_backward, upsample_nearest2d, upsample_nearest2d_backward,
};
use tensor::ops::pool::{max_pool2d, max_pool2d_backward};
use tensor::{DType, Rng, Tensor};

// The allocator `train` and the step bench run on: without it, a kernel whose scratch or
// output buffer is larger than glibc's mmap threshold is given fresh pages on every call, and
// pays page faults that the training step never pays (see `tensor::cpu::caching_allocator`).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

const SHAPE: [usize; 4] = [64, 128, 16, 16];

fn bytes(numels: &[usize]) -> Throughput {
    Throughput::Bytes(numels.iter().map(|n| (n * DType::F32.size_in_bytes()) as u64).sum())
}

fn batch_norm(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let x = Tensor::rand_normal(&SHAPE, 0.5, 2.0, DType::F32, &mut rng);
    let gy = Tensor::rand_normal(&SHAPE, 0.0, 1.0, DType::F32, &mut rng);
    let gamma = Tensor::rand_normal(&[SHAPE[1]], 1.0, 0.2, DType::F32, &mut rng);
    let beta = Tensor::rand_normal(&[SHAPE[1]], 0.0, 0.2, DType::F32, &mut rng);
    let n = x.numel();
    let eps = 1e-5;
    let saved = batch_norm_train(&x, Some(&gamma), Some(&beta), eps).unwrap();

    let mut g = c.benchmark_group("batch_norm_train_64x128x16x16_f32");
    g.sample_size(20);
    // forward: reads x, writes y
    g.throughput(bytes(&[n, n]));
    g.bench_function("forward", |b| {
        b.iter(|| batch_norm_train(black_box(&x), Some(&gamma), Some(&beta), eps).unwrap())
    });
    // backward: reads grad_y and x, writes dx
    g.throughput(bytes(&[n, n, n]));
    g.bench_function("backward", |b| {
        b.iter(|| batch_norm_train_backward(black_box(&gy), &x, &saved.mean, &saved.inv_std, Some(&gamma)).unwrap())
    });
    // forward + backward: x, y, then grad_y, x, dx
    g.throughput(bytes(&[n, n, n, n, n]));
    g.bench_function("forward+backward", |b| {
        b.iter(|| {
            let out = batch_norm_train(black_box(&x), Some(&gamma), Some(&beta), eps).unwrap();
            batch_norm_train_backward(black_box(&gy), &x, &out.mean, &out.inv_std, Some(&gamma)).unwrap()
        })
    });
    g.finish();
}

fn bilinear(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    let x = Tensor::rand_normal(&SHAPE, 0.0, 1.0, DType::F32, &mut rng);
    let out_shape = [SHAPE[0], SHAPE[1], SHAPE[2] * 2, SHAPE[3] * 2];
    let gy = Tensor::rand_normal(&out_shape, 0.0, 1.0, DType::F32, &mut rng);
    let (n_in, n_out) = (x.numel(), gy.numel());

    let mut g = c.benchmark_group("upsample_bilinear2d_x2_64x128x16x16_f32");
    g.sample_size(20);
    // forward: reads x [.., 16, 16], writes y [.., 32, 32]; backward the reverse
    g.throughput(bytes(&[n_in, n_out]));
    g.bench_function("forward", |b| b.iter(|| upsample_bilinear2d(black_box(&x), 2).unwrap()));
    g.bench_function("backward", |b| b.iter(|| upsample_bilinear2d_backward(black_box(&gy), &SHAPE, 2).unwrap()));
    g.finish();
}

fn nearest(c: &mut Criterion) {
    let mut rng = Rng::new(2);
    let x = Tensor::rand_normal(&SHAPE, 0.0, 1.0, DType::F32, &mut rng);
    let out_shape = [SHAPE[0], SHAPE[1], SHAPE[2] * 2, SHAPE[3] * 2];
    let gy = Tensor::rand_normal(&out_shape, 0.0, 1.0, DType::F32, &mut rng);
    let (n_in, n_out) = (x.numel(), gy.numel());

    let mut g = c.benchmark_group("upsample_nearest2d_x2_64x128x16x16_f32");
    g.sample_size(20);
    // forward: reads x [.., 16, 16], writes y [.., 32, 32]; backward the reverse
    g.throughput(bytes(&[n_in, n_out]));
    g.bench_function("forward", |b| b.iter(|| upsample_nearest2d(black_box(&x), 2).unwrap()));
    g.bench_function("backward", |b| b.iter(|| upsample_nearest2d_backward(black_box(&gy), &SHAPE, 2).unwrap()));
    g.finish();
}

fn max_pool(c: &mut Criterion) {
    let mut rng = Rng::new(3);
    let x = Tensor::rand_normal(&SHAPE, 0.0, 1.0, DType::F32, &mut rng);
    let (y, indices) = max_pool2d(&x, [3, 3], [2, 2], [1, 1]).unwrap();
    let gy = Tensor::rand_normal(y.shape(), 0.0, 1.0, DType::F32, &mut rng);
    let (n_in, n_out) = (x.numel(), y.numel());

    let mut g = c.benchmark_group("max_pool2d_3x3_s2_64x128x16x16_f32");
    g.sample_size(20);
    // forward: reads x, writes y and the indices; backward: reads gy and the indices, writes dx
    g.throughput(bytes(&[n_in, 2 * n_out]));
    g.bench_function("forward", |b| b.iter(|| max_pool2d(black_box(&x), [3, 3], [2, 2], [1, 1]).unwrap()));
    g.bench_function("backward", |b| b.iter(|| max_pool2d_backward(black_box(&gy), &indices, &SHAPE).unwrap()));
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    use tensor::cpu::elementwise::{map, sigmoid_f32, tanh_f32};
    let mut rng = Rng::new(0);
    let x = Tensor::rand_uniform(&SHAPE, -4.0, 4.0, DType::F32, &mut rng);
    let values: Vec<f32> = x.to_vec_f32().unwrap();
    let n = x.numel();

    let mut g = c.benchmark_group("elementwise_64x128x16x16_f32");
    g.sample_size(20);
    // reads x, writes y
    g.throughput(bytes(&[n, n]));
    g.bench_function("sigmoid op", |b| b.iter(|| black_box(&x).sigmoid().unwrap()));
    g.bench_function("sigmoid loop (map)", |b| b.iter(|| map(black_box(&values), sigmoid_f32)));
    g.bench_function("tanh op", |b| b.iter(|| black_box(&x).tanh().unwrap()));
    g.bench_function("tanh loop (map)", |b| b.iter(|| map(black_box(&values), tanh_f32)));
    // What tanh cost before it had its own f32 formula: libm's tanhf per element.
    g.bench_function("tanh loop (libm tanhf)", |b| b.iter(|| map(black_box(&values), f32::tanh)));
    g.bench_function("relu op", |b| b.iter(|| black_box(&x).relu().unwrap()));
    g.finish();
}

criterion_group!(benches, batch_norm, bilinear, nearest, max_pool, elementwise);
criterion_main!(benches);
