//! `kubectl switchyard …`: imperative actions on a route's migration, its status, listings
//! and shell completion. The binary is also the kubectl plugin (installed as
//! `kubectl-switchyard` on PATH, see `make install-plugin`). Actions are annotations the
//! controller carries out once each; they never touch spec, so GitOps tools see no drift and
//! do not revert them.

pub mod completion;
pub mod cost;
pub mod get;
pub mod prometheus;
pub mod report;
pub mod status;
mod table;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Config};
use serde_json::json;

use crate::api::ModelRoute;
use crate::controller::{COMMAND_ANNOTATION, COMMAND_ID_ANNOTATION};

#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The ModelRoute: NAME, or mr/NAME (modelroute/NAME, modelroutes/NAME) as kubectl writes it.
    #[arg(value_parser = route_name, add = completion::routes())]
    pub route: String,
    /// Namespace of the route (default: the kubeconfig context's).
    #[arg(short, long, add = completion::namespaces())]
    pub namespace: Option<String>,
}

/// The kinds a `KIND/NAME` argument may name: kubectl's spellings of ModelRoute.
const ROUTE_KINDS: [&str; 5] = [
    "mr",
    "modelroute",
    "modelroutes",
    "modelroute.switchyard.dev",
    "modelroutes.switchyard.dev",
];

/// The route's name from `NAME` or `KIND/NAME`; another kind is refused rather than read
/// as a route of that name.
pub fn route_name(arg: &str) -> Result<String, String> {
    let name = match arg.split_once('/') {
        None => arg,
        Some((kind, name)) if ROUTE_KINDS.contains(&kind.to_ascii_lowercase().as_str()) => name,
        Some((kind, _)) => {
            return Err(format!("{kind} is not a ModelRoute; give NAME or mr/NAME"));
        }
    };
    if name.is_empty() || name.contains('/') {
        return Err(format!("{arg:?} names no route; give NAME or mr/NAME"));
    }
    Ok(name.to_string())
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

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
pub fn write_stdout(text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// A client and the namespace `target` is in.
async fn client(target: &Target) -> anyhow::Result<(Client, String)> {
    let config = Config::infer().await?;
    let ns = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok((Client::try_from(config)?, ns))
}

async fn api(target: &Target) -> anyhow::Result<(Api<ModelRoute>, String)> {
    let (client, ns) = client(target).await?;
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

#[cfg(test)]
mod tests {
    use super::route_name;

    #[test]
    fn routes_are_named_as_kubectl_names_them() {
        for arg in [
            "chat",
            "mr/chat",
            "modelroute/chat",
            "modelroutes/chat",
            "MR/chat",
            "modelroutes.switchyard.dev/chat",
        ] {
            assert_eq!(route_name(arg).as_deref(), Ok("chat"), "{arg}");
        }
        for arg in ["ib/chat", "mr/", "mr/a/b", ""] {
            assert!(route_name(arg).is_err(), "{arg} accepted");
        }
    }
}
