//! End-to-end training: small models must fit small tasks to a stated quality within a few
//! seconds (loss, layers, backward and optimizer working together).

use autograd::Var;
use nn::optim::Optimizer;
use nn::{Adam, AdamConfig, Init, Linear, LrSchedule, Module, ReLU, Sequential, Sgd, SgdConfig};
use tensor::{DType, Rng, Tensor};

/// Mean cross-entropy of logits [N, K] against one-hot targets [N, K]:
/// mean over rows of logsumexp(logits) − Σ onehot·logits.
fn cross_entropy(logits: &Var, onehot: &Tensor) -> nn::Result<Var> {
    let picked = logits.mul(&Var::constant(onehot.clone()))?.sum(&[1], false)?;
    Ok(logits.logsumexp(&[1], false)?.sub(&picked)?.mean_all()?)
}

/// XOR of the quadrants: points uniform in [−1, 1]², class 1 where x·y > 0.
fn xor_data(n: usize, rng: &mut Rng) -> (Tensor, Tensor, Vec<usize>) {
    let mut xs = vec![];
    let mut onehot = vec![];
    let mut labels = vec![];
    for _ in 0..n {
        let (a, b) = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0));
        let label = usize::from(a * b > 0.0);
        xs.extend([a as f32, b as f32]);
        onehot.extend(if label == 1 { [0.0f32, 1.0] } else { [1.0, 0.0] });
        labels.push(label);
    }
    (Tensor::from_vec(xs, &[n, 2]).unwrap(), Tensor::from_vec(onehot, &[n, 2]).unwrap(), labels)
}

fn accuracy(logits: &Tensor, labels: &[usize]) -> f64 {
    let v = logits.to_vec_f32().unwrap();
    let correct = labels.iter().enumerate().filter(|(i, &l)| usize::from(v[2 * i + 1] > v[2 * i]) == l).count();
    correct as f64 / labels.len() as f64
}

#[test]
fn an_mlp_learns_quadrant_xor_to_over_95_percent_held_out_accuracy() {
    let start = std::time::Instant::now();
    let mut init = Init::new(0);
    let model = Sequential::new()
        .with(Linear::new(2, 32, &mut init).unwrap())
        .with(ReLU)
        .with(Linear::new(32, 32, &mut init).unwrap())
        .with(ReLU)
        .with(Linear::new(32, 2, &mut init).unwrap());
    let mut data_rng = Rng::new(1);
    let (x, onehot, _) = xor_data(512, &mut data_rng);
    let (x_test, _, test_labels) = xor_data(1000, &mut data_rng);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(0.02)).unwrap();
    let schedule = LrSchedule::Cosine { lr: 0.02, min_lr: 0.002, steps: 400 };
    let x = Var::constant(x);
    let mut loss = f64::INFINITY;
    for step in 0..400 {
        opt.set_learning_rate(schedule.lr_at(step));
        opt.zero_grad();
        let l = cross_entropy(&model.forward(&x).unwrap(), &onehot).unwrap();
        loss = l.value().item().unwrap();
        l.backward().unwrap();
        opt.step().unwrap();
    }
    let acc = autograd::no_grad(|| accuracy(&model.forward(&Var::constant(x_test)).unwrap().value(), &test_labels));
    assert!(acc > 0.95, "held-out accuracy {acc}, final training loss {loss}");
    assert!(loss < 0.15, "final training loss {loss}");
    assert!(start.elapsed().as_secs_f64() < 20.0, "took {:?}", start.elapsed());
}

#[test]
fn sgd_with_momentum_fits_a_linear_regression_to_mse_below_1e_minus_3() {
    // y = x·[2, −3, 0.5]ᵀ + 1 with noise-free targets.
    let mut rng = Rng::new(2);
    let n = 256;
    let x = Tensor::rand_uniform(&[n, 3], -1.0, 1.0, DType::F32, &mut rng);
    let w_true = Tensor::from_vec(vec![2.0f32, -3.0, 0.5], &[3, 1]).unwrap();
    let y = tensor::ops::matmul::matmul(&x, &w_true).unwrap().add_scalar(1.0).unwrap();
    let model = Linear::new(3, 1, &mut Init::new(3)).unwrap();
    let mut opt = Sgd::new(model.named_parameters(), SgdConfig::new(0.1).momentum(0.9)).unwrap();
    let (x, y) = (Var::constant(x), Var::constant(y));
    let mut mse = f64::INFINITY;
    for _ in 0..200 {
        opt.zero_grad();
        let loss = model.forward(&x).unwrap().sub(&y).unwrap().square().unwrap().mean_all().unwrap();
        mse = loss.value().item().unwrap();
        loss.backward().unwrap();
        opt.step().unwrap();
    }
    assert!(mse < 1e-3, "final mse {mse}");
    let w = model.weight.value().to_vec_f32().unwrap();
    assert!((w[0] - 2.0).abs() < 0.05 && (w[1] + 3.0).abs() < 0.05 && (w[2] - 0.5).abs() < 0.05, "{w:?}");
}
