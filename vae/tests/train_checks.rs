//! What `train` refuses and what it promises, as a user meets it: wrong flags are errors before
//! any data is read, a run never reports success without a step, `--resume` honours or refuses
//! each flag (never ignores one), a folder holding another run is never mixed with a new one,
//! the run folder stays consistent with its checkpoint, and a good run prints no error line.
//! Every command runs in a temporary working directory.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use nn::checkpoint::{read_safetensors, write_safetensors, TensorEntry};
use nn::BufferKind;
use tensor::Tensor;

/// `train` run from `cwd`.
fn train(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_train"));
    // The kernels by the rules, as `common::command` sets them (see there why).
    c.current_dir(cwd).env("VAE_CPU_KERNELS", "rule").env("VAE_GPU_KERNELS", "rule");
    c
}

/// A small, fast configuration: dense VAE on 300 dSprites images at 16×16 (250 for training),
/// with the given flags changed.
fn small(changes: &[(&str, &str)]) -> Vec<String> {
    let mut args = vec![];
    for (flag, value) in [
        ("--arch", "dense"),
        ("--max-images", "300"),
        ("--image-size", "16"),
        ("--batch-size", "32"),
        ("--z-dim", "4"),
        ("--threads", "2"),
    ] {
        let value = changes.iter().find(|(f, _)| *f == flag).map_or(value, |(_, v)| *v);
        args.extend([flag.to_string(), value.to_string()]);
    }
    args
}

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

fn small_run(dir: &Path, epochs: &str) {
    let (out, err) = run(train(dir).args(small(&[])).args(["--epochs", epochs, "--run-dir", "run"]));
    assert!(out.status.success(), "{err}");
}

fn last(dir: &Path) -> String {
    dir.join("run/last.safetensors").display().to_string()
}

fn metrics_epochs(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("run/metrics.csv")).unwrap();
    csv.lines().skip(1).map(|l| l.split(',').next().unwrap_or_default().to_string()).collect()
}

#[test]
fn a_batch_larger_than_the_training_split_is_refused_naming_both_numbers() {
    let scratch = common::scratch("big-batch");
    let d = scratch.path();
    let (out, err) = run(train(d).args(small(&[("--batch-size", "251")])).args(["--run-dir", "run"]));
    assert!(!out.status.success());
    assert!(err.contains("--batch-size 251") && err.contains("250 training images"), "{err}");
    assert!(!d.join("run/best.safetensors").exists(), "an untrained model was saved as the best");
}

#[test]
fn zero_epochs_is_refused() {
    let scratch = common::scratch("zero-epochs");
    let d = scratch.path();
    let (out, err) = run(train(d).args(small(&[])).args(["--epochs", "0"]));
    assert!(!out.status.success() && err.contains("--epochs"), "{err}");
}

#[test]
fn an_unknown_arch_is_refused_before_any_data_is_read() {
    let scratch = common::scratch("bogus-arch");
    let d = scratch.path();
    let (out, err) =
        run(train(d).args(["--arch", "bogus", "--dataset", "fashion-mnist", "--data-dir", "no-such-folder"]));
    assert!(!out.status.success());
    assert!(err.contains("--arch") && err.contains("bogus") && !err.contains("no-such-folder"), "{err}");
    assert!(err.contains("resnet18-nobn"), "the accepted values are listed: {err}");
}

#[test]
fn negative_or_non_finite_weights_and_noise_are_refused() {
    let scratch = common::scratch("numbers");
    let d = scratch.path();
    for arg in ["--beta=-5", "--beta=nan", "--input-noise=nan", "--input-noise=-1", "--lr=0"] {
        let (out, err) = run(train(d).args(small(&[])).args([arg, "--run-dir", "run"]));
        assert!(!out.status.success(), "{arg} was accepted");
        let flag = arg.split('=').next().unwrap_or_default();
        assert!(err.contains(flag), "{arg}: {err}");
    }
    assert!(!d.join("run").exists(), "a refused run created its folder");
}

#[test]
fn a_data_dir_with_generated_dsprites_is_refused() {
    let scratch = common::scratch("dsprites-data-dir");
    let d = scratch.path();
    let (out, err) = run(train(d).args(small(&[])).args(["--data-dir", "/usr/share/datasets"]));
    assert!(!out.status.success() && err.contains("--data-dir"), "{err}");
}

#[test]
fn a_new_run_into_a_folder_holding_a_run_is_refused() {
    let scratch = common::scratch("taken");
    let d = scratch.path();
    small_run(d, "1");
    let before = std::fs::read(d.join("run/last.safetensors")).unwrap();
    let (out, err) = run(train(d).args(small(&[("--z-dim", "3")])).args(["--run-dir", "run"]));
    assert!(!out.status.success());
    assert!(err.contains("already holds a run") && err.contains("--resume"), "{err}");
    assert!(std::fs::read(d.join("run/last.safetensors")).unwrap() == before, "the old run's checkpoint changed");
    assert!(std::fs::read_to_string(d.join("run/config.json")).unwrap().contains("\"z_dim\": 4"));
}

#[test]
fn a_non_finite_loss_in_the_first_epoch_is_a_training_error_and_a_lower_lr_starts_the_run_again() {
    let scratch = common::scratch("nan-first-epoch");
    let d = scratch.path();
    let (out, err) = run(train(d).args(small(&[])).args(["--lr", "1e30", "--epochs", "1", "--run-dir", "run"]));
    assert!(!out.status.success(), "a learning rate of 1e30 trained without a non-finite value");
    assert!(err.contains("error: training: a non-finite value"), "{err}");
    assert!(err.contains("no checkpoint was written yet") && !err.contains("last.safetensors"), "{err}");
    assert!(!d.join("run/last.safetensors").exists() && d.join("run/config.json").exists());
    let (out, err) = run(train(d).args(small(&[])).args(["--lr", "1e-3", "--epochs", "1", "--run-dir", "run"]));
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("starting it again"));
    assert_eq!(metrics_epochs(d), ["1"]);
    assert!(std::fs::read_to_string(d.join("run/config.json")).unwrap().contains("\"lr\": 0.001"));
}

#[test]
fn a_run_killed_before_its_first_checkpoint_starts_again_with_the_same_command() {
    let scratch = common::scratch("killed-early");
    let d = scratch.path();
    // 20,000 images make the first epoch long enough to kill the run inside it.
    let args = || {
        let mut a = small(&[("--max-images", "20000")]);
        a.extend(["--epochs", "1", "--run-dir", "run"].map(String::from));
        a
    };
    let mut child = train(d).args(args()).stdout(std::process::Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    while !d.join("run/config.json").exists() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(d.join("run/config.json").exists(), "the run wrote no config.json within a minute");
    assert!(!d.join("run/last.safetensors").exists(), "the first epoch ended before the kill");

    let (out, err) = run(train(d).args(["--resume", "run/last.safetensors"]));
    assert!(!out.status.success());
    assert!(err.contains("no such file") && err.contains("holds no checkpoint"), "{err}");
    assert!(err.contains("without --resume"), "{err}");

    let (out, err) = run(train(d).args(args()));
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("starting it again"));
    assert!(d.join("run/last.safetensors").exists());
}

#[test]
fn resume_refuses_a_changed_configuration_flag_naming_both_values() {
    let scratch = common::scratch("resume-conflict");
    let d = scratch.path();
    small_run(d, "1");
    let (out, err) = run(train(d).args(["--resume", &last(d), "--epochs", "2", "--batch-size", "16"]));
    assert!(!out.status.success());
    assert!(err.contains("--batch-size 16") && err.contains("32"), "{err}");
    assert_eq!(metrics_epochs(d), ["1"], "a refused resume trained anyway");
}

#[test]
fn resume_refuses_a_finished_run_without_more_epochs() {
    let scratch = common::scratch("resume-finished");
    let d = scratch.path();
    small_run(d, "1");
    let (out, err) = run(train(d).args(["--resume", &last(d)]));
    assert!(!out.status.success() && err.contains("--epochs"), "{err}");
}

#[test]
fn resume_honours_the_device_flag() {
    let scratch = common::scratch("resume-device");
    let d = scratch.path();
    small_run(d, "1");
    let (out, err) = run(train(d).args(["--resume", &last(d), "--epochs", "2", "--device", "gpu"]));
    if !out.status.success() && std::env::var("VAE_REQUIRE_GPU").as_deref() != Ok("1") && err.contains("adapter") {
        eprintln!("skipped: no GPU adapter ({err})");
        return;
    }
    assert!(out.status.success(), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let device = stdout.lines().find(|l| l.starts_with("device:")).unwrap_or_default();
    assert!(!device.contains("cpu"), "the resumed run ignored --device gpu: {device}");
}

/// `last.safetensors` of epoch 1 put back after epoch 2: the folder a crash leaves when
/// metrics.csv ran ahead of the checkpoint.
fn csv_ahead_of_checkpoint(d: &Path) {
    small_run(d, "1");
    std::fs::copy(d.join("run/last.safetensors"), d.join("epoch1.safetensors")).unwrap();
    let (out, err) = run(train(d).args(["--resume", &last(d), "--epochs", "2"]));
    assert!(out.status.success(), "{err}");
    std::fs::copy(d.join("epoch1.safetensors"), d.join("run/last.safetensors")).unwrap();
    assert_eq!(metrics_epochs(d), ["1", "2"]);
}

#[test]
fn resume_rewrites_metrics_from_the_checkpoint_so_no_epoch_repeats() {
    let scratch = common::scratch("csv-ahead");
    let d = scratch.path();
    csv_ahead_of_checkpoint(d);
    std::fs::write(d.join("run/last.safetensors.tmp"), b"left by a killed write").unwrap();
    let (out, err) = run(train(d).args(["--resume", &last(d), "--epochs", "2"]));
    assert!(out.status.success(), "{err}");
    assert_eq!(metrics_epochs(d), ["1", "2"]);
    assert!(!d.join("run/last.safetensors.tmp").exists(), "the stale temporary file was kept");
}

#[test]
fn the_loss_history_survives_a_resume() {
    let scratch = common::scratch("history");
    let d = scratch.path();
    small_run(d, "1");
    let (out, err) = run(train(d).args(["--resume", &last(d), "--epochs", "2"]));
    assert!(out.status.success(), "{err}");
    let contents = read_safetensors(&d.join("run/last.safetensors")).unwrap();
    let history: Vec<serde_json::Value> = serde_json::from_str(&contents.metadata["extra.history"]).unwrap();
    let epochs: Vec<u64> = history.iter().filter_map(|h| h["epoch"].as_u64()).collect();
    assert_eq!(epochs, [1, 2], "{}", contents.metadata["extra.history"]);
}

/// Writes the checkpoint at `path` back with each tensor passed through `tensor` (by name) and
/// its metadata through `metadata`: the edited or corrupted files a user could hand `--resume`.
fn rewrite_checkpoint(
    path: &Path,
    tensor: impl Fn(&str, &Tensor) -> Tensor,
    metadata: impl FnOnce(&mut BTreeMap<String, String>),
) {
    let contents = read_safetensors(path).unwrap();
    let entries: Vec<TensorEntry> = contents
        .tensors
        .iter()
        .map(|(name, t)| {
            let kind = if name.starts_with("optimizer.step.") { BufferKind::Count } else { BufferKind::Float };
            TensorEntry { name: name.clone(), value: tensor(name, t), kind }
        })
        .collect();
    let mut meta = contents.metadata.clone();
    metadata(&mut meta);
    write_safetensors(path, &entries, &meta).unwrap();
}

/// Rewrites one metadata entry of `path`, keeping its tensors.
fn edit_metadata(path: &Path, key: &str, value: &str) {
    rewrite_checkpoint(
        path,
        |_, t| t.clone(),
        |meta| {
            assert!(meta.contains_key(key), "no metadata {key}: {:?}", meta.keys());
            meta.insert(key.to_string(), value.to_string());
        },
    );
}

#[test]
fn a_checkpoint_with_an_impossible_position_or_history_is_refused_naming_the_field() {
    let scratch = common::scratch("impossible-metadata");
    let d = scratch.path();
    small_run(d, "1");
    let path = d.join("run/last.safetensors");
    let pristine = std::fs::read(&path).unwrap();
    for (key, value, named) in [
        ("extra.batch_in_epoch", "999999", "batch_in_epoch is 999999"),
        (
            "extra.epoch_partial_means",
            r#"{"sum":{"loss":1.0,"recon":1.0,"kl":0.0,"mi":null,"tc":null,"dwkl":null},"weight":7.0}"#,
            "epoch_partial_means",
        ),
        ("extra.history", "[]", ""),
    ] {
        std::fs::write(&path, &pristine).unwrap();
        edit_metadata(&path, key, value);
        let (out, err) = run(train(d).args(["--resume", &last(d), "--epochs", "2"]));
        if named.is_empty() {
            // An empty history is what checkpoints from before the history was kept carry.
            assert!(out.status.success(), "{key}={value}: {err}");
            continue;
        }
        assert!(!out.status.success(), "{key}={value} was resumed");
        assert!(err.contains(named), "{key}={value}: {err}");
    }
    std::fs::write(&path, &pristine).unwrap();
    let history = read_safetensors(&path).unwrap().metadata["extra.history"].replace("\"epoch\":1", "\"epoch\":5");
    edit_metadata(&path, "extra.history", &history);
    let (out, err) = run(train(d).args(["--resume", &last(d), "--epochs", "2"]));
    assert!(!out.status.success() && err.contains("history lists epochs [5]"), "{err}");
}

#[test]
fn a_resumed_checkpoint_holding_nan_weights_is_refused() {
    let scratch = common::scratch("nan-resume");
    let d = scratch.path();
    small_run(d, "1");
    let path = d.join("run/last.safetensors");
    assert!(read_safetensors(&path).unwrap().tensors.contains_key("encoder.1.weight"), "no tensor encoder.1.weight");
    let nan_weights = |name: &str, t: &Tensor| {
        if name != "encoder.1.weight" {
            return t.clone();
        }
        Tensor::from_vec(vec![f32::NAN; t.to_vec_f32().unwrap().len()], t.shape()).unwrap()
    };
    rewrite_checkpoint(&path, nan_weights, |_| {});
    let (out, err) = run(train(d).args(["--resume", &last(d), "--epochs", "2"]));
    assert!(!out.status.success());
    assert!(err.contains("encoder.1.weight") && err.contains("non-finite"), "{err}");
    assert_eq!(metrics_epochs(d), ["1"]);
}

/// Starts one epoch of `args` in `d/run`, in the background (its output kept from the test's).
fn start_one_epoch(d: &Path, args: &[String]) -> std::process::Child {
    train(d)
        .args(args)
        .args(["--epochs", "1", "--run-dir", "run"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn an_interrupted_epoch_resumes_with_the_mean_of_all_its_batches() {
    // One epoch of 31 batches uninterrupted, and the same epoch interrupted by Ctrl-C and resumed:
    // the epoch's mean training loss must be the same number.
    let args = small(&[("--max-images", "1200")]);
    let scratch_straight = common::scratch("interrupt-straight");
    let straight = scratch_straight.path();
    let (out, err) = run(train(straight).args(&args).args(["--epochs", "1", "--run-dir", "run"]));
    assert!(out.status.success(), "{err}");
    let want = std::fs::read_to_string(straight.join("run/metrics.csv")).unwrap();
    let scratch = common::scratch("interrupt");
    let d = scratch.path();
    for delay_ms in [400u64, 200, 100, 700, 1000] {
        let _ = std::fs::remove_dir_all(d.join("run"));
        let mut child = start_one_epoch(d, &args);
        // Wait until training has started (the checkpoint of an interrupt needs a step).
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        if status.code() != Some(130) {
            continue; // finished before the signal, or interrupted before the loop: try another delay
        }
        let (out, err) = run(train(d).args(["--resume", &last(d)]));
        assert!(out.status.success(), "{err}");
        let got = std::fs::read_to_string(d.join("run/metrics.csv")).unwrap();
        let column = |csv: &str, name: &str| -> String {
            let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
            let i = header.iter().position(|h| *h == name).unwrap();
            csv.lines().nth(1).unwrap().split(',').nth(i).unwrap().to_string()
        };
        assert_eq!(column(&got, "train_loss"), column(&want, "train_loss"));
        assert_eq!(column(&got, "val_loss"), column(&want, "val_loss"));
        return;
    }
    eprintln!("skipped: no delay caught the run mid-epoch on this machine");
}

#[test]
fn a_sigterm_saves_a_checkpoint_at_the_next_batch_as_ctrl_c_does() {
    // What a scheduler sends to cancel a job (scancel, a time limit) and what `kill` sends: the
    // run must stop at a batch boundary with its checkpoint, not die with the epoch lost.
    let scratch = common::scratch("sigterm");
    let d = scratch.path();
    let args = small(&[("--max-images", "20000")]);
    let mut child = start_one_epoch(d, &args);
    let started = std::time::Instant::now();
    while !d.join("run/provenance.json").exists() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "a SIGTERM must end the run as an interrupt, not kill it: {status}");
    assert!(d.join("run/last.safetensors").exists(), "no checkpoint after SIGTERM");
    let (out, err) = run(train(d).args(["--resume", &last(d)]));
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed"), "the run did not resume mid-epoch");
    assert_eq!(metrics_epochs(d), ["1"]);
}

#[test]
fn a_good_run_without_a_runtime_dir_prints_no_error_line() {
    let scratch = common::scratch("quiet");
    let d = scratch.path();
    let (out, err) =
        run(train(d).env_remove("XDG_RUNTIME_DIR").args(small(&[])).args(["--epochs", "1", "--device", "auto"]));
    assert!(out.status.success(), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.to_lowercase().contains("error")).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_broken_image_in_a_folder_is_reported_once() {
    let scratch = common::scratch("broken-image");
    let d = scratch.path();
    let images = d.join("images");
    for class in ["cats", "dogs"] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for i in 0..12 {
            let img = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, i * 20]));
            img.save(images.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(images.join("cats/broken.png"), b"not a png").unwrap();
    let (out, err) = run(train(d).args(small(&[("--batch-size", "4")])).args([
        "--dataset",
        "folder",
        "--data-dir",
        "images",
        "--epochs",
        "1",
        "--run-dir",
        "run",
    ]));
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("broken.png").count(), 1, "{err}");
}
