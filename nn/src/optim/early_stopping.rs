//! Early stopping on a validation metric: stop once the metric has not improved by more
//! than `min_delta` for `patience` consecutive epochs, and say each epoch whether the value
//! was the best so far (to keep the best checkpoint).

use serde::{Deserialize, Serialize};

/// Whether a metric improves by going down or up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricGoal {
    /// Lower is better (a loss).
    Minimize,
    /// Higher is better (an accuracy).
    Maximize,
}

/// What `EarlyStopping::update` concluded from one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyStoppingDecision {
    /// The value is strictly better than every earlier one.
    pub is_best: bool,
    /// The value beat the best by more than min_delta (this resets the patience count).
    pub improved: bool,
    /// Epochs in a row without such an improvement, this one included.
    pub epochs_without_improvement: usize,
    /// The patience is used up: stop training.
    pub should_stop: bool,
}

/// Serializable, so a resumed run continues counting where it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without improvement tolerated before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement (non-negative).
    pub min_delta: f64,
    /// Whether lower or higher is better.
    pub goal: MetricGoal,
    /// The best value seen.
    pub best: Option<f64>,
    /// The value at the last improvement by more than min_delta (what patience is measured against).
    reference: Option<f64>,
    epochs_without_improvement: usize,
}

impl EarlyStopping {
    /// Early stopping with no value seen yet; `min_delta` is taken as its absolute value.
    pub fn new(patience: usize, min_delta: f64, goal: MetricGoal) -> EarlyStopping {
        EarlyStopping {
            patience,
            min_delta: min_delta.abs(),
            goal,
            best: None,
            reference: None,
            epochs_without_improvement: 0,
        }
    }

    /// `a` is better than `b` by more than `margin`.
    fn better(&self, a: f64, b: f64, margin: f64) -> bool {
        match self.goal {
            MetricGoal::Minimize => a < b - margin,
            MetricGoal::Maximize => a > b + margin,
        }
    }

    /// Records one epoch's value. A NaN is never an improvement.
    pub fn update(&mut self, value: f64) -> EarlyStoppingDecision {
        let is_best = !value.is_nan() && self.best.is_none_or(|b| self.better(value, b, 0.0));
        if is_best {
            self.best = Some(value);
        }
        let improved = !value.is_nan() && self.reference.is_none_or(|r| self.better(value, r, self.min_delta));
        if improved {
            self.reference = Some(value);
            self.epochs_without_improvement = 0;
        } else {
            self.epochs_without_improvement += 1;
        }
        EarlyStoppingDecision {
            is_best,
            improved,
            epochs_without_improvement: self.epochs_without_improvement,
            should_stop: self.epochs_without_improvement >= self.patience,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let mut es = EarlyStopping::new(2, 0.0, MetricGoal::Minimize);
        let stops: Vec<bool> = [3.0, 2.0, 2.5, 2.1, 2.2].iter().map(|&v| es.update(v).should_stop).collect();
        assert_eq!(stops, vec![false, false, false, true, true]);
    }

    #[test]
    fn a_gain_smaller_than_min_delta_is_best_but_not_an_improvement() {
        let mut es = EarlyStopping::new(5, 0.1, MetricGoal::Minimize);
        es.update(1.0);
        let d = es.update(0.95);
        assert!(d.is_best && !d.improved && d.epochs_without_improvement == 1, "{d:?}");
        let d = es.update(0.85);
        assert!(d.is_best && d.improved && d.epochs_without_improvement == 0, "{d:?}");
    }

    #[test]
    fn maximize_counts_higher_values_as_better() {
        let mut es = EarlyStopping::new(1, 0.0, MetricGoal::Maximize);
        assert!(es.update(0.5).is_best);
        assert!(es.update(0.7).is_best);
        let d = es.update(0.6);
        assert!(!d.is_best && d.should_stop, "{d:?}");
    }

    #[test]
    fn nan_is_never_best() {
        let mut es = EarlyStopping::new(3, 0.0, MetricGoal::Minimize);
        es.update(1.0);
        assert!(!es.update(f64::NAN).is_best);
    }
}
