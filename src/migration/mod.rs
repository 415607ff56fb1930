//! Staged migrations of a route's split, as pure domain logic: weight blending and the state
//! machine that moves through the steps, judged by analysis verdicts. No kube, no clock, no
//! I/O; the reconciler supplies `now`, readiness and analysis results.

pub mod blend;
pub mod engine;
#[cfg(test)]
mod engine_tests;

pub use engine::{
    AnalysisPlan, Command, CommandKind, Decision, Event, Inputs, analysis_due, decide, settings,
};
