//! Optimizers against hand-computed steps on a 2-element parameter p₀ = [1, −2] with the
//! gradients g₁ = [0.5, −1], g₂ = [0.2, 0.4], g₃ = [−0.3, 0.1]; plus skipping, clipping and
//! state export.

use crate::common;

use std::collections::BTreeMap;

use autograd::Var;
use common::{assert_close, own_gpu};
use nn::optim::Optimizer;
use nn::{clip_grad_norm, Adam, AdamConfig, Sgd, SgdConfig};
use tensor::{DType, Tensor};

const GRADS: [[f64; 2]; 3] = [[0.5, -1.0], [0.2, 0.4], [-0.3, 0.1]];

fn t(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap()
}

fn param() -> Var {
    Var::parameter(t(&[1.0, -2.0]))
}

/// Runs the three steps and returns p after each.
fn run(opt: &mut dyn Optimizer, p: &Var) -> Vec<Vec<f64>> {
    GRADS
        .iter()
        .map(|g| {
            opt.zero_grad();
            p.set_grad(Some(t(g)));
            opt.step().unwrap();
            p.value().to_vec_f64().unwrap()
        })
        .collect()
}

fn assert_steps(got: &[Vec<f64>], want: &[[f64; 2]]) {
    for (g, w) in got.iter().zip(want) {
        assert_close(g, w, 1e-12);
    }
}

#[test]
fn adam_matches_hand_computed_steps() {
    // lr 0.1, β = (0.9, 0.999), eps 1e-8.
    // t=1: m = 0.1·g, v = 0.001·g², m̂ = g, v̂ = g² → p −= 0.1·g/(|g| + 1e-8): [0.9 + 2e-9, −1.9 − 1e-9].
    // t=2, element 0: m = 0.9·0.05 + 0.1·0.2 = 0.065, v = 0.999·0.00025 + 0.001·0.04 = 0.00028975,
    //   m̂ = 0.065/0.19, v̂ = 0.00028975/0.001999 → p = 0.9 − 0.1·0.342105/0.380719 = 0.810142…
    let p = param();
    let mut adam = Adam::new(vec![("p".into(), p.clone())], AdamConfig::new(0.1)).unwrap();
    let want = [
        [0.900000002, -1.900000001],
        [0.8101424839029282, -1.865439416662626],
        [0.7805871509237353, -1.8447499006515093],
    ];
    assert_steps(&run(&mut adam, &p), &want);
}

#[test]
fn adam_weight_decay_adds_wd_times_p_to_the_gradient() {
    // t=1, element 0: g = 0.5 + 0.1·1 = 0.6 → same sign step, p = 0.9 + 1e-8/0.6·0.1.
    let p = param();
    let mut adam = Adam::new(vec![("p".into(), p.clone())], AdamConfig::new(0.1).weight_decay(0.1)).unwrap();
    let want = [
        [0.9000000016666666, -1.9000000008333333],
        [0.8072814605072346, -1.846831886458653],
        [0.7591889719520595, -1.80139767437706],
    ];
    assert_steps(&run(&mut adam, &p), &want);
}

#[test]
fn adamw_shrinks_p_by_one_minus_lr_times_wd_before_the_adam_step() {
    // t=1: p = 1·(1 − 0.1·0.1) − 0.1·(0.5/(0.5 + 1e-8)) = 0.99 − 0.1 + 2e-9.
    let p = param();
    let mut adamw = Adam::adamw(vec![("p".into(), p.clone())], AdamConfig::new(0.1).weight_decay(0.1)).unwrap();
    let want = [
        [0.890000002, -1.880000001],
        [0.7912424838829282, -1.826639416652626],
        [0.753774726064906, -1.7876835064749832],
    ];
    assert_steps(&run(&mut adamw, &p), &want);
}

#[test]
fn sgd_momentum_matches_hand_computed_steps() {
    // buf₁ = g₁ → p = [0.95, −1.9]; buf₂ = 0.9·[0.5, −1] + [0.2, 0.4] = [0.65, −0.5] → [0.885, −1.85];
    // buf₃ = [0.285, −0.35] → [0.8565, −1.815].
    let p = param();
    let mut sgd = Sgd::new(vec![("p".into(), p.clone())], SgdConfig::new(0.1).momentum(0.9)).unwrap();
    assert_steps(&run(&mut sgd, &p), &[[0.95, -1.9], [0.885, -1.85], [0.8565, -1.815]]);
}

#[test]
fn sgd_dampening_scales_new_gradients_after_the_first_step() {
    // buf₂ = 0.9·[0.5, −1] + 0.5·[0.2, 0.4] = [0.55, −0.7] → p = [0.895, −1.83].
    let p = param();
    let mut sgd = Sgd::new(vec![("p".into(), p.clone())], SgdConfig::new(0.1).momentum(0.9).dampening(0.5)).unwrap();
    assert_steps(&run(&mut sgd, &p), &[[0.95, -1.9], [0.895, -1.83], [0.8605, -1.772]]);
}

#[test]
fn sgd_nesterov_with_weight_decay_matches_hand_computed_steps() {
    // t=1: d = g + 0.01·p = [0.51, −1.02], buf = d, d + 0.9·buf = [0.969, −1.938] → [0.9031, −1.8062].
    let p = param();
    let config = SgdConfig::new(0.1).momentum(0.9).nesterov(true).weight_decay(0.01);
    let mut sgd = Sgd::new(vec![("p".into(), p.clone())], config).unwrap();
    assert_steps(
        &run(&mut sgd, &p),
        &[[0.9031, -1.8062], [0.82207411, -1.79614822], [0.823401658191, -1.768314516382]],
    );
}

#[test]
fn nesterov_without_momentum_is_rejected() {
    assert!(Sgd::new(vec![], SgdConfig::new(0.1).nesterov(true)).is_err());
}

#[test]
fn step_skips_frozen_parameters_and_parameters_without_gradient() {
    let (frozen, no_grad, live) = (param(), param(), param());
    frozen.set_grad(Some(t(&[1.0, 1.0])));
    frozen.set_requires_grad(false);
    live.set_grad(Some(t(&[1.0, 1.0])));
    let params =
        vec![("frozen".into(), frozen.clone()), ("no_grad".into(), no_grad.clone()), ("live".into(), live.clone())];
    let mut adam = Adam::new(params, AdamConfig::new(0.1)).unwrap();
    adam.step().unwrap();
    assert_eq!(frozen.value().to_vec_f64().unwrap(), vec![1.0, -2.0]);
    assert_eq!(no_grad.value().to_vec_f64().unwrap(), vec![1.0, -2.0]);
    assert_ne!(live.value().to_vec_f64().unwrap(), vec![1.0, -2.0]);
    // Only the parameter that stepped has state.
    let names: Vec<String> = adam.state_tensors().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["step.live", "exp_avg.live", "exp_avg_sq.live"]);
}

#[test]
fn adam_updates_f32_parameters_in_place_keeping_their_dtype() {
    let p = Var::parameter(Tensor::from_vec(vec![1.0f32, -2.0], &[2]).unwrap());
    let mut adam = Adam::new(vec![("p".into(), p.clone())], AdamConfig::new(0.1)).unwrap();
    p.set_grad(Some(Tensor::from_vec(vec![0.5f32, -1.0], &[2]).unwrap()));
    adam.step().unwrap();
    assert_eq!(p.dtype(), DType::F32);
    assert_close(&p.value().to_vec_f64().unwrap(), &[0.9, -1.9], 1e-6);
}

#[test]
fn zero_grad_clears_every_gradient() {
    let p = param();
    p.set_grad(Some(t(&[1.0, 1.0])));
    let sgd = Sgd::new(vec![("p".into(), p.clone())], SgdConfig::new(0.1)).unwrap();
    sgd.zero_grad();
    assert!(p.grad().is_none());
}

#[test]
fn clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before() {
    let (a, b) = (param(), param());
    a.set_grad(Some(t(&[3.0, 0.0])));
    b.set_grad(Some(t(&[0.0, 4.0])));
    let norm = clip_grad_norm(&[a.clone(), b.clone()], 1.0).unwrap();
    assert_eq!(norm, 5.0);
    let coef = 1.0 / (5.0 + 1e-6);
    assert_close(&a.grad().unwrap().to_vec_f64().unwrap(), &[3.0 * coef, 0.0], 1e-15);
    assert_close(&b.grad().unwrap().to_vec_f64().unwrap(), &[0.0, 4.0 * coef], 1e-15);
}

#[test]
fn clip_grad_norm_leaves_small_gradients_alone() {
    let a = param();
    a.set_grad(Some(t(&[0.3, 0.4])));
    assert_close(&[clip_grad_norm(std::slice::from_ref(&a), 1.0).unwrap()], &[0.5], 1e-15);
    assert_eq!(a.grad().unwrap().to_vec_f64().unwrap(), vec![0.3, 0.4]);
}

#[test]
fn exported_adam_state_resumes_to_the_same_steps() {
    // Two steps, export, import into a fresh optimizer over a copy, then the third step agrees.
    let p = param();
    let mut adam = Adam::new(vec![("p".into(), p.clone())], AdamConfig::new(0.1)).unwrap();
    for g in &GRADS[..2] {
        p.set_grad(Some(t(g)));
        adam.step().unwrap();
    }
    let state: BTreeMap<String, Tensor> = adam.state_tensors().into_iter().map(|s| (s.name, s.value)).collect();
    let q = Var::parameter(p.value());
    let mut resumed = Adam::new(vec![("p".into(), q.clone())], AdamConfig::new(0.1)).unwrap();
    resumed.load_state_tensors(&state).unwrap();
    p.set_grad(Some(t(&GRADS[2])));
    q.set_grad(Some(t(&GRADS[2])));
    adam.step().unwrap();
    resumed.step().unwrap();
    assert_eq!(p.value().to_vec_f64().unwrap(), q.value().to_vec_f64().unwrap());
    assert_close(&q.value().to_vec_f64().unwrap(), &[0.7805871509237353, -1.8447499006515093], 1e-12);
}

#[test]
fn importing_state_for_an_unknown_or_misshaped_parameter_lists_each_problem() {
    let p = param();
    let mut sgd = Sgd::new(vec![("p".into(), p)], SgdConfig::new(0.1).momentum(0.9)).unwrap();
    let state = BTreeMap::from([
        ("momentum_buffer.p".to_string(), Tensor::zeros(&[3], DType::F64)),
        ("momentum_buffer.q".to_string(), Tensor::zeros(&[2], DType::F64)),
    ]);
    let m = sgd.load_state_tensors(&state).unwrap_err();
    assert_eq!(m.unexpected, vec!["momentum_buffer.q"]);
    assert_eq!(m.shape_mismatches.len(), 1);
    assert_eq!(m.shape_mismatches[0].name, "momentum_buffer.p");
}

/// Two f32 parameters on `device` with gradients, the second one's holding `bad` at index 1.
fn params_with_a_bad_gradient(bad: f32, device: &tensor::Device) -> Vec<(String, Var)> {
    ["good", "bad"]
        .iter()
        .map(|name| {
            let p = Var::parameter(Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap().to_device(device).unwrap());
            let g = if *name == "bad" { vec![0.5f32, bad, 0.5] } else { vec![0.5f32; 3] };
            p.set_grad(Some(Tensor::from_vec(g, &[3]).unwrap().to_device(device).unwrap()));
            (name.to_string(), p)
        })
        .collect()
}

fn values(params: &[(String, Var)]) -> Vec<Vec<f32>> {
    params.iter().map(|(_, p)| p.value().to_vec_f32().unwrap()).collect()
}

/// A NaN or infinite gradient stops `step` with an error naming the parameter, before any
/// parameter or optimizer state changes (the same promise the non-finite loss check makes).
fn refuses_non_finite_gradients_on(device: &tensor::Device) {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let params = params_with_a_bad_gradient(bad, device);
        let before = values(&params);
        let mut adam = Adam::new(params.clone(), AdamConfig::new(0.1)).unwrap();
        let err = adam.step().unwrap_err().to_string();
        assert!(err.contains("bad") && err.contains("non-finite"), "{err}");
        assert_eq!(values(&params), before, "Adam changed a parameter");
        assert!(adam.state_tensors().is_empty(), "Adam kept state from a refused step");
        let mut sgd = Sgd::new(params.clone(), SgdConfig::new(0.1).momentum(0.9)).unwrap();
        assert!(sgd.step().is_err());
        assert_eq!(values(&params), before, "SGD changed a parameter");
    }
}

#[test]
fn optimizers_refuse_non_finite_gradients_before_changing_anything() {
    refuses_non_finite_gradients_on(&tensor::Device::Cpu);
}

#[test]
fn optimizers_refuse_non_finite_gradients_on_the_gpu() {
    match tensor::Device::from_preference(tensor::DevicePreference::Gpu) {
        Ok(gpu) => refuses_non_finite_gradients_on(&gpu),
        Err(e) if std::env::var("VAE_REQUIRE_GPU").as_deref() != Ok("1") => eprintln!("skipped: no GPU adapter ({e})"),
        Err(e) => panic!("VAE_REQUIRE_GPU=1 but no GPU: {e}"),
    }
}

/// Shapes of odd sizes, so the packed buffer has padding between every two parameters.
const PACK_SHAPES: [&[usize]; 3] = [&[3], &[5, 7], &[11]];

/// f32 parameters of PACK_SHAPES on `device`, from `seed`.
fn random_params(device: &tensor::Device, seed: u64) -> Vec<(String, Var)> {
    let mut rng = tensor::Rng::new(seed);
    PACK_SHAPES
        .iter()
        .enumerate()
        .map(|(i, shape)| {
            let v = Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, &mut rng).to_device(device).unwrap();
            (format!("p{i}"), Var::parameter(v))
        })
        .collect()
}

/// Sets the gradients of step `step` (the same on every device) on `params`.
fn set_random_grads(params: &[(String, Var)], step: u64) {
    let mut rng = tensor::Rng::new(1000 + step);
    for (_, p) in params {
        let g = Tensor::rand_uniform(&p.shape(), -2.0, 2.0, DType::F32, &mut rng);
        p.set_grad(Some(g.to_device(&p.value().device()).unwrap()));
    }
}

/// The packs PACK_SHAPES' gradients go into: runs of 49 elements close at a quarter of them,
/// 13 or more, so [3] and [5, 7] make one and [11] the other.
const GRADIENT_PACKS_OF_PACK_SHAPES: u64 = 2;

/// Runs `steps` steps of the optimizer `make` builds, on the CPU and on a GPU context of its
/// own, and checks the GPU's parameters against the CPU's after each step, and that every GPU
/// step after the first is one update launch per gradient pack, one non-finite check per
/// four packs (one launch checks four buffers), and one copy per gradient (into its pack; the
/// parameters are not packed again).
fn packed_step_matches_the_cpu(make: impl Fn(Vec<(String, Var)>) -> Box<dyn Optimizer>) {
    let Some(gpu) = own_gpu() else { return };
    let counters = || gpu.gpu_context().unwrap().counters();
    let (cpu_params, gpu_params) = (random_params(&tensor::Device::Cpu, 7), random_params(&gpu, 7));
    let (mut on_cpu, mut on_gpu) = (make(cpu_params.clone()), make(gpu_params.clone()));
    for step in 0..4 {
        set_random_grads(&cpu_params, step);
        set_random_grads(&gpu_params, step);
        on_cpu.step().unwrap();
        let before = counters();
        on_gpu.step().unwrap();
        let c = counters().since(&before);
        for ((name, p), (_, q)) in gpu_params.iter().zip(&cpu_params) {
            let (got, want) = (p.value().to_vec_f64().unwrap(), q.value().to_vec_f64().unwrap());
            assert_close(&got, &want, 1e-6 * (1.0 + step as f64));
            assert_eq!(p.shape(), q.shape(), "{name}");
        }
        if step > 0 {
            let checks = GRADIENT_PACKS_OF_PACK_SHAPES.div_ceil(gpu::kernels::reduce::FLAG_INPUTS as u64);
            assert_eq!(c.dispatches, GRADIENT_PACKS_OF_PACK_SHAPES + checks, "launches of step {step}");
            assert_eq!(c.copies, PACK_SHAPES.len() as u64, "copies of step {step}");
        }
    }
}

#[test]
fn adam_on_the_gpu_is_one_launch_per_gradient_pack_and_matches_the_cpu() {
    packed_step_matches_the_cpu(|p| Box::new(Adam::new(p, AdamConfig::new(0.05).weight_decay(0.01)).unwrap()));
    packed_step_matches_the_cpu(|p| Box::new(Adam::adamw(p, AdamConfig::new(0.05).weight_decay(0.1)).unwrap()));
}

#[test]
fn sgd_on_the_gpu_is_one_launch_per_gradient_pack_and_matches_the_cpu() {
    packed_step_matches_the_cpu(|p| Box::new(Sgd::new(p, SgdConfig::new(0.1)).unwrap()));
    packed_step_matches_the_cpu(|p| Box::new(Sgd::new(p, SgdConfig::new(0.1).momentum(0.9).nesterov(true)).unwrap()));
}

#[test]
fn packing_the_gradients_takes_at_most_a_quarter_of_them_beyond_the_gradients_themselves() {
    let Some(gpu) = own_gpu() else { return };
    let ctx = gpu.gpu_context().unwrap();
    // Eight parameters of 10,000 elements: 320 KB of gradients.
    let params: Vec<(String, Var)> = (0..8)
        .map(|i| (format!("p{i}"), Var::parameter(Tensor::zeros(&[10_000], DType::F32).to_device(&gpu).unwrap())))
        .collect();
    let mut adam = Adam::new(params.clone(), AdamConfig::new(0.01)).unwrap();
    for step in 0..3 {
        set_random_grads(&params, step);
        let before = ctx.pool_stats().live_bytes;
        ctx.reset_peak_live_bytes();
        adam.step().unwrap();
        if step == 0 {
            continue; // the first step packs the parameters and makes the moments
        }
        let beyond = ctx.pool_stats().peak_live_bytes - before;
        // A quarter of the gradients plus the largest, each pack's size class up to a quarter
        // more, and the flag's smallest buffer; every gradient copied at once would be 320 KB.
        let bound = (80_000 + 40_000) * 5 / 4 + 256;
        assert!(
            beyond <= bound,
            "step {step}: the packed gradients took {beyond} bytes beyond the gradients (at most {bound})"
        );
    }
}

#[test]
fn a_parameter_value_held_elsewhere_keeps_its_value_through_a_packed_step() {
    let Some(gpu) = own_gpu() else { return };
    let params = random_params(&gpu, 3);
    let mut adam = Adam::new(params.clone(), AdamConfig::new(0.1)).unwrap();
    set_random_grads(&params, 0);
    adam.step().unwrap();
    // A copy of a parameter and of a moment, as a snapshot or a checkpoint's export holds them:
    // the next steps update the parameters in place, but must not change these.
    let held = params[1].1.value();
    let held_values = held.to_vec_f32().unwrap();
    let exported = adam.state_tensors();
    let exported_values: Vec<Vec<f32>> = exported.iter().map(|s| s.value.to_vec_f32().unwrap()).collect();
    for step in 1..3 {
        set_random_grads(&params, step);
        adam.step().unwrap();
    }
    assert_eq!(held.to_vec_f32().unwrap(), held_values, "the held parameter changed");
    assert_ne!(params[1].1.value().to_vec_f32().unwrap(), held_values, "the parameter itself did not step");
    for (s, v) in exported.iter().zip(&exported_values) {
        assert_eq!(&s.value.to_vec_f32().unwrap(), v, "exported {} changed", s.name);
    }
}

#[test]
fn a_frozen_parameter_on_the_gpu_is_left_alone_while_the_others_step() {
    let Some(gpu) = own_gpu() else { return };
    let params = random_params(&gpu, 5);
    params[0].1.set_requires_grad(false);
    let frozen = params[0].1.value().to_vec_f32().unwrap();
    let others = values(&params[1..]);
    let mut adam = Adam::new(params.clone(), AdamConfig::new(0.1).weight_decay(0.5)).unwrap();
    set_random_grads(&params, 0);
    adam.step().unwrap();
    assert_eq!(params[0].1.value().to_vec_f32().unwrap(), frozen);
    for (after, before) in values(&params[1..]).iter().zip(&others) {
        assert_ne!(after, before);
    }
}

#[test]
fn parameters_on_different_gpus_each_step_on_their_own() {
    let (Some(gpu_a), Some(gpu_b)) = (own_gpu(), own_gpu()) else { return };
    let on_cpu = random_params(&tensor::Device::Cpu, 9);
    // The same parameters on two GPU contexts: they cannot share a pack, so each steps alone.
    let mixed = random_params(&gpu_a, 9);
    mixed[1].1.set_value(mixed[1].1.value().to_device(&gpu_b).unwrap());
    let mut a = Adam::new(on_cpu.clone(), AdamConfig::new(0.05)).unwrap();
    let mut b = Adam::new(mixed.clone(), AdamConfig::new(0.05)).unwrap();
    for step in 0..2 {
        set_random_grads(&on_cpu, step);
        set_random_grads(&mixed, step);
        a.step().unwrap();
        b.step().unwrap();
    }
    assert_eq!(mixed[1].1.value().device(), gpu_b);
    for ((_, p), (_, q)) in mixed.iter().zip(&on_cpu) {
        assert_close(&p.value().to_vec_f64().unwrap(), &q.value().to_vec_f64().unwrap(), 1e-6);
    }
}

#[test]
fn parameters_larger_together_than_one_gpu_buffer_each_step_on_their_own() {
    if own_gpu().is_none() {
        return;
    }
    // Buffers of at most 1 Mi f32: two parameters of 600,000 each do not fit one pack.
    let pref = gpu::AdapterPreference::AnyIncludingSoftware;
    let ctx = gpu::Context::with_buffer_limit(pref, 4 << 20, 4 << 20).unwrap();
    let gpu = tensor::Device::from_context(std::sync::Arc::new(ctx));
    let make = |device: &tensor::Device| -> Vec<(String, Var)> {
        let mut rng = tensor::Rng::new(11);
        (0..2)
            .map(|i| {
                let v = Tensor::rand_uniform(&[600_000], -1.0, 1.0, DType::F32, &mut rng);
                (format!("p{i}"), Var::parameter(v.to_device(device).unwrap()))
            })
            .collect()
    };
    let (on_cpu, on_gpu) = (make(&tensor::Device::Cpu), make(&gpu));
    let values: Vec<Tensor> = on_gpu.iter().map(|(_, p)| p.value()).collect();
    assert!(!tensor::ops::packed::fits_one_pack(&values.iter().collect::<Vec<_>>()));
    let (mut a, mut b) = (
        Adam::new(on_cpu.clone(), AdamConfig::new(0.05)).unwrap(),
        Adam::new(on_gpu.clone(), AdamConfig::new(0.05)).unwrap(),
    );
    for step in 0..2 {
        set_random_grads(&on_cpu, step);
        set_random_grads(&on_gpu, step);
        a.step().unwrap();
        b.step().unwrap();
    }
    for ((_, p), (_, q)) in on_gpu.iter().zip(&on_cpu) {
        assert_close(&p.value().to_vec_f64().unwrap(), &q.value().to_vec_f64().unwrap(), 1e-6);
    }
}

/// Builds an optimizer over the given parameters.
type MakeOptimizer = fn(Vec<(String, Var)>) -> Box<dyn Optimizer>;

/// Adam and SGD with momentum: both keep state that a vetoed step must leave as it was.
fn stateful_optimizers() -> [MakeOptimizer; 2] {
    [
        |p| Box::new(Adam::new(p, AdamConfig::new(0.05)).unwrap()),
        |p| Box::new(Sgd::new(p, SgdConfig::new(0.1).momentum(0.9)).unwrap()),
    ]
}

/// Whether a flag from `step_unless_non_finite` is set.
fn is_set(flag: &Tensor) -> bool {
    flag.to_vec_f64().unwrap() != [0.0]
}

/// A first step vetoed (a NaN in p1's gradient, then a NaN in `also`) changes no parameter and
/// leaves the optimizer as a fresh one: the good steps after it match a fresh optimizer's.
fn vetoed_steps_leave_the_optimizer_as_it_was_on(device: &tensor::Device) {
    for make in stateful_optimizers() {
        let (params, fresh_params) = (random_params(device, 5), random_params(device, 5));
        let (mut opt, mut fresh) = (make(params.clone()), make(fresh_params.clone()));
        let before = values(&params);
        set_random_grads(&params, 0);
        let g = params[1].1.grad().unwrap().to_vec_f64().unwrap();
        let poisoned = g.iter().enumerate().map(|(i, &x)| if i == 4 { f64::NAN } else { x }).collect();
        let poisoned = Tensor::from_vec(poisoned, &params[1].1.shape()).unwrap().to_dtype(DType::F32).unwrap();
        params[1].1.set_grad(Some(poisoned.to_device(device).unwrap()));
        // On the CPU the check is made at once; on a GPU it comes with the flag.
        let err = match opt.step_unless_non_finite(&[]) {
            Ok(flag) => {
                assert!(device.is_gpu() && is_set(&flag), "a NaN gradient must set the flag");
                opt.settle_step(true).unwrap_err()
            }
            Err(e) => e,
        };
        assert!(err.to_string().contains("p1"), "{err}");
        assert_eq!(values(&params), before, "a NaN gradient changed a parameter");
        assert!(opt.state_tensors().is_empty(), "a vetoed first step left state");
        set_random_grads(&params, 0);
        let nan = Tensor::from_vec(vec![f64::NAN], &[1]).unwrap().to_dtype(DType::F32).unwrap();
        let flag = opt.step_unless_non_finite(&[&nan.to_device(device).unwrap()]).unwrap();
        assert!(is_set(&flag), "a NaN in `also` must set the flag");
        opt.settle_step(true).expect("finite gradients: nothing to name");
        assert_eq!(values(&params), before, "a NaN loss changed a parameter");
        assert!(opt.state_tensors().is_empty(), "a vetoed first step left state");
        for step in 0..2 {
            set_random_grads(&params, step);
            set_random_grads(&fresh_params, step);
            opt.step().unwrap();
            fresh.step().unwrap();
        }
        assert_eq!(values(&params), values(&fresh_params), "after vetoed steps, on {device:?}");
    }
}

#[test]
fn vetoed_steps_leave_the_optimizer_as_it_was() {
    vetoed_steps_leave_the_optimizer_as_it_was_on(&tensor::Device::Cpu);
}

#[test]
fn vetoed_steps_on_the_gpu_leave_the_optimizer_as_it_was() {
    let Some(gpu) = own_gpu() else { return };
    vetoed_steps_leave_the_optimizer_as_it_was_on(&gpu);
}

#[test]
fn a_vetoed_later_step_keeps_the_step_count_and_the_moments() {
    let Some(gpu) = own_gpu() else { return };
    for make in stateful_optimizers() {
        let (params, twin) = (random_params(&gpu, 6), random_params(&gpu, 6));
        let (mut opt, mut reference) = (make(params.clone()), make(twin.clone()));
        set_random_grads(&params, 0);
        set_random_grads(&twin, 0);
        opt.step().unwrap();
        reference.step().unwrap();
        let nan =
            Tensor::from_vec(vec![f64::NAN], &[1]).unwrap().to_dtype(DType::F32).unwrap().to_device(&gpu).unwrap();
        set_random_grads(&params, 1);
        let flag = opt.step_unless_non_finite(&[&nan]).unwrap();
        opt.settle_step(is_set(&flag)).unwrap();
        set_random_grads(&params, 1);
        set_random_grads(&twin, 1);
        opt.step().unwrap();
        reference.step().unwrap();
        assert_eq!(values(&params), values(&twin));
        let state = |o: &dyn Optimizer| -> Vec<Vec<f32>> {
            o.state_tensors().iter().map(|s| s.value.to_vec_f32().unwrap()).collect()
        };
        assert_eq!(state(opt.as_ref()), state(reference.as_ref()), "state after a vetoed second step");
    }
}

#[test]
fn a_step_before_the_last_one_is_settled_is_refused() {
    for make in stateful_optimizers() {
        let params = random_params(&tensor::Device::Cpu, 8);
        let mut opt = make(params.clone());
        set_random_grads(&params, 0);
        let flag = opt.step_unless_non_finite(&[]).unwrap();
        let err = opt.step().unwrap_err().to_string();
        assert!(err.contains("settle_step"), "{err}");
        opt.settle_step(is_set(&flag)).unwrap();
        opt.step().unwrap();
    }
}
