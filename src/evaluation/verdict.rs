//! Whether the new backends pass enough cases compared with the stable ones.

use crate::api::{EvaluationBackend, EvaluationFailure, EvaluationVerdict};

/// Failing examples kept in status.
pub const MAX_FAILING: usize = 10;

/// One backend's results: each case's name and, when it failed, why.
#[derive(Debug, Clone)]
pub struct BackendRun {
    pub backend: String,
    pub stable: bool,
    pub results: Vec<(String, Result<(), String>)>,
}

impl BackendRun {
    fn passed(&self) -> usize {
        self.results.iter().filter(|(_, r)| r.is_ok()).count()
    }
}

/// The verdict on a replay, what status shows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub verdict: EvaluationVerdict,
    pub message: String,
    pub backends: Vec<EvaluationBackend>,
    pub failing: Vec<EvaluationFailure>,
}

fn pct(passed: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * passed as f64 / total as f64
    }
}

/// Each new backend must pass at least `min_relative` of the stable backends' pass rate
/// (all stable backends together: the baseline is what the route serves today).
pub fn judge(runs: &[BackendRun], min_relative: f64) -> Judged {
    let (stable, new): (Vec<&BackendRun>, Vec<&BackendRun>) = runs.iter().partition(|r| r.stable);
    let backends = stable
        .iter()
        .chain(&new)
        .map(|r| EvaluationBackend {
            backend: r.backend.clone(),
            stable: r.stable,
            passed: r.passed() as u32,
            total: r.results.len() as u32,
        })
        .collect();
    // The new backends' failures first: they are what the reader must act on.
    let failing = new
        .iter()
        .chain(&stable)
        .flat_map(|r| {
            r.results.iter().filter_map(|(case, res)| {
                res.as_ref().err().map(|reason| EvaluationFailure {
                    backend: r.backend.clone(),
                    case: case.clone(),
                    reason: reason.clone(),
                })
            })
        })
        .take(MAX_FAILING)
        .collect();
    let base_passed: usize = stable.iter().map(|r| r.passed()).sum();
    let base_total: usize = stable.iter().map(|r| r.results.len()).sum();
    let base = pct(base_passed, base_total);
    let mut verdict = EvaluationVerdict::Pass;
    let mut parts = vec![];
    if base_total == 0 || new.is_empty() {
        verdict = EvaluationVerdict::Error;
        parts.push("no cases were replayed against both the stable and the new backends".into());
    }
    for r in &new {
        let rate = pct(r.passed(), r.results.len());
        let needed = base * min_relative;
        let ok = rate + 1e-9 >= needed;
        if !ok {
            verdict = EvaluationVerdict::Fail;
        }
        parts.push(format!(
            "{} passed {} of {} cases ({rate:.1}%), {} {:.0}% of the stable backends' {base:.1}% ({needed:.1}%)",
            r.backend,
            r.passed(),
            r.results.len(),
            if ok { "at least" } else { "below" },
            min_relative * 100.0,
        ));
    }
    Judged {
        verdict,
        message: parts.join("; "),
        backends,
        failing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(backend: &str, stable: bool, outcomes: &[bool]) -> BackendRun {
        BackendRun {
            backend: backend.into(),
            stable,
            results: outcomes
                .iter()
                .enumerate()
                .map(|(i, ok)| {
                    (
                        format!("c{i}"),
                        if *ok { Ok(()) } else { Err(format!("bad {i}")) },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn the_new_backend_needs_the_share_of_the_stable_pass_rate() {
        // Stable 9 of 10; 90% of that is 81%: 8 of 10 (80%) fails, 9 of 10 passes.
        let stable = run(
            "openai",
            true,
            &[true, true, true, true, true, true, true, true, true, false],
        );
        let eight = run(
            "llama",
            false,
            &[true, true, true, true, true, true, true, true, false, false],
        );
        let nine = run(
            "llama",
            false,
            &[true, true, true, true, true, true, true, true, true, false],
        );
        let j = judge(&[stable.clone(), eight], 0.9);
        assert_eq!(j.verdict, EvaluationVerdict::Fail);
        assert_eq!(
            j.message,
            "llama passed 8 of 10 cases (80.0%), below 90% of the stable backends' 90.0% (81.0%)"
        );
        assert_eq!(judge(&[stable, nine], 0.9).verdict, EvaluationVerdict::Pass);
    }

    #[test]
    fn failing_examples_of_the_new_backends_come_first_and_are_bounded() {
        let stable = run("openai", true, &[false, true]);
        let new = run("llama", false, &[false; 12]);
        let j = judge(&[stable, new], 0.9);
        assert_eq!(j.failing.len(), MAX_FAILING);
        assert!(j.failing.iter().all(|f| f.backend == "llama"));
        assert_eq!(
            (j.failing[0].case.as_str(), j.failing[0].reason.as_str()),
            ("c0", "bad 0")
        );
        assert_eq!(
            j.backends
                .iter()
                .map(|b| (b.backend.as_str(), b.stable, b.passed, b.total))
                .collect::<Vec<_>>(),
            [("openai", true, 1, 2), ("llama", false, 0, 12)]
        );
    }

    #[test]
    fn nothing_to_compare_is_an_error_not_a_pass() {
        assert_eq!(
            judge(&[run("llama", false, &[true])], 0.9).verdict,
            EvaluationVerdict::Error
        );
        assert_eq!(
            judge(&[run("openai", true, &[true])], 0.9).verdict,
            EvaluationVerdict::Error
        );
    }

    #[test]
    fn a_stable_split_that_fails_everything_asks_nothing_of_the_new_one() {
        let j = judge(
            &[run("openai", true, &[false]), run("llama", false, &[false])],
            0.9,
        );
        assert_eq!(j.verdict, EvaluationVerdict::Pass);
    }
}
