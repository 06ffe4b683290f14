//! The named random streams of a run.
//!
//! Every random choice of training and evaluation draws from a generator derived from the
//! run's `--seed` and the purpose it serves, so that one purpose drawing more or fewer numbers
//! never shifts another's (adding a picture does not change the training curve), and a stream
//! is named where it is used rather than spelled as a magic constant. The salts are the values
//! the project has always used: run folders and the numbers in the docs stay reproducible.

use tensor::Rng;

/// What a generator is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The order of the training images, epoch after epoch (saved in checkpoints).
    TrainingOrder,
    /// ε of the reparameterisation (and input noise) in training steps (saved in checkpoints).
    TrainingNoise,
    /// ε when the loss of a validation or test split is evaluated: the same draws every epoch.
    EvaluationNoise,
    /// Codes drawn from the prior N(0, I) to decode into samples and pictures.
    PriorSamples,
    /// Synthetic inputs of `eval`'s noise section (pure noise, noisy test images).
    NoiseInputs,
    /// The order of the training images of the `classify` binary.
    ClassifierOrder,
}

impl Stream {
    /// Every stream, for the test that they differ.
    pub const ALL: [Stream; 6] = [
        Stream::TrainingOrder,
        Stream::TrainingNoise,
        Stream::EvaluationNoise,
        Stream::PriorSamples,
        Stream::NoiseInputs,
        Stream::ClassifierOrder,
    ];

    /// The generator of this stream for the run seeded with `seed`.
    pub fn rng(self, seed: u64) -> Rng {
        Rng::new(seed ^ self.salt())
    }

    fn salt(self) -> u64 {
        match self {
            Stream::TrainingOrder => 0xDA7A,
            Stream::TrainingNoise => 0x0015E,
            Stream::EvaluationNoise => 0xE7A1,
            Stream::PriorSamples => 0x5A3,
            Stream::NoiseInputs => 0x401,
            Stream::ClassifierOrder => 0xC1A5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_of_one_seed_draw_different_numbers() {
        let mut firsts: Vec<u64> = Stream::ALL.iter().map(|s| s.rng(0).next_u64()).collect();
        firsts.sort_unstable();
        firsts.dedup();
        assert_eq!(firsts.len(), Stream::ALL.len());
    }

    #[test]
    fn a_stream_is_the_same_for_the_same_seed_and_differs_across_seeds() {
        let first = |seed| Stream::TrainingNoise.rng(seed).next_u64();
        assert_eq!(first(3), first(3));
        assert_ne!(first(3), first(4));
    }
}
