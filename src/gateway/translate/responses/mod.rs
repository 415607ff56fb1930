//! OpenAI's Responses API (`POST /v1/responses`), stateless: the caller sends the whole
//! conversation each turn. A backend that serves the Responses API itself gets the request
//! as sent (`native`); every other backend is reached through Chat Completions, the API
//! every OpenAI-compatible server has and the one the Anthropic translation reads:
//! Responses → Chat → (Anthropic) and back. `request` and `answer` hold the two halves of
//! that conversion, `stream` the event sequence, `native` what passthrough needs to read.

pub mod answer;
pub mod native;
pub mod request;
pub mod stream;

pub use request::{refused, to_chat};
pub use stream::ChatToResponses;
