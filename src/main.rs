use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};
use switchyard::cli::Action;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Move LLM traffic between providers and self-hosted GPU backends, one judged step at a time"
)]
struct Cli {
    /// Log one JSON object per line.
    #[arg(long, global = true, env = "SWITCHYARD_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD (what `crds/` holds).
    Crds {
        /// Write `<crd name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Also write the API reference generated from the CRDs (Markdown) to this file.
        #[arg(long, value_name = "FILE")]
        api_reference: Option<std::path::PathBuf>,
    },
    /// Reconcile InferenceBackends and ModelRoutes.
    Controller(switchyard::controller::Args),
    /// Serve the OpenAI- and Anthropic-compatible endpoint.
    Gateway(switchyard::gateway::Args),
    /// Move a migration to its next step now (or, with --full, to the desired split).
    Promote {
        #[command(flatten)]
        target: switchyard::cli::Target,
        /// Skip every remaining step.
        #[arg(long)]
        full: bool,
    },
    /// Roll a migration back to the stable split.
    Abort(switchyard::cli::Target),
    /// Hold a migration at its current step.
    Pause(switchyard::cli::Target),
    /// Continue a paused migration.
    Resume(switchyard::cli::Target),
    /// Try a rolled-back migration again.
    Retry(switchyard::cli::Target),
    /// Show a route's steps, weights, last analysis against thresholds, and history.
    Status(switchyard::cli::status::StatusArgs),
    /// List ModelRoutes (phase, step, weights) and InferenceBackends (readiness, pods).
    Get(switchyard::cli::get::GetArgs),
    /// What a route's traffic cost over a window, per backend or tenant, from Prometheus.
    Cost(switchyard::cli::cost::CostArgs),
    /// Draw a route's migration timeline from Prometheus and its history, as PNG and SVG.
    Report(switchyard::cli::report::ReportArgs),
    /// Print a shell completion script for `kubectl-switchyard` and `switchyard`.
    Completion {
        #[arg(value_enum)]
        shell: switchyard::cli::completion::Shell,
    },
    /// Print the version.
    Version,
}

// The gateway allocates a few small buffers per request and frees them on another worker;
// glibc's allocator spent a tenth of a proxied request's CPU on that, mimalloc a fraction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Two rustls crypto providers are compiled in (kube uses ring, reqwest aws-lc-rs); pick one
    // for the whole process so TLS clients never have to guess.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A shell or kubectl asking for completions gets them before anything else runs (and
    // before a runtime exists: route names are looked up on a small one of their own).
    if switchyard::cli::completion::complete_if_asked(Cli::command)? {
        return Ok(());
    }
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crds { dir, api_reference } => {
            if let Some(path) = api_reference {
                let crds = switchyard::api::crds();
                std::fs::write(path, switchyard::api::reference::markdown(&crds))?;
            }
            match dir {
                None => std::io::stdout().write_all(switchyard::api::crds_yaml()?.as_bytes())?,
                Some(dir) => {
                    std::fs::create_dir_all(&dir)?;
                    for (name, yaml) in switchyard::api::crd_files()? {
                        std::fs::write(dir.join(name), yaml)?;
                    }
                }
            }
            Ok(())
        }
        Command::Controller(args) => {
            switchyard::telemetry::init(cli.log_json);
            switchyard::controller::run(args).await
        }
        Command::Gateway(args) => {
            switchyard::telemetry::init(cli.log_json);
            switchyard::gateway::run(args).await
        }
        Command::Promote { target, full } => {
            switchyard::cli::act(target, Action::Promote { full }).await
        }
        Command::Abort(t) => switchyard::cli::act(t, Action::Abort).await,
        Command::Pause(t) => switchyard::cli::act(t, Action::Pause).await,
        Command::Resume(t) => switchyard::cli::act(t, Action::Resume).await,
        Command::Retry(t) => switchyard::cli::act(t, Action::Retry).await,
        Command::Status(args) => switchyard::cli::status::run(args).await,
        Command::Get(args) => switchyard::cli::get::run(args).await,
        Command::Cost(args) => switchyard::cli::cost::run(args).await,
        Command::Report(args) => switchyard::cli::report::run(args).await,
        Command::Completion { shell } => {
            let mut script = Vec::new();
            switchyard::cli::completion::script(shell, &mut script)?;
            Ok(switchyard::cli::write_stdout(&script)?)
        }
        Command::Version => {
            println!("switchyard {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
