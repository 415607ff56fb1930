//! What an operator's command (`kubectl switchyard promote | abort | pause | resume |
//! retry`) does to the running migration, and what it answers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::commands::{CommandKind, CommandResult};
use super::engine::{Event, advance_to, promote, rollback};
use super::settings::Settings;
use super::split::weights_summary;
use crate::api::{MigrationOutcome, ModelRouteStatus, Phase};

pub(super) fn apply_command(
    st: &mut ModelRouteStatus,
    cfg: &Settings,
    kind: CommandKind,
    now: Timestamp,
    events: &mut Vec<Event>,
) -> CommandResult {
    let active = !st.target.is_empty();
    let idle = || CommandResult::Ignored("no migration is in progress".into());
    match kind {
        CommandKind::Pause if !active => idle(),
        CommandKind::Pause if st.paused => CommandResult::Ignored("already paused".into()),
        CommandKind::Pause => {
            st.paused = true;
            st.phase = Some(Phase::Paused);
            events.push(Event::normal(
                "Paused",
                "migration paused by an operator; analysis continues and a failure still rolls back".into(),
            ));
            CommandResult::Done(format!("paused at step {}", st.step.unwrap_or(0)))
        }
        CommandKind::Resume if !active => idle(),
        CommandKind::Resume if !st.paused => {
            CommandResult::Ignored("the migration is not paused".into())
        }
        CommandKind::Resume => {
            st.paused = false;
            st.phase = Some(if st.mirror.is_some() {
                Phase::Mirroring
            } else {
                Phase::Progressing
            });
            // The step's clock restarts: its full duration is observed after a pause, and
            // time spent paused never counts towards the progress deadline.
            st.step_started_at = Some(Time(now));
            st.holding_since = None;
            events.push(Event::normal(
                "Resumed",
                "migration resumed by an operator".into(),
            ));
            CommandResult::Done(format!("resumed at step {}", st.step.unwrap_or(0)))
        }
        CommandKind::Promote | CommandKind::PromoteFull if !active => idle(),
        CommandKind::Promote => {
            let step = st.step.unwrap_or(0);
            if step as usize >= cfg.steps.len() {
                promote(st, now, "promoted by an operator", events);
                CommandResult::Done(format!("{} is now stable", weights_summary(&st.stable)))
            } else {
                advance_to(st, cfg, step + 1, now);
                events.push(Event::normal(
                    "StepAdvanced",
                    format!(
                        "an operator promoted to step {} ({})",
                        step + 1,
                        weights_summary(&st.weights)
                    ),
                ));
                CommandResult::Done(format!(
                    "advanced to step {} ({})",
                    step + 1,
                    weights_summary(&st.weights)
                ))
            }
        }
        CommandKind::PromoteFull => {
            promote(st, now, "fully promoted by an operator", events);
            CommandResult::Done(format!("{} is now stable", weights_summary(&st.stable)))
        }
        CommandKind::Abort if !active => idle(),
        CommandKind::Abort => {
            rollback(
                st,
                now,
                MigrationOutcome::Aborted,
                "aborted by an operator".into(),
                events,
            );
            CommandResult::Done(format!("back to {}", weights_summary(&st.stable)))
        }
        CommandKind::Retry if st.rolled_back.is_empty() => {
            CommandResult::Ignored("no rolled-back migration to retry".into())
        }
        CommandKind::Retry => {
            st.rolled_back.clear();
            events.push(Event::normal(
                "Retried",
                "an operator asked to retry the migration".into(),
            ));
            CommandResult::Done("retrying the rolled-back migration".into())
        }
    }
}
