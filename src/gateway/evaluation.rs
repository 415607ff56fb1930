//! The controller's replays of evaluation sets. A request marked `x-switchyard-evaluation`
//! presents a ServiceAccount token instead of a Tenant's key; the gateway has the API server
//! verify it (TokenReview, audience `switchyard-gateway`) and accepts only the identity of
//! `--evaluation-identity`. Such a caller may use every route, pin a request to one backend
//! (`x-switchyard-pin-backend`), and is counted as tenant `switchyard:eval`, outcome `eval`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};

use super::auth::{self, Caller, Digest, Scope};

pub const EVALUATION_HEADER: &str = "x-switchyard-evaluation";
pub const PIN_HEADER: &str = "x-switchyard-pin-backend";
/// The audience the controller's tokens are minted for; tokens for the API server (or any
/// other audience) are refused, so a token leaked from elsewhere is no key here.
pub const AUDIENCE: &str = "switchyard-gateway";

/// How long a verdict on a token is kept: the API server is asked once per token and
/// period, not per request.
const ACCEPTED_FOR: Duration = Duration::from_secs(300);
const REFUSED_FOR: Duration = Duration::from_secs(10);
/// Tokens remembered at most; beyond that the memory starts over.
const REMEMBERED: usize = 1024;
/// TokenReviews in flight at once: a flood of made-up tokens cannot become a flood of API
/// calls.
const REVIEWS_AT_ONCE: usize = 4;

/// Who a token belongs to, as the API server says; `Ok(None)`: not authenticated.
pub trait Reviewer: Send + Sync {
    fn review(&self, token: String) -> BoxFuture<'_, Result<Option<String>, String>>;
}

/// The API server's TokenReview.
pub struct TokenReviewer(pub kube::Client);

impl Reviewer for TokenReviewer {
    fn review(&self, token: String) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            let api: Api<TokenReview> = Api::all(self.0.clone());
            let review = TokenReview {
                spec: TokenReviewSpec {
                    audiences: Some(vec![AUDIENCE.into()]),
                    token: Some(token),
                },
                ..Default::default()
            };
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| format!("TokenReview failed: {e}"))?;
            let status = answer.status.unwrap_or_default();
            let audience_ok = status
                .audiences
                .as_ref()
                .is_none_or(|a| a.iter().any(|x| x == AUDIENCE));
            Ok((status.authenticated == Some(true) && audience_ok)
                .then(|| status.user.and_then(|u| u.username))
                .flatten())
        })
    }
}

/// Verifies replay tokens against the one accepted identity.
pub struct Evaluations {
    reviewer: Box<dyn Reviewer>,
    /// e.g. `system:serviceaccount:switchyard-system:switchyard-controller`.
    identity: String,
    caller: Arc<Caller>,
    seen: Mutex<HashMap<Digest, (bool, Instant)>>,
    reviews: tokio::sync::Semaphore,
}

impl Evaluations {
    pub fn new(reviewer: Box<dyn Reviewer>, identity: String) -> Self {
        Self {
            reviewer,
            identity,
            caller: Arc::new(Caller {
                namespace: String::new(),
                tenant: auth::EVALUATION_TENANT.into(),
                scope: Scope::Any,
            }),
            seen: Mutex::default(),
            reviews: tokio::sync::Semaphore::new(REVIEWS_AT_ONCE),
        }
    }

    /// The replay caller, when `token` is the accepted identity's.
    pub async fn caller(&self, token: &[u8]) -> Option<Arc<Caller>> {
        // Only what looks like a JWT is sent to the API server.
        let token = std::str::from_utf8(token).ok()?;
        if token.split('.').count() != 3 || token.len() > 16 * 1024 {
            return None;
        }
        let digest = auth::digest(token.as_bytes());
        let now = Instant::now();
        let cached = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .filter(|(_, until)| *until > now)
            .map(|(ok, _)| *ok);
        let ok = match cached {
            Some(ok) => ok,
            None => {
                let _permit = self.reviews.acquire().await.ok()?;
                let ok = match self.reviewer.review(token.to_owned()).await {
                    Ok(user) => user.as_deref() == Some(self.identity.as_str()),
                    Err(e) => {
                        // Not remembered: the next request asks again.
                        tracing::warn!(error = %e, "could not verify an evaluation token");
                        return None;
                    }
                };
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.len() >= REMEMBERED {
                    seen.clear();
                }
                let keep = if ok { ACCEPTED_FOR } else { REFUSED_FOR };
                seen.insert(digest, (ok, now + keep));
                ok
            }
        };
        ok.then(|| self.caller.clone())
    }
}
