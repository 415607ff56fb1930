//! `kubectl switchyard get [routes|backends] [-A | -n NS]`: the routes with where their
//! migrations stand and the backends with their readiness, in kubectl's table layout.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};

use super::table::{Table, age};
use crate::api::{InferenceBackend, ModelRoute, WeightedBackend, find_condition};
use crate::cli::status::render::apportion;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// ModelRoutes and InferenceBackends.
    All,
    /// ModelRoutes.
    #[value(alias = "mr", alias = "modelroute", alias = "modelroutes")]
    Routes,
    /// InferenceBackends.
    #[value(alias = "ib", alias = "inferencebackend", alias = "inferencebackends")]
    Backends,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// What to list.
    #[arg(value_enum, default_value_t = Kind::All)]
    pub kind: Kind,
    /// List across all namespaces (adds a NAMESPACE column).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Namespace to list (default: the kubeconfig context's).
    #[arg(short, long, add = super::completion::namespaces())]
    pub namespace: Option<String>,
}

/// A split as each backend's share in percent, `openai=80%,candidate=20%` (one decimal
/// where needed; the shares add up to 100).
pub fn percent_summary(weights: &[WeightedBackend]) -> String {
    let raw: Vec<u64> = weights.iter().map(|w| w.weight.max(0) as u64).collect();
    let tenths = apportion(&raw, 1000);
    weights
        .iter()
        .zip(tenths)
        .map(|(w, t)| match t % 10 {
            0 => format!("{}={}%", w.name, t / 10),
            d => format!("{}={}.{d}%", w.name, t / 10),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn created<K: Resource>(obj: &K, now: Timestamp) -> String {
    obj.meta()
        .creation_timestamp
        .as_ref()
        .map_or("<unknown>".into(), |t| age(now, t.0))
}

fn or_dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

pub fn routes_table(routes: &[ModelRoute], namespaces: bool, now: Timestamp) -> Table {
    let mut headers = vec!["NAME", "MODEL", "PHASE", "STEP", "WEIGHTS", "READY", "AGE"];
    if namespaces {
        headers.insert(0, "NAMESPACE");
    }
    let mut table = Table::new(headers);
    for mr in routes {
        let st = mr.status.clone().unwrap_or_default();
        let name = mr.name_any();
        let mut row = vec![
            name.clone(),
            mr.spec.model_name(&name).to_string(),
            st.phase.map_or("-".into(), |p| format!("{p:?}")),
            or_dash(st.step_summary.as_deref()),
            if st.weights.is_empty() {
                "-".into()
            } else {
                percent_summary(&st.weights)
            },
            or_dash(find_condition(&st.conditions, "Ready").map(|c| c.status.as_str())),
            created(mr, now),
        ];
        if namespaces {
            row.insert(0, mr.namespace().unwrap_or_default());
        }
        table.row(row);
    }
    table
}

pub fn backends_table(backends: &[InferenceBackend], namespaces: bool, now: Timestamp) -> Table {
    let mut headers = vec!["NAME", "TYPE", "PROVIDER", "MODEL", "READY", "PODS", "AGE"];
    if namespaces {
        headers.insert(0, "NAMESPACE");
    }
    let mut table = Table::new(headers);
    for ib in backends {
        let st = ib.status.clone().unwrap_or_default();
        let pods = match (st.ready_replicas, st.replicas) {
            (ready, Some(want)) => format!("{}/{want}", ready.unwrap_or(0)),
            _ => "-".into(),
        };
        let mut row = vec![
            ib.name_any(),
            or_dash(st.r#type.as_deref()),
            or_dash(st.provider.as_deref()),
            or_dash(st.model.as_deref()),
            or_dash(find_condition(&st.conditions, "Ready").map(|c| c.status.as_str())),
            pods,
            created(ib, now),
        ];
        if namespaces {
            row.insert(0, ib.namespace().unwrap_or_default());
        }
        table.row(row);
    }
    table
}

pub async fn run(args: GetArgs) -> anyhow::Result<()> {
    let config = kube::Config::infer().await?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)?;
    let api = |c: &Client| -> (Api<ModelRoute>, Api<InferenceBackend>) {
        if args.all_namespaces {
            (Api::all(c.clone()), Api::all(c.clone()))
        } else {
            (
                Api::namespaced(c.clone(), &ns),
                Api::namespaced(c.clone(), &ns),
            )
        }
    };
    let (routes, backends) = api(&client);
    let now = Timestamp::now();
    let mut tables = Vec::new();
    if args.kind != Kind::Backends {
        let list = routes.list(&ListParams::default()).await?;
        tables.push(routes_table(&list.items, args.all_namespaces, now));
    }
    if args.kind != Kind::Routes {
        let list = backends.list(&ListParams::default()).await?;
        tables.push(backends_table(&list.items, args.all_namespaces, now));
    }
    let shown: Vec<String> = tables
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| t.render(""))
        .collect();
    if shown.is_empty() {
        // kubectl's words, on stderr, so a script reading stdout sees no rows.
        if args.all_namespaces {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {ns} namespace.");
        }
        return Ok(());
    }
    // Like `kubectl get mr,ib`: one table per kind, a blank line between them.
    Ok(super::write_stdout(shown.join("\n").as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(ns: &str, name: &str, status: serde_json::Value) -> ModelRoute {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"backends": [{"name": "candidate", "weight": 100}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn routes_show_phase_step_weights_in_percent_and_readiness() {
        let now: Timestamp = "2026-01-01T00:05:30Z".parse().unwrap();
        let routes = [
            route(
                "team-a",
                "chat",
                serde_json::json!({
                    "phase": "Progressing", "stepSummary": "2/4 (20%)",
                    "weights": [{"name": "openai", "weight": 800}, {"name": "candidate", "weight": 200}],
                    "conditions": [{"type": "Ready", "status": "False", "reason": "Progressing",
                                    "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                }),
            ),
            route("team-b", "embed", serde_json::json!({})),
        ];
        let text = routes_table(&routes, true, now).render("");
        let lines: Vec<&str> = text.lines().collect();
        let cells: Vec<Vec<&str>> = lines
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            cells[0],
            [
                "NAMESPACE",
                "NAME",
                "MODEL",
                "PHASE",
                "STEP",
                "WEIGHTS",
                "READY",
                "AGE"
            ]
        );
        assert_eq!(
            cells[1],
            [
                "team-a",
                "chat",
                "chat",
                "Progressing",
                "2/4",
                "(20%)",
                "openai=80%,candidate=20%",
                "False",
                "5m30s"
            ]
        );
        assert_eq!(
            cells[2],
            ["team-b", "embed", "embed", "-", "-", "-", "-", "5m30s"]
        );
        // Without -A there is no NAMESPACE column.
        let one = routes_table(&routes[..1], false, now).render("");
        assert!(one.starts_with("NAME "), "{one}");
        assert!(!one.contains("team-a"), "{one}");
    }

    #[test]
    fn shares_keep_a_decimal_only_where_needed_and_add_up_to_100() {
        let w = |n: &str, v| WeightedBackend {
            name: n.into(),
            weight: v,
        };
        assert_eq!(
            percent_summary(&[w("a", 975), w("b", 25)]),
            "a=97.5%,b=2.5%"
        );
        assert_eq!(
            percent_summary(&[w("a", 1), w("b", 1), w("c", 1)]),
            "a=33.4%,b=33.3%,c=33.3%"
        );
    }

    #[test]
    fn backends_show_type_provider_readiness_and_pods() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let ib: InferenceBackend = serde_json::from_value(serde_json::json!({
            "apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
            "metadata": {"name": "llama", "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"selfHosted": {"runtime": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct"}},
            "status": {"type": "SelfHosted", "provider": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct",
                       "replicas": 2, "readyReplicas": 1,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap();
        let text = backends_table(&[ib], false, now).render("");
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "llama",
                "SelfHosted",
                "vllm",
                "meta-llama/Llama-3.1-8B-Instruct",
                "True",
                "1/2",
                "60m"
            ]
        );
    }
}
