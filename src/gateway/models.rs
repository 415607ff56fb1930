//! `GET /v1/models`: the model names this gateway serves, in OpenAI's list shape.

use axum::extract::State;
use axum::{Json, Router, routing::get};
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use serde_json::{Value, json};

use crate::api::ModelRoute;

pub fn router(routes: Store<ModelRoute>) -> Router {
    Router::new()
        .route("/v1/models", get(list))
        .with_state(routes)
}

async fn list(State(routes): State<Store<ModelRoute>>) -> Json<Value> {
    let mut models: Vec<(String, i64)> = routes
        .state()
        .iter()
        .filter(|mr| mr.status.as_ref().is_some_and(|s| !s.weights.is_empty()))
        .map(|mr| {
            let created = mr.creation_timestamp().map_or(0, |t| t.0.as_second());
            (mr.spec.model_name(&mr.name_any()).to_owned(), created)
        })
        .collect();
    models.sort();
    models.dedup_by(|a, b| a.0 == b.0);
    let data: Vec<Value> = models
        .into_iter()
        .map(|(id, created)| json!({"id": id, "object": "model", "created": created, "owned_by": "switchyard"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}
