//! dSprites (Matthey et al. 2017), generated procedurally: 64×64 binary images of a square,
//! an ellipse or a heart over the original factor grid — shape (3) × scale (6, linspace
//! 0.5..1) × orientation (40, linspace 0..2π) × posX (32, linspace 0..1) × posY (32) =
//! 737,280 images (the original's colour factor has a single value and is left out).
//!
//! A pixel is on when its centre lies inside the shape: the centre is moved into the shape's
//! frame (translate to the shape's centre, rotate by −orientation, divide by the scale) and
//! tested against the shape's analytic outline. At scale 1 the square is 18 px wide; shape
//! centres span pixels 13..51, so even a square rotated by 45° (half-diagonal 12.7 px) stays
//! inside the frame.
//!
//! The full grid is 12 GB as f32, so [`generate`] renders a seeded random subset; [`render`]
//! draws any single combination on demand (for disentanglement metrics).

use rayon::prelude::*;
use tensor::{Rng, Tensor};

use super::{Dataset, Result};

/// Image side in pixels (images are `[1, 64, 64]`, values 0 or 1).
pub const SIDE: usize = 64;
/// Names of the five ground-truth factors, in factor-index order.
pub const FACTOR_NAMES: [&str; 5] = ["shape", "scale", "orientation", "pos_x", "pos_y"];
/// Number of values of each factor (the size of the factor grid along each axis).
pub const FACTOR_SIZES: [usize; 5] = [3, 6, 40, 32, 32];
/// Size of the full factor grid: 3·6·40·32·32 = 737,280 images.
pub const NUM_IMAGES: usize = 3 * 6 * 40 * 32 * 32;
/// Names of the shapes, indexed by the shape factor.
pub const SHAPE_NAMES: [&str; 3] = ["square", "ellipse", "heart"];
/// How many images [`super::load`] generates when no `max_images` is given (1.6 GB as f32).
pub const DEFAULT_SUBSET: usize = 100_000;

/// Half the side of the square at scale 1, in pixels.
const SQUARE_HALF: f32 = 9.0;
/// Semi-axes of the ellipse at scale 1 (long axis along x at orientation 0).
const ELLIPSE_A: f32 = 10.0;
const ELLIPSE_B: f32 = 5.0;
/// The heart curve (x² + y² − 1)³ = x²y³ spans y ∈ [−1, 1.24]; pixels per heart unit at
/// scale 1, and the offset that puts its bounding box's centre on the shape centre.
const HEART_UNIT: f32 = 8.0;
const HEART_Y_MID: f32 = 0.118;
/// Shape centres run from CENTER_LO to CENTER_HI pixels as the position goes from 0 to 1.
const CENTER_LO: f32 = 13.0;
const CENTER_HI: f32 = 51.0;
/// No shape reaches farther than this from its centre (the rotated square's half-diagonal).
const MAX_RADIUS: f32 = 12.75;

/// The i-th of `n` evenly spaced values from lo to hi, both included (NumPy's linspace).
fn linspace(lo: f32, hi: f32, n: usize, i: u16) -> f32 {
    lo + (hi - lo) * i as f32 / (n - 1) as f32
}

/// The real values behind a factor-index tuple.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FactorValues {
    /// 0 square, 1 ellipse, 2 heart.
    pub shape: u16,
    /// Scale, in 0.5..=1 (1: the square is 18 px wide).
    pub scale: f32,
    /// Radians.
    pub orientation: f32,
    /// Horizontal position in 0..=1 (shape centre from pixel 13 to 51).
    pub pos_x: f32,
    /// Vertical position in 0..=1 (shape centre from pixel 13 to 51).
    pub pos_y: f32,
}

/// Factor indices `[shape, scale, orientation, pos_x, pos_y]` → their values.
pub fn factor_values(f: [u16; 5]) -> FactorValues {
    FactorValues {
        shape: f[0],
        scale: linspace(0.5, 1.0, 6, f[1]),
        orientation: linspace(0.0, 2.0 * std::f32::consts::PI, 40, f[2]),
        pos_x: linspace(0.0, 1.0, 32, f[3]),
        pos_y: linspace(0.0, 1.0, 32, f[4]),
    }
}

/// The position of a combination in the original file's order (pos_y fastest).
pub fn factors_to_index(f: [u16; 5]) -> usize {
    f.iter().zip(FACTOR_SIZES).fold(0, |acc, (&v, n)| acc * n + v as usize)
}

/// Inverse of [`factors_to_index`].
pub fn index_to_factors(mut i: usize) -> [u16; 5] {
    let mut f = [0u16; 5];
    for k in (0..5).rev() {
        f[k] = (i % FACTOR_SIZES[k]) as u16;
        i /= FACTOR_SIZES[k];
    }
    f
}

/// One combination drawn uniformly from the grid.
pub fn sample_factors(rng: &mut Rng) -> [u16; 5] {
    index_to_factors(rng.below(NUM_IMAGES))
}

/// Whether the point (u, v) of the shape's own frame (pixels at scale 1, v pointing down the
/// image, origin at the shape centre) is inside the shape.
fn inside(shape: u16, u: f32, v: f32) -> bool {
    match shape {
        0 => u.abs() <= SQUARE_HALF && v.abs() <= SQUARE_HALF,
        1 => (u / ELLIPSE_A).powi(2) + (v / ELLIPSE_B).powi(2) <= 1.0,
        _ => {
            // The heart curve has y up and its tip at y = −1: flip v so the tip points down.
            let x = u / HEART_UNIT;
            let y = -v / HEART_UNIT + HEART_Y_MID;
            let r = x * x + y * y - 1.0;
            r * r * r - x * x * y * y * y <= 0.0
        }
    }
}

/// Draws combination `f` into `out` (64·64 values, row-major, 0 or 1).
pub fn render_into(f: [u16; 5], out: &mut [f32]) {
    let fv = factor_values(f);
    let cx = CENTER_LO + (CENTER_HI - CENTER_LO) * fv.pos_x;
    let cy = CENTER_LO + (CENTER_HI - CENTER_LO) * fv.pos_y;
    let (sin, cos) = fv.orientation.sin_cos();
    out.fill(0.0);
    // Only pixels within the shape's largest radius can be on.
    let reach = MAX_RADIUS * fv.scale + 1.0;
    let lo = |c: f32| (c - reach).floor().max(0.0) as usize;
    let hi = |c: f32| ((c + reach).ceil() as usize).min(SIDE);
    for y in lo(cy)..hi(cy) {
        for x in lo(cx)..hi(cx) {
            // Pixel centre relative to the shape centre, rotated by −θ, unscaled.
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let u = (cos * dx + sin * dy) / fv.scale;
            let v = (-sin * dx + cos * dy) / fv.scale;
            if inside(fv.shape, u, v) {
                out[y * SIDE + x] = 1.0;
            }
        }
    }
}

/// Combination `f` as a 64×64 image (row-major, 0 or 1).
pub fn render(f: [u16; 5]) -> Vec<f32> {
    let mut out = vec![0.0; SIDE * SIDE];
    render_into(f, &mut out);
    out
}

/// Renders many combinations in parallel: a tensor [B, 1, 64, 64].
pub fn render_batch(factors: &[[u16; 5]]) -> Result<Tensor> {
    let mut out = vec![0.0f32; factors.len() * SIDE * SIDE];
    out.par_chunks_mut(SIDE * SIDE).zip(factors.par_iter()).for_each(|(img, &f)| render_into(f, img));
    Ok(Tensor::from_vec(out, &[factors.len(), 1, SIDE, SIDE])?)
}

/// `n` distinct combinations (n ≤ 737,280; larger n is capped) drawn uniformly without
/// replacement from the grid with `seed`, rendered into a dataset [n, 1, 64, 64] with their
/// factor indices, and the shape as the class label.
pub fn generate(n: usize, seed: u64) -> Dataset {
    let n = n.min(NUM_IMAGES);
    // A partial Fisher–Yates shuffle of all grid indices: the first n are the sample.
    let mut rng = Rng::new(seed);
    let mut grid: Vec<u32> = (0..NUM_IMAGES as u32).collect();
    for i in 0..n {
        let j = i + rng.below(NUM_IMAGES - i);
        grid.swap(i, j);
    }
    let factors: Vec<[u16; 5]> = grid[..n].iter().map(|&i| index_to_factors(i as usize)).collect();
    let mut images = vec![0.0f32; n * SIDE * SIDE];
    images.par_chunks_mut(SIDE * SIDE).zip(factors.par_iter()).for_each(|(img, &f)| render_into(f, img));
    Dataset {
        name: "dsprites".into(),
        shape: [n, 1, SIDE, SIDE],
        images,
        labels: Some(factors.iter().map(|f| f[0] as u32).collect()),
        class_names: SHAPE_NAMES.iter().map(|s| s.to_string()).collect(),
        factors: Some(factors),
        skipped: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(img: &[f32]) -> f32 {
        img.iter().sum()
    }

    /// (mean x, mean y) of the lit pixels' centres.
    fn centroid(img: &[f32]) -> (f32, f32) {
        let (mut sx, mut sy) = (0.0, 0.0);
        for (i, &v) in img.iter().enumerate() {
            sx += v * ((i % SIDE) as f32 + 0.5);
            sy += v * ((i / SIDE) as f32 + 0.5);
        }
        (sx / area(img), sy / area(img))
    }

    #[test]
    fn dsprites_same_seed_gives_same_images_and_factors() {
        let (a, b) = (generate(300, 5), generate(300, 5));
        assert_eq!(a.factors, b.factors);
        assert_eq!(a.images, b.images);
        assert_ne!(generate(300, 6).factors, a.factors);
        assert_eq!(a.shape, [300, 1, 64, 64]);
        assert!(a.images.iter().all(|&v| v == 0.0 || v == 1.0));
    }

    #[test]
    fn dsprites_factors_are_in_range_distinct_and_match_their_images() {
        let ds = generate(2000, 1);
        let f = ds.factors.as_ref().unwrap();
        for fi in f {
            assert!(fi.iter().zip(FACTOR_SIZES).all(|(&v, n)| (v as usize) < n), "{fi:?}");
        }
        let distinct: std::collections::HashSet<_> = f.iter().collect();
        assert_eq!(distinct.len(), f.len());
        // Every value of every factor shows up in 2000 uniform draws.
        for k in 0..5 {
            let seen: std::collections::HashSet<u16> = f.iter().map(|fi| fi[k]).collect();
            assert_eq!(seen.len(), FACTOR_SIZES[k], "factor {}", FACTOR_NAMES[k]);
        }
        assert_eq!(ds.image(7), &render(f[7])[..]);
        assert_eq!(ds.labels.as_ref().unwrap()[7], f[7][0] as u32);
    }

    #[test]
    fn dsprites_index_round_trips_in_the_original_order() {
        assert_eq!(NUM_IMAGES, 737_280);
        assert_eq!(index_to_factors(0), [0, 0, 0, 0, 0]);
        assert_eq!(index_to_factors(1), [0, 0, 0, 0, 1]);
        assert_eq!(index_to_factors(32), [0, 0, 0, 1, 0]);
        assert_eq!(index_to_factors(NUM_IMAGES - 1), [2, 5, 39, 31, 31]);
        for i in [0, 1, 12345, 400_000, NUM_IMAGES - 1] {
            assert_eq!(factors_to_index(index_to_factors(i)), i);
        }
        let v = factor_values([1, 5, 39, 31, 0]);
        assert_eq!((v.scale, v.pos_x, v.pos_y), (1.0, 1.0, 0.0));
        assert!((v.orientation - 2.0 * std::f32::consts::PI).abs() < 1e-6);
    }

    #[test]
    fn dsprites_shapes_differ() {
        let masks: Vec<Vec<f32>> = (0..3).map(|s| render([s, 5, 0, 16, 16])).collect();
        for a in 0..3 {
            for b in a + 1..3 {
                let diff = masks[a].iter().zip(&masks[b]).filter(|(x, y)| x != y).count();
                assert!(diff > 20, "{} vs {}: {diff} pixels differ", SHAPE_NAMES[a], SHAPE_NAMES[b]);
            }
        }
        // Square at scale 1 is 18×18 px.
        assert_eq!(area(&masks[0]), 324.0);
        // The heart's tip points down: more of it lies above its centroid's row... its lobes
        // are at the top, so the top rows are wider than the bottom rows.
        let heart = &masks[2];
        let rows: Vec<f32> = (0..SIDE).map(|y| area(&heart[y * SIDE..(y + 1) * SIDE])).collect();
        let lit: Vec<usize> = (0..SIDE).filter(|&y| rows[y] > 0.0).collect();
        let (top, bottom) = (lit[0], *lit.last().unwrap());
        assert!(rows[top + 2] > rows[bottom - 2], "rows {top}..{bottom}: {rows:?}");
    }

    #[test]
    fn dsprites_position_moves_the_centroid_and_scale_grows_the_area() {
        for shape in 0..3 {
            let left = centroid(&render([shape, 3, 5, 0, 10]));
            let right = centroid(&render([shape, 3, 5, 31, 10]));
            assert!(right.0 - left.0 > 35.0 && (right.1 - left.1).abs() < 0.5, "{left:?} {right:?}");
            let up = centroid(&render([shape, 3, 5, 10, 0]));
            let down = centroid(&render([shape, 3, 5, 10, 31]));
            assert!(down.1 - up.1 > 35.0, "{up:?} {down:?}");
            let areas: Vec<f32> = (0..6).map(|s| area(&render([shape, s, 0, 16, 16]))).collect();
            assert!(areas.windows(2).all(|w| w[1] > w[0]), "{} areas {areas:?}", SHAPE_NAMES[shape as usize]);
            // Orientation turns the shape but keeps its area (within the pixel grid's error).
            let turned = area(&render([shape, 5, 7, 16, 16]));
            assert!((turned - areas[5]).abs() / areas[5] < 0.05, "{turned} vs {}", areas[5]);
        }
    }

    #[test]
    fn dsprites_shapes_always_stay_inside_the_frame() {
        for shape in 0..3 {
            for orient in 0..40 {
                for (px, py) in [(0, 0), (31, 31), (0, 31), (31, 0)] {
                    let img = render([shape, 5, orient, px, py]);
                    let border = (0..SIDE)
                        .any(|i| img[i] + img[(SIDE - 1) * SIDE + i] + img[i * SIDE] + img[i * SIDE + SIDE - 1] > 0.0);
                    assert!(!border, "shape {shape} orientation {orient} at ({px}, {py}) touches the border");
                }
            }
        }
    }

    #[test]
    fn dsprites_render_batch_matches_render() {
        let f = [[0, 0, 0, 0, 0], [2, 5, 39, 31, 31]];
        let t = render_batch(&f).unwrap();
        assert_eq!(t.shape(), &[2, 1, 64, 64]);
        let v = t.to_vec_f32().unwrap();
        assert_eq!(&v[4096..], &render(f[1])[..]);
    }
}
