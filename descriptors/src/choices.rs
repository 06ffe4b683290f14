//! Kernel choices measured on one machine, and the file that keeps them between runs. Tier:
//! tooling (shared by the CPU tuner in `tensor::cpu::tuning` and the GPU tuner in
//! `gpu::tuning`).
//!
//! Some choices between equally correct kernels have no rule that holds on every machine, so a
//! tuner times the candidates the first time a *shape class* needs a choice and keeps the
//! fastest. This module keeps what was chosen: one line per choice,
//! `machine key <TAB> class <TAB> choice`, in the file the caller names. The machine key names
//! what the timings depend on (the CPU model and thread count, or the GPU adapter and driver),
//! so another machine, or a driver update, measures anew; it ends with [`TIMING_METHOD`], so
//! choices an older way of timing made are measured anew too. The file is rewritten whole through
//! a temporary file and a rename (a reader never sees half of it); lines of other machines are
//! kept, as are those of other builds (whose keys name other candidates, and whose choices this
//! build may not know); a line that does not parse is ignored with one warning, and the file is
//! then rewritten without it. Same machine and same choices give the same kernels, so the same bits.
//! Hence the second way to fill one: [`ChoiceFile::replaying`] another run's choices, as its
//! provenance lists them, so that a run made on another machine comes back here bit for bit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How much faster than the rule's candidate another must be to be chosen instead (5 %): on a
/// busy machine two kernels within a few per cent of each other trade places from one
/// measurement to the next (the Zen 3's two AVX2 blockings did in 2 of 10), and a choice that
/// followed the noise would give one machine other kernels, so other bits, for nothing.
pub const INCUMBENT_MARGIN: f64 = 0.05;

/// How this build times candidates, appended to every machine key: a choice is only as good
/// as the timing that made it. Timing one candidate's runs after another's (as builds before
/// this one did) favoured whichever ran second, in warmer caches; choices made that way are
/// not reused.
pub const TIMING_METHOD: &str = "timed taking turns";

/// One machine's choices, read from and written back to `path`.
pub struct ChoiceFile {
    /// The file; `None` keeps the choices for this process only.
    path: Option<PathBuf>,
    /// Names the machine the choices were measured on.
    key: String,
    /// Whether a choice name is one the caller knows (a line naming another is unreadable).
    known: fn(&str) -> bool,
    /// Class → choice, for this machine.
    choices: Mutex<BTreeMap<String, String>>,
    /// The classes this process asked for: a run's provenance names the choices it ran, not
    /// every one its machine's file holds.
    asked: Mutex<BTreeSet<String>>,
    /// Whether the choices were replayed from another run ([`ChoiceFile::replaying`]): then
    /// nothing is timed.
    replay: bool,
    /// Replaying, the classes the replayed run had no usable choice for → the rule's candidate
    /// taken instead (apart from `choices`, so that nobody mistakes one for the other).
    not_replayed: Mutex<BTreeMap<String, String>>,
    /// Replaying, whether taking the rule for such a class is said (once per class).
    warn_unreplayed: bool,
}

/// Tuning lines begun so far, and the one still waiting for its result (0: none): see
/// [`ChoiceFile::choose_timed_together`].
static TIMING_LINES: AtomicUsize = AtomicUsize::new(0);
static OPEN_LINE: AtomicUsize = AtomicUsize::new(0);

impl ChoiceFile {
    /// The choices `path` holds for the machine `key`, timed by this build's
    /// [`TIMING_METHOD`] (a missing file holds none).
    pub fn open(path: Option<PathBuf>, key: String, known: fn(&str) -> bool) -> ChoiceFile {
        let key = format!("{key}; {TIMING_METHOD}");
        let choices = path.as_deref().map(|p| read_choices(p, &key, known)).unwrap_or_default();
        let (asked, not_replayed) = (Mutex::default(), Mutex::default());
        ChoiceFile {
            path,
            key,
            known,
            choices: Mutex::new(choices),
            asked,
            replay: false,
            not_replayed,
            warn_unreplayed: true,
        }
    }

    /// Another run's choices (class, choice), answered as they are and never timed, kept
    /// nowhere: what makes a run come back bit for bit on a machine whose own timings would
    /// choose otherwise. A class they lack (or whose choice is not among this build's
    /// candidates) takes the rule's candidate, with one warning. Refuses a choice name the
    /// caller does not know, or a class given two choices.
    pub fn replaying(choices: Vec<(String, String)>, known: fn(&str) -> bool) -> Result<ChoiceFile, String> {
        let mut replayed = BTreeMap::new();
        for (class, choice) in choices {
            if !known(&choice) {
                return Err(format!("{class}: \"{choice}\" is not a choice this build knows"));
            }
            if let Some(other) = replayed.insert(class.clone(), choice.clone()).filter(|other| *other != choice) {
                return Err(format!("{class}: two choices, {other} and {choice}"));
            }
        }
        let key = "replayed".to_string();
        Ok(ChoiceFile {
            path: None,
            key,
            known,
            choices: Mutex::new(replayed),
            asked: Mutex::default(),
            replay: true,
            not_replayed: Mutex::default(),
            warn_unreplayed: true,
        })
    }

    /// The same replay, without the warning for a class the replayed run had no choice for: for
    /// a process that borrows another run's choices for their speed, not for its bits
    /// (`explore`, whose batches come in sizes the run never trained at).
    pub fn without_unreplayed_warnings(mut self) -> ChoiceFile {
        self.warn_unreplayed = false;
        self
    }

    /// Whether these choices were replayed from another run ([`ChoiceFile::replaying`]).
    pub fn is_replay(&self) -> bool {
        self.replay
    }

    /// Replaying, the classes the replayed run had no usable choice for, with the rule's
    /// candidate each took instead; in class order.
    pub fn not_replayed(&self) -> Vec<(String, String)> {
        let taken = self.not_replayed.lock().unwrap_or_else(|e| e.into_inner());
        taken.iter().map(|(class, choice)| (class.clone(), choice.clone())).collect()
    }

    /// The choice for `class`: the kept one, or the fastest of `candidates` (at least one) as
    /// `time` measures them (ties to the earlier candidate), then kept. `what` names the decision in the one
    /// `tuning:` line printed per measurement.
    pub fn choose<E>(
        &self,
        what: &str,
        class: &str,
        candidates: &[&str],
        mut time: impl FnMut(&str) -> Result<Duration, E>,
    ) -> Result<String, E> {
        self.choose_timed_together(what, class, candidates, None, |candidates| {
            candidates.iter().map(|c| time(c)).collect()
        })
    }

    /// [`ChoiceFile::choose`] with every candidate timed by one call, `time_all(candidates)`
    /// giving their times in order: for a caller that alternates the candidates in rounds, so
    /// that a machine whose speed drifts while it measures (another process starting, a clock
    /// changing) slows every candidate alike instead of the last ones. `incumbent`, the
    /// candidate a rule would take, stays unless another is faster by more than
    /// [`INCUMBENT_MARGIN`].
    pub fn choose_timed_together<E>(
        &self,
        what: &str,
        class: &str,
        candidates: &[&str],
        incumbent: Option<&str>,
        time_all: impl FnOnce(&[&str]) -> Result<Vec<Duration>, E>,
    ) -> Result<String, E> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).insert(class.to_string());
        if let Some(choice) = self.choices.lock().unwrap_or_else(|e| e.into_inner()).get(class) {
            if !self.replay || candidates.contains(&choice.as_str()) {
                return Ok(choice.clone());
            }
        }
        assert!(!candidates.is_empty(), "a choice for {class} among no candidates");
        if self.replay {
            return Ok(self.take_the_rule_for_want_of_a_replayed_choice(class, candidates, incumbent));
        }
        // Timed without the lock: a kernel being timed may itself run on threads that ask for
        // other choices. Two threads meeting a new class at once both time it; the first kept wins.
        // The line says what is being timed before the wait, and what won after it; a choice
        // timed inside another's timing (a kernel made of kernels) ends the open line first, and
        // the outer one's result then starts a line of its own.
        let line = TIMING_LINES.fetch_add(1, Ordering::SeqCst) + 1;
        if OPEN_LINE.swap(line, Ordering::SeqCst) != 0 {
            println!();
        }
        print!("tuning: timing the {what} ({class}), first use on this machine:");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let times = time_all(candidates)?;
        if OPEN_LINE.swap(0, Ordering::SeqCst) != line {
            print!("tuning: the {what} ({class}), timed around the line above:");
        }
        assert_eq!(times.len(), candidates.len(), "a time for each candidate of {class}");
        let mut best: Option<(Duration, &str)> = None;
        for (&candidate, &t) in candidates.iter().zip(&times) {
            if best.is_none_or(|(fastest, _)| t < fastest) {
                best = Some((t, candidate));
            }
        }
        let timed: Vec<String> =
            candidates.iter().zip(&times).map(|(c, t)| format!("{c} {:.2} ms", t.as_secs_f64() * 1e3)).collect();
        let kept = incumbent.and_then(|name| candidates.iter().zip(&times).find(|(c, _)| **c == name));
        if let (Some((&name, &t)), Some((fastest, _))) = (kept, best) {
            if t.as_secs_f64() * (1.0 - INCUMBENT_MARGIN) <= fastest.as_secs_f64() {
                best = Some((t, name));
            }
        }
        let chosen = best.map_or("", |(_, c)| c);
        let note = if incumbent == Some(chosen) { " (the rule's)" } else { "" };
        println!(" {} → {chosen}{note}", timed.join(", "));
        let mut choices = self.choices.lock().unwrap_or_else(|e| e.into_inner());
        let measured = best.map_or_else(String::new, |(_, c)| c.to_string());
        let choice = choices.entry(class.to_string()).or_insert(measured).clone();
        if let Some(path) = &self.path {
            if let Err(e) = write_choices(path, &self.key, self.known, &choices) {
                eprintln!("warning: could not keep the kernel choices in {}: {e}", path.display());
            }
        }
        Ok(choice)
    }

    /// Replaying, what a class the replayed run has no usable choice for runs: the rule's
    /// candidate (the first without one), said once per class, since this run's bits may then
    /// differ from the replayed run's.
    fn take_the_rule_for_want_of_a_replayed_choice(
        &self,
        class: &str,
        candidates: &[&str],
        incumbent: Option<&str>,
    ) -> String {
        let rule = incumbent.unwrap_or(candidates[0]).to_string();
        // Read before `not_replayed` is locked: [`ChoiceFile::choices`] takes the locks the other way round.
        let replayed =
            self.kept(class).map_or_else(String::new, |c| format!(" (its {c} is not one of {candidates:?})"));
        let mut taken = self.not_replayed.lock().unwrap_or_else(|e| e.into_inner());
        if !taken.contains_key(class) && self.warn_unreplayed {
            eprintln!(
                "warning: the replayed kernel choices have none for {class}{replayed}: the rule's {rule} runs it, \
                 so this run's numbers may differ from the replayed run's"
            );
        }
        taken.entry(class.to_string()).or_insert_with(|| rule.clone());
        rule
    }

    /// The choice kept for `class`, if any (read or measured); asking counts as this process
    /// using it ([`ChoiceFile::choices`]).
    pub fn kept(&self, class: &str) -> Option<String> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).insert(class.to_string());
        self.choices.lock().unwrap_or_else(|e| e.into_inner()).get(class).cloned()
    }

    /// The choices this process asked for and ran (read, measured or replayed; not a replay's
    /// rule for want of one, [`ChoiceFile::not_replayed`]): (class, choice), in class order.
    pub fn choices(&self) -> Vec<(String, String)> {
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        let taken_by_rule = self.not_replayed.lock().unwrap_or_else(|e| e.into_inner());
        let choices = self.choices.lock().unwrap_or_else(|e| e.into_inner());
        let ran = |class: &String| asked.contains(class) && !taken_by_rule.contains_key(class);
        choices.iter().filter(|(class, _)| ran(class)).map(|(c, k)| (c.clone(), k.clone())).collect()
    }
}

/// What one line of the file is to the build reading it.
#[derive(Debug, PartialEq)]
enum CacheLine<'a> {
    /// This machine's choice for `class`, timed this build's way among this build's candidates.
    Ours { class: &'a str, choice: &'a str },
    /// A choice of another machine, driver, timing or build (another key): kept in the file
    /// for its owner, never used here. Its choice may name a kernel this build does not have.
    Other,
    /// Not three tab-separated fields, or a choice of this key that this build does not know.
    Unreadable,
}

fn classify<'a>(line: &'a str, key: &str, known: fn(&str) -> bool) -> CacheLine<'a> {
    match line.split('\t').collect::<Vec<_>>()[..] {
        [k, class, choice] if k == key => {
            if known(choice) {
                CacheLine::Ours { class, choice }
            } else {
                CacheLine::Unreadable
            }
        }
        [k, class, choice] if ![k, class, choice].contains(&"") => CacheLine::Other,
        _ => CacheLine::Unreadable,
    }
}

/// The choices `path` holds for `key`; lines that do not parse are ignored, with a warning
/// naming the file and the first of them.
fn read_choices(path: &Path, key: &str, known: fn(&str) -> bool) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else { return BTreeMap::new() };
    let mut choices = BTreeMap::new();
    let (mut bad, mut others) = (Vec::new(), 0);
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match classify(line, key, known) {
            CacheLine::Ours { class, choice } => {
                choices.insert(class.to_string(), choice.to_string());
            }
            CacheLine::Other => others += 1,
            CacheLine::Unreadable => bad.push(n + 1),
        }
    }
    if let Some(first) = bad.first() {
        eprintln!(
            "warning: ignoring {} unreadable line(s) of the kernel-choice cache {} (the first: line {first}); \
             the choices they held will be measured again",
            bad.len(),
            path.display()
        );
    }
    if choices.is_empty() && others > 0 {
        eprintln!(
            "warning: the kernel-choice cache {} holds {others} choice(s) measured on other machines or drivers, \
             or timed another way, none for this one ({key}): they are not used here, and this machine's are \
             measured anew",
            path.display()
        );
    }
    choices
}

/// Rewrites `path` with `choices` for `key`, every line of other machines, drivers, timings or
/// builds, and this key's lines for classes `choices` lacks, through a temporary file of this
/// process renamed over it, holding `path.lock` meanwhile. Processes that measure at once (a
/// sweep's points side by side, on a fresh machine) each add their choices: none is lost to
/// another's rewrite, and no two write one temporary file.
fn write_choices(
    path: &Path,
    key: &str,
    known: fn(&str) -> bool,
    choices: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let lock =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path.with_extension("lock"))?;
    lock.lock()?;
    let mut text = String::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let keep = match classify(line, key, known) {
            CacheLine::Other => true,
            CacheLine::Ours { class, .. } => !choices.contains_key(class),
            CacheLine::Unreadable => false,
        };
        if keep {
            text.push_str(line);
            text.push('\n');
        }
    }
    for (class, choice) in choices {
        text.push_str(&format!("{key}\t{class}\t{choice}\n"));
    }
    let tmp = path.with_extension(format!("tsv.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Each of `candidates` candidates' median time over `rounds` rounds in which they take turns
/// (`time(i)` runs candidate i once and says how long it took), after one warm-up run each
/// unless the caller `warmed_up` them already:
/// a machine whose speed drifts while it measures (another process, a clock, caches filled by
/// the previous candidate) slows every candidate alike, where timing one candidate's runs
/// after another's favours whichever ran in the faster minutes.
pub fn median_times_taking_turns<E>(
    candidates: usize,
    rounds: usize,
    warmed_up: bool,
    time: impl FnMut(usize) -> Result<Duration, E>,
) -> Result<Vec<Duration>, E> {
    median_times_dropping_the_slow(candidates, rounds, warmed_up, f64::INFINITY, time)
}

/// [`median_times_taking_turns`], except that a candidate whose first timed run is more than
/// `slower_than` times the fastest first run takes no further turns: that one time stands as
/// its median. A kernel several times slower than another needs no three runs to lose, and
/// on a slow device (a CPU running a GPU's kernels) each of them costs seconds. Candidate 0,
/// the incumbent, is never dropped: one slow first run (a pipeline built during it, a page
/// faulted in) must not decide against the kernel the rules would run.
pub fn median_times_dropping_the_slow<E>(
    candidates: usize,
    rounds: usize,
    warmed_up: bool,
    slower_than: f64,
    mut time: impl FnMut(usize) -> Result<Duration, E>,
) -> Result<Vec<Duration>, E> {
    for candidate in (0..candidates).filter(|_| !warmed_up) {
        time(candidate)?;
    }
    let mut times = vec![Vec::with_capacity(rounds.max(1)); candidates];
    for round in 0..rounds.max(1) {
        let fastest_first = times.iter().filter_map(|runs: &Vec<Duration>| runs.first()).min().copied();
        for (candidate, runs) in times.iter_mut().enumerate() {
            let dropped = round > 0
                && candidate > 0
                && fastest_first.is_some_and(|fastest| runs[0].as_secs_f64() > slower_than * fastest.as_secs_f64());
            if !dropped {
                runs.push(time(candidate)?);
            }
        }
    }
    Ok(times
        .into_iter()
        .map(|mut runs| {
            runs.sort();
            runs[runs.len() / 2]
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn two_processes_writing_the_cache_keep_each_others_choices() {
        // Each loaded the file before the other wrote: the second rewrite must not drop the
        // first's new choice, and a line of another machine stays.
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("choices.tsv");
        std::fs::write(&path, "other-cpu\tconv a\tx\n").unwrap();
        let known = |_: &str| true;
        let mine = |class: &str, choice: &str| BTreeMap::from([(class.to_string(), choice.to_string())]);
        write_choices(&path, "cpu", known, &mine("conv a", "1")).unwrap();
        write_choices(&path, "cpu", known, &mine("conv b", "2")).unwrap();
        let chosen = read_choices(&path, "cpu", known);
        assert_eq!(chosen, BTreeMap::from([("conv a".into(), "1".into()), ("conv b".into(), "2".into())]));
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("other-cpu\tconv a\tx\n"));
        // A class measured again takes its new choice, once.
        write_choices(&path, "cpu", known, &mine("conv a", "3")).unwrap();
        assert_eq!(read_choices(&path, "cpu", known)["conv a"], "3");
        assert_eq!(std::fs::read_to_string(&path).unwrap().matches("conv a\t").count(), 2, "ours and the other cpu's");
    }

    #[test]
    fn candidates_are_timed_taking_turns_after_a_warm_up_each() {
        let mut order = Vec::new();
        median_times_taking_turns(3, 2, false, |c| {
            order.push(c);
            Ok::<_, ()>(Duration::ZERO)
        })
        .unwrap();
        assert_eq!(order, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
        order.clear();
        median_times_taking_turns(2, 2, true, |c| {
            order.push(c);
            Ok::<_, ()>(Duration::ZERO)
        })
        .unwrap();
        assert_eq!(order, [0, 1, 0, 1], "warmed up by the caller: rounds only");
    }

    #[test]
    fn a_candidate_far_slower_in_the_first_round_takes_no_more_turns() {
        // Candidate 1 takes 10 ms against candidate 0's 1 and candidate 2's 1.5: beyond 2×,
        // so it runs once; candidate 2, within 2×, runs every round.
        let mut order = Vec::new();
        let times = median_times_dropping_the_slow(3, 3, true, 2.0, |c| {
            order.push(c);
            Ok::<_, ()>(Duration::from_micros([1000, 10_000, 1500][c]))
        })
        .unwrap();
        assert_eq!(order, [0, 1, 2, 0, 2, 0, 2]);
        assert_eq!(times[1], Duration::from_millis(10), "its one run stands as its median");
    }

    #[test]
    fn the_incumbent_takes_every_turn_however_slow_its_first_run() {
        // Candidate 0's first run is 20 ms (a pipeline built in it), then 1 ms; candidate 1
        // runs 1.5 ms each time. Dropped after its first run, the incumbent would lose at 20.
        let mut runs_of_0 = 0;
        let times = median_times_dropping_the_slow(2, 3, true, 2.0, |c| {
            let us = if c == 0 {
                runs_of_0 += 1;
                if runs_of_0 == 1 {
                    20_000
                } else {
                    1000
                }
            } else {
                1500
            };
            Ok::<_, ()>(Duration::from_micros(us))
        })
        .unwrap();
        assert_eq!(runs_of_0, 3);
        assert_eq!(times, [Duration::from_millis(1), Duration::from_micros(1500)]);
    }

    #[test]
    fn each_candidates_time_is_the_median_of_its_rounds_without_the_warm_up() {
        // Candidate 0 runs 100 (warm-up), then 5, 1, 9 ms; candidate 1 runs 100, then 2, 8, 3.
        let runs = [[100, 100], [5, 2], [1, 8], [9, 3]];
        let mut calls = 0;
        let times = median_times_taking_turns(2, 3, false, |c| {
            let t = runs[calls / 2][c];
            calls += 1;
            Ok::<_, ()>(Duration::from_millis(t))
        })
        .unwrap();
        assert_eq!(times, [Duration::from_millis(5), Duration::from_millis(3)]);
    }

    fn known(choice: &str) -> bool {
        matches!(choice, "fast" | "slow")
    }

    fn fake(fast_ms: u64, slow_ms: u64) -> impl FnMut(&str) -> Result<Duration, ()> {
        move |choice| Ok(Duration::from_millis(if choice == "fast" { fast_ms } else { slow_ms }))
    }

    /// A scratch folder (removed when the guard drops) and a cache path inside it.
    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("choices.tsv");
        (dir, path)
    }

    #[test]
    fn the_fastest_candidate_is_chosen_once_per_class() {
        let file = ChoiceFile::open(None, "machine A".into(), known);
        assert_eq!(file.choose("kernels", "c1", &["slow", "fast"], fake(1, 2)).unwrap(), "fast");
        assert_eq!(file.choose("kernels", "c2", &["slow", "fast"], fake(2, 1)).unwrap(), "slow");
        assert_eq!(
            file.choose("kernels", "c1", &["slow", "fast"], |_| -> Result<_, ()> { panic!("again") }).unwrap(),
            "fast"
        );
        assert_eq!(file.choices().len(), 2);
    }

    #[test]
    fn candidates_timed_together_are_timed_by_one_call_and_the_fastest_kept() {
        let file = ChoiceFile::open(None, "machine A".into(), known);
        let calls = Cell::new(0);
        let time_all = |names: &[&str]| -> Result<Vec<Duration>, ()> {
            calls.set(calls.get() + 1);
            assert_eq!(names, ["slow", "fast"]);
            Ok(vec![Duration::from_millis(3), Duration::from_millis(2)])
        };
        assert_eq!(file.choose_timed_together("k", "c1", &["slow", "fast"], None, time_all).unwrap(), "fast");
        assert_eq!(file.choose_timed_together("k", "c1", &["slow", "fast"], None, time_all).unwrap(), "fast");
        assert_eq!(calls.get(), 1, "a kept choice was timed again");
    }

    #[test]
    fn the_rules_candidate_stays_unless_another_is_faster_by_more_than_the_margin() {
        let file = ChoiceFile::open(None, "machine A".into(), known);
        let times = |slow_ms: u64, fast_ms: u64| {
            move |_: &[&str]| -> Result<Vec<Duration>, ()> {
                Ok(vec![Duration::from_millis(slow_ms), Duration::from_millis(fast_ms)])
            }
        };
        // 4 % faster: within the margin, the rule's "slow" stays.
        assert_eq!(
            file.choose_timed_together("k", "c1", &["slow", "fast"], Some("slow"), times(100, 96)).unwrap(),
            "slow"
        );
        // 10 % faster: chosen.
        assert_eq!(
            file.choose_timed_together("k", "c2", &["slow", "fast"], Some("slow"), times(100, 90)).unwrap(),
            "fast"
        );
        // No rule: the fastest, however small the gap.
        assert_eq!(file.choose_timed_together("k", "c3", &["slow", "fast"], None, times(100, 99)).unwrap(), "fast");
    }

    #[test]
    fn a_process_lists_only_the_choices_it_asked_for_not_every_one_its_file_holds() {
        let (_dir, path) = scratch();
        let a = "machine A; timed taking turns";
        std::fs::write(&path, format!("{a}\tc1\tfast\n{a}\tc2\tslow\n")).unwrap();
        let file = ChoiceFile::open(Some(path), "machine A".into(), known);
        assert!(file.choices().is_empty(), "nothing asked yet");
        let never = |_: &str| -> Result<Duration, ()> { panic!("a kept choice was timed") };
        assert_eq!(file.choose("k", "c2", &["slow", "fast"], never).unwrap(), "slow");
        assert_eq!(file.choices(), [("c2".to_string(), "slow".to_string())], "c1 is in the file, not in this run");
    }

    #[test]
    fn replayed_choices_are_answered_as_given_and_never_timed() {
        let file = ChoiceFile::replaying(vec![("c1".into(), "slow".into())], known).unwrap();
        let never = |_: &[&str]| -> Result<Vec<Duration>, ()> { panic!("a replayed choice was timed") };
        // "slow" is neither the fastest nor the rule's: replayed all the same.
        assert_eq!(file.choose_timed_together("k", "c1", &["slow", "fast"], Some("fast"), never).unwrap(), "slow");
        assert!(file.is_replay() && file.not_replayed().is_empty());
    }

    #[test]
    fn a_class_the_replayed_run_lacks_takes_the_rule_untimed_and_is_listed_apart() {
        let file = ChoiceFile::replaying(vec![("c1".into(), "slow".into())], known).unwrap();
        let never = |_: &[&str]| -> Result<Vec<Duration>, ()> { panic!("timed while replaying") };
        assert_eq!(file.choose_timed_together("k", "c2", &["slow", "fast"], Some("fast"), never).unwrap(), "fast");
        // A replayed choice that is not among this call's candidates is not run either.
        assert_eq!(file.choose_timed_together("k", "c1", &["other", "fast"], Some("fast"), never).unwrap(), "fast");
        assert_eq!(
            file.not_replayed(),
            [("c1".to_string(), "fast".to_string()), ("c2".to_string(), "fast".to_string())]
        );
        assert!(file.choices().is_empty(), "a class that ran by the rule listed as replayed: {:?}", file.choices());
    }

    #[test]
    fn replaying_refuses_a_choice_this_build_does_not_know_and_a_class_given_two() {
        let unknown = ChoiceFile::replaying(vec![("c1".into(), "winograd-9x9".into())], known).err().unwrap();
        assert!(unknown.contains("c1") && unknown.contains("winograd-9x9"), "{unknown}");
        let twice = vec![("c1".into(), "slow".into()), ("c1".into(), "fast".into())];
        let two = ChoiceFile::replaying(twice, known).err().unwrap();
        assert!(two.contains("slow") && two.contains("fast"), "{two}");
        let same_twice = vec![("c1".into(), "slow".into()), ("c1".into(), "slow".into())];
        assert!(ChoiceFile::replaying(same_twice, known).is_ok(), "one choice given twice is one choice");
    }

    #[test]
    fn choices_are_kept_in_the_file_and_read_back_without_measuring() {
        let (_dir, path) = scratch();
        ChoiceFile::open(Some(path.clone()), "machine A".into(), known)
            .choose("k", "c1", &["slow", "fast"], fake(1, 2))
            .unwrap();
        let again = ChoiceFile::open(Some(path.clone()), "machine A".into(), known);
        assert_eq!(
            again.choose("k", "c1", &["slow", "fast"], |_| -> Result<_, ()> { panic!("measured again") }).unwrap(),
            "fast"
        );
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn another_machine_measures_anew_and_keeps_the_first_ones_lines() {
        let (_dir, path) = scratch();
        ChoiceFile::open(Some(path.clone()), "machine A".into(), known)
            .choose("k", "c1", &["slow", "fast"], fake(1, 2))
            .unwrap();
        let measured = Cell::new(0);
        let b = ChoiceFile::open(Some(path.clone()), "machine B".into(), known);
        b.choose("k", "c1", &["slow", "fast"], |c| {
            measured.set(measured.get() + 1);
            fake(2, 1)(c)
        })
        .unwrap();
        assert_eq!(measured.get(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "machine A; timed taking turns\tc1\tfast\nmachine B; timed taking turns\tc1\tslow\n");
    }

    #[test]
    fn choices_timed_another_way_are_measured_anew() {
        // A line of this machine written by a build that timed candidates one after another.
        let (_dir, path) = scratch();
        std::fs::write(&path, "machine A\tc1\tfast\n").unwrap();
        let file = ChoiceFile::open(Some(path.clone()), "machine A".into(), known);
        assert_eq!(file.kept("c1"), None, "an old timing's choice was reused");
        assert_eq!(file.choose("k", "c1", &["slow", "fast"], fake(2, 1)).unwrap(), "slow");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "machine A\tc1\tfast\nmachine A; timed taking turns\tc1\tslow\n");
    }

    #[test]
    fn another_builds_line_naming_a_choice_this_build_lacks_is_kept_and_not_called_unreadable() {
        // Another build (its candidates, so its key, differ) chose a kernel this build has
        // never heard of. Its line is that build's to read: dropping it would make the two
        // builds re-measure each other's choices in turn on one machine.
        let (_dir, path) = scratch();
        let newer = "machine A, candidates fast slow triangle; timed taking turns";
        std::fs::write(&path, format!("{newer}\tc1\ttriangle\n")).unwrap();
        let ours = "machine A; timed taking turns";
        assert_eq!(classify(&format!("{newer}\tc1\ttriangle"), ours, known), CacheLine::Other);
        let file = ChoiceFile::open(Some(path.clone()), "machine A".into(), known);
        assert_eq!(file.kept("c1"), None);
        file.choose("k", "c1", &["slow", "fast"], fake(2, 1)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{newer}\tc1\ttriangle\n{ours}\tc1\tslow\n"));
    }

    #[test]
    fn an_unreadable_line_is_ignored_and_dropped_on_the_next_write() {
        let (_dir, path) = scratch();
        let a = "machine A; timed taking turns";
        std::fs::write(&path, format!("{a}\tc4\tfast\ngarbage\n{a}\tc5\ttriangle\n")).unwrap();
        let file = ChoiceFile::open(Some(path.clone()), "machine A".into(), known);
        assert_eq!((file.kept("c4").as_deref(), file.kept("c5")), (Some("fast"), None));
        file.choose("k", "c0", &["slow", "fast"], fake(2, 1)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{a}\tc0\tslow\n{a}\tc4\tfast\n"));
    }
}
