//! The study binaries as a user runs them, on tiny runs: `eval` writes its pictures and
//! numbers, `classify` writes a classifier that `train --pretrained-encoder` and
//! `eval --classifier` accept, `sweep` writes one table and one plot, and bad flags are
//! errors that name the flag.

use crate::common;

use std::path::Path;
use std::process::Output;

fn bin(name: &str) -> common::IsolatedCommand {
    let path = match name {
        "train" => env!("CARGO_BIN_EXE_train"),
        "eval" => env!("CARGO_BIN_EXE_eval"),
        "classify" => env!("CARGO_BIN_EXE_classify"),
        _ => env!("CARGO_BIN_EXE_sweep"),
    };
    common::command(path)
}

fn ok(out: Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "command failed:\n{text}");
    text
}

fn failure(out: Output) -> String {
    assert!(!out.status.success(), "command should have failed");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A 1-epoch `conv` VAE on 300 dSprites images at 16×16.
fn tiny_run(dir: &Path) {
    let args = ["--arch", "conv", "--max-images", "300", "--image-size", "16", "--batch-size", "32", "--z-dim", "4"];
    ok(bin("train").args(args).args(["--epochs", "1", "--threads", "2", "--run-dir"]).arg(dir).output().unwrap());
}

fn metrics(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn eval_writes_every_picture_and_the_test_metrics() {
    let (_scratch, d) = common::run_dir("eval");
    tiny_run(&d);
    ok(bin("eval")
        .args(["--max-test", "25", "--samples", "30", "--tsne-points", "25", "--threads", "2", "--run"])
        .arg(&d)
        .output()
        .unwrap());
    let e = d.join("eval");
    for f in [
        "recon.png",
        "samples.png",
        "traversal.png",
        "interpolation.png",
        "features_1.png",
        "tsne.png",
        "noise.png",
        "metrics.json",
        "metrics.md",
    ] {
        assert!(e.join(f).exists(), "{f} missing");
    }
    let m = metrics(&e.join("metrics.json"));
    for k in [
        "test_neg_elbo",
        "test_recon",
        "test_kl",
        "mig_discretized",
        "laplacian_var_samples",
        "laplacian_var_reconstructions",
    ] {
        let v = m[k].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite(), "{k} = {v}");
    }
    let mig = m["mig_discretized"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&mig), "MIG {mig}");
    // −ELBO = recon + KL for β = 1.
    let (l, r, k) =
        (m["test_loss"].as_f64().unwrap(), m["test_recon"].as_f64().unwrap(), m["test_kl"].as_f64().unwrap());
    assert!((l - (r + k)).abs() < 1e-3 * l.abs().max(1.0), "{l} vs {r} + {k}");
}

#[test]
fn eval_errors_name_the_flag() {
    let (_scratch, d) = common::run_dir("eval-errors");
    let err = failure(bin("eval").arg("--run").arg(d.join("nope")).output().unwrap());
    assert!(err.contains("--run") && err.contains("config.json"), "{err}");
    tiny_run(&d);
    let err = failure(bin("eval").args(["--what", "pictures", "--run"]).arg(&d).output().unwrap());
    assert!(err.contains("--what") && err.contains("traverse"), "{err}");
    let err = failure(bin("eval").args(["--images", "0,999", "--run"]).arg(&d).output().unwrap());
    assert!(err.contains("--images") && err.contains("999"), "{err}");
    let err =
        failure(bin("eval").args(["--mix-classes", "a,b", "--what", "interp", "--run"]).arg(&d).output().unwrap());
    assert!(err.contains("--mix-classes"), "{err}");
    // The mixing is part of the interp section: asked for without it, it would silently not run.
    let err = failure(bin("eval").args(["--mix-classes", "0,1", "--what", "recon", "--run"]).arg(&d).output().unwrap());
    assert!(err.contains("--mix-classes") && err.contains("interp"), "{err}");
    let err =
        failure(bin("eval").args(["--what", "tsne", "--tsne-points", "20000", "--run"]).arg(&d).output().unwrap());
    assert!(err.contains("--tsne-points 20000") && err.contains("5000"), "{err}");
}

#[test]
fn eval_runs_on_the_gemm_kernel_it_is_pinned_to_and_names_it_in_the_metrics() {
    let (_scratch, d) = common::run_dir("eval-cpu-gemm");
    tiny_run(&d);
    let scores = |kernel: &str| {
        let out = d.join(format!("eval-{kernel}"));
        ok(bin("eval")
            .args(["--what", "metrics", "--max-test", "25", "--samples", "30", "--threads", "2"])
            .args(["--cpu-gemm", kernel, "--run"])
            .arg(&d)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap());
        metrics(&out.join("metrics.json"))
    };
    let portable = scores("portable-4x8");
    assert_eq!(portable["cpu_gemm_kernel"], "portable-4x8 (pinned)", "{portable}");
    assert_eq!(scores("portable-4x8")["test_neg_elbo"], portable["test_neg_elbo"], "one kernel, the same bits");
}

#[test]
fn eval_and_classify_refuse_a_gemm_kernel_this_cpu_does_not_have_before_any_work() {
    let (_scratch, d) = common::run_dir("eval-cpu-gemm-unknown");
    // No run folder exists: the kernel is refused before the run is read.
    let err = failure(bin("eval").args(["--cpu-gemm", "avx3-1x1", "--run"]).arg(d.join("nope")).output().unwrap());
    assert!(err.contains("--cpu-gemm") && err.contains("\"avx3-1x1\"") && err.contains("portable-4x8"), "{err}");
    let err = failure(
        bin("classify")
            .args(["--cpu-gemm", "avx3-1x1", "--dataset", "folder", "--data-dir"])
            .arg(d.join("nope"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("--cpu-gemm") && err.contains("\"avx3-1x1\""), "{err}");
}

#[test]
fn classify_writes_a_classifier_that_train_and_eval_accept() {
    let fm = Path::new("/usr/share/datasets/fashion-mnist");
    if !fm.exists() {
        eprintln!("skipped: Fashion-MNIST is not installed at {}", fm.display());
        return;
    }
    let (_scratch, d) = common::run_dir("classify");
    let clf = d.join("clf.safetensors");
    let out = ok(bin("classify")
        .args(["--max-images", "120", "--image-size", "32", "--epochs", "1", "--batch-size", "16", "--threads", "2"])
        .arg("--out")
        .arg(&clf)
        .output()
        .unwrap());
    assert!(out.contains("test accuracy"), "{out}");
    assert!(clf.exists() && clf.with_extension("json").exists() && clf.with_extension("csv").exists());
    let common = ["--arch", "resnet18", "--dataset", "fashion-mnist", "--image-size", "32", "--max-images", "120"];
    let run = d.join("vae");
    let out = ok(bin("train")
        .args(common)
        .args(["--epochs", "1", "--batch-size", "16", "--z-dim", "8", "--threads", "2", "--freeze-encoder"])
        .arg("--pretrained-encoder")
        .arg(&clf)
        .arg("--run-dir")
        .arg(&run)
        .output()
        .unwrap());
    assert!(out.contains("loaded") && out.contains("froze"), "{out}");
    ok(bin("eval")
        .args(["--what", "metrics,features", "--max-test", "10", "--samples", "20", "--threads", "2", "--classifier"])
        .arg(&clf)
        .arg("--run")
        .arg(&run)
        .output()
        .unwrap());
    let m = metrics(&run.join("eval/metrics.json"));
    assert!(m["classifier_frechet_test_vs_samples"].as_f64().is_some_and(f64::is_finite), "{m}");
    assert_eq!(m["sample_class_histogram"].as_array().map(Vec::len), Some(10), "{m}");
    assert!(run.join("eval/features_5.png").exists(), "stem + four stages");
    let err = failure(bin("classify").args(["--arch", "resnet50", "--max-images", "50"]).output().unwrap());
    assert!(err.contains("'resnet50'") && err.contains("--arch"), "{err}");
    let err = failure(bin("classify").args(["--arch", "dense", "--max-images", "50"]).output().unwrap());
    assert!(err.contains("--arch dense: dense is not a classifier preset"), "{err}");
}

#[test]
fn sweep_writes_one_table_and_one_plot_and_keeps_finished_points() {
    let (_scratch, root) = common::run_dir("sweep");
    let args = |extra: &[&str]| {
        let mut c = bin("sweep");
        c.args(["--name", "tiny", "--grid", "beta=0,1", "--root"]).arg(&root).args(extra).args([
            "--",
            "--arch",
            "dense",
            "--max-images",
            "200",
            "--image-size",
            "16",
            "--z-dim",
            "3",
            "--epochs",
            "2",
            "--threads",
            "2",
        ]);
        c
    };
    ok(args(&[]).output().unwrap());
    let dir = root.join("tiny");
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(table.contains("| beta=0 | 0 | ") && table.contains("| beta=1 | 1 | "), "{table}");
    let csv = std::fs::read_to_string(dir.join("table.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(dir.join("val_loss.png").exists());
    let again = ok(args(&[]).output().unwrap());
    assert!(again.contains("2 done or left alone, 0 to run"), "{again}");
    let err = failure(bin("sweep").args(["--name", "x", "--grid", "beta"]).output().unwrap());
    assert!(err.contains("--grid 'beta'"), "{err}");
}
