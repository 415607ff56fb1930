//! kstatus conditions live with the API types (the migration engine sets them too); the
//! controller uses them from here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::api::condition;
pub use crate::api::conditions::*;

/// Sets `ready`. A Ready=False that only its owner can fix (a Secret to create, label or
/// fill) is also Stalled, with the same reason and message; Stalled goes once Ready is True.
/// Returns whether it is not ready.
pub fn set_ready_or_stalled(
    conditions: &mut Vec<Condition>,
    ready: Desired<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let waiting = !ready.status;
    if waiting {
        let stalled = Desired::new(
            condition::STALLED,
            true,
            ready.reason,
            ready.message.clone(),
        );
        set(conditions, stalled, generation, now);
    } else {
        remove(conditions, condition::STALLED);
    }
    set(conditions, ready, generation, now);
    waiting
}
