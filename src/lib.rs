//! Switchyard: a Kubernetes operator and gateway that moves LLM traffic between hosted
//! providers and self-hosted GPU backends, one judged step at a time.

pub mod analysis;
pub mod api;
pub mod cli;
pub mod controller;
pub mod duration;
pub mod evaluation;
pub mod gateway;
pub mod migration;
pub mod report;
pub mod schema;
pub mod serve;
pub mod slim;
pub mod telemetry;
pub mod tls;
