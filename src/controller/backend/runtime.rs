//! What each inference server needs: image, arguments, port, health and metrics paths, and
//! where it keeps downloaded weights. Pinned images so a controller upgrade, not a registry
//! push, changes what runs.

use crate::api::Runtime;

/// Where the model cache (PVC or emptyDir) is mounted in every runtime.
pub const MODEL_CACHE_PATH: &str = "/model-cache";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub image: &'static str,
    /// Replaces the image's entrypoint when the image has none suitable.
    pub command: Option<Vec<String>>,
    pub args: Vec<String>,
    pub port: i32,
    pub health_path: &'static str,
    pub metrics_path: &'static str,
    /// Environment the runtime reads its Hugging Face cache location from.
    pub cache_env: &'static str,
}

/// The preset for `runtime` serving `model` across `gpus` GPUs (the tensor-parallel size).
pub fn preset(runtime: Runtime, model: &str, gpus: i32) -> Preset {
    let s = |v: &str| v.to_owned();
    let tp = gpus.max(1).to_string();
    match runtime {
        // vllm/vllm-openai's entrypoint is the OpenAI-compatible API server.
        Runtime::Vllm => Preset {
            image: "vllm/vllm-openai:v0.11.0",
            command: None,
            args: vec![
                s("--model"),
                s(model),
                s("--served-model-name"),
                s(model),
                s("--tensor-parallel-size"),
                tp,
                s("--host"),
                s("0.0.0.0"),
                s("--port"),
                s("8000"),
            ],
            port: 8000,
            health_path: "/health",
            metrics_path: "/metrics",
            cache_env: "HF_HOME",
        },
        // TGI's launcher is the entrypoint; port 8080 because restricted pods cannot bind 80.
        Runtime::Tgi => Preset {
            image: "ghcr.io/huggingface/text-generation-inference:3.3.4",
            command: None,
            args: vec![
                s("--model-id"),
                s(model),
                s("--num-shard"),
                tp,
                s("--hostname"),
                s("0.0.0.0"),
                s("--port"),
                s("8080"),
                s("--huggingface-hub-cache"),
                s(MODEL_CACHE_PATH),
            ],
            port: 8080,
            health_path: "/health",
            metrics_path: "/metrics",
            cache_env: "HF_HOME",
        },
        // The SGLang image has no server entrypoint; metrics are opt-in.
        Runtime::Sglang => Preset {
            image: "lmsysorg/sglang:v0.5.3",
            command: Some(vec![s("python3"), s("-m"), s("sglang.launch_server")]),
            args: vec![
                s("--model-path"),
                s(model),
                s("--served-model-name"),
                s(model),
                s("--tp"),
                tp,
                s("--host"),
                s("0.0.0.0"),
                s("--port"),
                s("30000"),
                s("--enable-metrics"),
            ],
            port: 30000,
            health_path: "/health",
            metrics_path: "/metrics",
            cache_env: "HF_HOME",
        },
    }
}
