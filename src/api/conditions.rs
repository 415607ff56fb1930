//! kstatus conditions: set one without churning `lastTransitionTime`. Shared by the controller
//! and the migration engine, so it depends on nothing but the API types.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub use super::reason::Reason;

/// What a condition should say now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

impl<'a> Desired<'a> {
    pub fn new(type_: &'a str, status: bool, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Sets a condition in place. `lastTransitionTime` only moves when the status flips: a fresh
/// timestamp on every pass would change the object on every reconcile and trigger the next.
pub fn set(
    conditions: &mut Vec<Condition>,
    want: Desired<'_>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if want.status { "True" } else { "False" }.to_owned();
    match conditions.iter_mut().find(|c| c.type_ == want.type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status;
            c.reason = want.reason.as_str().to_owned();
            c.message = want.message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: want.type_.to_owned(),
            status,
            reason: want.reason.as_str().to_owned(),
            message: want.message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Gives every condition of `after` whose status did not change since `before` its old
/// `lastTransitionTime`, however the reconcile got there (e.g. removed, then set again).
pub fn keep_transition_times(before: &[Condition], after: &mut [Condition]) {
    for c in after.iter_mut() {
        if let Some(old) = before
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
}

/// Removes a condition: kstatus treats an absent abnormal-true condition as False.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn keeps_transition_time_when_status_unchanged() {
        let mut cs = vec![];
        set(
            &mut cs,
            Desired::new("Ready", false, Reason::SecretNotFound, "a"),
            Some(1),
            ts(10),
        );
        set(
            &mut cs,
            Desired::new("Ready", false, Reason::SecretKeyMissing, "b"),
            Some(2),
            ts(20),
        );
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, Time(ts(10)));
        assert_eq!(cs[0].reason, "SecretKeyMissing");
        assert_eq!(cs[0].observed_generation, Some(2));
    }

    #[test]
    fn removed_and_set_again_keeps_the_old_transition_time() {
        let mut before = vec![];
        set(
            &mut before,
            Desired::new("Reconciling", true, Reason::InUse, "a"),
            Some(1),
            ts(10),
        );
        let mut after = before.clone();
        remove(&mut after, "Reconciling");
        set(
            &mut after,
            Desired::new("Reconciling", true, Reason::InUse, "a"),
            Some(1),
            ts(20),
        );
        set(
            &mut after,
            Desired::new("Ready", true, Reason::Ready, "ok"),
            Some(1),
            ts(20),
        );
        keep_transition_times(&before, &mut after);
        assert_eq!(after[0], before[0]);
        assert_eq!(after[1].last_transition_time, Time(ts(20)));
    }

    #[test]
    fn moves_transition_time_when_status_flips() {
        let mut cs = vec![];
        set(
            &mut cs,
            Desired::new("Ready", false, Reason::SecretNotFound, "a"),
            Some(1),
            ts(10),
        );
        set(
            &mut cs,
            Desired::new("Ready", true, Reason::Ready, "ok"),
            Some(1),
            ts(30),
        );
        assert_eq!(cs[0].status, "True");
        assert_eq!(cs[0].last_transition_time, Time(ts(30)));
    }
}
