//! An in-memory ask/tell loop, for tests, benchmarks and library users who do not
//! need persistence (`kale tune` keeps its own store and calls samplers directly).

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
}

pub struct Study {
    space: SearchSpace,
    sampler: Box<dyn Sampler>,
    direction: Direction,
    stopping: Option<Box<dyn StoppingRule>>,
    trials: Vec<Trial>,
}

impl Study {
    pub fn new(space: SearchSpace, sampler: Box<dyn Sampler>, direction: Direction) -> Self {
        Study {
            space,
            sampler,
            direction,
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
        match self
            .sampler
            .ask(&self.space, &self.trials, self.direction)?
        {
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
        if rule.should_stop(trial, &self.trials, self.direction) {
            self.finish(number, TrialState::Pruned, None)?;
            return Ok(true);
        }
        Ok(false)
    }

    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    /// The completed trial with the best value (the earliest among ties).
    pub fn best_trial(&self) -> Option<&Trial> {
        self.trials
            .iter()
            .filter(|t| t.completed_value().is_some())
            .fold(None, |best: Option<&Trial>, t| match best {
                Some(b) if !self.direction.better(t.value.unwrap(), b.value.unwrap()) => Some(b),
                _ => Some(t),
            })
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
