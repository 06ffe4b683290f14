//! Where, when and with which code a run was trained: `provenance.json` in the run folder.
//!
//! `train` writes it when a run starts and appends to it on every `--resume`, so a run trained
//! over several invocations (another day, another machine, a GPU) keeps each one: when it
//! started, from which epoch, the device, the CPU model and the GEMM kernel path the CPU ran,
//! the thread count, how the GPU's GEMM tiles were chosen, and the commit and version of the
//! code. `report` shows it beside the losses, since a number without its machine cannot be
//! compared with another.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The file's name inside a run folder.
pub const PROVENANCE_FILE: &str = "provenance.json";

/// The commit the binaries were built from, `-dirty` when the tree differed
/// ([`build_info::commit`]).
pub use build_info::commit as build_commit;

/// What a `-dirty` build's tree changed ([`build_info::changes`]).
pub use build_info::changes as build_changes;

/// One `train` invocation of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// When it started, in UTC (`2026-11-23T16:05:09Z`).
    pub started: String,
    /// The first epoch it trained (1 for a new run).
    pub first_epoch: usize,
    /// The device, as `train` printed it (`cpu (rayon, 2 threads)`, `gpu: NVIDIA H100 …`).
    pub device: String,
    /// The CPU model (`/proc/cpuinfo`'s model name where there is one).
    pub cpu: String,
    /// The f32 GEMM kernel the CPU ran, when the run started (`avx2-6x16-kc512`,
    /// `avx512-14x32-kc256`, `portable-4x8`; `avx2 6×16` in runs before the block depth was named).
    pub cpu_kernel: String,
    /// CPU threads.
    pub threads: usize,
    /// How the kernels were chosen, one entry per choice: on a GPU `gemm tile m>64/t2^5: wide128
    /// (measured)` (and the split K, weight-gradient split, matmul rung and `convolution rung
    /// forward/t2^6/k2^9: implicit_gemm` choices likewise), `gemm tile: pinned square64` or `gemm
    /// tile: size rule`
    /// and `convolution rung: implicit_gemm`, with `convolution rung: pinned tiled16` under
    /// `--conv-rung`; on the CPU first
    /// `f32 GEMM kernel: avx2-6x16-kc512 (measured)` (or `pinned`, or `rule`), then
    /// `conv2d_forward F32 64→128 … b64 on avx2-6x16-kc512: per-image (measured)` per class, or
    /// `convolution images per GEMM: size rule`; empty on the reference device.
    /// Brought up to date after every epoch, as measured choices are made during training. Only
    /// the choices this run ran: older runs list every choice their machine's cache held, a
    /// dense model's included.
    #[serde(default)]
    pub kernel_choices: Vec<String>,
    /// [`build_commit`].
    pub commit: String,
    /// [`build_changes`]: what a `-dirty` commit's tree changed (absent for a clean one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub changes: String,
    /// The `vae` crate's version.
    pub version: String,
}

impl Invocation {
    /// This process, now, starting at `first_epoch` on `device` (its description).
    pub fn now(first_epoch: usize, device: String) -> Invocation {
        Invocation {
            started: utc_timestamp(std::time::SystemTime::now()),
            first_epoch,
            device,
            cpu: cpu_model(),
            cpu_kernel: tensor::cpu::gemm::f32_kernel_path().to_string(),
            threads: rayon::current_num_threads(),
            kernel_choices: Vec::new(),
            commit: build_commit().to_string(),
            changes: build_changes().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// A run's `provenance.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Parameters of the model.
    pub parameters: usize,
    /// Of which trained (fewer with a frozen encoder).
    pub trainable_parameters: usize,
    /// Every `train` invocation, first to last.
    pub invocations: Vec<Invocation>,
}

/// Reads `dir/provenance.json`; `None` when the run has none (folders from before it existed).
pub fn read_provenance(dir: &Path) -> Result<Option<Provenance>> {
    let path = dir.join(PROVENANCE_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Config(format!("{}: not a run's provenance: {e}", path.display())))
}

/// Records `invocation` in `dir/provenance.json`, atomically: a new run (`resumed` false)
/// starts the file afresh, a resumed one appends to what is there.
pub fn record_invocation(
    dir: &Path,
    parameters: usize,
    trainable_parameters: usize,
    invocation: Invocation,
    resumed: bool,
) -> Result<()> {
    let mut invocations = match (resumed, read_provenance(dir)?) {
        (true, Some(p)) => p.invocations,
        _ => vec![],
    };
    invocations.push(invocation);
    let provenance = Provenance { parameters, trainable_parameters, invocations };
    let text = serde_json::to_string_pretty(&provenance).map_err(|e| Error::Config(format!("provenance: {e}")))?;
    crate::runs::write_file(&dir.join(PROVENANCE_FILE), text.as_bytes())
}

/// Replaces the kernel choices of the last invocation in `dir/provenance.json` (atomically):
/// choices measured during training reach the file at the end of each epoch.
pub fn record_kernel_choices(dir: &Path, choices: Vec<String>) -> Result<()> {
    let Some(mut provenance) = read_provenance(dir)? else { return Ok(()) };
    match provenance.invocations.last_mut() {
        Some(last) if last.kernel_choices != choices => last.kernel_choices = choices,
        _ => return Ok(()),
    }
    let text = serde_json::to_string_pretty(&provenance).map_err(|e| Error::Config(format!("provenance: {e}")))?;
    crate::runs::write_file(&dir.join(PROVENANCE_FILE), text.as_bytes())
}

/// How `device`'s kernels are chosen (see [`Invocation::kernel_choices`]).
pub fn kernel_choices(device: &tensor::Device) -> Vec<String> {
    if let tensor::Device::Cpu = device {
        let (kernel, how) = tensor::cpu::gemm::f32_kernel_in_use();
        let mut lines = vec![format!("{GEMM_KERNEL_LINE}{kernel} ({})", how.name())];
        let how = if tensor::cpu::tuning::is_replay() { "replayed" } else { "measured" };
        let mut convolutions: Vec<String> = tensor::cpu::tuning::choices()
            .into_iter()
            .filter(|(class, _)| class != tensor::cpu::tuning::GEMM_KERNEL_CLASS)
            .map(|(class, cut)| format!("{class}: {cut} ({how})"))
            .collect();
        convolutions.extend(
            tensor::cpu::tuning::not_replayed()
                .into_iter()
                .map(|(class, cut)| format!("{class}: {cut} (rule: {NOT_REPLAYED})")),
        );
        if convolutions.is_empty() {
            lines.push(CONVOLUTIONS_BY_RULE.to_string());
        }
        lines.extend(convolutions);
        return lines;
    }
    let tensor::Device::Gpu(gpu) = device else { return Vec::new() };
    let ctx = gpu.context();
    let pinned_rung = ctx.forced_conv_rung().map(|rung| format!("convolution rung: pinned {}", rung.name()));
    let measured = ctx.tuner().map(|tuner| tuner.choices()).unwrap_or_default();
    let describe =
        |(class, choice): &(String, String)| format!("{} (measured)", gpu::tuning::describe_choice(class, choice));
    let is_rung = |(class, _): &&(String, String)| class.starts_with("conv-rung/");
    let mut lines: Vec<String> = match ctx.forced_gemm_tile() {
        Some(tile) => vec![format!("gemm tile: pinned {}", gpu::tuning::tile_name(tile))],
        None if ctx.tuner().is_some() => measured.iter().filter(|c| !is_rung(c)).map(describe).collect(),
        None => vec!["gemm tile: size rule".to_string()],
    };
    match pinned_rung {
        Some(pinned) => lines.push(pinned),
        None if ctx.tuner().is_some() => lines.extend(measured.iter().filter(is_rung).map(describe)),
        None => lines.push("convolution rung: implicit_gemm".to_string()),
    }
    lines
}

/// How a CPU run's line naming its GEMM kernel starts.
const GEMM_KERNEL_LINE: &str = "f32 GEMM kernel: ";
/// The line of a CPU run whose convolutions ran by the size rules (nothing measured).
const CONVOLUTIONS_BY_RULE: &str = "convolution images per GEMM: size rule";
/// Why a replaying run's convolution class ran by the rule.
const NOT_REPLAYED: &str = "not among the replayed choices";

/// The CPU kernels a run chose, as [`cpu_kernel_choices_of`] reads them back from its
/// provenance.json to replay them (`train --cpu-kernels-from`).
#[derive(Clone, Debug, PartialEq)]
pub struct CpuKernelChoices {
    /// The f32 GEMM kernel (`avx2-6x16-kc512`).
    pub gemm_kernel: String,
    /// Each convolution class with its cut or way (`("conv2d_backward_weight F32 64→128 … b64
    /// on avx2-6x16-kc512", "per-image")`); empty for a run by the size rules.
    pub convolutions: Vec<(String, String)>,
    /// CPU threads: a convolution puts images side by side by the thread count, so the bits
    /// come back only with as many.
    pub threads: usize,
    /// The CPU it ran on.
    pub cpu: String,
}

/// The CPU kernel choices the run in `dir` made, from the lines [`kernel_choices`] wrote for
/// each of its invocations. Refused, naming the file, for a run without provenance, one
/// trained (in part) on a GPU or on the reference device, one from before the choices were
/// recorded, or one whose invocations ran different GEMM kernels or thread counts: its bits
/// cannot come back from one set of choices. Invocations' convolution choices are pooled (a
/// class chosen two ways is refused when replayed).
pub fn cpu_kernel_choices_of(dir: &Path) -> Result<CpuKernelChoices> {
    let path = dir.join(PROVENANCE_FILE);
    let refuse = |why: String| Error::Config(format!("{}: {why}", path.display()));
    let provenance = read_provenance(dir)?.ok_or_else(|| refuse("no such file: not a run folder".into()))?;
    let mut found: Option<CpuKernelChoices> = None;
    for (n, invocation) in provenance.invocations.iter().enumerate() {
        let which = format!("invocation {} (from epoch {})", n + 1, invocation.first_epoch);
        if !invocation.device.starts_with("cpu") {
            return Err(refuse(format!("{which} ran on {}, not on the CPU", invocation.device)));
        }
        let mut gemm_kernel = None;
        let mut convolutions = Vec::new();
        for line in &invocation.kernel_choices {
            if let Some(rest) = line.strip_prefix(GEMM_KERNEL_LINE) {
                gemm_kernel = Some(rest.split(" (").next().unwrap_or(rest).to_string());
            } else if line != CONVOLUTIONS_BY_RULE {
                // `CLASS: CHOICE (HOW)`; a class has no " (" or ": " of its own, HOW may.
                let parsed = line.split_once(" (").and_then(|(choice, _how)| choice.rsplit_once(": "));
                let (class, choice) = parsed.ok_or_else(|| refuse(format!("{which}: unreadable choice {line:?}")))?;
                convolutions.push((class.to_string(), choice.to_string()));
            }
        }
        let gemm_kernel = gemm_kernel.ok_or_else(|| {
            refuse(format!(
                "{which} records no GEMM kernel (a run from before choices were recorded, on {:?}; where its \
                 convolutions ran by the size rules, --cpu-gemm with --cpu-kernels rule repeats it)",
                invocation.cpu_kernel
            ))
        })?;
        match &mut found {
            None => {
                let cpu = invocation.cpu.clone();
                found = Some(CpuKernelChoices { gemm_kernel, convolutions, threads: invocation.threads, cpu });
            }
            Some(first) if first.gemm_kernel != gemm_kernel || first.threads != invocation.threads => {
                return Err(refuse(format!(
                    "{which} ran {gemm_kernel} on {} threads where the first ran {} on {}: one run, two ways \
                     of summing, which no one replay repeats",
                    invocation.threads, first.gemm_kernel, first.threads
                )));
            }
            Some(first) => first.convolutions.extend(convolutions),
        }
    }
    found.ok_or_else(|| refuse("no invocation recorded".into()))
}

/// The CPU's name as provenance.json and the kernel-choice cache give it (defined with the
/// CPU tuner, whose cache it keys).
pub use tensor::cpu::tuning::{cpu_model, cpu_model_from};

/// `time` as an ISO 8601 UTC timestamp to the second, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_timestamp(time: std::time::SystemTime) -> String {
    let secs = time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`: eras of 400 years, years starting in March so the leap day comes last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let at = |secs: u64| utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400` : the leap day of a year divisible by 400.
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(at(951_868_800), "2000-03-01T00:00:00Z");
        // `date -u -d @1795449909`
        assert_eq!(at(1_795_449_909), "2026-11-23T16:05:09Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z", "2100 is not a leap year");
    }

    fn invocation(first_epoch: usize) -> Invocation {
        Invocation { first_epoch, ..Invocation::now(first_epoch, "cpu (rayon, 2 threads)".into()) }
    }

    #[test]
    fn a_new_run_starts_the_record_and_a_resumed_one_appends() {
        let dir = tempfile::tempdir().unwrap();
        record_invocation(dir.path(), 10, 8, invocation(1), false).unwrap();
        record_invocation(dir.path(), 10, 8, invocation(4), true).unwrap();
        let p = read_provenance(dir.path()).unwrap().unwrap();
        assert_eq!((p.parameters, p.trainable_parameters), (10, 8));
        assert_eq!(p.invocations.iter().map(|i| i.first_epoch).collect::<Vec<_>>(), [1, 4]);
        // A new run in the same folder (one restarted before its first checkpoint) starts over.
        record_invocation(dir.path(), 12, 12, invocation(1), false).unwrap();
        let p = read_provenance(dir.path()).unwrap().unwrap();
        assert_eq!((p.parameters, p.invocations.len()), (12, 1));
    }

    #[test]
    fn a_folder_without_the_file_has_no_provenance_and_a_broken_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_provenance(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(PROVENANCE_FILE), "{").unwrap();
        let err = read_provenance(dir.path()).unwrap_err().to_string();
        assert!(err.contains(PROVENANCE_FILE), "{err}");
    }

    #[test]
    fn a_clean_trees_invocation_names_no_changes_and_a_dirty_ones_keeps_them() {
        let clean = Invocation { changes: String::new(), ..invocation(1) };
        let json = serde_json::to_string(&clean).expect("serialises");
        assert!(!json.contains("changes"), "a clean tree's invocation names no changes: {json}");
        let dirty = Invocation { changes: "vae/src/train.rs (diff fnv1a 00ff)".into(), ..invocation(1) };
        let back: Invocation =
            serde_json::from_str(&serde_json::to_string(&dirty).expect("serialises")).expect("parses");
        assert_eq!(back.changes, dirty.changes);
    }

    /// A run folder whose provenance holds `invocations`.
    fn run_with(invocations: Vec<Invocation>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (n, i) in invocations.into_iter().enumerate() {
            record_invocation(dir.path(), 10, 10, i, n > 0).unwrap();
        }
        dir
    }

    fn on_cpu(first_epoch: usize, threads: usize, choices: &[&str]) -> Invocation {
        let kernel_choices = choices.iter().map(|c| c.to_string()).collect();
        Invocation { threads, kernel_choices, ..invocation(first_epoch) }
    }

    const CUT_A: &str = "conv2d_backward_weight F32 32→64 k3×3 s2×2 p1×1 d1×1 16×16 b64 on avx2-6x16-kc512";
    const CUT_B: &str = "conv2d_forward F32 64→64 k3×3 s1×1 p1×1 d1×1 8×8 b64 on avx2-6x16-kc512";

    #[test]
    fn a_runs_cpu_kernel_choices_are_read_back_from_every_invocation() {
        let run = run_with(vec![
            on_cpu(1, 2, &["f32 GEMM kernel: avx2-6x16-kc512 (measured)", &format!("{CUT_A}: per-image (measured)")]),
            on_cpu(4, 2, &["f32 GEMM kernel: avx2-6x16-kc512 (replayed)", &format!("{CUT_B}: winograd (replayed)")]),
            on_cpu(6, 2, &["f32 GEMM kernel: avx2-6x16-kc512 (pinned)", CONVOLUTIONS_BY_RULE]),
        ]);
        let choices = cpu_kernel_choices_of(run.path()).unwrap();
        assert_eq!(choices.gemm_kernel, "avx2-6x16-kc512");
        assert_eq!(choices.threads, 2);
        let expected = [(CUT_A, "per-image"), (CUT_B, "winograd")].map(|(c, k)| (c.to_string(), k.to_string()));
        assert_eq!(choices.convolutions, expected);
    }

    #[test]
    fn a_class_a_replay_ran_by_the_rule_is_read_back_as_the_rules_choice() {
        let line = format!("{CUT_A}: side-by-side (rule: {NOT_REPLAYED})");
        let run = run_with(vec![on_cpu(1, 2, &["f32 GEMM kernel: avx2-6x16-kc512 (replayed)", &line])]);
        let choices = cpu_kernel_choices_of(run.path()).unwrap();
        assert_eq!(choices.convolutions, [(CUT_A.to_string(), "side-by-side".to_string())]);
    }

    #[test]
    fn a_run_whose_invocations_summed_two_ways_is_refused_with_its_file_and_both_ways() {
        let gemm = |k: &str| format!("f32 GEMM kernel: {k} (measured)");
        let run = run_with(vec![on_cpu(1, 2, &[&gemm("avx2-6x16-kc512")]), on_cpu(3, 2, &[&gemm("portable-4x8")])]);
        let err = cpu_kernel_choices_of(run.path()).unwrap_err().to_string();
        assert!(
            err.contains(PROVENANCE_FILE) && err.contains("avx2-6x16-kc512") && err.contains("portable-4x8"),
            "{err}"
        );
        let run = run_with(vec![on_cpu(1, 2, &[&gemm("avx2-6x16-kc512")]), on_cpu(3, 4, &[&gemm("avx2-6x16-kc512")])]);
        let err = cpu_kernel_choices_of(run.path()).unwrap_err().to_string();
        assert!(err.contains("4 threads") && err.contains("on 2"), "{err}");
    }

    #[test]
    fn a_gpu_run_an_unrecorded_one_and_a_folder_without_provenance_have_no_cpu_choices_to_replay() {
        let gpu = Invocation { device: "gpu: NVIDIA H100".into(), ..on_cpu(1, 2, &["gemm tile: size rule"]) };
        let err = cpu_kernel_choices_of(run_with(vec![gpu]).path()).unwrap_err().to_string();
        assert!(err.contains("gpu: NVIDIA H100") && err.contains("not on the CPU"), "{err}");
        let err = cpu_kernel_choices_of(run_with(vec![on_cpu(1, 2, &[])]).path()).unwrap_err().to_string();
        assert!(err.contains("records no GEMM kernel"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = cpu_kernel_choices_of(empty.path()).unwrap_err().to_string();
        assert!(err.contains(PROVENANCE_FILE) && err.contains("not a run folder"), "{err}");
    }

    #[test]
    fn the_cpu_and_its_kernel_are_named() {
        let i = invocation(1);
        assert!(!i.cpu.is_empty() && !i.cpu_kernel.is_empty() && !i.commit.is_empty());
    }
}
