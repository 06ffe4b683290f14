//! The launchers: what starts a study's points not yet done. Each point is one
//! `sweep run-point --study SWEEP_DIR/study.toml --index I` command ([`super::point`]), so the
//! three launchers differ only in who runs those commands:
//!
//! - `local`: this process, `--jobs N` at a time, the cores divided among them;
//! - `slurm`: a Slurm job array (`SWEEP_DIR/slurm/array.sbatch`), one task per point;
//! - `print`: nobody yet: the commands go to `SWEEP_DIR/jobs.txt`, for GNU parallel, `xargs -P`
//!   or any other scheduler.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::point::{self, Outcome, PointRecord, SlurmTask};
use super::status::{point_states, PointState};
use super::study::{Point, Study, SNAPSHOT_FILE};
use crate::error::{Error, Result};

/// How often the local launcher looks at its points' processes: a point's end starts the next
/// one at most this late (a tiny run takes well under a second).
const POLL: Duration = Duration::from_millis(10);

/// Who runs the points (`sweep --launcher`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Launcher {
    /// This machine, `--jobs` points at a time.
    Local,
    /// A Slurm job array, one task per point not yet done.
    Slurm,
    /// One command per point in SWEEP_DIR/jobs.txt, for GNU parallel or another scheduler.
    Print,
}

/// How a sweep is launched: the flags of `sweep` that are not the study's.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    /// Who runs the points.
    pub launcher: Launcher,
    /// Points at once (local: default 1; Slurm: the array's `%K` limit, default none).
    pub jobs: Option<usize>,
    /// CPU threads per point (default: the cores divided among `jobs`; under Slurm, the CPUs it allocates).
    pub threads: Option<usize>,
    /// A point that failed this many times is not started again.
    pub max_attempts: u32,
    /// `--slurm-opt KEY=VALUE`s, over the study's `[slurm]` table.
    pub slurm_options: Vec<String>,
    /// Print the Slurm script instead of submitting it.
    pub dry_run: bool,
    /// Where `sweep`, `train` and `eval` are.
    pub bin_dir: PathBuf,
}

/// Writes the study's copy in its folder (the file every job reads), refusing a folder that
/// holds another study's points.
pub fn write_snapshot(study: &Study) -> Result<PathBuf> {
    let dir = study.dir();
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    let path = dir.join(SNAPSHOT_FILE);
    if path.is_file() {
        let held = Study::read(&path, None)?;
        // Each point as its folder and its commands.
        let describe = |s: &Study| -> Result<Vec<(String, String)>> {
            Ok(s.points()?
                .into_iter()
                .map(|p| {
                    let eval = p.eval_args().map(|a| point::shell_words(&a)).unwrap_or_default();
                    (p.name.clone(), format!("{} | {eval}", point::shell_words(&p.train_args())))
                })
                .collect())
        };
        let (old, new) = (describe(&held)?, describe(study)?);
        if old != new {
            let first = old
                .iter()
                .zip(&new)
                .position(|(a, b)| a != b)
                .map(|i| format!("point {i} is {} there, {} here", old[i].0, new[i].0))
                .unwrap_or_else(|| format!("{} points there, {} here", old.len(), new.len()));
            return Err(Error::Config(format!(
                "{}: {} holds another study ({first}; or their commands differ): give this one another name or root",
                study.source,
                path.display()
            )));
        }
    }
    crate::runs::write_file(&path, study.to_toml().as_bytes())?;
    Ok(path)
}

/// The points to start now: not done, not running, not queued, not failed `max_attempts`
/// times (those given up on: counted); those left out are said why.
fn points_to_run(study: &Study, max_attempts: u32) -> Result<(Vec<Point>, usize)> {
    let (mut to_run, mut given_up) = (vec![], 0);
    for (p, state, record) in point_states(study)? {
        match state {
            PointState::Done => {}
            PointState::Running => println!("point {}: running, left alone", p.describe()),
            PointState::Queued(task) => {
                println!("point {}: queued as Slurm task {}, left alone", p.describe(), task.id())
            }
            PointState::Failed if record.failures >= max_attempts => {
                given_up += 1;
                println!(
                    "point {}: failed {} time(s), not started again (--max-attempts {max_attempts}); its log is {}",
                    p.describe(),
                    record.failures,
                    p.dir.join(point::LOG_FILE).display()
                )
            }
            _ => to_run.push(p),
        }
    }
    Ok((to_run, given_up))
}

/// The number of cores of this machine.
fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// How a launch ended.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Launched {
    /// Points left failed: by the local launcher, or before it (failed `--max-attempts`
    /// times); 0 for the other launchers, which only submit or write.
    pub failed: usize,
    /// The local launcher was stopped (Ctrl-C, SIGTERM) before every point ran.
    pub stopped: bool,
}

/// Launches the study's points not yet done as `options` say.
pub fn launch(study: &Study, options: &LaunchOptions) -> Result<Launched> {
    let (to_run, given_up) = points_to_run(study, options.max_attempts)?;
    let total = study.points()?.len();
    match options.launcher {
        Launcher::Local => {
            let launched = run_local(study, to_run, total, options)?;
            Ok(Launched { failed: launched.failed + given_up, ..launched })
        }
        Launcher::Print => {
            write_job_list(study, &to_run, options)?;
            Ok(Launched::default())
        }
        Launcher::Slurm => {
            submit_slurm(study, &to_run, options)?;
            Ok(Launched::default())
        }
    }
}

/// The command that runs the point at `index` (a number, or the shell variable a job array sets).
fn run_point_command(study: &Study, index: &str, options: &LaunchOptions, threads: Option<usize>) -> Vec<String> {
    let mut args = vec![
        options.bin_dir.join("sweep").display().to_string(),
        "run-point".into(),
        "--study".into(),
        study.dir().join(SNAPSHOT_FILE).display().to_string(),
        "--index".into(),
        index.to_string(),
    ];
    if let Some(t) = threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    args
}

/// `--threads`, else the cores divided among `jobs`.
fn threads_per_point(options: &LaunchOptions, jobs: usize) -> usize {
    options.threads.unwrap_or_else(|| (cores() / jobs).max(1))
}

/// The local launcher: `jobs` points at a time, each a `run-point` process, a failed point
/// started again until it has failed `max_attempts` times. A line per event says how many are
/// done, running and left.
fn run_local(study: &Study, to_run: Vec<Point>, total: usize, options: &LaunchOptions) -> Result<Launched> {
    let jobs = options.jobs.unwrap_or(1).max(1);
    let threads = threads_per_point(options, jobs);
    if jobs * threads > cores() {
        eprintln!(
            "warning: {jobs} points at once × {threads} threads each is more than this machine's {} cores: they will \
             slow each other down",
            cores()
        );
    }
    let already_done = total - to_run.len();
    println!(
        "sweep {}: {total} points, {already_done} done or left alone, {} to run, {jobs} at a time on {threads} thread(s) \
         each, into {}",
        study.name,
        to_run.len(),
        study.dir().display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| Error::Config(format!("cannot install the handler of signal {signal}: {e}")))?;
    }
    let mut pending: VecDeque<Point> = to_run.into();
    let mut running: Vec<(Point, Child, Instant)> = vec![];
    let (mut done, mut failed) = (already_done, 0usize);
    let started = Instant::now();
    let mut forwarded = false;
    loop {
        while running.len() < jobs && !stop.load(Ordering::SeqCst) {
            let Some(p) = pending.pop_front() else { break };
            let argv = run_point_command(study, &p.index.to_string(), options, Some(threads));
            let child = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| Error::Config(format!("cannot run {}: {e}", argv[0])))?;
            running.push((p, child, Instant::now()));
            progress(
                started,
                done,
                running.len(),
                pending.len(),
                failed,
                &format!("{} started", running[running.len() - 1].0.name),
            );
        }
        if running.is_empty() {
            break;
        }
        if stop.load(Ordering::SeqCst) && !forwarded {
            // Ctrl-C reaches the children from the terminal; a SIGTERM to this process alone does not.
            for (_, child, _) in &running {
                point::send_signal(child.id(), libc::SIGTERM);
            }
            forwarded = true;
        }
        let mut i = 0;
        while i < running.len() {
            let Some(status) = running[i].1.try_wait().map_err(|source| Error::Io { path: study.dir(), source })?
            else {
                i += 1;
                continue;
            };
            let (p, _, since) = running.swap_remove(i);
            let record = PointRecord::read(&p.dir).unwrap_or_default();
            let seconds = since.elapsed().as_secs_f64();
            let what = match record.outcome {
                Some(Outcome::Done) if status.success() => {
                    done += 1;
                    format!("{} done in {seconds:.1} s", p.name)
                }
                Some(Outcome::Failed) if record.failures < options.max_attempts && !stop.load(Ordering::SeqCst) => {
                    let line = format!(
                        "{} failed ({}), attempt {} of {}: started again; its log is {}",
                        p.name,
                        record.message,
                        record.failures,
                        options.max_attempts,
                        p.dir.join(point::LOG_FILE).display()
                    );
                    pending.push_back(p);
                    line
                }
                Some(Outcome::Stopped) => format!("{} stopped: {}", p.name, record.message),
                _ => {
                    failed += 1;
                    let why = if record.message.is_empty() { status.to_string() } else { record.message.clone() };
                    format!("{} failed ({why}); its log is {}", p.name, p.dir.join(point::LOG_FILE).display())
                }
            };
            progress(started, done, running.len(), pending.len(), failed, &what);
        }
        std::thread::sleep(POLL);
    }
    let stopped = stop.load(Ordering::SeqCst);
    if stopped {
        println!(
            "sweep {}: stopped; run the same command again to go on (stopped points resume from their checkpoints)",
            study.name
        );
    }
    Ok(Launched { failed, stopped })
}

/// One progress line: points done / running / left, then what just happened.
fn progress(started: Instant, done: usize, running: usize, left: usize, failed: usize, what: &str) {
    let failed = if failed > 0 { format!(", {failed} failed") } else { String::new() };
    println!(
        "[{:>6.1} s] {done} done, {running} running, {left} left{failed}: {what}",
        started.elapsed().as_secs_f64()
    );
}

/// The print launcher: one `run-point` command per point not done, in `SWEEP_DIR/jobs.txt`.
fn write_job_list(study: &Study, to_run: &[Point], options: &LaunchOptions) -> Result<()> {
    let threads = options.threads.or(options.jobs.map(|jobs| threads_per_point(options, jobs)));
    let mut text = String::new();
    for p in to_run {
        text += &point::shell_words(&run_point_command(study, &p.index.to_string(), options, threads));
        text.push('\n');
    }
    let path = study.dir().join("jobs.txt");
    crate::runs::write_file(&path, text.as_bytes())?;
    print!("{text}");
    let jobs = options.jobs.unwrap_or(1);
    println!(
        "wrote {} ({} point(s) not done); run them with e.g. `parallel -j {jobs} :::: {0}`, then `sweep collect --study {}`",
        path.display(),
        to_run.len(),
        study.dir().display()
    );
    Ok(())
}

/// Slurm options the launcher writes itself: a `--slurm-opt` cannot change them.
const OWNED_SLURM_OPTIONS: [&str; 6] = ["array", "output", "error", "open-mode", "chdir", "parsable"];

/// The study's `[slurm]` options with the `--slurm-opt`s over them, in order, checked (a key
/// the sweep writes itself, or not an option's name, is refused).
pub fn slurm_options(study: &Study, given: &[String]) -> Result<Vec<(String, Option<String>)>> {
    let mut options = study.slurm.clone();
    for (key, _) in &study.slurm {
        check_slurm_key(&format!("{}: slurm.{key}", study.source), key)?;
    }
    for opt in given {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k.trim().trim_start_matches("--").to_string(), Some(v.to_string())),
            None => (opt.trim().trim_start_matches("--").to_string(), None),
        };
        check_slurm_key(&format!("--slurm-opt {opt}"), &key)?;
        match options.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => options.push((key, value)),
        }
    }
    Ok(options)
}

fn check_slurm_key(what: &str, key: &str) -> Result<()> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::Config(format!(
            "{what}: expected KEY=VALUE with KEY an sbatch option (e.g. partition=gpu)"
        )));
    }
    if OWNED_SLURM_OPTIONS.contains(&key) {
        return Err(Error::Config(format!("{what}: --{key} is written by the sweep itself")));
    }
    Ok(())
}

/// `0-3,5,7-9`: indices as Slurm's `--array` takes them.
pub fn array_ranges(indices: &[usize]) -> String {
    let mut parts = vec![];
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { indices[i].to_string() } else { format!("{}-{}", indices[i], indices[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// Seconds before the time limit at which a task is sent SIGUSR1, to checkpoint and requeue.
const SIGNAL_BEFORE_LIMIT_S: u32 = 120;

/// The job array script: one task per point not done (the task id is the point's index), each
/// requeueable and warned before its time limit.
pub fn slurm_script(study: &Study, to_run: &[Point], options: &LaunchOptions) -> Result<String> {
    let indices: Vec<usize> = to_run.iter().map(|p| p.index).collect();
    let limit = options.jobs.map(|k| format!("%{k}")).unwrap_or_default();
    let slurm_dir = study.dir().join("slurm");
    let cwd = std::env::current_dir().map_err(|e| Error::Config(format!("cannot read the working directory: {e}")))?;
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("# The points of study {} not yet done, one array task each (task id = point index).", study.name),
        format!(
            "# Written by `sweep --launcher slurm`; `sweep status --study {}` says how they stand.",
            study.dir().display()
        ),
        format!("#SBATCH --job-name=sweep-{}", study.name),
        format!("#SBATCH --array={}{limit}", array_ranges(&indices)),
        format!("#SBATCH --output={}/%A_%a.out", slurm_dir.display()),
        "#SBATCH --open-mode=append".into(),
        format!("#SBATCH --chdir={}", cwd.display()),
        "# Requeued after a node failure or the point's own request; SIGUSR1 before the time limit".into(),
        "# makes the point checkpoint and requeue itself, so that it resumes instead of losing the epoch.".into(),
        "#SBATCH --requeue".into(),
    ];
    let options_list = slurm_options(study, &options.slurm_options)?;
    if !options_list.iter().any(|(k, _)| k == "signal") {
        lines.push(format!("#SBATCH --signal=B:USR1@{SIGNAL_BEFORE_LIMIT_S}"));
    }
    if !options_list.iter().any(|(k, _)| k == "cpus-per-task" || k == "c") {
        if let Some(threads) = options.threads {
            lines.push(format!("#SBATCH --cpus-per-task={threads}"));
        }
    }
    for (key, value) in &options_list {
        lines.push(match value {
            Some(v) => format!("#SBATCH --{key}={v}"),
            None => format!("#SBATCH --{key}"),
        });
    }
    let task = "$SLURM_ARRAY_TASK_ID";
    // Every word quoted for the shell but the task id, which the shell is to expand.
    let words: Vec<String> = run_point_command(study, task, options, options.threads)
        .iter()
        .map(|word| if word == task { format!("\"{task}\"") } else { point::shell_words(&[word]) })
        .collect();
    lines.push(format!("exec {}", words.join(" ")));
    Ok(lines.join("\n") + "\n")
}

/// The Slurm launcher: writes `SWEEP_DIR/slurm/array.sbatch` and submits it with `sbatch`
/// (or, with `--dry-run`, prints it), recording in each point's record the task it was
/// submitted as.
fn submit_slurm(study: &Study, to_run: &[Point], options: &LaunchOptions) -> Result<()> {
    if to_run.is_empty() {
        println!("sweep {}: every point is done, running or queued: nothing to submit", study.name);
        return Ok(());
    }
    let script = slurm_script(study, to_run, options)?;
    if options.dry_run {
        print!("{script}");
        return Ok(());
    }
    let slurm_dir = study.dir().join("slurm");
    std::fs::create_dir_all(&slurm_dir).map_err(|source| Error::Io { path: slurm_dir.clone(), source })?;
    let path = slurm_dir.join("array.sbatch");
    crate::runs::write_file(&path, script.as_bytes())?;
    let out = Command::new("sbatch").arg("--parsable").arg(&path).output().map_err(|e| {
        Error::Config(format!(
            "cannot run sbatch ({e}): is Slurm installed here? (--launcher print writes a job list instead)"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Config(format!(
            "sbatch {} refused the job array: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // --parsable prints "JOBID" or "JOBID;CLUSTER".
    let job = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap_or_default().to_string();
    for p in to_run {
        let mut record = PointRecord::read(&p.dir).unwrap_or_default();
        record.point = p.name.clone();
        record.submitted = Some(SlurmTask { array_job: job.clone(), task: p.index });
        std::fs::create_dir_all(&p.dir).map_err(|source| Error::Io { path: p.dir.clone(), source })?;
        record.write(&p.dir)?;
    }
    println!(
        "submitted Slurm job {job}: {} task(s), array {} ({}); follow them with `sweep status --study {}`, then \
         `sweep collect --study {3}`",
        to_run.len(),
        array_ranges(&to_run.iter().map(|p| p.index).collect::<Vec<_>>()),
        path.display(),
        study.dir().display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ranges_join_runs_of_indices() {
        assert_eq!(array_ranges(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_ranges(&[0, 2, 3, 4, 7]), "0,2-4,7");
        assert_eq!(array_ranges(&[5]), "5");
    }

    #[test]
    fn slurm_options_the_sweep_writes_are_refused() {
        let study = Study::parse("s.toml", "s", "[grid]\nbeta = [0]\n").unwrap();
        let e = slurm_options(&study, &["array=0-9".into()]).unwrap_err().to_string();
        assert!(e.contains("--slurm-opt array=0-9: --array is written by the sweep"), "{e}");
        let e = slurm_options(&study, &["time 1:00".into()]).unwrap_err().to_string();
        assert!(e.contains("expected KEY=VALUE"), "{e}");
        let given = ["partition=gpu".to_string(), "exclusive".to_string(), "partition=cpu".to_string()];
        assert_eq!(
            slurm_options(&study, &given).unwrap(),
            vec![("partition".to_string(), Some("cpu".to_string())), ("exclusive".to_string(), None)]
        );
    }
}
