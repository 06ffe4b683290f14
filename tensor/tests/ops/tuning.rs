//! CPU kernel choices by measurement (`tensor::cpu::tuning`). Turning tuning on is for the whole
//! process, so this module turns it on for the whole `ops` binary: every cut a tuned kernel can
//! choose is a rung the ladder tests hold to the reference, and every test here and beside it
//! still compares with the reference device.

use tensor::cpu::tuning;
use tensor::ops::conv2d::*;
use tensor::rng::Rng;
use tensor::*;

fn close_to_the_reference(got: &Tensor, want: &Tensor) {
    for (g, w) in got.to_vec_f64().unwrap().iter().zip(want.to_vec_f64().unwrap()) {
        assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
    }
}

/// The tuner's choices so far for the classes that start with `class`.
fn choices_for(class: &str) -> Vec<(String, String)> {
    tuning::choices().into_iter().filter(|(c, _)| c.starts_with(class)).collect()
}

#[test]
fn tuned_convolutions_time_their_cuts_once_per_geometry_and_match_the_reference() {
    tuning::enable_tuning(None);
    // Two threads, as on the CI machine: a 6×6 output plane then puts images side by side, so
    // there is a choice to time.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        let mut rng = Rng::new(31);
        let rand = |shape: &[usize], rng: &mut Rng| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F64, rng);
        let (x, w) = (rand(&[16, 3, 12, 12], &mut rng), rand(&[5, 3, 3, 3], &mut rng));
        let p = Conv2dParams { stride: [2, 2], padding: [1, 1], dilation: [1, 1] };
        let on_reference = |t: &Tensor| t.to_device(&Device::Reference).unwrap();
        let y = conv2d(&x, &w, None, &p).unwrap();
        close_to_the_reference(&y, &conv2d(&on_reference(&x), &on_reference(&w), None, &p).unwrap());
        let gy = rand(y.shape(), &mut rng);
        let dw = conv2d_backward_weight(&gy, &x, w.shape(), &p).unwrap();
        let want = conv2d_backward_weight(&on_reference(&gy), &on_reference(&x), w.shape(), &p).unwrap();
        close_to_the_reference(&dw, &want);

        let ours = |c: &[(String, String)]| -> Vec<(String, String)> {
            c.iter().filter(|(class, _)| class.contains("F64 3→5 k3×3 s2×2 p1×1 d1×1 12×12 b16")).cloned().collect()
        };
        let chosen = ours(&tuning::choices());
        let kernels: Vec<&str> = chosen.iter().map(|(class, _)| class.split(' ').next().unwrap()).collect();
        assert_eq!(kernels, ["conv2d_backward_weight", "conv2d_forward"], "{chosen:?}");
        // The forward has the phase grid and the indirect GEMM, the weight gradient images side
        // by side with dW = dy·colᵀ and the channel-blocked operands.
        let is_a_cut_of = |class: &str, cut: &str| {
            cut == "side-by-side"
                || cut == "per-image"
                || (class.starts_with("conv2d_forward ") && ["phase-grid", "indirect"].contains(&cut))
                || (class.starts_with("conv2d_backward_weight ")
                    && ["side-by-side-dw-rows", "channel-blocked"].contains(&cut))
        };
        assert!(chosen.iter().all(|(class, cut)| is_a_cut_of(class, cut)), "{chosen:?}");
        // Met again: the kept choice, no second measurement (the choices do not change).
        conv2d(&x, &w, None, &p).unwrap();
        assert_eq!(ours(&tuning::choices()), chosen);
    });
}

#[test]
fn tuned_backward_data_at_stride_one_times_col2im_the_full_correlation_its_phase_grid_and_winograd_once() {
    tuning::enable_tuning(None);
    let mut rng = Rng::new(37);
    let rand = |shape: &[usize], rng: &mut Rng| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F64, rng);
    let (gy, w) = (rand(&[3, 5, 9, 7], &mut rng), rand(&[5, 4, 3, 3], &mut rng));
    let p = Conv2dParams { stride: [1, 1], padding: [1, 1], dilation: [1, 1] };
    let on_reference = |t: &Tensor| t.to_device(&Device::Reference).unwrap();
    let dx = conv2d_backward_data(&gy, &w, &[3, 4, 9, 7], &p).unwrap();
    close_to_the_reference(
        &dx,
        &conv2d_backward_data(&on_reference(&gy), &on_reference(&w), &[3, 4, 9, 7], &p).unwrap(),
    );

    let ours = || choices_for("conv2d_backward_data F64 4→5 k3×3 s1×1 p1×1 d1×1 9×7 b3");
    let chosen = ours();
    assert_eq!(chosen.len(), 1, "{:?}", tuning::choices());
    let ways = ["col2im", "full-correlation", "phase-grid", "winograd", "indirect"];
    assert!(ways.contains(&chosen[0].1.as_str()), "{chosen:?}");
    conv2d_backward_data(&gy, &w, &[3, 4, 9, 7], &p).unwrap();
    assert_eq!(ours(), chosen, "met again: the kept choice");
}

#[test]
fn a_tuned_3x3_stride_1_forward_times_its_ways_beside_the_cuts_once_and_matches_the_reference() {
    tuning::enable_tuning(None);
    let mut rng = Rng::new(41);
    let rand = |shape: &[usize], rng: &mut Rng| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F64, rng);
    let (x, w, b) = (rand(&[6, 4, 7, 9], &mut rng), rand(&[5, 4, 3, 3], &mut rng), rand(&[5], &mut rng));
    let p = Conv2dParams { stride: [1, 1], padding: [1, 1], dilation: [1, 1] };
    let on_reference = |t: &Tensor| t.to_device(&Device::Reference).unwrap();
    let y = conv2d(&x, &w, Some(&b), &p).unwrap();
    close_to_the_reference(&y, &conv2d(&on_reference(&x), &on_reference(&w), Some(&on_reference(&b)), &p).unwrap());

    let ours = || choices_for("conv2d_forward F64 4→5 k3×3 s1×1 p1×1 d1×1 7×9 b6");
    let chosen = ours();
    assert_eq!(chosen.len(), 1, "{:?}", tuning::choices());
    let forward_cuts = ["side-by-side", "per-image", "phase-grid", "winograd", "indirect"];
    assert!(forward_cuts.contains(&chosen[0].1.as_str()), "{chosen:?}");
    conv2d(&x, &w, Some(&b), &p).unwrap();
    assert_eq!(ours(), chosen, "met again: the kept choice");
}

#[test]
fn tuning_chooses_the_f32_gemm_kernel_among_those_this_cpu_runs_before_any_product() {
    use tensor::cpu::gemm::{f32_kernel_in_use, f32_kernel_names, KernelChoice};
    tuning::enable_tuning(None);
    let (kernel, how) = f32_kernel_in_use();
    assert_eq!(how, KernelChoice::Measured);
    assert!(f32_kernel_names().contains(&kernel), "{kernel}");
    let kept: Vec<(String, String)> =
        tuning::choices().into_iter().filter(|(class, _)| class == tuning::GEMM_KERNEL_CLASS).collect();
    assert_eq!(kept, [(tuning::GEMM_KERNEL_CLASS.to_string(), kernel.to_string())]);
}
