//! The `train` binary as a user runs it: a resumed run ends exactly where an uninterrupted one
//! does, the run folder holds what the README promises, and bad flags are clear errors.

use crate::common;

use std::path::Path;

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

#[test]
fn tuned_gpu_runs_measure_once_per_machine_and_name_their_choices_in_provenance() {
    let scratch = common::scratch("kernel-cache");
    let cache = scratch.path().join("choices.tsv");
    let run = |name: &str, extra: &[&str]| {
        let d = scratch.path().join(name);
        let mut cmd = train();
        cmd.env("VAE_KERNEL_CACHE", &cache).args(small_args(&d)).args(["--epochs", "1", "--device", "gpu"]);
        let out = cmd.args(extra).output().unwrap();
        let provenance = std::fs::read_to_string(d.join("provenance.json")).unwrap_or_default();
        (out, provenance)
    };
    let (first, provenance) = run("first", &["--tune-kernels"]);
    if skipped_for_want_of_a_gpu(&first) {
        return;
    }
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("tuning: timing the GEMM tiles for shape class"), "{stdout}");
    assert!(provenance.contains("(measured)"), "{provenance}");
    // The same machine again: every choice comes from the cache, nothing is timed.
    let (second, again) = run("second", &["--tune-kernels"]);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success() && !stdout.contains("tuning:"), "{stdout}");
    assert!(again.contains("(measured)"), "{again}");
    // A cache cut short mid-line: the torn line is not trusted, and says so.
    let kept = std::fs::read_to_string(&cache).unwrap();
    std::fs::write(&cache, &kept[..kept.len() - 4]).unwrap();
    let (torn, _) = run("torn", &["--tune-kernels"]);
    assert!(torn.status.success() && String::from_utf8_lossy(&torn.stderr).contains("unreadable line"));
    // A pinned tile wins, and provenance says which.
    let (pinned, provenance) = run("pinned", &["--tune-kernels", "--gemm-tile", "wide128"]);
    assert!(pinned.status.success() && !String::from_utf8_lossy(&pinned.stdout).contains("tuning:"));
    assert!(provenance.contains("gemm tile: pinned wide128"), "{provenance}");
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
