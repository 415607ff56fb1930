//! The Kubernetes objects behind a self-hosted backend: a Deployment of inference pods, a
//! Service in front of them, and a PodDisruptionBudget when there is more than one pod.
//! Pure: built from the backend alone, so every field is unit-tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, Service,
    ServicePort, ServiceSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use super::runtime::{MODEL_CACHE_PATH, preset};
use crate::api::{InferenceBackend, SelfHostedBackend};

/// Label carrying the owning backend's name on every object and pod.
pub const BACKEND_LABEL: &str = "switchyard.dev/backend";
/// Extended resource the NVIDIA device plugin advertises.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Node label GPU feature discovery sets to the GPU model.
pub const GPU_PRODUCT_LABEL: &str = "nvidia.com/gpu.product";
/// Name of the inference container and of its serving port.
pub const CONTAINER: &str = "inference";
pub const PORT_NAME: &str = "http";
/// Pods run as this unprivileged user (restricted Pod Security Standard).
const RUN_AS_USER: i64 = 1000;

/// Everything a self-hosted backend needs in the cluster.
#[derive(Debug, Clone)]
pub struct Workload {
    pub deployment: Deployment,
    pub service: Service,
    /// Only with more than one replica: a single pod cannot keep one available through a drain.
    pub pdb: Option<PodDisruptionBudget>,
}

/// Builds the workload of `ib`, whose `spec.selfHosted` must be set.
pub fn build(ib: &InferenceBackend, sh: &SelfHostedBackend) -> Workload {
    let name = ib.name_any();
    let labels = labels(&name, sh);
    let selector = BTreeMap::from([(BACKEND_LABEL.to_owned(), name.clone())]);
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: ib.namespace(),
        labels: Some(labels.clone()),
        owner_references: ib.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    };
    let gpus = sh.gpu.as_ref().map_or(0, |g| g.count);
    let p = preset(sh.runtime, &sh.model, gpus);

    let deployment = Deployment {
        metadata: meta.clone(),
        spec: Some(DeploymentSpec {
            replicas: Some(sh.replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            // Never take a serving pod away before its replacement is up; a full GPU pool
            // then shows as Stalled instead of as lost capacity.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    annotations: Some(BTreeMap::from([
                        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
                        ("prometheus.io/port".to_owned(), p.port.to_string()),
                        ("prometheus.io/path".to_owned(), p.metrics_path.to_owned()),
                    ])),
                    ..Default::default()
                }),
                spec: Some(pod_spec(sh, &p)),
            },
            ..Default::default()
        }),
        ..Default::default()
    };

    let service = Service {
        metadata: meta.clone(),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: p.port,
                target_port: Some(IntOrString::String(PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };

    let pdb = (sh.replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });

    Workload {
        deployment,
        service,
        pdb,
    }
}

fn labels(name: &str, sh: &SelfHostedBackend) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "inference".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), name.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            sh.runtime.as_str().to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "switchyard".to_owned(),
        ),
        (BACKEND_LABEL.to_owned(), name.to_owned()),
    ])
}

fn pod_spec(sh: &SelfHostedBackend, p: &super::runtime::Preset) -> PodSpec {
    // Destructured without `..` so that a new field fails to compile here instead of
    // silently never reaching the pod.
    let SelfHostedBackend {
        runtime: _,
        model: _,
        replicas: _,
        gpu,
        node_selector,
        tolerations,
        resources,
        image,
        args,
        env,
        hugging_face_token,
        model_cache,
    } = sh;

    let mut selector = BTreeMap::new();
    if let Some(product) = gpu.as_ref().and_then(|g| g.product.as_ref()) {
        selector.insert(GPU_PRODUCT_LABEL.to_owned(), product.clone());
    }
    selector.extend(node_selector.clone().unwrap_or_default());

    let mut all_tolerations = Vec::new();
    if gpu.is_some() {
        all_tolerations.push(Toleration {
            key: Some(GPU_RESOURCE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        });
    }
    all_tolerations.extend(tolerations.clone().unwrap_or_default());

    let mut resources = resources.clone().unwrap_or_default();
    if let Some(g) = gpu {
        // The device plugin's resource must sit in limits; requests default to the same.
        let count = Quantity(g.count.to_string());
        resources
            .limits
            .get_or_insert_with(BTreeMap::new)
            .insert(GPU_RESOURCE.into(), count.clone());
        if let Some(req) = resources.requests.as_mut() {
            req.insert(GPU_RESOURCE.into(), count);
        }
    }

    let mut all_env = vec![
        EnvVar {
            name: p.cache_env.into(),
            value: Some(MODEL_CACHE_PATH.into()),
            ..Default::default()
        },
        // Libraries that write under $HOME must find a writable place as a non-root user.
        EnvVar {
            name: "HOME".into(),
            value: Some("/tmp".into()),
            ..Default::default()
        },
    ];
    if let Some(token) = hugging_face_token {
        for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
            all_env.push(EnvVar {
                name: var.into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: token.name.clone(),
                        key: token.key.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    // The user's variables win over the defaults of the same name.
    for user in env.clone().unwrap_or_default() {
        all_env.retain(|e| e.name != user.name);
        all_env.push(user);
    }

    let mut all_args = p.args.clone();
    all_args.extend(args.clone().unwrap_or_default());

    let probe = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(p.health_path.into()),
            port: IntOrString::String(PORT_NAME.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Default::default()
    };

    let cache_volume = match model_cache {
        Some(mc) => Volume {
            name: "model-cache".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: mc.claim_name.clone(),
                read_only: Some(false),
            }),
            ..Default::default()
        },
        None => Volume {
            name: "model-cache".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    };

    PodSpec {
        containers: vec![Container {
            name: CONTAINER.into(),
            image: Some(image.clone().unwrap_or_else(|| p.image.to_owned())),
            command: p.command.clone(),
            args: Some(all_args),
            env: Some(all_env),
            ports: Some(vec![ContainerPort {
                name: Some(PORT_NAME.into()),
                container_port: p.port,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            resources: Some(ResourceRequirements { ..resources }),
            readiness_probe: Some(probe(5, 3)),
            liveness_probe: Some(probe(10, 6)),
            // Loading weights takes minutes; liveness must not kill a pod still loading.
            startup_probe: Some(probe(10, 180)),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "dshm".into(),
                    mount_path: "/dev/shm".into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "model-cache".into(),
                    mount_path: MODEL_CACHE_PATH.into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "tmp".into(),
                    mount_path: "/tmp".into(),
                    ..Default::default()
                },
            ]),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                privileged: Some(false),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Default::default()
                }),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        node_selector: (!selector.is_empty()).then_some(selector),
        tolerations: (!all_tolerations.is_empty()).then_some(all_tolerations),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            fs_group: Some(RUN_AS_USER),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volumes: Some(vec![
            // Tensor-parallel workers exchange data through shared memory; the container
            // default of 64 MiB is far too small.
            Volume {
                name: "dshm".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            cache_volume,
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ]),
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(60),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(yaml: &str) -> InferenceBackend {
        let mut ib: InferenceBackend = serde_yaml::from_str(yaml).unwrap();
        ib.metadata.uid = Some("7d8c5e0a-uid".into());
        ib
    }

    fn build_from(yaml: &str) -> Workload {
        let ib = backend(yaml);
        let sh = ib.spec.self_hosted.clone().unwrap();
        build(&ib, &sh)
    }

    fn container(w: &Workload) -> &Container {
        &w.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn pod(w: &Workload) -> &PodSpec {
        w.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
    }

    const H100: &str = r#"
apiVersion: switchyard.dev/v1alpha1
kind: InferenceBackend
metadata: {name: llama-h100, namespace: ml}
spec:
  selfHosted:
    runtime: vllm
    model: meta-llama/Llama-3.1-70B-Instruct
    replicas: 2
    gpu: {count: 4, product: NVIDIA-H100-80GB-HBM3}
    nodeSelector: {switchyard.dev/node-pool: gpu-h100}
    tolerations: [{key: dedicated, operator: Equal, value: ml, effect: NoSchedule}]
    resources: {requests: {cpu: "8", memory: 64Gi}}
    args: [--max-model-len, "8192"]
    env: [{name: HF_HOME, value: /custom}, {name: VLLM_LOGGING_LEVEL, value: DEBUG}]
    huggingFaceToken: {name: hf, key: token}
    modelCache: {claimName: llama-weights}
"#;

    #[test]
    fn vllm_gets_gpus_selector_tolerations_and_tensor_parallelism() {
        let w = build_from(H100);
        let c = container(&w);
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits[GPU_RESOURCE], Quantity("4".into()));
        let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["cpu"], Quantity("8".into()));
        assert_eq!(requests[GPU_RESOURCE], Quantity("4".into()));

        let p = pod(&w);
        let sel = p.node_selector.as_ref().unwrap();
        assert_eq!(sel[GPU_PRODUCT_LABEL], "NVIDIA-H100-80GB-HBM3");
        assert_eq!(sel["switchyard.dev/node-pool"], "gpu-h100");
        let tol = p.tolerations.as_ref().unwrap();
        assert_eq!(tol[0].key.as_deref(), Some(GPU_RESOURCE));
        assert_eq!(tol[0].operator.as_deref(), Some("Exists"));
        assert_eq!(tol[1].key.as_deref(), Some("dedicated"));

        let args = c.args.as_ref().unwrap();
        let after = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].as_str();
        assert_eq!(after("--model"), "meta-llama/Llama-3.1-70B-Instruct");
        assert_eq!(
            after("--served-model-name"),
            "meta-llama/Llama-3.1-70B-Instruct"
        );
        assert_eq!(after("--tensor-parallel-size"), "4");
        assert_eq!(after("--port"), "8000");
        assert_eq!(&args[args.len() - 2..], ["--max-model-len", "8192"]);
        assert_eq!(c.image.as_deref(), Some("vllm/vllm-openai:v0.11.0"));
    }

    #[test]
    fn probes_ports_shm_cache_and_token() {
        let w = build_from(H100);
        let c = container(&w);
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(ready.path.as_deref(), Some("/health"));
        assert_eq!(ready.port, IntOrString::String("http".into()));
        assert_eq!(
            c.startup_probe.as_ref().unwrap().failure_threshold,
            Some(180)
        );
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8000);

        let p = pod(&w);
        let vols = p.volumes.as_ref().unwrap();
        let shm = vols.iter().find(|v| v.name == "dshm").unwrap();
        assert_eq!(
            shm.empty_dir.as_ref().unwrap().medium.as_deref(),
            Some("Memory")
        );
        let cache = vols.iter().find(|v| v.name == "model-cache").unwrap();
        assert_eq!(
            cache.persistent_volume_claim.as_ref().unwrap().claim_name,
            "llama-weights"
        );
        let mounts = c.volume_mounts.as_ref().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "dshm" && m.mount_path == "/dev/shm")
        );

        let env = c.env.as_ref().unwrap();
        let token = env.iter().find(|e| e.name == "HF_TOKEN").unwrap();
        let secret = token
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((secret.name.as_str(), secret.key.as_str()), ("hf", "token"));
        // The user's HF_HOME replaces the default instead of appearing twice.
        let homes: Vec<_> = env.iter().filter(|e| e.name == "HF_HOME").collect();
        assert_eq!(homes.len(), 1);
        assert_eq!(homes[0].value.as_deref(), Some("/custom"));
        let annotations = w
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap();
        assert_eq!(
            annotations.annotations.as_ref().unwrap()["prometheus.io/path"],
            "/metrics"
        );
    }

    #[test]
    fn pods_meet_the_restricted_pod_security_standard() {
        let w = build_from(H100);
        let sc = container(&w).security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let psc = pod(&w).security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert!(psc.run_as_user.unwrap() > 0);
    }

    #[test]
    fn owned_by_the_backend_with_service_and_pdb() {
        let w = build_from(H100);
        let owner = &w.deployment.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("InferenceBackend", "llama-h100")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(w.deployment.metadata.namespace.as_deref(), Some("ml"));
        let svc = w.service.spec.as_ref().unwrap();
        assert_eq!(svc.selector.as_ref().unwrap()[BACKEND_LABEL], "llama-h100");
        assert_eq!(svc.ports.as_ref().unwrap()[0].port, 8000);
        let pdb = w.pdb.as_ref().unwrap().spec.as_ref().unwrap();
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    }

    #[test]
    fn one_replica_has_no_pdb_and_cpu_pods_no_gpu_toleration() {
        let w = build_from(
            r#"
apiVersion: switchyard.dev/v1alpha1
kind: InferenceBackend
metadata: {name: small, namespace: ml}
spec:
  selfHosted: {runtime: vllm, model: Qwen/Qwen2.5-0.5B-Instruct}
"#,
        );
        assert!(w.pdb.is_none());
        let p = pod(&w);
        assert!(p.tolerations.is_none());
        assert!(p.node_selector.is_none());
        let limits = container(&w)
            .resources
            .as_ref()
            .unwrap()
            .limits
            .clone()
            .unwrap_or_default();
        assert!(!limits.contains_key(GPU_RESOURCE));
        assert_eq!(w.deployment.spec.as_ref().unwrap().replicas, Some(1));
    }

    #[test]
    fn tgi_and_sglang_use_their_own_arguments_and_ports() {
        let tgi = build_from(
            r#"
apiVersion: switchyard.dev/v1alpha1
kind: InferenceBackend
metadata: {name: tgi, namespace: ml}
spec:
  selfHosted: {runtime: tgi, model: mistralai/Mistral-7B-Instruct-v0.3, gpu: {count: 2, product: NVIDIA-L40S}}
"#,
        );
        let c = container(&tgi);
        let args = c.args.as_ref().unwrap();
        assert!(
            args.windows(2)
                .any(|w| w == ["--model-id", "mistralai/Mistral-7B-Instruct-v0.3"])
        );
        assert!(args.windows(2).any(|w| w == ["--num-shard", "2"]));
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8080);
        assert!(
            c.image
                .as_ref()
                .unwrap()
                .contains("text-generation-inference")
        );

        let sglang = build_from(
            r#"
apiVersion: switchyard.dev/v1alpha1
kind: InferenceBackend
metadata: {name: sg, namespace: ml}
spec:
  selfHosted: {runtime: sglang, model: Qwen/Qwen2.5-7B-Instruct, gpu: {count: 1}, image: my/sglang:dev}
"#,
        );
        let c = container(&sglang);
        assert_eq!(c.command.as_ref().unwrap()[2], "sglang.launch_server");
        let args = c.args.as_ref().unwrap();
        assert!(args.windows(2).any(|w| w == ["--tp", "1"]));
        assert!(args.contains(&"--enable-metrics".to_owned()));
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 30000);
        assert_eq!(c.image.as_deref(), Some("my/sglang:dev"));
        // No product: tolerate GPU nodes but do not pin a model.
        assert!(pod(&sglang).node_selector.is_none());
        assert!(pod(&sglang).tolerations.is_some());
    }
}
