use kale_search::katib::{AlgorithmSetting, stopping_from_katib};
use kale_search::stopping::{Asha, MedianStop, StoppingRule};
use kale_search::{Direction, Params, Trial, TrialState};

fn trial(number: u64, state: TrialState, values: &[f64]) -> Trial {
    let mut t = Trial::running(number, Params::new());
    t.state = state;
    t.intermediate_values = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64 + 1, *v))
        .collect();
    t
}

#[test]
fn median_stop_uses_a_true_median() {
    // Averages of the first 2 reports: 1, 2, 30 → median 2, mean 11.
    let done = vec![
        trial(0, TrialState::Complete, &[1.0, 1.0, 0.5]),
        trial(1, TrialState::Complete, &[2.0, 2.0]),
        trial(2, TrialState::Complete, &[30.0, 30.0]),
    ];
    let rule = MedianStop {
        min_trials_required: 3,
        start_step: 2,
    };
    let mut all = done.clone();
    let t = trial(3, TrialState::Running, &[5.0, 4.0]);
    all.push(t.clone());
    // Best 4.0 is worse than the median 2 (a mean would have let it run).
    assert!(rule.should_stop(&t, &all, Direction::Minimize));
    let good = trial(3, TrialState::Running, &[5.0, 1.5]);
    assert!(!rule.should_stop(&good, &all, Direction::Minimize));
    // Before start_step reports nothing is stopped.
    let early = trial(3, TrialState::Running, &[50.0]);
    assert!(!rule.should_stop(&early, &all, Direction::Minimize));
    // For maximisation the comparison flips.
    assert!(!rule.should_stop(&t, &all, Direction::Maximize));
    // Too few completed trials.
    let few = MedianStop {
        min_trials_required: 4,
        start_step: 2,
    };
    assert!(!few.should_stop(&t, &all, Direction::Minimize));
}

#[test]
fn asha_keeps_the_top_third_at_each_rung() {
    let rule = Asha {
        min_resource: 1,
        reduction_factor: 3,
        min_early_stopping_rate: 0,
    };
    let others: Vec<Trial> = (0..5)
        .map(|i| trial(i, TrialState::Complete, &[i as f64]))
        .collect();
    // Six trials at rung 1 (step 1): keep the best 2, i.e. values 0 and 1.
    let bad = trial(9, TrialState::Running, &[2.5]);
    assert!(rule.should_stop(&bad, &others, Direction::Minimize));
    let good = trial(9, TrialState::Running, &[0.5]);
    assert!(!rule.should_stop(&good, &others, Direction::Minimize));
    // Between rungs nothing is decided.
    let between = trial(9, TrialState::Running, &[0.5, 100.0]);
    assert!(!rule.should_stop(&between, &others, Direction::Minimize));
    // The first trial at a rung is never stopped for lack of competition.
    assert!(!rule.should_stop(&bad, &[], Direction::Minimize));
}

#[test]
fn built_from_katib_settings() {
    assert_eq!(
        stopping_from_katib("medianstop", &[]).unwrap().name(),
        "medianstop"
    );
    let e = stopping_from_katib("medianstop", &[AlgorithmSetting::new("start_step", "0")])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("start_step"), "{e}");
    let e = stopping_from_katib("medianstop", &[AlgorithmSetting::new("min_steps", "2")])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("min_steps") && e.contains("min_trials_required"),
        "{e}"
    );
    assert!(stopping_from_katib("asha", &[AlgorithmSetting::new("reduction_factor", "4")]).is_ok());
}
