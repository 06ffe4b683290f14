//! Kernel choices by measurement, cached per adapter. Tier: GPU (tooling for the launchers).
//!
//! Some choices have no rule that holds on every device. Whether a GEMM runs on the 64×64 or
//! the 128×128 tile depends on how many workgroups the device keeps in flight, on its
//! workgroup memory and on its compiler: the size rule in [`GemmTile::for_gemm`] was set on an
//! H100, and on lavapipe the 128×128 tile is twice as fast at 256³, where the rule picks the
//! 64×64 one. A context with tuning on ([`Context::enable_tuning`]) instead times both tiles
//! the first time a *shape class* needs a choice and keeps the faster, so a device nobody tuned
//! for gets the kernels that are fast on it.
//!
//! - Shape class: whether M spans more than one square tile, and ⌊log₂⌋ of the number of
//!   square tiles the output makes (batch entries included), capped at 2¹². A class is timed
//!   on a proxy product of its size, its K cut so that a candidate run is at most 2²⁸ flops
//!   (about a quarter of a second on lavapipe, microseconds on a real GPU): a warm-up run
//!   (which builds the pipeline), then the median of three.
//! - Cache: one line per choice, `adapter key <TAB> class <TAB> tile`, in the file the caller
//!   names (`train --tune-kernels` uses `~/.cache/vae-stack/kernel-choices.tsv`). The adapter
//!   key is the adapter's name, backend, driver and driver version, so a driver update or
//!   another GPU measures anew. The file is rewritten whole through a temporary file and a
//!   rename (a reader never sees half of it); lines of other adapters are kept; a line that
//!   does not parse is ignored with one warning, and the cache is then rewritten without it.
//! - Overrides: [`Context::with_gemm_tile`] and [`Context::pin_gemm_tile`] (`train
//!   --gemm-tile`) pin one tile for every launch (tests and the benchmarks pin theirs this
//!   way); a context without tuning keeps the size rule. Each measurement prints a `tuning:`
//!   line; a run whose classes are all in the cache prints none.
//!
//! Same machine and same choices give the same launches, so the same bits. The choices made
//! are listed by [`Tuner::choices`] for a run's provenance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::Result;
use crate::kernels::matmul::{matmul_on_rung, MatView, MatmulArgs};
use crate::kernels::GemmTile;

/// The largest class: 2¹² square tiles (a 4096×4096 output) and beyond.
const MAX_CLASS_LOG2: u32 = 12;
/// The most flops one timed candidate run may take.
const PROXY_MAX_FLOPS: usize = 1 << 28;

/// A context's measured choices, and the file that keeps them between runs.
pub struct Tuner {
    /// The cache file; `None` measures without keeping the choices.
    cache: Option<PathBuf>,
    /// Names the adapter and driver the choices were measured on.
    adapter_key: String,
    /// Class → chosen tile, for this adapter.
    choices: Mutex<BTreeMap<String, GemmTile>>,
}

impl Tuner {
    /// A tuner for the adapter `adapter_key`, with the choices `cache` holds for it (a missing
    /// file holds none).
    pub fn new(adapter_key: String, cache: Option<PathBuf>) -> Tuner {
        let choices = cache.as_deref().map(|path| read_choices(path, &adapter_key)).unwrap_or_default();
        Tuner { cache, adapter_key, choices: Mutex::new(choices) }
    }

    /// The tile for `layers` GEMMs of [m, n] outputs: the cached choice for their class, or
    /// the faster of the two as `time` measures them (then cached).
    pub fn gemm_tile(
        &self,
        m: usize,
        n: usize,
        layers: usize,
        time: impl Fn(GemmTile) -> Result<Duration>,
    ) -> Result<GemmTile> {
        let class = shape_class(m, n, layers);
        let mut choices = self.choices.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&tile) = choices.get(&class) {
            return Ok(tile);
        }
        println!("tuning: timing the GEMM tiles for shape class {class} (first use on this adapter)");
        let square = time(GemmTile::Square64)?;
        let wide = time(GemmTile::Wide128)?;
        let tile = if wide < square { GemmTile::Wide128 } else { GemmTile::Square64 };
        choices.insert(class, tile);
        if let Some(path) = &self.cache {
            if let Err(e) = write_choices(path, &self.adapter_key, &choices) {
                eprintln!("warning: could not keep the kernel choices in {}: {e}", path.display());
            }
        }
        Ok(tile)
    }

    /// The choices made or read so far: (class, tile name), in class order.
    pub fn choices(&self) -> Vec<(String, &'static str)> {
        let choices = self.choices.lock().unwrap_or_else(|e| e.into_inner());
        choices.iter().map(|(class, tile)| (class.clone(), tile_name(*tile))).collect()
    }
}

/// The class of `layers` GEMMs of [m, n] outputs, as the cache names it: `m>64/t2^5` for a tall
/// output of 32 to 63 square tiles.
pub fn shape_class(m: usize, n: usize, layers: usize) -> String {
    let tiles = layers.max(1) * m.div_ceil(64).max(1) * n.div_ceil(64).max(1);
    let log2 = tiles.ilog2().min(MAX_CLASS_LOG2);
    format!("{}/t2^{log2}", if m > 64 { "m>64" } else { "m<=64" })
}

/// How long `tile` takes on the proxy product of the class of (m, n, layers) on `ctx`: one
/// warm-up run, then the median of three.
pub fn time_gemm_tile(ctx: &Context, m: usize, n: usize, layers: usize, tile: GemmTile) -> Result<Duration> {
    let tiles = layers.max(1) * m.div_ceil(64).max(1) * n.div_ceil(64).max(1);
    let tiles = 1usize << tiles.ilog2().min(MAX_CLASS_LOG2);
    // A proxy with the class's number of square tiles: as tall as the class says M is.
    let rows = if m > 64 { 1usize << (tiles.ilog2().div_ceil(2)) } else { 1 };
    let (pm, pn) = ((rows * 64).min(m.max(1) * 2), tiles.div_ceil(rows) * 64);
    let pk = (PROXY_MAX_FLOPS / (2 * pm * pn)).clamp(8, 256);
    let a = ctx.alloc(pm * pk)?;
    let b = ctx.alloc(pk * pn)?;
    let c = ctx.alloc(pm * pn)?;
    let (av, bv) = (MatView::row_major(&a, pm, pk), MatView::row_major(&b, pk, pn));
    let args = MatmulArgs::new(av, bv, &c, [pm, pn, pk]);
    ctx.synchronize()?;
    let mut runs = Vec::with_capacity(4);
    for _ in 0..4 {
        let start = Instant::now();
        matmul_on_rung(ctx, &args, tile.into())?;
        ctx.synchronize()?;
        runs.push(start.elapsed());
    }
    let mut timed = runs.split_off(1);
    timed.sort();
    Ok(timed[1])
}

/// The tile's name in the cache and in a run's provenance (`square64`, `wide128`).
pub fn tile_name(tile: GemmTile) -> &'static str {
    match tile {
        GemmTile::Square64 => "square64",
        GemmTile::Wide128 => "wide128",
    }
}

/// The tile a name of [`tile_name`] names.
pub fn tile_from_name(name: &str) -> Option<GemmTile> {
    match name {
        "square64" => Some(GemmTile::Square64),
        "wide128" => Some(GemmTile::Wide128),
        _ => None,
    }
}

/// The choices `path` holds for `adapter_key`; lines that do not parse are ignored, with a
/// warning naming the file and the first of them.
fn read_choices(path: &Path, adapter_key: &str) -> BTreeMap<String, GemmTile> {
    let Ok(text) = std::fs::read_to_string(path) else { return BTreeMap::new() };
    let mut choices = BTreeMap::new();
    let (mut bad, mut others) = (Vec::new(), 0);
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match line.split('\t').collect::<Vec<_>>()[..] {
            [key, class, tile] => match tile_from_name(tile) {
                Some(tile) if key == adapter_key => {
                    choices.insert(class.to_string(), tile);
                }
                Some(_) => others += 1,
                None => bad.push(n + 1),
            },
            _ => bad.push(n + 1),
        }
    }
    if let Some(first) = bad.first() {
        eprintln!(
            "warning: ignoring {} unreadable line(s) of the kernel-choice cache {} (the first: line {first}); \
             the choices they held will be measured again",
            bad.len(),
            path.display()
        );
    }
    if choices.is_empty() && others > 0 {
        eprintln!(
            "warning: the kernel-choice cache {} holds {others} choice(s) measured on other adapters or drivers, \
             none for this one ({adapter_key}): they are not used here, and this adapter's are measured anew",
            path.display()
        );
    }
    choices
}

/// Rewrites `path` with `choices` for `adapter_key` and every readable line of other
/// adapters, through a temporary file renamed over it.
fn write_choices(path: &Path, adapter_key: &str, choices: &BTreeMap<String, GemmTile>) -> std::io::Result<()> {
    let others: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| matches!(line.split('\t').collect::<Vec<_>>()[..], [key, _, tile] if key != adapter_key && tile_from_name(tile).is_some()))
        .map(str::to_string)
        .collect();
    let mut text = others.join("\n");
    for (class, tile) in choices {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{adapter_key}\t{class}\t{}", tile_name(*tile)));
    }
    text.push('\n');
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tsv.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn fake(square_ms: u64, wide_ms: u64) -> impl Fn(GemmTile) -> Result<Duration> {
        move |tile| {
            Ok(Duration::from_millis(match tile {
                GemmTile::Square64 => square_ms,
                GemmTile::Wide128 => wide_ms,
            }))
        }
    }

    #[test]
    fn the_faster_tile_is_chosen_per_shape_class() {
        let tuner = Tuner::new("gpu A".into(), None);
        assert_eq!(tuner.gemm_tile(256, 256, 1, fake(2, 1)).unwrap(), GemmTile::Wide128);
        assert_eq!(tuner.gemm_tile(4096, 4096, 1, fake(1, 2)).unwrap(), GemmTile::Square64);
        // Same class as the first (16 square tiles, tall): no new measurement.
        assert_eq!(tuner.gemm_tile(250, 250, 1, |_| panic!("measured twice")).unwrap(), GemmTile::Wide128);
        assert_eq!(tuner.choices().len(), 2);
    }

    #[test]
    fn choices_are_kept_in_the_cache_and_read_back_without_measuring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("choices.tsv");
        let first = Tuner::new("gpu A".into(), Some(path.clone()));
        first.gemm_tile(256, 256, 1, fake(2, 1)).unwrap();
        let again = Tuner::new("gpu A".into(), Some(path.clone()));
        assert_eq!(again.gemm_tile(256, 256, 1, |_| panic!("measured again")).unwrap(), GemmTile::Wide128);
        assert!(!dir.path().join("choices.tsv.tmp").exists());
    }

    #[test]
    fn another_adapter_or_driver_measures_anew_and_keeps_the_first_ones_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("choices.tsv");
        Tuner::new("gpu A".into(), Some(path.clone())).gemm_tile(64, 64, 1, fake(2, 1)).unwrap();
        let measured = Cell::new(0);
        let b = Tuner::new("gpu A, driver 2".into(), Some(path.clone()));
        b.gemm_tile(64, 64, 1, |t| {
            measured.set(measured.get() + 1);
            fake(1, 2)(t)
        })
        .unwrap();
        assert_eq!(measured.get(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("gpu A\tm<=64/t2^0\twide128"), "{text}");
        assert!(text.contains("gpu A, driver 2\tm<=64/t2^0\tsquare64"), "{text}");
    }

    #[test]
    fn an_unreadable_cache_line_is_ignored_and_dropped_on_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("choices.tsv");
        std::fs::write(&path, "gpu A\tm>64/t2^4\twide128\ngarbage\ngpu A\tm>64/t2^5\ttriangle64\n").unwrap();
        let tuner = Tuner::new("gpu A".into(), Some(path.clone()));
        assert_eq!(tuner.choices(), vec![("m>64/t2^4".to_string(), "wide128")]);
        tuner.gemm_tile(64, 64, 1, fake(1, 2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "gpu A\tm<=64/t2^0\tsquare64\ngpu A\tm>64/t2^4\twide128\n");
    }

    #[test]
    fn shape_classes_group_outputs_by_their_number_of_square_tiles() {
        assert_eq!(shape_class(64, 64, 1), "m<=64/t2^0");
        assert_eq!(shape_class(256, 256, 1), "m>64/t2^4");
        assert_eq!(shape_class(250, 250, 1), "m>64/t2^4");
        assert_eq!(shape_class(32, 4096, 3), "m<=64/t2^7");
        assert_eq!(shape_class(1 << 14, 1 << 14, 1), "m>64/t2^12");
    }
}
