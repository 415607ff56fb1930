//! Reconciles `InferenceBackend`. External backends are Ready when their credentials Secret
//! exists, is labelled `switchyard.dev/credential: provider`, and holds the key. Self-hosted backends get a Deployment, a Service and (with more than one
//! replica) a PodDisruptionBudget; their pods are warmed up before the gateway may use them,
//! and pods the scheduler cannot place show as Stalled in the scheduler's own words.

mod ejection;
mod finalizer;
mod health;
mod runtime;
mod scheduling;
mod self_hosted;
pub mod warmup;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::instrument;

use super::conditions::{self, Desired, Reason};
use super::credentials::{self, Lookup};
use super::{Context, Error, status, usage};
use crate::api::CredentialPurpose::{CaBundle, Provider};
use crate::api::{
    ExternalBackend, InferenceBackend, InferenceBackendSpec, InferenceBackendStatus, SecretKeyRef,
    condition, find_condition,
};
use finalizer::Guard;

/// How often a backend waiting for its Secret is looked at again, besides the Secret watch.
const SECRET_RECHECK: Duration = Duration::from_secs(30);

/// How often a deleted backend that routes still hold is looked at again.
const HELD_RECHECK: Duration = Duration::from_secs(5);

/// What the backend is, for `kubectl get ib`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub type_: &'static str,
    pub provider: &'static str,
    pub model: String,
    pub url: Option<String>,
}

/// Describes a backend from its spec alone. Admission guarantees exactly one of
/// `external`/`selfHosted`; `None` means the object slipped past it (e.g. an old CRD).
pub fn summarize(spec: &InferenceBackendSpec) -> Option<Summary> {
    match (&spec.external, &spec.self_hosted) {
        (Some(e), None) => Some(Summary {
            type_: "External",
            provider: e.dialect.as_str(),
            model: e.model.clone(),
            url: Some(e.base_url.trim_end_matches('/').to_owned()),
        }),
        (None, Some(s)) => Some(Summary {
            type_: "SelfHosted",
            provider: s.runtime.as_str(),
            model: s.model.clone(),
            url: None,
        }),
        _ => None,
    }
}

/// Readiness of an external backend given what the lookup of its credentials Secret found
/// (`None` without credentials). Messages name the Secret, key and label, never the value.
pub fn external_readiness(
    ext: &ExternalBackend,
    namespace: &str,
    credentials: Option<&Lookup>,
    ca: Option<&Lookup>,
) -> Desired<'static> {
    let not_ready = |(reason, message)| Desired::new(condition::READY, false, reason, message);
    let mut found = vec![];
    if let (Some(creds), Some(lookup)) = (&ext.credentials, credentials) {
        let r = &creds.secret_ref;
        if let Some(p) = credentials::problem(lookup, namespace, &r.name, &r.key, Provider) {
            return not_ready(p);
        }
        found.push(format!("credentials found in Secret {:?}", r.name));
    }
    if let (Some(tls), Some(lookup)) = (&ext.tls, ca) {
        let r = &tls.ca_secret_ref;
        if let Some(p) = credentials::problem(lookup, namespace, &r.name, &r.key, CaBundle) {
            return not_ready(p);
        }
        if let Lookup::Found(secret) = lookup
            && let Err(e) = crate::tls::ca_roots(&credentials::value(secret, &r.key))
        {
            return not_ready((
                Reason::CABundleInvalid,
                format!("Secret {:?} key {:?} {e}", r.name, r.key),
            ));
        }
        found.push(format!("CA bundle found in Secret {:?}", r.name));
    }
    if found.is_empty() {
        return Desired::new(
            condition::READY,
            true,
            Reason::Ready,
            "no credentials required",
        );
    }
    Desired::new(condition::READY, true, Reason::Ready, found.join("; "))
}

/// Names of the Secrets a backend reads, so a Secret event can be mapped back to it.
pub fn referenced_secrets(spec: &InferenceBackendSpec) -> Vec<&str> {
    let mut names = vec![];
    if let Some(c) = spec.external.as_ref().and_then(|e| e.credentials.as_ref()) {
        names.push(c.secret_ref.name.as_str());
    }
    if let Some(t) = spec.external.as_ref().and_then(|e| e.tls.as_ref()) {
        names.push(t.ca_secret_ref.name.as_str());
    }
    if let Some(t) = spec
        .self_hosted
        .as_ref()
        .and_then(|s| s.hugging_face_token.as_ref())
    {
        names.push(t.name.as_str());
    }
    names
}

#[instrument(skip_all, fields(backend = %ib.name_any(), namespace = ib.namespace().unwrap_or_default()))]
pub async fn reconcile(ib: Arc<InferenceBackend>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ib.namespace().ok_or(Error::MissingNamespace)?;
    ctx.caches_ready().await?;
    let api: Api<InferenceBackend> = Api::namespaced(ctx.client.clone(), &ns);
    let holders = usage::holders(&ctx.naming(&ns, &ib.name_any()), &ns, &ib.name_any());
    let guard = finalizer::guard(&ib, holders);
    let ib = match &guard {
        // Continue with the patched object: its resourceVersion is what status writes need.
        Guard::Add => {
            let patched = finalizer::set(&api, &ib, true).await?;
            if patched.resource_version() != ib.resource_version() {
                super::wrote("inferencebackend", ib.as_ref(), &ctx);
            }
            Arc::new(patched)
        }
        Guard::Release => {
            finalizer::set(&api, &ib, false).await?;
            tracing::info!("no route uses the deleted backend any more; deletion proceeds");
            return Ok(Action::await_change());
        }
        Guard::Keep | Guard::Hold(_) => ib,
    };
    let generation = ib.meta().generation;
    let now = Timestamp::now();
    let before = ib.status.clone().unwrap_or_default();
    let mut status = before.clone();
    status.observed_generation = generation;

    let Some(summary) = summarize(&ib.spec) else {
        conditions::set(
            &mut status.conditions,
            Desired::new(
                condition::STALLED,
                true,
                Reason::InvalidSpec,
                "set exactly one of spec.external or spec.selfHosted",
            ),
            generation,
            now,
        );
        publish(&ctx, &ib, &before, &status).await?;
        return Ok(Action::await_change());
    };
    status.r#type = Some(summary.type_.to_owned());
    status.provider = Some(summary.provider.to_owned());
    status.model = Some(summary.model);
    status.url = summary.url;

    let result = match (&ib.spec.external, &ib.spec.self_hosted) {
        (Some(ext), _) => reconcile_external(&ctx, &ns, ext, &mut status, generation, now).await,
        (_, Some(sh)) => {
            self_hosted::reconcile(&ctx, &ib, &ns, sh, &mut status, generation, now).await
        }
        (None, None) => unreachable!("summarize returned Some"),
    };
    let action = match result {
        Ok(action) => action,
        Err(Error::Apply { kind, source }) => {
            // Refused by the API server: say so in status, then back off (error_policy).
            if let Some(stalled) = self_hosted::rejected(kind, &source) {
                let ready = Desired::new(
                    condition::READY,
                    false,
                    stalled.reason,
                    stalled.message.clone(),
                );
                conditions::set(&mut status.conditions, ready, generation, now);
                conditions::set(&mut status.conditions, stalled, generation, now);
                conditions::remove(&mut status.conditions, condition::RECONCILING);
                conditions::keep_transition_times(&before.conditions, &mut status.conditions);
                publish(&ctx, &ib, &before, &status).await?;
            }
            return Err(Error::Apply { kind, source });
        }
        Err(e) => return Err(e),
    };
    let action = show_ejections(&ctx, &ib, &mut status, action, generation, now).await;
    // Held by routes: the workload keeps serving (above), and the backend says who holds it.
    // Looked at again soon: the route event that lets go of it may arrive before the route
    // cache (another watch) reflects it, and nothing else would trigger this backend then.
    let action = match &guard {
        Guard::Hold(_) if action == Action::await_change() => Action::requeue(HELD_RECHECK),
        _ => action,
    };
    if let Guard::Hold(holders) = &guard {
        conditions::set(
            &mut status.conditions,
            Desired::new(
                condition::RECONCILING,
                true,
                Reason::InUse,
                finalizer::in_use_message(holders),
            ),
            generation,
            now,
        );
    }
    conditions::keep_transition_times(&before.conditions, &mut status.conditions);
    publish(&ctx, &ib, &before, &status).await?;
    Ok(action)
}

/// With a Prometheus to ask: how many of the backend's endpoints the gateway has ejected.
/// Looked at again every 30 s while any are; Prometheus unreachable leaves status as it was.
async fn show_ejections(
    ctx: &Context,
    ib: &InferenceBackend,
    status: &mut InferenceBackendStatus,
    action: Action,
    generation: Option<i64>,
    now: Timestamp,
) -> Action {
    let Some(source) = &ctx.prometheus else {
        return action;
    };
    let ns = ib.namespace().unwrap_or_default();
    let again = match ejection::ejected(source, &ns, &ib.name_any(), now).await {
        Ok(n) => ejection::show(status, n, generation, now),
        Err(e) => {
            tracing::debug!(error = %e, "could not read ejected endpoints");
            status.ejected_endpoints.is_some()
        }
    };
    // Every other requeue is sooner than the recheck.
    if again && action == Action::await_change() {
        Action::requeue(ejection::RECHECK)
    } else {
        action
    }
}

async fn reconcile_external(
    ctx: &Context,
    ns: &str,
    ext: &ExternalBackend,
    status: &mut InferenceBackendStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Result<Action, Error> {
    let find = async |r: Option<&SecretKeyRef>, purpose| match r {
        Some(r) => credentials::find(&ctx.client, ns, &r.name, purpose)
            .await
            .map(Some)
            .map_err(Error::Kube),
        None => Ok(None),
    };
    let creds = find(ext.credentials.as_ref().map(|c| &c.secret_ref), Provider).await?;
    let ca = find(ext.tls.as_ref().map(|t| &t.ca_secret_ref), CaBundle).await?;
    // A missing Secret or key does not fix itself: Stalled, with the same reason and message.
    let waiting = conditions::set_ready_or_stalled(
        &mut status.conditions,
        external_readiness(ext, ns, creds.as_ref(), ca.as_ref()),
        generation,
        now,
    );
    conditions::remove(&mut status.conditions, condition::RECONCILING);
    status.replicas = None;
    status.ready_replicas = None;
    status.endpoints.clear();
    // The Secret watch normally brings the change; the recheck covers a missed event.
    Ok(if waiting {
        Action::requeue(SECRET_RECHECK)
    } else {
        Action::await_change()
    })
}

/// Writes status when it changed, and turns condition transitions into Events.
async fn publish(
    ctx: &Context,
    ib: &InferenceBackend,
    before: &InferenceBackendStatus,
    after: &InferenceBackendStatus,
) -> Result<(), Error> {
    if before == after {
        return Ok(());
    }
    let api: Api<InferenceBackend> =
        Api::namespaced(ctx.client.clone(), &ib.namespace().unwrap_or_default());
    if status::write(&api, ib, after).await? {
        super::wrote("inferencebackend", ib, ctx);
    }
    if let Some(c) = find_condition(&after.conditions, condition::RECONCILING)
        && c.reason == Reason::InUse.as_str()
        && find_condition(&before.conditions, condition::RECONCILING)
            .is_none_or(|b| b.message != c.message)
    {
        ctx.event(ib, EventType::Warning, &c.reason, c.message.clone())
            .await;
    }

    let changed = |t: &str| {
        let (old, new) = (
            find_condition(&before.conditions, t),
            find_condition(&after.conditions, t),
        );
        match (old, new) {
            (Some(o), Some(n)) => (o.status != n.status || o.reason != n.reason).then_some(Some(n)),
            (None, Some(n)) => Some(Some(n)),
            (Some(_), None) => Some(None),
            (None, None) => None,
        }
    };
    if let Some(Some(c)) = changed(condition::STALLED)
        && c.status == "True"
    {
        ctx.event(ib, EventType::Warning, &c.reason, c.message.clone())
            .await;
    } else if let Some(None) = changed(condition::STALLED) {
        ctx.event(
            ib,
            EventType::Normal,
            "Recovered",
            "pods are schedulable again".into(),
        )
        .await;
    }
    if let Some(Some(c)) = changed(condition::READY) {
        match (c.status.as_str(), c.reason.as_str()) {
            ("True", _) => {
                ctx.event(ib, EventType::Normal, "BackendReady", c.message.clone())
                    .await
            }
            (_, r @ ("SecretNotFound" | "SecretKeyMissing" | "SecretNotLabelled")) => {
                ctx.event(ib, EventType::Warning, r, c.message.clone())
                    .await
            }
            _ => {}
        }
    }
    Ok(())
}

impl Context {
    /// Publishes an Event on `obj`; a failure to record is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not record event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use std::collections::BTreeMap;

    fn openai_backend() -> InferenceBackendSpec {
        serde_yaml::from_str(
            r#"
external:
  dialect: openai
  baseUrl: https://api.openai.com/v1/
  model: gpt-4o
  credentials: {secretRef: {name: openai, key: apiKey}}
"#,
        )
        .unwrap()
    }

    #[test]
    fn summarizes_external_and_self_hosted() {
        let s = summarize(&openai_backend()).unwrap();
        assert_eq!(
            (s.type_, s.provider, s.model.as_str()),
            ("External", "openai", "gpt-4o")
        );
        assert_eq!(s.url.as_deref(), Some("https://api.openai.com/v1"));
        let spec: InferenceBackendSpec = serde_yaml::from_str(
            "selfHosted: {runtime: vllm, model: meta-llama/Llama-3.1-8B-Instruct, huggingFaceToken: {name: hf, key: t}}",
        )
        .unwrap();
        let s = summarize(&spec).unwrap();
        assert_eq!((s.type_, s.provider), ("SelfHosted", "vllm"));
        assert_eq!(referenced_secrets(&spec), ["hf"]);
        assert_eq!(referenced_secrets(&openai_backend()), ["openai"]);
    }

    #[test]
    fn secret_states_give_distinct_reasons_without_the_value() {
        let spec = openai_backend();
        let ext = spec.external.as_ref().unwrap();
        let missing = external_readiness(ext, "team", Some(&Lookup::Missing), None);
        assert_eq!(
            (missing.status, missing.reason),
            (false, Reason::SecretNotFound)
        );
        assert!(missing.message.contains("\"openai\""));
        assert!(
            missing
                .message
                .contains("switchyard.dev/credential=provider")
        );

        // Exactly which label to add, and the command that adds it.
        let plain = external_readiness(ext, "team", Some(&Lookup::NotLabelled { has: None }), None);
        assert_eq!(
            (plain.status, plain.reason),
            (false, Reason::SecretNotLabelled)
        );
        assert!(
            plain
                .message
                .contains("kubectl label secret openai -n team switchyard.dev/credential=provider"),
            "{}",
            plain.message
        );
        // A tenant's key is never a provider credential.
        let tenant_key = external_readiness(
            ext,
            "team",
            Some(&Lookup::NotLabelled {
                has: Some("tenant-key".into()),
            }),
            None,
        );
        assert_eq!(tenant_key.reason, "SecretNotLabelled");
        assert!(
            tenant_key
                .message
                .contains("credential=tenant-key, which may not be used here")
        );

        let mut secret = Secret {
            data: Some(BTreeMap::from([(
                "other".to_owned(),
                ByteString(b"sk-secret".to_vec()),
            )])),
            ..Default::default()
        };
        let no_key = external_readiness(
            ext,
            "team",
            Some(&Lookup::Found(Box::new(secret.clone()))),
            None,
        );
        assert_eq!(
            (no_key.status, no_key.reason),
            (false, Reason::SecretKeyMissing)
        );

        secret.data = Some(BTreeMap::from([(
            "apiKey".to_owned(),
            ByteString(b"sk-secret".to_vec()),
        )]));
        let ready = external_readiness(ext, "team", Some(&Lookup::Found(Box::new(secret))), None);
        assert!(ready.status);
        for d in [missing, plain, tenant_key, no_key, ready] {
            assert!(!d.message.contains("sk-secret"));
        }
    }

    /// A private CA's bundle is checked like a credential (labelled `ca-bundle`, key present)
    /// and must hold a certificate: a broken bundle shows here, not only as failed requests.
    #[test]
    fn a_ca_bundle_must_be_labelled_present_and_hold_a_certificate() {
        let spec: InferenceBackendSpec = serde_yaml::from_str(
            "external: {dialect: openai, baseUrl: 'https://llm.internal/v1', model: m, tls: {caSecretRef: {name: private-ca, key: ca.crt}}}",
        )
        .unwrap();
        assert_eq!(referenced_secrets(&spec), ["private-ca"]);
        let ext = spec.external.as_ref().unwrap();
        let with = |value: &str| {
            let secret = Secret {
                data: Some(BTreeMap::from([(
                    "ca.crt".to_owned(),
                    ByteString(value.as_bytes().to_vec()),
                )])),
                ..Default::default()
            };
            external_readiness(ext, "team", None, Some(&Lookup::Found(Box::new(secret))))
        };
        let ca = rcgen::CertificateParams::new(vec![])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let ready = with(&ca);
        assert!(ready.status, "{}", ready.message);
        let broken = with("not a certificate");
        assert_eq!(
            (broken.status, broken.reason),
            (false, Reason::CABundleInvalid)
        );
        assert!(
            broken.message.contains("\"private-ca\""),
            "{}",
            broken.message
        );
        assert!(
            broken.message.contains("no PEM certificate"),
            "{}",
            broken.message
        );

        let unlabelled =
            external_readiness(ext, "team", None, Some(&Lookup::NotLabelled { has: None }));
        assert_eq!(unlabelled.reason, "SecretNotLabelled");
        assert!(
            unlabelled.message.contains(
                "kubectl label secret private-ca -n team switchyard.dev/credential=ca-bundle"
            ),
            "{}",
            unlabelled.message
        );
    }
}
