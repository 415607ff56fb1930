//! Replays a route's evaluation set through the gateway: every case against every stable and
//! every new backend, pinned with `x-switchyard-pin-backend`, authenticated with a token of
//! the controller's own ServiceAccount (so the controller never holds a provider key), and
//! judged by `crate::evaluation`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use serde_json::Value;

use super::Context;
use crate::api::{EvaluationStatus, EvaluationVerdict, ModelRoute};
use crate::evaluation::{self, Answer, BackendRun, Case, Checked, Expect};
use crate::migration::{self, EvaluationPlan};

/// The audience of the controller's tokens; the gateway accepts no other.
pub const AUDIENCE: &str = "switchyard-gateway";
/// Marks a request as a replay (with a ServiceAccount token as its key).
pub const EVALUATION_HEADER: &str = "x-switchyard-evaluation";
/// Pins a replayed request to one backend of the route.
pub const PIN_HEADER: &str = "x-switchyard-pin-backend";

/// Cases in flight at once, across backends: a replay must not become a load test.
const CONCURRENCY: usize = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Tokens live an hour; a new one is requested when less than this is left.
const TOKEN_LIFETIME: i64 = 3600;
const TOKEN_RENEW_BEFORE: Duration = Duration::from_secs(600);

/// The controller's current token, requested when missing or close to expiry.
#[derive(Default)]
pub struct Tokens {
    current: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl Tokens {
    async fn get(&self, ctx: &Context) -> Result<String, String> {
        let mut held = self.current.lock().await;
        if let Some((token, expires)) = held.as_ref()
            && Instant::now() + TOKEN_RENEW_BEFORE < *expires
        {
            return Ok(token.clone());
        }
        let (ns, name) = &ctx.config.service_account;
        let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![AUDIENCE.into()],
                expiration_seconds: Some(TOKEN_LIFETIME),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                format!(
                    "could not request a token of ServiceAccount {ns}/{name} for the gateway: {e}"
                )
            })?;
        let token = answer
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                format!("the API server returned no token for ServiceAccount {ns}/{name}")
            })?;
        let expires = Instant::now() + Duration::from_secs(TOKEN_LIFETIME as u64);
        *held = Some((token.clone(), expires));
        Ok(token)
    }
}

/// Replays the set for `plan` and judges it; a replay that cannot run is an `Error` status
/// saying why (the engine holds the step and retries).
pub async fn replay(
    ctx: &Context,
    mr: &ModelRoute,
    ns: &str,
    plan: EvaluationPlan,
    now: Timestamp,
) -> EvaluationStatus {
    let status = mr.status.clone().unwrap_or_default();
    let gate = migration::settings(&mr.spec, &status).evaluation;
    let result = match gate {
        Some(gate) => run(ctx, mr, ns, &plan, &gate).await,
        None => Err("the route has no rollout.evaluation".into()),
    };
    let judged = result.unwrap_or_else(|message| evaluation::Judged {
        verdict: EvaluationVerdict::Error,
        message,
        backends: vec![],
        failing: vec![],
    });
    tracing::info!(verdict = ?judged.verdict, message = %judged.message, "evaluation");
    EvaluationStatus {
        time: Time(now),
        step: plan.step,
        verdict: judged.verdict,
        message: judged.message,
        backends: judged.backends,
        failing: judged.failing,
    }
}

async fn run(
    ctx: &Context,
    mr: &ModelRoute,
    ns: &str,
    plan: &EvaluationPlan,
    gate: &crate::api::EvaluationGate,
) -> Result<evaluation::Judged, String> {
    let Some(gateway) = ctx.config.gateway_url.as_deref() else {
        return Err("the controller has no --gateway-url to replay the evaluation set through; set it (the chart does)".into());
    };
    let cases = cases(ctx, ns, &gate.config_map_ref.name, &gate.config_map_ref.key).await?;
    let token = ctx.tokens.get(ctx).await?;
    let model = mr
        .spec
        .model_name(&kube::ResourceExt::name_any(mr))
        .to_owned();
    let client = Replayer {
        http: reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("could not build an HTTP client: {e}"))?,
        url: format!("{}/v1/chat/completions", gateway.trim_end_matches('/')),
        token,
    };
    let backends: Vec<(String, bool)> = plan
        .stable
        .iter()
        .map(|b| (b.clone(), true))
        .chain(plan.new.iter().map(|b| (b.clone(), false)))
        .collect();
    // Owned jobs: a stream of futures borrowing from this frame trips the compiler's
    // higher-ranked `Send` check of the controller's future.
    let jobs: Vec<(usize, usize)> = (0..backends.len())
        .flat_map(|b| (0..cases.len()).map(move |i| (b, i)))
        .collect();
    let (client, cases, names) = (
        std::sync::Arc::new(client),
        std::sync::Arc::new(cases),
        std::sync::Arc::new(backends.iter().map(|(b, _)| b.clone()).collect::<Vec<_>>()),
    );
    let mut outcomes: Vec<(usize, usize, Replayed)> = futures::stream::iter(jobs)
        .map(|(b, i)| {
            let (client, cases, names, model) =
                (client.clone(), cases.clone(), names.clone(), model.clone());
            async move { (b, i, client.case(&model, &names[b], &cases[i]).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    outcomes.sort_by_key(|(b, i, _)| (*b, *i));
    let mut runs: Vec<BackendRun> = backends
        .iter()
        .map(|(b, stable)| BackendRun {
            backend: b.clone(),
            stable: *stable,
            results: vec![],
        })
        .collect();
    for (b, i, outcome) in outcomes {
        // The gateway refusing the controller, or unreachable: no verdict on any backend.
        runs[b].results.push((cases[i].name.clone(), outcome?));
    }
    Ok(evaluation::judge(&runs, gate.min_relative_pass_rate))
}

async fn cases(ctx: &Context, ns: &str, name: &str, key: &str) -> Result<Vec<Case>, String> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = api
        .get_opt(name)
        .await
        .map_err(|e| format!("could not read ConfigMap {ns}/{name}: {e}"))?
        .ok_or_else(|| {
            format!("ConfigMap {ns}/{name} (rollout.evaluation.configMapRef) does not exist")
        })?;
    let yaml = cm
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| format!("ConfigMap {ns}/{name} has no key {key:?}"))?;
    evaluation::parse(yaml, &format!("ConfigMap {ns}/{name} key {key:?}"))
}

/// One case on one backend: `Ok(Ok)` passed, `Ok(Err(why))` failed, `Err` the replay
/// itself cannot go on (the gateway refused the controller, or is unreachable).
type Replayed = Result<Result<(), String>, String>;

struct Replayer {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Replayer {
    /// One case against one backend: `Ok(Ok)` passed, `Ok(Err(why))` failed, `Err` the
    /// replay itself cannot go on.
    async fn case(
        &self,
        model: &str,
        backend: &str,
        case: &Case,
    ) -> Result<Result<(), String>, String> {
        let mut body = case.body.clone();
        body.insert("model".into(), model.into());
        body.insert("stream".into(), false.into());
        let answer = match self.ask(&Value::Object(body), Some(backend)).await? {
            Ok(a) => a,
            Err(why) => return Ok(Err(why)),
        };
        Ok(match evaluation::check(&case.expect, &answer) {
            Checked::Pass => Ok(()),
            Checked::Fail(why) => Err(why),
            Checked::NeedsJudge => {
                let Expect::Judge {
                    route,
                    min_score,
                    rubric,
                } = &case.expect
                else {
                    return Ok(Err("a judge was asked for a case without one".into()));
                };
                let mut ask = evaluation::judge_request(rubric, &case.body["messages"], &answer);
                ask["model"] = route.as_str().into();
                match self.ask(&ask, None).await? {
                    Err(why) => Err(format!("the judge route {route} did not answer: {why}")),
                    Ok(verdict) => match evaluation::judge_score(&verdict) {
                        Ok(score) if score >= *min_score => Ok(()),
                        Ok(score) => Err(format!("the judge scored {score}, below {min_score}")),
                        Err(why) => Err(why),
                    },
                }
            }
        })
    }

    /// Sends one request; `Ok(Err)` is the backend's failure to answer, `Err` the gateway's
    /// refusal of the controller or a transport failure.
    async fn ask(&self, body: &Value, pin: Option<&str>) -> Result<Result<Answer, String>, String> {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(EVALUATION_HEADER, "1")
            .json(body);
        if let Some(b) = pin {
            req = req.header(PIN_HEADER, b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("the gateway could not be reached: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(format!(
                "the gateway refused the controller's token (HTTP {}); is its --evaluation-identity this controller's ServiceAccount?",
                status.as_u16()
            ));
        }
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let message = parsed
                .as_ref()
                .and_then(|v| v.pointer("/error/message"))
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Ok(Err(format!("HTTP {}: {message}", status.as_u16())));
        }
        Ok(parsed
            .ok_or_else(|| "the answer is not JSON".to_owned())
            .and_then(|v| Answer::from_chat_completion(&v)))
    }
}
