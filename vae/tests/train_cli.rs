//! The `train` binary as a user runs it: a resumed run ends exactly where an uninterrupted one
//! does, the run folder holds what the README promises, and bad flags are clear errors.

use crate::common;

use std::path::Path;
use std::process::Output;

fn train() -> common::IsolatedCommand {
    common::command(env!("CARGO_BIN_EXE_train"))
}

/// A small, fast configuration: dense VAE on 300 dSprites images at 16×16.
fn small_args(dir: &Path) -> Vec<String> {
    [
        "--arch",
        "dense",
        "--max-images",
        "300",
        "--image-size",
        "16",
        "--batch-size",
        "32",
        "--z-dim",
        "4",
        "--threads",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--run-dir".to_string(), dir.display().to_string()])
    .collect()
}

fn model_tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let contents = nn::checkpoint::read_safetensors(path).unwrap();
    let mut v: Vec<(String, Vec<f32>)> =
        contents.tensors.iter().map(|(n, t)| (n.clone(), t.to_vec_f32().unwrap())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A `--device gpu` run that failed for want of an adapter is skipped (with the reason printed),
/// unless `VAE_REQUIRE_GPU=1` (CI) makes that a failure.
fn skipped_for_want_of_a_gpu(out: &std::process::Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    let skip =
        !out.status.success() && std::env::var("VAE_REQUIRE_GPU").as_deref() != Ok("1") && err.contains("adapter");
    if skip {
        eprintln!("skipped: no GPU adapter ({err})");
    }
    skip
}

#[test]
fn a_gpu_run_without_xdg_runtime_dir_prints_no_error_line_and_leaves_no_folder_behind() {
    // Mesa's Wayland probe prints an error line when XDG_RUNTIME_DIR is unset; the binary gives
    // itself a private folder for it (in TMPDIR, here a scratch folder) and removes it at exit.
    let tmp = common::scratch("tmpdir");
    let (_scratch, d) = common::run_dir("gpu-no-xdg");
    let out = train()
        .args(small_args(&d))
        .args(["--epochs", "1", "--device", "gpu"])
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    if skipped_for_want_of_a_gpu(&out) {
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.to_lowercase().contains("error"), "a good run prints no error line:\n{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

#[test]
fn a_resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    let ((_scratch_a, a), (_scratch_b, b)) = (common::run_dir("straight"), common::run_dir("resumed"));
    let ok = train().args(small_args(&a)).args(["--epochs", "2"]).status().unwrap();
    assert!(ok.success());
    let ok = train().args(small_args(&b)).args(["--epochs", "1"]).status().unwrap();
    assert!(ok.success());
    let ok = train()
        .args(["--resume", &b.join("last.safetensors").display().to_string(), "--epochs", "2"])
        .status()
        .unwrap();
    assert!(ok.success());
    let (ta, tb) = (model_tensors(&a.join("last.safetensors")), model_tensors(&b.join("last.safetensors")));
    assert_eq!(ta.len(), tb.len());
    for ((na, va), (nb, vb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(va == vb, "{na} differs after resuming");
    }
    let csv = std::fs::read_to_string(b.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header + one row per epoch:\n{csv}");
}

#[test]
fn the_run_folder_holds_config_metrics_checkpoints_and_pictures() {
    let (_scratch, d) = common::run_dir("folder");
    let ok = train().args(small_args(&d)).args(["--epochs", "1"]).status().unwrap();
    assert!(ok.success());
    for f in [
        "config.json",
        "metrics.csv",
        "last.safetensors",
        "best.safetensors",
        "recon_epoch001.png",
        "samples_epoch001.png",
        "loss.png",
    ] {
        assert!(d.join(f).is_file(), "missing {f}");
    }
    let img = image::open(d.join("recon_epoch001.png")).unwrap();
    assert!(img.width() > 16 * 8 && img.height() > 16 * 2, "grid of 8 originals over 8 reconstructions");
}

#[test]
fn unknown_flag_values_are_clear_errors() {
    for (flag, value, expect) in [
        ("--arch", "vgg", "--arch"),
        ("--dataset", "imagenet", "imagenet"),
        ("--recon", "l1", "--recon"),
        ("--split", "10:1", "--split"),
    ] {
        let (_scratch, bad) = common::run_dir("bad");
        let out = train().args([flag, value, "--run-dir", &bad.display().to_string()]).output().unwrap();
        assert!(!out.status.success(), "{flag} {value} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{flag} {value}: {err}");
    }
}

#[test]
fn an_input_size_the_preset_cannot_take_names_the_preset() {
    let out = train()
        .args(["--arch", "conv", "--dataset", "dsprites", "--image-size", "20", "--max-images", "50"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("multiples of 8"), "{err}");
}

#[test]
fn training_runs_on_the_gpu_device_when_an_adapter_exists() {
    let (_scratch, d) = common::run_dir("gpu");
    let out = train().args(small_args(&d)).args(["--epochs", "1", "--device", "gpu"]).output().unwrap();
    if skipped_for_want_of_a_gpu(&out) {
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("device: gpu"));
    assert!(d.join("last.safetensors").is_file() && d.join("recon_epoch001.png").is_file());
}

/// `train` on the CPU with its kernels measured (the default, which `common::command` turns
/// off), keeping its choices in `cache_dir`: one epoch of [`small_args`] in `cache_dir/name`,
/// with the run's stdout, stderr and provenance.json.
fn measured_cpu_run(cache_dir: &Path, name: &str, extra: &[&str]) -> (String, String, String) {
    let d = cache_dir.join(name);
    let mut cmd = train();
    cmd.env_remove("VAE_CPU_KERNELS").env("VAE_KERNEL_CACHE", cache_dir.join("kernel-choices.tsv"));
    let out = cmd.args(small_args(&d)).args(["--epochs", "1", "--device", "cpu"]).args(extra).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert!(out.status.success(), "{stderr}");
    (stdout, stderr, std::fs::read_to_string(d.join("provenance.json")).unwrap_or_default())
}

/// The f32 GEMM kernel a provenance.json names, with how it was chosen: `("avx2-6x16-kc512", "measured")`.
fn gemm_kernel_in(provenance: &str) -> (String, String) {
    let line = provenance.lines().find(|l| l.contains("f32 GEMM kernel: ")).unwrap_or_else(|| panic!("{provenance}"));
    let choice = line.split("f32 GEMM kernel: ").nth(1).unwrap().trim_end_matches([',', '"']);
    let (kernel, how) = choice.split_once(" (").unwrap();
    (kernel.to_string(), how.trim_end_matches(')').to_string())
}

#[test]
fn a_cpu_run_measures_its_gemm_kernel_once_per_machine_and_names_it_in_provenance() {
    let scratch = common::scratch("cpu-kernel-cache");
    let (stdout, _, provenance) = measured_cpu_run(scratch.path(), "first", &[]);
    assert!(stdout.contains("tuning: timing the f32 GEMM kernels"), "{stdout}");
    let (kernel, how) = gemm_kernel_in(&provenance);
    assert_eq!(how, "measured");
    assert!(tensor::cpu::gemm::f32_kernel_names().contains(&kernel.as_str()), "{kernel}");
    assert!(provenance.contains(&format!("\"cpu_kernel\": \"{kernel}\"")), "{provenance}");
    let cache = std::fs::read_to_string(scratch.path().join("cpu-kernel-choices.tsv")).unwrap();
    assert!(cache.contains(&format!("\tevery f32 product\t{kernel}\n")), "{cache}");
    // The same machine again: the kept choice, nothing timed.
    let (stdout, _, again) = measured_cpu_run(scratch.path(), "second", &[]);
    assert!(!stdout.contains("tuning:"), "{stdout}");
    assert_eq!(gemm_kernel_in(&again), (kernel, how));
}

#[test]
fn a_kernel_cache_cut_short_or_from_another_machine_is_not_trusted() {
    let scratch = common::scratch("cpu-kernel-cache-bad");
    let cache = scratch.path().join("cpu-kernel-choices.tsv");
    // Another machine's choice of a kernel that exists: not used here, and said so.
    std::fs::write(&cache, "Some Other CPU (GenuineIntel, family 6, model 143), avx2+fma avx512f, 2 threads\tevery f32 product\tportable-4x8\n")
        .unwrap();
    let (stdout, stderr, _) = measured_cpu_run(scratch.path(), "other", &[]);
    assert!(stderr.contains("measured on other machines"), "{stderr}");
    assert!(stdout.contains("tuning: timing the f32 GEMM kernels"), "{stdout}");
    assert!(
        std::fs::read_to_string(&cache).unwrap().contains("Some Other CPU"),
        "the other machine's line was dropped"
    );
    // This machine's line cut short mid-name: not trusted, measured again.
    let kept = std::fs::read_to_string(&cache).unwrap();
    std::fs::write(&cache, &kept[..kept.len() - 4]).unwrap();
    let (stdout, stderr, provenance) = measured_cpu_run(scratch.path(), "torn", &[]);
    assert!(stderr.contains("unreadable line"), "{stderr}");
    assert!(stdout.contains("tuning: timing the f32 GEMM kernels"), "{stdout}");
    assert_eq!(gemm_kernel_in(&provenance).1, "measured");
}

#[test]
fn a_pinned_cpu_gemm_kernel_runs_untimed_and_is_named_in_provenance() {
    let scratch = common::scratch("cpu-kernel-pinned");
    let (stdout, _, provenance) = measured_cpu_run(scratch.path(), "pinned", &["--cpu-gemm", "portable-4x8"]);
    assert!(!stdout.contains("tuning: timing the f32 GEMM kernels"), "{stdout}");
    assert_eq!(gemm_kernel_in(&provenance), ("portable-4x8".to_string(), "pinned".to_string()));
    let (stdout, _, provenance) = measured_cpu_run(scratch.path(), "rule", &["--cpu-kernels", "rule"]);
    assert!(!stdout.contains("tuning:"), "{stdout}");
    assert_eq!(gemm_kernel_in(&provenance).1, "rule");
}

#[test]
fn a_gemm_kernel_this_cpu_does_not_have_is_refused_by_flag_before_any_work() {
    let (_scratch, d) = common::run_dir("cpu-gemm-unknown");
    let out = train().args(small_args(&d)).args(["--cpu-gemm", "avx3-1x1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--cpu-gemm") && stderr.contains("\"avx3-1x1\"") && stderr.contains("portable-4x8"),
        "{stderr}"
    );
    assert!(!d.exists(), "a run folder was made for a refused kernel");
}

/// One epoch of the `conv` preset on 300 dSprites images at 32×32 on the CPU in `dir`, its
/// kernels measured (the default, which `common::command` turns off) with the cache beside
/// `cache`; the run's stdout and its metrics.csv without the seconds column.
fn conv_cpu_run(dir: &Path, cache: &Path, extra: &[&str]) -> (String, Vec<Vec<String>>) {
    let mut cmd = train();
    cmd.env_remove("VAE_CPU_KERNELS").env("VAE_KERNEL_CACHE", cache);
    let args = ["--arch", "conv", "--max-images", "300", "--image-size", "32", "--batch-size", "32", "--z-dim", "4"];
    let out = cmd.args(args).args(["--epochs", "1", "--device", "cpu", "--threads", "2"]).args(extra);
    let out = out.arg("--run-dir").arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let without_seconds =
        |line: &str| line.split(',').enumerate().filter(|(i, _)| *i != 2).map(|(_, v)| v.to_string()).collect();
    (String::from_utf8_lossy(&out.stdout).to_string(), csv.lines().skip(1).map(without_seconds).collect())
}

/// The convolution choices (`CLASS: CUT`) a run's provenance lists, each with how it was made.
fn convolution_choices(run: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(run.join("provenance.json")).unwrap();
    let p: serde_json::Value = serde_json::from_str(&text).unwrap();
    let lines = p["invocations"][0]["kernel_choices"].as_array().unwrap();
    lines
        .iter()
        .filter_map(|l| l.as_str()?.strip_suffix(')')?.split_once(" ("))
        .filter(|(choice, _)| choice.starts_with("conv2d"))
        .map(|(choice, how)| (choice.to_string(), how.to_string()))
        .collect()
}

#[test]
fn a_run_replaying_another_runs_kernel_choices_repeats_its_numbers_bit_for_bit_and_times_nothing() {
    let scratch = common::scratch("cpu-kernels-from");
    let here = scratch.path().join("here").join("kernel-choices.tsv");
    conv_cpu_run(&scratch.path().join("measured"), &here, &[]);
    // "Another machine": every cut this one measured, turned to another, in its cache.
    let cache = here.with_file_name("cpu-kernel-choices.tsv");
    let flipped: String = std::fs::read_to_string(&cache)
        .unwrap()
        .lines()
        .map(|line| match line.rsplit_once('\t') {
            Some((rest, "per-image")) => format!("{rest}\tside-by-side\n"),
            Some((rest, "side-by-side" | "side-by-side-dw-rows")) => format!("{rest}\tper-image\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&cache, flipped).unwrap();
    let other = scratch.path().join("other");
    let (stdout, theirs) = conv_cpu_run(&other, &here, &[]);
    assert!(!stdout.contains("tuning:"), "the flipped cache was measured again: {stdout}");
    let (_, by_rule) = conv_cpu_run(&scratch.path().join("rule"), &here, &["--cpu-kernels", "rule"]);
    assert_ne!(by_rule, theirs, "the other choices give the rule's bits: this test could not fail");

    // Replayed with an empty cache of its own: their choices, nothing timed, their numbers.
    let fresh = scratch.path().join("fresh").join("kernel-choices.tsv");
    let replay = scratch.path().join("replay");
    let (stdout, ours) = conv_cpu_run(&replay, &fresh, &["--cpu-kernels-from", other.to_str().unwrap()]);
    assert!(!stdout.contains("tuning:") && stdout.contains("kernels: replaying"), "{stdout}");
    assert_eq!(ours, theirs);
    let mine: Vec<_> =
        convolution_choices(&replay).into_iter().map(|(choice, how)| (choice, how == "replayed")).collect();
    let expected: Vec<_> = convolution_choices(&other).into_iter().map(|(choice, _)| (choice, true)).collect();
    assert!(!expected.is_empty());
    assert_eq!(mine, expected, "provenance names each replayed choice as replayed");
    assert!(!fresh.with_file_name("cpu-kernel-choices.tsv").exists(), "a replay wrote a kernel cache");
}

#[test]
fn a_runs_provenance_names_the_kernel_choices_it_ran_not_every_one_its_machine_kept() {
    let scratch = common::scratch("cpu-kernels-its-own");
    let cache = scratch.path().join("kernel-choices.tsv");
    let conv = scratch.path().join("conv");
    conv_cpu_run(&conv, &cache, &[]);
    assert!(!convolution_choices(&conv).is_empty(), "the conv run measured no convolution");
    // A dense model on the same machine, its cache holding the conv run's choices: none is its own.
    let (_, _, provenance) = measured_cpu_run(scratch.path(), "dense", &[]);
    assert!(provenance.contains("f32 GEMM kernel: "), "the dense run lists no kernel choices: {provenance}");
    assert_eq!(convolution_choices(&scratch.path().join("dense")), vec![], "{provenance}");
}

#[test]
fn replaying_a_folder_that_is_no_run_is_refused_naming_the_flag_and_file_before_any_work() {
    let (scratch, d) = common::run_dir("cpu-kernels-from-nothing");
    let empty = scratch.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = train().args(small_args(&d)).args(["--cpu-kernels-from", empty.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--cpu-kernels-from") && stderr.contains("provenance.json"), "{stderr}");
    assert!(stderr.contains("not a run folder"), "{stderr}");
    assert!(!d.exists(), "a run folder was made for a refused replay");
}

/// `train` on the GPU with its kernels measured (the default, which `common::command` turns
/// off), keeping its choices in `cache`: one epoch of [`small_args`] in `scratch/name`, with the
/// process's output and the run's provenance.json.
fn measured_gpu_run(scratch: &Path, cache: &Path, name: &str, extra: &[&str]) -> (Output, String) {
    let d = scratch.join(name);
    let mut cmd = train();
    cmd.env_remove("VAE_GPU_KERNELS").env("VAE_KERNEL_CACHE", cache);
    let out = cmd.args(small_args(&d)).args(["--epochs", "1", "--device", "gpu"]).args(extra).output().unwrap();
    (out, std::fs::read_to_string(d.join("provenance.json")).unwrap_or_default())
}

#[test]
fn gpu_runs_measure_their_kernels_once_per_machine_and_name_their_choices_in_provenance() {
    let scratch = common::scratch("kernel-cache");
    let cache = scratch.path().join("choices.tsv");
    let run = |name: &str, extra: &[&str]| measured_gpu_run(scratch.path(), &cache, name, extra);
    let (first, provenance) = run("first", &[]);
    if skipped_for_want_of_a_gpu(&first) {
        return;
    }
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("tuning: timing the GEMM tiles ("), "{stdout}");
    assert!(provenance.contains("(measured)"), "{provenance}");
    // The same machine again: every choice comes from the cache, nothing is timed.
    let (second, again) = run("second", &[]);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success() && !stdout.contains("tuning:"), "{stdout}");
    assert!(again.contains("(measured)"), "{again}");
    // A cache cut short mid-line: the torn line is not trusted, and says so.
    let kept = std::fs::read_to_string(&cache).unwrap();
    std::fs::write(&cache, &kept[..kept.len() - 4]).unwrap();
    let (torn, _) = run("torn", &[]);
    assert!(torn.status.success() && String::from_utf8_lossy(&torn.stderr).contains("unreadable line"));
    // A pinned tile wins, and provenance says which.
    let (pinned, provenance) = run("pinned", &["--gemm-tile", "wide128"]);
    assert!(pinned.status.success() && !String::from_utf8_lossy(&pinned.stdout).contains("tuning:"));
    assert!(provenance.contains("gemm tile: pinned wide128"), "{provenance}");
}

#[test]
fn a_gpu_run_with_its_kernels_by_the_rules_times_nothing_and_says_so_in_provenance() {
    let scratch = common::scratch("kernel-rules");
    let cache = scratch.path().join("choices.tsv");
    let (out, provenance) = measured_gpu_run(scratch.path(), &cache, "rule", &["--gpu-kernels", "rule"]);
    if skipped_for_want_of_a_gpu(&out) {
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("(--gpu-kernels rule)") && !stdout.contains("tuning:"), "{stdout}");
    assert!(provenance.contains("\"gemm tile: size rule\"") && !provenance.contains("(measured)"), "{provenance}");
    assert!(!cache.exists(), "a run by the rules wrote the kernel cache");
}

#[test]
fn a_gpu_runs_convolution_rungs_are_timed_or_pinned_and_named_in_provenance() {
    let scratch = common::scratch("conv-rungs");
    let run = |name: &str, extra: &[&str]| {
        let d = scratch.path().join(name);
        let mut cmd = train();
        cmd.env_remove("VAE_GPU_KERNELS").env("VAE_KERNEL_CACHE", scratch.path().join("choices.tsv"));
        cmd.args(["--arch", "basic", "--image-size", "16", "--max-images", "24", "--batch-size", "8", "--z-dim", "4"]);
        let out = cmd.args(["--epochs", "1", "--device", "gpu", "--run-dir"]).arg(&d).args(extra).output().unwrap();
        let provenance = std::fs::read_to_string(d.join("provenance.json")).unwrap_or_default();
        (out, provenance)
    };
    let (tuned, provenance) = run("tuned", &[]);
    if skipped_for_want_of_a_gpu(&tuned) {
        return;
    }
    let stdout = String::from_utf8_lossy(&tuned.stdout);
    assert!(tuned.status.success(), "{}", String::from_utf8_lossy(&tuned.stderr));
    assert!(stdout.contains("tuning: timing the convolution's rungs (conv-rung/forward/"), "{stdout}");
    assert!(provenance.contains("\"convolution rung forward/"), "{provenance}");
    let (pinned, provenance) = run("pinned", &["--conv-rung", "tiled16"]);
    let stdout = String::from_utf8_lossy(&pinned.stdout);
    assert!(pinned.status.success() && stdout.contains("every convolution on the tiled16 rung"), "{stdout}");
    assert!(provenance.contains("\"convolution rung: pinned tiled16\""), "{provenance}");
    assert!(!provenance.contains("convolution rung forward/"), "a pinned run lists no measured rung: {provenance}");
}

#[test]
fn a_profiled_gpu_run_reports_its_launches_and_its_peak_gpu_memory() {
    let (_scratch, d) = common::run_dir("gpu-profile");
    let out = train().args(small_args(&d)).args(["--epochs", "1", "--device", "gpu", "--profile"]).output().unwrap();
    if skipped_for_want_of_a_gpu(&out) {
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("GPU work per step:"), "{stdout}");
    let peak: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("GPU memory: peak ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no GPU memory line in:\n{stdout}"));
    assert!(peak > 0.0, "a run that trained used no GPU memory: {stdout}");
}

#[test]
fn a_run_resumed_on_the_gpu_ends_where_an_uninterrupted_gpu_run_does() {
    let ((_scratch_a, a), (_scratch_b, b)) = (common::run_dir("gpu-straight"), common::run_dir("gpu-resumed"));
    let out = train().args(small_args(&a)).args(["--epochs", "2", "--device", "gpu"]).output().unwrap();
    if skipped_for_want_of_a_gpu(&out) {
        return;
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ok = train().args(small_args(&b)).args(["--epochs", "1", "--device", "gpu"]).status().unwrap();
    assert!(ok.success());
    // The checkpoint is read onto the CPU; parameters and Adam's moments must land on the GPU.
    let out = train()
        .args(["--resume", &b.join("last.safetensors").display().to_string(), "--epochs", "2", "--device", "gpu"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("device: gpu"));
    let (ta, tb) = (model_tensors(&a.join("last.safetensors")), model_tensors(&b.join("last.safetensors")));
    assert_eq!(ta.len(), tb.len());
    for ((na, va), (nb, vb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(va == vb, "{na} differs after resuming on the GPU");
    }
}
