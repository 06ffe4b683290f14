#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;
use tensor::cpu::gemm::{gemm, MatRef};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (m, k, n): (usize, usize, usize) =
        (args[1].parse().unwrap(), args[2].parse().unwrap(), args[3].parse().unwrap());
    let bt = args.get(4).map(|s| s == "t").unwrap_or(false);
    let reps: usize = args.get(5).map(|s| s.parse().unwrap()).unwrap_or(500);
    let a = tensor::Tensor::rand_normal(&[m * k], 0.0, 1.0, tensor::DType::F32, &mut tensor::Rng::new(1))
        .to_vec_f32()
        .unwrap();
    let b = tensor::Tensor::rand_normal(&[k * n], 0.0, 1.0, tensor::DType::F32, &mut tensor::Rng::new(2))
        .to_vec_f32()
        .unwrap();
    let mut c = vec![0f32; m * n];
    let mut times = vec![];
    tensor::cpu::awake::kept_awake(|| {
        for _ in 0..reps {
            let t = std::time::Instant::now();
            let bm = if bt { MatRef::row_major(&b, n, k).t() } else { MatRef::row_major(&b, k, n) };
            gemm(MatRef::row_major(&a, m, k), bm, &mut c, n, false);
            std::hint::black_box(&c);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    });
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{m}x{k}x{n} bt={bt}: median {:.3} ms, {:.0} GFLOP/s",
        times[reps / 2],
        2.0 * (m * k * n) as f64 / times[reps / 2] / 1e6
    );
}
