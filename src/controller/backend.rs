//! Reconciles `InferenceBackend`: publishes what the backend is and whether it can take
//! traffic. External backends are Ready when their credentials Secret and key exist.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::instrument;

use super::conditions::{self, Desired};
use super::{Context, Error, FIELD_MANAGER};
use crate::api::{
    ExternalBackend, InferenceBackend, InferenceBackendSpec, InferenceBackendStatus, condition,
};

/// How often a backend waiting for its Secret is looked at again.
const SECRET_RECHECK: Duration = Duration::from_secs(10);

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

/// Readiness of an external backend given the Secret its credentials name (if it exists).
/// Messages name the Secret and key, never the value.
pub fn external_readiness(ext: &ExternalBackend, secret: Option<&Secret>) -> Desired<'static> {
    let Some(creds) = &ext.credentials else {
        return Desired::new(condition::READY, true, "Ready", "no credentials required");
    };
    let r = &creds.secret_ref;
    let Some(secret) = secret else {
        return Desired::new(
            condition::READY,
            false,
            "SecretNotFound",
            format!(
                "Secret {:?} not found; create it with key {:?} holding the API key",
                r.name, r.key
            ),
        );
    };
    let has_key = secret
        .data
        .as_ref()
        .is_some_and(|d| d.get(&r.key).is_some_and(|v| !v.0.is_empty()))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.get(&r.key).is_some_and(|v| !v.is_empty()));
    if has_key {
        Desired::new(
            condition::READY,
            true,
            "Ready",
            format!("credentials found in Secret {:?}", r.name),
        )
    } else {
        Desired::new(
            condition::READY,
            false,
            "SecretKeyMissing",
            format!("Secret {:?} has no non-empty key {:?}", r.name, r.key),
        )
    }
}

#[instrument(skip_all, fields(backend = %ib.name_any(), namespace = ib.namespace().unwrap_or_default()))]
pub async fn reconcile(ib: Arc<InferenceBackend>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ib.namespace().ok_or(Error::MissingNamespace)?;
    let generation = ib.meta().generation;
    let now = Timestamp::now();
    let mut status = ib.status.clone().unwrap_or_default();
    status.observed_generation = generation;

    let Some(summary) = summarize(&ib.spec) else {
        conditions::set(
            &mut status.conditions,
            Desired::new(
                condition::STALLED,
                true,
                "InvalidSpec",
                "set exactly one of spec.external or spec.selfHosted",
            ),
            generation,
            now,
        );
        patch_status(&ctx, &ns, &ib.name_any(), &status).await?;
        return Ok(Action::await_change());
    };
    status.r#type = Some(summary.type_.to_owned());
    status.provider = Some(summary.provider.to_owned());
    status.model = Some(summary.model);
    status.url = summary.url;

    let mut requeue = None;
    if let Some(ext) = &ib.spec.external {
        let secret = match &ext.credentials {
            Some(c) => {
                let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
                secrets
                    .get_opt(&c.secret_ref.name)
                    .await
                    .map_err(Error::Kube)?
            }
            None => None,
        };
        let ready = external_readiness(ext, secret.as_ref());
        if !ready.status {
            requeue = Some(SECRET_RECHECK);
        }
        conditions::set(&mut status.conditions, ready, generation, now);
        conditions::remove(&mut status.conditions, condition::STALLED);
        conditions::remove(&mut status.conditions, condition::RECONCILING);
    }

    if ib.status.as_ref() != Some(&status) {
        patch_status(&ctx, &ns, &ib.name_any(), &status).await?;
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

async fn patch_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    status: &InferenceBackendStatus,
) -> Result<(), Error> {
    let api: Api<InferenceBackend> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({
        "apiVersion": "switchyard.dev/v1alpha1",
        "kind": "InferenceBackend",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
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
            "selfHosted: {runtime: vllm, model: meta-llama/Llama-3.1-8B-Instruct}",
        )
        .unwrap();
        let s = summarize(&spec).unwrap();
        assert_eq!((s.type_, s.provider), ("SelfHosted", "vllm"));
    }

    #[test]
    fn secret_states_give_distinct_reasons_without_the_value() {
        let spec = openai_backend();
        let ext = spec.external.as_ref().unwrap();
        let missing = external_readiness(ext, None);
        assert_eq!((missing.status, missing.reason), (false, "SecretNotFound"));
        assert!(missing.message.contains("\"openai\""));

        let mut secret = Secret {
            data: Some(BTreeMap::from([(
                "other".to_owned(),
                ByteString(b"sk-secret".to_vec()),
            )])),
            ..Default::default()
        };
        let no_key = external_readiness(ext, Some(&secret));
        assert_eq!((no_key.status, no_key.reason), (false, "SecretKeyMissing"));

        secret.data = Some(BTreeMap::from([(
            "apiKey".to_owned(),
            ByteString(b"sk-secret".to_vec()),
        )]));
        let ready = external_readiness(ext, Some(&secret));
        assert!(ready.status);
        for d in [missing, no_key, ready] {
            assert!(!d.message.contains("sk-secret"));
        }
    }
}
