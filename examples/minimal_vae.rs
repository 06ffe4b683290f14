//! A minimal variational autoencoder in one file: a dense encoder and decoder built from `nn`
//! layers, the reparameterisation trick and the loss written out term by term, trained for a
//! few epochs on procedurally generated dSprites (no download), then a PNG of
//! reconstructions and one of samples. Run with `cargo run --release --example minimal_vae`
//! (`-- --device reference` or `gpu` to choose where it runs).
//!
//! `vae/src/loss.rs` and `vae/src/train.rs` are the full versions of what is written out here;
//! docs/vae-maths.md derives each line.

use std::error::Error;
use std::path::Path;

use autograd::{no_grad, Var};
use nn::optim::Optimizer;
use nn::{Adam, AdamConfig, Init, Linear, Module, ReLU, Sequential};
use tensor::{DType, Device, DevicePreference, Rng, Tensor};
use vae::data::{dsprites, Normalization};
use vae::plot::{save_image_grid, save_rows};

const PIXELS: usize = 64 * 64; // dSprites: [N, 1, 64, 64], values 0 or 1
const HIDDEN: usize = 256;
const Z: usize = 8;
const BATCH: usize = 64;
const EPOCHS: usize = 4;

struct MinimalVae {
    encoder: Sequential, // [N, 4096] → [N, 256]
    fc_mu: Linear,       // [N, 256] → [N, z]
    fc_logvar: Linear,   // [N, 256] → [N, z]
    decoder: Sequential, // [N, z] → [N, 4096] logits
}

impl MinimalVae {
    fn new(init: &mut Init) -> nn::Result<MinimalVae> {
        Ok(MinimalVae {
            encoder: Sequential::new().with(Linear::new(PIXELS, HIDDEN, init)?).with(ReLU),
            fc_mu: Linear::new(HIDDEN, Z, init)?,
            fc_logvar: Linear::new(HIDDEN, Z, init)?,
            decoder: Sequential::new()
                .with(Linear::new(Z, HIDDEN, init)?)
                .with(ReLU)
                .with(Linear::new(HIDDEN, PIXELS, init)?),
        })
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        let parts: [(&str, &dyn Module); 4] = [
            ("encoder", &self.encoder),
            ("fc_mu", &self.fc_mu),
            ("fc_logvar", &self.fc_logvar),
            ("decoder", &self.decoder),
        ];
        let mut all = vec![];
        for (prefix, part) in parts {
            all.extend(part.named_parameters().into_iter().map(|(name, p)| (format!("{prefix}.{name}"), p)));
        }
        all
    }

    /// x: [N, 4096] → (μ, log σ²), each [N, z].
    fn encode(&self, x: &Var) -> nn::Result<(Var, Var)> {
        let h = self.encoder.forward(x)?;
        Ok((self.fc_mu.forward(&h)?, self.fc_logvar.forward(&h)?))
    }
}

/// The negative ELBO of a batch x: [N, 4096] in {0, 1}, averaged over the batch:
/// E_q[−log p(x|z)] (Bernoulli decoder, BCE on logits) + KL(q(z|x) ‖ N(0, I)).
/// Returns (loss, reconstruction term, KL term).
fn negative_elbo(model: &MinimalVae, x: &Tensor, rng: &mut Rng) -> nn::Result<(Var, f64, f64)> {
    let n = x.shape()[0] as f64;
    let x = Var::constant(x.clone());
    let (mu, logvar) = model.encode(&x)?;
    // Reparameterisation: z = μ + σ·ε with ε ~ N(0, I), so z is differentiable in μ and σ.
    let eps = Tensor::rand_normal(&[x.shape()[0], Z], 0.0, 1.0, DType::F32, rng);
    let eps = Var::constant(eps.to_device(&x.value().device())?);
    let z = mu.add(&logvar.mul_scalar(0.5)?.exp()?.mul(&eps)?)?;
    let logits = model.decoder.forward(&z)?;
    // −log p(x|z) = Σ BCE(logits, x) = Σ max(l, 0) − l·x + log(1 + e^−|l|) (stable form).
    let bce = logits.relu()?.sub(&logits.mul(&x)?)?.add(&logits.abs()?.neg()?.softplus()?)?;
    let recon = bce.sum_all()?.mul_scalar(1.0 / n)?;
    // KL(N(μ, σ²) ‖ N(0, 1)) = −½ Σ (1 + log σ² − μ² − σ²), in closed form.
    let kl = logvar.add_scalar(1.0)?.sub(&mu.square()?)?.sub(&logvar.exp()?)?.sum_all()?.mul_scalar(-0.5 / n)?;
    let (recon_v, kl_v) = (recon.value().item()?, kl.value().item()?);
    Ok((recon.add(&kl)?, recon_v, kl_v))
}

fn main() -> Result<(), Box<dyn Error>> {
    let data = dsprites::generate(8192, 0); // [8192, 1, 64, 64]
    let device = Device::from_preference(DevicePreference::from_args()?)?;
    let model = MinimalVae::new(&mut Init::new(0))?;
    for (_, p) in model.parameters() {
        p.set_value(p.value().to_device(&device)?);
    }
    let mut optimizer = Adam::new(model.parameters(), AdamConfig::new(1e-3))?;
    let mut rng = Rng::new(1);
    let start = std::time::Instant::now();
    for epoch in 1..=EPOCHS {
        let mut order: Vec<usize> = (0..data.len()).collect();
        rng.shuffle(&mut order);
        let (mut sum, mut recon_sum, mut kl_sum, mut batches) = (0.0, 0.0, 0.0, 0.0);
        for idx in order.chunks_exact(BATCH) {
            let x = data.batch(idx, &Normalization::ZeroOne)?.images.reshape(&[BATCH, PIXELS])?.to_device(&device)?;
            optimizer.zero_grad();
            let (loss, recon, kl) = negative_elbo(&model, &x, &mut rng)?;
            loss.backward()?;
            optimizer.step()?;
            (sum, recon_sum, kl_sum, batches) = (sum + recon + kl, recon_sum + recon, kl_sum + kl, batches + 1.0);
        }
        println!(
            "epoch {epoch}  −ELBO {:.1} = recon {:.1} + KL {:.1} nats per image  ({:.1} s)",
            sum / batches,
            recon_sum / batches,
            kl_sum / batches,
            start.elapsed().as_secs_f64()
        );
    }

    // Pictures: 8 images over their reconstructions (decoded from μ), and 16 samples z ~ N(0, I).
    no_grad(|| -> Result<(), Box<dyn Error>> {
        let idx: Vec<usize> = (0..8).collect();
        let x = data.batch(&idx, &Normalization::ZeroOne)?.images.reshape(&[8, PIXELS])?.to_device(&device)?;
        let (mu, _) = model.encode(&Var::constant(x.clone()))?;
        let recon = model.decoder.forward(&mu)?.sigmoid()?.value().to_vec_f32()?;
        let z = Tensor::rand_normal(&[16, Z], 0.0, 1.0, DType::F32, &mut rng);
        let samples = model.decoder.forward(&Var::constant(z.to_device(&device)?))?.sigmoid()?.value().to_vec_f32()?;
        std::fs::create_dir_all("runs")?;
        save_rows(Path::new("runs/minimal_vae_recon.png"), &[&x.to_vec_f32()?, &recon], 8, 1, 64, 64)?;
        save_image_grid(Path::new("runs/minimal_vae_samples.png"), &samples, 16, 1, 64, 64, 8)?;
        println!("wrote runs/minimal_vae_recon.png (originals over reconstructions) and runs/minimal_vae_samples.png");
        Ok(())
    })
}
