//! Independent random draws from each parameter's own distribution.
//!
//! Katib name `random`; setting `random_state` (seed, default: unseeded).
//!
//! ```
//! use kale_search::{Direction, ParameterSpec, SearchSpace, Sampler, sampler::random::RandomSampler};
//!
//! let space = SearchSpace::new(vec![ParameterSpec::double("lr", 1e-4, 1e-1).log()]).unwrap();
//! let mut sampler = RandomSampler::new(Some(7));
//! let params = sampler.ask(&space, &[], Direction::Minimize).unwrap().params().unwrap();
//! let lr = params["lr"].as_f64().unwrap();
//! assert!((1e-4..=1e-1).contains(&lr));
//! ```

use rand::rngs::Xoshiro256PlusPlus;

use super::{Sampler, SamplerError, Suggestion, make_rng};
use crate::space::SearchSpace;
use crate::trial::{Direction, Trial};

pub struct RandomSampler {
    rng: Xoshiro256PlusPlus,
}

impl RandomSampler {
    /// `seed` is Katib's `random_state`.
    pub fn new(seed: Option<u64>) -> Self {
        RandomSampler {
            rng: make_rng(seed),
        }
    }
}

impl Sampler for RandomSampler {
    fn name(&self) -> &'static str {
        "random"
    }

    fn reseed(&mut self, seed: u64) {
        self.rng = make_rng(Some(seed));
    }

    /// Directions do not matter to random search: any number of objectives.
    fn ask_multi(
        &mut self,
        space: &SearchSpace,
        _: &[Trial],
        _: &[Direction],
    ) -> Result<Suggestion, SamplerError> {
        let dims = space.dims();
        // Drawn as values, not coordinates: an int's draw stays an exact integer.
        Ok(Suggestion::Params(
            space
                .parameters()
                .iter()
                .zip(&dims)
                .map(|(p, d)| (p.name.clone(), d.sample_value(&mut self.rng)))
                .collect(),
        ))
    }
}
