//! The context itself: adapter info, transfers, the buffer pool, the pipeline cache,
//! command batching and limit errors.

use crate::common;

use common::ops;
use common::*;
use gpu::GpuError;

#[test]
fn adapter_info_names_the_device() {
    let Some(ctx) = ctx() else { return };
    let info = ctx.info();
    assert!(!info.name.is_empty());
    assert!(info.limits.max_storage_buffer_binding_size >= 1 << 20);
    assert!(info.limits.max_compute_workgroups_per_dimension >= 65535);
    println!("adapter: {info} software={}", ctx.is_software());
    assert!(!gpu::available_adapters().is_empty());
    if ctx.is_software() {
        // `auto` must not pick a software rasteriser over the CPU kernels.
        match gpu::Context::new(gpu::AdapterPreference::HardwareOnly) {
            Err(GpuError::NoAdapter(why)) => assert!(why.contains(&info.name), "{why}"),
            Ok(other) => assert!(!other.is_software()),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn opening_a_context_leaves_the_process_environment_alone() {
    // A library does not rewrite its host's environment (an earlier version pointed
    // XDG_RUNTIME_DIR at a shared, predictable folder). Checked in a child process started
    // without the variable, since this one may have it; it needs no adapter to run.
    const CHILD: &str = "GPU_TEST_ENVIRONMENT_CHILD";
    const NAME: &str = "opening_a_context_leaves_the_process_environment_alone";
    if std::env::var_os(CHILD).is_some() {
        let _ = gpu::available_adapters();
        let _ = gpu::Context::new(gpu::AdapterPreference::AnyIncludingSoftware);
        assert_eq!(std::env::var_os("XDG_RUNTIME_DIR"), None, "the gpu library set XDG_RUNTIME_DIR");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--test-threads=1"]) // a unique name: the filter needs no module prefix
        .env(CHILD, "1")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 passed"), "the child did not run the check:\n{stdout}");
}

#[test]
fn upload_then_read_round_trips_exactly() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for n in [0, 1, 7, 65, 1000, 100_003] {
        let x = rng.signed(n);
        let b = ctx.upload(&x).unwrap();
        assert_eq!(b.len(), n);
        assert_eq!(ctx.read(&b).unwrap(), x, "seed {}", rng.seed);
    }
    let z = ctx.zeros(33).unwrap();
    assert_eq!(ctx.read(&z).unwrap(), vec![0.0; 33]);
}

#[test]
fn read_together_returns_each_buffer_as_read_alone_in_one_read_back() {
    // A context of its own: it counts read-backs, which tests sharing a context would add to.
    let Some(ctx) = &own_ctx() else { return };
    let mut rng = Rng::new();
    let whole: Vec<Vec<f32>> = [3usize, 0, 1, 1031].iter().map(|&n| rng.signed(n)).collect();
    let buffers: Vec<_> = whole.iter().map(|v| ctx.upload(v).unwrap()).collect();
    // A window that does not start at its buffer's first element, as a strided tensor's.
    let align = ctx.window_alignment();
    let window = ctx.window(&buffers[3], align, 5).unwrap();
    let mut bufs: Vec<&gpu::GpuBuffer> = buffers.iter().collect();
    bufs.push(&window);
    let before = ctx.counters();
    let got = ctx.read_together(&bufs).unwrap();
    assert_eq!(ctx.counters().since(&before).reads, 1);
    let mut want = whole.clone();
    want.push(whole[3][align..align + 5].to_vec());
    assert_eq!(got, want, "seed {}", rng.seed);
}

#[test]
fn alloc_above_max_buffer_size_is_a_limit_error_not_a_panic() {
    let Some(ctx) = ctx() else { return };
    let limit = ctx.limits().max_buffer_size;
    let len = (limit / 4) as usize + 1;
    match ctx.alloc(len) {
        Err(GpuError::LimitExceeded { what, requested, limit: l }) => {
            assert!(what.contains("max_buffer_size"), "{what}");
            assert_eq!((requested, l), (len as u64 * 4, limit));
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    // and a 1-D grid beyond max_compute_workgroups_per_dimension² is refused too
    let max = ctx.limits().max_compute_workgroups_per_dimension as u64;
    assert!(matches!(ctx.grid_1d("test", max * max + 1), Err(GpuError::LimitExceeded { .. })));
    assert!(matches!(ctx.grid_3d("test", [1, max + 1, 1]), Err(GpuError::LimitExceeded { .. })));
}

#[test]
fn a_buffer_larger_than_one_binding_is_created_but_a_kernel_binding_it_whole_is_a_limit_error() {
    let Some(ctx) = ctx() else { return };
    let len = ctx.max_binding_len() + ctx.window_alignment() + 3;
    let big = ctx.alloc(len).unwrap();
    let out = ctx.alloc(len).unwrap();
    match ops::unary(ctx, ops::NEG, 0.0, &big, &out) {
        Err(GpuError::LimitExceeded { what, requested, limit }) => {
            assert!(what.contains("max_storage_buffer_binding_size") && what.contains("unary"), "{what}");
            assert_eq!((requested, limit), (len as u64 * 4, ctx.limits().max_storage_buffer_binding_size));
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    // Filling, copying and reading go window by window or need no binding: all work.
    ctx.fill(&big, 2.5).unwrap();
    ctx.copy(&big, &out).unwrap();
    let back = ctx.read(&out).unwrap();
    assert_eq!(back.len(), len);
    assert!(back.iter().all(|&v| v == 2.5), "every element of a buffer beyond one binding is filled");
    drop((big, out));
    ctx.trim_pool();
}

#[test]
fn a_window_binds_only_its_own_range_of_the_buffer() {
    let Some(ctx) = ctx() else { return };
    let a = ctx.window_alignment();
    let buf = ctx.upload(&vec![1.0; 7 * a + 5]).unwrap();
    // Two windows of one buffer, filled by the same kernel: each gets its own bind group.
    ctx.fill(&ctx.window(&buf, 2 * a, a + 3).unwrap(), -4.0).unwrap();
    ctx.fill(&ctx.window(&buf, 5 * a, 2 * a).unwrap(), 9.0).unwrap();
    let got = ctx.read(&buf).unwrap();
    for (i, &v) in got.iter().enumerate() {
        let want = if (2 * a..3 * a + 3).contains(&i) {
            -4.0
        } else if (5 * a..7 * a).contains(&i) {
            9.0
        } else {
            1.0
        };
        assert_eq!(v, want, "element {i} (windows at {}.. and {}..)", 2 * a, 5 * a);
    }
    // A window reads back, and copies, only its elements.
    let w = ctx.window(&buf, 5 * a, a + 1).unwrap();
    assert_eq!(ctx.read(&w).unwrap(), vec![9.0; a + 1]);
    let dst = ctx.zeros(2 * a + 1).unwrap();
    ctx.copy(&w, &ctx.window(&dst, a, a + 1).unwrap()).unwrap();
    let want: Vec<f32> = (0..2 * a + 1).map(|i| if i >= a { 9.0 } else { 0.0 }).collect();
    assert_eq!(ctx.read(&dst).unwrap(), want, "copied into elements {a}..{}", 2 * a + 1);
}

#[test]
fn a_window_must_start_aligned_and_lie_inside_its_buffer() {
    let Some(ctx) = ctx() else { return };
    let a = ctx.window_alignment();
    let buf = ctx.alloc(4 * a).unwrap();
    assert!(ctx.window(&buf, 0, 4 * a).is_ok());
    let e = ctx.window(&buf, 3 * a, a + 1).unwrap_err();
    assert!(e.to_string().contains("of a buffer of"), "{e}");
    if a > 1 {
        let e = ctx.window(&buf, 1, 2).unwrap_err();
        assert!(e.to_string().contains(&format!("a multiple of {a}")), "{e}");
    }
    // Two windows of one buffer cannot be copied between (wgpu copies between buffers).
    let e = ctx.copy(&ctx.window(&buf, 0, a).unwrap(), &ctx.window(&buf, a, a).unwrap()).unwrap_err();
    assert!(e.to_string().contains("two windows of one buffer"), "{e}");
}

#[test]
fn dropped_buffers_are_reused_by_the_pool() {
    let Some(ctx) = ctx() else { return };
    // An odd size class no other test uses, so concurrent tests do not take the buffer.
    let len = 77_777;
    let first = ctx.alloc(len).unwrap();
    let id = first.id();
    drop(first);
    let again = ctx.alloc(len - 3).unwrap(); // same size class
    assert_eq!(again.id(), id);
    assert!(ctx.pool_stats().reused >= 1);
}

#[test]
fn a_reused_buffer_is_not_overwritten_before_earlier_launches_read_it() {
    let Some(ctx) = ctx() else { return };
    let len = 55_555;
    let x: Vec<f32> = (0..len).map(|i| i as f32).collect();
    let out = ctx.alloc(len).unwrap();
    {
        let xb = ctx.upload(&x).unwrap();
        ops::unary(ctx, ops::NEG, 0.0, &xb, &out).unwrap();
    } // xb returns to the pool while the launch is still pending
    let y = ctx.upload(&vec![7.0; len]).unwrap(); // likely the same buffer
    let got = ctx.read(&out).unwrap();
    assert_eq!(got, x.iter().map(|v| -v).collect::<Vec<_>>());
    assert_eq!(ctx.read(&y).unwrap(), vec![7.0; len]);
}

#[test]
fn pipelines_compile_once_and_launches_batch_until_flush() {
    let Some(ctx) = ctx() else { return };
    let x = ctx.upload(&[1.0, 2.0, 3.0]).unwrap();
    let out = ctx.alloc(3).unwrap();
    ops::unary(ctx, ops::EXP, 0.0, &x, &out).unwrap();
    let compiled = ctx.compiled_pipelines();
    for _ in 0..10 {
        ops::unary(ctx, ops::EXP, 0.0, &x, &out).unwrap();
    }
    assert_eq!(ctx.compiled_pipelines(), compiled, "a repeated launch compiled again");
    ctx.flush().unwrap();
    ctx.synchronize().unwrap();
}

#[test]
fn each_element_wise_op_compiles_a_pipeline_of_its_own_once() {
    let Some(_) = ctx() else { return };
    // A context of its own: the shared one compiles pipelines for every test running beside this.
    let ctx = gpu::Context::new(gpu::AdapterPreference::AnyIncludingSoftware).unwrap();
    let x = ctx.upload(&[1.0, -2.0, 3.0]).unwrap();
    let out = ctx.alloc(3).unwrap();
    ops::unary(&ctx, ops::NEG, 0.0, &x, &out).unwrap();
    let after_neg = ctx.compiled_pipelines();
    ops::unary(&ctx, ops::EXP, 0.0, &x, &out).unwrap();
    assert_eq!(ctx.compiled_pipelines(), after_neg + 1, "exp did not get a pipeline of its own");
    ops::unary(&ctx, ops::EXP, 0.0, &x, &out).unwrap();
    ops::unary(&ctx, ops::NEG, 0.0, &x, &out).unwrap();
    assert_eq!(ctx.compiled_pipelines(), after_neg + 1, "a second launch of an op compiled again");
    assert_eq!(ctx.read(&out).unwrap(), vec![-1.0, 2.0, -3.0], "neg ran another op's pipeline");
}

#[test]
fn an_output_bound_as_an_input_too_is_refused() {
    let Some(ctx) = ctx() else { return };
    let x = ctx.upload(&[1.0, 2.0]).unwrap();
    let err = ops::unary(ctx, ops::NEG, 0.0, &x, &x).unwrap_err();
    assert!(matches!(err, GpuError::InvalidArgument { .. }), "{err}");
}

#[test]
fn counters_count_each_launch_transfer_and_pool_miss_exactly() {
    let Some(_) = ctx() else { return };
    // A context of its own: the shared one's counters move with every test running beside this.
    let ctx = gpu::Context::new(gpu::AdapterPreference::AnyIncludingSoftware).unwrap();
    let start = ctx.counters();
    let x = ctx.upload(&[1.0, -2.0, 3.0]).unwrap();
    let y = ctx.alloc(3).unwrap();
    ops::unary(&ctx, ops::NEG, 0.0, &x, &y).unwrap();
    let z = ctx.zeros(5).unwrap();
    ctx.copy(&y, &z).unwrap();
    assert_eq!(ctx.read(&z).unwrap(), vec![-1.0, 2.0, -3.0, 0.0, 0.0]);
    let c = ctx.counters().since(&start);
    assert_eq!((c.dispatches, c.workgroups), (1, 1));
    assert_eq!((c.uploads, c.bytes_uploaded), (1, 12));
    assert_eq!((c.reads, c.bytes_read), (1, 5 * 4));
    assert_eq!((c.copies, c.bytes_copied), (1, 12));
    // Buffers are created in size classes of at least 256 bytes; zeros clears the 5 elements.
    assert_eq!((c.buffers_created, c.bytes_created), (3, 3 * 256));
    assert_eq!(c.bytes_cleared, 5 * 4);
    assert_eq!((c.submits, c.waits), (1, 0));
    assert!(c.device_wait_ns > 0, "the read-back blocked on the device, and that time was not counted");

    // The same work again reuses the dropped buffers: no pool misses.
    drop((x, y, z));
    let again = ctx.counters();
    let x = ctx.upload(&[4.0, 5.0, 6.0]).unwrap();
    let y = ctx.alloc(3).unwrap();
    ops::unary(&ctx, ops::NEG, 0.0, &x, &y).unwrap();
    ctx.synchronize().unwrap();
    let c = ctx.counters().since(&again);
    assert_eq!((c.buffers_created, c.bytes_created), (0, 0));
    assert_eq!((c.dispatches, c.submits, c.waits, c.reads), (1, 1, 1, 0));
    assert!(c.device_wait_ns > 0, "the wait's time was not counted");
    let idle = ctx.counters();
    ops::unary(&ctx, ops::NEG, 0.0, &x, &y).unwrap();
    assert_eq!(ctx.counters().since(&idle).device_wait_ns, 0, "recording a launch does not wait");
}

#[test]
fn each_launch_reads_its_own_parameters_across_passes_transfers_and_automatic_submits() {
    use gpu::kernels::elementwise::{copy_strided, View};
    let Some(ctx) = ctx() else { return };
    // One launch per element, each told by its parameters (the views' offsets) which element
    // to copy: more launches than the parameter ring holds, so it is refilled after an
    // automatic submit, with transfers between launches closing the open compute pass.
    let n = gpu::context::DISPATCHES_PER_SUBMIT + 300;
    let src: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
    let src_buf = ctx.upload(&src).unwrap();
    let dst = poisoned(ctx, n);
    let side = ctx.alloc(4).unwrap();
    for i in 0..n {
        let (from, to) = (View::strided(&src_buf, &[1], i), View::strided(&dst, &[1], i));
        copy_strided(ctx, &from, &to, &[1]).unwrap();
        if i % 997 == 0 {
            ctx.write(&side, &[i as f32; 4]).unwrap();
        }
    }
    assert_eq!(ctx.read(&dst).unwrap(), src, "a launch read another launch's parameters");
    let last_written = ((n - 1) / 997 * 997) as f32;
    assert_eq!(ctx.read(&side).unwrap(), vec![last_written; 4]);
}

#[test]
fn a_repeated_launch_on_the_same_buffers_reuses_its_bind_group() {
    let Some(_) = ctx() else { return };
    // A context of its own: the shared one's counters move with every test running beside this.
    let ctx = gpu::Context::new(gpu::AdapterPreference::AnyIncludingSoftware).unwrap();
    let x = ctx.upload(&[1.0, -2.0, 3.0]).unwrap();
    let (y, w) = (ctx.alloc(3).unwrap(), ctx.alloc(3).unwrap());
    let start = ctx.counters();
    ops::unary(&ctx, ops::NEG, 0.0, &x, &y).unwrap();
    // Another op of the same binding shape on the same buffers shares the bind group too.
    ops::unary(&ctx, ops::EXP, 0.0, &x, &y).unwrap();
    ops::unary(&ctx, ops::NEG, 0.0, &x, &y).unwrap();
    assert_eq!(ctx.counters().since(&start).bind_groups_created, 1);
    // Other buffers, or the same ones in other roles, are other bind groups.
    ops::unary(&ctx, ops::NEG, 0.0, &x, &w).unwrap();
    ops::unary(&ctx, ops::NEG, 0.0, &y, &x).unwrap();
    assert_eq!(ctx.counters().since(&start).bind_groups_created, 3);
    assert_eq!(ctx.read(&x).unwrap(), vec![1.0, -2.0, 3.0]);
    assert_eq!(ctx.read(&w).unwrap(), vec![-1.0, 2.0, -3.0]);
}

#[test]
fn a_pool_buffer_lent_again_at_another_length_binds_that_length() {
    let Some(_) = ctx() else { return };
    let ctx = gpu::Context::new(gpu::AdapterPreference::AnyIncludingSoftware).unwrap();
    let x = ctx.upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    let out = ctx.alloc(4).unwrap();
    ops::unary(&ctx, ops::NEG, 0.0, &x, &out).unwrap();
    let id = x.id();
    drop(x);
    let shorter = ctx.upload(&[5.0, 6.0, 7.0]).unwrap();
    assert_eq!(shorter.id(), id, "the pool did not lend the same buffer again");
    let (out3, before) = (poisoned(&ctx, 3), ctx.counters());
    ops::unary(&ctx, ops::NEG, 0.0, &shorter, &out3).unwrap();
    assert_eq!(ctx.counters().since(&before).bind_groups_created, 1, "a 4-element binding served a 3-element buffer");
    assert_eq!(ctx.read(&out3).unwrap(), vec![-5.0, -6.0, -7.0]);
}

#[test]
fn buffers_the_pool_releases_leave_the_bind_group_cache() {
    let Some(_) = ctx() else { return };
    let ctx = gpu::Context::new(gpu::AdapterPreference::AnyIncludingSoftware).unwrap();
    let x = ctx.upload(&[1.0, 2.0]).unwrap();
    let kept = ctx.alloc(2).unwrap();
    {
        let released = ctx.alloc(2).unwrap();
        ops::unary(&ctx, ops::NEG, 0.0, &x, &released).unwrap();
        ops::unary(&ctx, ops::NEG, 0.0, &x, &kept).unwrap();
    }
    assert_eq!(ctx.cached_bind_groups(), 2);
    // Trimming releases the idle buffer to the driver; the next launch evicts its bind group
    // (which would otherwise keep the buffer's memory alive) and keeps the other.
    ctx.trim_pool();
    ops::unary(&ctx, ops::EXP, 0.0, &x, &kept).unwrap();
    assert_eq!(ctx.cached_bind_groups(), 1);
    let fresh = ctx.alloc(2).unwrap();
    ops::unary(&ctx, ops::NEG, 0.0, &x, &fresh).unwrap();
    assert_eq!(ctx.read(&fresh).unwrap(), vec![-1.0, -2.0]);
}

#[test]
fn launches_are_submitted_every_few_dozen_so_the_gpu_starts_while_the_host_records() {
    let Some(_) = ctx() else { return };
    let ctx = gpu::Context::new(gpu::AdapterPreference::AnyIncludingSoftware).unwrap();
    let per_submit = gpu::context::DISPATCHES_PER_SUBMIT;
    let x = ctx.upload(&[1.0, -2.0, 3.0]).unwrap();
    let y = ctx.alloc(3).unwrap();
    let start = ctx.counters();
    for _ in 0..2 * per_submit + 5 {
        ops::unary(&ctx, ops::NEG, 0.0, &x, &y).unwrap();
    }
    assert_eq!(ctx.counters().since(&start).submits, 2, "the full batches were not submitted as they filled");
    assert_eq!(ctx.pending_dispatches(), 5);
    assert_eq!(ctx.read(&y).unwrap(), vec![-1.0, 2.0, -3.0]);
}

#[test]
fn a_context_submits_every_count_of_launches_it_was_given_each_reading_its_own_parameters() {
    use gpu::kernels::elementwise::{copy_strided, View};
    let Some(_) = ctx() else { return };
    // From the recording thread and from a thread of its own, whose writes of the ring must
    // keep their place between the submits.
    for (count, on_a_thread) in [(1, false), (5, false), (100, false), (1, true), (5, true), (100, true)] {
        let policy = gpu::SubmitPolicy { dispatches: count, on_a_thread };
        let ctx = gpu::Context::with_submit_policy(gpu::AdapterPreference::AnyIncludingSoftware, policy).unwrap();
        assert_eq!((ctx.dispatches_per_submit(), ctx.submits_on_a_thread()), (count, on_a_thread));
        // One launch per element, each told by its parameters which element to copy, across
        // several refills of a ring of `count` slots.
        let n = 2 * count + count / 2;
        let src: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 + 1.0).collect();
        let (src_buf, dst) = (ctx.upload(&src).unwrap(), poisoned(&ctx, n));
        ctx.flush().unwrap(); // the poisoning fill is a launch too
        let start = ctx.counters();
        for i in 0..n {
            let (from, to) = (View::strided(&src_buf, &[1], i), View::strided(&dst, &[1], i));
            copy_strided(&ctx, &from, &to, &[1]).unwrap();
        }
        assert_eq!(ctx.counters().since(&start).submits, 2, "submits of {n} launches at {count} a submit");
        assert_eq!(ctx.pending_dispatches(), count / 2, "launches pending at {count} a submit");
        assert_eq!(ctx.read(&dst).unwrap(), src, "a launch read another launch's parameters ({count} a submit)");
    }
}

#[test]
fn packed_buffers_start_aligned_and_each_reaches_only_its_own_elements() {
    let Some(ctx) = ctx() else { return };
    let a = ctx.window_alignment();
    let lens = [a + 3, 1, 2 * a, 5];
    let bufs = ctx.alloc_packed(&lens).unwrap();
    for (i, (b, &len)) in bufs.iter().zip(&lens).enumerate() {
        assert_eq!(b.len(), len, "buffer {i}");
        assert!(b.offset().is_multiple_of(a), "buffer {i} starts at element {}", b.offset());
        ctx.fill(b, i as f32 + 1.0).unwrap();
    }
    for (i, b) in bufs.iter().enumerate() {
        assert_eq!(ctx.read(b).unwrap(), vec![i as f32 + 1.0; b.len()], "buffer {i}");
    }
    // The whole pack spans every buffer and the padding between them, which the fills missed.
    let refs: Vec<&gpu::GpuBuffer> = bufs.iter().collect();
    let whole = ctx.packed_whole(&refs).unwrap();
    ctx.clear(&whole).unwrap();
    for (i, b) in bufs.iter().enumerate() {
        assert_eq!(ctx.read(b).unwrap(), vec![0.0; b.len()], "buffer {i} after clearing the whole pack");
    }
    let last = &bufs[lens.len() - 1];
    assert_eq!(whole.len(), last.offset() + last.len());
}

#[test]
fn packed_whole_is_only_for_all_of_one_pack_in_order() {
    let Some(ctx) = ctx() else { return };
    let bufs = ctx.alloc_packed(&[3, 4, 5]).unwrap();
    let other = ctx.alloc_packed(&[3, 4, 5]).unwrap();
    let loose = ctx.alloc(4).unwrap();
    let (b0, b1, b2) = (&bufs[0], &bufs[1], &bufs[2]);
    assert!(ctx.packed_whole(&[b0, b1, b2]).is_some());
    for (what, list) in [
        ("a subset", vec![b0, b1]),
        ("another order", vec![b1, b0, b2]),
        ("two packs", vec![b0, b1, &other[2]]),
        ("a pool buffer", vec![b0, &loose, b2]),
        ("nothing", vec![]),
    ] {
        assert!(ctx.packed_whole(&list).is_none(), "{what}");
    }
}

#[test]
fn a_packed_span_is_laid_out_as_a_fresh_pack_of_its_buffers() {
    let Some(ctx) = ctx() else { return };
    let a = ctx.window_alignment();
    let lens = [a + 3, 1, 2 * a + 5, 7];
    let bufs = ctx.alloc_packed(&lens).unwrap();
    for (i, b) in bufs.iter().enumerate() {
        ctx.fill(b, i as f32 + 1.0).unwrap();
    }
    // Buffers 1 and 2 as one span, against a fresh pack of the same lengths filled alike.
    let span = ctx.packed_span(&[&bufs[1], &bufs[2]]).unwrap();
    let fresh = ctx.alloc_packed(&lens[1..3]).unwrap();
    let fresh_whole = ctx.packed_whole(&[&fresh[0], &fresh[1]]).unwrap();
    assert_eq!(span.len(), fresh_whole.len());
    ctx.clear(&fresh_whole).unwrap();
    ctx.fill(&fresh[0], 2.0).unwrap();
    ctx.fill(&fresh[1], 3.0).unwrap();
    let got = ctx.read(&span).unwrap();
    let want = ctx.read(&fresh_whole).unwrap();
    // The padding between the two is whatever it held; their elements sit at the same offsets.
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(*w == 0.0 || g == w, "element {i}: span {g}, fresh pack {w}");
    }
    assert_eq!(got[..lens[1]], vec![2.0; lens[1]][..]);
    // Clearing the span clears its buffers and nothing either side.
    ctx.clear(&span).unwrap();
    let after: Vec<Vec<f32>> = bufs.iter().map(|b| ctx.read(b).unwrap()).collect();
    assert_eq!(after[0], vec![1.0; lens[0]]);
    assert_eq!(after[1], vec![0.0; lens[1]]);
    assert_eq!(after[2], vec![0.0; lens[2]]);
    assert_eq!(after[3], vec![4.0; lens[3]]);
    for (what, list) in [
        ("a gap", vec![&bufs[0], &bufs[2]]),
        ("another order", vec![&bufs[2], &bufs[1]]),
        ("two packs", vec![&bufs[1], &fresh[1]]),
        ("nothing", vec![]),
    ] {
        assert!(ctx.packed_span(&list).is_none(), "{what}");
    }
}

#[test]
fn a_pack_goes_back_to_the_pool_when_its_last_buffer_is_dropped() {
    // A context of its own: the pool's counts move with every test running beside this.
    let ctx = gpu::Context::new(gpu::AdapterPreference::AnyIncludingSoftware).unwrap();
    let mut bufs = ctx.alloc_packed(&[100, 200]).unwrap();
    let idle = ctx.pool_stats().idle_buffers;
    let last = bufs.pop().unwrap();
    drop(bufs);
    assert_eq!(ctx.pool_stats().idle_buffers, idle, "a buffer of the pack is still alive");
    ctx.fill(&last, 2.0).unwrap();
    assert_eq!(ctx.read(&last).unwrap(), vec![2.0; 200]);
    drop(last);
    assert_eq!(ctx.pool_stats().idle_buffers, idle + 1);
}

#[test]
fn a_lowered_binding_limit_is_enforced_and_a_raised_one_is_not_granted() {
    let Some(own) = ctx() else { return };
    let pref = gpu::AdapterPreference::AnyIncludingSoftware;
    let small = gpu::Context::with_binding_limit(pref, 4096 + 3).unwrap();
    assert_eq!(small.max_binding_len(), 1024, "rounded down to the offset alignment, in f32");
    let x = small.upload(&[1.0; 1025]).unwrap();
    let y = small.alloc(1025).unwrap();
    match ops::unary(&small, ops::NEG, 0.0, &x, &y) {
        Err(GpuError::LimitExceeded { limit, .. }) => assert_eq!(limit, 4096),
        other => panic!("expected LimitExceeded beyond the lowered limit, got {other:?}"),
    }
    // Filling goes a window at a time, so it works beyond the lowered limit.
    small.fill(&y, -1.0).unwrap();
    assert_eq!(small.read(&y).unwrap(), vec![-1.0; 1025]);
    let raised = gpu::Context::with_binding_limit(pref, u64::MAX).unwrap();
    assert_eq!(raised.max_binding_len(), own.max_binding_len());
}

#[test]
fn a_lowered_buffer_limit_refuses_larger_buffers_and_caps_the_binding_limit() {
    let Some(own) = ctx() else { return };
    let pref = gpu::AdapterPreference::AnyIncludingSoftware;
    let small = gpu::Context::with_buffer_limit(pref, 8192 + 3, 1 << 20).unwrap();
    assert_eq!(small.max_buffer_len(), 2048, "rounded down to the offset alignment, in f32");
    assert_eq!(small.max_binding_len(), 2048, "a binding holds no more than a buffer");
    assert_eq!(small.alloc(2048).unwrap().len(), 2048);
    match small.alloc(2049) {
        Err(GpuError::LimitExceeded { limit, .. }) => assert_eq!(limit, 8192),
        other => panic!("expected LimitExceeded beyond the lowered buffer limit, got {other:?}"),
    }
    let both = gpu::Context::with_buffer_limit(pref, 8192, 4096).unwrap();
    assert_eq!((both.max_buffer_len(), both.max_binding_len()), (2048, 1024));
    let raised = gpu::Context::with_buffer_limit(pref, u64::MAX, u64::MAX).unwrap();
    assert_eq!(raised.max_buffer_len(), own.max_buffer_len());
}

#[test]
fn copy_range_copies_bits_between_any_element_offsets_and_refuses_ranges_outside_a_buffer() {
    let Some(ctx) = ctx() else { return };
    // u32 bit patterns that are denormals and NaNs as f32: a copy must not touch them.
    let src: Vec<u32> = (0..37u32).map(|i| if i % 2 == 0 { i } else { 0x7fc0_0000 | i }).collect();
    let src_buf = ctx.upload_u32(&src).unwrap();
    let dst_buf = ctx.upload_u32(&[0xdead_beef; 41]).unwrap();
    // From an odd element to an odd element: no binding could start at either.
    ctx.copy_range(&src_buf, 3, &dst_buf, 5, 29).unwrap();
    let got = ctx.read_u32(&dst_buf).unwrap();
    assert_eq!(&got[5..34], &src[3..32], "the copied range");
    assert!(got[..5].iter().chain(&got[34..]).all(|&v| v == 0xdead_beef), "elements outside the range: {got:x?}");
    for (from, to, len) in [(10, 0, 28), (0, 13, 29), (usize::MAX, 0, 2)] {
        match ctx.copy_range(&src_buf, from, &dst_buf, to, len) {
            Err(GpuError::InvalidArgument { .. }) => {}
            other => panic!("copy of {len} from {from} to {to}: expected an InvalidArgument error, got {other:?}"),
        }
    }
}

#[test]
fn read_together_stages_buffers_larger_together_than_one_buffer_in_several_reads() {
    if ctx().is_none() {
        return;
    }
    let pref = gpu::AdapterPreference::AnyIncludingSoftware;
    let small = gpu::Context::with_buffer_limit(pref, 8192, 8192).unwrap();
    let data: Vec<Vec<f32>> = (0..3).map(|k| (0..1500).map(|i| (k * 1500 + i) as f32).collect()).collect();
    let bufs: Vec<gpu::GpuBuffer> = data.iter().map(|d| small.upload(d).unwrap()).collect();
    let refs: Vec<&gpu::GpuBuffer> = bufs.iter().collect();
    // 6,000 bytes each: no two fit one staging buffer of 8,192.
    let before = small.counters();
    assert_eq!(small.read_together(&refs).unwrap(), data);
    assert_eq!(small.counters().since(&before).reads, 3);
    // Three of 2,000 bytes fit one.
    let before = small.counters();
    let parts: Vec<gpu::BufferWindow> = bufs.iter().map(|b| small.window(b, 0, 500).unwrap()).collect();
    let refs: Vec<&gpu::GpuBuffer> = parts.iter().map(|w| &**w).collect();
    let got = small.read_together(&refs).unwrap();
    assert_eq!(got, data.iter().map(|d| d[..500].to_vec()).collect::<Vec<_>>());
    assert_eq!(small.counters().since(&before).reads, 1);
}

#[test]
fn the_pool_counts_the_bytes_in_use_and_their_peak_by_size_class() {
    // A context of its own: no other test's buffers are live in it.
    let Some(ctx) = own_ctx() else { return };
    let live = || ctx.pool_stats().live_bytes;
    let peak = || ctx.pool_stats().peak_live_bytes;
    assert_eq!((live(), peak()), (0, 0));
    // 1,000 f32 = 4,000 bytes, in the 4,096-byte class; 300 f32 = 1,200 bytes, in 1,280.
    let a = ctx.alloc(1000).unwrap();
    let b = ctx.alloc(300).unwrap();
    assert_eq!((live(), peak()), (4096 + 1280, 4096 + 1280));
    drop(a);
    assert_eq!((live(), peak()), (1280, 4096 + 1280), "an idle buffer is not in use");
    let c = ctx.alloc(1000).unwrap();
    assert_eq!(live(), 4096 + 1280, "a reused buffer is in use again");
    ctx.reset_peak_live_bytes();
    drop((b, c));
    assert_eq!((live(), peak()), (0, 4096 + 1280));
    ctx.reset_peak_live_bytes();
    assert_eq!(peak(), 0);
}

#[test]
fn a_buffer_beyond_the_memory_limit_is_refused_with_an_out_of_memory_error() {
    // A context of its own: the limit counts every buffer of its pool.
    let Some(ctx) = own_ctx() else { return };
    ctx.set_memory_limit(Some(1 << 20));
    let kept = ctx.alloc(100_000).unwrap(); // 400,000 bytes, a class of 7 · 2^16
    let err = ctx.alloc(200_000).unwrap_err();
    let gpu::GpuError::OutOfMemory { requested, in_use, limit } = err.clone() else { panic!("{err}") };
    assert_eq!((requested, in_use, limit), (7 << 17, 7 << 16, Some(1 << 20)));
    let msg = err.to_string();
    assert!(msg.contains("out of memory") && msg.contains("1.0 MiB the limit"), "{msg}");
    // What fits under the limit still comes, and lifting the limit lifts the refusal.
    assert!(ctx.alloc(100_000).is_ok());
    ctx.set_memory_limit(None);
    assert!(ctx.alloc(200_000).is_ok());
    drop(kept);
}

#[test]
fn idle_buffers_are_released_to_make_room_under_the_memory_limit() {
    let Some(ctx) = own_ctx() else { return };
    ctx.set_memory_limit(Some(1 << 20));
    let first = ctx.upload(&vec![1.0; 150_000]).unwrap(); // 600,000 bytes
    assert_eq!(ctx.read(&first).unwrap()[149_999], 1.0);
    drop(first);
    assert!(ctx.pool_stats().idle_bytes > 0, "the dropped buffer is kept for reuse");
    // Another size class: the idle buffer cannot serve it and the two exceed the limit together.
    let second = ctx.upload(&vec![2.0; 200_000]).unwrap();
    assert_eq!(ctx.read(&second).unwrap()[199_999], 2.0);
    let stats = ctx.pool_stats();
    assert_eq!(stats.idle_bytes, 0, "the idle buffer was released");
    assert!(stats.live_bytes <= 1 << 20);
}
