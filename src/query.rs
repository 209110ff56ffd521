//! Questions about stored experiments and their trials, answered in one place for
//! every view: the terminal summaries and tables, the `--json` documents, the plots
//! and the dashboard.

use crate::store::{TrialRow, TrialStatus};

/// Trials that ended (or are) `status`.
pub fn count(trials: &[TrialRow], status: TrialStatus) -> usize {
    trials.iter().filter(|t| t.status == status).count()
}

/// Trials an experiment counts as made: all but those a stopped session interrupted
/// (a resumed session runs them again).
pub fn counted(trials: &[TrialRow]) -> usize {
    trials
        .iter()
        .filter(|t| t.status != TrialStatus::Interrupted)
        .count()
}
