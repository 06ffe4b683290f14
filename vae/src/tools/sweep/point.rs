//! One point of a sweep as `sweep run-point` runs it, whichever launcher started it: a lock in
//! its folder (a second start of the same point is refused, never trained twice), `train` (a
//! new run, or `--resume` from its last checkpoint), then `eval` and the run's `report.html`,
//! with a record of every attempt beside the run's files.
//!
//! Everything a point writes is in its own run folder: `train`'s files, and
//!
//! | file | what |
//! |---|---|
//! | `sweep-point.json` | the point's record: pending, running, done, failed or stopped; attempts, failures, the last exit code, the host, process and Slurm task of the last attempt, the Slurm task it was last submitted as |
//! | `sweep.log` | what `train` and `eval` printed, every attempt after a header line |
//! | `sweep.lock` | held (an advisory lock) while a process runs the point |
//!
//! A point stopped by a signal keeps its checkpoint: SIGTERM or SIGINT (`scancel`, Ctrl-C) is
//! passed on to `train`, which saves `last.safetensors` at the next batch boundary; SIGUSR1,
//! which the Slurm launcher asks for before a task's time limit, does the same and then
//! requeues the task, which resumes where it stopped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::study::{Point, Study};
use crate::error::{Error, Result};
use crate::runs::LAST_CHECKPOINT;

/// How often a point looks at its child and at the signals it was sent.
const POLL: Duration = Duration::from_millis(10);

/// The point's record, in its run folder.
pub const RECORD_FILE: &str = "sweep-point.json";
/// What its `train` and `eval` printed.
pub const LOG_FILE: &str = "sweep.log";
/// Held while a process runs the point.
pub const LOCK_FILE: &str = "sweep.lock";
/// How a folder finished by the `sweep` before point records says it is done.
const OLD_DONE_FILE: &str = "sweep_seconds.txt";
/// The exit code of a `run-point` refused because another process runs the point (EX_TEMPFAIL).
pub const EXIT_LOCKED: i32 = 75;
/// The exit code of a `run-point` stopped by a signal, its checkpoint kept (the shell's 128 + SIGTERM).
pub const EXIT_STOPPED: i32 = 143;

/// How the last attempt at a point ended, as its record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// An attempt is running (or its process died without saying so: the lock tells).
    Running,
    /// Trained and evaluated.
    Done,
    /// `train` or `eval` failed: see the exit code and the log.
    Failed,
    /// Stopped by a signal with its checkpoint kept: it resumes when run again.
    Stopped,
}

/// A Slurm array task: its array job, its index, and the job id of the task itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmTask {
    /// The array's job id (`SLURM_ARRAY_JOB_ID`).
    pub array_job: String,
    /// The task's index in the array (`SLURM_ARRAY_TASK_ID`): the point's index.
    pub task: usize,
}

impl SlurmTask {
    /// `123_4`, as `squeue` and `scancel` name the task.
    pub fn id(&self) -> String {
        format!("{}_{}", self.array_job, self.task)
    }

    /// The task this process runs as, from Slurm's environment; `None` outside an array job.
    pub fn of_this_process() -> Option<SlurmTask> {
        let array_job = std::env::var("SLURM_ARRAY_JOB_ID").ok()?;
        let task = std::env::var("SLURM_ARRAY_TASK_ID").ok()?.parse().ok()?;
        Some(SlurmTask { array_job, task })
    }
}

/// A point's record (`sweep-point.json`): what happened to it, attempt by attempt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PointRecord {
    /// The point's folder name.
    pub point: String,
    /// How the last attempt ended; `None` before the first.
    pub outcome: Option<Outcome>,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts that failed (a stop by a signal is not a failure).
    pub failures: u32,
    /// The exit code of the last failure's `train` or `eval`.
    pub exit_code: Option<i32>,
    /// What the last attempt ended on: the failing command's last error line, or the signal.
    pub message: String,
    /// `train` has finished (every epoch, or early stopping).
    pub trained: bool,
    /// `eval` has run (or the study evaluates nothing).
    pub evaluated: bool,
    /// Wall-clock seconds of all attempts together.
    pub seconds: f64,
    /// Where the last attempt ran.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started and, once it has, ended (UTC).
    pub started: String,
    /// When the last attempt ended.
    pub ended: String,
    /// The Slurm task of the last attempt.
    pub slurm: Option<SlurmTask>,
    /// The Slurm task the point was last submitted as.
    pub submitted: Option<SlurmTask>,
}

impl PointRecord {
    /// The record in `dir`; an empty one when there is none (a point never started). A folder
    /// finished by an older `sweep` (its `sweep_seconds.txt`) reads as done.
    pub fn read(dir: &Path) -> Result<PointRecord> {
        let path = dir.join(RECORD_FILE);
        if !path.is_file() {
            let old = dir.join(OLD_DONE_FILE);
            if let Ok(text) = std::fs::read_to_string(&old) {
                let seconds = text.trim().parse().unwrap_or(f64::NAN);
                return Ok(PointRecord {
                    outcome: Some(Outcome::Done),
                    trained: true,
                    evaluated: true,
                    seconds,
                    ..PointRecord::default()
                });
            }
            return Ok(PointRecord::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: not a sweep point's record: {e}", path.display())))
    }

    /// Replaces the record in `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        crate::runs::write_file(&dir.join(RECORD_FILE), format!("{text}\n").as_bytes())
    }
}

/// Whether a process holds the point's lock now (it is running there).
pub fn is_locked(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(LOCK_FILE)) else { return false };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

/// The lock of a point's folder, held while the value lives (the system releases it when the
/// process dies, however it dies).
struct PointLock {
    _file: File,
}

impl PointLock {
    /// Takes the lock, or says which attempt holds it.
    fn take(dir: &Path, point: &Point) -> Result<PointLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Io { path: path.clone(), source })?;
        if file.try_lock().is_err() {
            let record = PointRecord::read(dir).unwrap_or_default();
            let slurm = record.slurm.map(|t| format!(", Slurm task {}", t.id())).unwrap_or_default();
            return Err(Error::Config(format!(
                "point {} is already running (process {} on {}{slurm}, since {}): {} is locked; not started twice",
                point.describe(),
                record.pid,
                record.host,
                record.started,
                path.display()
            )));
        }
        Ok(PointLock { _file: file })
    }
}

/// The signals `run-point` answers: SIGUSR1 (Slurm's warning before the time limit) stops the
/// point and requeues its task; SIGTERM and SIGINT (a cancel, Ctrl-C) stop it.
struct Signals {
    requeue: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> Result<Signals> {
        let (requeue, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let register = |signal, flag: &Arc<AtomicBool>| {
            signal_hook::flag::register(signal, flag.clone())
                .map_err(|e| Error::Config(format!("cannot install the handler of signal {signal}: {e}")))
        };
        register(signal_hook::consts::SIGUSR1, &requeue)?;
        register(signal_hook::consts::SIGTERM, &stop)?;
        register(signal_hook::consts::SIGINT, &stop)?;
        Ok(Signals { requeue, stop })
    }

    /// The stop asked for, if any.
    fn asked(&self) -> Option<Stop> {
        if self.requeue.load(Ordering::SeqCst) {
            Some(Stop::Requeue)
        } else if self.stop.load(Ordering::SeqCst) {
            Some(Stop::Cancel)
        } else {
            None
        }
    }
}

/// Why a point stopped before it was done.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// SIGUSR1: checkpoint, then requeue the Slurm task.
    Requeue,
    /// SIGTERM or SIGINT: checkpoint and end.
    Cancel,
}

/// How one child (`train` or `eval`) ended.
enum ChildEnd {
    Success,
    Stopped(Stop),
    Failed { code: Option<i32>, status: ExitStatus },
}

/// Options of `run-point` that are not the study's.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// CPU threads of `train` and `eval` (`None`: what Slurm allocated, else all cores),
    /// unless the study's flags set them.
    pub threads: Option<usize>,
    /// The folder holding the `train` and `eval` executables.
    pub bin_dir: PathBuf,
}

/// The CPU threads a point runs on: `--threads`, else the CPUs Slurm allocated to the task.
fn threads_for(options: &RunOptions) -> Option<usize> {
    if options.threads.is_some() {
        return options.threads;
    }
    let from = |name: &str| std::env::var(name).ok()?.split('(').next()?.trim().parse::<usize>().ok();
    from("SLURM_CPUS_PER_TASK").or_else(|| from("SLURM_JOB_CPUS_PER_NODE"))
}

/// `train` or `eval` beside this executable (or in `bin_dir`), refused if missing.
pub fn binary(bin_dir: &Path, name: &str) -> Result<PathBuf> {
    let path = bin_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        return Err(Error::Config(format!(
            "{}: no such executable (build it with cargo build --release -p vae --bin {name})",
            path.display()
        )));
    }
    Ok(path)
}

/// The folder of this executable, where `train` and `eval` are.
pub fn own_bin_dir() -> Result<PathBuf> {
    let me = std::env::current_exe().map_err(|e| Error::Config(format!("cannot locate this executable: {e}")))?;
    Ok(me.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// The machine's name, for the record.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The last lines of a file (for a failure's report), or nothing when it cannot be read.
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| l.to_string()).collect()
}

/// Runs point `index` of `study` to the end (see the module's documentation): trains it (or
/// resumes it), evaluates it, and records each step. Returns the process's exit code: 0 when
/// done (or already done), the failing command's code, [`EXIT_STOPPED`] after a signal,
/// [`EXIT_LOCKED`] when another process runs the point.
pub fn run_point(study: &Study, index: usize, options: &RunOptions) -> Result<i32> {
    let points = study.points()?;
    let point = points.get(index).ok_or_else(|| {
        Error::Config(format!(
            "--index {index}: {} has {} points (indices 0 to {})",
            study.source,
            points.len(),
            points.len().saturating_sub(1)
        ))
    })?;
    study.check_point(point)?;
    let dir = &point.dir;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    let _lock = match PointLock::take(dir, point) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_LOCKED);
        }
    };
    let mut record = PointRecord::read(dir)?;
    if record.outcome == Some(Outcome::Done) {
        println!("point {}: already done", point.describe());
        return Ok(0);
    }
    let signals = Signals::install()?;
    let started = Instant::now();
    record.point = point.name.clone();
    record.outcome = Some(Outcome::Running);
    record.attempts += 1;
    record.host = host_name();
    record.pid = std::process::id();
    record.started = crate::provenance::utc_timestamp(SystemTime::now());
    record.ended.clear();
    record.message.clear();
    record.slurm = SlurmTask::of_this_process();
    record.write(dir)?;
    let log_path = dir.join(LOG_FILE);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| Error::Io { path: log_path.clone(), source })?;
    let threads = threads_for(options);
    let with_threads = |mut args: Vec<String>| {
        if let (Some(t), false) = (threads, point.sets_train_flag("threads")) {
            args.extend(["--threads".to_string(), t.to_string()]);
        }
        args
    };
    let mut steps: Vec<(&str, Vec<String>)> = vec![];
    if !record.trained && crate::trainer::training_finished(dir)? {
        record.trained = true;
    }
    if !record.trained {
        let mut args = point.train_args();
        let last = dir.join(LAST_CHECKPOINT);
        if last.is_file() {
            args.extend(["--resume".to_string(), last.display().to_string()]);
        }
        steps.push(("train", with_threads(args)));
    }
    match point.eval_args() {
        Some(args) if !record.evaluated => {
            let mut args = args;
            if let (Some(t), false) = (threads, point.eval_flags.iter().flatten().any(|f| f.name == "threads")) {
                args.extend(["--threads".to_string(), t.to_string()]);
            }
            steps.push(("eval", args));
        }
        _ => record.evaluated = true,
    }
    let mut exit = 0;
    for (name, args) in steps {
        let bin = binary(&options.bin_dir, name)?;
        let header = format!(
            "=== attempt {} of point {} on {} at {}{}: {name} {}\n",
            record.attempts,
            point.describe(),
            record.host,
            record.started,
            record.slurm.as_ref().map(|t| format!(" (Slurm task {})", t.id())).unwrap_or_default(),
            shell_words(&args)
        );
        log.write_all(header.as_bytes()).map_err(|source| Error::Io { path: log_path.clone(), source })?;
        println!("point {}: {name}", point.describe());
        let child = spawn_logged(&bin, &args, &log, &log_path)?;
        match supervise(child, &signals).map_err(|source| Error::Io { path: bin.clone(), source })? {
            ChildEnd::Success if name == "train" => record.trained = true,
            ChildEnd::Success => record.evaluated = true,
            ChildEnd::Stopped(stop) => {
                record.outcome = Some(Outcome::Stopped);
                record.message = match stop {
                    Stop::Requeue => format!("stopped in {name} by SIGUSR1 (the time limit is near); requeued"),
                    Stop::Cancel => format!("stopped in {name} by a signal (cancelled); resumes from its checkpoint"),
                };
                if stop == Stop::Requeue {
                    requeue(&mut record);
                }
                exit = EXIT_STOPPED;
                break;
            }
            ChildEnd::Failed { code, status } => {
                record.outcome = Some(Outcome::Failed);
                record.failures += 1;
                record.exit_code = code;
                let error_line =
                    last_lines(&log_path, 40).into_iter().rev().find(|l| l.contains("error")).unwrap_or_default();
                record.message = format!(
                    "{name} {status}{}",
                    if error_line.is_empty() { String::new() } else { format!(": {error_line}") }
                );
                exit = code.unwrap_or(1).max(1);
                break;
            }
        }
    }
    if exit == 0 {
        // The run's page with its evaluation, written here, in the point's own process: a
        // launcher's points write theirs side by side, and `collect` has none left to write.
        crate::tools::report::write_report(dir)?;
        record.outcome = Some(Outcome::Done);
        record.exit_code = Some(0);
    }
    record.seconds += started.elapsed().as_secs_f64();
    record.ended = crate::provenance::utc_timestamp(SystemTime::now());
    record.write(dir)?;
    match record.outcome {
        Some(Outcome::Done) => println!("point {}: done in {:.1} s", point.describe(), record.seconds),
        Some(Outcome::Failed) => {
            eprintln!(
                "error: point {} failed: {}; its log is {}",
                point.describe(),
                record.message,
                log_path.display()
            );
            for line in last_lines(&log_path, 5) {
                eprintln!("  | {line}");
            }
        }
        _ => println!("point {}: {}", point.describe(), record.message),
    }
    Ok(exit)
}

/// Starts `bin args` with its output appended to the log.
fn spawn_logged(bin: &Path, args: &[String], log: &File, log_path: &Path) -> Result<Child> {
    let io = |source| Error::Io { path: log_path.to_path_buf(), source };
    let (out, err) = (log.try_clone().map_err(io)?, log.try_clone().map_err(io)?);
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::Config(format!("cannot run {}: {e}", bin.display())))
}

/// Waits for a child, passing a stop on to it as SIGINT (`train` checkpoints at the next batch
/// boundary and exits; `eval` just ends).
fn supervise(mut child: Child, signals: &Signals) -> std::io::Result<ChildEnd> {
    let mut asked = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(match (status.success(), asked) {
                (_, Some(stop)) => ChildEnd::Stopped(stop),
                (true, None) => ChildEnd::Success,
                // train's code after Ctrl-C or SIGTERM, sent to it directly (a scancel signals
                // every process of the job): its checkpoint is saved.
                (false, None) if status.code() == Some(130) => ChildEnd::Stopped(Stop::Cancel),
                (false, None) => ChildEnd::Failed { code: status.code(), status },
            });
        }
        if asked.is_none() {
            asked = signals.asked();
            if asked.is_some() {
                send_signal(child.id(), libc::SIGINT);
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Sends `signal` to process `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; a process that has already exited makes it fail
    // with ESRCH, which is what we want then.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Asks Slurm to requeue this task (`scontrol requeue`): it starts again, resuming from the
/// checkpoint. Without Slurm, or when that fails, the record says to run the sweep again.
fn requeue(record: &mut PointRecord) {
    let Ok(job) = std::env::var("SLURM_JOB_ID") else {
        record.message = "stopped by SIGUSR1 outside Slurm: nothing to requeue; run the sweep again to resume".into();
        return;
    };
    match Command::new("scontrol").args(["requeue", &job]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            record.message = format!(
                "stopped by SIGUSR1; `scontrol requeue {job}` failed ({}): run the sweep again to resume",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        }
        Err(e) => {
            record.message = format!("stopped by SIGUSR1; cannot run scontrol ({e}): run the sweep again to resume")
        }
    }
}

/// Arguments as a shell would need them typed: plain words bare, anything else single-quoted.
pub fn shell_words<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            let plain = !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,:@+%".contains(c));
            if plain {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quote_only_what_a_shell_would_split_or_expand() {
        assert_eq!(shell_words(&["--beta", "4", "/a/b=c"]), "--beta 4 /a/b=c");
        assert_eq!(shell_words(&["a b", "it's", "$HOME", ""]), r"'a b' 'it'\''s' '$HOME' ''");
    }

    #[test]
    fn a_record_comes_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(PointRecord::read(dir.path()).unwrap(), PointRecord::default(), "no record: never started");
        let record = PointRecord {
            point: "beta=1".into(),
            outcome: Some(Outcome::Failed),
            attempts: 2,
            failures: 1,
            exit_code: Some(1),
            slurm: Some(SlurmTask { array_job: "12".into(), task: 3 }),
            ..PointRecord::default()
        };
        record.write(dir.path()).unwrap();
        assert_eq!(PointRecord::read(dir.path()).unwrap(), record);
        assert!(std::fs::read_to_string(dir.path().join(RECORD_FILE)).unwrap().contains("\"outcome\": \"failed\""));
    }

    #[test]
    fn a_record_that_is_not_one_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "{\"outcome\": \"exploded\"}", "[1, 2]", "{\"attempts\": -1}"] {
            std::fs::write(dir.path().join(RECORD_FILE), text).unwrap();
            let e = PointRecord::read(dir.path()).unwrap_err().to_string();
            assert!(e.contains(RECORD_FILE) && e.contains("not a sweep point's record"), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_folder_an_older_sweep_finished_reads_as_done() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(OLD_DONE_FILE), "12.50\n").unwrap();
        let record = PointRecord::read(dir.path()).unwrap();
        assert_eq!((record.outcome, record.seconds), (Some(Outcome::Done), 12.5));
    }

    #[test]
    fn a_held_lock_is_seen_and_refuses_a_second_start() {
        let dir = tempfile::tempdir().unwrap();
        let point = Point {
            index: 0,
            name: "p".into(),
            dir: dir.path().to_path_buf(),
            labels: vec![],
            train_flags: vec![],
            eval_flags: None,
        };
        assert!(!is_locked(dir.path()));
        let lock = PointLock::take(dir.path(), &point).unwrap();
        assert!(is_locked(dir.path()));
        let e = PointLock::take(dir.path(), &point).err().unwrap().to_string();
        assert!(e.contains("already running") && e.contains("not started twice"), "{e}");
        drop(lock);
        assert!(!is_locked(dir.path()));
    }
}
