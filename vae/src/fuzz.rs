//! Fuzz targets: one function for every parser a user's file or request reaches, each taking
//! arbitrary bytes and going through the same code a user's input goes through (files are
//! written to a scratch folder and read back by the readers `train`, `eval`, `sweep` and
//! `explore` call, not by copies of them).
//!
//! A target returns on any input, whatever the reader answered; it panics only when the
//! project has a bug: a reader panicked, or accepted an input and then broke its own promise
//! (an image file read as more pixels than its shape holds, a configuration that passed the
//! checks but does not survive its own `config.json`). The long runs add two limits a target
//! cannot see for itself: time per input and memory per allocation (`vae/fuzz/run.sh`).
//!
//! Two drivers run them: `cargo fuzz` (libFuzzer, nightly) over `vae/fuzz/`, coverage-guided,
//! for the long runs; and the stable test `fuzz_corpus` (in `vae`'s integration tests), which
//! replays the committed corpus and a bounded number of mutations of it on every `cargo test`.
//! Every target starts from [`seeds`], valid inputs the project itself writes.
//!
//! Inputs that hold two files (a label and an image file; an image and its annotation) are cut
//! by a length prefix: [`split_prefixed`].

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::TrainCli;
use crate::config::RunConfig;
use crate::data::image_folder::FolderOptions;
use crate::data::{cifar10, idx, image_folder, stl10, Split};
use crate::error::Result;
use crate::model::{Arch, Vae};
use crate::runs::{read_metrics, write_metrics, EpochMetrics};
use crate::tools::explore::{first_request, ExploreOptions, Explorer};
use crate::tools::sweep::point::PointRecord;
use crate::tools::sweep::study::Study;
use crate::trainer::Progress;
use clap::Parser;
use nn::checkpoint::{load_training_checkpoint, read_training_state, save_training_checkpoint};
use nn::optim::{Adam, AdamConfig};
use nn::{BatchNorm1d, Init, Linear, Module, Sequential};

/// One fuzz target: its name (the `cargo fuzz` target and the corpus folder) and the function
/// (whose doc comment says what an input is).
pub struct Target {
    /// The target's name: `cargo fuzz run --fuzz-dir vae/fuzz NAME`, corpus `vae/fuzz/corpus/NAME/`.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
}

/// Every target, in the order the docs list them.
pub const TARGETS: [Target; 14] = [
    Target { name: "idx", run: idx_file },
    Target { name: "cifar10", run: cifar10_batch },
    Target { name: "stl10", run: stl10_files },
    Target { name: "image_folder", run: image_folder_files },
    Target { name: "voc_xml", run: voc_annotation },
    Target { name: "checkpoint", run: checkpoint_file },
    Target { name: "run_config", run: run_config_json },
    Target { name: "metrics_csv", run: metrics_file },
    Target { name: "kernel_choices", run: kernel_choice_cache },
    Target { name: "study", run: study_file },
    Target { name: "sweep_record", run: sweep_point_record },
    Target { name: "explore_request", run: explore_request },
    Target { name: "train_flags", run: train_flags },
    Target { name: "sweep_grid", run: sweep_grid },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

thread_local! {
    /// Each thread's scratch folder: the stable test runs targets on several threads at once.
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// This thread's scratch folder (made on first use, removed when the thread ends).
fn scratch() -> PathBuf {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            *s = Some(tempfile::Builder::new().prefix("vae-fuzz-").tempdir().expect("a scratch folder for fuzzing"));
        }
        s.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default()
    })
}

/// Writes `bytes` to `name` under a fresh folder `dir` of this thread's scratch folder.
fn fresh_dir(dir: &str) -> PathBuf {
    let d = scratch().join(dir);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a scratch folder for fuzzing");
    d
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("a scratch folder for fuzzing");
    }
    std::fs::write(path, bytes).expect("a scratch file for fuzzing");
}

/// Cuts `data` into a part of the length its first two bytes give (big-endian, clamped to
/// what follows) and the rest.
pub fn split_prefixed(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (&[], data);
    }
    let n = (u16::from_be_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    data[2..].split_at(n)
}

/// `part` after a two-byte big-endian length: what [`split_prefixed`] cuts.
pub fn prefixed(part: &[u8], rest: &[u8]) -> Vec<u8> {
    let n = u16::try_from(part.len()).expect("a part of at most 65,535 bytes");
    [&n.to_be_bytes()[..], part, rest].concat()
}

/// One input: an IDX image or label file (MNIST, Fashion-MNIST), raw or gzipped.
fn idx_file(data: &[u8]) {
    let path = fresh_dir("idx").join("train-images-idx3-ubyte");
    write(&path, data);
    if let Ok((pixels, shape)) = idx::read_images(&path) {
        assert_eq!(pixels.len(), shape.iter().product::<usize>(), "images read as {shape:?}");
        assert!(pixels.iter().all(|p| (0.0..=1.0).contains(p)), "a pixel outside [0, 1]");
    }
    if let Ok(labels) = idx::read_labels(&path) {
        assert!(labels.iter().all(|&l| l < 256), "a label wider than a byte");
    }
}

/// One input: a CIFAR-10 binary batch.
fn cifar10_batch(data: &[u8]) {
    if let Ok((pixels, labels)) = cifar10::parse_batch(Path::new("data_batch_1.bin"), data) {
        assert_eq!(pixels.len(), labels.len() * (cifar10::RECORD_BYTES - 1));
        assert!(labels.iter().all(|&l| l < 10), "a label outside 0..9");
    }
}

/// Side the STL-10 and folder targets resize to: small, so that an input costs little.
const SIDE: usize = 8;

/// One input: STL-10's train_y.bin and train_X.bin (length-prefixed: labels, then images).
fn stl10_files(data: &[u8]) {
    let (labels, images) = split_prefixed(data);
    let dir = fresh_dir("stl10");
    write(&dir.join("train_y.bin"), labels);
    write(&dir.join("train_X.bin"), images);
    if let Ok(ds) = stl10::load(&dir, Split::Train, SIDE, Some(4)) {
        assert_eq!(ds.shape[1..], [3, SIDE, SIDE]);
        assert!(ds.len() <= 4 && ds.len() * stl10::IMAGE_BYTES <= images.len());
    }
}

/// One input: one image of an image folder (PNG or JPEG) and its Pascal-VOC annotation (flag byte,
/// length-prefixed XML, image).
fn image_folder_files(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (xml, image) = split_prefixed(rest);
    let dir = fresh_dir("folder");
    write(&dir.join("images/class/a.png"), image);
    if !xml.is_empty() {
        write(&dir.join("annotations/class/a.xml"), xml);
    }
    let opts = FolderOptions {
        height: SIDE,
        width: SIDE + 1,
        grayscale: flags & 1 != 0,
        center_crop: flags & 2 != 0,
        annotation_dir: (flags & 4 != 0).then(|| dir.join("annotations")),
        max_images: None,
    };
    if let Ok(ds) = image_folder::load(&dir.join("images"), &opts) {
        let channels = if opts.grayscale { 1 } else { 3 };
        assert_eq!(ds.shape, [1, channels, SIDE, SIDE + 1]);
    }
}

/// One input: a Pascal-VOC annotation's bounding box.
fn voc_annotation(data: &[u8]) {
    let Ok(xml) = std::str::from_utf8(data) else { return };
    if let Ok(b) = image_folder::parse_voc_bbox(xml) {
        assert!(b.iter().all(|v| v.is_finite()) && b[2] >= b[0] && b[3] >= b[1], "box {b:?}");
        if let Some(px) = image_folder::voc_to_pixels(b, 640, 480) {
            assert!(px.x1 <= 640 && px.y1 <= 480 && px.x0 < px.x1 && px.y0 < px.y1, "{px:?}");
        }
    }
}

/// The configuration of the small model the checkpoint and explorer targets load into.
fn small_config() -> RunConfig {
    RunConfig {
        arch: Arch::Dense,
        z_dim: 3,
        image_size: Some(12),
        max_images: Some(48),
        epochs: 2,
        batch_size: 8,
        ..RunConfig::default()
    }
}

/// Images of the small model: dSprites at 12×12.
const SMALL_INPUT: [usize; 3] = [1, 12, 12];

fn small_model() -> Vae {
    small_config().new_model(SMALL_INPUT).expect("the small fuzzing model")
}

/// The module the checkpoint target restores: a linear layer and a batch norm (parameters,
/// buffers, an integer counter), small so that an input costs microseconds; the loader's
/// checks are the same for every module.
fn checkpoint_module() -> Sequential {
    let mut init = Init::new(7);
    Sequential::new()
        .with(Linear::new(3, 2, &mut init).expect("a linear layer"))
        .with(BatchNorm1d::new(2, &init).expect("a batch norm"))
}

fn adam_of(model: &dyn Module) -> Adam {
    Adam::new(model.named_parameters(), AdamConfig::new(1e-3)).expect("an optimizer for the small model")
}

thread_local! {
    static CHECKPOINT_MODEL: (Sequential, RefCell<Adam>) = {
        let model = checkpoint_module();
        let adam = RefCell::new(adam_of(&model));
        (model, adam)
    };
}

/// One input: a training checkpoint (safetensors) as --resume and eval read it, through the model's
/// shape checks.
fn checkpoint_file(data: &[u8]) {
    let dir = fresh_dir("checkpoint");
    let path = dir.join("last.safetensors");
    write(&path, data);
    let header = read_training_state(&path);
    CHECKPOINT_MODEL.with(|(model, adam)| {
        let loaded = load_training_checkpoint(&path, model, &mut *adam.borrow_mut());
        if let (Ok(state), Ok(header)) = (&loaded, &header) {
            assert_eq!((state.epoch, state.step, &state.extra), (header.epoch, header.step, &header.extra));
        }
        if let Ok(state) = loaded {
            // What --resume reads next: the run's position and history.
            if let Ok(progress) = Progress::from_state(&path, &state, 3) {
                let _ = progress.check_fits(&path, 6, 8);
            }
        }
    });
    // What eval and explore read: the model alone, through the VAE's shape checks (the model
    // made once: making one costs more than reading any input).
    EVAL_MODEL.with(|model| {
        let _ = nn::checkpoint::load_model(&path, model, &nn::checkpoint::LoadOptions::strict());
    });
    let _ = crate::trainer::training_finished(&dir);
}

thread_local! {
    static EVAL_MODEL: Vae = small_model();
}

/// One input: a run's config.json.
fn run_config_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut config) = RunConfig::from_json(text) else { return };
    if config.check().is_ok() {
        let again = RunConfig::from_json(&config.to_json()).expect("a checked configuration reads back");
        assert_eq!(again, config, "config.json does not give back the configuration written");
    }
}

/// One input: a run's metrics.csv.
fn metrics_file(data: &[u8]) {
    let dir = fresh_dir("metrics");
    let path = dir.join("metrics.csv");
    write(&path, data);
    if let Ok(rows) = read_metrics(&path) {
        // What resume and sweep do with rows read: write them again, and read that back.
        write_metrics(&path, &rows).expect("rows read are written");
        let again = read_metrics(&path).expect("rows written read back");
        let bits = |rows: &[EpochMetrics]| -> Vec<Vec<(String, Option<u64>)>> {
            rows.iter().map(|r| r.columns().into_iter().map(|(c, v)| (c, v.map(f64::to_bits))).collect()).collect()
        };
        assert_eq!(bits(&again), bits(&rows), "metrics.csv does not give back the rows written");
    }
}

/// The choice names the kernel-choice target's cache may hold.
fn known_choice(name: &str) -> bool {
    ["direct", "tiled", "implicit"].contains(&name)
}

/// The machine key the kernel-choice target's seeds are written for.
const CHOICE_KEY: &str = "fuzz-machine";

/// The classes the kernel-choice target's seeds hold choices for.
const SEED_CLASSES: [&str; 2] = ["conv 3x3 64", "matmul 8"];

/// One input: the kernel-choice cache.
fn kernel_choice_cache(data: &[u8]) {
    let dir = fresh_dir("choices");
    let path = dir.join("kernel-choices.tsv");
    write(&path, data);
    let file = tensor::descriptors::choices::ChoiceFile::open(Some(path), CHOICE_KEY.into(), known_choice);
    for class in SEED_CLASSES {
        if let Some(choice) = file.kept(class) {
            assert!(known_choice(&choice), "{class} chose {choice}");
        }
    }
}

/// One input: a study file (sweep --study).
fn study_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(study) = Study::parse("fuzz.toml", "fuzz", text) {
        if study.check().is_ok() {
            let again = Study::parse("study.toml", "fuzz", &study.to_toml()).expect("a study's snapshot reads back");
            assert_eq!(again.points().ok().map(|p| p.len()), study.points().ok().map(|p| p.len()));
        }
    }
}

/// One input: a sweep point's sweep-point.json.
fn sweep_point_record(data: &[u8]) {
    let dir = fresh_dir("point");
    write(&dir.join("sweep-point.json"), data);
    if let Ok(record) = PointRecord::read(&dir) {
        record.write(&dir).expect("a record read is written");
        PointRecord::read(&dir).expect("a record written reads back");
    }
}

thread_local! {
    /// The explorer the request target asks: the small model, untrained, over a run folder of
    /// this thread's scratch folder.
    static EXPLORER: Explorer = small_explorer().expect("an explorer over the small model");
}

fn small_explorer() -> Result<Explorer> {
    let run = fresh_dir("explore-run");
    let config = small_config();
    crate::runs::write_file(&run.join(crate::runs::CONFIG_FILE), config.to_json().as_bytes())?;
    nn::checkpoint::save_model(&run.join("best.safetensors"), &small_model())?;
    Explorer::open(&run, &ExploreOptions { max_test: 4, grid: 4, ..ExploreOptions::default() })
}

/// One input: the bytes a client sends the explorer: request line, headers, query parameters.
fn explore_request(data: &[u8]) {
    let Some(Ok((method, url))) = first_request(data) else { return };
    EXPLORER.with(|explorer| {
        let reply = explorer.answer(&method, &url);
        assert!(matches!(reply.status, 200..=299 | 400..=499), "{method} {url}: status {}", reply.status);
    });
}

/// `data`'s lines, as arguments.
fn lines(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data).lines().map(str::to_string).collect()
}

/// One input: train's command line, one argument a line (--split, --logvar-clamp, ...).
fn train_flags(data: &[u8]) {
    let args = lines(data);
    if args.len() > 64 {
        return;
    }
    if let Ok(cli) = TrainCli::try_parse_from(std::iter::once("train".to_string()).chain(args)) {
        let mut config = cli.config;
        if config.check().is_ok() {
            assert!(config.split_ratios().is_ok(), "--split {} passed the checks but does not parse", config.split);
            if let Some([min, max]) = config.logvar_clamp {
                assert!(min < max && max <= 88.0, "--logvar-clamp {min},{max} passed");
            }
        }
    }
}

/// One input: sweep's --grid axes, one a line, then -- and train's arguments.
fn sweep_grid(data: &[u8]) {
    let all = lines(data);
    let (grid, train) = match all.iter().position(|l| l == "--") {
        Some(i) => (&all[..i], &all[i + 1..]),
        None => (&all[..], &[][..]),
    };
    if grid.len() > 16 || train.len() > 64 {
        return;
    }
    if let Ok(study) = Study::from_grid("fuzz", &scratch().join("sweeps"), grid, train) {
        assert!(!study.points().expect("a checked grid has points").is_empty());
    }
}

/// Valid inputs for every target, as the project writes them: `(target, file name, bytes)`.
/// The committed corpus (`vae/fuzz/corpus/TARGET/`) starts from these; a test keeps the two
/// equal.
pub fn seeds() -> Result<Vec<(&'static str, String, Vec<u8>)>> {
    let mut out: Vec<(&'static str, String, Vec<u8>)> = vec![];
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| out.push((target, name.to_string(), bytes));

    let idx_images =
        [&[0, 0, 8, 3][..], &2u32.to_be_bytes(), &3u32.to_be_bytes(), &4u32.to_be_bytes(), &[7; 24]].concat();
    let idx_labels = [&[0, 0, 8, 1][..], &2u32.to_be_bytes(), &[3, 9]].concat();
    add("idx", "images", idx_images.clone());
    add("idx", "labels", idx_labels);
    add("idx", "images-gzipped", gzip(&idx_images));

    let record = |label: u8| [&[label][..], &(0..3072).map(|i| (i % 251) as u8).collect::<Vec<_>>()].concat();
    add("cifar10", "two-records", [record(3), record(9)].concat());

    let stl_image: Vec<u8> = (0..stl10::IMAGE_BYTES).map(|i| (i % 253) as u8).collect();
    add("stl10", "one-image", prefixed(&[4], &stl_image));

    let png = png_file(5, 7);
    let voc = "<annotation><object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin>\
               <xmax>5</xmax><ymax>7</ymax></bndbox></object></annotation>";
    add("image_folder", "png", [&[0u8][..], &prefixed(&[], &png)].concat());
    add("image_folder", "png-grey-cropped-annotated", [&[7u8][..], &prefixed(voc.as_bytes(), &png)].concat());
    add("image_folder", "jpeg", [&[1u8][..], &prefixed(&[], &jpeg_file(9, 6))].concat());
    add("voc_xml", "box", voc.as_bytes().to_vec());

    add("checkpoint", "training", training_checkpoint()?);

    let config = small_config();
    add("run_config", "small", config.to_json().into_bytes());
    add("run_config", "default", RunConfig::default().to_json().into_bytes());

    add("metrics_csv", "two-epochs", metrics_csv()?);

    add("kernel_choices", "two-machines", kernel_choices()?);

    for name in ["tiny-dense", "folkertsma-beta"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("studies").join(format!("{name}.toml"));
        let text = std::fs::read(&path).map_err(|source| crate::Error::Io { path, source })?;
        add("study", name, text);
    }

    add("sweep_record", "done", sweep_record()?);

    let z = vec!["0.5"; config.z_dim].join(",");
    add(
        "explore_request",
        "decode",
        format!("GET /api/decode.png?z={z} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n").into(),
    );
    add(
        "explore_request",
        "traverse",
        format!("GET /api/traverse.png?z={z}&dims=0,2&steps=3 HTTP/1.1\r\nConnection: close\r\n\r\n").into(),
    );
    add("explore_request", "mix", b"HEAD /api/mix.png?a=0&b=1&w=0.25&negate_b=1 HTTP/1.0\r\n\r\n".to_vec());
    add("explore_request", "samples", b"GET /api/samples.png?seed=3&n=2 HTTP/1.1\r\n\r\n".to_vec());

    add("train_flags", "clamped", b"--arch\ndense\n--split\n8:1:1\n--logvar-clamp\n-30,20\n--beta\n4".to_vec());
    add("train_flags", "folder", b"--dataset=folder\n--data-dir\nx\n--image-size=32\n--epochs=3".to_vec());
    add("sweep_grid", "two-axes", b"beta=1,4\nseed=0,1\n--\n--arch\ndense\n--epochs\n2".to_vec());
    Ok(out)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).and_then(|()| encoder.finish()).expect("gzip in memory")
}

fn png_file(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 40) as u8, (y * 30) as u8, 200]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("a PNG in memory");
    out.into_inner()
}

fn jpeg_file(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 20) as u8, 90, (y * 35) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).expect("a JPEG in memory");
    out.into_inner()
}

/// A training checkpoint of the checkpoint target's module as `train` writes one after its
/// first epoch.
fn training_checkpoint() -> Result<Vec<u8>> {
    let config = small_config();
    let model = checkpoint_module();
    let adam = adam_of(&model);
    let mut progress = Progress::start(&config);
    progress.epoch = 1;
    progress.history.push(one_epoch(1));
    let dir = fresh_dir("seed-checkpoint");
    let path = dir.join("last.safetensors");
    save_training_checkpoint(&path, &model, &adam, &progress.to_state(&config.to_json()))?;
    std::fs::read(&path).map_err(|source| crate::Error::Io { path, source })
}

fn one_epoch(epoch: usize) -> EpochMetrics {
    let values = |x: f64| crate::loss::LossValues { recon: x, kl: x / 10.0, ..crate::loss::LossValues::default() };
    EpochMetrics::new(epoch, 1e-3, 0.5, &values(30.0 / epoch as f64), &values(32.0 / epoch as f64))
}

fn metrics_csv() -> Result<Vec<u8>> {
    let path = fresh_dir("seed-metrics").join("metrics.csv");
    write_metrics(&path, &[one_epoch(1), one_epoch(2)])?;
    std::fs::read(&path).map_err(|source| crate::Error::Io { path, source })
}

fn kernel_choices() -> Result<Vec<u8>> {
    let path = fresh_dir("seed-choices").join("kernel-choices.tsv");
    for (key, class) in
        [("another-machine", SEED_CLASSES[0]), (CHOICE_KEY, SEED_CLASSES[0]), (CHOICE_KEY, SEED_CLASSES[1])]
    {
        let file = tensor::descriptors::choices::ChoiceFile::open(Some(path.clone()), key.into(), known_choice);
        // Timings that cannot fail: the choice is written to the cache as a measured one is.
        let Ok(_) = file.choose("fuzz seed", class, &["direct", "tiled"], |c| {
            Ok::<_, std::convert::Infallible>(Duration::from_millis(if c == "tiled" { 1 } else { 2 }))
        });
    }
    std::fs::read(&path).map_err(|source| crate::Error::Io { path, source })
}

fn sweep_record() -> Result<Vec<u8>> {
    let dir = fresh_dir("seed-point");
    let record = PointRecord {
        outcome: Some(crate::tools::sweep::point::Outcome::Done),
        trained: true,
        evaluated: true,
        seconds: 12.5,
        attempts: 1,
        ..PointRecord::default()
    };
    record.write(&dir)?;
    let path = dir.join("sweep-point.json");
    std::fs::read(&path).map_err(|source| crate::Error::Io { path, source })
}
