//! The five VAE presets of docs/architectures.md, built from `nn` layers, and
//! the `Vae` that ties an encoder, the two heads and a decoder together.
//!
//! | preset | paper | encoder features F |
//! |---|---|---|
//! | `dense` | Messaoudi et al. | 256 |
//! | `basic` | Jena ("basic VAE") | 64·H/4·W/4 |
//! | `conv` | Folkertsma et al. | 128·H/8·W/8 |
//! | `resnet18` (and `resnet18-nobn`, `resnet18-encoder-nobn`) | Yang and Kobilaski; Jena | 512 |
//! | `resnet-bn` | the STL-10 paper | 512·H/16·W/16 |
//!
//! Parameter names follow PyTorch's state_dict: `encoder.…`, `fc_mu.weight`,
//! `fc_logvar.weight`, `decoder.…` (for `resnet18` the encoder uses torchvision's names,
//! `encoder.layer1.0.conv1.weight`, so a torchvision ResNet-18 state_dict loads into it).
//! Parameter counts at the benchmark sizes (checked in this module's tests):
//!
//! | preset | input, z | parameters |
//! |---|---|---|
//! | `dense` | 1×28×28, 16 | 1,079,600 |
//! | `basic` | 3×32×32, 128 | 1,652,867 |
//! | `conv` | 3×64×64, 32 | 1,053,411 |
//! | `resnet18` | 3×32×32, 128 | 23,917,059 (the spec's number) |
//! | `resnet18-nobn` | 3×32×32, 128 | 23,908,419 |
//! | `resnet18-encoder-nobn` | 3×32×32, 128 | 23,912,259 |
//! | `resnet-bn` | 3×64×64, 128 | 19,576,451 |

mod basic;
mod conv;
mod dense;
mod resnet18;
mod resnet_bn;

use crate::data::Normalization;
use crate::error::Result;
use autograd::Var;
use nn::{Init, Linear, Module};
use tensor::{Result as TensorResult, Tensor, TensorError};

pub use resnet18::{ResNet18Classifier, ResNet18Encoder};

/// A model preset, selected with `--arch`; each variant's flag name (`resnet18-nobn`) is
/// written once, here, and is also its name in `config.json` and in every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// Fully connected VAE (Messaoudi et al.; F = 256).
    #[value(name = "dense")]
    Dense,
    /// `dense` at half the widths (F = 128): 0.47 M parameters at 28×28 and z = 16, within the
    /// 400,000 to 800,000 Messaoudi et al. give for their dense model (`dense` has 1.08 M).
    #[value(name = "dense-small")]
    DenseSmall,
    /// Two strided convolutions down, three transposed up (Jena's "basic VAE"; F = 64·H/4·W/4).
    #[value(name = "basic")]
    Basic,
    /// Three stride-2 convolutions each way (Folkertsma et al.; F = 128·H/8·W/8).
    #[value(name = "conv")]
    Conv,
    /// ResNet-18 encoder with batch norm (torchvision names) and a mirrored decoder (Yang and Kobilaski; Jena; F = 512).
    #[value(name = "resnet18")]
    ResNet18,
    /// ResNet-18 VAE with every batch norm removed (convolutions get biases instead); Jena.
    #[value(name = "resnet18-nobn")]
    ResNet18NoBn,
    /// ResNet-18 VAE with batch norm removed from the encoder only (the decoder keeps it): the
    /// other reading of Jena, who names the encoder.
    #[value(name = "resnet18-encoder-nobn")]
    ResNet18EncoderNoBn,
    /// Residual VAE with batch norm for 64×64 images (the STL-10 paper; F = 512·H/16·W/16).
    #[value(name = "resnet-bn")]
    ResNetBn,
}

impl Arch {
    /// The `--arch` name of this preset.
    pub fn name(self) -> String {
        crate::config::flag_name(&self)
    }

    /// What H and W must be divisible by.
    pub fn size_multiple(self) -> usize {
        match self {
            Arch::Dense | Arch::DenseSmall => 1,
            Arch::Basic => 4,
            Arch::Conv => 8,
            Arch::ResNet18 | Arch::ResNet18NoBn | Arch::ResNet18EncoderNoBn => 32,
            Arch::ResNetBn => 16,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// What the decoder's raw output is turned into before the reconstruction loss (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputActivation {
    /// Raw logits, for the BCE-with-logits loss (`none` is read as this, as older runs wrote).
    #[value(name = "logits", alias = "none")]
    Logits,
    /// σ(x), for BCE or MSE on data in [0, 1].
    #[value(name = "sigmoid")]
    Sigmoid,
    /// tanh(x), for MSE on data in [−1, 1].
    #[value(name = "tanh")]
    Tanh,
    /// x unchanged, for MSE on standardised data (`--normalize mean-std`), whose values no
    /// squashing function covers.
    #[value(name = "linear")]
    Linear,
}

impl OutputActivation {
    /// The loss-side output: raw logits and linear outputs stay raw.
    pub fn apply(self, raw: &Var) -> TensorResult<Var> {
        match self {
            OutputActivation::Logits | OutputActivation::Linear => Ok(raw.clone()),
            OutputActivation::Sigmoid => raw.sigmoid(),
            OutputActivation::Tanh => raw.tanh(),
        }
    }

    /// The images a person should see, in [0, 1]: logits go through σ; outputs that live in
    /// the normalised data's range (tanh, linear) are mapped back through `norm`.
    // raw: [B, C, H, W] → [B, C, H, W]
    pub fn to_image(self, raw: &Tensor, norm: &Normalization) -> Result<Tensor> {
        match self {
            OutputActivation::Logits | OutputActivation::Sigmoid => Ok(raw.sigmoid()?),
            OutputActivation::Tanh => Ok(norm.invert_tensor(&raw.tanh()?)?),
            OutputActivation::Linear => Ok(norm.invert_tensor(raw)?),
        }
    }
}

/// Input image shape and latent size of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Which preset.
    pub arch: Arch,
    /// [C, H, W]
    pub input: [usize; 3],
    /// Latent size z (columns of `mu`, `logvar` and `z`).
    pub z_dim: usize,
}

/// Everything the forward pass of a VAE produces for one batch.
pub struct VaeOutput {
    /// Decoder output before the output activation: [N, C, H, W].
    pub raw: Var,
    /// Posterior means and log-variances, and the sampled code: [N, z].
    pub mu: Var,
    /// Posterior log-variances log σ²: `[N, z]`.
    pub logvar: Var,
    /// The sampled code z = μ + σ·ε: `[N, z]`.
    pub z: Var,
}

/// A VAE: `encoder` maps [N, C, H, W] to features [N, F], the heads `fc_mu` and `fc_logvar`
/// map them to [N, z], and `decoder` maps a code [N, z] back to [N, C, H, W] (raw values).
pub struct Vae {
    /// Preset, input shape and latent size.
    pub config: ModelConfig,
    /// Maps `[N, C, H, W]` to features `[N, F]`.
    pub encoder: Box<dyn Module>,
    /// Mean head: `[N, F]` → `[N, z]`.
    pub fc_mu: Linear,
    /// Log-variance head: `[N, F]` → `[N, z]`.
    pub fc_logvar: Linear,
    /// Maps a code `[N, z]` to raw outputs `[N, C, H, W]` (before the output activation).
    pub decoder: Box<dyn Module>,
    /// The bounds of the log-variance head's output (`train --logvar-clamp`); `None` (the
    /// default) leaves it unbounded.
    pub logvar_bound: Option<LogvarBound>,
}

/// Bounds on the encoder's log-variance log σ². Only the KL term holds log σ² of a dimension
/// the decoder ignores: without it (β = 0) the value can drift until σ = e^(log σ² / 2) or the
/// KL's e^(log σ²) overflows. A bound keeps both finite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LogvarBound {
    /// `clamp(x, min, max)`: the identity inside (a bound that never binds changes no bit),
    /// and a gradient of 0 at and beyond a bound, as with PyTorch's clamp.
    Hard {
        /// Lower bound of log σ².
        min: f64,
        /// Upper bound of log σ² (at most 88, so that e^max fits in f32).
        max: f64,
    },
    /// `min + softplus(max − softplus(max − x) − min)`: never below min nor above max by more
    /// than e^−(max − min), close to the identity well inside, and a gradient that never
    /// reaches 0 (PETS, Chua et al. 2018, bounds its learnt log-variance this way).
    Soft {
        /// Lower bound of log σ².
        min: f64,
        /// Upper bound of log σ² (at most 88, so that e^max fits in f32).
        max: f64,
    },
}

impl LogvarBound {
    /// log σ²: `[N, z]` → the same, bounded.
    pub fn apply(&self, logvar: &Var) -> TensorResult<Var> {
        match *self {
            LogvarBound::Hard { min, max } => logvar.clamp(min, max),
            LogvarBound::Soft { min, max } => {
                let below_max = logvar.neg()?.add_scalar(max)?.softplus()?.neg()?.add_scalar(max)?;
                below_max.add_scalar(-min)?.softplus()?.add_scalar(min)
            }
        }
    }
}

/// What each preset's `build` returns: the encoder (image → features), the width F of its
/// feature vector (the input of the μ and log σ² heads), and the decoder (z → logits).
type PresetParts = (Box<dyn Module>, usize, Box<dyn Module>);

impl Vae {
    /// Builds the preset `config.arch` for `config.input`, checking that the size fits it.
    pub fn new(config: ModelConfig, init: &mut Init) -> nn::Result<Vae> {
        let [c, h, w] = config.input;
        let m = config.arch.size_multiple();
        if c == 0 || h == 0 || w == 0 || h % m != 0 || w % m != 0 || config.z_dim == 0 {
            return Err(nn::Error::Tensor(TensorError::Invalid {
                op: "Vae::new",
                msg: format!(
                    "preset '{}' needs a non-empty input whose height and width are multiples of {m} and z ≥ 1; got input {c}×{h}×{w}, z = {}",
                    config.arch, config.z_dim
                ),
            }));
        }
        let (encoder, features, decoder): PresetParts = match config.arch {
            Arch::Dense => dense::build(config, [512, 256], init)?,
            Arch::DenseSmall => dense::build(config, [256, 128], init)?,
            Arch::Basic => basic::build(config, init)?,
            Arch::Conv => conv::build(config, init)?,
            Arch::ResNet18 => resnet18::build(config, [true, true], init)?,
            Arch::ResNet18NoBn => resnet18::build(config, [false, false], init)?,
            Arch::ResNet18EncoderNoBn => resnet18::build(config, [false, true], init)?,
            Arch::ResNetBn => resnet_bn::build(config, init)?,
        };
        let fc_mu = Linear::new(features, config.z_dim, init)?;
        let fc_logvar = Linear::new(features, config.z_dim, init)?;
        Ok(Vae { config, encoder, fc_mu, fc_logvar, decoder, logvar_bound: None })
    }

    /// x: [N, C, H, W] → (μ, log σ²), each [N, z].
    pub fn encode(&self, x: &Var) -> nn::Result<(Var, Var)> {
        let expect = self.config.input;
        let s = x.shape();
        if s.len() != 4 || s[1..] != expect {
            return Err(nn::Error::Tensor(TensorError::Shape {
                op: "Vae::encode",
                msg: format!(
                    "model '{}' expects input [N, {}, {}, {}], got {s:?}",
                    self.config.arch, expect[0], expect[1], expect[2]
                ),
            }));
        }
        let features = self.encoder.forward(x)?;
        let mu = self.fc_mu.forward(&features)?;
        let logvar = self.fc_logvar.forward(&features)?;
        let logvar = match &self.logvar_bound {
            Some(bound) => bound.apply(&logvar)?,
            None => logvar,
        };
        Ok((mu, logvar))
    }

    /// For serving a trained model: evaluation mode, and every batch norm that follows a
    /// convolution folded into it ([`Module::fold_batch_norms`]); returns how many. The model
    /// then encodes and decodes as before up to rounding, with fewer passes, but it is no
    /// longer the trained model's parameter set: do not train or save it.
    pub fn fold_batch_norms_for_inference(&mut self) -> nn::Result<usize> {
        self.set_training(false);
        Ok(self.encoder.fold_batch_norms()? + self.decoder.fold_batch_norms()?)
    }

    /// z: [N, z] → raw decoder output [N, C, H, W].
    pub fn decode(&self, z: &Var) -> nn::Result<Var> {
        self.decoder.forward(z)
    }

    /// Encode, sample z = μ + σ·ε with the given ε ([N, z], drawn by the caller), decode.
    pub fn forward_with_noise(&self, x: &Var, eps: &Tensor) -> nn::Result<VaeOutput> {
        let (mu, logvar) = self.encode(x)?;
        let z = crate::loss::reparameterize(&mu, &logvar, eps)?;
        let raw = self.decode(&z)?;
        Ok(VaeOutput { raw, mu, logvar, z })
    }
}

impl Module for Vae {
    /// The reconstruction with z = μ (no sampling): raw decoder output.
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        let (mu, _) = self.encode(x)?;
        self.decode(&mu)
    }

    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit("encoder", self.encoder.as_ref());
        visit("fc_mu", &self.fc_mu);
        visit("fc_logvar", &self.fc_logvar);
        visit("decoder", self.decoder.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(arch: Arch, input: [usize; 3], z_dim: usize) -> usize {
        Vae::new(ModelConfig { arch, input, z_dim }, &mut Init::new(0)).unwrap().parameter_counts().total
    }

    #[test]
    fn every_output_is_shown_as_an_image_in_the_datas_own_range() {
        let norm = Normalization::MeanStd { mean: vec![0.25], std: vec![0.5] };
        let raw = Tensor::from_vec(vec![-1.0f32, 0.0, 1.0, 2.0], &[1, 1, 2, 2]).unwrap();
        let shown = |output: OutputActivation| output.to_image(&raw, &norm).unwrap().to_vec::<f32>().unwrap();
        // A linear output is a standardised value: x·std + mean.
        assert_eq!(shown(OutputActivation::Linear), vec![-0.25, 0.25, 0.75, 1.25]);
        let tanh: Vec<f32> = [-1.0f32, 0.0, 1.0, 2.0].iter().map(|x| x.tanh() * 0.5 + 0.25).collect();
        for (got, want) in shown(OutputActivation::Tanh).iter().zip(&tanh) {
            assert!((got - want).abs() < 1e-6, "{got} {want}");
        }
        let sigmoid: Vec<f32> = [-1.0f32, 0.0, 1.0, 2.0].iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
        for (got, want) in shown(OutputActivation::Logits).iter().zip(&sigmoid) {
            assert!((got - want).abs() < 1e-6, "{got} {want}");
        }
    }

    #[test]
    fn parameter_counts_match_the_documented_values() {
        assert_eq!(count(Arch::Dense, [1, 28, 28], 16), 1_079_600);
        assert_eq!(count(Arch::DenseSmall, [1, 28, 28], 16), 474_672);
        assert_eq!(count(Arch::Basic, [3, 32, 32], 128), 1_652_867);
        assert_eq!(count(Arch::Conv, [3, 64, 64], 32), 1_053_411);
        assert_eq!(count(Arch::ResNet18NoBn, [3, 32, 32], 128), 23_908_419);
        assert_eq!(count(Arch::ResNet18EncoderNoBn, [3, 32, 32], 128), 23_912_259);
        assert_eq!(count(Arch::ResNetBn, [3, 64, 64], 128), 19_576_451);
    }

    #[test]
    fn resnet18_has_the_spec_parameter_count() {
        // docs/architectures.md: 23,917,059 for 3×32×32, z = 128.
        assert_eq!(count(Arch::ResNet18, [3, 32, 32], 128), 23_917_059);
    }

    #[test]
    fn dense_count_is_the_sum_of_its_linear_layers() {
        // (in·out + out) per Linear: 784→512→256, heads 256→16 ×2, 16→256→512→784.
        let lin = |i: usize, o: usize| i * o + o;
        let expect = lin(784, 512) + lin(512, 256) + 2 * lin(256, 16) + lin(16, 256) + lin(256, 512) + lin(512, 784);
        assert_eq!(count(Arch::Dense, [1, 28, 28], 16), expect);
        // dense-small: 784→256→128, heads 128→16 ×2, 16→128→256→784.
        let expect = lin(784, 256) + lin(256, 128) + 2 * lin(128, 16) + lin(16, 128) + lin(128, 256) + lin(256, 784);
        assert_eq!(count(Arch::DenseSmall, [1, 28, 28], 16), expect);
    }

    #[test]
    fn resnet18_encoder_uses_torchvision_names() {
        let m =
            Vae::new(ModelConfig { arch: Arch::ResNet18, input: [3, 32, 32], z_dim: 8 }, &mut Init::new(0)).unwrap();
        let names: Vec<String> = m.state_dict().into_iter().map(|(n, _)| n).collect();
        for n in [
            "encoder.conv1.weight",
            "encoder.bn1.running_var",
            "encoder.layer2.0.downsample.0.weight",
            "encoder.layer4.1.bn2.num_batches_tracked",
            "fc_mu.weight",
            "fc_logvar.bias",
            "decoder.conv1.weight",
        ] {
            assert!(names.iter().any(|x| x == n), "missing {n}");
        }
    }

    #[test]
    fn every_preset_reconstructs_the_input_shape() {
        for (arch, input) in [
            (Arch::Dense, [1, 28, 28]),
            (Arch::DenseSmall, [1, 28, 28]),
            (Arch::Basic, [1, 28, 28]),
            (Arch::Conv, [3, 32, 32]),
            (Arch::ResNet18, [3, 32, 32]),
            (Arch::ResNet18NoBn, [1, 32, 32]),
            (Arch::ResNet18EncoderNoBn, [1, 32, 32]),
            (Arch::ResNetBn, [3, 32, 32]),
        ] {
            let m = Vae::new(ModelConfig { arch, input, z_dim: 4 }, &mut Init::new(1)).unwrap();
            let x = Var::constant(Tensor::rand_uniform(
                &[2, input[0], input[1], input[2]],
                0.0,
                1.0,
                tensor::DType::F32,
                &mut tensor::Rng::new(2),
            ));
            let out = m.forward(&x).unwrap();
            assert_eq!(out.shape(), vec![2, input[0], input[1], input[2]], "{arch}");
        }
    }

    #[test]
    fn an_input_size_the_preset_cannot_take_is_a_clear_error() {
        let err =
            Vae::new(ModelConfig { arch: Arch::Conv, input: [1, 28, 28], z_dim: 4 }, &mut Init::new(0)).err().unwrap();
        assert!(err.to_string().contains("multiples of 8"), "{err}");
        let m = Vae::new(ModelConfig { arch: Arch::Dense, input: [1, 28, 28], z_dim: 4 }, &mut Init::new(0)).unwrap();
        let wrong = Var::constant(Tensor::zeros(&[2, 3, 28, 28], tensor::DType::F32));
        assert!(m.encode(&wrong).err().unwrap().to_string().contains("[N, 1, 28, 28]"));
    }

    #[test]
    fn folding_resnet_bns_batch_norms_keeps_what_it_encodes_and_decodes() {
        use nn::BufferKind;
        use tensor::DType;
        let config = ModelConfig { arch: Arch::ResNetBn, input: [3, 16, 16], z_dim: 4 };
        let mut model = Vae::new(config, &mut Init::with_dtype(3, DType::F64)).unwrap();
        // Running statistics, γ and β (and the other vectors) away from their initial values.
        let mut rng = tensor::Rng::new(5);
        for (name, item) in model.named_state() {
            let shape = item.value().shape().to_vec();
            if item.kind() == BufferKind::Float && shape.len() == 1 {
                let (lo, hi) = if name.ends_with("running_var") { (0.5, 2.0) } else { (-1.0, 1.0) };
                item.set_value(Tensor::rand_uniform(&shape, lo, hi, DType::F64, &mut rng));
            }
        }
        model.set_training(false);
        let x = Var::constant(Tensor::rand_uniform(&[2, 3, 16, 16], 0.0, 1.0, DType::F64, &mut rng));
        let z = Var::constant(Tensor::rand_uniform(&[2, 4], -1.0, 1.0, DType::F64, &mut rng));
        let outputs = |m: &Vae| {
            let mu = m.encode(&x).unwrap().0.value().to_vec_f64().unwrap();
            let decoded = m.decode(&z).unwrap().value().to_vec_f64().unwrap();
            [mu, decoded]
        };
        let before = outputs(&model);
        // The encoder's first convolution, and in each of its four stages and the decoder's
        // four the stage's convolution and its residual block's first.
        assert_eq!(model.fold_batch_norms_for_inference().unwrap(), 1 + 4 * 2 + 4 * 2);
        for (after, before) in outputs(&model).iter().zip(&before) {
            let scale = before.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (a, b) in after.iter().zip(before) {
                assert!((a - b).abs() <= 1e-10 * scale, "{a} against {b}");
            }
        }
    }

    #[test]
    fn a_hard_logvar_bound_clamps_the_head_and_one_that_never_binds_changes_no_bit() {
        let config = ModelConfig { arch: Arch::Dense, input: [1, 28, 28], z_dim: 4 };
        let x = Var::constant(Tensor::rand_uniform(
            &[3, 1, 28, 28],
            0.0,
            1.0,
            tensor::DType::F32,
            &mut tensor::Rng::new(2),
        ));
        let logvar = |bound: Option<LogvarBound>| {
            let mut m = Vae::new(config, &mut Init::new(1)).unwrap();
            m.logvar_bound = bound;
            m.encode(&x).unwrap().1.value().to_vec::<f32>().unwrap()
        };
        let free = logvar(None);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&logvar(Some(LogvarBound::Hard { min: -30.0, max: 20.0 }))), bits(&free));
        let (lo, hi) = (-0.02f32, 0.02f32);
        assert!(free.iter().any(|&v| v < lo) && free.iter().any(|&v| v > hi), "the bound must bind: {free:?}");
        let bounded = logvar(Some(LogvarBound::Hard { min: lo as f64, max: hi as f64 }));
        for (b, f) in bounded.iter().zip(&free) {
            assert_eq!(*b, f.clamp(lo, hi));
        }
    }

    /// The soft bound of `x` and its derivative, in f64 through autograd.
    fn soft_bound_and_slope(x: f64, min: f64, max: f64) -> (f64, f64) {
        let v = Var::parameter(Tensor::from_vec(vec![x], &[1]).unwrap()); // f64
        let y = LogvarBound::Soft { min, max }.apply(&v).unwrap();
        y.sum_all().unwrap().backward().unwrap();
        (y.value().to_vec::<f64>().unwrap()[0], v.grad().unwrap().to_vec::<f64>().unwrap()[0])
    }

    #[test]
    fn a_soft_logvar_bound_stays_within_its_bounds_and_keeps_a_gradient_beyond_them() {
        let (min, max) = (-30.0, 20.0);
        // Well inside: the identity and slope 1, to within e^−20 ≈ 2·10⁻⁹.
        let (y, slope) = soft_bound_and_slope(0.0, min, max);
        assert!(y.abs() < 1e-8 && (slope - 1.0).abs() < 1e-8, "{y} {slope}");
        // At the upper bound: softplus(0) = ln 2 below it, slope σ(0) = 1/2.
        let (y, slope) = soft_bound_and_slope(max, min, max);
        assert!((y - (max - 2f64.ln())).abs() < 1e-9 && (slope - 0.5).abs() < 1e-9, "{y} {slope}");
        // Far beyond either bound: inside them, and a slope that is small but not 0.
        for x in [max + 10.0, min - 10.0] {
            let (y, slope) = soft_bound_and_slope(x, min, max);
            let expected_slope = 1.0 / (1.0 + 10f64.exp()); // σ(−10)
            assert!(y > min && y < max && (slope - expected_slope).abs() < 1e-9, "x {x}: {y} {slope}");
        }
    }
}
