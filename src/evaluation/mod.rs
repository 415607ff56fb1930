//! The quality gate of a migration, as pure logic: the cases of an evaluation set, whether
//! an answer meets a case's expectation, and whether the new backends pass enough of them
//! compared with the stable ones. Replaying the cases (through the gateway) is the
//! controller's; nothing here does I/O.

pub mod cases;
pub mod check;
pub mod verdict;

pub use cases::{Case, Expect, parse};
pub use check::{Answer, Checked, check, judge_request, judge_score};
pub use verdict::{BackendRun, Judged, judge};
