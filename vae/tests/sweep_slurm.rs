//! `sweep --launcher slurm` on a real Slurm: a one-node cluster on 127.0.0.1
//! (`tests/slurm/one-node-cluster.sh`: munged, slurmctld and slurmd as root, every file under a
//! scratch folder), started for these tests and stopped when the last of them ends. A study
//! submitted as a job array ends as the local launcher's does, bit for bit; a task cancelled
//! with `scancel` while it trains, or warned of its time limit with SIGUSR1, resumes and ends
//! as an uninterrupted run; a point given a bad value fails with its log while the others
//! finish.
//!
//! Without Slurm or root these tests say why and skip; with `VAE_REQUIRE_SLURM=1` (set in CI,
//! whose `.ci/run` installs slurm-wlm and munge) that is a failure instead.

use crate::common;
use crate::sweep_cli::{assert_same_run, metrics_epochs, ok, record, sweep, tiny_study, wait_for, write_study};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long a test waits for a job array: its points take seconds, but on two busy cores
/// beside the rest of the suite, and behind other tests' tasks.
const JOB_LIMIT: Duration = Duration::from_secs(600);

/// A running one-node cluster; stopped (its daemons only, by their pids) when dropped.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn script() -> &'static str {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slurm/one-node-cluster.sh")
    }

    fn start() -> Result<Cluster, String> {
        let dir = common::scratch("slurm-cluster");
        let out = Command::new("bash")
            .arg(Cluster::script())
            .arg("start")
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", Cluster::script()))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Cluster { dir })
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// A Slurm client command (`squeue`, `scancel`) pointed at this cluster.
    fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf());
        c
    }

    /// `sweep` pointed at this cluster.
    fn sweep(&self) -> common::IsolatedCommand {
        let mut c = sweep();
        c.env("SLURM_CONF", self.conf());
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(Cluster::script()).arg("stop").arg(self.dir.path()).status();
    }
}

/// The cluster the tests running now share, started by the first of them; `None` (the test
/// skips, saying why) where Slurm cannot start, unless `VAE_REQUIRE_SLURM=1`.
fn cluster() -> Option<Arc<Cluster>> {
    static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = shared.upgrade() {
        return Some(cluster);
    }
    match Cluster::start() {
        Ok(cluster) => {
            let cluster = Arc::new(cluster);
            *shared = Arc::downgrade(&cluster);
            Some(cluster)
        }
        Err(why) if std::env::var("VAE_REQUIRE_SLURM").as_deref() == Ok("1") => {
            panic!("VAE_REQUIRE_SLURM=1 but the one-node Slurm cluster did not start: {why}")
        }
        Err(why) => {
            eprintln!("skipped: no Slurm cluster ({why}); apt-get install -y slurm-wlm munge, and run as root");
            None
        }
    }
}

/// Launches `study` on the cluster into `root`; returns what `sweep` printed.
fn launch_on(cluster: &Cluster, study: &Path, root: &Path) -> String {
    ok(cluster
        .sweep()
        .args(["--launcher", "slurm", "--slurm-opt", "cpus-per-task=1", "--study"])
        .arg(study)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap())
}

/// Launches `study` on the cluster into `root`, which must submit a job array; returns its job id.
fn submit(cluster: &Cluster, study: &Path, root: &Path) -> String {
    let text = launch_on(cluster, study, root);
    let job = text.split("submitted Slurm job ").nth(1).and_then(|rest| rest.split(':').next());
    job.unwrap_or_else(|| panic!("no job id in:\n{text}")).to_string()
}

/// Whether `squeue` still lists any task of `job`.
fn in_queue(cluster: &Cluster, job: &str) -> bool {
    let out = cluster.client("squeue").args(["-h", "-r", "-o", "%i", "-j", job]).output().unwrap();
    // squeue refuses a job id it has forgotten: that job is out of the queue.
    out.status.success() && !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

fn wait_for_job(cluster: &Cluster, job: &str) {
    wait_for(&format!("Slurm job {job} to leave the queue"), JOB_LIMIT, || !in_queue(cluster, job));
}

/// The uninterrupted reference: the same study with the local launcher, one thread a point
/// (as `--cpus-per-task=1` gives each task).
fn run_locally(study: &Path, root: &Path) {
    ok(sweep().args(["--jobs", "2", "--threads", "1", "--study"]).arg(study).arg("--root").arg(root).output().unwrap());
}

/// One point long enough to be caught training (an epoch takes about a second on a core).
fn long_study(dir: &Path) -> PathBuf {
    write_study(dir, "long", &tiny_study(3000, 4, "[grid]\nbeta = [1]\n"))
}

#[test]
fn a_study_submitted_as_a_job_array_ends_as_the_local_launchers_bit_for_bit() {
    let Some(cluster) = cluster() else { return };
    let scratch = common::scratch("slurm-four");
    let study = write_study(scratch.path(), "four", &tiny_study(300, 2, "[grid]\nbeta = [1, 4]\nseed = [0, 1]\n"));
    let (slurm, local) = (scratch.path().join("slurm"), scratch.path().join("local"));
    let job = submit(&cluster, &study, &slurm);
    let script = std::fs::read_to_string(slurm.join("four/slurm/array.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-3\n"), "{script}");
    wait_for_job(&cluster, &job);
    let status = ok(cluster.sweep().args(["status", "--study"]).arg(slurm.join("four")).output().unwrap());
    assert!(status.contains("4 points: 4 done"), "{status}");
    ok(sweep().args(["collect", "--study"]).arg(slurm.join("four")).output().unwrap());
    run_locally(&study, &local);
    let table = |root: &Path| std::fs::read_to_string(root.join("four/table.csv")).unwrap();
    assert_eq!(table(&slurm), table(&local), "the Slurm array's table differs from the local launcher's");
    for (index, point) in ["beta=1_seed=0", "beta=1_seed=1", "beta=4_seed=0", "beta=4_seed=1"].iter().enumerate() {
        assert_same_run(&slurm.join("four").join(point), &local.join("four").join(point));
        let r = record(&slurm.join("four").join(point));
        assert_eq!(r["slurm"]["array_job"].as_str(), Some(job.as_str()), "{r}");
        assert_eq!(r["slurm"]["task"].as_u64(), Some(index as u64), "the task id is the point's index: {r}");
        let out = std::fs::read_to_string(slurm.join(format!("four/slurm/{job}_{index}.out"))).unwrap();
        assert!(out.contains(&format!("point {index} ({point}): done")), "{out}");
    }
    let again = launch_on(&cluster, &study, &slurm);
    assert!(again.contains("nothing to submit"), "{again}");
}

/// A long point submitted, caught in training: its study, its sweep's root, its folder and
/// the array's job id, once its first epoch is done.
struct Training {
    _scratch: tempfile::TempDir,
    study: PathBuf,
    root: PathBuf,
    point: PathBuf,
    job: String,
}

fn submit_and_wait_for_the_first_epoch(cluster: &Cluster, name: &str) -> Training {
    let scratch = common::scratch(name);
    let study = long_study(scratch.path());
    let root = scratch.path().join("slurm");
    let point = root.join("long/beta=1");
    let job = submit(cluster, &study, &root);
    wait_for("the first epoch", JOB_LIMIT, || !metrics_epochs(&point).is_empty());
    Training { _scratch: scratch, study, root, point, job }
}

/// Asserts that an interrupted point ended done on its second attempt, each epoch once, bit for
/// bit where the same study run straight through ends.
fn assert_resumed_as_an_uninterrupted_run(t: &Training) {
    let r = record(&t.point);
    let attempts = (r["outcome"].as_str(), r["attempts"].as_u64(), r["failures"].as_u64());
    assert_eq!(attempts, (Some("done"), Some(2), Some(0)), "{r}");
    let log = std::fs::read_to_string(t.point.join("sweep.log")).unwrap();
    assert!(log.contains("=== attempt 2") && log.contains("--resume"), "the second attempt did not resume:\n{log}");
    assert_eq!(metrics_epochs(&t.point), ["1", "2", "3", "4"], "each epoch once");
    let straight = t.root.with_file_name("straight");
    run_locally(&t.study, &straight);
    assert_same_run(&straight.join("long/beta=1"), &t.point);
}

#[test]
fn a_task_cancelled_while_it_trains_resumes_when_launched_again_and_ends_as_an_uninterrupted_run() {
    let Some(cluster) = cluster() else { return };
    let t = submit_and_wait_for_the_first_epoch(&cluster, "slurm-cancel");
    ok(cluster.client("scancel").arg(format!("{}_0", t.job)).output().unwrap());
    wait_for_job(&cluster, &t.job);
    assert!(metrics_epochs(&t.point).len() < 4, "the point finished before the cancel: make it longer");
    assert!(t.point.join("last.safetensors").is_file());
    let status = ok(cluster.sweep().args(["status", "--study"]).arg(t.root.join("long")).output().unwrap());
    assert!(status.contains("1 stopped"), "{status}");
    let again = submit(&cluster, &t.study, &t.root);
    wait_for_job(&cluster, &again);
    assert_resumed_as_an_uninterrupted_run(&t);
}

#[test]
fn a_task_warned_of_its_time_limit_checkpoints_requeues_itself_and_resumes() {
    let Some(cluster) = cluster() else { return };
    let t = submit_and_wait_for_the_first_epoch(&cluster, "slurm-requeue");
    // What Slurm does --signal's seconds before the time limit (#SBATCH --signal=B:USR1@120).
    ok(cluster.client("scancel").args(["--signal=USR1", "--batch"]).arg(format!("{}_0", t.job)).output().unwrap());
    wait_for_job(&cluster, &t.job);
    let out = std::fs::read_to_string(t.root.join(format!("long/slurm/{}_0.out", t.job))).unwrap();
    assert!(out.contains("by SIGUSR1 (the time limit is near); requeued"), "{out}");
    assert_resumed_as_an_uninterrupted_run(&t);
}

#[test]
fn a_point_given_a_bad_value_fails_with_its_log_while_the_others_finish() {
    let Some(cluster) = cluster() else { return };
    let scratch = common::scratch("slurm-bad-value");
    // 250 training images: a batch of 1000 leaves no step, which train finds once it has the data.
    let text = tiny_study(300, 1, "[grid]\nbatch-size = [32, 1000, 16]\n").replace("batch-size = 32\n", "");
    let study = write_study(scratch.path(), "bad", &text);
    let root = scratch.path().join("slurm");
    let job = submit(&cluster, &study, &root);
    wait_for_job(&cluster, &job);
    let log = root.join("bad/batch-size=1000/sweep.log");
    let status = ok(cluster.sweep().args(["status", "--study"]).arg(root.join("bad")).output().unwrap());
    assert!(status.contains("3 points: 2 done, 1 failed") && status.contains("exit code 1"), "{status}");
    assert!(status.contains("--batch-size 1000 is larger than the 250 training images"), "{status}");
    assert!(status.contains(&log.display().to_string()), "the log's path:\n{status}");
    let out = std::fs::read_to_string(root.join(format!("bad/slurm/{job}_1.out"))).unwrap();
    assert!(out.contains("point 1 (batch-size=1000) failed") && out.contains(&log.display().to_string()), "{out}");
    // Launched again: only the failed point, until it has failed --max-attempts times.
    let again = submit(&cluster, &study, &root);
    let script = std::fs::read_to_string(root.join("bad/slurm/array.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=1\n"), "{script}");
    wait_for_job(&cluster, &again);
    let third = launch_on(&cluster, &study, &root);
    assert!(third.contains("failed 2 time(s), not started again") && third.contains("nothing to submit"), "{third}");
}
