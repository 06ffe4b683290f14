//! Where a study's points stand, read from their run folders alone (each point's record and
//! lock, and for points submitted to Slurm, whether `squeue` still lists their task):
//! `sweep status`, and what the launchers and `sweep collect` decide from.

use std::collections::BTreeMap;
use std::process::Command;

use super::point::{self, Outcome, PointRecord, SlurmTask};
use super::study::{Point, Study};
use crate::error::Result;

/// Where a point stands.
#[derive(Clone, Debug, PartialEq)]
pub enum PointState {
    /// Never started, or stopped with its checkpoint kept: the next launch starts it.
    Pending,
    /// Submitted to Slurm, and its task is still in the queue.
    Queued(SlurmTask),
    /// A process holds its lock.
    Running,
    /// Trained and evaluated.
    Done,
    /// Its last attempt failed.
    Failed,
    /// Stopped by a signal, or its process died (its record says running, its lock is free):
    /// the next launch resumes it from its checkpoint.
    Stopped,
}

impl PointState {
    /// The word `sweep status` prints.
    pub fn word(&self) -> &'static str {
        match self {
            PointState::Pending => "pending",
            PointState::Queued(_) => "queued",
            PointState::Running => "running",
            PointState::Done => "done",
            PointState::Failed => "failed",
            PointState::Stopped => "stopped",
        }
    }
}

/// The tasks of the array jobs `squeue` still lists (pending, running, completing), by id
/// (`123_4`); `None` when squeue cannot be asked.
fn queued_tasks(array_jobs: &[String]) -> Option<Vec<String>> {
    let mut tasks = vec![];
    for job in array_jobs {
        let out = Command::new("squeue").args(["-h", "-r", "-o", "%i", "-j", job]).output().ok()?;
        // A job Slurm has forgotten is an error for squeue: none of its tasks is queued.
        if out.status.success() {
            tasks.extend(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()));
        }
    }
    Some(tasks)
}

/// Every point with its state and record, in grid order.
pub fn point_states(study: &Study) -> Result<Vec<(Point, PointState, PointRecord)>> {
    let mut rows = vec![];
    for p in study.points()? {
        let record = PointRecord::read(&p.dir)?;
        rows.push((p, record));
    }
    let mut array_jobs: Vec<String> = rows
        .iter()
        .filter(|(_, r)| r.outcome != Some(Outcome::Done))
        .filter_map(|(_, r)| r.submitted.as_ref().map(|t| t.array_job.clone()))
        .collect();
    array_jobs.sort();
    array_jobs.dedup();
    let queued = if array_jobs.is_empty() { Some(vec![]) } else { queued_tasks(&array_jobs) };
    Ok(rows
        .into_iter()
        .map(|(p, record)| {
            let locked = point::is_locked(&p.dir);
            let state = match record.outcome {
                Some(Outcome::Done) => PointState::Done,
                _ if locked => PointState::Running,
                _ => match (&record.submitted, &queued) {
                    (Some(task), Some(queued)) if queued.contains(&task.id()) => PointState::Queued(task.clone()),
                    _ => match record.outcome {
                        None => PointState::Pending,
                        Some(Outcome::Failed) => PointState::Failed,
                        // Running without its lock: its process died.
                        Some(Outcome::Running | Outcome::Stopped | Outcome::Done) => PointState::Stopped,
                    },
                },
            };
            (p, state, record)
        })
        .collect())
}

/// Finished epochs / epochs of a point's run, from its `metrics.csv` and configuration.
fn epochs(study: &Study, p: &Point) -> String {
    let done = crate::runs::read_metrics(&p.dir.join(crate::runs::METRICS_FILE)).map(|r| r.len()).unwrap_or(0);
    match study.point_config(p) {
        Ok(config) => format!("{done}/{}", config.epochs),
        Err(_) => format!("{done}/?"),
    }
}

/// `sweep status`: one line per point (state, attempts, epochs, seconds, Slurm task), and for
/// each failed or stopped point what it ended on, the last lines of its log and the log's path.
pub fn print_status(study: &Study) -> Result<()> {
    let states = point_states(study)?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, state, _) in &states {
        *counts.entry(state.word()).or_default() += 1;
    }
    let summary: Vec<String> = ["done", "running", "queued", "pending", "stopped", "failed"]
        .iter()
        .filter_map(|w| counts.get(w).map(|n| format!("{n} {w}")))
        .collect();
    println!("sweep {} ({}): {} points: {}", study.name, study.dir().display(), states.len(), summary.join(", "));
    let width = states.iter().map(|(p, _, _)| p.name.len()).max().unwrap_or(5).max(5);
    println!(
        "{:>5}  {:<width$}  {:<8}  {:>8}  {:>7}  {:>9}  slurm",
        "index", "point", "state", "attempts", "epochs", "seconds"
    );
    for (p, state, record) in &states {
        let slurm = match (state, &record.slurm, &record.submitted) {
            (PointState::Queued(task), _, _) => format!("{} (queued)", task.id()),
            (_, Some(task), _) => task.id(),
            (_, None, Some(task)) => format!("{} (submitted)", task.id()),
            _ => String::new(),
        };
        let seconds = if record.seconds > 0.0 { format!("{:.1}", record.seconds) } else { String::new() };
        let attempts = if record.failures > 0 {
            format!("{} ({} failed)", record.attempts, record.failures)
        } else {
            record.attempts.to_string()
        };
        println!(
            "{:>5}  {:<width$}  {:<8}  {attempts:>8}  {:>7}  {seconds:>9}  {slurm}",
            p.index,
            p.name,
            state.word(),
            epochs(study, p)
        );
        let died = record.outcome == Some(Outcome::Running) && *state == PointState::Stopped;
        if matches!(state, PointState::Failed | PointState::Stopped) {
            let why = if died {
                format!(
                    "its process ({} on {}) died without a word (killed, out of memory, or its node failed); \
                     it resumes from its last checkpoint",
                    record.pid, record.host
                )
            } else {
                let code = record
                    .exit_code
                    .filter(|_| *state == PointState::Failed)
                    .map(|c| format!("exit code {c}: "))
                    .unwrap_or_default();
                format!("{code}{}", record.message)
            };
            println!("{:>5}  {why}", "");
            let log = p.dir.join(point::LOG_FILE);
            if *state == PointState::Failed {
                for line in point::last_lines(&log, 3) {
                    println!("{:>5}  | {line}", "");
                }
            }
            println!("{:>5}  log: {}", "", log.display());
        }
    }
    Ok(())
}
