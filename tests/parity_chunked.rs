//! Tensors larger than one GPU buffer against the CPU kernels. A device creates buffers of
//! at most max_buffer_size bytes (4 GiB on an H100), so a larger tensor lies in several
//! buffers, chunks of whole rows of its leading axis (`tensor::GpuStorage`), and the ops that
//! cut their launches into parts end each part where a chunk ends (`tensor/src/gpu_parts/mod.rs`).
//! Every op here runs on a device whose buffers hold at most 4 MiB and whose kernels bind at
//! most 2 MiB (`small_buffer_gpu`), so the 8 MB tensors of `parity_large` lie in three chunks,
//! each bound in parts, on any adapter and in seconds.

use crate::common;
use crate::parity_large::{self as large, X_SHAPE};

use common::parity::*;
use common::rng;
use tensor::ops::conv2d::{conv2d, Conv2dParams};
use tensor::ops::optim::{adam_update, sgd_update, AdamHyper, SgdHyper};
use tensor::{DType, Device, Storage, Tensor, TensorError};

fn buffer_len(gpu: &Device) -> usize {
    gpu.gpu_context().expect("a GPU device").max_buffer_len()
}

/// The device with the lowered buffer limit, and a check that `shape` lies in chunks there.
fn chunking_gpu(shape: &[usize]) -> Option<Device> {
    exceeding(small_buffer_gpu(), gpu::Context::max_buffer_len, shape)
}

/// The chunks of a GPU tensor's storage: (their count, elements per chunk).
fn chunks_of(t: &Tensor) -> (usize, usize) {
    match t.storage() {
        Storage::Gpu(g) => (g.chunks().len(), g.chunk_len()),
        Storage::Cpu(_) | Storage::Reference(_) => panic!("expected a GPU tensor"),
    }
}

#[test]
fn a_tensor_larger_than_one_buffer_lies_in_chunks_of_a_power_of_two_of_whole_rows() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    let x = signed_cpu(&X_SHAPE, &mut rng());
    let xg = up(&x, &gpu);
    let row: usize = X_SHAPE[1..].iter().product();
    let (count, chunk_len) = chunks_of(&xg);
    assert!(chunk_len <= buffer_len(&gpu), "a chunk of {chunk_len} f32 is larger than a buffer");
    assert_eq!(chunk_len % row, 0, "chunks hold whole rows of {row} f32");
    let rows = chunk_len / row;
    assert!(rows.is_power_of_two() && 2 * chunk_len > buffer_len(&gpu), "{rows} rows per chunk");
    assert_eq!(count, X_SHAPE[0].div_ceil(rows), "chunks for {} rows", X_SHAPE[0]);
    assert_eq!(xg.to_vec_f32().unwrap(), x.to_vec_f32().unwrap(), "upload and read back");
    let small = up(&signed_cpu(&[5], &mut rng()), &gpu);
    let both = Tensor::to_vecs_f64(&[&xg, &small]).unwrap();
    assert_eq!(both[0], x.to_vec_f64().unwrap(), "to_vecs_f64 of a chunked tensor");
    assert_eq!(both[1], small.to_vec_f64().unwrap(), "to_vecs_f64 of the one-buffer tensor beside it");
    for value in [0.0, 0.5] {
        let filled = Tensor::full_on(&X_SHAPE, value, DType::F32, &gpu).unwrap();
        assert_eq!(chunks_of(&filled), (count, chunk_len));
        assert!(filled.to_vec_f32().unwrap().iter().all(|&v| v == value as f32), "full_on({value}) fills every chunk");
    }
}

#[test]
fn element_wise_ops_and_strided_copies_over_chunks_match_the_cpu() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    large::element_wise_ops_and_strided_copies_match_the_cpu(&gpu, &X_SHAPE);
}

#[test]
fn a_view_whose_rows_cross_a_chunk_end_is_cut_along_its_next_axis() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    let x = signed_cpu(&X_SHAPE, &mut rng());
    let xg = up(&x, &gpu);
    // 7 rows of 23 images: chunks end every 64 images, inside the rows of this view.
    let regrouped = |t: &Tensor| t.reshape(&[7, 23, 3, 67 * 65]).unwrap().narrow(3, 1, 4000).unwrap().exp().unwrap();
    assert_close("reshape(7, 23, ..).narrow(3, 1, 4000).exp()", &regrouped(&xg), &regrouped(&x), None);
}

#[test]
fn one_element_of_a_chunked_tensor_is_computed_on_and_read_in_place() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    let x = signed_cpu(&X_SHAPE, &mut rng());
    let xg = up(&x, &gpu);
    // Element 2,000,000 lies in the third chunk (chunks of 64 rows of 13,065 elements).
    let element = |t: &Tensor| t.reshape(&[X_SHAPE.iter().product()]).unwrap().narrow(0, 2_000_000, 1).unwrap();
    let scalar = |t: &Tensor| element(t).reshape(&[]).unwrap();
    assert_eq!(scalar(&xg).item().unwrap(), scalar(&x).item().unwrap());
    assert_close("exp of a rank-0 view", &scalar(&xg).exp().unwrap(), &scalar(&x).exp().unwrap(), None);
}

#[test]
fn a_tensor_whose_chunks_do_not_hold_an_ops_rows_is_rechunked_first() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    let mut r = rng();
    let x = signed_cpu(&X_SHAPE, &mut r);
    // Uploaded as rows of one 67 × 65 plane: its chunks end inside images.
    let planes = up(&x.reshape(&[161 * 3, 67 * 65]).unwrap(), &gpu);
    let (_, chunk_len) = chunks_of(&planes);
    assert_ne!(chunk_len % (3 * 67 * 65), 0, "chunks of {chunk_len} f32 hold whole images");
    let w = signed_cpu(&[2, 3, 3, 3], &mut r);
    let p = Conv2dParams { padding: [1, 1], ..Default::default() };
    let got = conv2d(&planes.reshape(&X_SHAPE).unwrap(), &up(&w, &gpu), None, &p).unwrap();
    let scale = conv2d(&abs(&x), &abs(&w), None, &p).unwrap();
    assert_close("conv2d of a tensor chunked by planes", &got, &conv2d(&x, &w, None, &p).unwrap(), Some(&scale));
}

#[test]
fn convolutions_over_chunks_match_the_cpu() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    large::convolutions_match_the_cpu(&gpu);
}

#[test]
fn transposed_convolution_pooling_and_upsampling_over_chunks_match_the_cpu() {
    let Some(gpu) = chunking_gpu(&[40, 2, 134, 130]) else { return };
    large::transposed_convolution_pooling_and_upsampling_match_the_cpu(&gpu);
}

#[test]
fn batch_norm_over_chunks_matches_the_cpu_in_training_and_eval() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    large::batch_norm_matches_the_cpu_in_training_and_eval(&gpu);
}

#[test]
fn reductions_over_chunks_match_the_cpu() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    large::reductions_match_the_cpu(&gpu);
}

#[test]
fn concatenation_into_chunks_matches_the_cpu() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    large::concatenation_matches_the_cpu(&gpu);
}

#[test]
fn index_select_and_index_add_over_chunks_match_the_cpu() {
    let Some(gpu) = chunking_gpu(&X_SHAPE) else { return };
    large::index_ops_match_the_cpu(&gpu);
}

#[test]
fn matrix_products_over_chunks_match_the_cpu() {
    let Some(gpu) = chunking_gpu(&large::LINEAR_X_SHAPE) else { return };
    large::matrix_products_match_the_cpu(&gpu);
}

#[test]
fn optimizer_updates_over_chunks_match_the_cpu() {
    let Some(gpu) = chunking_gpu(&large::PARAM_SHAPE) else { return };
    large::optimizer_updates_match_the_cpu(&gpu);
}

#[test]
fn an_update_whose_gradient_lies_in_other_chunks_than_its_parameter_matches_the_cpu() {
    // A [901, 1200] tensor reshaped to the parameter's [1200, 901] keeps its chunks of 512 rows
    // of 1,200, where the parameter's hold 1,024 rows of 901: the update pairs them chunk by
    // chunk only once the gradient is laid out as the parameter is.
    let shape = [1200, 901];
    let Some(gpu) = chunking_gpu(&shape) else { return };
    let mut r = rng();
    let (mut p, g) = (signed_cpu(&shape, &mut r), signed_cpu(&[901, 1200], &mut r).reshape(&shape).unwrap());
    let (mut pg, gg) = (up(&p, &gpu), up(&g.reshape(&[901, 1200]).unwrap(), &gpu).reshape(&shape).unwrap());
    assert_ne!(chunks_of(&gg), chunks_of(&pg), "the gradient's chunks are the parameter's");
    let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
    let (mut mg, mut vg) = (pg.zeros_like().unwrap(), pg.zeros_like().unwrap());
    let h = AdamHyper { lr: 0.01, step: 1, ..AdamHyper::default() };
    adam_update(&mut p, &g, &mut m, &mut v, &h).unwrap();
    adam_update(&mut pg, &gg, &mut mg, &mut vg, &h).unwrap();
    assert_close("adam: param", &pg, &p, None);
    let h = SgdHyper { lr: 0.05, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false, first_step: true };
    sgd_update(&mut p, &g, None, &h).unwrap();
    sgd_update(&mut pg, &gg, None, &h).unwrap();
    assert_close("sgd: param", &pg, &p, None);
}

#[test]
fn a_convolution_weight_in_chunks_is_refused_naming_the_limit() {
    // Weights are bound whole by every part of a convolution's batch.
    let w_shape = [901, 1200, 1, 1];
    let Some(gpu) = chunking_gpu(&w_shape) else { return };
    let mut r = rng();
    let x = up(&signed_cpu(&[2, 1200, 3, 3], &mut r), &gpu);
    let w = up(&signed_cpu(&w_shape, &mut r), &gpu);
    let e = conv2d(&x, &w, None, &Conv2dParams::default()).unwrap_err();
    assert!(matches!(e, TensorError::Limit { op: "conv2d", .. }), "{e}");
    assert!(e.to_string().contains("max_buffer_size") && e.to_string().contains("lies in 2 buffers"), "{e}");
}

#[test]
fn a_row_larger_than_one_buffer_is_a_limit_error_naming_it() {
    // One image of 2 × 1024 × 1024 f32 = 8 MiB: no chunk of whole rows fits 4 MiB.
    let shape = [3, 2, 1024, 1024];
    let Some(gpu) = chunking_gpu(&shape) else { return };
    for e in [
        Tensor::zeros_on(&shape, DType::F32, &gpu).unwrap_err(),
        Tensor::zeros(&shape, DType::F32).to_device(&gpu).unwrap_err(),
    ] {
        assert!(matches!(e, TensorError::Limit { .. }), "{e}");
        assert!(e.to_string().contains("max_buffer_size") && e.to_string().contains("each of its rows"), "{e}");
    }
}
