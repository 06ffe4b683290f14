//! CPU kernel choices by measurement, cached per machine. Tier: fast kernel (tooling for the
//! convolution kernels).
//!
//! The convolution kernels cut their work by size rules (`cpu::conv`'s `images_per_gemm`:
//! small output planes side by side in one GEMM). A rule set on one CPU is not the fastest on
//! every CPU: on a Zen 3, B1's 64→128 backward-weight runs at 80–94 GFLOP/s side by side and
//! at 92–106 one image per GEMM. With tuning on ([`enable_tuning`], `train --tune-kernels`),
//! the first time a convolution kernel meets a geometry for which the rule would put images
//! side by side, both cuts are timed on that call's own operands (a warm-up run, then the
//! median of three) and the faster is kept; geometries with nothing to choose are not timed.
//! Without tuning, the rule decides, as it always did.
//!
//! - Cache: [`descriptors::choices::ChoiceFile`], keyed by [`machine_key`] (the CPU model,
//!   its GEMM micro-kernel and the thread count), so another CPU or another `--threads`
//!   measures anew. One line per kernel and geometry.
//! - Cost: only small planes are timed (large ones have one image per GEMM by the rule), each
//!   kernel eight times: a first `train --arch conv` epoch on a fresh cache times ten classes
//!   and took about a second longer than without tuning (4.6 s against 3.7, two busy cores).
//! - Overrides: the ladder's rungs (`cpu::conv::ConvRung`) pin a cut for the tests and the
//!   benchmarks; a process without tuning keeps the rule.
//!
//! Same machine and same choices give the same kernels, so the same bits; the choices made
//! are listed by [`choices`] for a run's provenance.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use descriptors::choices::ChoiceFile;

static TUNER: OnceLock<ChoiceFile> = OnceLock::new();

/// Turns tuning on for this process, keeping the choices in `cache` (`None`: measured, not
/// kept). The first call decides; returns whether this call turned it on.
pub fn enable_tuning(cache: Option<PathBuf>) -> bool {
    let mut fresh = false;
    TUNER.get_or_init(|| {
        fresh = true;
        ChoiceFile::open(cache, machine_key(), is_cut_name)
    });
    fresh
}

/// The tuner, when tuning is on.
pub(crate) fn tuner() -> Option<&'static ChoiceFile> {
    TUNER.get()
}

/// The choices made or read so far: (class, choice), in class order; empty without tuning.
pub fn choices() -> Vec<(String, String)> {
    TUNER.get().map(ChoiceFile::choices).unwrap_or_default()
}

/// What the cuts are called in the cache and in provenance.
pub(crate) const SIDE_BY_SIDE: &str = "side-by-side";
pub(crate) const PER_IMAGE: &str = "per-image";

fn is_cut_name(name: &str) -> bool {
    name == SIDE_BY_SIDE || name == PER_IMAGE
}

/// How long `run` takes: one warm-up run (buffers, caches), then the median of three.
pub(crate) fn median_time(mut run: impl FnMut()) -> Duration {
    run();
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[1]
}

/// What the timings depend on: the CPU, the GEMM micro-kernel it runs, and the threads.
pub fn machine_key() -> String {
    format!("{}, {}, {} threads", cpu_model(), crate::cpu::gemm::f32_kernel_path(), rayon::current_num_threads())
}

/// The CPU from `/proc/cpuinfo` (or the architecture where that file is absent): see
/// [`cpu_model_from`].
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| cpu_model_from(&text))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The CPU a `/proc/cpuinfo` text describes: its model name, with the vendor, family and model
/// numbers when the text has them (`AMD EPYC (AuthenticAMD, family 25, model 1)`), since a
/// virtual machine's model name alone ("AMD EPYC") does not tell a Zen 3 from a Zen 4, and
/// their kernels and timings differ. `None` without a model name.
pub fn cpu_model_from(cpuinfo: &str) -> Option<String> {
    // The first processor's fields, each `key<tabs>: value`.
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim()))
    };
    let name = field("model name")?;
    Some(match (field("vendor_id"), field("cpu family"), field("model")) {
        (Some(vendor), Some(family), Some(model)) => format!("{name} ({vendor}, family {family}, model {model})"),
        (None, Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        _ => name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_named_by_model_vendor_family_and_model_number() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n\
                    model name\t: AMD EPYC\nstepping\t: 1\n\nprocessor\t: 1\ncpu family\t: 99\n";
        assert_eq!(cpu_model_from(text).as_deref(), Some("AMD EPYC (AuthenticAMD, family 25, model 1)"));
        assert_eq!(cpu_model_from("model name\t: Apple M2\n").as_deref(), Some("Apple M2"));
        assert_eq!(cpu_model_from("processor\t: 0\n"), None);
    }

    #[test]
    fn the_median_of_three_runs_follows_a_warm_up() {
        let mut runs = 0;
        median_time(|| runs += 1);
        assert_eq!(runs, 4);
    }
}
