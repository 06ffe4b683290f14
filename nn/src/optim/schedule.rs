//! Learning-rate schedules as plain functions of the step (or epoch) count t = 0, 1, 2, …;
//! the training loop calls `optimizer.set_learning_rate(schedule.lr_at(t))`.

use serde::{Deserialize, Serialize};

use crate::error::{config_err, Result};

/// A learning rate as a function of the step (or epoch) count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// lr at every t.
    Constant {
        /// The learning rate.
        lr: f64,
    },
    /// Linear annealing from `start` at t = 0 to `end` at t = `steps`, then `end`.
    Linear {
        /// Learning rate at t = 0.
        start: f64,
        /// Learning rate from t = steps on.
        end: f64,
        /// Steps to go from `start` to `end`.
        steps: usize,
    },
    /// lr·γ^⌊t/every⌋ (PyTorch's StepLR).
    Step {
        /// The starting learning rate.
        lr: f64,
        /// Factor applied every `every` steps.
        gamma: f64,
        /// Steps between decays.
        every: usize,
    },
    /// min_lr + (lr − min_lr)·(1 + cos(π·t/steps))/2 for t ≤ steps (PyTorch's
    /// CosineAnnealingLR), then `min_lr` (no restart).
    Cosine {
        /// The starting learning rate.
        lr: f64,
        /// Learning rate from t = steps on.
        min_lr: f64,
        /// Steps to go from `lr` down to `min_lr`.
        steps: usize,
    },
}

impl LrSchedule {
    /// The learning rate at step (or epoch) `t`.
    pub fn lr_at(&self, t: usize) -> f64 {
        match *self {
            LrSchedule::Constant { lr } => lr,
            LrSchedule::Linear { start, end, steps } => {
                if t >= steps {
                    end
                } else {
                    start + (end - start) * t as f64 / steps as f64
                }
            }
            LrSchedule::Step { lr, gamma, every } => {
                let k = t.checked_div(every).unwrap_or(0);
                lr * gamma.powi(k.min(i32::MAX as usize) as i32)
            }
            LrSchedule::Cosine { lr, min_lr, steps } => {
                if t >= steps {
                    min_lr
                } else {
                    let progress = t as f64 / steps as f64;
                    min_lr + (lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
                }
            }
        }
    }

    /// Errors on values that make no schedule: negative rates, a zero period.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            LrSchedule::Constant { lr } => lr >= 0.0,
            LrSchedule::Linear { start, end, .. } => start >= 0.0 && end >= 0.0,
            LrSchedule::Step { lr, gamma, every } => lr >= 0.0 && gamma > 0.0 && every > 0,
            LrSchedule::Cosine { lr, min_lr, steps } => lr >= min_lr && min_lr >= 0.0 && steps > 0,
        };
        if ok {
            Ok(())
        } else {
            config_err("LrSchedule", format!("{self:?} makes no schedule (rates must be ≥ 0, periods > 0)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_anneals_from_start_to_end_then_holds() {
        let s = LrSchedule::Linear { start: 1e-3, end: 1e-4, steps: 10 };
        assert_eq!(s.lr_at(0), 1e-3);
        assert!((s.lr_at(5) - 5.5e-4).abs() < 1e-15);
        assert_eq!(s.lr_at(10), 1e-4);
        assert_eq!(s.lr_at(99), 1e-4);
    }

    #[test]
    fn step_multiplies_by_gamma_every_k() {
        let s = LrSchedule::Step { lr: 1.0, gamma: 0.5, every: 3 };
        let got: Vec<f64> = (0..7).map(|t| s.lr_at(t)).collect();
        assert_eq!(got, vec![1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
    }

    #[test]
    fn cosine_goes_from_lr_through_the_midpoint_to_min() {
        let s = LrSchedule::Cosine { lr: 1.0, min_lr: 0.1, steps: 4 };
        assert_eq!(s.lr_at(0), 1.0);
        assert!((s.lr_at(2) - 0.55).abs() < 1e-15);
        assert!((s.lr_at(4) - 0.1).abs() < 1e-15);
        assert_eq!(s.lr_at(5), 0.1);
    }

    #[test]
    fn a_zero_period_is_rejected_and_never_divides_by_zero() {
        let s = LrSchedule::Step { lr: 1.0, gamma: 0.5, every: 0 };
        assert!(s.validate().is_err());
        assert_eq!(s.lr_at(5), 1.0);
    }
}
