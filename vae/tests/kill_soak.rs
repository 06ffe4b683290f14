//! A day of kills in an hour: a small run SIGKILLed at random moments, each time started again
//! with the same command (`--resume` once it has a checkpoint), as a scheduler that requeues a
//! job after an out-of-memory kill or a lost node would, must end exactly where the same run
//! ends uninterrupted.
//!
//! The run is a dense VAE on 3,000 generated dSprites at 16×16 for 10 epochs on one thread:
//! about four seconds straight, a tenth of it start-up. Each process is killed at a moment a
//! seeded generator picks among three kinds: a uniformly random delay over what is left of the
//! run (training steps, validation, start-up); the n-th time a `*.tmp` file appears in the folder
//! (polled every millisecond: inside a checkpoint write, where a kill is most likely to do harm);
//! or a few milliseconds after an epoch's row lands in `metrics.csv` (the pictures, the report,
//! the next epoch's start). When a run is finished before the kills are spent, the next round
//! starts in a fresh folder, so `VAE_SOAK_KILLS` (default 15; 300 for the long version, a few
//! minutes) sets the kills and not the length of the run. After every kill the folder must list
//! each epoch of its checkpoint once (or all but the last, which `--resume` writes); after every
//! round, `last.safetensors` and `best.safetensors` must hold the uninterrupted run's tensors
//! (model and Adam state) and records bit for bit, `metrics.csv` its rows in every column but
//! the wall-clock `seconds`, and no `*.tmp` may be left. `VAE_SOAK_SEED` replays a kill plan
//! (the moments still move with the machine's timing).

use crate::common;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tensor::Rng;

const EPOCHS: u64 = 10;
const DEFAULT_KILLS: usize = 15;

/// The command that begins the soak's run in `run`; with `resume`, the same command continuing it.
fn train(run: &Path, resume: bool) -> Command {
    train_images(run, resume, 3000, EPOCHS)
}

fn train_images(run: &Path, resume: bool, images: u64, epochs: u64) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_train"));
    // Kernels by the rules, as `common::command` sets them: a measured choice could differ
    // between two processes of the same run.
    c.env("VAE_CPU_KERNELS", "rule").env("VAE_GPU_KERNELS", "rule");
    c.args(["--arch", "dense", "--max-images", &images.to_string(), "--image-size", "16", "--batch-size", "32"]);
    c.args(["--z-dim", "4", "--threads", "1", "--device", "cpu", "--epochs", &epochs.to_string(), "--run-dir"])
        .arg(run);
    if resume {
        c.arg("--resume").arg(run.join("last.safetensors"));
    }
    c
}

/// A `train` process that cannot outlive the test: it is killed when dropped, a panic included.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// When to kill a process.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// This long after it started.
    After(Duration),
    /// When a `*.tmp` file appears in the folder for the n-th time (from 1).
    NthTemporary(usize),
    /// This long after `metrics.csv` gained a row.
    AfterRow(Duration),
}

impl Moment {
    fn pick(rng: &mut Rng, left_of_the_run: Duration) -> Moment {
        match rng.below(10) {
            0..=4 => Moment::After(left_of_the_run.mul_f64(rng.next_f64())),
            5..=7 => Moment::NthTemporary(1 + rng.below(3)),
            _ => Moment::AfterRow(Duration::from_micros(rng.below(20_000) as u64)),
        }
    }
}

/// Where a kill landed, judged from what the killed process left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// A checkpoint's `*.safetensors.tmp` was left: the kill interrupted its write.
    CheckpointWrite,
    /// Another file's `*.tmp` was left (configuration, metrics, provenance, pictures, report).
    OtherWrite,
    /// No `last.safetensors` yet: start-up or the first epoch.
    BeforeFirstCheckpoint,
    /// Training steps, validation or start-up of a resumed process.
    Training,
    /// Every epoch was saved; the process was writing its last pictures and report.
    AfterLastCheckpoint,
}

/// Why a process ended.
enum Ended {
    Killed,
    ByItself(ExitStatus),
}

fn temporaries(run: &Path) -> Vec<String> {
    let names = std::fs::read_dir(run).into_iter().flatten().flatten();
    names.map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".tmp")).collect()
}

fn metrics_rows(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.csv")).map_or(0, |csv| csv.lines().count().saturating_sub(1))
}

/// The epoch `last.safetensors` follows; 0 without one.
fn checkpoint_epoch(run: &Path) -> u64 {
    let last = run.join("last.safetensors");
    if !last.is_file() {
        return 0;
    }
    nn::checkpoint::read_training_state(&last).unwrap_or_else(|e| panic!("a kill left {}: {e}", last.display())).epoch
}

/// Runs `process` until `moment` (polling every millisecond) and SIGKILLs it, unless it ends first.
fn kill_at(process: &mut Process, run: &Path, moment: Moment) -> Ended {
    let started = Instant::now();
    // A resumed process first rewrites the rows its checkpoint holds: only more count.
    let rows_at_start = metrics_rows(run).max(checkpoint_epoch(run) as usize);
    let (mut temporaries_seen, mut temporary_before, mut row_landed) = (0, false, None::<Instant>);
    loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            return Ended::ByItself(status);
        }
        let now = match moment {
            Moment::After(delay) => started.elapsed() >= delay,
            Moment::NthTemporary(n) => {
                let temporary = !temporaries(run).is_empty();
                if temporary && !temporary_before {
                    temporaries_seen += 1;
                }
                temporary_before = temporary;
                temporaries_seen >= n
            }
            Moment::AfterRow(delay) => {
                if row_landed.is_none() && metrics_rows(run) > rows_at_start {
                    row_landed = Some(Instant::now());
                }
                row_landed.is_some_and(|t| t.elapsed() >= delay)
            }
        };
        if now {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    process.0.kill().unwrap();
    let status = process.0.wait().unwrap();
    // It may have exited on its own between the last poll and the signal.
    if status.signal() == Some(libc::SIGKILL) {
        Ended::Killed
    } else {
        Ended::ByItself(status)
    }
}

/// The epochs `metrics.csv` lists, in order.
fn metrics_epochs(run: &Path) -> Vec<u64> {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap_or_default();
    csv.lines().skip(1).map(|l| l.split(',').next().unwrap_or_default().parse().unwrap()).collect()
}

/// What a killed process must leave: `metrics.csv` listing each epoch of the checkpoint once,
/// in order, or all of them but the last (its row is written after the checkpoint).
fn assert_consistent_after_a_kill(run: &Path, kill: usize) {
    let (epochs, saved) = (metrics_epochs(run), checkpoint_epoch(run));
    let all: Vec<u64> = (1..=saved).collect();
    assert!(
        epochs == all || epochs == all[..all.len().saturating_sub(1)],
        "after kill {kill}, metrics.csv lists epochs {epochs:?} but last.safetensors follows epoch {saved}"
    );
}

/// The tensors of a safetensors file by name: dtype, shape and raw bytes, as stored.
type StoredTensors = BTreeMap<String, (String, Vec<u64>, Vec<u8>)>;

/// A safetensors file's tensors and metadata, read straight from its bytes (no conversion can
/// hide a difference).
fn read_stored(path: &Path) -> (StoredTensors, BTreeMap<String, String>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    let data = &bytes[8 + length..];
    let (mut tensors, mut metadata) = (BTreeMap::new(), BTreeMap::new());
    for (name, entry) in header {
        if name == "__metadata__" {
            for (key, value) in entry.as_object().unwrap() {
                metadata.insert(key.clone(), value.as_str().unwrap().to_string());
            }
            continue;
        }
        let offsets: Vec<usize> = serde_json::from_value(entry["data_offsets"].clone()).unwrap();
        let shape: Vec<u64> = serde_json::from_value(entry["shape"].clone()).unwrap();
        let dtype = entry["dtype"].as_str().unwrap().to_string();
        tensors.insert(name, (dtype, shape, data[offsets[0]..offsets[1]].to_vec()));
    }
    (tensors, metadata)
}

/// The history a checkpoint carries, as text without each epoch's wall-clock seconds: parsed
/// numbers could hide a difference in the last bit.
fn without_seconds(history: &str) -> String {
    let mut rest = history;
    let mut out = String::new();
    while let Some(at) = rest.find("\"seconds\":") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = &rest[rest.find([',', '}']).unwrap()..];
    }
    out + rest
}

fn assert_same_checkpoint(want: &Path, got: &Path) {
    let ((want_tensors, want_meta), (got_tensors, got_meta)) = (read_stored(want), read_stored(got));
    assert_eq!(
        want_tensors.keys().collect::<Vec<_>>(),
        got_tensors.keys().collect::<Vec<_>>(),
        "{} holds other tensors than the uninterrupted run's",
        got.display()
    );
    for (name, (dtype, shape, bytes)) in &want_tensors {
        let (got_dtype, got_shape, got_bytes) = &got_tensors[name];
        assert_eq!((dtype, shape), (got_dtype, got_shape), "{}: {name}", got.display());
        if bytes != got_bytes {
            let at = bytes.iter().zip(got_bytes).position(|(a, b)| a != b).unwrap_or(0);
            panic!(
                "{}: tensor {name} ({dtype} {shape:?}) differs from the uninterrupted run's from byte {at} on",
                got.display()
            );
        }
    }
    assert_eq!(want_meta.keys().collect::<Vec<_>>(), got_meta.keys().collect::<Vec<_>>(), "{}", got.display());
    for (key, value) in &want_meta {
        let same = if key == "extra.history" {
            without_seconds(value) == without_seconds(&got_meta[key])
        } else {
            *value == got_meta[key]
        };
        assert!(same, "{}: metadata {key} is\n{}\nnot the uninterrupted run's\n{value}", got.display(), got_meta[key]);
    }
}

/// Every row of `metrics.csv` in every column but the wall-clock `seconds`, as text (the
/// shortest text that reads back as the same f64: equal text is equal bits).
fn assert_same_metrics(want: &Path, got: &Path) {
    let read = |run: &Path| std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let (want_csv, got_csv) = (read(want), read(got));
    let header: Vec<&str> = want_csv.lines().next().unwrap().split(',').collect();
    assert_eq!(got_csv.lines().next(), want_csv.lines().next(), "metrics.csv's columns");
    let (want_rows, got_rows): (Vec<&str>, Vec<&str>) =
        (want_csv.lines().skip(1).collect(), got_csv.lines().skip(1).collect());
    let got_epochs = metrics_epochs(got);
    assert_eq!(got_epochs, (1..=EPOCHS).collect::<Vec<_>>(), "metrics.csv lists each epoch once, in order");
    assert_eq!(want_rows.len(), got_rows.len());
    for (want_row, got_row) in want_rows.iter().zip(&got_rows) {
        for ((column, w), g) in header.iter().zip(want_row.split(',')).zip(got_row.split(',')) {
            if *column != "seconds" {
                assert_eq!(
                    g,
                    w,
                    "metrics.csv, epoch {}: {column} differs from the uninterrupted run's",
                    &want_row[..1]
                );
            }
        }
    }
}

fn assert_same_run(want: &Path, got: &Path) {
    for file in ["last.safetensors", "best.safetensors"] {
        assert_same_checkpoint(&want.join(file), &got.join(file));
    }
    assert_same_metrics(want, got);
    assert_eq!(temporaries(got), Vec::<String>::new(), "temporary files left in {}", got.display());
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}

/// Starts `command` with its output in `log` (stdout discarded).
fn start(mut command: Command, log: &Path) -> Process {
    let log = File::create(log).unwrap();
    Process(command.stdout(Stdio::null()).stderr(log).spawn().unwrap())
}

#[test]
fn a_run_killed_hundreds_of_times_ends_bit_equal_to_an_uninterrupted_run() {
    let kills = env_number("VAE_SOAK_KILLS").map_or(DEFAULT_KILLS, |k| k as usize);
    let seed = env_number("VAE_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000
    });
    println!("kill soak: seed {seed} (VAE_SOAK_SEED={seed} replays the plan), {kills} kills");
    let scratch = common::scratch("kill-soak");
    let log = scratch.path().join("train.log");
    let straight = scratch.path().join("straight");
    let begun = Instant::now();
    let status = start(train(&straight, false), &log).0.wait().unwrap();
    assert!(status.success(), "the uninterrupted run failed:\n{}", std::fs::read_to_string(&log).unwrap());
    let straight_time = begun.elapsed();

    let mut rng = Rng::new(seed);
    let mut landed: BTreeMap<Phase, usize> = BTreeMap::new();
    let (mut killed, mut rounds, mut processes) = (0, 0, 0);
    let soak_started = Instant::now();
    while killed < kills {
        rounds += 1;
        let run: PathBuf = scratch.path().join(format!("round{rounds}"));
        loop {
            let resume = run.join("last.safetensors").is_file();
            let mut process = start(train(&run, resume), &log);
            processes += 1;
            let ended = if killed < kills {
                let left = straight_time.mul_f64((EPOCHS + 1 - checkpoint_epoch(&run)) as f64 / EPOCHS as f64);
                kill_at(&mut process, &run, Moment::pick(&mut rng, left))
            } else {
                let limit = straight_time * 10 + Duration::from_secs(60);
                let ended = kill_at(&mut process, &run, Moment::After(limit));
                assert!(matches!(ended, Ended::ByItself(_)), "the last process of round {rounds} ran past {limit:?}");
                ended
            };
            match ended {
                Ended::Killed => {
                    killed += 1;
                    let left = temporaries(&run);
                    let saved = checkpoint_epoch(&run);
                    let phase = if left.iter().any(|n| n.ends_with(".safetensors.tmp")) {
                        Phase::CheckpointWrite
                    } else if !left.is_empty() {
                        Phase::OtherWrite
                    } else if saved == 0 {
                        Phase::BeforeFirstCheckpoint
                    } else if saved == EPOCHS {
                        Phase::AfterLastCheckpoint
                    } else {
                        Phase::Training
                    };
                    *landed.entry(phase).or_default() += 1;
                    assert_consistent_after_a_kill(&run, killed);
                }
                Ended::ByItself(status) => {
                    let said = std::fs::read_to_string(&log).unwrap();
                    // A kill after the last checkpoint leaves a finished run, which `--resume`
                    // refuses (having made its folder whole).
                    let finished = resume && said.contains("the run has finished its");
                    assert!(
                        status.success() || finished,
                        "round {rounds}, after {killed} kills: `train{}` failed ({status}):\n{said}",
                        if resume { " --resume" } else { "" }
                    );
                    break;
                }
            }
        }
        assert_same_run(&straight, &run);
        std::fs::remove_dir_all(&run).unwrap();
    }
    println!(
        "kill soak: {killed} kills in {rounds} rounds ({processes} processes), {:.1} s (the uninterrupted run: {:.1} s); \
         landed: {landed:?}; every round ended bit-equal to the uninterrupted run",
        soak_started.elapsed().as_secs_f64(),
        straight_time.as_secs_f64()
    );
}

#[test]
fn a_finished_run_killed_before_its_last_row_gets_the_row_back_from_the_same_command() {
    // What a kill after the last `last.safetensors` but before the last `metrics.csv` leaves:
    // the checkpoint holds every epoch, the CSV lacks the last. `--resume` refuses the finished
    // run, and no later write would bring the row back.
    let scratch = common::scratch("kill-soak-last-row");
    let run = scratch.path().join("run");
    let log = scratch.path().join("train.log");
    assert!(start(train_images(&run, false, 300, 2), &log).0.wait().unwrap().success());
    let whole = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let lagging: String = whole.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(run.join("metrics.csv"), &lagging).unwrap();
    let status = start(train_images(&run, true, 300, 2), &log).0.wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success() && said.contains("the run has finished its 2 epochs"), "{said}");
    assert_eq!(std::fs::read_to_string(run.join("metrics.csv")).unwrap(), whole);
}

#[test]
fn a_finished_run_killed_before_its_last_pictures_and_report_gets_them_back_from_the_same_command() {
    // What a kill after the last checkpoint and row but before the rest leaves: no last
    // pictures, loss plot or report. `--resume` refuses the finished run after writing them,
    // the pictures from the checkpoint's weights, as the run drew them.
    let scratch = common::scratch("kill-soak-last-pictures");
    let run = scratch.path().join("run");
    let log = scratch.path().join("train.log");
    assert!(start(train_images(&run, false, 300, 2), &log).0.wait().unwrap().success());
    let pictures = ["recon_epoch002.png", "samples_epoch002.png", "loss.png"];
    let drawn: Vec<Vec<u8>> = pictures.iter().map(|p| std::fs::read(run.join(p)).unwrap()).collect();
    for file in pictures.iter().chain(&["report.html"]) {
        std::fs::remove_file(run.join(file)).unwrap();
    }
    let status = start(train_images(&run, true, 300, 2), &log).0.wait().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success() && said.contains("the run has finished its 2 epochs"), "{said}");
    for (picture, drawn) in pictures.iter().zip(&drawn) {
        assert!(std::fs::read(run.join(picture)).ok().as_ref() == Some(drawn), "{picture} not drawn again as it was");
    }
    let report = std::fs::read_to_string(run.join("report.html")).unwrap_or_default();
    assert!(
        report.contains("<summary>epoch 2</summary>"),
        "report.html not written again with the last epoch's pictures"
    );
}
