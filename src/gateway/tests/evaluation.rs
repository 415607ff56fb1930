//! The controller's evaluation replays: a ServiceAccount token verified by TokenReview (once
//! per token, never for a Tenant's key), pinned to a backend that carries no traffic yet,
//! counted as `outcome="eval"` and never as live traffic, and refused to anyone else.

use std::sync::Mutex;

use futures::future::BoxFuture;
use serde_json::json;

use super::*;
use crate::gateway::auth::AuthMode;
use crate::gateway::evaluation::{EVALUATION_HEADER, Evaluations, PIN_HEADER, Reviewer};

const CONTROLLER: &str = "system:serviceaccount:switchyard-system:switchyard-controller";
const GOOD: &str = "eyJ.controller.sig";
const OTHER: &str = "eyJ.someone-else.sig";

/// Tokens as the API server would review them; counts the reviews.
struct FakeReviews(Mutex<Vec<String>>);

impl Reviewer for Arc<FakeReviews> {
    fn review(&self, token: String) -> BoxFuture<'_, Result<Option<String>, String>> {
        self.0.lock().unwrap().push(token.clone());
        Box::pin(async move {
            Ok(match token.as_str() {
                GOOD => Some(CONTROLLER.to_owned()),
                OTHER => Some("system:serviceaccount:team:app".to_owned()),
                _ => None,
            })
        })
    }
}

/// `stable` serves all traffic; `candidate` is the target of a migration still at step 0.
fn migrating(stable: &Upstream, candidate: &Upstream) -> World {
    let mut r = route(&[("stable", 1000)], &[]);
    r.status.as_mut().unwrap().target = obj(json!([{"name": "candidate", "weight": 100}]));
    World::new(
        r,
        vec![
            external("stable", "openai", stable, json!({})),
            external("candidate", "openai", candidate, json!({})),
        ],
    )
}

async fn replay(url: &str, token: &str, pin: Option<&str>) -> (u16, Value) {
    let mut rb = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(token)
        .header(EVALUATION_HEADER, "1")
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(p) = pin {
        rb = rb.header(PIN_HEADER, p);
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_replay_is_pinned_to_a_backend_without_traffic_and_counted_as_eval() {
    let stable = Upstream::always(|| openai_answer("stable says hi")).await;
    let candidate = Upstream::always(|| openai_answer("candidate says hi")).await;
    let h = Harness::new(migrating(&stable, &candidate), config());
    let reviews = Arc::new(FakeReviews(Mutex::default()));
    let evaluations = Evaluations::new(Box::new(reviews.clone()), CONTROLLER.into());
    let url = h
        .serve_api_with(AuthMode::Required, 100, Some(Arc::new(evaluations)))
        .await;

    for _ in 0..3 {
        let (status, body) = replay(&url, GOOD, Some("candidate")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "candidate says hi"
        );
    }
    assert_eq!((candidate.calls(), stable.calls()), (3, 0));
    assert_eq!(
        reviews.0.lock().unwrap().len(),
        1,
        "one TokenReview per token, then remembered"
    );
    // Unpinned (a judge route), it follows the split, still as a replay.
    assert_eq!(replay(&url, GOOD, None).await.0, 200);
    assert_eq!(stable.calls(), 1);

    assert_eq!(h.attempts("candidate", "eval", Some("200")), 3.0);
    assert_eq!(h.attempts("stable", "eval", Some("200")), 1.0);
    assert_eq!(h.attempts("candidate", "success", None), 0.0);
    assert_eq!(h.attempts("stable", "success", None), 0.0);
    let tenants = h.metric(
        "switchyard_requests_total",
        &[("tenant", "switchyard:eval")],
    );
    assert_eq!(tenants, 4.0);

    // A backend the route does not name is not found, in the caller's dialect.
    let (status, body) = replay(&url, GOOD, Some("elsewhere")).await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("backend 'elsewhere' is not part of ModelRoute team/chat")
    );
}

#[tokio::test]
async fn only_the_controllers_token_may_replay_and_pins_mean_nothing_to_others() {
    let stable = Upstream::always(|| openai_answer("stable")).await;
    let candidate = Upstream::always(|| openai_answer("candidate")).await;
    let h = Harness::new(migrating(&stable, &candidate), config());
    let reviews = Arc::new(FakeReviews(Mutex::default()));
    let evaluations = Arc::new(Evaluations::new(
        Box::new(reviews.clone()),
        CONTROLLER.into(),
    ));
    let url = h
        .serve_api_with(AuthMode::Disabled, 100, Some(evaluations))
        .await;

    // Another ServiceAccount's token, an unknown token, a key that is no JWT: refused, even
    // with --auth=disabled, since a replay may pin.
    for token in [OTHER, "eyJ.unknown.sig", "sk-not-a-jwt"] {
        let (status, body) = replay(&url, token, Some("candidate")).await;
        assert_eq!(status, 401, "{token}: {body}");
    }
    assert!(
        !reviews
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|t| t == "sk-not-a-jwt"),
        "what is not a JWT is never sent to the API server"
    );
    // Without the evaluation mark the pin header is ignored: traffic follows the split.
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .header(PIN_HEADER, "candidate")
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!((candidate.calls(), stable.calls()), (0, 1));

    // A gateway without --evaluation-identity refuses every replay.
    let plain = h.serve_api(AuthMode::Disabled).await;
    let (status, body) = replay(&plain, GOOD, Some("candidate")).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--evaluation-identity")
    );
}
