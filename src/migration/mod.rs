//! Staged migrations of a route's split, as pure domain logic: weight blending and the state
//! machine that moves through the steps, judged by analysis verdicts. No client, no clock, no
//! I/O; the reconciler supplies `now`, readiness and analysis results.

pub mod blend;
pub mod commands;
pub mod engine;
#[cfg(test)]
mod engine_tests;
mod gate;
#[cfg(test)]
mod gate_tests;
mod health;
mod operator;
pub mod post_cutover;
#[cfg(test)]
mod post_cutover_tests;
pub mod settings;
pub mod split;

pub use commands::{Command, CommandKind, CommandResult, IGNORED};
pub use engine::{AnalysisPlan, AnalysisSource, Decision, Event, Inputs, analysis_due, decide};
pub use gate::{EvaluationPlan, evaluation_due};
pub use settings::{Settings, effective_rollout, settings};
pub use split::{same_split, weights_summary};
