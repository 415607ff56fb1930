//! A self-hosted backend: its Deployment, Service and PodDisruptionBudget, warm-up of new
//! pods, and kstatus conditions that say exactly why it is not serving yet.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::health::{self, Stuck};
use super::scheduling::{self, Unschedulable};
use super::warmup::{self, State as WarmState, Target};
use super::workload::{self, BACKEND_LABEL};
use crate::api::{
    BackendEndpoint, InferenceBackend, InferenceBackendStatus, SelfHostedBackend, condition,
};
use crate::controller::conditions::{self, Desired, Reason};
use crate::controller::{Context, Error, FIELD_MANAGER};

/// What the pods and the Deployment look like, reduced to what the conditions depend on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Observed {
    pub desired: i32,
    /// Ready and warmed up.
    pub ready: i32,
    pub rolled_out: bool,
    pub warming: i32,
    pub unschedulable: Option<Unschedulable>,
    pub stuck: Option<Stuck>,
    /// A pod whose warm-up has failed `warmup::STALLED_AFTER` times in a row.
    pub warmup_failing: Option<String>,
}

/// The kstatus conditions: `(Ready, Reconciling, Stalled)`. Stalled only for what waiting
/// will not fix; Reconciling only while pods are on their way; never both.
pub fn conditions_for(
    o: &Observed,
) -> (
    Desired<'static>,
    Option<Desired<'static>>,
    Option<Desired<'static>>,
) {
    let stalled = |reason: Reason, message: String| {
        (
            Desired::new(condition::READY, false, reason, message.clone()),
            None,
            Some(Desired::new(condition::STALLED, true, reason, message)),
        )
    };
    if let Some(u) = &o.unschedulable {
        return stalled(u.reason, u.message.clone());
    }
    if let Some(s) = &o.stuck {
        return stalled(s.reason, s.message.clone());
    }
    if let Some(pod) = &o.warmup_failing {
        return stalled(
            Reason::WarmupFailed,
            format!(
                "pod {pod} keeps failing its warm-up (its inference server does not answer chat completions); retrying every {}s",
                warmup::RETRY_AFTER.as_secs()
            ),
        );
    }
    if o.desired == 0 {
        return (
            Desired::new(
                condition::READY,
                false,
                Reason::ScaledToZero,
                "replicas is 0",
            ),
            None,
            None,
        );
    }
    if o.ready >= o.desired && o.rolled_out {
        let msg = format!("{}/{} pods ready and warmed up", o.ready, o.desired);
        return (
            Desired::new(condition::READY, true, Reason::Ready, msg),
            None,
            None,
        );
    }
    let reason = if o.warming > 0 {
        Reason::WarmingUp
    } else {
        Reason::PodsStarting
    };
    let msg = format!(
        "{}/{} pods ready and warmed up, {} warming up",
        o.ready, o.desired, o.warming
    );
    (
        Desired::new(condition::READY, false, reason, msg.clone()),
        Some(Desired::new(condition::RECONCILING, true, reason, msg)),
        None,
    )
}

/// The API server refused to apply one of the backend's objects: retrying the same request
/// cannot succeed, so the backend is Stalled with the server's reason.
pub fn rejected(kind: &str, e: &kube::Error) -> Option<Desired<'static>> {
    let kube::Error::Api(s) = e else {
        return None;
    };
    let (reason, fix) = match s.code {
        403 => (
            Reason::ApplyForbidden,
            "grant the controller's ServiceAccount this permission (see the chart's RBAC)",
        ),
        422 => (
            Reason::ApplyInvalid,
            "fix spec.selfHosted so that the generated object is valid",
        ),
        _ => return None,
    };
    Some(Desired::new(
        condition::STALLED,
        true,
        reason,
        format!(
            "the API server refused to apply the {kind}: {}; {fix}",
            s.message
        ),
    ))
}

async fn apply<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
    obj: &K,
    kind: &'static str,
) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|source| Error::Apply { kind, source })
}

pub async fn reconcile(
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
    apply(ctx, ns, &name, &w.service, "Service").await?;
    let deployment: Deployment = apply(ctx, ns, &name, &w.deployment, "Deployment").await?;
    match &w.pdb {
        Some(pdb) => {
            apply(ctx, ns, &name, pdb, "PodDisruptionBudget").await?;
        }
        None => {
            let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), ns);
            match pdbs.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::Kube(e)),
            }
        }
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
    let mut warmup_failing = None;
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
                backend: format!("{ns}/{name}"),
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
                s => {
                    if s.failures() >= warmup::STALLED_AFTER && warmup_failing.is_none() {
                        warmup_failing = Some(endpoint.pod.clone());
                    }
                    false
                }
            };
        if warm {
            endpoints.push(endpoint);
        } else {
            warming += 1;
        }
    }
    ctx.warmer.retain(&format!("{ns}/{name}"), &live_uids);
    endpoints.sort_by(|a, b| a.pod.cmp(&b.pod));
    status.endpoints = endpoints;
    status.replicas = Some(sh.replicas);
    status.ready_replicas = Some(status.endpoints.len() as i32);

    let gpus = sh.gpu.as_ref().map_or(0, |g| g.count);
    let product = sh.gpu.as_ref().and_then(|g| g.product.as_deref());
    let d_status = deployment.status.clone().unwrap_or_default();
    let observed = Observed {
        desired: sh.replicas,
        ready: status.endpoints.len() as i32,
        rolled_out: d_status.observed_generation >= deployment.metadata.generation
            && d_status.updated_replicas.unwrap_or(0) >= sh.replicas
            && d_status.replicas.unwrap_or(0) == sh.replicas,
        warming,
        unschedulable: scheduling::unschedulable(
            &pods,
            now,
            ctx.config.unschedulable_grace,
            gpus,
            product,
        ),
        stuck: health::stuck(&pods),
        warmup_failing,
    };
    let (ready, reconciling, stalled) = conditions_for(&observed);
    for (type_, want) in [
        (condition::READY, Some(ready)),
        (condition::RECONCILING, reconciling),
        (condition::STALLED, stalled),
    ] {
        match want {
            Some(d) => conditions::set(&mut status.conditions, d, generation, now),
            None => conditions::remove(&mut status.conditions, type_),
        }
    }

    // Pod and Deployment events bring most changes; these requeues cover what no watch
    // reports: a warm-up finishing, and the grace period of an unschedulable pod running out.
    let unscheduled = pods
        .iter()
        .any(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_none()));
    Ok(if warming > 0 {
        Action::requeue(Duration::from_secs(1))
    } else if unscheduled && observed.unschedulable.is_none() {
        Action::requeue(ctx.config.unschedulable_grace.min(Duration::from_secs(5)))
    } else if observed.unschedulable.is_some() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(
        o: &Observed,
    ) -> (
        bool,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    ) {
        let (r, rec, st) = conditions_for(o);
        (
            r.status,
            r.reason.as_str(),
            rec.map(|d| d.reason.as_str()),
            st.map(|d| d.reason.as_str()),
        )
    }

    fn base() -> Observed {
        Observed {
            desired: 2,
            ..Default::default()
        }
    }

    #[test]
    fn stalled_states_have_their_reason_and_are_not_reconciling() {
        let stuck = |reason: &str| Observed {
            stuck: Some(Stuck {
                reason: Reason::of_stuck_container(reason).unwrap(),
                message: "m".into(),
            }),
            warming: 1,
            ..base()
        };
        for reason in [
            "CrashLoopBackOff",
            "ImagePullBackOff",
            "CreateContainerConfigError",
        ] {
            assert_eq!(reasons(&stuck(reason)), (false, reason, None, Some(reason)));
        }
        let failing = Observed {
            warmup_failing: Some("p".into()),
            warming: 1,
            ..base()
        };
        assert_eq!(
            reasons(&failing),
            (false, "WarmupFailed", None, Some("WarmupFailed"))
        );
        let unsched = Observed {
            unschedulable: Some(Unschedulable {
                reason: Reason::InsufficientGPU,
                message: "m".into(),
            }),
            ..base()
        };
        assert_eq!(
            reasons(&unsched),
            (false, "InsufficientGPU", None, Some("InsufficientGPU"))
        );
    }

    #[test]
    fn reconciling_only_while_pods_are_on_their_way() {
        let starting = base();
        assert_eq!(
            reasons(&starting),
            (false, "PodsStarting", Some("PodsStarting"), None)
        );
        let warming = Observed {
            warming: 1,
            ..base()
        };
        assert_eq!(
            reasons(&warming),
            (false, "WarmingUp", Some("WarmingUp"), None)
        );
        let ready = Observed {
            ready: 2,
            rolled_out: true,
            ..base()
        };
        assert_eq!(reasons(&ready), (true, "Ready", None, None));
        let zero = Observed {
            desired: 0,
            ..Default::default()
        };
        assert_eq!(reasons(&zero), (false, "ScaledToZero", None, None));
    }

    #[test]
    fn forbidden_and_invalid_applies_stall_with_the_servers_message() {
        let err = |code, message: &str| {
            kube::Error::Api(
                kube::core::Status::failure(message, "Forbidden")
                    .with_code(code)
                    .boxed(),
            )
        };
        let d = rejected("Deployment", &err(403, "deployments.apps is forbidden")).unwrap();
        assert_eq!(
            (d.type_, d.status, d.reason.as_str()),
            ("Stalled", true, "ApplyForbidden")
        );
        assert!(d.message.contains("deployments.apps is forbidden"));
        let d = rejected("Deployment", &err(422, "spec.template: Invalid value")).unwrap();
        assert_eq!(d.reason, "ApplyInvalid");
        assert!(rejected("Deployment", &err(500, "etcd timeout")).is_none());
    }
}
