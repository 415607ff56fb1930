//! Reconciles `Tenant`: Ready when every key it names resolves to a non-empty key of a Secret
//! labelled `switchyard.dev/credential: tenant-key`; otherwise the condition says which key
//! and what to fix. The gateway reads the keys itself (from the same labelled Secrets); this
//! status is what its owners see.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::instrument;

use super::conditions::{self, Desired, Reason};
use super::credentials;
use super::{Context, Error, status};
use crate::api::{CredentialPurpose, Tenant, condition};

/// How often a tenant with an unresolved key is looked at again, besides the Secret watch.
const RECHECK: Duration = Duration::from_secs(30);

/// Readiness from each key's problem (`None` when the key is usable).
pub fn readiness(problems: &[Option<(Reason, String)>]) -> Desired<'static> {
    let ok = problems.iter().filter(|p| p.is_none()).count();
    let bad: Vec<&(Reason, String)> = problems.iter().flatten().collect();
    match bad.first() {
        None => Desired::new(
            condition::READY,
            true,
            Reason::Ready,
            format!("{ok} of {} keys accepted", problems.len()),
        ),
        Some((reason, _)) => Desired::new(
            condition::READY,
            false,
            *reason,
            format!(
                "{ok} of {} keys accepted; {}",
                problems.len(),
                bad.iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    }
}

#[instrument(skip_all, fields(tenant = %t.name_any(), namespace = t.namespace().unwrap_or_default()))]
pub async fn reconcile(t: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = t.namespace().ok_or(Error::MissingNamespace)?;
    let generation = t.meta().generation;
    let now = Timestamp::now();
    let before = t.status.clone().unwrap_or_default();
    let mut status = before.clone();
    status.observed_generation = generation;
    let mut problems = Vec::with_capacity(t.spec.keys.len());
    for k in &t.spec.keys {
        let r = &k.secret_ref;
        let lookup = credentials::find(&ctx.client, &ns, &r.name, CredentialPurpose::TenantKey)
            .await
            .map_err(Error::Kube)?;
        problems.push(credentials::problem(
            &lookup,
            &ns,
            &r.name,
            &r.key,
            CredentialPurpose::TenantKey,
        ));
    }
    status.keys = Some(problems.iter().filter(|p| p.is_none()).count() as i32);
    let waiting = conditions::set_ready_or_stalled(
        &mut status.conditions,
        readiness(&problems),
        generation,
        now,
    );
    conditions::keep_transition_times(&before.conditions, &mut status.conditions);
    if status != before {
        let api: Api<Tenant> = Api::namespaced(ctx.client.clone(), &ns);
        if status::write(&api, t.as_ref(), &status).await? {
            super::wrote("tenant", t.as_ref(), &ctx);
        }
    }
    Ok(if waiting {
        Action::requeue(RECHECK)
    } else {
        Action::await_change()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_when_every_key_resolves_and_otherwise_names_each_problem() {
        let ok = readiness(&[None, None]);
        assert!(ok.status);
        assert_eq!(ok.message, "2 of 2 keys accepted");
        let bad = readiness(&[
            None,
            Some((
                Reason::SecretNotLabelled,
                "Secret \"a\" is not labelled".into(),
            )),
            Some((Reason::SecretNotFound, "Secret \"b\" not found".into())),
        ]);
        assert!(!bad.status);
        assert_eq!(bad.reason, "SecretNotLabelled");
        assert_eq!(
            bad.message,
            "1 of 3 keys accepted; Secret \"a\" is not labelled; Secret \"b\" not found"
        );
    }
}
