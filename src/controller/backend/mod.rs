//! Reconciles `InferenceBackend`. External backends are Ready when their credentials Secret
//! and key exist. Self-hosted backends get a Deployment, a Service and (with more than one
//! replica) a PodDisruptionBudget; their pods are warmed up before the gateway may use them,
//! and pods the scheduler cannot place show as Stalled in the scheduler's own words.

mod finalizer;
mod runtime;
mod scheduling;
pub mod warmup;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::instrument;

use super::conditions::{self, Desired};
use super::{Context, Error, FIELD_MANAGER, status, usage};
use crate::api::{
    BackendEndpoint, ExternalBackend, InferenceBackend, InferenceBackendSpec,
    InferenceBackendStatus, SelfHostedBackend, condition, find_condition,
};
use finalizer::Guard;
use warmup::{State as WarmState, Target};
use workload::BACKEND_LABEL;

/// How often a backend waiting for its Secret is looked at again, besides the Secret watch.
const SECRET_RECHECK: Duration = Duration::from_secs(30);

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

/// Names of the Secrets a backend reads, so a Secret event can be mapped back to it.
pub fn referenced_secrets(spec: &InferenceBackendSpec) -> Vec<&str> {
    let mut names = vec![];
    if let Some(c) = spec.external.as_ref().and_then(|e| e.credentials.as_ref()) {
        names.push(c.secret_ref.name.as_str());
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
    let holders = usage::holders(&ctx.routes.state(), &ns, &ib.name_any());
    let guard = finalizer::guard(&ib, holders);
    let ib = match &guard {
        // Continue with the patched object: its resourceVersion is what status writes need.
        Guard::Add => Arc::new(finalizer::set(&api, &ib, true).await?),
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
                "InvalidSpec",
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

    let action = match (&ib.spec.external, &ib.spec.self_hosted) {
        (Some(ext), _) => reconcile_external(&ctx, &ns, ext, &mut status, generation, now).await?,
        (_, Some(sh)) => {
            reconcile_self_hosted(&ctx, &ib, &ns, sh, &mut status, generation, now).await?
        }
        (None, None) => unreachable!("summarize returned Some"),
    };
    // Held by routes: the workload keeps serving (above), and the backend says who holds it.
    if let Guard::Hold(holders) = &guard {
        conditions::set(
            &mut status.conditions,
            Desired::new(
                condition::RECONCILING,
                true,
                finalizer::IN_USE_REASON,
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

async fn reconcile_external(
    ctx: &Context,
    ns: &str,
    ext: &ExternalBackend,
    status: &mut InferenceBackendStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Result<Action, Error> {
    let secret = match &ext.credentials {
        Some(c) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            secrets
                .get_opt(&c.secret_ref.name)
                .await
                .map_err(Error::Kube)?
        }
        None => None,
    };
    let ready = external_readiness(ext, secret.as_ref());
    let waiting = !ready.status;
    conditions::set(&mut status.conditions, ready, generation, now);
    conditions::remove(&mut status.conditions, condition::STALLED);
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

async fn reconcile_self_hosted(
    ctx: &Context,
    ib: &InferenceBackend,
    ns: &str,
    sh: &SelfHostedBackend,
    status: &mut InferenceBackendStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Result<Action, Error> {
    let name = ib.name_any();
    let w = workload::build(ib, sh);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    services
        .patch(&name, &pp, &Patch::Apply(&w.service))
        .await
        .map_err(Error::Kube)?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let deployment = deployments
        .patch(&name, &pp, &Patch::Apply(&w.deployment))
        .await
        .map_err(Error::Kube)?;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), ns);
    match &w.pdb {
        Some(pdb) => {
            pdbs.patch(&name, &pp, &Patch::Apply(pdb))
                .await
                .map_err(Error::Kube)?;
        }
        None => match pdbs.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::Kube(e)),
        },
    }

    let port = w
        .service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map_or(0, |p| p[0].port);
    status.url = Some(format!("http://{name}.{ns}.svc:{port}/v1"));

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pods = pods
        .list(&ListParams::default().labels(&format!("{BACKEND_LABEL}={name}")))
        .await
        .map_err(Error::Kube)?
        .items;

    // Warm up every Ready pod not yet known to be warm; keep those already recorded.
    let mut endpoints = vec![];
    let mut warming = 0;
    let mut live_uids = vec![];
    for pod in &pods {
        let (Some(uid), Some(ip)) = (pod.metadata.uid.as_deref(), pod_ip(pod)) else {
            continue;
        };
        live_uids.push(uid);
        if pod.metadata.deletion_timestamp.is_some() || !pod_ready(pod) {
            continue;
        }
        let endpoint = BackendEndpoint {
            pod: pod.name_any(),
            address: format!("{ip}:{port}"),
        };
        let wanted = ib.spec.warmup.as_ref().map_or(0, |w| w.requests);
        let warm = wanted == 0
            || status.endpoints.contains(&endpoint)
            || match ctx.warmer.poll(&Target {
                uid: uid.to_owned(),
                pod: endpoint.pod.clone(),
                address: endpoint.address.clone(),
                model: sh.model.clone(),
                requests: wanted,
            }) {
                WarmState::Done => {
                    ctx.event(
                        ib,
                        EventType::Normal,
                        "WarmupCompleted",
                        format!("pod {} answered {wanted} warm-up requests", endpoint.pod),
                    )
                    .await;
                    true
                }
                WarmState::Running | WarmState::Failed { .. } => false,
            };
        if warm {
            endpoints.push(endpoint);
        } else {
            warming += 1;
        }
    }
    ctx.warmer.retain(&live_uids);
    endpoints.sort_by(|a, b| a.pod.cmp(&b.pod));
    status.endpoints = endpoints;
    status.replicas = Some(sh.replicas);
    status.ready_replicas = Some(status.endpoints.len() as i32);

    let gpus = sh.gpu.as_ref().map_or(0, |g| g.count);
    let product = sh.gpu.as_ref().and_then(|g| g.product.as_deref());
    let stuck =
        scheduling::unschedulable(&pods, now, ctx.config.unschedulable_grace, gpus, product);
    let d_status = deployment.status.clone().unwrap_or_default();
    let rolled_out = d_status.observed_generation >= deployment.metadata.generation
        && d_status.updated_replicas.unwrap_or(0) >= sh.replicas
        && d_status.replicas.unwrap_or(0) == sh.replicas;
    let ready = status.endpoints.len() as i32;

    let (ready_cond, reconciling) = if let Some(u) = &stuck {
        conditions::set(
            &mut status.conditions,
            Desired::new(condition::STALLED, true, u.reason, u.message.clone()),
            generation,
            now,
        );
        (
            Desired::new(condition::READY, false, u.reason, u.message.clone()),
            None,
        )
    } else {
        conditions::remove(&mut status.conditions, condition::STALLED);
        if sh.replicas == 0 {
            (
                Desired::new(condition::READY, false, "ScaledToZero", "replicas is 0"),
                None,
            )
        } else if ready >= sh.replicas && rolled_out {
            (
                Desired::new(
                    condition::READY,
                    true,
                    "Ready",
                    format!("{ready}/{} pods ready and warmed up", sh.replicas),
                ),
                None,
            )
        } else {
            let reason = if warming > 0 {
                "WarmingUp"
            } else {
                "PodsStarting"
            };
            let msg = format!(
                "{ready}/{} pods ready and warmed up, {warming} warming up",
                sh.replicas
            );
            (
                Desired::new(condition::READY, false, reason, msg.clone()),
                Some(Desired::new(condition::RECONCILING, true, reason, msg)),
            )
        }
    };
    conditions::set(&mut status.conditions, ready_cond, generation, now);
    match reconciling {
        Some(r) => conditions::set(&mut status.conditions, r, generation, now),
        None => conditions::remove(&mut status.conditions, condition::RECONCILING),
    }

    // Pod and Deployment events bring most changes; these requeues cover what no watch
    // reports: a warm-up finishing, and the grace period of an unschedulable pod running out.
    let unscheduled = pods
        .iter()
        .any(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_none()));
    Ok(if warming > 0 {
        Action::requeue(Duration::from_secs(1))
    } else if unscheduled && stuck.is_none() {
        Action::requeue(ctx.config.unschedulable_grace.min(Duration::from_secs(5)))
    } else if stuck.is_some() {
        Action::requeue(Duration::from_secs(30))
    } else {
        Action::await_change()
    })
}

fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.pod_ip.as_deref()
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
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
    status::write(&api, ib, after).await?;
    if let Some(c) = find_condition(&after.conditions, condition::RECONCILING)
        && c.reason == finalizer::IN_USE_REASON
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
            (_, r @ ("SecretNotFound" | "SecretKeyMissing")) => {
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
