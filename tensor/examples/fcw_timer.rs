#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;
use tensor::descriptors::Conv2dGeometry;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(0);
    let reps: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(200);
    let g = match which {
        0 => Conv2dGeometry::conv2d([64, 3, 64, 64], [32, 3, 3, 3], [2, 2], [1, 1], [1, 1]),
        1 => Conv2dGeometry::conv2d([64, 3, 64, 64], [32, 3, 4, 4], [2, 2], [1, 1], [1, 1]),
        2 => Conv2dGeometry::conv2d([64, 3, 32, 32], [64, 3, 7, 7], [2, 2], [3, 3], [1, 1]),
        3 => Conv2dGeometry::conv2d([64, 3, 32, 32], [32, 3, 3, 3], [1, 1], [1, 1], [1, 1]),
        4 => Conv2dGeometry::conv2d([64, 32, 32, 32], [64, 32, 3, 3], [2, 2], [1, 1], [1, 1]),
        5 => Conv2dGeometry::conv2d([64, 64, 16, 16], [128, 64, 3, 3], [2, 2], [1, 1], [1, 1]),
        6 => Conv2dGeometry::conv2d([64, 64, 16, 16], [128, 64, 4, 4], [2, 2], [1, 1], [1, 1]),
        7 => Conv2dGeometry::conv2d([64, 32, 32, 32], [64, 32, 4, 4], [2, 2], [1, 1], [1, 1]),
        8 => Conv2dGeometry::conv2d([64, 32, 16, 16], [64, 32, 3, 3], [2, 2], [1, 1], [1, 1]),
        9 => Conv2dGeometry::conv2d([64, 64, 16, 16], [64, 64, 3, 3], [2, 2], [1, 1], [1, 1]),
        _ => Conv2dGeometry::conv2d([64, 32, 32, 32], [64, 32, 3, 3], [2, 2], [1, 1], [1, 1]),
    }
    .unwrap();
    let dy = tensor::Tensor::rand_normal(&[g.y_len()], 0.0, 1.0, tensor::DType::F32, &mut tensor::Rng::new(1))
        .to_vec_f32()
        .unwrap();
    let x = tensor::Tensor::rand_normal(&[g.x_len()], 0.0, 1.0, tensor::DType::F32, &mut tensor::Rng::new(2))
        .to_vec_f32()
        .unwrap();
    let mut times = vec![];
    tensor::cpu::awake::kept_awake(|| {
        for _ in 0..reps {
            let t = std::time::Instant::now();
            let dw = tensor::cpu::direct_weight::conv2d_backward_weight(&dy, &x, &g);
            std::hint::black_box(dw);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    });
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let gflop = 2.0 * (g.c_out * g.c_in * g.kh * g.kw * g.batch * g.oh * g.ow) as f64 / 1e9;
    println!(
        "layer {which}: median {:.3} ms, min {:.3}, {:.0} GFLOP/s",
        times[reps / 2],
        times[0],
        gflop / times[reps / 2] * 1e3
    );
}
