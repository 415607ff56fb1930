//! `kubectl switchyard …`: imperative actions on a route's migration, and its status. The
//! binary is also the kubectl plugin (install it as `kubectl-switchyard` on PATH).
//! Actions are annotations the controller carries out once each; they never touch spec, so
//! GitOps tools see no drift and do not revert them.

mod status;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Config};
use serde_json::json;

use crate::api::ModelRoute;
use crate::controller::{COMMAND_ANNOTATION, COMMAND_ID_ANNOTATION};

#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The ModelRoute.
    pub route: String,
    /// Namespace of the route (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub enum Action {
    Promote { full: bool },
    Abort,
    Pause,
    Resume,
    Retry,
}

impl Action {
    fn annotation(self) -> &'static str {
        match self {
            Action::Promote { full: false } => "promote",
            Action::Promote { full: true } => "promote-full",
            Action::Abort => "abort",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Retry => "retry",
        }
    }
}

async fn api(target: &Target) -> anyhow::Result<(Api<ModelRoute>, String)> {
    let config = Config::infer().await?;
    let ns = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)?;
    Ok((Api::namespaced(client, &ns), ns))
}

/// Asks the controller to carry out `action` and waits until it has.
pub async fn act(target: Target, action: Action) -> anyhow::Result<()> {
    let (api, ns) = api(&target).await?;
    let id = format!("{:x}-{:08x}", std::process::id(), fastrand::u32(..));
    let patch = json!({"metadata": {"annotations": {
        COMMAND_ANNOTATION: action.annotation(),
        COMMAND_ID_ANNOTATION: id,
    }}});
    api.patch(
        &target.route,
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| anyhow::anyhow!("modelroute {ns}/{}: {e}", target.route))?;
    for _ in 0..60 {
        let mr = api.get(&target.route).await?;
        let status = mr.status.clone().unwrap_or_default();
        if status.last_command.as_deref() == Some(id.as_str()) {
            let result = status
                .last_command_result
                .unwrap_or_else(|| format!("{} handled", action.annotation()));
            // A command that changed nothing is an error for scripts, with the reason.
            if result.contains(crate::migration::IGNORED) {
                anyhow::bail!("{}: {result}", target.route);
            }
            println!(
                "{}: {result}; phase {:?}, weights {}",
                target.route,
                status.phase.map_or("unknown".into(), |p| format!("{p:?}")),
                status.weights_summary.unwrap_or_default()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::bail!(
        "the controller has not acted on `{}` within 15s; is `switchyard controller` running?",
        action.annotation()
    )
}

/// Prints the route's migration: steps, weights, last analysis against thresholds, history.
pub async fn status(target: Target) -> anyhow::Result<()> {
    let (api, ns) = api(&target).await?;
    let mr = api
        .get(&target.route)
        .await
        .map_err(|e| anyhow::anyhow!("modelroute {ns}/{}: {e}", target.route))?;
    print!(
        "{}",
        status::render(&mr, k8s_openapi::jiff::Timestamp::now())
    );
    Ok(())
}
