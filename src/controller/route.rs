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

use super::conditions;
use super::conflict::{self, Verdict};
use super::cost;
use super::{Context, Error, status};
use crate::analysis;
use crate::api::{
    AnalysisResult, CostComparison, ModelRoute, ModelRouteSpec, ModelRouteStatus, condition,
    find_condition,
};
use crate::migration::{self, AnalysisPlan, AnalysisSource, Command, CommandKind, Inputs};

pub use crate::migration::{same_split, weights_summary};

/// How often a route naming a backend that does not exist, or shadowed by an older route
/// claiming its model name, looks again.
const MISSING_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

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
    let contest = conflict::verdict(&mr, &ctx.claimants(&ns, &model));
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
    // The shadow after a cutover stops when an old backend goes away; a finalizer keeps it
    // while the shadow copies to it, so "being deleted" is what ends the shadow.
    let shadow_gone: Vec<String> = current
        .post_cutover
        .iter()
        .filter(|_| migration::post_cutover::shadowing(&current))
        .flat_map(|p| &p.backends)
        .filter(|b| {
            ctx.backends
                .get(&ObjectRef::new(b).within(&ns))
                .is_none_or(|ib| ib.metadata.deletion_timestamp.is_some())
        })
        .cloned()
        .collect();

    let (analysis, cost) = match migration::analysis_due(&mr.spec, &current, now) {
        Some(plan) => {
            let (result, cost) = analyze(&ctx, &mr, &ns, &name, plan, now).await;
            (Some(result), cost)
        }
        None => (None, None),
    };
    let targets_ready = not_ready.is_empty() && missing.is_empty();
    let evaluation = match migration::evaluation_due(&mr.spec, &current, targets_ready, now) {
        Some(plan) => Some(super::evaluation::replay(&ctx, &mr, &ns, plan, now).await),
        None => None,
    };
    let prometheus = match prometheus_url(&ctx, &mr.spec, &current) {
        Some(_) => AnalysisSource::Configured,
        None => AnalysisSource::NotConfigured,
    };
    let mut decision = migration::decide(Inputs {
        spec: &mr.spec,
        status: &current,
        generation,
        missing: &missing,
        not_ready: &not_ready,
        shadow_gone: &shadow_gone,
        prometheus,
        analysis,
        evaluation,
        command: command(&mr),
        now,
    });
    decision.status.model = Some(model.clone());
    if cost.is_some() {
        decision.status.cost = cost;
    }
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
    // The backend cache is another watch: it may not yet hold a backend whose creation
    // triggered this reconcile, so a route naming a missing one looks again soon.
    let requeue = match (decision.requeue, missing.is_empty()) {
        (Some(d), false) => Some(d.min(MISSING_RECHECK)),
        (None, false) => Some(MISSING_RECHECK),
        (d, true) => d,
    };
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Runs the due analysis against the route's Prometheus (or the controller's), and
/// measures what the stable and the gaining backends cost over the same window.
async fn analyze(
    ctx: &Context,
    mr: &ModelRoute,
    ns: &str,
    name: &str,
    plan: AnalysisPlan,
    now: Timestamp,
) -> (AnalysisResult, Option<CostComparison>) {
    let status = mr.status.clone().unwrap_or_default();
    let cfg = migration::settings(&mr.spec, &status);
    let mut request = analysis::Request {
        namespace: ns,
        route: name,
        gaining: plan.gaining,
        baseline: plan.baseline,
        analysis: &cfg.analysis,
        mirror: plan.mirror,
        scrape_interval: ctx.config.scrape_interval,
    };
    let url = prometheus_url(ctx, &mr.spec, &status);
    let mut cost = None;
    let result = match url.as_deref().map(analysis::Prometheus::new) {
        Some(Ok(source)) => {
            if request.scrape_interval.is_none() {
                request.scrape_interval = ctx.scrape_intervals.get(&source).await;
            }
            let result = analysis::run(&source, &request, now).await;
            // status.cost compares the stable split with the backends gaining traffic; the
            // shadow's old backends gain none, so the promotion's comparison stays.
            let shadow = migration::post_cutover::shadowing(&status) && status.target.is_empty();
            if let Ok(window) = analysis::window(request.analysis, request.scrape_interval)
                && !shadow
            {
                let (stable, gaining) = (&request.baseline, &request.gaining);
                cost = cost::compare(&source, ns, name, stable, gaining, window, now).await;
            }
            result
        }
        Some(Err(e)) => analysis::without_prometheus(&request, now, &e.to_string()).await,
        None => {
            let why = "no Prometheus configured (--prometheus-url or spec.rollout.analysis.prometheusUrl)";
            analysis::without_prometheus(&request, now, why).await
        }
    };
    tracing::info!(verdict = ?result.verdict, summary = %analysis::summary(&result), "analysis");
    (result, cost)
}

/// The Prometheus a route's migration is judged by: the running migration's own setting
/// (its snapshot in status), else the controller's `--prometheus-url`.
fn prometheus_url(
    ctx: &Context,
    spec: &ModelRouteSpec,
    status: &ModelRouteStatus,
) -> Option<String> {
    migration::settings(spec, status)
        .analysis
        .prometheus_url
        .clone()
        .or_else(|| ctx.config.prometheus_url.clone())
}

async fn publish(
    ctx: &Context,
    mr: &ModelRoute,
    before: &ModelRouteStatus,
    after: &ModelRouteStatus,
) -> Result<(), Error> {
    let mut after = after.clone();
    conditions::keep_transition_times(&before.conditions, &mut after.conditions);
    let ns = mr.namespace().unwrap_or_default();
    let changed = *before != after;
    if changed {
        let api: Api<ModelRoute> = Api::namespaced(ctx.client.clone(), &ns);
        if status::write(&api, mr, &after).await? {
            super::wrote("modelroute", mr, ctx);
        }
    }
    // Written, or already current: what the gateway applies now, so what dashboards show.
    ctx.metrics
        .decisions
        .observe(&ns, &mr.name_any(), before, &after);
    if changed && let Some(message) = conflict::news(before, &after) {
        ctx.event(mr, EventType::Warning, conflict::REASON.as_str(), message)
            .await;
    }
    Ok(())
}
