//! Shell completion, with route and namespace names read from the cluster.
//!
//! Two ways in, one engine (clap_complete's):
//! - `kubectl-switchyard completion bash|zsh|fish` prints a script for `kubectl-switchyard`
//!   and `switchyard` typed as commands; at each Tab the shell runs the binary again with
//!   `COMPLETE=<shell>` set, and [`complete_if_asked`] answers.
//! - `kubectl switchyard <Tab>`: kubectl (1.26 and later) completes a plugin's arguments by
//!   running `kubectl_complete-switchyard ARGS… CURRENT` from PATH and reading one candidate
//!   per line, then `:<directive>` (Cobra's protocol). That executable is this binary under
//!   that name (a symlink), so it needs no script of its own.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{Bash, CompleteEnv, EnvCompleter, Fish, Zsh};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::{Client, Config};

use crate::api::ModelRoute;

/// The plugin's executable: kubectl runs `kubectl switchyard …` as this.
pub const PLUGIN: &str = "kubectl-switchyard";
/// What kubectl runs to complete the plugin's arguments.
pub const KUBECTL_HELPER: &str = "kubectl_complete-switchyard";
/// Names the scripts complete: the plugin, and the binary under its own name.
const COMMANDS: [&str; 2] = [PLUGIN, "switchyard"];
/// The variable the scripts set when they call back for candidates.
const VAR: &str = "COMPLETE";
/// Cobra's ShellCompDirectiveNoFileComp: offer no file names when no candidate fits.
const NO_FILE_COMPLETION: u8 = 4;
/// A Tab must not hang on an unreachable cluster.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Prints the completion script for `shell`.
pub fn script(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
    };
    for command in COMMANDS {
        // The completer is the command itself, looked up on PATH at each Tab, so the script
        // stays right when an upgrade moves the binary (krew keeps one directory per version).
        completer.write_registration(VAR, command, command, command, out)?;
    }
    Ok(())
}

/// Answers a completion request when this process was started for one, and says whether it
/// was: run as `kubectl_complete-switchyard` by kubectl, or with `COMPLETE` set by a script.
pub fn complete_if_asked(command: fn() -> clap::Command) -> anyhow::Result<bool> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(OsStr::to_os_string);
    let words = args.get(1..).unwrap_or_default();
    // Route names live in the namespace typed before them; the word being completed is last.
    let _ = NAMESPACE.set(namespace_in(&words[..words.len().saturating_sub(1)]));
    let cwd = std::env::current_dir().ok();
    if invoked_as.as_deref() == Some(OsStr::new(KUBECTL_HELPER)) {
        let out = kubectl_candidates(&mut command(), words, cwd.as_deref())?;
        std::io::stdout().write_all(out.as_bytes())?;
        return Ok(true);
    }
    Ok(CompleteEnv::with_factory(command)
        .var(VAR)
        .try_complete(args, cwd.as_deref())?)
}

/// kubectl's plugin completion protocol: `args` are the plugin's arguments, the last one the
/// word being completed (empty for a new word); the answer is one `value\thelp` line per
/// candidate, then the directive.
pub fn kubectl_candidates(
    cmd: &mut clap::Command,
    args: &[OsString],
    cwd: Option<&std::path::Path>,
) -> std::io::Result<String> {
    let mut words = vec![OsString::from(PLUGIN)];
    words.extend(args.iter().cloned());
    if words.len() == 1 {
        words.push(OsString::new());
    }
    let index = words.len() - 1;
    let mut out = String::new();
    for c in clap_complete::engine::complete(cmd, words, index, cwd)? {
        if c.is_hide_set() {
            continue;
        }
        out.push_str(&c.get_value().to_string_lossy());
        if let Some(help) = c.get_help() {
            let help = help.to_string();
            out.push('\t');
            out.push_str(help.lines().next().unwrap_or_default());
        }
        out.push('\n');
    }
    out.push_str(&format!(":{NO_FILE_COMPLETION}\n"));
    Ok(out)
}

static NAMESPACE: OnceLock<Option<String>> = OnceLock::new();

/// The value of `-n`/`--namespace` among `words`, in any of its spellings.
pub fn namespace_in(words: &[OsString]) -> Option<String> {
    let mut found = None;
    let mut words = words.iter().map(|w| w.to_string_lossy());
    while let Some(w) = words.next() {
        if w == "-n" || w == "--namespace" {
            found = words.next().map(|v| v.into_owned());
        } else if let Some(v) = w.strip_prefix("--namespace=") {
            found = Some(v.to_string());
        } else if let Some(v) = w.strip_prefix("-n").filter(|v| !v.is_empty()) {
            found = Some(v.trim_start_matches('=').to_string());
        }
    }
    found
}

/// Completes a route argument with the names of the namespace's ModelRoutes, keeping a
/// `mr/` (or other kind) prefix the user typed.
pub fn routes() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let current = current.to_string_lossy();
        let (kind, partial) = match current.split_once('/') {
            Some((kind, partial)) => (format!("{kind}/"), partial.to_string()),
            None => (String::new(), current.to_string()),
        };
        let ns = NAMESPACE.get().cloned().flatten();
        names(move |client, default_ns| {
            Api::<ModelRoute>::namespaced(client, &ns.unwrap_or(default_ns))
        })
        .into_iter()
        .filter(|n| n.starts_with(&partial))
        .map(|n| CompletionCandidate::new(format!("{kind}{n}")))
        .collect()
    })
}

/// Completes `-n` with the cluster's namespaces (none when they may not be listed).
pub fn namespaces() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let current = current.to_string_lossy();
        names(|client, _| Api::<Namespace>::all(client))
            .into_iter()
            .filter(|n| n.starts_with(current.as_ref()))
            .map(CompletionCandidate::new)
            .collect()
    })
}

/// The names of the objects `api` lists; none on any error, since a Tab has no place to say
/// why. Runs before the program's own runtime exists, so it brings a small one.
fn names<K>(api: impl FnOnce(Client, String) -> Api<K> + Send) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    rt.block_on(async {
        let lookup = async {
            let config = Config::infer().await.ok()?;
            let ns = config.default_namespace.clone();
            let client = Client::try_from(config).ok()?;
            let list = api(client, ns)
                .list_metadata(&ListParams::default())
                .await
                .ok()?;
            Some(
                list.items
                    .into_iter()
                    .filter_map(|o| o.metadata.name)
                    .collect::<Vec<_>>(),
            )
        };
        tokio::time::timeout(LOOKUP_TIMEOUT, lookup)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<OsString> {
        ws.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_namespace_is_read_in_every_spelling() {
        assert_eq!(
            namespace_in(&words(&["status", "-n", "a"])),
            Some("a".into())
        );
        assert_eq!(
            namespace_in(&words(&["status", "--namespace", "b"])),
            Some("b".into())
        );
        assert_eq!(
            namespace_in(&words(&["status", "--namespace=c"])),
            Some("c".into())
        );
        assert_eq!(namespace_in(&words(&["status", "-nd"])), Some("d".into()));
        assert_eq!(namespace_in(&words(&["status", "-n=e"])), Some("e".into()));
        assert_eq!(namespace_in(&words(&["status", "chat"])), None);
    }

    fn cli() -> clap::Command {
        clap::Command::new("switchyard")
            .subcommand(
                clap::Command::new("status")
                    .about("Show a route")
                    .arg(clap::Arg::new("route"))
                    .arg(clap::Arg::new("watch").long("watch").short('w').num_args(0)),
            )
            .subcommand(clap::Command::new("get").about("List routes and backends"))
    }

    #[test]
    fn kubectl_gets_one_candidate_per_line_with_help_then_the_directive() {
        let out = kubectl_candidates(&mut cli(), &words(&["st"]), None).unwrap();
        assert_eq!(out, "status\tShow a route\n:4\n");
        // A new word after the subcommand: its flags (no route names without a cluster).
        let out = kubectl_candidates(&mut cli(), &words(&["status", "-"]), None).unwrap();
        assert!(out.contains("--watch\n"), "{out}");
        assert!(out.ends_with(":4\n"), "{out}");
        // kubectl always passes the current word; with none, every subcommand is offered.
        let out = kubectl_candidates(&mut cli(), &[], None).unwrap();
        assert!(out.contains("status\t") && out.contains("get\t"), "{out}");
    }

    #[test]
    fn scripts_register_both_command_names_and_call_back_with_the_shell() {
        for (shell, needle) in [
            (Shell::Bash, "COMPLETE=\"bash\""),
            (Shell::Zsh, "COMPLETE=\"zsh\""),
            (Shell::Fish, "COMPLETE=fish"),
        ] {
            let mut out = Vec::new();
            script(shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains(needle), "{shell:?}: {text}");
            for command in COMMANDS {
                assert!(text.contains(command), "{shell:?} misses {command}");
            }
        }
    }
}
