//! Reconciles `ModelRoute`: resolves its backends, runs the analysis that is due, and lets
//! the migration engine decide the next status; writes it and publishes its Events.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::instrument;

use kube::runtime::events::EventType;

use super::conditions::{self, Desired};
use super::conflict::{self, Verdict};
use super::{Context, Error, status};
use crate::analysis;
use crate::api::{
    AnalysisResult, ModelRoute, ModelRouteSpec, ModelRouteStatus, WeightedBackend, condition,
    find_condition,
};
use crate::migration::{self, AnalysisPlan, Command, CommandKind, Inputs};

/// How often a route naming a backend that does not exist, or shadowed by an older route
/// claiming its model name, looks again.
const MISSING_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// `openai=95,llama=5`, the compact form `kubectl get mr` shows.
pub fn weights_summary(weights: &[WeightedBackend]) -> String {
    weights
        .iter()
        .map(|w| format!("{}={}", w.name, w.weight))
        .collect::<Vec<_>>()
        .join(",")
}

/// Two splits are the same when every backend gets the same weight; order does not matter.
pub fn same_split(a: &[WeightedBackend], b: &[WeightedBackend]) -> bool {
    let key = |ws: &[WeightedBackend]| {
        let mut v: Vec<_> = ws
            .iter()
            .filter(|w| w.weight > 0)
            .map(|w| (w.name.clone(), w.weight))
            .collect();
        v.sort();
        v
    };
    key(a) == key(b)
}

/// The status of a route naming backends that do not exist: nothing moves, and the
/// condition names them.
pub fn next_status(
    name: &str,
    spec: &ModelRouteSpec,
    current: &ModelRouteStatus,
    missing: &[String],
    generation: Option<i64>,
    now: Timestamp,
) -> ModelRouteStatus {
    let mut status = current.clone();
    status.observed_generation = generation;
    status.model = Some(spec.model_name(name).to_owned());
    let names = missing
        .iter()
        .map(|m| format!("{m:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let message = format!(
        "InferenceBackend {names} not found in this namespace; create it or remove it from spec"
    );
    // Waiting will not create the backend: Stalled (kstatus Failed), not Reconciling.
    for type_ in [condition::READY, condition::STALLED] {
        let want = Desired::new(
            type_,
            type_ == condition::STALLED,
            "BackendNotFound",
            message.clone(),
        );
        conditions::set(&mut status.conditions, want, generation, now);
    }
    conditions::remove(&mut status.conditions, condition::RECONCILING);
    status
}

/// Annotations that carry `kubectl switchyard` commands, so actions never touch spec.
pub const COMMAND_ANNOTATION: &str = "switchyard.dev/command";
pub const COMMAND_ID_ANNOTATION: &str = "switchyard.dev/command-id";

fn command(mr: &ModelRoute) -> Option<Command> {
    let a = mr.metadata.annotations.as_ref()?;
    Some(Command {
        kind: CommandKind::parse(a.get(COMMAND_ANNOTATION)?)?,
        id: a.get(COMMAND_ID_ANNOTATION)?.clone(),
    })
}

#[instrument(skip_all, fields(route = %mr.name_any(), namespace = mr.namespace().unwrap_or_default()))]
pub async fn reconcile(mr: Arc<ModelRoute>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = mr.namespace().ok_or(Error::MissingNamespace)?;
    let name = mr.name_any();
    let generation = mr.meta().generation;
    let now = Timestamp::now();
    ctx.caches_ready().await?;
    let model = mr.spec.model_name(&name).to_owned();
    let contest = conflict::verdict(&mr, &ctx.routes.state());
    if let Verdict::Shadowed { .. } = contest {
        // The gateway serves the other route: this one neither serves nor migrates.
        let current = mr.status.clone().unwrap_or_default();
        let mut status = current.clone();
        status.observed_generation = generation;
        status.model = Some(model.clone());
        conflict::mark(&mut status, &contest, &model, generation, now);
        publish(&ctx, &mr, &current, &status).await?;
        // The rival's deletion may reach this reconcile before the route cache: look again.
        return Ok(Action::requeue(MISSING_RECHECK));
    }
    let mut missing = vec![];
    let mut not_ready = vec![];
    let weighted = mr
        .spec
        .backends
        .iter()
        .filter(|b| b.weight > 0)
        .map(|b| &b.name);
    for b in mr
        .spec
        .backends
        .iter()
        .map(|b| &b.name)
        .chain(mr.spec.fallback.iter().map(|f| &f.name))
    {
        // From the watch cache: a reconcile never costs one GET per referenced backend.
        match ctx.backends.get(&ObjectRef::new(b).within(&ns)) {
            None if !missing.contains(b) => missing.push(b.clone()),
            Some(ib) if weighted.clone().any(|w| w == b) => {
                let ready = ib
                    .status
                    .as_ref()
                    .and_then(|s| find_condition(&s.conditions, condition::READY))
                    .is_some_and(|c| c.status == "True");
                if !ready {
                    not_ready.push(b.clone());
                }
            }
            _ => {}
        }
    }
    let current = mr.status.clone().unwrap_or_default();
    if !missing.is_empty() {
        let status = next_status(&name, &mr.spec, &current, &missing, generation, now);
        publish(&ctx, &mr, &current, &status).await?;
        // The backend cache is another watch: it may not yet hold a backend whose creation
        // triggered this reconcile, so look again rather than wait for the next event.
        return Ok(Action::requeue(MISSING_RECHECK));
    }

    let analysis = match migration::analysis_due(&mr.spec, &current, now) {
        Some(plan) => Some(analyze(&ctx, &mr, &ns, &name, plan, now).await),
        None => None,
    };
    let mut decision = migration::decide(Inputs {
        spec: &mr.spec,
        status: &current,
        generation,
        not_ready: &not_ready,
        analysis,
        command: command(&mr),
        now,
    });
    decision.status.model = Some(model.clone());
    conflict::mark(&mut decision.status, &contest, &model, generation, now);
    publish(&ctx, &mr, &current, &decision.status).await?;
    for e in decision.events {
        let t = if e.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.event(mr.as_ref(), t, e.reason, e.message).await;
    }
    Ok(decision
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

/// Runs the due analysis against the route's Prometheus (or the controller's).
async fn analyze(
    ctx: &Context,
    mr: &ModelRoute,
    ns: &str,
    name: &str,
    plan: AnalysisPlan,
    now: Timestamp,
) -> AnalysisResult {
    let cfg = migration::settings(&mr.spec);
    let request = analysis::Request {
        namespace: ns,
        route: name,
        gaining: plan.gaining,
        baseline: plan.baseline,
        analysis: &cfg.analysis,
        mirror: plan.mirror,
    };
    let url = cfg
        .analysis
        .prometheus_url
        .clone()
        .or_else(|| ctx.config.prometheus_url.clone());
    let result = match url.as_deref().map(analysis::Prometheus::new) {
        Some(Ok(source)) => analysis::run(&source, &request, now).await,
        Some(Err(e)) => analysis::without_prometheus(&request, now, &e.to_string()).await,
        None => {
            let why = "no Prometheus configured (--prometheus-url or spec.rollout.analysis.prometheusUrl)";
            analysis::without_prometheus(&request, now, why).await
        }
    };
    tracing::info!(verdict = ?result.verdict, summary = %analysis::summary(&result), "analysis");
    result
}

async fn publish(
    ctx: &Context,
    mr: &ModelRoute,
    before: &ModelRouteStatus,
    after: &ModelRouteStatus,
) -> Result<(), Error> {
    let mut after = after.clone();
    conditions::keep_transition_times(&before.conditions, &mut after.conditions);
    if *before == after {
        return Ok(());
    }
    let api: Api<ModelRoute> =
        Api::namespaced(ctx.client.clone(), &mr.namespace().unwrap_or_default());
    status::write(&api, mr, &after).await?;
    if let Some(message) = conflict::news(before, &after) {
        ctx.event(mr, EventType::Warning, conflict::REASON, message)
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_backend_is_named_and_nothing_is_applied() {
        let spec: ModelRouteSpec =
            serde_yaml::from_str("backends: [{name: ghost, weight: 1}]").unwrap();
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let st = next_status(
            "chat",
            &spec,
            &ModelRouteStatus::default(),
            &["ghost".into()],
            Some(1),
            now,
        );
        assert!(st.weights.is_empty());
        let ready = crate::api::find_condition(&st.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "BackendNotFound")
        );
        assert!(ready.message.contains("\"ghost\""));
        let stalled = crate::api::find_condition(&st.conditions, "Stalled").unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "BackendNotFound")
        );
        assert!(crate::api::find_condition(&st.conditions, "Reconciling").is_none());
    }

    #[test]
    fn splits_compare_without_order_or_zero_weights() {
        let a: Vec<WeightedBackend> =
            serde_yaml::from_str("[{name: x, weight: 1}, {name: y, weight: 0}]").unwrap();
        let b: Vec<WeightedBackend> = serde_yaml::from_str("[{name: x, weight: 1}]").unwrap();
        assert!(same_split(&a, &b));
        assert_eq!(weights_summary(&a), "x=1,y=0");
    }
}
