//! CPU kernel choices by measurement, cached per machine. Tier: fast kernel (tooling for the
//! GEMM and the convolution kernels).
//!
//! Four choices have no rule that holds on every CPU:
//!
//! - **The f32 GEMM kernel** (`cpu::gemm`): the micro-kernel and its block sizes. The rule
//!   takes the widest instruction set, with blocks set on the CPU each kernel was tuned on; but
//!   on a Zen 4 the AVX-512 and AVX2 kernels ran level, and the blocks that suit a 512 KiB L2
//!   do not suit a 2 MiB one. When tuning turns on ([`enable_tuning`]), every kernel this CPU
//!   runs is timed on three products shaped like a training step's (0.7 GFLOP together), in
//!   nine alternating rounds (a few tenths of a second in all), and the fastest by its median
//!   runs every f32 product of the process, unless the rule's kernel is within 5 % of it
//!   (`descriptors::choices::INCUMBENT_MARGIN`: noise does not move a choice off the rule). One kernel for every product, not one per shape:
//!   the products of a step run inside the convolutions' parallel loops, where timing one
//!   alone would measure the loop, not the product.
//! - **A convolution's cut** (`cpu::conv`'s `images_per_gemm`: small output planes side by
//!   side in one GEMM). On a Zen 3, B1's 64→128 backward-weight runs at 80–94 GFLOP/s side by
//!   side and at 92–106 one image per GEMM. With tuning on, the first time a convolution kernel
//!   meets a geometry for which the rule would put images side by side, its cuts are timed on
//!   that call's own operands (a warm-up run each, then the median of three rounds in which
//!   they take turns) and another than the rule's is kept if it is more than 5 % faster;
//!   geometries with nothing to choose are not timed. The weight gradient has a third cut,
//!   side by side computing dW = dy·colᵀ instead of its transpose: on a Zen 5 it ran B3's
//!   512-channel layers on 4×4 to 8×8 planes 14–60 % faster and its large planes 12–27 %
//!   slower. And a fourth, on the phase grid with channel-blocked operands
//!   (`cpu::phase_grid`), where at least half of each micro-kernel tile is real channels: on
//!   a Xeon (model 207) it won 13 of the 29 such timings of B1, B2, B3 and B5, by 5–35 %,
//!   on planes of 8×8 and larger, and lost on ResNet-18's small planes and B3's deepest
//!   layers. And a fifth, the indirect GEMM (`cpu::indirect_weight`), whose pixels that
//!   would read padding are left out: on the same Xeon it won ResNet-18's layers on 4×4 and
//!   2×2 planes, by 28–36 %, and lost to the channel-blocked cut on 16×16 and larger. And a
//!   sixth, the direct convolution (`cpu::direct_weight`), on output planes of 8×8 and
//!   larger: on a Zen 5 it won seven of the eight layers with three channels on a side, by
//!   1.2–2.4× (B3's first level), and 11 of the other 16 it was timed on in B1, B3 and B5,
//!   by up to 31 %. And a seventh, Winograd's F(3×3, 4×4) (`cpu::winograd_weight`), at 3×3
//!   kernels, stride 1 and 16 channels or more on either side: on the same Zen 5 it won B3's
//!   such layers on 8×8 to 32×32 planes by 1.1–1.8× and was level on 4×4 and 64×64. The
//!   forward's other ways (Winograd, the phase grid, the indirect GEMM, shifted rows; each
//!   constant below says where it is offered) are timed beside its cuts,
//!   and the indirect GEMM is offered wherever there are 8 input and output channels or more
//!   and its AVX-512 tile runs, so nearly every forward geometry is timed at its first use.
//! - **Backward-data's way at stride 1** (`cpu::conv::conv2d_backward_data`): col2im, or the
//!   full correlation (a forward convolution of dy). The rule takes the correlation on large
//!   planes; on a Zen 5 col2im was faster on three of B3's such layers (128→128 at 32×32:
//!   23.2–23.7 ms against 28.0–28.9) and the tuner keeps it there. Timed as the cuts are, at
//!   every stride-1 geometry.
//! - **The nearest-upsampled convolution's weight gradient**
//!   (`cpu::upsampled_conv::conv2d_nearest_upsampled_backward_weight`): through its phases'
//!   2×2 kernels (the rule), or by its own Winograd transform, transposed, whose 9 values a
//!   pixel and channel cost memory traffic: on a Zen 5 it won three of B3's four such layers
//!   by 1.2–2.3× and lost the one with 128 input channels on 32×32 planes. Timed with 16
//!   channels or more on either side; the class is named by the phases' 2×2 convolution.
//!
//! Without tuning, the rules decide, as they always did. A third way: [`replay`] another
//! run's choices, as its provenance lists them, so that its bits come back on another CPU.
//!
//! - Cache: [`descriptors::choices::ChoiceFile`], keyed by [`machine_key`] (the CPU model, the
//!   GEMM kernels it runs, the cuts and ways, and the thread count), so another CPU, another build's candidates
//!   or another `--threads` measures anew. One line per choice; a convolution's class names the GEMM kernel it ran on.
//! - Cost: a first `train --arch conv` epoch on a fresh cache times the GEMM kernels and about
//!   ten convolution classes, a second or two in all; every measurement prints a `tuning:` line,
//!   and a run whose choices are all cached prints none.
//! - Overrides: `cpu::gemm::choose_f32_kernel` pins a kernel by name (`train --cpu-gemm`), and
//!   the tuner then times only the convolutions; the ladders' rungs (`cpu::gemm::GemmRung`,
//!   `cpu::conv::ConvRung`) pin a kernel or a cut for the tests and the benchmarks; a process
//!   without tuning keeps the rules (`train --cpu-kernels rule`, which the tests set).
//!
//! Same machine and same choices give the same kernels, so the same bits; the choices made
//! are listed by [`choices`] for a run's provenance.

use std::path::PathBuf;
use std::sync::OnceLock;

use descriptors::choices::ChoiceFile;

use crate::cpu::gemm::{self, KernelChoice};

static TUNER: OnceLock<ChoiceFile> = OnceLock::new();

/// Turns tuning on for this process, keeping the choices in `cache` (`None`: measured, not
/// kept), and chooses the f32 GEMM kernel now unless one was pinned: the cached choice, or
/// the fastest when they are timed. Call it before the work: the kernel must not change under
/// a run. The first call decides; returns whether this call turned it on.
pub fn enable_tuning(cache: Option<PathBuf>) -> bool {
    let mut fresh = false;
    // Chosen inside the initialisation, so that a second caller waits for the kernel too.
    TUNER.get_or_init(|| {
        fresh = true;
        let tuner = ChoiceFile::open(cache, machine_key(), is_choice_name);
        if gemm::f32_kernel_in_use().1 == KernelChoice::Rule {
            choose_the_gemm_kernel(&tuner);
        }
        tuner
    });
    fresh
}

/// Replays another run's choices instead of measuring (`train --cpu-kernels-from`): every f32
/// product on `gemm_kernel`, and each convolution class on its cut or way in `convolutions`
/// (class, choice), nothing timed; a class they lack runs by the rule (see
/// [`ChoiceFile::replaying`]). The same choices and thread count on another CPU give that run's
/// bits. Call it before the work, instead of [`enable_tuning`]; refused, naming what, for a
/// kernel or cut this build or CPU lacks, or once tuning is on.
pub fn replay(gemm_kernel: &str, convolutions: Vec<(String, String)>) -> Result<(), String> {
    install(gemm_kernel, ChoiceFile::replaying(convolutions, is_choice_name)?)
}

/// [`replay`] for speed rather than bits (`explore` borrowing its run's choices): a
/// convolution the run had no choice for takes the rule without a warning.
pub fn replay_for_speed(gemm_kernel: &str, convolutions: Vec<(String, String)>) -> Result<(), String> {
    install(gemm_kernel, ChoiceFile::replaying(convolutions, is_choice_name)?.without_unreplayed_warnings())
}

fn install(gemm_kernel: &str, replayed: ChoiceFile) -> Result<(), String> {
    gemm::choose_f32_kernel(gemm_kernel, KernelChoice::Replayed)?;
    TUNER.set(replayed).map_err(|_| "the kernel choices are already made for this process".to_string())
}

/// Whether the choices are another run's, replayed ([`replay`]), rather than measured here.
pub fn is_replay() -> bool {
    TUNER.get().is_some_and(ChoiceFile::is_replay)
}

/// Replaying, the convolution classes the replayed run had no choice for, with the rule's
/// choice each ran instead; empty otherwise.
pub fn not_replayed() -> Vec<(String, String)> {
    TUNER.get().map(ChoiceFile::not_replayed).unwrap_or_default()
}

/// The cache's class for the f32 GEMM kernel: one kernel runs every f32 product of a process.
pub const GEMM_KERNEL_CLASS: &str = "every f32 product";

fn choose_the_gemm_kernel(tuner: &ChoiceFile) {
    let names = gemm::f32_kernel_names();
    let rule = gemm::f32_kernel_in_use().0;
    let timed = tuner.choose_timed_together("f32 GEMM kernels", GEMM_KERNEL_CLASS, &names, Some(rule), |names| {
        gemm::time_f32_kernels(names).ok_or_else(|| format!("this CPU cannot run one of {names:?}"))
    });
    // A cached name comes from this machine's key, so it runs here; if not, the rule stays.
    if let Err(e) = timed.and_then(|name| gemm::choose_f32_kernel(&name, KernelChoice::Measured)) {
        eprintln!("warning: the f32 GEMM kernel stays the rule's {}: {e}", gemm::f32_kernel_in_use().0);
    }
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
/// The weight gradient's third cut: images side by side, each GEMM computing dW = dy·colᵀ
/// ([C_out, K]) instead of dWᵀ = col·dyᵀ, so no transposed sum at the end.
pub(crate) const SIDE_BY_SIDE_DW_ROWS: &str = "side-by-side-dw-rows";
/// Backward-data's two ways at stride 1: dcol = Wᵀ·dy scattered back by col2im, or the full
/// correlation, a forward convolution of dy with the flipped weight.
pub(crate) const COL2IM: &str = "col2im";
pub(crate) const FULL_CORRELATION: &str = "full-correlation";
/// A third way for the forward, and for backward-data as the full correlation, where the
/// kernel is 3×3 at stride 1: Winograd's F(2×2, 3×3) in blocks (`cpu::winograd_blocked`).
pub(crate) const WINOGRAD: &str = "winograd";
/// The nearest-upsampled convolution's weight gradient through its phases: the phases'
/// gradient put back in place, their 2×2 kernels' weight gradient, gathered into the 3×3 kernel
/// (`cpu::upsampled_conv`); its other way is the layer's own Winograd transform, transposed
/// (`cpu::upsampled_weight`), under the name [`WINOGRAD`].
pub(crate) const PHASES: &str = "phases";
/// The same place for Winograd's larger tile, F(4×4, 3×3) in blocks
/// (`cpu::winograd_4x4`): fewer multiply-adds, more transform a value and a larger U. And a
/// seventh cut for the weight gradient there, its transpose F(3×3, 4×4)
/// (`cpu::winograd_weight`).
pub(crate) const WINOGRAD_4X4: &str = "winograd-4x4";
/// A fourth way for the forward, and for backward-data as the full correlation: an implicit
/// GEMM that copies its B panels out of the input's stride phases (`cpu::phase_grid`).
pub(crate) const PHASE_GRID: &str = "phase-grid";
/// A fourth way for the weight gradient: on the phase grid, with dy and the planes in
/// channel-blocked layouts that the GEMM's micro-kernel reads as its packed panels
/// (`cpu::phase_grid`).
pub(crate) const CHANNEL_BLOCKED: &str = "channel-blocked";
/// A fifth way for the forward, and for backward-data as the full correlation: an indirect
/// GEMM on channels-last images, the micro-kernel finding its A rows through a table of
/// offsets (`cpu::indirect`). And a fifth for the weight gradient: each tap a GEMM whose depth
/// is the pixels, read from channels-last x and dy through a list of offset pairs
/// (`cpu::indirect_weight`).
pub(crate) const INDIRECT: &str = "indirect";
/// A sixth way for the weight gradient, a direct convolution: every input channel and tap a
/// column of dW with its own accumulators, summed over the pixels with nothing unfolded
/// (`cpu::direct_weight`).
pub(crate) const DIRECT: &str = "direct";
/// A sixth way for the forward, at stride 1 into a few channels: each output row a sum of
/// shifted input rows (`cpu::shifted_rows`); the rule's there.
pub(crate) const SHIFTED_ROWS: &str = "shifted-rows";
/// Every cut and way, for the cache's key.
const CUTS: [&str; 13] = [
    SIDE_BY_SIDE,
    PER_IMAGE,
    SIDE_BY_SIDE_DW_ROWS,
    COL2IM,
    FULL_CORRELATION,
    WINOGRAD,
    WINOGRAD_4X4,
    PHASE_GRID,
    CHANNEL_BLOCKED,
    INDIRECT,
    SHIFTED_ROWS,
    DIRECT,
    PHASES,
];

/// Whether a cache line's choice is one this tuner makes: a cut or a GEMM kernel.
fn is_choice_name(name: &str) -> bool {
    CUTS.contains(&name) || gemm::is_f32_kernel_name(name)
}

/// What the timings depend on: the CPU, the f32 GEMM kernels it runs (its instruction sets,
/// which a virtual machine may hide in part, and the candidates of this build: a build with
/// another kernel measures anew), the cuts a convolution can take (likewise, and their
/// `CUTS_REVISION`), and the threads.
pub fn machine_key() -> String {
    let kernels = gemm::f32_kernel_names().join(" ");
    let threads = rayon::current_num_threads();
    format!("{}, {kernels}, {} (revision {CUTS_REVISION}), {threads} threads", cpu_model(), CUTS.join(" "))
}

/// Counts the changes to how a cut runs under the same name (2: Winograd in cache-sized blocks,
/// `cpu::winograd_blocked`; 3: the indirect GEMM offered for the weight gradient too,
/// `cpu::indirect_weight`; 4: the GEMMs inside a convolution's per-thread tasks on the calling
/// thread; 5: the indirect GEMMs' bookkeeping made cheaper, 9–30 % off their time; 6: the
/// weight gradient offered `winograd-4x4`, a name the forward had), so that a cache measured on
/// the cut's older form, or without a candidate, measures anew.
const CUTS_REVISION: u32 = 6;

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
    fn every_cut_and_gemm_kernel_is_a_choice_a_cache_line_may_hold_and_nothing_else_is() {
        for cut in CUTS {
            assert!(is_choice_name(cut), "{cut}");
        }
        assert!(is_choice_name("portable-4x8"));
        assert!(!is_choice_name("side-by-side-dw"), "a cut's name cut short");
    }

    #[test]
    fn the_machine_key_names_every_cut_so_a_build_with_another_cut_measures_anew() {
        let key = machine_key();
        assert!(CUTS.iter().all(|cut| key.contains(cut)), "{key}");
    }
}
