//! One VAE training step and a whole-dataset evaluation, shared by the `train` binary, the
//! end-to-end tests and the training-step benchmark.
//!
//! A step: draw ε ~ N(0, I), encode (optionally a noisy copy of the batch), sample
//! z = μ + σ·ε, decode, apply the output activation, compute the objective, check it is
//! finite, back-propagate, and let the optimizer update the parameters.

use autograd::{no_grad, Var};
use nn::optim::Optimizer;
use nn::Module;
use tensor::{DType, Device, Rng, Tensor};

use crate::error::{Error, Result};
use crate::loss::{vae_loss, LossTerms, LossValues, Objective, ReconLoss};
use crate::model::{OutputActivation, Vae};

/// Everything that defines the loss of a batch.
#[derive(Clone, Copy, Debug)]
pub struct LossSetup {
    /// The reconstruction term.
    pub recon: ReconLoss,
    /// The activation applied to the decoder's raw output before the reconstruction loss.
    pub output: OutputActivation,
    /// β-VAE or β-TCVAE, with its weights.
    pub objective: Objective,
    /// Standard deviation of Gaussian noise added to the encoder's input (the target stays
    /// clean), 0 for none: Messaoudi et al.'s robustness training.
    pub input_noise_std: f64,
}

/// A running mean of [`LossValues`], weighted by batch size (saved in a mid-epoch checkpoint, so
/// a resumed epoch's mean still covers all its batches).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsMean {
    sum: LossValues,
    weight: f64,
}

impl StatsMean {
    /// The number of images averaged so far.
    pub fn images(&self) -> f64 {
        self.weight
    }

    /// Adds the values of one batch of `batch` images, weighted by `batch`.
    pub fn add(&mut self, s: &LossValues, batch: usize) {
        let w = batch as f64;
        self.sum = self.sum.zip_with(s, |sum, value| sum + value * w);
        self.weight += w;
    }

    /// The batch-size-weighted mean of everything added (all zeros when nothing was added).
    pub fn mean(&self) -> LossValues {
        let w = self.weight.max(1.0);
        self.sum.map(|sum| sum / w)
    }

    /// The total weight added: the number of images.
    pub fn count(&self) -> f64 {
        self.weight
    }
}

/// ε ~ N(0, I) of shape [n, z] in the model's dtype.
pub fn standard_normal(n: usize, z: usize, dtype: DType, rng: &mut Rng) -> Tensor {
    Tensor::rand_normal(&[n, z], 0.0, 1.0, dtype, rng)
}

/// The loss of one batch x: [N, C, H, W] (already normalised); builds the graph unless the
/// caller is inside `no_grad`.
pub fn batch_loss(model: &Vae, x: &Tensor, setup: &LossSetup, rng: &mut Rng) -> Result<LossTerms> {
    let n = match x.shape() {
        [n, _, _, _] if *n > 0 => *n,
        shape => {
            return Err(Error::Config(format!("a batch must be [N, C, H, W] with N ≥ 1 images, got {shape:?}")));
        }
    };
    // Noise is drawn on the host (one generator, the same draws on every device) and moved
    // to the batch's device.
    let device = x.device();
    let eps = standard_normal(n, model.config.z_dim, x.dtype(), rng).to_device(&device)?;
    let input = if setup.input_noise_std > 0.0 {
        let noise = Tensor::rand_normal(x.shape(), 0.0, setup.input_noise_std, x.dtype(), rng);
        x.add(&noise.to_device(&device)?)?
    } else {
        x.clone()
    };
    let out = model.forward_with_noise(&Var::constant(input), &eps)?;
    let y = setup.output.apply(&out.raw)?;
    Ok(vae_loss(&y, &Var::constant(x.clone()), &out.mu, &out.logvar, &out.z, setup.recon, &setup.objective)?)
}

/// One optimisation step on batch x, as plainly as it can be written: the step a reader
/// starts from (PyTorch's `zero_grad(); loss.backward(); step()`). A non-finite gradient
/// changes no parameter and is an error ([`Optimizer::step`]); a non-finite loss is not
/// checked here. [`train_step`] is the same step as the training loop runs it: the loss
/// checked too, and on a GPU without waiting for the device until the step's end.
pub fn plain_train_step(
    model: &Vae,
    optimizer: &mut dyn Optimizer,
    x: &Tensor,
    setup: &LossSetup,
    rng: &mut Rng,
) -> Result<LossValues> {
    optimizer.zero_grad();
    let terms = batch_loss(model, x, setup, rng)?;
    terms.total.backward()?;
    optimizer.step()?;
    Ok(terms.values()?)
}

/// One optimisation step on batch x. A non-finite loss or gradient changes no parameter, so
/// the model keeps its last good values, and is reported (the loss first).
///
/// On a GPU the step waits for the device once, at its end: the loss terms stay there while
/// the backward pass and the update are recorded, the optimizer's update is vetoed on the
/// device if the loss or a gradient is not finite
/// ([`Optimizer::step_unless_non_finite`]), and the terms come back with that verdict in one
/// read. On the CPU the step's hundreds of short parallel ops run with the pool's workers
/// kept awake between them ([`tensor::cpu::awake`]).
pub fn train_step(
    model: &Vae,
    optimizer: &mut dyn Optimizer,
    x: &Tensor,
    setup: &LossSetup,
    rng: &mut Rng,
    position: (usize, usize),
) -> Result<LossValues> {
    let mut step = || {
        let non_finite =
            |what: String| Error::NonFinite { epoch: position.0, step: position.1, what, kept: String::new() };
        optimizer.zero_grad();
        let terms = batch_loss(model, x, setup, rng)?;
        terms.total.backward()?;
        let flag = match optimizer.step_unless_non_finite(&[terms.terms()]) {
            Ok(flag) => flag,
            // Checked on the host, a non-finite gradient is refused at once; the loss terms it
            // came from, if any went non-finite, are named instead of the parameter, as on the
            // device.
            Err(e) => {
                return Err(match terms.values()?.non_finite_terms() {
                    Some(what) => non_finite(what),
                    None => gradient_error(e, non_finite),
                })
            }
        };
        let (stats, flag) = terms.values_with(&flag)?;
        let settled = optimizer.settle_step(flag != 0.0);
        if let Some(what) = stats.non_finite_terms() {
            return Err(non_finite(what));
        }
        settled.map_err(|e| gradient_error(e, non_finite))?;
        Ok(stats)
    };
    match x.device() {
        Device::Cpu => tensor::cpu::awake::kept_awake(step),
        Device::Gpu(_) | Device::Reference => step(),
    }
}

/// An optimizer's error as the training loop reports it: a non-finite gradient names its
/// parameter.
fn gradient_error(e: nn::Error, non_finite: impl Fn(String) -> Error) -> Error {
    match e {
        nn::Error::NonFiniteGradient { parameter } => non_finite(format!("the gradient of {parameter}")),
        other => other.into(),
    }
}

/// Mean loss components over batches, in evaluation mode and without a graph; the model is
/// returned to training mode afterwards.
///
/// On the CPU the pool's workers are kept awake through the batches, as through a training
/// step ([`tensor::cpu::awake`]).
pub fn evaluate<'a>(
    model: &Vae,
    batches: impl Iterator<Item = &'a Tensor> + Send,
    setup: &LossSetup,
    rng: &mut Rng,
) -> Result<LossValues> {
    let mut batches = batches.peekable();
    let on_cpu = batches.peek().is_some_and(|x| x.device() == Device::Cpu);
    model.set_training(false);
    let evaluate_all = || {
        no_grad(|| {
            let mut mean = StatsMean::default();
            for x in batches {
                let s = batch_loss(model, x, setup, rng)?.values()?;
                mean.add(&s, x.shape()[0]);
            }
            Ok(mean.mean())
        })
    };
    let result = if on_cpu { tensor::cpu::awake::kept_awake(evaluate_all) } else { evaluate_all() };
    model.set_training(true);
    result
}

/// Sizes rayon's global pool for `--threads N` (0 keeps the default: one thread per core).
/// Must run before the first parallel op.
pub fn set_cpu_threads(threads: usize) -> Result<()> {
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| Error::Config(format!("--threads {threads}: {e}")))?;
    }
    Ok(())
}
