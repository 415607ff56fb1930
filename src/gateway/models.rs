//! `GET /v1/models` and `GET /v1/models/{id}`: the models the caller may use, in the shape
//! of the SDK asking (both SDKs call the same paths; Anthropic's sends its headers). A model
//! the caller may not use is not found, exactly as one that does not exist, so a key cannot
//! learn which models other tenants have.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::Caller;
use super::auth;
use super::proxy::{Gateway, error_response};
use super::snapshot::Listed;
use crate::api::Dialect;

/// One model as `dialect` describes it.
fn model(dialect: Dialect, l: &Listed) -> Value {
    match dialect {
        Dialect::Openai => {
            json!({"id": l.model, "object": "model", "created": l.created, "owned_by": "switchyard"})
        }
        Dialect::Anthropic => {
            let created_at = Timestamp::from_second(l.created)
                .unwrap_or(Timestamp::UNIX_EPOCH)
                .to_string();
            // A served route is always in use: `active` in the lifecycle newer SDKs read.
            json!({"type": "model", "id": l.model, "display_name": l.model, "created_at": created_at, "lifecycle": "active"})
        }
    }
}

/// `GET /v1/models`: OpenAI's list, or Anthropic's page (always one: every model fits).
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    axum::extract::Extension(caller): Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let dialect = auth::dialect_of(uri.path(), &headers);
    let snapshot = gw.snapshots.load();
    let data: Vec<Value> = snapshot
        .listed(&caller)
        .map(|l| model(dialect, l))
        .collect();
    let body = match dialect {
        Dialect::Openai => json!({"object": "list", "data": data}),
        Dialect::Anthropic => {
            let (first, last) = (
                data.first().map(|m| m["id"].clone()),
                data.last().map(|m| m["id"].clone()),
            );
            json!({"data": data, "has_more": false, "first_id": first, "last_id": last})
        }
    };
    axum::Json(body).into_response()
}

/// `GET /v1/models/{id}`: one model the caller may use, or 404.
pub async fn retrieve(
    State(gw): State<Arc<Gateway>>,
    axum::extract::Extension(caller): Caller,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let dialect = auth::dialect_of(uri.path(), &headers);
    let snapshot = gw.snapshots.load();
    match snapshot.listed(&caller).find(|l| l.model == id) {
        Some(l) => axum::Json(model(dialect, l)).into_response(),
        None => error_response(
            dialect,
            404,
            &format!(
                "The model '{id}' does not exist or you do not have access to it; models for your key: {}",
                snapshot.served(&caller)
            ),
        ),
    }
}
