//! A token count for a backend that cannot count (hosted OpenAI, TGI, SGLang): the gateway's
//! own estimate, marked as one, since the backend's tokenizer may differ.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::attempt::insert_backend;
use super::{Ctx, Gateway, error_response};
use crate::gateway::translate::count;

/// The header that marks a count as the gateway's estimate.
pub const ESTIMATE_HEADER: &str = "x-switchyard-estimate";

impl Gateway {
    /// The estimate of the request's input tokens, as backend `backend` would have answered.
    pub(super) async fn estimate(&self, ctx: &Ctx, backend: &str) -> Response {
        let raw = ctx.req.raw.clone();
        // Tokenizing is CPU work (the first call also loads the encoding): off the runtime.
        let counted = tokio::task::spawn_blocking(move || {
            serde_json::from_slice(&raw).map(|req| count::estimate(&req))
        })
        .await;
        let n = match counted {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                return error_response(
                    ctx.caller,
                    400,
                    &format!("request body is not valid JSON: {e}"),
                );
            }
            Err(e) => {
                return error_response(
                    ctx.caller,
                    500,
                    &format!("the tokens could not be counted: {e}"),
                );
            }
        };
        let mut resp = Response::new(Body::from(count::answer(n)));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(ESTIMATE_HEADER, HeaderValue::from_static("true"));
        insert_backend(&mut resp, backend);
        resp
    }
}
