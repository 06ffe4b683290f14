//! Optimizers (SGD, Adam, AdamW), gradient clipping, learning-rate schedules and early
//! stopping.
//!
//! An optimizer holds the model's parameters by name (`model.named_parameters()`); `step()`
//! updates every parameter that requires a gradient and has one, in place, with ONE fused
//! kernel per parameter (`tensor::ops::optim`). On a GPU, when every parameter takes the same
//! step, the parameters and their state are packed into one buffer each and the gradients
//! into a few (`tensor::ops::packed`), and the whole step is one launch per gradient pack
//! (`packed_step`). Its state
//! (step counts, moment or momentum buffers) is exported and imported by parameter name for
//! training checkpoints.
//!
//! A gradient holding a NaN or an infinity must change nothing (the model keeps its last good
//! values and the error names the parameter). Waiting for that check on the host would stall a
//! GPU step twice (the device drains, then idles while the host records what comes next), so
//! on the GPU the check stays there: [`Optimizer::step_unless_non_finite`] computes a flag on
//! the device and records an update that the flag can veto, and the caller reads the flag
//! when it reads anything else (a training step: with its loss) and hands its value to
//! [`Optimizer::settle_step`]. [`Optimizer::step`] does both at once.

pub mod adam;
pub mod early_stopping;
pub mod schedule;
pub mod sgd;

pub use adam::{Adam, AdamConfig};
pub use early_stopping::{EarlyStopping, EarlyStoppingDecision, MetricGoal};
pub use schedule::LrSchedule;
pub use sgd::{Sgd, SgdConfig};

use std::collections::BTreeMap;
use std::ops::Range;

use autograd::Var;
use tensor::{DType, Tensor};

use crate::error::{config_err, Error, Result, ShapeMismatch, StateMismatch};
use crate::module::BufferKind;

/// One tensor of optimizer state, named `<kind>.<parameter name>` (`exp_avg.fc.weight`).
#[derive(Clone, Debug)]
pub struct OptimizerStateTensor {
    /// `<kind>.<parameter name>`.
    pub name: String,
    /// The state tensor.
    pub value: Tensor,
    /// `Count` for step counters (saved as I64), `Float` for buffers.
    pub kind: BufferKind,
}

/// What every optimizer offers a training loop and a checkpoint. `Send`, so that a step can run
/// on a worker of the CPU pool (`tensor::cpu::awake`).
pub trait Optimizer: Send {
    /// Updates every parameter that requires a gradient and has one; others are skipped. A
    /// gradient holding a NaN or an infinity changes nothing and is an error naming the first
    /// such parameter. On a GPU this waits for the device (one read-back).
    fn step(&mut self) -> Result<()> {
        let flag = self.step_unless_non_finite(&[])?;
        let non_finite = flag.to_vec_f64()?.first().is_some_and(|&f| f != 0.0);
        self.settle_step(non_finite)
    }

    /// [`Optimizer::step`] without the wait: records the update so that it takes effect only if
    /// every gradient and every tensor of `also` (say, the loss) is finite, and returns the
    /// flag that decides it, unread: `[1]`, 1 when something was not finite. The caller reads
    /// it and passes its value to [`Optimizer::settle_step`] before the next step. (On the CPU,
    /// or when the parameters are not all on one GPU, the check is made here and a
    /// non-finite gradient is an error at once.)
    fn step_unless_non_finite(&mut self, also: &[&Tensor]) -> Result<Tensor>;

    /// Settles the last [`Optimizer::step_unless_non_finite`], given whether its flag was set.
    /// A set flag means the update changed no parameter and no moment; this undoes the
    /// step's bookkeeping (step counts, buffers made for a first step) and returns the error
    /// naming the first parameter whose gradient is not finite, or `Ok` when the gradients
    /// were finite and only `also` was not.
    fn settle_step(&mut self, non_finite: bool) -> Result<()>;

    /// Clears the gradients of all the optimizer's parameters.
    fn zero_grad(&self) {
        self.parameters().iter().for_each(|(_, p)| p.zero_grad());
    }

    /// The current learning rate.
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate (schedules call this each step or epoch).
    fn set_learning_rate(&mut self, lr: f64);

    /// The named parameters this optimizer updates.
    fn parameters(&self) -> &[(String, Var)];

    /// All state, named by kind and parameter name.
    fn state_tensors(&self) -> Vec<OptimizerStateTensor>;

    /// Restores state exported by `state_tensors` (converted to each parameter's dtype).
    /// Every tensor must name a parameter of this optimizer with that parameter's shape.
    fn load_state_tensors(&mut self, tensors: &BTreeMap<String, Tensor>) -> std::result::Result<(), StateMismatch>;
}

/// Refuses a step whose gradients hold a NaN or an infinity, before anything changes: such a
/// step would write non-finite values into the parameters, after which every loss is NaN and
/// the last checkpoint is the only good model left. The error names the first such parameter.
/// One read pass per gradient on the CPU; on the GPU one launch per gradient and a single
/// read-back for all of them (`tensor::ops::finite::all_finite_each`).
pub fn check_gradients_finite(params: &[(String, Var)]) -> Result<()> {
    let grads: Vec<(&String, Tensor)> =
        params.iter().filter(|(_, p)| p.requires_grad()).filter_map(|(n, p)| p.grad().map(|g| (n, g))).collect();
    let tensors: Vec<&Tensor> = grads.iter().map(|(_, g)| g).collect();
    let finite = tensor::ops::finite::all_finite_each(&tensors)?;
    match grads.iter().zip(finite).find(|(_, finite)| !finite) {
        Some(((name, _), _)) => Err(Error::NonFiniteGradient { parameter: name.to_string() }),
        None => Ok(()),
    }
}

/// A step recorded by [`Optimizer::step_unless_non_finite`] and not yet settled: what
/// [`Optimizer::settle_step`] undoes when its flag turns out set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unsettled {
    /// The check was made on the host: nothing was changed (`also` was not finite) or the
    /// update was applied (everything was finite). Nothing to undo either way.
    CheckedOnHost,
    /// An update was recorded on the device, guarded by the flag; `first` when it was the
    /// optimizer's first step (its state was created for it).
    Guarded { first: bool },
}

/// Refuses a step begun while the last one is unsettled: its state would be ambiguous.
pub(crate) fn ensure_settled(unsettled: Option<Unsettled>, optimizer: &'static str) -> Result<()> {
    match unsettled {
        None => Ok(()),
        Some(_) => config_err(
            optimizer,
            "the last step_unless_non_finite is not settled: pass its flag's value to settle_step first",
        ),
    }
}

/// What [`Optimizer::step_unless_non_finite`] does after its packed attempt (`packed`: the
/// flag and whether it was the first step, when the step was one guarded launch), recording
/// the step in `unsettled`. Returns the flag when the step is decided: the packed launch's, or
/// a set one when the host's check finds `also` not finite (nothing changed). `None` when the
/// caller must update each parameter itself, every check having passed on the host (a
/// non-finite gradient is an error there, before anything changes).
pub(crate) fn after_packed_attempt(
    unsettled: &mut Option<Unsettled>,
    params: &[(String, Var)],
    also: &[&Tensor],
    packed: Option<(Tensor, bool)>,
) -> Result<Option<Tensor>> {
    if let Some((flag, first)) = packed {
        *unsettled = Some(Unsettled::Guarded { first });
        return Ok(Some(flag));
    }
    check_gradients_finite(params)?;
    *unsettled = Some(Unsettled::CheckedOnHost);
    let also_finite = tensor::ops::finite::all_finite_each(also)?.iter().all(|&f| f);
    (!also_finite).then(|| host_flag(true)).transpose()
}

/// A flag made on the host, as [`Optimizer::step_unless_non_finite`] returns it.
pub(crate) fn host_flag(non_finite: bool) -> Result<Tensor> {
    Ok(Tensor::from_vec(vec![if non_finite { 1.0f64 } else { 0.0 }], &[1])?)
}

/// What [`Optimizer::settle_step`] returns once the optimizer has undone its bookkeeping:
/// the error naming the first parameter with a non-finite gradient, if the flag was set and
/// one has.
pub(crate) fn settled(params: &[(String, Var)], non_finite: bool) -> Result<()> {
    if non_finite {
        check_gradients_finite(params)?;
    }
    Ok(())
}

/// The most gradient elements a run of a GPU step's gradients packs (8 MiB of f32) when a
/// quarter of them is more. Packing copies the gradients, and until a gradient is copied both
/// it and its copy take memory: packed all at once, that is every gradient twice, and the
/// step's peak (five times the parameters with Adam's two moments, where PyTorch's fused Adam
/// needs four). Packed a run at a time, each run's gradients freed once copied, the copies cost
/// at most a run (plus its last gradient) beyond them: a quarter of the gradients of a small
/// model, 8 MiB of a large one. Each run is two launches (the check and the update), so a
/// small model's step is at most eight, a large one's two per 8 MiB of gradients.
pub const GRADIENT_RUN_MAX_ELEMENTS: usize = 1 << 21;

/// The elements a run of gradients closes at, of `total` (see [`GRADIENT_RUN_MAX_ELEMENTS`]).
fn gradient_run_target(total: usize) -> usize {
    total.div_ceil(4).clamp(1, GRADIENT_RUN_MAX_ELEMENTS)
}

/// The parameters and gradients of a multi-tensor step on the GPU: the parameters packed into
/// one buffer, their gradients into runs of consecutive parameters, one pack each.
pub(crate) struct PackedStep {
    /// One launch's share of the step each.
    pub runs: Vec<PackedRun>,
    /// The parameters' values, in order (the shapes of the state to pack like them).
    pub values: Vec<Tensor>,
    /// `[1]` on the device, 1 when a gradient or a tensor of `also` is not finite: the flag
    /// the update is recorded under.
    pub non_finite: Tensor,
}

/// Consecutive parameters of a [`PackedStep`] and their gradients, as flat tensors `[len]`.
pub(crate) struct PackedRun {
    /// Which parameters: indices into the optimizer's list (and into its state).
    pub range: Range<usize>,
    /// Their elements in the parameters' pack (an in-place update updates the parameters).
    pub params: Tensor,
    /// Their gradients, packed at the same offsets as `params` (zeros between).
    pub grads: Tensor,
}

/// Prepares the step's launches, when they apply: every parameter requires a gradient, has
/// one, and lives on one GPU with it, and all of them fit one buffer. The parameters are packed
/// into one buffer the first time (and again only if one was replaced, or shared with another
/// tensor, which copy-on-write must not change); the gradients are copied into packs of runs of
/// parameters each step ([`GRADIENT_RUN_MAX_ELEMENTS`]; each gradient becomes its packed copy)
/// and checked, with `also`, for non-finite values on the device (the flag is not read here).
/// `None` when the step does not apply: the caller steps each parameter on its own.
pub(crate) fn packed_step(params: &[(String, Var)], also: &[&Tensor]) -> Result<Option<PackedStep>> {
    let Some((_, first)) = params.first() else { return Ok(None) };
    let device = first.value().device();
    if !device.is_gpu() {
        return Ok(None);
    }
    for (_, p) in params {
        match p.grad() {
            Some(g) if p.requires_grad() && p.value().device() == device && g.device() == device => {}
            _ => return Ok(None),
        }
    }
    // Before `values` clones them: a parameter whose storage another tensor holds too.
    let shared = params.iter().any(|(_, p)| p.update_value(|v| v.storage_is_shared()));
    let mut values: Vec<Tensor> = params.iter().map(|(_, p)| p.value()).collect();
    if !tensor::ops::packed::fits_one_pack(&values.iter().collect::<Vec<_>>()) {
        return Ok(None);
    }
    if shared || packed_whole(&values).is_none() {
        values = tensor::ops::packed::pack(&values.iter().collect::<Vec<_>>())?;
        for ((_, p), v) in params.iter().zip(&values) {
            p.set_value(v.clone());
        }
    }
    let lens: Vec<usize> = values.iter().map(Tensor::numel).collect();
    let mut runs = Vec::new();
    for range in runs_of(&lens, gradient_run_target(lens.iter().sum())) {
        let run = &params[range.clone()];
        let grads: Vec<Tensor> = run.iter().filter_map(|(_, p)| p.grad()).collect();
        let packed = tensor::ops::packed::pack(&grads.iter().collect::<Vec<_>>())?;
        drop(grads);
        // The packed copy replaces the gradient, so the original goes back to the pool now
        // (unless the caller holds it), before the next run is packed.
        for ((_, p), g) in run.iter().zip(&packed) {
            p.set_grad(Some(g.clone()));
        }
        let span = tensor::ops::packed::packed_span(&values[range.clone()].iter().collect::<Vec<_>>());
        let (Some(params), Some(grads)) = (span, packed_whole(&packed)) else { return Ok(None) };
        runs.push(PackedRun { range, params, grads });
    }
    let mut checked: Vec<&Tensor> = runs.iter().map(|r| &r.grads).collect();
    checked.extend_from_slice(also);
    let non_finite = tensor::ops::finite::non_finite_flag(&checked)?;
    Ok(Some(PackedStep { runs, values, non_finite }))
}

/// Consecutive ranges of `lens` (element counts), each closed once it holds `target` elements
/// or more (so at most ⌈total / target⌉ of them, each at most `target` plus one length).
fn runs_of(lens: &[usize], target: usize) -> Vec<Range<usize>> {
    let (mut runs, mut start, mut size) = (Vec::new(), 0, 0);
    for (i, &len) in lens.iter().enumerate() {
        size += len;
        if size >= target {
            runs.push(start..i + 1);
            (start, size) = (i + 1, 0);
        }
    }
    if start < lens.len() {
        runs.push(start..lens.len());
    }
    runs
}

/// [`tensor::ops::packed::packed_whole`] of `tensors`, given as a slice of tensors.
pub(crate) fn packed_whole(tensors: &[Tensor]) -> Option<Tensor> {
    tensor::ops::packed::packed_whole(&tensors.iter().collect::<Vec<_>>())
}

/// State tensors (moments, momentum) kept packed like the parameters, as flat tensors over
/// each run of `runs` (one per launch of the step). Packed again first when a tensor is no
/// longer in the pack or is shared with another tensor (a checkpoint's export, say), which an
/// in-place update must not change.
pub(crate) fn packed_state(state: &mut [&mut Tensor], runs: &[PackedRun]) -> Result<Vec<Tensor>> {
    let shared = state.iter().any(|t| t.storage_is_shared());
    if shared || tensor::ops::packed::packed_whole(&state.iter().map(|t| &**t).collect::<Vec<_>>()).is_none() {
        let packed = tensor::ops::packed::pack(&state.iter().map(|t| &**t).collect::<Vec<_>>())?;
        for (t, p) in state.iter_mut().zip(packed) {
            **t = p;
        }
    }
    runs.iter()
        .map(|run| {
            let tensors: Vec<&Tensor> = state[run.range.clone()].iter().map(|t| &**t).collect();
            tensor::ops::packed::packed_span(&tensors).ok_or_else(|| {
                Error::Tensor(tensor::TensorError::Invalid {
                    op: "pack",
                    msg: "a run of a fresh pack is not one span".into(),
                })
            })
        })
        .collect()
}

/// Scales the gradients of `params` so their global L2 norm is at most `max_norm`, like
/// `torch.nn.utils.clip_grad_norm_` (coefficient max_norm/(norm + 1e-6), applied only when
/// below 1). Returns the norm before clipping. Parameters without a gradient are ignored.
pub fn clip_grad_norm(params: &[Var], max_norm: f64) -> Result<f64> {
    let grads: Vec<(&Var, Tensor)> = params.iter().filter_map(|p| p.grad().map(|g| (p, g))).collect();
    let mut sum_sq = 0.0;
    for (_, g) in &grads {
        sum_sq += g.to_vec_f64()?.iter().map(|x| x * x).sum::<f64>();
    }
    let norm = sum_sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (p, g) in grads {
            p.set_grad(Some(g.mul_scalar(coef)?));
        }
    }
    Ok(norm)
}

/// x ≥ 0 (false for NaN): the check on rates and coefficients.
fn non_negative(x: f64) -> bool {
    x >= 0.0
}

/// Index of each parameter by name, for loading state.
fn index_by_name(params: &[(String, Var)]) -> BTreeMap<&str, usize> {
    params.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect()
}

/// Takes `<kind>.<param>` apart into (kind, param index), if `kind` is one of `kinds` and
/// the parameter exists.
fn parse_state_name<'a>(name: &'a str, kinds: &[&'a str], index: &BTreeMap<&str, usize>) -> Option<(&'a str, usize)> {
    let (kind, param) = name.split_once('.')?;
    let kind = kinds.iter().find(|k| **k == kind)?;
    index.get(param).map(|&i| (*kind, i))
}

/// A state tensor converted to the parameter's dtype, or a shape mismatch recorded.
fn state_like_param(name: &str, t: &Tensor, param: &Var, mismatch: &mut StateMismatch) -> Option<Tensor> {
    let model = param.shape();
    if t.shape() != model.as_slice() {
        mismatch.shape_mismatches.push(ShapeMismatch { name: name.to_string(), file: t.shape().to_vec(), model });
        return None;
    }
    // The state lives where its parameter lives (a checkpoint is read onto the CPU; a model
    // may since have moved to the GPU).
    match t.to_dtype(param.dtype()).and_then(|t| t.contiguous_copy()).and_then(|t| t.to_device(&param.value().device()))
    {
        Ok(state) => Some(state),
        Err(e) => {
            mismatch.unexpected.push(format!("{name} (cannot be placed on the parameter's device: {e})"));
            None
        }
    }
}

/// A step counter read back from a state tensor (any float or integer-valued tensor of one element).
fn count_value(t: &Tensor) -> Option<u64> {
    let v = t.item().ok()?;
    (v >= 0.0 && v.fract() == 0.0).then_some(v as u64)
}

fn count_tensor(n: u64) -> Tensor {
    Tensor::full(&[], n as f64, DType::F64)
}

#[cfg(test)]
mod tests {
    use super::{gradient_run_target, runs_of, GRADIENT_RUN_MAX_ELEMENTS};

    #[test]
    fn runs_cover_every_length_in_order_and_close_at_the_target() {
        for lens in [vec![3, 35, 11], vec![10; 8], vec![1, 1, 1, 100], vec![100, 1, 1, 1], vec![5], vec![0, 0]] {
            let total: usize = lens.iter().sum();
            let target = gradient_run_target(total);
            let runs = runs_of(&lens, target);
            assert!(!runs.is_empty() && runs.len() <= total.div_ceil(target).max(1), "{lens:?}: {runs:?}");
            assert_eq!(runs.first().map(|r| r.start), Some(0), "{lens:?}: {runs:?}");
            assert_eq!(runs.last().map(|r| r.end), Some(lens.len()), "{lens:?}: {runs:?}");
            assert!(runs.windows(2).all(|w| w[0].end == w[1].start), "{lens:?}: {runs:?}");
        }
        assert_eq!(runs_of(&[10; 8], 20), vec![0..2, 2..4, 4..6, 6..8]);
        assert_eq!(runs_of(&[3, 35, 11], 13), vec![0..2, 2..3]);
    }

    #[test]
    fn a_run_is_a_quarter_of_the_gradients_up_to_eight_mebibytes() {
        assert_eq!(gradient_run_target(49), 13);
        assert_eq!(gradient_run_target(4 << 20), GRADIENT_RUN_MAX_ELEMENTS / 2);
        assert_eq!(gradient_run_target(24 << 20), GRADIENT_RUN_MAX_ELEMENTS);
    }
}
