use tensor::ops::conv_transpose2d::*;
use tensor::rng::Rng;
use tensor::*;

fn rand(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::rand_uniform(shape, -1.0, 1.0, DType::F64, rng)
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_vec_f64().unwrap().iter().zip(b.to_vec_f64().unwrap()).map(|(x, y)| x * y).sum()
}

/// conv_transpose2d by its definition, each input pixel scattering into the output.
fn naive(x: &Tensor, w: &Tensor, p: &ConvTranspose2dParams, out_hw: [usize; 2]) -> Vec<f64> {
    let ([n, ci_n, h, wd], [_, co_n, kh, kw]) =
        (<[usize; 4]>::try_from(x.shape()).unwrap(), <[usize; 4]>::try_from(w.shape()).unwrap());
    let (xv, wv) = (x.to_vec_f64().unwrap(), w.to_vec_f64().unwrap());
    let [oh, ow] = out_hw;
    let mut y = vec![0.0; n * co_n * oh * ow];
    for b in 0..n {
        for ci in 0..ci_n {
            for i in 0..h {
                for j in 0..wd {
                    for co in 0..co_n {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let oy = (i * p.stride[0] + ki * p.dilation[0]) as isize - p.padding[0] as isize;
                                let ox = (j * p.stride[1] + kj * p.dilation[1]) as isize - p.padding[1] as isize;
                                if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                    continue;
                                }
                                y[((b * co_n + co) * oh + oy as usize) * ow + ox as usize] +=
                                    xv[((b * ci_n + ci) * h + i) * wd + j] * wv[((ci * co_n + co) * kh + ki) * kw + kj];
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

#[test]
fn conv_transpose2d_k4_s2_p1_doubles_and_matches_scatter() {
    let mut rng = Rng::new(30);
    let (x, w) = (rand(&[3, 4, 5, 7], &mut rng), rand(&[4, 2, 4, 4], &mut rng));
    let p = ConvTranspose2dParams::new(2, 1);
    let y = conv_transpose2d(&x, &w, None, &p).unwrap();
    assert_eq!(y.shape(), &[3, 2, 10, 14]);
    let want = naive(&x, &w, &p, [10, 14]);
    for (a, b) in y.to_vec_f64().unwrap().iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

#[test]
fn output_padding_adds_bias_only_rows_and_columns() {
    let mut rng = Rng::new(31);
    let (x, w, b) = (rand(&[1, 2, 4, 3], &mut rng), rand(&[2, 3, 3, 3], &mut rng), rand(&[3], &mut rng));
    let p = ConvTranspose2dParams::new(2, 1).with_output_padding(1);
    let y = conv_transpose2d(&x, &w, Some(&b), &p).unwrap();
    // OH = 3·2 − 2 + 2 + 1 + 1 = 8, OW = 2·2 − 2 + 2 + 1 + 1 = 6.
    assert_eq!(y.shape(), &[1, 3, 8, 6]);
    let (yv, bv) = (y.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    let want = naive(&x, &w, &p, [8, 6]);
    for (i, (a, n)) in yv.iter().zip(&want).enumerate() {
        assert!((a - (n + bv[i / 48])).abs() < 1e-12);
    }
    // With dilation 2 > stride 1, output_padding 1 is allowed and grows the output by one.
    let p = ConvTranspose2dParams::new(1, 1).with_dilation(2).with_output_padding(1);
    let y = conv_transpose2d(&x, &w, None, &p).unwrap();
    assert_eq!(y.shape(), &[1, 3, 7, 6]);
}

#[test]
fn conv_transpose2d_backward_ops_are_adjoints_of_the_forward() {
    let mut rng = Rng::new(32);
    for p in [
        ConvTranspose2dParams::new(2, 1).with_output_padding(1),
        ConvTranspose2dParams { stride: [1, 2], padding: [2, 1], output_padding: [1, 0], dilation: [2, 1] },
    ] {
        let (x, w, b) = (rand(&[3, 3, 5, 4], &mut rng), rand(&[3, 2, 3, 3], &mut rng), rand(&[2], &mut rng));
        let y = conv_transpose2d(&x, &w, None, &p).unwrap();
        let gy = rand(y.shape(), &mut rng);
        let lhs = dot(&y, &gy);
        // backward_data recovers H, W from grad_y (including the dilation > stride case).
        let dx = conv_transpose2d_backward_data(&gy, &w, &p).unwrap();
        let dw = conv_transpose2d_backward_weight(&gy, &x, w.shape(), &p).unwrap();
        assert_eq!((dx.shape(), dw.shape()), (x.shape(), w.shape()));
        assert!((lhs - dot(&x, &dx)).abs() <= 1e-10 * lhs.abs(), "{p:?}");
        assert!((lhs - dot(&w, &dw)).abs() <= 1e-10 * lhs.abs(), "{p:?}");
        let with_b = dot(&conv_transpose2d(&x, &w, Some(&b), &p).unwrap(), &gy);
        let db = conv_transpose2d_backward_bias(&gy).unwrap();
        assert!((with_b - lhs - dot(&b, &db)).abs() <= 1e-10 * with_b.abs().max(1.0), "{p:?}");
    }
}

#[test]
fn conv_transpose2d_f32_matches_f64() {
    let mut rng = Rng::new(33);
    let (x, w, b) = (rand(&[2, 4, 4, 4], &mut rng), rand(&[4, 3, 4, 4], &mut rng), rand(&[3], &mut rng));
    let p = ConvTranspose2dParams::new(2, 1);
    let y64 = conv_transpose2d(&x, &w, Some(&b), &p).unwrap();
    let f32s = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let y32 = conv_transpose2d(&f32s(&x), &f32s(&w), Some(&f32s(&b)), &p).unwrap();
    assert_eq!(y32.dtype(), DType::F32);
    for (a, b) in y32.to_vec_f64().unwrap().iter().zip(y64.to_vec_f64().unwrap()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn bad_conv_transpose2d_arguments_are_errors_not_panics() {
    let x = Tensor::zeros(&[2, 4, 5, 5], DType::F32);
    let w = Tensor::zeros(&[4, 3, 3, 3], DType::F32);
    let p = ConvTranspose2dParams::new(2, 1);
    let is_shape = |r: Result<Tensor>| matches!(r, Err(TensorError::Shape { .. }));
    let is_invalid = |r: Result<Tensor>| matches!(r, Err(TensorError::Invalid { .. }));
    let e = conv_transpose2d(&x, &Tensor::zeros(&[3, 3, 3, 3], DType::F32), None, &p).unwrap_err().to_string();
    assert!(e.contains("input [2, 4, 5, 5] has 4 channels but weight [3, 3, 3, 3] expects 3"), "{e}");
    assert!(is_shape(conv_transpose2d(&Tensor::zeros(&[4, 5, 5], DType::F32), &w, None, &p)));
    assert!(is_shape(conv_transpose2d(&x, &w, Some(&Tensor::zeros(&[4], DType::F32)), &p)));
    assert!(is_invalid(conv_transpose2d(&x, &w, None, &ConvTranspose2dParams { stride: [0, 2], ..p })));
    assert!(is_invalid(conv_transpose2d(&x, &w, None, &p.with_dilation(0))));
    // output_padding must be below stride or dilation: 2 ≥ max(2, 1) fails, 1 passes.
    let e = conv_transpose2d(&x, &w, None, &p.with_output_padding(2)).unwrap_err().to_string();
    assert!(e.contains("output_padding [2, 2] must be smaller than either stride [2, 2] or dilation [1, 1]"), "{e}");
    assert!(conv_transpose2d(&x, &w, None, &p.with_output_padding(1)).is_ok());
    // Output size ≤ 0: 1×1 input, 1×1 kernel, padding 1 gives −1.
    let e = conv_transpose2d(
        &Tensor::zeros(&[1, 4, 1, 1], DType::F32),
        &Tensor::zeros(&[4, 3, 1, 1], DType::F32),
        None,
        &ConvTranspose2dParams::new(1, 1),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("output size -1×-1 is not positive: input 1×1 with kernel 1×1"), "{e}");
    assert!(matches!(
        conv_transpose2d(&x, &w.to_dtype(DType::F64).unwrap(), None, &p),
        Err(TensorError::DType { op: "conv_transpose2d", expected: DType::F32, got: DType::F64 })
    ));
    // Backward: grad_y that no input size produces, wrong channels, wrong weight shape.
    let gy = Tensor::zeros(&[2, 3, 9, 9], DType::F32); // forward output of x with p
    assert_eq!(conv_transpose2d_backward_data(&gy, &w, &p).unwrap().shape(), x.shape());
    assert!(is_shape(conv_transpose2d_backward_data(&Tensor::zeros(&[2, 3, 10, 9], DType::F32), &w, &p)));
    assert!(is_shape(conv_transpose2d_backward_data(&Tensor::zeros(&[2, 4, 9, 9], DType::F32), &w, &p)));
    assert!(is_invalid(conv_transpose2d_backward_data(&gy, &w, &ConvTranspose2dParams { stride: [0, 2], ..p })));
    assert!(conv_transpose2d_backward_weight(&gy, &x, &[4, 3, 3, 3], &p).is_ok());
    assert!(is_shape(conv_transpose2d_backward_weight(&gy, &x, &[4, 2, 3, 3], &p)));
    assert!(is_shape(conv_transpose2d_backward_weight(&gy, &x, &[5, 3, 3, 3], &p)));
    assert!(is_shape(conv_transpose2d_backward_weight(&gy, &x, &[4, 3, 3], &p)));
    assert!(is_shape(conv_transpose2d_backward_bias(&Tensor::zeros(&[3, 9], DType::F32))));
}
