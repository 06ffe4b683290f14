//! The pixel normalisations a model sees its inputs through, and their inverses.

use rayon::prelude::*;
use tensor::Tensor;

use super::{invalid, Result};

// normalisation

/// How [0, 1] pixels are mapped before they enter the network (and back for saving pictures).
#[derive(Clone, Debug, PartialEq)]
pub enum Normalization {
    /// x (the loaders' range; what a Bernoulli / BCE decoder expects).
    ZeroOne,
    /// 2x − 1 (for a tanh decoder).
    MinusOneOne,
    /// (x − mean\[c\]) / std\[c\] per channel (Yang and Kobilaski: CIFAR-10's published mean/std).
    MeanStd {
        /// Per-channel mean, one per channel.
        mean: Vec<f32>,
        /// Per-channel standard deviation, one per channel (each > 0).
        std: Vec<f32>,
    },
}

impl Normalization {
    pub(crate) fn check_channels(&self, channels: usize) -> Result<()> {
        if let Normalization::MeanStd { mean, std } = self {
            if mean.len() != channels || std.len() != channels {
                return invalid(
                    "Normalization::MeanStd",
                    format!(
                        "{} means and {} stds for {channels}-channel images; expected {channels} of each",
                        mean.len(),
                        std.len()
                    ),
                );
            }
            if std.iter().any(|s| s.is_nan() || *s <= 0.0) {
                return invalid("Normalization::MeanStd", format!("std {std:?} must be positive"));
            }
        }
        Ok(())
    }

    /// Normalises `x` in place. x: [B, C, H, W] flattened, `channels` = C, `plane` = H·W.
    pub fn apply(&self, x: &mut [f32], channels: usize, plane: usize) -> Result<()> {
        self.map(x, channels, plane, |v, m, s| (v - m) / s)
    }

    /// Undoes [`Normalization::apply`] in place (no clamping).
    pub fn invert(&self, x: &mut [f32], channels: usize, plane: usize) -> Result<()> {
        self.map(x, channels, plane, |v, m, s| v * s + m)
    }

    /// `apply` on a tensor [B, C, H, W]; returns a new f32 tensor.
    pub fn apply_tensor(&self, x: &Tensor) -> Result<Tensor> {
        self.map_tensor(x, Normalization::apply)
    }

    /// `invert` on a tensor [B, C, H, W] (for saving reconstructions as pictures).
    pub fn invert_tensor(&self, x: &Tensor) -> Result<Tensor> {
        self.map_tensor(x, Normalization::invert)
    }

    fn map_tensor(&self, x: &Tensor, f: fn(&Normalization, &mut [f32], usize, usize) -> Result<()>) -> Result<Tensor> {
        let &[_, c, h, w] = x.shape() else {
            return invalid("Normalization", format!("expected a [B, C, H, W] tensor, got shape {:?}", x.shape()));
        };
        let mut v = x.to_vec_f32()?;
        f(self, &mut v, c, h * w)?;
        Ok(Tensor::from_vec(v, x.shape())?)
    }

    /// Every value of channel c becomes f(v, mean[c], std[c]); ZeroOne is the identity and
    /// MinusOneOne is mean 0.5, std 0.5.
    fn map(&self, x: &mut [f32], channels: usize, plane: usize, f: impl Fn(f32, f32, f32) -> f32 + Sync) -> Result<()> {
        self.check_channels(channels)?;
        if channels == 0 || plane == 0 || !x.len().is_multiple_of(channels * plane) {
            return invalid(
                "Normalization",
                format!("{} values are not whole images of {channels} channels × {plane} pixels", x.len()),
            );
        }
        let (mean, std) = match self {
            Normalization::ZeroOne => return Ok(()),
            Normalization::MinusOneOne => (vec![0.5; channels], vec![0.5; channels]),
            Normalization::MeanStd { mean, std } => (mean.clone(), std.clone()),
        };
        // x: [B, C, plane]; chunk k is channel k mod C.
        x.par_chunks_mut(plane).enumerate().for_each(|(k, p)| {
            let (m, s) = (mean[k % channels], std[k % channels]);
            p.iter_mut().for_each(|v| *v = f(*v, m, s));
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::toy;
    use crate::data::{DataError, Dataset};

    #[test]
    fn normalizations_invert_and_mean_std_standardises() {
        let ds = toy(10);
        let (mean, std) = ds.per_channel_mean_std();
        assert_eq!(mean.len(), 2);
        // Channel 0 of image i holds i + {0..5}/12: mean over i and k is 4.5 + 2.5/12.
        assert!((mean[0] - (4.5 + 2.5 / 12.0)).abs() < 1e-5, "{mean:?}");
        let norm = Normalization::MeanStd { mean, std };
        let mut x = ds.images.clone();
        norm.apply(&mut x, 2, 6).unwrap();
        let z = Dataset { images: x.clone(), ..ds.clone() };
        let (m, s) = z.per_channel_mean_std();
        assert!(m.iter().all(|v| v.abs() < 1e-4) && s.iter().all(|v| (v - 1.0).abs() < 1e-4), "{m:?} {s:?}");
        norm.invert(&mut x, 2, 6).unwrap();
        assert!(x.iter().zip(&ds.images).all(|(a, b)| (a - b).abs() < 1e-4));

        let t = Tensor::from_vec(vec![0.0f32, 0.25, 1.0, 0.5], &[1, 1, 2, 2]).unwrap();
        let m = Normalization::MinusOneOne.apply_tensor(&t).unwrap();
        assert_eq!(m.to_vec_f32().unwrap(), vec![-1.0, -0.5, 1.0, 0.0]);
        assert_eq!(
            Normalization::MinusOneOne.invert_tensor(&m).unwrap().to_vec_f32().unwrap(),
            t.to_vec_f32().unwrap()
        );
        assert_eq!(Normalization::ZeroOne.apply_tensor(&t).unwrap().to_vec_f32().unwrap(), t.to_vec_f32().unwrap());
        let wrong = Normalization::MeanStd { mean: vec![0.5; 3], std: vec![0.2; 3] };
        assert!(matches!(wrong.apply_tensor(&t), Err(DataError::Invalid { .. })));
    }
}
