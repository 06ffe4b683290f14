//! Optimizer updates on the GPU against the reference device (each op's plain definition): tensor's in-place `adam_update`
//! (Adam and AdamW, several steps) and `sgd_update` (plain, momentum, nesterov, weight
//! decay), run in place on the parameter's buffer with copy-on-write for shared storage,
//! and nn's Adam / SGD optimizers stepping GPU parameters; the non-finite flag and the
//! updates it guards.

use crate::common;

use autograd::Var;
use common::parity::*;
use common::rng;
use nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use tensor::ops::finite::non_finite_flag;
use tensor::ops::optim::{
    adam_update, adam_update_unless_flagged, sgd_update, sgd_update_unless_flagged, AdamHyper, SgdHyper,
};
use tensor::{Device, Tensor};

#[test]
fn adam_and_adamw_updates_match_the_reference_over_several_steps() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for decoupled in [false, true] {
        let shape = [3, 257];
        let mut p = signed(&shape, &mut r);
        let mut pg = up(&p, &gpu);
        // m and v start as ONE shared zero tensor (as nn's Adam creates them): the update must
        // give each its own buffer, on both devices.
        let z = p.zeros_like().unwrap();
        let (mut m, mut v) = (z.clone(), z);
        let zg = pg.zeros_like().unwrap();
        assert!(zg.is_gpu());
        let (mut mg, mut vg) = (zg.clone(), zg);
        for step in 1..=4 {
            let g = signed(&shape, &mut r);
            let h = AdamHyper {
                lr: 0.01,
                weight_decay: 0.05,
                decoupled_weight_decay: decoupled,
                step,
                ..AdamHyper::default()
            };
            adam_update(&mut p, &g, &mut m, &mut v, &h).unwrap();
            adam_update(&mut pg, &up(&g, &gpu), &mut mg, &mut vg, &h).unwrap();
        }
        let what = if decoupled { "AdamW" } else { "Adam" };
        assert_close(&format!("{what}: param"), &pg, &p, None);
        assert_close(&format!("{what}: exp_avg"), &mg, &m, None);
        assert_close(&format!("{what}: exp_avg_sq"), &vg, &v, Some(&tensor_scale(&v)));
        assert!(!mg.shares_storage_with(&vg));
    }
}

#[test]
fn adam_update_leaves_a_tensor_sharing_the_parameter_unchanged() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let p0 = up(&signed(&[40], &mut r), &gpu);
    let mut p = p0.clone();
    let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
    let h = AdamHyper { lr: 0.1, ..AdamHyper::default() };
    let before = p0.to_vec_f32().unwrap();
    adam_update(&mut p, &up(&signed(&[40], &mut r), &gpu), &mut m, &mut v, &h).unwrap();
    assert_eq!(p0.to_vec_f32().unwrap(), before, "the shared original must not change");
    assert_ne!(p.to_vec_f32().unwrap(), before, "the parameter must change");
}

#[test]
fn sgd_updates_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let configs = [(0.0, 0.0, false, 0.0), (0.9, 0.0, false, 0.01), (0.9, 0.1, true, 0.0), (0.5, 0.3, false, 0.1)];
    for (momentum, dampening, nesterov, weight_decay) in configs {
        let shape = [5, 61];
        let mut p = signed(&shape, &mut r);
        let mut pg = up(&p, &gpu);
        let (mut b, mut bg) = (p.zeros_like().unwrap(), pg.zeros_like().unwrap());
        for step in 0..3 {
            let g = signed(&shape, &mut r);
            let h = SgdHyper { lr: 0.05, momentum, dampening, weight_decay, nesterov, first_step: step == 0 };
            let (buf, buf_g) = if momentum != 0.0 { (Some(&mut b), Some(&mut bg)) } else { (None, None) };
            sgd_update(&mut p, &g, buf, &h).unwrap();
            sgd_update(&mut pg, &up(&g, &gpu), buf_g, &h).unwrap();
        }
        let what = format!("sgd momentum {momentum} dampening {dampening} nesterov {nesterov} wd {weight_decay}");
        assert_close(&format!("{what}: param"), &pg, &p, None);
        if momentum != 0.0 {
            assert_close(&format!("{what}: momentum buffer"), &bg, &b, None);
        }
    }
}

#[test]
fn optimizer_update_refuses_a_gradient_on_the_other_device() {
    let Some(gpu) = gpu() else { return };
    let mut pg = Tensor::zeros_on(&[3], tensor::DType::F32, &gpu).unwrap();
    let g = Tensor::zeros(&[3], tensor::DType::F32);
    let (mut m, mut v) = (pg.zeros_like().unwrap(), pg.zeros_like().unwrap());
    let h = AdamHyper { lr: 0.1, ..AdamHyper::default() };
    let err = adam_update(&mut pg, &g, &mut m, &mut v, &h).unwrap_err().to_string();
    assert!(err.contains("adam_update") && err.contains("cpu") && err.contains("gpu"), "{err}");
}

/// Three steps of an nn optimizer on a quadratic loss, on `device`; returns the parameters.
fn train(
    device: &Device,
    init: &[Tensor],
    target: &Tensor,
    make: &dyn Fn(Vec<(String, Var)>) -> Box<dyn Optimizer>,
) -> Vec<Tensor> {
    let params: Vec<Var> = init.iter().map(|t| Var::parameter(t.to_device(device).unwrap())).collect();
    let named = params.iter().enumerate().map(|(i, p)| (format!("p{i}"), p.clone())).collect();
    let mut opt = make(named);
    let target = Var::constant(target.to_device(device).unwrap());
    for _ in 0..3 {
        opt.zero_grad();
        let y = params[0].matmul(&params[1]).unwrap();
        let loss = y.sub(&target).unwrap().square().unwrap().mean_all().unwrap();
        loss.backward().unwrap();
        opt.step().unwrap();
    }
    params.iter().map(|p| p.value()).collect()
}

#[test]
fn nn_optimizers_step_gpu_parameters_like_cpu_ones() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let init = vec![signed(&[6, 9], &mut r), signed(&[9, 4], &mut r)];
    let target = signed(&[6, 4], &mut r);
    let adam =
        |p: Vec<(String, Var)>| -> Box<dyn Optimizer> { Box::new(Adam::adamw(p, AdamConfig::new(0.01)).unwrap()) };
    let sgd = |p: Vec<(String, Var)>| -> Box<dyn Optimizer> {
        Box::new(Sgd::new(p, SgdConfig::new(0.1).momentum(0.9)).unwrap())
    };
    for (name, make) in [("AdamW", &adam as &dyn Fn(_) -> _), ("SGD", &sgd)] {
        let cpu = train(&Device::Cpu, &init, &target, make);
        let on_gpu = train(&gpu, &init, &target, make);
        for (i, (g, c)) in on_gpu.iter().zip(&cpu).enumerate() {
            assert_close(&format!("{name}: parameter {i}"), g, c, None);
        }
    }
}

#[test]
fn pack_copies_each_tensor_into_one_buffer_with_zeros_between() {
    use tensor::ops::packed::{pack, packed_whole};
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    // A transposed view (not contiguous) among them: packing copies its elements in order.
    let cpu = [signed(&[3, 5], &mut r).transpose(0, 1).unwrap(), signed(&[7], &mut r), signed(&[2, 2, 3], &mut r)];
    let on_gpu: Vec<Tensor> = cpu.iter().map(|t| up(t, &gpu)).collect();
    let packed = pack(&on_gpu.iter().collect::<Vec<_>>()).unwrap();
    let align = gpu.gpu_context().unwrap().window_alignment();
    let mut want = Vec::new();
    for (t, p) in cpu.iter().zip(&packed) {
        assert_eq!(p.shape(), t.shape());
        let values = t.to_vec_f32().unwrap();
        assert_eq!(p.to_vec_f32().unwrap(), values);
        want.resize(want.len().next_multiple_of(align), 0.0);
        want.extend(values);
    }
    let whole = packed_whole(&packed.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(whole.to_vec_f32().unwrap(), want, "the whole pack, padding of {align}-element alignment included");
}

#[test]
fn packed_whole_is_none_for_anything_but_one_whole_pack() {
    use tensor::ops::packed::{pack, packed_whole};
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let cpu = [signed(&[4], &mut r), signed(&[9], &mut r)];
    let packed = pack(&[&up(&cpu[0], &gpu), &up(&cpu[1], &gpu)]).unwrap();
    assert!(packed_whole(&[&packed[0], &packed[1]]).is_some());
    let copied = packed[1].contiguous_copy().unwrap();
    let narrowed = packed[1].narrow(0, 1, 8).unwrap();
    for (what, list) in [
        ("CPU tensors", vec![&cpu[0], &cpu[1]]),
        ("a subset", vec![&packed[0]]),
        ("a copy out of the pack", vec![&packed[0], &copied]),
        ("a narrowed view", vec![&packed[0], &narrowed]),
    ] {
        assert!(packed_whole(&list).is_none(), "{what}");
    }
    let err = pack(&[&cpu[0]]).unwrap_err().to_string();
    assert!(err.contains("GPU tensors"), "{err}");
}

#[test]
fn non_finite_flag_matches_the_reference_for_clean_and_poisoned_tensors() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let (a, b) = (signed(&[3, 257], &mut r), signed(&[1031], &mut r));
    for bad in [None, Some(f64::NAN), Some(f64::INFINITY), Some(f64::NEG_INFINITY)] {
        let mut v = b.to_vec_f64().unwrap();
        if let Some(x) = bad {
            v[700] = x;
        }
        let b = Tensor::from_vec(v, &[1031]).unwrap().to_dtype(a.dtype()).unwrap().to_device(&a.device()).unwrap();
        let want = non_finite_flag(&[&a, &b]).unwrap();
        let got = non_finite_flag(&[&up(&a, &gpu), &up(&b, &gpu)]).unwrap();
        assert!(got.is_gpu() && got.shape() == [1]);
        assert_eq!(got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap(), "{bad:?}");
        assert_eq!(want.to_vec_f64().unwrap(), [if bad.is_some() { 1.0 } else { 0.0 }], "{bad:?}");
    }
}

#[test]
fn updates_unless_flagged_match_the_reference_and_change_nothing_when_the_gradient_is_not_finite() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let shape = [5, 67];
    for poisoned in [false, true] {
        let p = signed(&shape, &mut r);
        let mut gv = signed(&shape, &mut r).to_vec_f64().unwrap();
        if poisoned {
            gv[100] = f64::NAN;
        }
        let g = Tensor::from_vec(gv, &shape).unwrap().to_dtype(p.dtype()).unwrap().to_device(&p.device()).unwrap();
        let (gg, pg0) = (up(&g, &gpu), up(&p, &gpu));
        let m0 = signed(&shape, &mut r).mul_scalar(0.1).unwrap();
        let h = AdamHyper { lr: 0.01, step: 2, ..AdamHyper::default() };
        let (mut pc, mut mc, mut vc) = (p.clone(), m0.clone(), m0.abs().unwrap());
        let (mut pg, mut mg, mut vg) = (pg0.clone(), up(&mc, &gpu), up(&vc, &gpu));
        adam_update_unless_flagged(&mut pc, &g, &mut mc, &mut vc, &h, &non_finite_flag(&[&g]).unwrap()).unwrap();
        adam_update_unless_flagged(&mut pg, &gg, &mut mg, &mut vg, &h, &non_finite_flag(&[&gg]).unwrap()).unwrap();
        let what = if poisoned { "a NaN gradient" } else { "a finite gradient" };
        assert_close(&format!("Adam, {what}: param"), &pg, &pc, None);
        assert_close(&format!("Adam, {what}: exp_avg"), &mg, &mc, None);
        assert_close(&format!("Adam, {what}: exp_avg_sq"), &vg, &vc, Some(&tensor_scale(&vc)));
        assert_eq!(pc.to_vec_f64().unwrap() == p.to_vec_f64().unwrap(), poisoned, "Adam, {what}: changed?");
        let sh = SgdHyper {
            lr: 0.05,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 1e-3,
            nesterov: false,
            first_step: false,
        };
        let (mut pc, mut bc) = (p.clone(), m0.clone());
        let (mut pg, mut bg) = (pg0.clone(), up(&m0, &gpu));
        sgd_update_unless_flagged(&mut pc, &g, Some(&mut bc), &sh, &non_finite_flag(&[&g]).unwrap()).unwrap();
        sgd_update_unless_flagged(&mut pg, &gg, Some(&mut bg), &sh, &non_finite_flag(&[&gg]).unwrap()).unwrap();
        assert_close(&format!("SGD, {what}: param"), &pg, &pc, None);
        assert_close(&format!("SGD, {what}: momentum"), &bg, &bc, None);
        assert_eq!(pc.to_vec_f64().unwrap() == p.to_vec_f64().unwrap(), poisoned, "SGD, {what}: changed?");
    }
}
