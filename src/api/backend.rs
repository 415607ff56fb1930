//! `InferenceBackend`: one place a model is served, either a hosted provider or pods that
//! Switchyard deploys onto GPU node pools.

// kube's `printcolumn(...)` repeats `type_ = ...` once per column, which clippy mistakes
// for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Credentials, Duration, SecretKeyRef};

/// Where a model is served. Set exactly one of `external` (a hosted provider) or
/// `selfHosted` (inference pods that Switchyard deploys).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "InferenceBackend",
    namespaced,
    status = "InferenceBackendStatus",
    shortname = "ib",
    category = "switchyard",
    doc = "InferenceBackend is one place a model is served: a hosted provider (OpenAI, Anthropic, any OpenAI-compatible host) or self-hosted inference pods (vLLM, TGI, SGLang) on GPU node pools.",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".status.type",
        description = "External (hosted provider) or SelfHosted (pods Switchyard deploys)"
    ),
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".status.provider",
        description = "Wire dialect of an external backend, or runtime of a self-hosted one"
    ),
    printcolumn(
        name = "Model",
        type_ = "string",
        json_path = ".status.model",
        description = "Model id the backend serves"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the backend can take traffic"
    ),
    printcolumn(
        name = "Pods",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        priority = 1,
        description = "Self-hosted pods ready and warmed up"
    ),
    printcolumn(
        name = "Ejected",
        type_ = "integer",
        json_path = ".status.ejectedEndpoints",
        priority = 1,
        description = "Endpoints the gateway has ejected for failing"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.url",
        priority = 1,
        description = "Address the gateway dials"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.external) != has(self.selfHosted)").message(
    "set exactly one of spec.external (a hosted provider) or spec.selfHosted (pods Switchyard deploys)"
))]
#[x_kube(validation = Rule::new(
    "!has(self.capabilities) || !has(self.capabilities.responsesApi) || !self.capabilities.responsesApi || (has(self.external) && self.external.dialect == 'openai')"
).message(
    "capabilities.responsesApi is for external backends of the openai dialect (a provider with its own Responses API); remove it, Responses requests to this backend are translated"
))]
#[serde(rename_all = "camelCase")]
pub struct InferenceBackendSpec {
    /// A hosted provider reached over HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalBackend>,
    /// Inference pods that Switchyard deploys and keeps running on GPU node pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_hosted: Option<SelfHostedBackend>,
    /// What the model can do; the gateway uses it to reject requests a backend cannot serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Price of the backend's tokens, used for the `switchyard_cost_total` metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Per-backend request limits the gateway enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Requests a new self-hosted pod receives before it takes live traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
}

/// Wire format a hosted provider speaks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// OpenAI Chat Completions; also every OpenAI-compatible host.
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Openai => "openai",
            Dialect::Anthropic => "anthropic",
        }
    }
}

/// A hosted provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!has(self.credentials) || self.baseUrl.startsWith('https://') || (has(self.allowInsecure) && self.allowInsecure)"
    ).message("credentials are sent only over https: use an https:// baseUrl, or set allowInsecure: true for a host inside the cluster you trust"),
    validation = Rule::new("!has(self.tls) || self.baseUrl.startsWith('https://')")
        .message("tls verifies an https backend's certificate: use an https:// baseUrl, or remove tls"),
)]
pub struct ExternalBackend {
    /// Wire format of the provider: `openai` (OpenAI and every OpenAI-compatible host) or `anthropic`.
    pub dialect: Dialect,
    /// Base URL of the provider's API, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new(
        "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''"
    ).message("baseUrl must be an http:// or https:// URL with a host, e.g. https://api.openai.com/v1"))]
    pub base_url: String,
    /// The provider's model id, e.g. `gpt-4o` or `claude-sonnet-4-5`.
    #[schemars(length(min = 1, max = 256))]
    pub model: String,
    /// The API key, referenced from a Secret labelled `switchyard.dev/credential: provider`.
    /// Omit only for hosts that need no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Allows sending `credentials` over plain `http://` (for a host inside the cluster).
    /// Without it a backend with credentials must use an `https://` baseUrl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure: Option<bool>,
    /// How the backend's certificate is verified: against the system's CA certificates
    /// unless `tls.caSecretRef` names a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTls>,
}

/// Verification of an https backend's certificate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    /// PEM CA certificates that alone are trusted for this backend, in place of the system's
    /// (a private CA, e.g. the `ca.crt` cert-manager writes), from a Secret labelled
    /// `switchyard.dev/credential: ca-bundle`.
    pub ca_secret_ref: SecretKeyRef,
}

/// Inference server software for self-hosted pods; picks the image, arguments, ports and
/// health and metrics paths.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// vLLM's OpenAI-compatible server.
    Vllm,
    /// Hugging Face Text Generation Inference.
    Tgi,
    /// SGLang's OpenAI-compatible server.
    Sglang,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Vllm => "vllm",
            Runtime::Tgi => "tgi",
            Runtime::Sglang => "sglang",
        }
    }
}

/// Inference pods that Switchyard deploys.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SelfHostedBackend {
    /// Inference server: `vllm`, `tgi` or `sglang`.
    pub runtime: Runtime,
    /// Model weights: a Hugging Face hub id (e.g. `meta-llama/Llama-3.1-8B-Instruct`) or a
    /// path on the model cache volume.
    #[schemars(length(min = 1, max = 512))]
    pub model: String,
    /// Number of inference pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// GPUs per pod. Omit for CPU-only pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Gpu>,
    /// Extra node selector labels, merged over the one derived from `gpu.product`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Extra tolerations, added to the `nvidia.com/gpu` toleration GPU pods get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// CPU and memory for the inference container; GPU limits come from `gpu.count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Overrides the runtime's default container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub image: Option<String>,
    /// Extra arguments appended to the runtime's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Extra environment variables for the inference container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Hugging Face token for gated models, referenced from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugging_face_token: Option<SecretKeyRef>,
    /// A PersistentVolumeClaim mounted as the model cache, so restarts do not download again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_cache: Option<ModelCache>,
}

fn default_replicas() -> i32 {
    1
}

/// GPUs each inference pod gets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    /// `nvidia.com/gpu` per pod; also the tensor-parallel size.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 64").message(
        "gpu.count must be between 1 and 64 GPUs per pod (omit gpu for CPU-only pods)"
    ))]
    pub count: i32,
    /// GPU model as GPU feature discovery labels it (`nvidia.com/gpu.product`), e.g.
    /// `NVIDIA-H100-80GB-HBM3` or `NVIDIA-L40S`; pods are pinned to nodes with that label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub product: Option<String>,
}

/// The model cache volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelCache {
    /// Name of a PersistentVolumeClaim in the backend's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
}

/// What the model can do.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// Context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub context_window: Option<i64>,
    /// Whether the model supports tool (function) calls.
    #[serde(default)]
    pub tools: bool,
    /// Whether the model supports JSON mode.
    #[serde(default)]
    pub json_mode: bool,
    /// Whether the provider serves OpenAI's Responses API at `{baseUrl}/responses` (OpenAI
    /// does). Then `POST /v1/responses` passes through to it; otherwise the gateway
    /// translates it to Chat Completions, which every OpenAI-compatible host has. Only
    /// for external backends of the `openai` dialect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub responses_api: bool,
}

/// Price per million tokens, as decimal strings in the account's currency. Either
/// `inputPerMillionTokens` and `outputPerMillionTokens` (with an optional price for cached
/// input), or `totalPerMillionTokens` alone for a provider that prices every token alike.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!has(self.totalPerMillionTokens) || (!has(self.inputPerMillionTokens) && !has(self.outputPerMillionTokens) && !has(self.cachedInputPerMillionTokens))"
    ).message("totalPerMillionTokens prices every token alike: remove inputPerMillionTokens, outputPerMillionTokens and cachedInputPerMillionTokens, or remove totalPerMillionTokens"),
    validation = Rule::new(
        "has(self.totalPerMillionTokens) || (has(self.inputPerMillionTokens) && has(self.outputPerMillionTokens))"
    ).message("pricing needs both inputPerMillionTokens and outputPerMillionTokens, or totalPerMillionTokens alone"),
)]
pub struct Pricing {
    /// Price of one million input (prompt) tokens, e.g. `"2.50"`. Tokens written to a
    /// prompt cache (Anthropic's `cache_creation_input_tokens`) are priced as input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{1,6}([.][0-9]{1,6})?$')").message(
        "inputPerMillionTokens must be a non-negative decimal string such as \"2.50\""
    ))]
    pub input_per_million_tokens: Option<String>,
    /// Price of one million input tokens read from the provider's prompt cache (OpenAI's
    /// `prompt_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`), e.g.
    /// `"1.25"`. Default: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{1,6}([.][0-9]{1,6})?$')").message(
        "cachedInputPerMillionTokens must be a non-negative decimal string such as \"1.25\""
    ))]
    pub cached_input_per_million_tokens: Option<String>,
    /// Price of one million output (completion) tokens, e.g. `"10.00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{1,6}([.][0-9]{1,6})?$')").message(
        "outputPerMillionTokens must be a non-negative decimal string such as \"10.00\""
    ))]
    pub output_per_million_tokens: Option<String>,
    /// Price of one million tokens of any kind, input and output alike, for a provider that
    /// prices total tokens, e.g. `"0.60"`. Excludes the other prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{1,6}([.][0-9]{1,6})?$')").message(
        "totalPerMillionTokens must be a non-negative decimal string such as \"0.60\""
    ))]
    pub total_per_million_tokens: Option<String>,
}

/// Limits the gateway enforces per backend.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Longest a single attempt may take before the gateway fails over. Default 60s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Most requests in flight to this backend at once, across the gateway replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message(
        "maxConcurrency must be at least 1 (omit it for no limit)"
    ))]
    pub max_concurrency: Option<i32>,
}

/// Warm-up of new self-hosted pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Warmup {
    /// Requests sent to each new pod before it counts as ready for routing.
    #[schemars(range(min = 0, max = 10000))]
    pub requests: i32,
}

/// What the controller observed about the backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceBackendStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled, following kstatus conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `External` or `SelfHosted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Dialect of an external backend, or runtime of a self-hosted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Model id served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Base URL the gateway dials (the provider's, or the backend's Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Desired inference pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Inference pods ready for traffic (warmed up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Pods that are Ready and warmed up; the gateway routes only to these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<BackendEndpoint>,
    /// Endpoints the gateway has ejected for failing (outlier detection), as Prometheus last
    /// reported the gateway replicas' maximum; absent when none are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ejected_endpoints: Option<i32>,
}

/// One inference pod the gateway may route to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendEndpoint {
    /// Name of the pod.
    pub pod: String,
    /// `IP:port` of the pod's inference server.
    pub address: String,
}
