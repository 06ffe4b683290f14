//! adam.wgsl against the reference tier's definitions (`tensor::reference::optim`, PyTorch's
//! update formulas in f64), over several steps: Adam, AdamW, and SGD with momentum, dampening,
//! Nesterov and weight decay.

use crate::common;

use common::*;
use gpu::descriptors::{AdamHyper, SgdHyper};
use gpu::kernels::adam::{adam_step, adam_step_unless_flagged, sgd_step, sgd_step_unless_flagged, AdamState};
use tensor::reference::optim as reference;

#[test]
fn adam_and_adamw_match_the_reference_over_several_steps() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for n in [1, 7, 33, 65, 129, 1000] {
        for (decoupled, wd) in [(false, 0.0), (false, 0.05), (true, 0.05)] {
            let mut p = to_f64(&rng.signed(n));
            let (mut m, mut v) = (vec![0.0f64; n], vec![0.0f64; n]);
            let p32: Vec<f32> = p.iter().map(|&x| x as f32).collect();
            let (pb, mb, vb) = (upload(ctx, &p32), ctx.zeros(n).unwrap(), ctx.zeros(n).unwrap());
            let hyper = |step| AdamHyper {
                lr: 1e-2,
                weight_decay: wd,
                decoupled_weight_decay: decoupled,
                step,
                ..AdamHyper::default()
            };
            for step in 1..=5u64 {
                let g = rng.signed(n);
                let gb = upload(ctx, &g);
                adam_step(ctx, &hyper(step), &AdamState { param: &pb, grad: &gb, m: &mb, v: &vb }).unwrap();
                reference::adam(&mut p, &to_f64(&g), &mut m, &mut v, &hyper(step));
            }
            let what = format!("n={n} decoupled={decoupled} wd={wd}");
            assert_close_unit(&format!("adam p {what}"), &rng, &ctx.read(&pb).unwrap(), &p);
            assert_close_unit(&format!("adam m {what}"), &rng, &ctx.read(&mb).unwrap(), &m);
            assert_close_unit(&format!("adam v {what}"), &rng, &ctx.read(&vb).unwrap(), &v);
        }
    }
}

#[test]
fn sgd_with_momentum_dampening_nesterov_and_decay_matches_the_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    let configs = [(0.0, 0.0, false, 0.0), (0.9, 0.0, false, 0.0), (0.9, 0.1, false, 1e-2), (0.8, 0.0, true, 1e-3)];
    for n in [1, 33, 129, 1000] {
        for (momentum, dampening, nesterov, weight_decay) in configs {
            let mut p = to_f64(&rng.signed(n));
            let mut buf = vec![0.0f64; n];
            let p32: Vec<f32> = p.iter().map(|&x| x as f32).collect();
            let pb = upload(ctx, &p32);
            let bb = poisoned(ctx, n); // the first step must overwrite it, not read it
            for step in 0..4 {
                let g = rng.signed(n);
                let hyper = SgdHyper { lr: 0.05, momentum, dampening, weight_decay, nesterov, first_step: step == 0 };
                let with_buf = (momentum != 0.0).then_some(&bb);
                sgd_step(ctx, &hyper, &pb, &upload(ctx, &g), with_buf).unwrap();
                reference::sgd(&mut p, &to_f64(&g), (momentum != 0.0).then_some(&mut buf[..]), &hyper);
            }
            let what = format!("n={n} momentum={momentum} dampening={dampening} nesterov={nesterov} wd={weight_decay}");
            assert_close_unit(&format!("sgd p {what}"), &rng, &ctx.read(&pb).unwrap(), &p);
            if momentum != 0.0 {
                assert_close_unit(&format!("sgd buf {what}"), &rng, &ctx.read(&bb).unwrap(), &buf);
            }
        }
    }
}

#[test]
fn adam_step_zero_and_aliased_buffers_are_refused() {
    let Some(ctx) = ctx() else { return };
    let (p, g, m) = (ctx.zeros(4).unwrap(), ctx.zeros(4).unwrap(), ctx.zeros(4).unwrap());
    let hyper = AdamHyper { step: 0, ..AdamHyper::default() };
    assert!(adam_step(ctx, &hyper, &AdamState { param: &p, grad: &g, m: &m, v: &m }).is_err());
    let hyper = AdamHyper { step: 1, ..hyper };
    let err = adam_step(ctx, &hyper, &AdamState { param: &p, grad: &g, m: &m, v: &m }).unwrap_err();
    assert!(err.to_string().contains("also bound"), "{err}");
}

/// A flag as `flag_non_finite` leaves it: zero, or the bits of the f32 1.0.
fn flag(ctx: &gpu::Context, set: bool) -> gpu::GpuBuffer {
    ctx.upload_u32(&[if set { 1.0f32.to_bits() } else { 0 }]).unwrap()
}

#[test]
fn adam_unless_flagged_is_adam_when_clear_and_changes_nothing_when_flagged() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for n in [1, 257, 1000] {
        let hyper = |step| AdamHyper {
            lr: 1e-2,
            weight_decay: 0.01,
            decoupled_weight_decay: true,
            step,
            ..AdamHyper::default()
        };
        let (p, m, v) = (rng.signed(n), rng.vec(n, -0.1, 0.1), rng.vec(n, 0.01, 1.0));
        let state = |ctx: &gpu::Context| (upload(ctx, &p), upload(ctx, &m), upload(ctx, &v));
        let ((p0, m0, v0), (p1, m1, v1), (p2, m2, v2)) = (state(ctx), state(ctx), state(ctx));
        let g = upload(ctx, &rng.signed(n));
        adam_step(ctx, &hyper(3), &AdamState { param: &p0, grad: &g, m: &m0, v: &v0 }).unwrap();
        let clear = AdamState { param: &p1, grad: &g, m: &m1, v: &v1 };
        adam_step_unless_flagged(ctx, &hyper(3), &clear, &flag(ctx, false)).unwrap();
        let flagged = AdamState { param: &p2, grad: &g, m: &m2, v: &v2 };
        adam_step_unless_flagged(ctx, &hyper(3), &flagged, &flag(ctx, true)).unwrap();
        for (what, plain, clear, flagged, before) in
            [("p", &p0, &p1, &p2, &p), ("m", &m0, &m1, &m2, &m), ("v", &v0, &v1, &v2, &v)]
        {
            let plain = ctx.read(plain).unwrap();
            assert_ne!(&plain, before, "n={n}: the plain step must change {what} (seed {})", rng.seed);
            assert_eq!(ctx.read(clear).unwrap(), plain, "n={n}: {what} with a clear flag (seed {})", rng.seed);
            assert_eq!(&ctx.read(flagged).unwrap(), before, "n={n}: {what} with a set flag (seed {})", rng.seed);
        }
    }
}

#[test]
fn sgd_unless_flagged_is_sgd_when_clear_and_changes_nothing_when_flagged() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for n in [1, 257, 1000] {
        for momentum in [0.0, 0.9] {
            let hyper =
                SgdHyper { lr: 0.05, momentum, dampening: 0.1, weight_decay: 1e-3, nesterov: false, first_step: false };
            let (p, b) = (rng.signed(n), rng.signed(n));
            let ((p0, b0), (p1, b1), (p2, b2)) = (
                (upload(ctx, &p), upload(ctx, &b)),
                (upload(ctx, &p), upload(ctx, &b)),
                (upload(ctx, &p), upload(ctx, &b)),
            );
            let g = upload(ctx, &rng.signed(n));
            let with = |b| (momentum != 0.0).then_some(b);
            sgd_step(ctx, &hyper, &p0, &g, with(&b0)).unwrap();
            sgd_step_unless_flagged(ctx, &hyper, &p1, &g, with(&b1), &flag(ctx, false)).unwrap();
            sgd_step_unless_flagged(ctx, &hyper, &p2, &g, with(&b2), &flag(ctx, true)).unwrap();
            let what = format!("n={n} momentum={momentum} (seed {})", rng.seed);
            let plain = ctx.read(&p0).unwrap();
            assert_ne!(plain, p, "the plain step must change p, {what}");
            assert_eq!(ctx.read(&p1).unwrap(), plain, "p with a clear flag, {what}");
            assert_eq!(ctx.read(&p2).unwrap(), p, "p with a set flag, {what}");
            assert_eq!(ctx.read(&b1).unwrap(), ctx.read(&b0).unwrap(), "buffer with a clear flag, {what}");
            assert_eq!(ctx.read(&b2).unwrap(), b, "buffer with a set flag, {what}");
        }
    }
}
