//! `sweep` with a study file, as a user runs it on one machine: the local launcher's `--jobs`,
//! the job list, `status` and `collect`; a bad study refused before anything runs; a failed
//! point reported with its log while the others finish; a point started twice refused by its
//! lock; a killed point resumed from its checkpoint, ending bit for bit where an uninterrupted
//! run ends. The same on a real Slurm cluster: `sweep_slurm`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// The `sweep` binary, run from a scratch folder of its own.
pub(crate) fn sweep() -> common::IsolatedCommand {
    common::command(env!("CARGO_BIN_EXE_sweep"))
}

/// stdout and stderr of a finished command, asserting that it succeeded.
pub(crate) fn ok(out: Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "command failed ({}):\n{text}", out.status);
    text
}

/// stderr of a finished command, asserting that it failed.
pub(crate) fn failed(out: Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "command should have failed:\n{text}");
    text
}

/// A study of tiny dense VAEs on generated dSprites (16×16, z = 3): the `[train]` table with
/// `images` images and `epochs` epochs, then `rest` (the grid and anything else). Kernels by the
/// rules, so that every launcher sums alike.
pub(crate) fn tiny_study(images: usize, epochs: usize, rest: &str) -> String {
    format!(
        "[train]\narch = \"dense\"\ndataset = \"dsprites\"\nmax-images = {images}\nimage-size = 16\nz-dim = 3\n\
         batch-size = 32\nepochs = {epochs}\npatience = 0\ndevice = \"cpu\"\ncpu-kernels = \"rule\"\n{rest}"
    )
}

/// Writes a study file `name.toml` into `dir`.
pub(crate) fn write_study(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Every tensor of a checkpoint (model and optimizer state), by name.
pub(crate) fn checkpoint_tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let contents = nn::checkpoint::read_safetensors(path).unwrap();
    let mut v: Vec<(String, Vec<f32>)> =
        contents.tensors.iter().map(|(n, t)| (n.clone(), t.to_vec_f32().unwrap())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Asserts that two runs' last checkpoints hold the same numbers, bit for bit.
pub(crate) fn assert_same_run(a: &Path, b: &Path) {
    let (ta, tb) = (checkpoint_tensors(&a.join("last.safetensors")), checkpoint_tensors(&b.join("last.safetensors")));
    assert_eq!(ta.len(), tb.len());
    for ((na, va), (nb, vb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(va == vb, "{na} differs between {} and {}", a.display(), b.display());
    }
}

/// The epochs `metrics.csv` of a run lists, in order.
pub(crate) fn metrics_epochs(run: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap_or_default();
    csv.lines().skip(1).map(|l| l.split(',').next().unwrap_or_default().to_string()).collect()
}

/// A point's record, as JSON.
pub(crate) fn record(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("sweep-point.json")).unwrap()).unwrap()
}

/// Waits until `done` holds (polling), or panics after `limit` naming `what`.
pub(crate) fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_study_runs_here_jobs_at_a_time_and_a_second_launch_starts_nothing() {
    let scratch = common::scratch("sweep-local");
    let study = write_study(scratch.path(), "s", &tiny_study(300, 2, "[grid]\nbeta = [1, 4]\nseed = [0, 1]\n"));
    let root = scratch.path().join("runs");
    let launch = || sweep().arg("--study").arg(&study).arg("--root").arg(&root).args(["--jobs", "2"]).output().unwrap();
    let text = ok(launch());
    assert!(text.contains("4 points, 0 done or left alone, 4 to run, 2 at a time"), "{text}");
    assert!(text.contains("4 done, 0 running, 0 left"), "the progress line counts every point:\n{text}");
    let dir = root.join("s");
    let csv = std::fs::read_to_string(dir.join("table.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "point,beta,seed,best_epoch,epochs,val_loss,val_recon,val_kl,val_mi,val_tc,val_dwkl");
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[4].starts_with("beta=4_seed=1,4,1,"), "{csv}");
    for f in ["table.md", "val_loss.png", "report.html", "study.toml"] {
        assert!(dir.join(f).is_file(), "no {f}");
    }
    let again = ok(launch());
    assert!(again.contains("4 done or left alone, 0 to run"), "{again}");
    assert_eq!(std::fs::read_to_string(dir.join("table.csv")).unwrap(), csv, "a second launch changed the table");
    let status = ok(sweep().args(["status", "--study"]).arg(&dir).output().unwrap());
    assert!(status.contains("4 points: 4 done"), "{status}");
}

#[test]
fn each_point_is_evaluated_and_its_page_shows_the_evaluation() {
    let scratch = common::scratch("sweep-eval");
    let rest = "[grid]\nbeta = [1, 4]\n[eval]\nwhat = \"metrics\"\nmax-test = 30\nsamples = 30\nseed = \"{beta}\"\n\
                [summary]\ncolumns = [\"val_loss\", \"test_loss\"]\n";
    let study = write_study(scratch.path(), "e", &tiny_study(300, 1, rest));
    let root = scratch.path().join("runs");
    ok(sweep().arg("--study").arg(&study).arg("--root").arg(&root).output().unwrap());
    let point = root.join("e/beta=4");
    let log = std::fs::read_to_string(point.join("sweep.log")).unwrap();
    assert!(log.contains("eval --run") && log.contains("--seed 4"), "eval ran with the point's value:\n{log}");
    let report = std::fs::read_to_string(point.join("report.html")).unwrap();
    assert!(report.contains("test_loss"), "the point's report.html lacks its evaluation");
    let csv = std::fs::read_to_string(root.join("e/table.csv")).unwrap();
    assert!(csv.starts_with("point,beta,best_epoch,epochs,val_loss,test_loss\n"), "{csv}");
    let row = csv.lines().nth(2).unwrap();
    assert!(row.split(',').all(|cell| !cell.is_empty()), "every column has a value: {row}");
}

#[test]
fn a_bad_study_is_refused_naming_the_file_the_key_and_the_point_before_anything_runs() {
    let scratch = common::scratch("sweep-bad");
    let root = scratch.path().join("runs");
    for (name, rest, expected) in [
        ("unknown", "[grid]\nbeta = [1]\nbogus-flag = [2]\n", "grid.bogus-flag[0]: train has no flag --bogus-flag"),
        ("malformed", "[grid]\nbeta = [1, \"x\"]\n", "grid.beta[1]: point 1 (beta=x)"),
        (
            "duplicate",
            "[grid]\nz-dim = [1, 2]\n",
            "grid.z-dim[0]: duplicate axis: --z-dim is already set by train.z-dim",
        ),
        ("empty", "[grid]\n", "the grid is empty"),
        ("bad-eval", "[grid]\nbeta = [1]\n[eval]\nmax-tests = 5\n", "eval.max-tests: eval has no flag --max-tests"),
    ] {
        let study = write_study(scratch.path(), name, &tiny_study(300, 1, rest));
        let err = failed(sweep().arg("--study").arg(&study).arg("--root").arg(&root).output().unwrap());
        assert!(err.contains(&format!("{}: {expected}", study.display())), "{name}: {err}");
        assert!(!root.exists(), "{name}: something was written before the study was refused");
    }
    // A point whose folder holds another configuration: named with the key that differs.
    let study = write_study(scratch.path(), "taken", &tiny_study(300, 1, "[grid]\nbeta = [1, 2]\n"));
    ok(sweep().arg("--study").arg(&study).arg("--root").arg(&root).output().unwrap());
    let changed = write_study(
        scratch.path(),
        "taken",
        &tiny_study(300, 1, "[grid]\nbeta = [1, 2]\n").replace("z-dim = 3", "z-dim = 4"),
    );
    let err = failed(
        sweep().args(["--launcher", "print", "--study"]).arg(&changed).arg("--root").arg(&root).output().unwrap(),
    );
    assert!(err.contains("point 0 (beta=1)") && err.contains("z_dim is 3 there, 4 here"), "{err}");
    assert!(!root.join("taken/jobs.txt").exists(), "a refused study wrote its job list");
}

#[test]
fn a_failed_point_is_reported_with_its_log_and_the_others_finish() {
    let scratch = common::scratch("sweep-failed");
    let root = scratch.path().join("runs");
    // 250 training images: a batch of 1000 leaves no step, which train finds once it has the data.
    let text = tiny_study(300, 1, "[grid]\nbatch-size = [32, 1000, 16]\n").replace("batch-size = 32\n", "");
    let study = write_study(scratch.path(), "f", &text);
    let out = sweep().arg("--study").arg(&study).arg("--root").arg(&root).args(["--jobs", "2"]).output().unwrap();
    let text = failed(out);
    let bad = root.join("f/batch-size=1000");
    assert!(text.contains("batch-size=1000 failed") && text.contains("started again"), "{text}");
    assert!(text.contains(&bad.join("sweep.log").display().to_string()), "the failure names its log:\n{text}");
    assert!(text.contains("2 done"), "the other points finished:\n{text}");
    let r = record(&bad);
    assert_eq!(
        (r["outcome"].as_str(), r["failures"].as_u64(), r["exit_code"].as_i64()),
        (Some("failed"), Some(2), Some(1))
    );
    let status = ok(sweep().args(["status", "--study"]).arg(root.join("f")).output().unwrap());
    assert!(status.contains("2 done, 1 failed") && status.contains("exit code 1"), "{status}");
    assert!(
        status.contains("--batch-size 1000 is larger than the 250 training images"),
        "the log's last lines:\n{status}"
    );
    let table = std::fs::read_to_string(root.join("f/table.md")).unwrap();
    assert!(table.contains("Not done, so not in the table: batch-size=1000 (failed)"), "{table}");
    let again = failed(sweep().arg("--study").arg(&study).arg("--root").arg(&root).output().unwrap());
    assert!(again.contains("failed 2 time(s), not started again (--max-attempts 2)"), "{again}");
}

/// A point long enough to be caught training: about a second an epoch on two cores.
fn long_study(scratch: &Path) -> PathBuf {
    write_study(scratch, "long", &tiny_study(3000, 4, "[grid]\nbeta = [1]\n"))
}

/// Starts `sweep run-point` on point 0 of `study`.
fn run_point(study: &Path, root: &Path) -> Child {
    sweep()
        .args(["run-point", "--index", "0", "--threads", "1", "--study"])
        .arg(study)
        .arg("--root")
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_point_started_twice_at_once_is_refused_by_its_lock_and_trained_once() {
    let scratch = common::scratch("sweep-lock");
    let (study, root) = (long_study(scratch.path()), scratch.path().join("runs"));
    let point = root.join("long/beta=1");
    let mut first = run_point(&study, &root);
    wait_for("the first attempt to train", Duration::from_secs(60), || point.join("config.json").is_file());
    let second = run_point(&study, &root).wait_with_output().unwrap();
    assert_eq!(second.status.code(), Some(75), "a second start must be refused while the first runs");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("point 0 (beta=1) is already running") && err.contains("not started twice"), "{err}");
    assert!(first.wait().unwrap().success());
    assert_eq!(metrics_epochs(&point), ["1", "2", "3", "4"], "each epoch once");
    assert_eq!(record(&point)["attempts"], 1, "the refused start is not an attempt");
}

#[test]
fn a_killed_point_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run() {
    let scratch = common::scratch("sweep-killed");
    let study = long_study(scratch.path());
    let (straight, killed) = (scratch.path().join("straight"), scratch.path().join("killed"));
    ok(sweep().arg("--study").arg(&study).arg("--root").arg(&straight).args(["--threads", "1"]).output().unwrap());
    let point = killed.join("long/beta=1");
    let mut child = run_point(&study, &killed);
    wait_for("the first epoch's checkpoint", Duration::from_secs(60), || point.join("last.safetensors").is_file());
    // SIGKILL the whole point, run-point first and then its train, as an out-of-memory killer
    // or a lost node would (nothing is told, nothing saved).
    child.kill().ok();
    child.wait().unwrap();
    let killed_train = std::process::Command::new("pkill")
        .args(["-KILL", "-f", "--", &format!("--run-dir {}", point.display())])
        .status()
        .unwrap();
    assert!(killed_train.success(), "no train process of the point was left to kill");
    assert!(metrics_epochs(&point).len() < 4, "the run finished before the kill: make it longer");
    let status = ok(sweep().args(["status", "--study"]).arg(&study).arg("--root").arg(&killed).output().unwrap());
    assert!(status.contains("stopped") && status.contains("died without a word"), "{status}");
    let text =
        ok(sweep().arg("--study").arg(&study).arg("--root").arg(&killed).args(["--threads", "1"]).output().unwrap());
    assert!(text.contains("1 done"), "{text}");
    let log = std::fs::read_to_string(point.join("sweep.log")).unwrap();
    assert!(log.contains("=== attempt 2") && log.contains("--resume"), "the second attempt resumed:\n{log}");
    assert_eq!(metrics_epochs(&point), ["1", "2", "3", "4"], "each epoch once");
    assert_same_run(&straight.join("long/beta=1"), &point);
    assert_eq!(
        std::fs::read_to_string(straight.join("long/table.csv")).unwrap(),
        std::fs::read_to_string(killed.join("long/table.csv")).unwrap()
    );
}

#[test]
fn a_stopped_launch_stops_every_point_with_its_checkpoint_and_the_same_command_goes_on() {
    let scratch = common::scratch("sweep-stopped");
    // Eight epochs: however the two points share the cores, neither ends before both have begun.
    let study = write_study(scratch.path(), "two", &tiny_study(3000, 8, "[grid]\nbeta = [1, 4]\n"));
    let root = scratch.path().join("runs");
    let launch = || {
        let mut c = sweep();
        c.args(["--jobs", "2", "--threads", "1", "--study"]).arg(&study).arg("--root").arg(&root);
        c
    };
    let points = [root.join("two/beta=1"), root.join("two/beta=4")];
    let mut launcher = launch().stdout(Stdio::piped()).spawn().unwrap();
    wait_for("both points' first epoch", Duration::from_secs(300), || {
        points.iter().all(|p| !metrics_epochs(p).is_empty())
    });
    // Ctrl-C in a terminal reaches every process of the group; a SIGINT to the launcher alone
    // must reach its points too.
    let _ = std::process::Command::new("kill").args(["-INT", &launcher.id().to_string()]).status();
    assert_eq!(launcher.wait().unwrap().code(), Some(130), "a stopped launch exits as Ctrl-C does");
    for p in &points {
        assert_eq!(record(p)["outcome"], "stopped", "{}", p.display());
        assert!(metrics_epochs(p).len() < 8, "the point finished before the stop: make it longer");
    }
    let text = ok(launch().output().unwrap());
    assert!(text.contains("2 done, 0 running, 0 left"), "{text}");
    for p in &points {
        assert_eq!(metrics_epochs(p), (1..=8).map(|e| e.to_string()).collect::<Vec<_>>(), "each epoch once");
        assert_eq!((record(p)["attempts"].as_u64(), record(p)["failures"].as_u64()), (Some(2), Some(0)));
    }
}

#[test]
fn the_job_list_holds_one_command_per_point_not_done() {
    let scratch = common::scratch("sweep-print");
    let study = write_study(scratch.path(), "p", &tiny_study(300, 1, "[grid]\nbeta = [1, 4]\nseed = [0, 1]\n"));
    let root = scratch.path().join("runs");
    let print = || {
        sweep()
            .args(["--launcher", "print", "--threads", "1", "--study"])
            .arg(&study)
            .arg("--root")
            .arg(&root)
            .output()
            .unwrap()
    };
    ok(print());
    let jobs = std::fs::read_to_string(root.join("p/jobs.txt")).unwrap();
    let lines: Vec<&str> = jobs.lines().collect();
    assert_eq!(lines.len(), 4, "{jobs}");
    assert!(lines[2].contains("run-point --study") && lines[2].ends_with("--index 2 --threads 1"), "{jobs}");
    // Run one line as a scheduler would, through a shell.
    ok(std::process::Command::new("sh").args(["-c", lines[0]]).current_dir(scratch.path()).output().unwrap());
    ok(print());
    let jobs = std::fs::read_to_string(root.join("p/jobs.txt")).unwrap();
    assert_eq!(jobs.lines().count(), 3, "the done point left the list:\n{jobs}");
    let collected = ok(sweep().args(["collect", "--study"]).arg(root.join("p")).output().unwrap());
    assert!(collected.contains("not done: point 1 (beta=1_seed=1) is pending"), "{collected}");
    assert_eq!(std::fs::read_to_string(root.join("p/table.csv")).unwrap().lines().count(), 2);
}

#[test]
fn the_slurm_script_asks_for_requeue_and_a_warning_before_the_time_limit() {
    let scratch = common::scratch("sweep-dry-run");
    let study = write_study(
        scratch.path(),
        "d",
        &tiny_study(300, 1, "[grid]\nbeta = [1]\nseed = [0, 1, 2]\n[slurm]\npartition = \"cpu\"\n"),
    );
    let root = scratch.path().join("runs");
    let text = ok(sweep()
        .args([
            "--launcher",
            "slurm",
            "--dry-run",
            "--jobs",
            "2",
            "--slurm-opt",
            "time=01:00:00",
            "--slurm-opt",
            "gres=gpu:1",
        ])
        .arg("--study")
        .arg(&study)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap());
    for line in [
        "#SBATCH --array=0-2%2",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@120",
        "#SBATCH --partition=cpu",
        "#SBATCH --time=01:00:00",
        "#SBATCH --gres=gpu:1",
        "run-point --study",
        "--index \"$SLURM_ARRAY_TASK_ID\"",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(!root.exists(), "a dry run wrote into the sweep's folder");
    let err = failed(
        sweep().args(["--launcher", "slurm", "--slurm-opt", "array=1-3", "--study"]).arg(&study).output().unwrap(),
    );
    assert!(err.contains("--slurm-opt array=1-3: --array is written by the sweep itself"), "{err}");
}
