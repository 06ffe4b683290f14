//! The `eval` command: pictures and numbers of a trained VAE run folder, on its held-out test
//! split. The binary parses [`EvalArgs`] and calls [`run`].
//!
//! `eval --run runs/X` reads `runs/X/config.json` and `runs/X/best.safetensors`, recomputes the
//! run's split, and writes to `runs/X/eval/` (or `--out`):
//!
//! | file | what |
//! |---|---|
//! | `recon.png` | chosen test images (top) over their reconstructions (z = μ) |
//! | `samples.png` | decoded samples from N(0, I) |
//! | `traversal.png` | one row per latent dimension (the `--traverse-dims` with the largest KL), swept over ±3 (the prior's ±3σ) around one image's μ (Folkertsma et al.) |
//! | `interpolation.png` | rows: image a, decodings of (1 − w)·μ_a + w·μ_b for w = 0 … 1, image b |
//! | `class_mix.png` | with `--mix-classes A,B`: class-A images, class-B images, decodings of w·μ_A + (1 − w)·μ_B at w = `--weight`, the B codes listed in `--negate` (or, with `--negate dark`, those of images darker than the class's median image) multiplied by −1 first (the STL-10 paper); `--mix-pick brightest` takes each class's brightest images, `--mix-count` how many |
//! | `features_K.png` | the encoder's intermediate feature maps of one image (Yang and Kobilaski, figure 7) |
//! | `tsne.png` | t-SNE of test means coloured by label (dSprites: by shape) (Messaoudi et al.) |
//! | `noise.png`, `denoise.png`, `ood.png` | reconstructions of pure noise, of noisy test images (clean / noisy / reconstruction rows), of out-of-distribution images (Messaoudi et al.) |
//! | `metrics.json`, `metrics.md` | test losses, −ELBO, Laplacian variance, MIG (dSprites, disentanglement_lib's estimator on the test images), classifier-based scores (merged with the keys an earlier `eval` left there) |
//!
//! `--what disentanglement` (dSprites runs only; not part of `all`, it takes minutes) encodes the
//! whole factor grid, 737,280 images, and adds Chen et al.'s sampled MIG, the FactorVAE score
//! and the discretised MIG over the grid to `metrics.json` ([`crate::tools::disentanglement`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::cli::{CpuArgs, TrainedModelArgs};
use crate::data::{self, BatchOptions, Batches, Dataset, DatasetKind, Normalization};
use crate::error::{Error, Result};
use crate::plot::{save_image_grid_with, save_rows_with, save_scatter_plot, GridOptions};
use crate::runs::{RunConfig, RunFolder, EVAL_METRICS_FILE};
use crate::streams::Stream;
use crate::tools::classify::{judge, load_classifier};
use crate::tools::disentanglement::{
    dsprites_mig_discretized, factor_vae_score, mig_discretized, mig_sampled, FactorGrid, FactorVaeOptions,
    CHEN_DSPRITES_FACTORS, DEFAULT_MIG_BINS,
};
use crate::tools::eval::{
    brightness, decode_codes, dims_by_kl, encode_dataset, feature_maps, interpolate, kl_per_dim, median_brightness,
    mix_codes, pick_images, reconstruct_dataset, traversal_codes, MixPick,
};
use crate::tools::metrics::{class_histogram, frechet_distance, mean_laplacian_variance, normalized_class_entropy};
use crate::train::{evaluate, standard_normal};
use serde_json::{json, Value};
use tensor::{Rng, Tensor};

const ALL: [&str; 9] = ["recon", "samples", "traverse", "interp", "features", "metrics", "tsne", "noise", "ood"];
/// Sections that take minutes, run only when named (never by `all`).
const SLOW: [&str; 1] = ["disentanglement"];

/// Evaluate a trained VAE: reconstructions, samples, traversals, interpolations, feature
/// maps, t-SNE, robustness pictures and test metrics.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// The trained model to evaluate.
    #[command(flatten)]
    pub model: TrainedModelArgs,
    /// Output folder (default: RUN/eval).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What to do, comma-separated: all, or any of recon, samples, traverse, interp, features,
    /// metrics, tsne, noise, ood; and disentanglement (dSprites only, minutes: not part of all).
    #[arg(long, default_value = "all")]
    pub what: String,
    /// Entropy samples per estimate in Chen et al.'s MIG (--what disentanglement; theirs: 10000).
    #[arg(long, default_value_t = crate::tools::disentanglement::CHEN_ENTROPY_SAMPLES)]
    pub mig_samples: usize,
    /// Keep every STEP-th value of orientation, pos_x and pos_y of the dSprites grid
    /// (--what disentanglement; 1: Chen et al.'s full grid of 737,280 images).
    #[arg(long, default_value_t = 1)]
    pub grid_step: usize,
    /// Evaluate on at most this many test images.
    #[arg(long, default_value_t = 2000)]
    pub max_test: usize,
    /// Test images shown in recon.png (indices into the test split); the first is traversed,
    /// and its feature maps are drawn.
    #[arg(long, default_value = "0,1,2,3,4,5,6,7")]
    pub images: String,
    /// Steps per traversal row and per interpolation row.
    #[arg(long, default_value_t = 9)]
    pub steps: usize,
    /// Traverse only the N latent dimensions with the largest mean KL (the active ones), in
    /// that order (0: every dimension, in index order).
    #[arg(long, default_value_t = 10)]
    pub traverse_dims: usize,
    /// Traversal range: z_j from −RANGE to +RANGE.
    #[arg(long, default_value_t = 3.0)]
    pub range: f32,
    /// Two classes (names or indices) to mix in class_mix.png, e.g. "horse,bird" or "7,9".
    #[arg(long)]
    pub mix_classes: Option<String>,
    /// Weight w of class A in class_mix.png: w·μ_A + (1 − w)·μ_B (the STL-10 paper: 0.6 on the
    /// horse, with --mix-classes horse,bird).
    #[arg(long, default_value_t = 0.6)]
    pub weight: f32,
    /// Class-B images whose whole code is multiplied by −1 before mixing (the STL-10 paper's
    /// dark-winged birds), by their place in class_mix.png's rows (0-based, comma-separated),
    /// or `dark`: every class-B image darker (by mean pixel value) than the class's median test image.
    #[arg(long, default_value = "")]
    pub negate: String,
    /// Which images of each class class_mix.png mixes.
    #[arg(long, value_enum, default_value_t = MixPick::First)]
    pub mix_pick: MixPick,
    /// How many images of each class class_mix.png mixes (the STL-10 paper: 64).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub mix_count: u64,
    /// Number of samples from N(0, I) (samples.png shows up to 64; metrics use them all).
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Classifier written by `classify`: adds a Fréchet distance of its features and the class
    /// histogram of samples to the metrics.
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Points in the t-SNE plot (4 to 5000: exact t-SNE holds n² distances).
    #[arg(long, default_value_t = 1000)]
    pub tsne_points: usize,
    /// Out-of-distribution dataset for ood.png (default: dsprites for image datasets,
    /// fashion-mnist for dsprites), resized and converted to the run's images.
    #[arg(long)]
    pub ood: Option<String>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Seed of the prior samples, the noise and the t-SNE.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads and GEMM kernel of the CPU it evaluates on.
    #[command(flatten)]
    pub cpu: CpuArgs,
}

fn list<T: std::str::FromStr>(flag: &str, s: &str) -> Result<Vec<T>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<T>().map_err(|_| Error::Config(format!("--{flag}: '{p}' is not a valid entry in '{s}'"))))
        .collect()
}

/// Mean squared error per pixel between two image sets in [0, 1].
fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64
}

struct Ctx {
    cfg: RunConfig,
    model: crate::model::Vae,
    norm: Normalization,
    test: Dataset,
    shape: [usize; 3],
    out: PathBuf,
    checkpoint: PathBuf,
    grid: GridOptions,
}

impl Ctx {
    /// The run's model from the chosen checkpoint, its first `--max-test` test images (the split
    /// recomputed from its configuration) and the output folder, made; with the number of
    /// training images (for the metrics that need it).
    fn open(args: &EvalArgs, run: &RunFolder) -> Result<(Ctx, usize)> {
        let cfg = run.config.clone();
        let checkpoint = run.checkpoint(args.model.checkpoint.as_deref())?;
        let (splits, norm) = cfg.load_splits()?;
        let train_len = splits.train.len();
        let test_full = if splits.test.is_empty() { splits.val } else { splits.test };
        let idx: Vec<usize> = (0..test_full.len().min(args.max_test.max(1))).collect();
        let test = test_full.subset(&idx);
        let [_, c, h, w] = test.shape;
        let model = cfg.load_model([c, h, w], &checkpoint)?;
        let out = args.out.clone().unwrap_or_else(|| run.eval_dir());
        std::fs::create_dir_all(&out).map_err(|e| Error::Io { path: out.clone(), source: e })?;
        let ctx = Ctx { cfg, model, norm, test, shape: [c, h, w], out, checkpoint, grid: GridOptions::default() };
        println!(
            "{} (z = {}) on {} test images of {}, checkpoint {}",
            ctx.cfg.arch,
            ctx.cfg.z_dim,
            ctx.test.len(),
            ctx.cfg.dataset,
            ctx.checkpoint.display()
        );
        Ok((ctx, train_len))
    }

    fn chw(&self, n: usize) -> [usize; 4] {
        [n, self.shape[0], self.shape[1], self.shape[2]]
    }
    fn save_rows(&self, name: &str, rows: &[Vec<f32>]) -> Result<()> {
        let r: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        save_rows_with(&self.out.join(name), &r, self.shape, &self.grid)?;
        println!("wrote {}", self.out.join(name).display());
        Ok(())
    }
    fn recon(&self, ds: &Dataset) -> Result<Vec<f32>> {
        let output = self.cfg.output;
        reconstruct_dataset(&self.model, ds, &self.norm, output, 256)
    }
    fn decode(&self, z: &[f32]) -> Result<Vec<f32>> {
        let output = self.cfg.output;
        decode_codes(&self.model, z, &self.norm, output, 256)
    }
}

/// `ds` as the run's images: resized and converted to its channel count (for OOD sets).
fn conform(ds: &Dataset, shape: [usize; 3]) -> Result<Dataset> {
    let [c, h, w] = shape;
    let r = ds.resized(h, w);
    let imgs = crate::tools::classify::adapt_images(&r.images, r.shape, [c, h, w])?;
    Ok(Dataset::new(format!("{} (as {c}×{h}×{w})", ds.name), [r.len(), c, h, w], imgs)?)
}

/// The sections `--what` names, refused before any work when one is unknown or a section's
/// own flags are out of range.
fn check_sections(args: &EvalArgs) -> Result<Vec<String>> {
    let what: Vec<String> = list("what", &args.what)?;
    if let Some(bad) = what.iter().find(|w| *w != "all" && !ALL.contains(&w.as_str()) && !SLOW.contains(&w.as_str())) {
        return Err(Error::Config(format!(
            "--what: '{bad}' is not one of all, {}, {}",
            ALL.join(", "),
            SLOW.join(", ")
        )));
    }
    if args.mix_classes.is_some() && !section_wanted(&what, "interp") {
        return Err(Error::Config(format!(
            "--mix-classes: class_mix.png is drawn by the interp section, which --what {} leaves out (add interp)",
            args.what
        )));
    }
    if section_wanted(&what, "tsne") && !(4..=crate::tools::tsne::MAX_POINTS).contains(&args.tsne_points) {
        return Err(Error::Config(format!(
            "--tsne-points {}: expected 4 to {} (exact t-SNE holds two n² matrices: 400 MB at the most)",
            args.tsne_points,
            crate::tools::tsne::MAX_POINTS
        )));
    }
    Ok(what)
}

/// Whether `--what` (already checked) asks for `section`: by name, or by "all" unless the
/// section is one of the slow ones.
fn section_wanted(what: &[String], section: &str) -> bool {
    what.iter().any(|x| (x == "all" && !SLOW.contains(&section)) || x == section)
}

/// `--what disentanglement` needs a dSprites run and sane grid flags.
fn check_disentanglement(args: &EvalArgs, config: &RunConfig) -> Result<()> {
    if config.dataset != DatasetKind::DSprites {
        return Err(Error::Config(format!(
            "--what disentanglement needs a run on dsprites (its factor grid); {} is on {}",
            args.model.run.display(),
            config.dataset
        )));
    }
    if args.grid_step == 0 || args.grid_step > 16 || args.mig_samples == 0 {
        return Err(Error::Config(format!(
            "--grid-step {} --mig-samples {}: expected a step in 1..=16 and at least one sample",
            args.grid_step, args.mig_samples
        )));
    }
    Ok(())
}

/// Runs the sections `args.what` names on the run folder `args.model.run`.
pub fn run(args: EvalArgs) -> Result<()> {
    args.cpu.apply()?;
    let started = Instant::now();
    let what = check_sections(&args)?;
    let wants = |section: &str| section_wanted(&what, section);
    let run = RunFolder::open(&args.model.run)?;
    if wants("disentanglement") {
        check_disentanglement(&args, &run.config)?;
    }
    let (ctx, train_len) = Ctx::open(&args, &run)?;
    let chosen: Vec<usize> = list("images", &args.images)?;
    if chosen.is_empty() {
        return Err(Error::Config("--images needs at least one test image index".into()));
    }
    if let Some(&bad) = chosen.iter().find(|&&i| i >= ctx.test.len()) {
        return Err(Error::Config(format!("--images: index {bad} but there are {} test images", ctx.test.len())));
    }
    let shown = ctx.test.subset(&chosen);
    let mut metrics: BTreeMap<String, Value> = BTreeMap::new();
    let z = ctx.cfg.z_dim;
    let mut rng = Stream::PriorSamples.rng(args.seed);
    let prior = standard_normal(args.samples.max(1), z, tensor::DType::F32, &mut rng).to_vec_f32()?;
    let samples = ctx.decode(&prior)?;

    if wants("recon") {
        ctx.save_rows("recon.png", &[shown.images.clone(), ctx.recon(&shown)?])?;
    }
    if wants("samples") {
        let k = args.samples.clamp(1, 64);
        let per: usize = ctx.shape.iter().product();
        save_image_grid_with(&ctx.out.join("samples.png"), &samples[..k * per], ctx.chw(k), &ctx.grid)?;
        println!("wrote {}", ctx.out.join("samples.png").display());
    }
    let (mu, logvar) = if wants("traverse") || wants("interp") || wants("metrics") || wants("tsne") {
        encode_dataset(&ctx.model, &ctx.test, &ctx.norm, args.batch_size)?
    } else {
        (vec![], vec![])
    };
    if wants("traverse") {
        traverse_section(&ctx, &args, chosen[0], (&mu, &logvar), &mut metrics)?;
    }
    if wants("interp") {
        interp_section(&ctx, &args, &chosen, &mu)?;
    }
    if wants("features") {
        features_section(&ctx, chosen[0], &mut metrics)?;
    }
    if wants("metrics") {
        metrics_section(&ctx, &args, train_len, &mu, &logvar, &samples, &mut metrics)?;
    }
    if wants("disentanglement") {
        disentanglement_section(&ctx, &args, &mut metrics)?;
    }
    if wants("tsne") {
        tsne_section(&ctx, &args, &mu)?;
    }
    if wants("noise") {
        noise_section(&ctx, &args, &mut metrics)?;
    }
    if wants("ood") {
        ood_section(&ctx, &args, &mut metrics)?;
    }
    if wants("noise") || wants("ood") {
        let rec = ctx.recon(&ctx.test)?;
        metrics.insert("test_recon_mse".into(), json!(mse(&ctx.test.images, &rec)));
    }
    metrics.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
    // Which GEMM summed the CPU's products: another kernel rounds another way (`--cpu-gemm`).
    let (kernel, how) = tensor::cpu::gemm::f32_kernel_in_use();
    metrics.insert("cpu_gemm_kernel".into(), json!(format!("{kernel} ({})", how.name())));
    write_metrics(&ctx, &metrics)?;
    println!("done in {:.1} s: {}", started.elapsed().as_secs_f64(), ctx.out.display());
    Ok(())
}

/// A traversal of every latent dimension (or the `--traverse-dims` with the most KL) around the
/// code of test image `first`, and how much each row changes the picture.
fn traverse_section(
    ctx: &Ctx,
    args: &EvalArgs,
    first: usize,
    (mu, logvar): (&[f32], &[f32]),
    metrics: &mut BTreeMap<String, Value>,
) -> Result<()> {
    let ([c, h, w], z) = (ctx.shape, ctx.cfg.z_dim);
    let mu_of = |i: usize| mu[i * z..(i + 1) * z].to_vec();
    let all_dims: Vec<usize> = (0..z).collect();
    let codes = traversal_codes(&mu_of(first), &all_dims, args.steps.max(2), args.range);
    let imgs = ctx.decode(&codes)?;
    let per = args.steps.max(2) * c * h * w;
    let mut rows: Vec<Vec<f32>> = imgs.chunks(per).map(<[f32]>::to_vec).collect();
    if args.traverse_dims > 0 {
        let mut order = dims_by_kl(&kl_per_dim(mu, logvar, z));
        order.truncate(args.traverse_dims);
        metrics.insert("traversal_dims_by_kl".into(), json!(order));
        rows = order.iter().map(|&j| rows[j].clone()).collect();
    }
    ctx.save_rows("traversal.png", &rows)?;
    // How much each dimension changes the picture: an inactive (collapsed) dimension does not.
    let spread: Vec<f64> = rows.iter().map(|r| mse(&r[..c * h * w], &r[r.len() - c * h * w..])).collect();
    metrics.insert("traversal_endpoint_mse_per_row".into(), json!(spread));
    Ok(())
}

/// Interpolations between the codes of the chosen test images, taken in pairs, and the class
/// mix of `--mix-classes`.
fn interp_section(ctx: &Ctx, args: &EvalArgs, chosen: &[usize], mu: &[f32]) -> Result<()> {
    let z = ctx.cfg.z_dim;
    let mu_of = |i: usize| mu[i * z..(i + 1) * z].to_vec();
    let steps = args.steps.max(2);
    let mut rows = vec![];
    for pair in chosen.chunks(2).filter(|p| p.len() == 2) {
        let (a, b) = (mu_of(pair[0]), mu_of(pair[1]));
        let codes: Vec<f32> = (0..steps).flat_map(|s| interpolate(&a, &b, s as f32 / (steps - 1) as f32)).collect();
        let mut row = ctx.test.image(pair[0]).to_vec();
        row.extend(ctx.decode(&codes)?);
        row.extend_from_slice(ctx.test.image(pair[1]));
        rows.push(row);
    }
    if !rows.is_empty() {
        ctx.save_rows("interpolation.png", &rows)?;
    }
    if let Some(spec) = &args.mix_classes {
        class_mix(ctx, args, spec, mu)?;
    }
    Ok(())
}

/// The encoder's feature maps of test image `first`, one picture per stage.
fn features_section(ctx: &Ctx, first: usize, metrics: &mut BTreeMap<String, Value>) -> Result<()> {
    let x = ctx.norm.apply_tensor(&Tensor::from_vec(ctx.test.image(first).to_vec(), &ctx.chw(1))?)?;
    match feature_maps(&ctx.model, &ctx.checkpoint, &x) {
        Ok(maps) => {
            for (k, (name, [fc, fh, fw], values)) in maps.iter().enumerate() {
                let n = (*fc).min(32);
                let opts = GridOptions {
                    cols: 8,
                    normalize: true,
                    scale: Some((56 / fh.max(&1)).max(1)),
                    ..GridOptions::default()
                };
                let p = ctx.out.join(format!("features_{}.png", k + 1));
                save_image_grid_with(&p, &values[..n * fh * fw], [n, 1, *fh, *fw], &opts)?;
                println!("wrote {} ({name}: first {n} of {fc} channels, {fh}×{fw})", p.display());
            }
            metrics.insert(
                "feature_maps".into(),
                json!(maps.iter().map(|m| format!("{}: {:?}", m.0, m.1)).collect::<Vec<_>>()),
            );
        }
        Err(e) => println!("feature maps skipped: {e}"),
    }
    Ok(())
}

/// Reconstructions of pure noise and of noisy test images (how well the model denoises).
fn noise_section(ctx: &Ctx, args: &EvalArgs, metrics: &mut BTreeMap<String, Value>) -> Result<()> {
    let [c, h, w] = ctx.shape;
    let n = 8;
    let mut r = Stream::NoiseInputs.rng(args.seed);
    let uniform = Tensor::rand_uniform(&ctx.chw(n), 0.0, 1.0, tensor::DType::F32, &mut r).to_vec_f32()?;
    let gauss: Vec<f32> = Tensor::rand_normal(&ctx.chw(n), 0.5, 0.25, tensor::DType::F32, &mut r)
        .to_vec_f32()?
        .into_iter()
        .map(|v| v.clamp(0.0, 1.0))
        .collect();
    let (du, dg) = (
        Dataset::new("uniform noise", ctx.chw(n), uniform.clone())?,
        Dataset::new("gaussian noise", ctx.chw(n), gauss.clone())?,
    );
    let (ru, rg) = (ctx.recon(&du)?, ctx.recon(&dg)?);
    // Noisy test images (x + N(0, 0.3²), clipped) reconstructed against the clean x: how
    // well the model denoises (Messaoudi et al.'s robustness training targets this).
    let k = ctx.test.len().min(500);
    let clean = ctx.test.subset(&(0..k).collect::<Vec<_>>());
    let noisy: Vec<f32> = clean
        .images
        .iter()
        .zip(Tensor::rand_normal(&ctx.chw(k), 0.0, 0.3, tensor::DType::F32, &mut r).to_vec_f32()?)
        .map(|(x, e)| (x + e).clamp(0.0, 1.0))
        .collect();
    let rn = ctx.recon(&Dataset::new("noisy test images", ctx.chw(k), noisy.clone())?)?;
    metrics.insert("noisy_test_0.3_recon_mse_vs_clean".into(), json!(mse(&clean.images, &rn)));
    metrics.insert("noise_recon_mse_uniform".into(), json!(mse(&uniform, &ru)));
    metrics.insert("noise_recon_mse_gaussian".into(), json!(mse(&gauss, &rg)));
    ctx.save_rows("noise.png", &[uniform, ru, gauss, rg])?;
    let per = n.min(k) * c * h * w;
    ctx.save_rows("denoise.png", &[clean.images[..per].to_vec(), noisy[..per].to_vec(), rn[..per].to_vec()])?;
    Ok(())
}

/// Reconstructions of 200 images of another dataset (`--ood`, by default dSprites or
/// Fashion-MNIST, whichever the run was not trained on).
fn ood_section(ctx: &Ctx, args: &EvalArgs, metrics: &mut BTreeMap<String, Value>) -> Result<()> {
    let [c, h, w] = ctx.shape;
    let kind = match &args.ood {
        Some(s) => s.parse::<DatasetKind>().map_err(|e| Error::Config(format!("--ood: {e}")))?,
        None if ctx.cfg.dataset == DatasetKind::DSprites => DatasetKind::FashionMnist,
        None => DatasetKind::DSprites,
    };
    let opts = data::LoadOptions { max_images: Some(200), ..data::LoadOptions::default() };
    match data::load(kind, None, None, &opts) {
        Ok(ds) => {
            let ds = conform(&ds.subset(&(0..ds.len().min(200)).collect::<Vec<_>>()), ctx.shape)?;
            let rec = ctx.recon(&ds)?;
            metrics.insert(format!("ood_recon_mse_{kind}"), json!(mse(&ds.images, &rec)));
            let per = 8 * c * h * w;
            ctx.save_rows("ood.png", &[ds.images[..per].to_vec(), rec[..per].to_vec()])?;
        }
        Err(e) => println!("ood skipped: --ood {kind}: {e}"),
    }
    Ok(())
}

fn class_index(ds: &Dataset, s: &str) -> Result<usize> {
    if let Ok(i) = s.parse::<usize>() {
        return Ok(i);
    }
    ds.class_names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s))
        .ok_or_else(|| Error::Config(format!("--mix-classes: no class '{s}' (classes: {})", ds.class_names.join(", "))))
}

/// The STL-10 paper's mixing: encodings of class-A and class-B images mixed at weight w.
fn class_mix(ctx: &Ctx, args: &EvalArgs, spec: &str, mu: &[f32]) -> Result<()> {
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let Some(labels) = &ctx.test.labels else {
        return Err(Error::Config(format!("--mix-classes: {} has no labels", ctx.cfg.dataset)));
    };
    let [a, b] = parts[..] else {
        return Err(Error::Config(format!("--mix-classes '{spec}': expected two classes, e.g. horse,bird")));
    };
    let (ka, kb) = (class_index(&ctx.test, a)?, class_index(&ctx.test, b)?);
    let [_, c, h, w] = ctx.test.shape;
    let light = brightness(&ctx.test.images, c * h * w);
    let members = |k: usize| -> Vec<usize> {
        labels.iter().enumerate().filter(|(_, &l)| l as usize == k).map(|(i, _)| i).collect()
    };
    let (all_a, all_b) = (members(ka), members(kb));
    let count = args.mix_count as usize;
    let (ia, ib) =
        (pick_images(&all_a, &light, args.mix_pick, count), pick_images(&all_b, &light, args.mix_pick, count));
    let n = ia.len().min(ib.len());
    if n == 0 {
        return Err(Error::Config(format!("--mix-classes '{spec}': a class has no test images")));
    }
    let negate: Vec<usize> = if args.negate.trim() == "dark" {
        let median = median_brightness(&all_b, &light);
        (0..n).filter(|&k| light[ib[k]] < median).collect()
    } else {
        list("negate", &args.negate)?
    };
    if let Some(k) = negate.iter().find(|&&k| k >= n) {
        return Err(Error::Config(format!(
            "--negate: image {k} but class_mix.png has {n} class-B images (0 to {})",
            n - 1
        )));
    }
    let z = ctx.cfg.z_dim;
    let codes: Vec<f32> = (0..n)
        .flat_map(|k| {
            let (a, b) = (&mu[ia[k] * z..(ia[k] + 1) * z], &mu[ib[k] * z..(ib[k] + 1) * z]);
            mix_codes(a, b, args.weight, negate.contains(&k))
        })
        .collect();
    let rows = vec![ctx.test.subset(&ia[..n]).images, ctx.test.subset(&ib[..n]).images, ctx.decode(&codes)?];
    ctx.save_rows("class_mix.png", &rows)?;
    // Which codes a rule negated is part of the result: say it.
    let negated: Vec<String> = negate.iter().map(|k| k.to_string()).collect();
    let which = if negated.is_empty() { String::new() } else { format!(" (columns {})", negated.join(", ")) };
    println!(
        "class_mix.png: {n} '{a}' and {n} '{b}' test images, {} of the '{b}' codes negated{which}, w = {} on '{a}'",
        negated.len(),
        args.weight
    );
    Ok(())
}

fn metrics_section(
    ctx: &Ctx,
    args: &EvalArgs,
    train_len: usize,
    mu: &[f32],
    logvar: &[f32],
    samples: &[f32],
    m: &mut BTreeMap<String, Value>,
) -> Result<()> {
    let setup = ctx.cfg.loss_setup(train_len);
    let opts =
        BatchOptions { batch_size: args.batch_size, shuffle: false, drop_last: false, normalization: ctx.norm.clone() };
    let batches: Vec<Tensor> =
        Batches::new(std::sync::Arc::new(ctx.test.clone()), &opts, &mut Rng::new(0))?.map(|b| b.images).collect();
    let s = evaluate(&ctx.model, batches.iter(), &setup, &mut Stream::EvaluationNoise.rng(args.seed))?;
    m.insert("test_images".into(), json!(ctx.test.len()));
    m.insert("test_loss".into(), json!(s.loss));
    m.insert("test_recon".into(), json!(s.recon));
    m.insert("test_kl".into(), json!(s.kl));
    // −ELBO = E[−log p(x|z)] + KL(q(z|x) ‖ p(z)) (nats per image for BCE; for MSE the
    // reconstruction term is the summed squared error, not a log-likelihood).
    m.insert("test_neg_elbo".into(), json!(s.recon + s.kl));
    for (k, v) in [("test_mi", s.mi), ("test_tc", s.tc), ("test_dwkl", s.dwkl)] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    let z = ctx.cfg.z_dim;
    let kl_dim = kl_per_dim(mu, logvar, z);
    m.insert("kl_per_dim".into(), json!(kl_dim));
    m.insert("active_dims_kl_above_0.01".into(), json!(kl_dim.iter().filter(|&&k| k > 0.01).count()));
    let rec = ctx.recon(&ctx.test)?;
    let ns = samples.len() / (ctx.shape.iter().product::<usize>());
    m.insert("laplacian_var_test_images".into(), json!(mean_laplacian_variance(&ctx.test.images, ctx.test.shape)?));
    m.insert("laplacian_var_reconstructions".into(), json!(mean_laplacian_variance(&rec, ctx.test.shape)?));
    m.insert("laplacian_var_samples".into(), json!(mean_laplacian_variance(samples, ctx.chw(ns))?));
    if let Some(f) = &ctx.test.factors {
        let r = dsprites_mig_discretized(mu, z, f, DEFAULT_MIG_BINS)?;
        m.insert("mig_discretized".into(), json!(r.mig));
        let names = crate::data::dsprites::FACTOR_NAMES;
        let gaps: BTreeMap<String, Value> = r
            .gaps
            .iter()
            .enumerate()
            .filter_map(|(k, g)| {
                g.as_ref().map(|g| (names[k].to_string(), json!({"gap": g.gap, "best_latent": g.best_latent})))
            })
            .collect();
        m.insert("mig_discretized_per_factor".into(), json!(gaps));
    }
    if let Some(path) = &args.classifier {
        let (clf, info) =
            load_classifier(path).map_err(|e| Error::Config(format!("--classifier {}: {e}", path.display())))?;
        let (ft, pt) = judge(&clf, &info, &ctx.test.images, ctx.test.shape, 128)?;
        let (fr, pr) = judge(&clf, &info, &rec, ctx.test.shape, 128)?;
        let (fs, ps) = judge(&clf, &info, samples, ctx.chw(ns), 128)?;
        m.insert("classifier".into(), json!(path.display().to_string()));
        m.insert("classifier_test_accuracy_reported".into(), json!(info.test_accuracy));
        if let Some(labels) = &ctx.test.labels {
            let acc =
                |p: &[usize]| p.iter().zip(labels).filter(|(p, l)| **p == **l as usize).count() as f64 / p.len() as f64;
            m.insert("classifier_accuracy_test_images".into(), json!(acc(&pt)));
            m.insert("classifier_accuracy_reconstructions".into(), json!(acc(&pr)));
        }
        m.insert("classifier_frechet_test_vs_samples".into(), json!(frechet_distance(&ft, &fs, 512)?));
        m.insert("classifier_frechet_test_vs_reconstructions".into(), json!(frechet_distance(&ft, &fr, 512)?));
        let hist = class_histogram(&ps, info.class_names.len())?;
        m.insert(
            "sample_class_histogram".into(),
            json!(info.class_names.iter().zip(&hist).map(|(n, c)| format!("{n}: {c}")).collect::<Vec<_>>()),
        );
        m.insert("sample_class_entropy_normalized".into(), json!(normalized_class_entropy(&hist)?));
    }
    Ok(())
}

/// Chen et al.'s MIG, the FactorVAE score and the discretised MIG of the codes of every image
/// of the dSprites factor grid (or of every `--grid-step`-th orientation and position).
fn disentanglement_section(ctx: &Ctx, args: &EvalArgs, m: &mut BTreeMap<String, Value>) -> Result<()> {
    use crate::data::dsprites;
    let step = args.grid_step;
    // Orientation, pos_x and pos_y (factors 2, 3, 4) are thinned by the step.
    let thinned = |k: usize| k >= 2;
    let sizes: Vec<usize> = dsprites::FACTOR_SIZES
        .iter()
        .enumerate()
        .map(|(k, &n)| if thinned(k) { n.div_ceil(step) } else { n })
        .collect();
    let grid = FactorGrid::new(&sizes)?;
    let factors_of = |i: usize| -> [u16; 5] {
        std::array::from_fn(|k| (grid.value(i, k) * if thinned(k) { step } else { 1 }) as u16)
    };
    let z = ctx.cfg.z_dim;
    let [_, h, w] = ctx.shape;
    let started = Instant::now();
    println!("disentanglement: encoding the {} images of the dSprites grid {:?}", grid.len(), grid.sizes());
    let (mut mu, mut logvar) = (Vec::with_capacity(grid.len() * z), Vec::with_capacity(grid.len() * z));
    const CHUNK: usize = 8192;
    let mut next_report = 0.1;
    for start in (0..grid.len()).step_by(CHUNK) {
        let factors: Vec<[u16; 5]> = (start..(start + CHUNK).min(grid.len())).map(factors_of).collect();
        let images = dsprites::render_batch(&factors)?.to_vec_f32()?;
        let chunk = Dataset::new("dsprites grid", [factors.len(), 1, dsprites::SIDE, dsprites::SIDE], images)?;
        let chunk = if [h, w] == [dsprites::SIDE; 2] { chunk } else { chunk.resized(h, w) };
        let (cm, cl) = encode_dataset(&ctx.model, &chunk, &ctx.norm, args.batch_size)?;
        mu.extend(cm);
        logvar.extend(cl);
        let done = (start + factors.len()) as f64 / grid.len() as f64;
        if done >= next_report {
            println!("  encoded {:.0} % ({:.0} s)", done * 100.0, started.elapsed().as_secs_f64());
            next_report += 0.1;
        }
    }
    let encode_seconds = started.elapsed().as_secs_f64();
    let names = dsprites::FACTOR_NAMES;

    let t = Instant::now();
    println!("disentanglement: Chen et al.'s MIG ({} entropy samples per estimate)", args.mig_samples);
    let chen = mig_sampled(&grid, &mu, &logvar, z, &CHEN_DSPRITES_FACTORS, args.mig_samples, args.seed)?;
    let per_factor: BTreeMap<String, Value> = chen
        .factors
        .iter()
        .map(|f| {
            let v = json!({"gap": f.gap, "best_latent": f.best_latent, "mutual_info_nats": f.mutual_info, "entropy_nats": f.entropy});
            (names[f.factor].to_string(), v)
        })
        .collect();
    println!("  MIG {:.4} ({:.0} s)", chen.mig, t.elapsed().as_secs_f64());
    m.insert("mig_chen".into(), json!(chen.mig));
    m.insert("mig_chen_per_factor".into(), json!(per_factor));
    m.insert("mig_chen_marginal_entropies_nats".into(), json!(chen.marginal_entropies));

    let opts = FactorVaeOptions { seed: args.seed, ..FactorVaeOptions::default() };
    let fv = factor_vae_score(&grid, &mu, z, &opts)?;
    println!("  FactorVAE score {:.4} (train accuracy {:.4})", fv.score, fv.train_accuracy);
    m.insert("factor_vae_score".into(), json!(fv.score));
    m.insert("factor_vae_train_accuracy".into(), json!(fv.train_accuracy));
    let votes: BTreeMap<String, Value> =
        fv.active_latents.iter().zip(&fv.latent_factor).map(|(j, &k)| (format!("z{j}"), json!(names[k]))).collect();
    m.insert("factor_vae_latent_factor".into(), json!(votes));

    let g = &grid;
    let flat: Vec<usize> = (0..g.len()).flat_map(|i| (0..g.sizes().len()).map(move |k| g.value(i, k))).collect();
    let discretized = mig_discretized(&mu, z, &flat, grid.sizes(), DEFAULT_MIG_BINS)?;
    m.insert("mig_discretized_grid".into(), json!(discretized.mig));
    m.insert(
        "disentanglement_grid".into(),
        json!({"images": grid.len(), "sizes": grid.sizes(), "grid_step": step, "mig_samples": args.mig_samples,
               "encode_seconds": encode_seconds, "total_seconds": started.elapsed().as_secs_f64()}),
    );
    println!("  discretised MIG over the grid {:.4}; {:.0} s in all", discretized.mig, started.elapsed().as_secs_f64());
    Ok(())
}

fn tsne_section(ctx: &Ctx, args: &EvalArgs, mu: &[f32]) -> Result<()> {
    let z = ctx.cfg.z_dim;
    let n = (mu.len() / z).min(args.tsne_points.max(4));
    let (labels, names): (Vec<usize>, Vec<String>) = match (&ctx.test.labels, &ctx.test.factors) {
        (Some(l), _) => (l[..n].iter().map(|&v| v as usize).collect(), ctx.test.class_names.clone()),
        (None, Some(f)) => {
            let names = crate::data::dsprites::SHAPE_NAMES.iter().map(|s| s.to_string()).collect();
            (f[..n].iter().map(|v| v[0] as usize).collect(), names)
        }
        _ => (vec![0; n], vec!["test image".into()]),
    };
    let opts = crate::tools::tsne::TsneOptions {
        perplexity: 30f64.min((n as f64 - 2.0) / 3.0).max(2.0),
        seed: args.seed,
        ..Default::default()
    };
    let t = Instant::now();
    let out = crate::tools::tsne::tsne(&mu[..n * z], z, &opts)?;
    let pts: Vec<(f64, f64)> = out.embedding.chunks(2).map(|p| (p[0], p[1])).collect();
    let title = format!("t-SNE of {n} test means (z = {z}), {}", ctx.cfg.dataset);
    save_scatter_plot(&ctx.out.join("tsne.png"), &title, &pts, &labels, &names)?;
    println!("wrote {} (KL {:.3}, {:.1} s)", ctx.out.join("tsne.png").display(), out.kl, t.elapsed().as_secs_f64());
    Ok(())
}

/// Writes metrics.json and metrics.md. Keys already in the folder's metrics.json from an
/// earlier `eval` (e.g. `--what metrics` before `--what traverse`) are kept unless recomputed.
fn write_metrics(ctx: &Ctx, new: &BTreeMap<String, Value>) -> Result<()> {
    let p = ctx.out.join(EVAL_METRICS_FILE);
    let mut m: BTreeMap<String, Value> =
        std::fs::read_to_string(&p).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    m.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
    let m = &m;
    let text = serde_json::to_string_pretty(m).map_err(|e| Error::Config(e.to_string()))?;
    std::fs::write(&p, text).map_err(|e| Error::Io { path: p.clone(), source: e })?;
    let mut md = format!(
        "| metric ({} on {}, {}) | value |\n|---|---|\n",
        ctx.cfg.arch,
        ctx.cfg.dataset,
        ctx.checkpoint.display()
    );
    for (k, v) in m {
        let s = match v {
            Value::Number(x) => x
                .as_f64()
                .map(|f| if f.fract() == 0.0 { format!("{f}") } else { format!("{f:.4}") })
                .unwrap_or_default(),
            other => other.to_string(),
        };
        md += &format!("| {k} | {s} |\n");
    }
    let p2 = ctx.out.join("metrics.md");
    std::fs::write(&p2, md).map_err(|e| Error::Io { path: p2.clone(), source: e })?;
    println!("wrote {} and {}", p.display(), p2.display());
    Ok(())
}
