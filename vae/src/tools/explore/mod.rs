//! The latent explorer behind the `explore` binary: a trained run's model held in memory and
//! the answers of its small HTTP server, computed from the model, never read from a path.
//!
//! [`Explorer::open`] reads a run folder the way `eval` does (config.json, the split, the best
//! checkpoint), encodes the held-out test images once (their means start the sliders; their
//! per-dimension KL orders them, most active first) and keeps the run's metrics. [`Explorer::answer`]
//! maps one request (method and URL) to a [`Reply`]; [`serve`] runs the HTTP server that reads
//! requests and sends the replies, until a stop flag is set.
//!
//! | request | answer |
//! |---|---|
//! | `GET /`, `/explore.js`, `/explore.css` | the page, embedded in the binary |
//! | `GET /api/info` | JSON: run, model, slider order with KL, config, metrics.csv rows, eval's metrics.json |
//! | `GET /api/test.png?i=K` | test image K |
//! | `GET /api/recon.png?i=K` | its reconstruction (decoded mean) |
//! | `GET /api/code?i=K` | JSON: its posterior mean μ |
//! | `GET /api/decode.png?z=a,b,…&client=ID` | the decoding of code z (one number per latent dimension); `client` (optional, up to [`MAX_CLIENT_ID_BYTES`] letters, digits, `-` or `_`) names the page that asks: a request of that client still waiting to be decoded when a newer one arrives is answered `204 No Content` at once (superseded, no body) |
//! | `GET /api/traverse.png?z=a,b,…&dims=j,k,…&steps=S` | latent traversals around z: one row per listed dimension, S decodings with it swept over ±3 |
//! | `GET /api/mix.png?a=I&b=J&w=W&negate_b=0\|1` | decoding of w·μ_I + (1 − w)·μ_J, μ_J multiplied by −1 first when `negate_b=1` (the STL-10 paper's mixing) |
//! | `GET /api/samples.png?seed=S&n=N` | N decoded samples from N(0, I) |
//! | `GET /api/loss.png` | the run's loss curves |
//!
//! Every decoding of codes (decode, traverse, mix, samples) goes through one queue: requests
//! that arrive while the model decodes are decoded together as one batch, by one worker thread
//! (see `queue.rs`), and each gets its own images, the same as decoded alone.
//!
//! Anything else is a 4xx with a one-line reason: a path holding `..`, `%` or `\` (400), an
//! unknown path (404), a method other than GET/HEAD (405), a request with a body (400), a URL
//! longer than [`MAX_URL_BYTES`] (414), a bad or missing parameter (400).

mod queue;
mod serve;

pub use serve::{allowed_hosts, first_request, serve, ServeOptions};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use queue::{DecodeQueue, Outcome};

use serde_json::{json, Value};
use tensor::{Device, DevicePreference, Rng};

use crate::data::{Dataset, Normalization};
use crate::error::{Error, Result};
use crate::model::{OutputActivation, Vae};
use crate::plot::{image_grid, png_bytes, GridOptions};
use crate::runs::{metrics_columns, EpochMetrics, RunConfig, RunFolder};
use crate::tools::eval::{
    decode_codes, dims_by_kl, encode_dataset, kl_per_dim, mix_codes, reconstruct_dataset, traversal_codes,
};
use crate::train::standard_normal;
use nn::Module;

/// The page and its script and style, compiled into the binary (the page works offline).
const INDEX_HTML: &str = include_str!("assets/index.html");
const EXPLORE_JS: &str = include_str!("assets/explore.js");
const EXPLORE_CSS: &str = include_str!("assets/explore.css");

/// Longest request URL (path and query) answered; longer ones get 414. A code of 512 latent
/// dimensions written with 12 characters each fits.
pub const MAX_URL_BYTES: usize = 8192;
/// The most samples one `/api/samples.png` decodes.
pub const MAX_SAMPLES: usize = 64;
/// The most rows (latent dimensions) one `/api/traverse.png` draws.
pub const MAX_TRAVERSE_ROWS: usize = 16;
/// The most steps per row of `/api/traverse.png`.
pub const MAX_TRAVERSE_STEPS: usize = 15;
/// The range a traversal sweeps each dimension over: the prior's ±3σ, as the sliders.
const TRAVERSE_RANGE: f32 = 3.0;
/// The most codes one batch of the decode queue takes (a larger request is decoded alone). On
/// two Xeon cores a resnet-bn code costs 33 ms decoded alone, 22 ms a code in a batch of 16 and
/// 19–21 in batches of 32 to 64, but under 50 clients a cap of 32 served no more decodes (47.2
/// and 44.8 a second against 45.4) with a quarter more memory (669–675 MiB against 543); a
/// smaller batch also ends sooner, so a request that just missed one waits less
/// (`cargo bench --bench explore_load`; docs/performance.md).
pub const MAX_BATCH_CODES: usize = 16;
/// Longest `client` id `/api/decode.png` takes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;
/// Largest |z_j| `/api/decode.png` takes: the sliders span ±3 (the prior's ±3σ); far beyond
/// that a decoder only extrapolates.
pub const MAX_ABS_CODE: f32 = 100.0;

/// How to open a run for exploring.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// The checkpoint to load (default: RUN/best.safetensors).
    pub checkpoint: Option<PathBuf>,
    /// Where the model decodes.
    pub device: DevicePreference,
    /// The KL that orders the sliders is averaged over at most this many test images, and the
    /// page offers these.
    pub max_test: usize,
    /// Test images the page's grid shows at a time; it pages through every test image kept
    /// (at most `max_test`, the first ones of the test split).
    pub grid: usize,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        ExploreOptions { checkpoint: None, device: DevicePreference::Cpu, max_test: 2000, grid: 48 }
    }
}

/// One answer: status, content type and body. `decode_ms` is the model's time, when it ran
/// (sent as the `X-Decode-Ms` header, shown by the page).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// Milliseconds the decoder took for this answer.
    pub decode_ms: Option<f64>,
}

impl Reply {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply { status: 200, content_type, body, decode_ms: None }
    }

    fn json(value: &Value) -> Reply {
        Reply::ok("application/json", value.to_string().into_bytes())
    }

    /// The answer to a request a newer one of the same client replaced before it was decoded:
    /// 204, no body (the page ignores it; the newer request's answer follows).
    pub fn superseded() -> Reply {
        Reply { status: 204, content_type: "text/plain", body: vec![], decode_ms: None }
    }

    /// A 4xx (or 500) with a one-line JSON reason: `{"error": "..."}`.
    pub fn error(status: u16, reason: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: json!({ "error": reason.into() }).to_string().into_bytes(),
            decode_ms: None,
        }
    }
}

/// A trained run, ready to answer the page's requests.
pub struct Explorer {
    run: PathBuf,
    cfg: RunConfig,
    /// config.json as written, shown in the page.
    config_json: Value,
    /// One decode at a time (decoding switches the model to evaluation mode and back): the
    /// decode queue's worker and reconstructions share it.
    model: Arc<Mutex<Vae>>,
    /// Codes waiting to be decoded, in batches, by `decoder`.
    queue: Arc<DecodeQueue>,
    /// The decode queue's worker thread, stopped and joined when the explorer is dropped.
    decoder: Option<JoinHandle<()>>,
    norm: Normalization,
    output: OutputActivation,
    shape: [usize; 3],
    device: String,
    /// The test images the page offers, paged through its grid: [n, C, H, W].
    tests: Dataset,
    /// Their posterior means: [n, z].
    test_mu: Vec<f32>,
    /// Test images per page of the grid.
    page_size: usize,
    /// Mean KL per latent dimension over the test images, and the dimensions by it.
    kl: Vec<f64>,
    order: Vec<usize>,
    metrics: Vec<EpochMetrics>,
    eval_metrics: Option<Value>,
    loss_png: Option<Vec<u8>>,
}

impl Explorer {
    /// Loads the run folder `run` (config.json, the checkpoint, the data split) and encodes its
    /// test images. Errors name the file or flag at fault.
    pub fn open(run: &Path, opts: &ExploreOptions) -> Result<Explorer> {
        let folder = RunFolder::open(run)?;
        let config_json = folder.config_json()?;
        let checkpoint = folder.checkpoint(opts.checkpoint.as_deref())?;
        let cfg = folder.config.clone();
        let output = cfg.output;
        let (splits, norm) = cfg.load_splits()?;
        let test_full = if splits.test.is_empty() { splits.val } else { splits.test };
        if test_full.is_empty() {
            return Err(Error::Config(format!(
                "--run {}: the split '{}' leaves no test or validation images to explore",
                run.display(),
                cfg.split
            )));
        }
        let test = test_full.subset(&(0..test_full.len().min(opts.max_test.max(1))).collect::<Vec<_>>());
        let [_, c, h, w] = test.shape;
        let mut model = cfg.load_model([c, h, w], &checkpoint)?;
        // The explorer only encodes and decodes: each batch norm after a convolution is folded
        // into it once here instead of being a pass over the activations in every decode.
        model.fold_batch_norms_for_inference()?;
        let device = Device::from_preference(opts.device)?;
        model.to_device(&device)?;
        let (mu, logvar) = encode_dataset(&model, &test, &norm, 256)?;
        let z = cfg.z_dim;
        let kl = kl_per_dim(&mu, &logvar, z);
        let metrics = folder.metrics()?;
        let eval_metrics = folder.eval_metrics()?;
        let loss_png = match crate::tools::report::loss_plot(&metrics)? {
            Some(img) => Some(png_bytes(&img)?),
            None => None,
        };
        let model = Arc::new(Mutex::new(model));
        let queue = Arc::new(DecodeQueue::new(z, MAX_BATCH_CODES));
        let decoder = {
            let (model, queue, norm) = (Arc::clone(&model), Arc::clone(&queue), norm.clone());
            std::thread::Builder::new()
                .name("explore-decoder".into())
                .spawn(move || {
                    queue.serve(|codes: &[f32]| {
                        let model = model.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        decode_codes(&model, codes, &norm, output, MAX_SAMPLES).map_err(|e| e.to_string())
                    })
                })
                .map_err(|source| Error::Io { path: run.to_path_buf(), source })?
        };
        Ok(Explorer {
            run: run.to_path_buf(),
            cfg,
            config_json,
            model,
            queue,
            decoder: Some(decoder),
            norm,
            output,
            shape: [c, h, w],
            device: device.describe(),
            page_size: opts.grid.clamp(1, test.len()),
            tests: test,
            test_mu: mu,
            order: dims_by_kl(&kl),
            kl,
            metrics,
            eval_metrics,
            loss_png,
        })
    }

    /// Latent size z.
    pub fn z_dim(&self) -> usize {
        self.cfg.z_dim
    }

    /// Number of test images the page offers.
    pub fn test_len(&self) -> usize {
        self.tests.len()
    }

    /// The device the model decodes on, in words.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Decodes codes z: [n, z] to a PNG grid of `cols` columns (no upscaling: the page scales),
    /// and the decoder's milliseconds (of the whole batch the codes were decoded in).
    pub fn decode_png(&self, z: &[f32], cols: usize, padding: usize) -> Result<(Vec<u8>, f64)> {
        match self.decode_png_for(None, z, cols, padding)? {
            Some(decoded) => Ok(decoded),
            None => Err(Error::Config("a decode without a client was superseded".into())),
        }
    }

    /// [`decode_png`](Self::decode_png) for `client`: `None` when a newer request of the same
    /// client took this one's place in the decode queue.
    fn decode_png_for(
        &self,
        client: Option<&str>,
        z: &[f32],
        cols: usize,
        padding: usize,
    ) -> Result<Option<(Vec<u8>, f64)>> {
        match self.queue.submit(client, z.to_vec()) {
            Outcome::Decoded { images, batch_ms } => {
                let n = z.len() / self.cfg.z_dim;
                Ok(Some((self.grid_png(&images, n, cols, padding)?, batch_ms)))
            }
            Outcome::Superseded => Ok(None),
            Outcome::Failed(reason) => Err(Error::Config(format!("decoding failed: {reason}"))),
        }
    }

    fn grid_png(&self, images: &[f32], n: usize, cols: usize, padding: usize) -> Result<Vec<u8>> {
        let [c, h, w] = self.shape;
        let opts = GridOptions { cols: cols.clamp(1, n.max(1)), padding, scale: Some(1), ..GridOptions::default() };
        Ok(png_bytes(&image_grid(images, [n, c, h, w], &opts)?)?)
    }

    /// The answer to one request: `method` and `url` (path and query, as the request line has
    /// them). Never panics on any input; errors become 4xx replies with the reason.
    pub fn answer(&self, method: &str, url: &str) -> Reply {
        if url.len() > MAX_URL_BYTES {
            return Reply::error(414, format!("the URL has {} bytes; at most {MAX_URL_BYTES} are read", url.len()));
        }
        if method != "GET" && method != "HEAD" {
            return Reply::error(405, format!("method {method}: this server answers GET and HEAD only"));
        }
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        if !path.starts_with('/') || path.contains("..") || path.contains('%') || path.contains('\\') {
            return Reply::error(400, "bad path: it must start with '/' and hold no '..', '%' or '\\'");
        }
        let params = match Params::parse(query) {
            Ok(p) => p,
            Err(e) => return Reply::error(400, e),
        };
        let result = match path {
            "/" | "/index.html" => Ok(Reply::ok("text/html; charset=utf-8", INDEX_HTML.into())),
            "/explore.js" => Ok(Reply::ok("text/javascript; charset=utf-8", EXPLORE_JS.into())),
            "/explore.css" => Ok(Reply::ok("text/css; charset=utf-8", EXPLORE_CSS.into())),
            "/api/info" => params.only(&[]).map(|()| Reply::json(&self.info())),
            "/api/test.png" => self.test_image(&params),
            "/api/recon.png" => self.reconstruction(&params),
            "/api/code" => self.code(&params),
            "/api/decode.png" => self.decode(&params),
            "/api/traverse.png" => self.traverse(&params),
            "/api/mix.png" => self.mix(&params),
            "/api/samples.png" => self.samples(&params),
            "/api/loss.png" => match &self.loss_png {
                Some(png) => params.only(&[]).map(|()| Reply::ok("image/png", png.clone())),
                None => Ok(Reply::error(404, "the run has no metrics.csv rows to plot")),
            },
            _ => Ok(Reply::error(404, format!("no page or answer at {path}"))),
        };
        result.unwrap_or_else(|e| match e {
            Answer::Bad(reason) => Reply::error(400, reason),
            Answer::Failed(e) => Reply::error(500, format!("{e}")),
        })
    }

    fn info(&self) -> Value {
        let columns = metrics_columns();
        let rows: Vec<Value> = self
            .metrics
            .iter()
            .map(|r| Value::Array(columns.iter().map(|c| r.get(c).map_or(Value::Null, |v| json!(v))).collect()))
            .collect();
        let run_name = self.run.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        json!({
            "run": run_name,
            "arch": self.cfg.arch.name(),
            "dataset": self.cfg.dataset.name(),
            "z_dim": self.cfg.z_dim,
            "image": self.shape,
            "device": self.device,
            "grid": self.page_size,
            "test_images": self.tests.len(),
            "dims": self.order.iter().map(|&j| json!({"index": j, "kl": self.kl[j]})).collect::<Vec<_>>(),
            "config": self.config_json,
            "metrics": { "columns": columns, "rows": rows },
            "eval_metrics": self.eval_metrics,
            "has_loss_plot": self.loss_png.is_some(),
            "max_samples": MAX_SAMPLES,
        })
    }

    fn image_index(&self, params: &Params, key: &str) -> std::result::Result<usize, Answer> {
        let i: usize = params.number(key)?;
        if i >= self.tests.len() {
            return Err(Answer::Bad(format!(
                "{key}={i}: there are {} test images (0 to {})",
                self.tests.len(),
                self.tests.len() - 1
            )));
        }
        Ok(i)
    }

    fn mu(&self, i: usize) -> &[f32] {
        let z = self.cfg.z_dim;
        &self.test_mu[i * z..(i + 1) * z]
    }

    fn test_image(&self, params: &Params) -> std::result::Result<Reply, Answer> {
        params.only(&["i"])?;
        let i = self.image_index(params, "i")?;
        Ok(Reply::ok("image/png", self.grid_png(self.tests.image(i), 1, 1, 0)?))
    }

    fn reconstruction(&self, params: &Params) -> std::result::Result<Reply, Answer> {
        params.only(&["i"])?;
        let i = self.image_index(params, "i")?;
        let started = Instant::now();
        let images = {
            let model = self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            reconstruct_dataset(&model, &self.tests.subset(&[i]), &self.norm, self.output, 1)?
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(Reply { decode_ms: Some(ms), ..Reply::ok("image/png", self.grid_png(&images, 1, 1, 0)?) })
    }

    fn code(&self, params: &Params) -> std::result::Result<Reply, Answer> {
        params.only(&["i"])?;
        let i = self.image_index(params, "i")?;
        Ok(Reply::json(&json!({ "i": i, "mu": self.mu(i) })))
    }

    /// The code in the `z` parameter: one finite number within ±[`MAX_ABS_CODE`] per latent
    /// dimension.
    fn code_param(&self, params: &Params) -> std::result::Result<Vec<f32>, Answer> {
        let z: Vec<f32> = params.list("z")?;
        if z.len() != self.cfg.z_dim {
            return Err(Answer::Bad(format!(
                "z: expected {} comma-separated numbers (one per latent dimension), got {}",
                self.cfg.z_dim,
                z.len()
            )));
        }
        if let Some(v) = z.iter().find(|v| !v.is_finite() || v.abs() > MAX_ABS_CODE) {
            return Err(Answer::Bad(format!("z: {v} is not a finite number within ±{MAX_ABS_CODE}")));
        }
        Ok(z)
    }

    fn decode(&self, params: &Params) -> std::result::Result<Reply, Answer> {
        params.only(&["z", "client"])?;
        let z = self.code_param(params)?;
        let client = params.get("client");
        if let Some(id) = client {
            let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
            if id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES || !id.chars().all(allowed) {
                return Err(Answer::Bad(format!(
                    "client: 1 to {MAX_CLIENT_ID_BYTES} letters, digits, '-' or '_' (the page's own id)"
                )));
            }
        }
        Ok(match self.decode_png_for(client, &z, 1, 0)? {
            Some((png, ms)) => Reply { decode_ms: Some(ms), ..Reply::ok("image/png", png) },
            None => Reply::superseded(),
        })
    }

    fn traverse(&self, params: &Params) -> std::result::Result<Reply, Answer> {
        params.only(&["z", "dims", "steps"])?;
        let z = self.code_param(params)?;
        let dims: Vec<usize> = params.list("dims")?;
        if dims.is_empty() || dims.len() > MAX_TRAVERSE_ROWS {
            return Err(Answer::Bad(format!(
                "dims: give 1 to {MAX_TRAVERSE_ROWS} latent dimensions, got {}",
                dims.len()
            )));
        }
        if let Some(j) = dims.iter().find(|&&j| j >= self.cfg.z_dim) {
            return Err(Answer::Bad(format!("dims: {j} is not a latent dimension (0 to {})", self.cfg.z_dim - 1)));
        }
        if let Some((k, j)) = dims.iter().enumerate().find(|(k, j)| dims[..*k].contains(j)) {
            return Err(Answer::Bad(format!("dims: {j} is listed twice (item {})", k + 1)));
        }
        let steps: usize = params.number("steps")?;
        if !(2..=MAX_TRAVERSE_STEPS).contains(&steps) {
            return Err(Answer::Bad(format!("steps={steps}: a row takes 2 to {MAX_TRAVERSE_STEPS} steps")));
        }
        let codes = traversal_codes(&z, &dims, steps, TRAVERSE_RANGE);
        let (png, ms) = self.decode_png(&codes, steps, 1)?;
        Ok(Reply { decode_ms: Some(ms), ..Reply::ok("image/png", png) })
    }

    fn mix(&self, params: &Params) -> std::result::Result<Reply, Answer> {
        params.only(&["a", "b", "w", "negate_b"])?;
        let (a, b) = (self.image_index(params, "a")?, self.image_index(params, "b")?);
        let w: f32 = params.number("w")?;
        if !(-1.0..=2.0).contains(&w) {
            return Err(Answer::Bad(format!("w={w}: the weight must lie in [-1, 2] (1 is image a, 0 is image b)")));
        }
        let negate_b = match params.get("negate_b") {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => return Err(Answer::Bad(format!("negate_b={other}: expected 0 or 1"))),
        };
        let code = mix_codes(self.mu(a), self.mu(b), w, negate_b);
        let (png, ms) = self.decode_png(&code, 1, 0)?;
        Ok(Reply { decode_ms: Some(ms), ..Reply::ok("image/png", png) })
    }

    fn samples(&self, params: &Params) -> std::result::Result<Reply, Answer> {
        params.only(&["seed", "n"])?;
        let seed: u64 = params.number("seed")?;
        let n: usize = params.number("n")?;
        if n == 0 || n > MAX_SAMPLES {
            return Err(Answer::Bad(format!("n={n}: between 1 and {MAX_SAMPLES} samples")));
        }
        let z = standard_normal(n, self.cfg.z_dim, tensor::DType::F32, &mut Rng::new(seed))
            .to_vec_f32()
            .map_err(Error::from)?;
        let (png, ms) = self.decode_png(&z, 8, 2)?;
        Ok(Reply { decode_ms: Some(ms), ..Reply::ok("image/png", png) })
    }
}

impl Drop for Explorer {
    /// Stops the decode queue's worker after the requests it holds.
    fn drop(&mut self) {
        self.queue.close();
        if let Some(decoder) = self.decoder.take() {
            let _ = decoder.join();
        }
    }
}

/// Why a request got no answer: the client's mistake (400) or ours (500).
enum Answer {
    Bad(String),
    Failed(Error),
}

impl From<Error> for Answer {
    fn from(e: Error) -> Self {
        Answer::Failed(e)
    }
}

impl From<crate::plot::PlotError> for Answer {
    fn from(e: crate::plot::PlotError) -> Self {
        Answer::Failed(e.into())
    }
}

/// A request's query parameters, percent-decoded (`form_urlencoded`), each key at most once.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> std::result::Result<Params, String> {
        let mut pairs: Vec<(String, String)> = vec![];
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(format!("parameter '{k}' is given twice"));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Refuses parameters other than `allowed` (a misspelt one would otherwise be ignored).
    fn only(&self, allowed: &[&str]) -> std::result::Result<(), Answer> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) if allowed.is_empty() => {
                Err(Answer::Bad(format!("unknown parameter '{k}' (this takes none)")))
            }
            Some((k, _)) => Err(Answer::Bad(format!("unknown parameter '{k}' (expected {})", allowed.join(", ")))),
            None => Ok(()),
        }
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> std::result::Result<T, Answer> {
        let v = self.get(key).ok_or_else(|| Answer::Bad(format!("missing parameter '{key}'")))?;
        v.trim().parse().map_err(|_| Answer::Bad(format!("{key}={v}: not a number of the expected kind")))
    }

    fn list<T: std::str::FromStr>(&self, key: &str) -> std::result::Result<Vec<T>, Answer> {
        let v = self.get(key).ok_or_else(|| Answer::Bad(format!("missing parameter '{key}'")))?;
        v.split(',')
            .enumerate()
            .map(|(i, p)| match p.trim() {
                "" => Err(Answer::Bad(format!("{key}: item {} is empty (expected comma-separated numbers)", i + 1))),
                p => p.parse().map_err(|_| Answer::Bad(format!("{key}: '{p}' is not a number"))),
            })
            .collect()
    }
}
