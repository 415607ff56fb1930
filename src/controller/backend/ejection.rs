//! Outlier ejection on the backend's status: the gateway ejects endpoints that keep failing
//! and exports `switchyard_endpoints_ejected{namespace,backend}`; the backend shows how many
//! are out, read from Prometheus (the gateway replicas' maximum), so `kubectl get ib -o wide`
//! explains lost capacity without a dashboard.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::analysis::{Source, SourceError};
use crate::api::InferenceBackendStatus;
use crate::controller::conditions::{self, Desired, Reason};

/// Condition type while any endpoint is ejected.
pub const CONDITION: &str = "EndpointsEjected";
/// How often a backend with ejected endpoints is looked at again (ejections expire).
pub const RECHECK: Duration = Duration::from_secs(30);

pub fn query(namespace: &str, backend: &str) -> String {
    format!(r#"max(switchyard_endpoints_ejected{{namespace="{namespace}",backend="{backend}"}})"#)
}

/// Endpoints ejected now by any gateway replica (0 when no gateway reports the backend).
pub async fn ejected(
    source: &impl Source,
    namespace: &str,
    backend: &str,
    at: Timestamp,
) -> Result<i32, SourceError> {
    let value = source.query(&query(namespace, backend), at).await?;
    Ok(value
        .filter(|v| v.is_finite() && *v > 0.0)
        .map_or(0, |v| v.round() as i32))
}

/// Shows `ejected` in status; returns whether to look again soon.
pub fn show(
    status: &mut InferenceBackendStatus,
    ejected: i32,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    if ejected == 0 {
        status.ejected_endpoints = None;
        conditions::remove(&mut status.conditions, CONDITION);
        return false;
    }
    status.ejected_endpoints = Some(ejected);
    let message = format!(
        "{ejected} endpoint(s) ejected by the gateway's outlier detection (consecutive 5xx or connection failures); each returns after its ejection time"
    );
    let want = Desired::new(CONDITION, true, Reason::OutlierEjection, message);
    conditions::set(&mut status.conditions, want, generation, now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Fake {
        answer: Result<Option<f64>, SourceError>,
        asked: Mutex<Vec<String>>,
    }

    impl Source for Fake {
        fn query(
            &self,
            promql: &str,
            _: Timestamp,
        ) -> impl Future<Output = Result<Option<f64>, SourceError>> + Send {
            self.asked.lock().unwrap().push(promql.to_owned());
            let answer = self.answer.clone();
            async move { answer }
        }
    }

    fn fake(answer: Result<Option<f64>, SourceError>) -> Fake {
        Fake {
            answer,
            asked: Mutex::default(),
        }
    }

    #[tokio::test]
    async fn reads_the_gateways_gauge_for_this_backend() {
        let f = fake(Ok(Some(2.0)));
        assert_eq!(
            ejected(&f, "team-a", "llama", Timestamp::UNIX_EPOCH).await,
            Ok(2)
        );
        assert_eq!(
            f.asked.lock().unwrap().as_slice(),
            [r#"max(switchyard_endpoints_ejected{namespace="team-a",backend="llama"})"#]
        );
        assert_eq!(
            ejected(&fake(Ok(None)), "a", "b", Timestamp::UNIX_EPOCH).await,
            Ok(0)
        );
        assert_eq!(
            ejected(&fake(Ok(Some(f64::NAN))), "a", "b", Timestamp::UNIX_EPOCH).await,
            Ok(0)
        );
        let down = SourceError::Unreachable("cannot connect".into());
        assert_eq!(
            ejected(&fake(Err(down.clone())), "a", "b", Timestamp::UNIX_EPOCH).await,
            Err(down)
        );
    }

    #[test]
    fn shown_while_non_zero_and_unchanged_status_for_an_unchanged_count() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut st = InferenceBackendStatus::default();
        assert!(show(&mut st, 2, Some(1), now));
        assert_eq!(st.ejected_endpoints, Some(2));
        let c = crate::api::find_condition(&st.conditions, CONDITION).unwrap();
        assert!(c.message.starts_with("2 endpoint(s) ejected"));
        let before = st.clone();
        assert!(show(
            &mut st,
            2,
            Some(1),
            "2026-01-01T00:00:30Z".parse().unwrap()
        ));
        assert_eq!(st, before);
        assert!(!show(&mut st, 0, Some(1), now));
        assert_eq!(st.ejected_endpoints, None);
        assert!(crate::api::find_condition(&st.conditions, CONDITION).is_none());
    }
}
