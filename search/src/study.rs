//! An in-memory ask/tell loop, for tests, benchmarks and library users who do not
//! need persistence (`kale tune` keeps its own store and calls samplers directly).
//!
//! Several objectives and constraints:
//!
//! ```
//! use kale_search::{Direction, ParameterSpec, SearchSpace, Study};
//! use kale_search::sampler::multi_auto::multi_objective_sampler;
//! use kale_search::katib::AlgorithmSetting;
//!
//! let space = SearchSpace::new(vec![ParameterSpec::double("x", 0.0, 1.0)]).unwrap();
//! let sampler = multi_objective_sampler("nsga2", &[AlgorithmSetting::new("random_state", 3)]).unwrap();
//! let mut study = Study::multi(space, sampler, vec![Direction::Minimize, Direction::Minimize]);
//! for _ in 0..60 {
//!     let (id, p) = study.ask().unwrap().unwrap();
//!     let x = p["x"].as_f64().unwrap();
//!     // Two objectives, and the constraint x >= 0.2 written as 0.2 - x <= 0.
//!     study.tell_constrained(id, &[x * x, (x - 1.0).powi(2)], vec![0.2 - x]).unwrap();
//! }
//! let front = study.best_trials();
//! assert!(front.iter().all(|t| t.params["x"].as_f64().unwrap() >= 0.2));
//! assert!(study.hypervolume(&[1.0, 1.0]) > 0.3);
//! ```

use crate::sampler::{Sampler, SamplerError, Suggestion};
use crate::space::{Params, SearchSpace};
use crate::stopping::StoppingRule;
use crate::trial::{Direction, Trial, TrialState};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StudyError {
    #[error("no trial number {0}")]
    UnknownTrial(u64),
    #[error("trial {0} is already finished")]
    Finished(u64),
    #[error("trial {number}: {got} objective values for a study with {expected} objectives")]
    WrongNumberOfValues {
        number: u64,
        expected: usize,
        got: usize,
    },
}

pub struct Study {
    space: SearchSpace,
    sampler: Box<dyn Sampler>,
    /// One per objective; a single-objective study has one.
    directions: Vec<Direction>,
    stopping: Option<Box<dyn StoppingRule>>,
    trials: Vec<Trial>,
}

impl Study {
    pub fn new(space: SearchSpace, sampler: Box<dyn Sampler>, direction: Direction) -> Self {
        Self::multi(space, sampler, vec![direction])
    }

    /// A study with one objective per direction (values are told with
    /// [`Study::tell_values`]). One direction gives the same study as [`Study::new`].
    pub fn multi(
        space: SearchSpace,
        sampler: Box<dyn Sampler>,
        directions: Vec<Direction>,
    ) -> Self {
        assert!(
            !directions.is_empty(),
            "a study needs at least one objective"
        );
        Study {
            space,
            sampler,
            directions,
            stopping: None,
            trials: Vec::new(),
        }
    }

    pub fn with_stopping(mut self, rule: Box<dyn StoppingRule>) -> Self {
        self.stopping = Some(rule);
        self
    }

    /// Starts a trial: its number and parameters, or `None` when the sampler has
    /// exhausted the space.
    pub fn ask(&mut self) -> Result<Option<(u64, Params)>, SamplerError> {
        let suggestion = match self.directions.as_slice() {
            [d] => self.sampler.ask(&self.space, &self.trials, *d)?,
            ds => self.sampler.ask_multi(&self.space, &self.trials, ds)?,
        };
        match suggestion {
            Suggestion::Exhausted => Ok(None),
            Suggestion::Params(p) => {
                let number = self.trials.len() as u64;
                self.trials.push(Trial::running(number, p.clone()));
                Ok(Some((number, p)))
            }
        }
    }

    /// Completes a trial with its objective value (a NaN value marks it failed).
    pub fn tell(&mut self, number: u64, value: f64) -> Result<(), StudyError> {
        let state = if value.is_nan() {
            TrialState::Failed
        } else {
            TrialState::Complete
        };
        self.finish(number, state, Some(value))
    }

    /// Completes a trial with one value per objective (any NaN marks it failed).
    pub fn tell_values(&mut self, number: u64, values: &[f64]) -> Result<(), StudyError> {
        self.tell_constrained(number, values, Vec::new())
    }

    /// Completes a trial with its objective values and constraint values
    /// (`c <= 0` satisfied; see [`Trial::is_feasible`]).
    pub fn tell_constrained(
        &mut self,
        number: u64,
        values: &[f64],
        constraints: Vec<f64>,
    ) -> Result<(), StudyError> {
        if values.len() != self.directions.len() {
            return Err(StudyError::WrongNumberOfValues {
                number,
                expected: self.directions.len(),
                got: values.len(),
            });
        }
        let t = self.running_mut(number)?;
        if values.iter().any(|v| v.is_nan()) {
            return self.finish(number, TrialState::Failed, None);
        }
        t.constraints = constraints;
        if let [v] = values {
            self.finish(number, TrialState::Complete, Some(*v))
        } else {
            t.values = values.to_vec();
            self.finish(number, TrialState::Complete, None)
        }
    }

    pub fn tell_failed(&mut self, number: u64) -> Result<(), StudyError> {
        self.finish(number, TrialState::Failed, None)
    }

    /// Records an intermediate value; returns `true` when the stopping rule stopped
    /// the trial (it is then `Pruned` and needs no `tell`).
    pub fn report(&mut self, number: u64, step: u64, value: f64) -> Result<bool, StudyError> {
        let t = self.running_mut(number)?;
        t.intermediate_values.insert(step, value);
        let Some(rule) = &self.stopping else {
            return Ok(false);
        };
        let trial = &self.trials[number as usize];
        if rule.should_stop(trial, &self.trials, self.directions[0]) {
            self.finish(number, TrialState::Pruned, None)?;
            return Ok(true);
        }
        Ok(false)
    }

    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    /// The (first) objective's direction.
    pub fn direction(&self) -> Direction {
        self.directions[0]
    }

    pub fn directions(&self) -> &[Direction] {
        &self.directions
    }

    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    /// The feasible completed trial with the best value of the (first)
    /// objective, the earliest among ties; `None` when no trial is feasible.
    /// With several objectives see [`Study::best_trials`].
    pub fn best_trial(&self) -> Option<&Trial> {
        if self.directions.len() > 1 {
            return None;
        }
        crate::pareto::best_feasible(&self.trials, self.directions[0])
    }

    /// The Pareto front: feasible completed trials that no other one
    /// dominates (with one objective, every trial tied for the best value).
    pub fn best_trials(&self) -> Vec<&Trial> {
        crate::pareto::pareto_front(&self.trials, &self.directions)
    }

    /// Hypervolume of the feasible trials against `reference` (one value per
    /// objective, in the objectives' units, worse than the points that count).
    pub fn hypervolume(&self, reference: &[f64]) -> f64 {
        crate::pareto::trials_hypervolume(&self.trials, &self.directions, reference)
    }

    fn running_mut(&mut self, number: u64) -> Result<&mut Trial, StudyError> {
        let t = self
            .trials
            .get_mut(number as usize)
            .ok_or(StudyError::UnknownTrial(number))?;
        if t.state.is_finished() {
            return Err(StudyError::Finished(number));
        }
        Ok(t)
    }

    fn finish(
        &mut self,
        number: u64,
        state: TrialState,
        value: Option<f64>,
    ) -> Result<(), StudyError> {
        let t = self.running_mut(number)?;
        t.state = state;
        t.value = value;
        let snapshot = t.clone();
        self.sampler.tell(&snapshot);
        Ok(())
    }
}
