//! Every reason a Switchyard condition can carry. A condition is set from a [`Reason`], never
//! from free text, so this list is complete by construction: `docs/troubleshooting.md` has a
//! section for each, and a test fails when one is missing there.

use std::fmt;

/// Declares the enum and `ALL` from one list, so no variant can be left out of `ALL`. Each
/// reason's text is its variant's name (condition reasons are CamelCase, like the variants).
macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// A condition's `reason`: what the controller says about a resource, in one word.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[doc = $doc])* $name,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &[Reason] = &[$(Reason::$name,)*];

            /// The text written to `status.conditions[].reason`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }
        }
    };
}

reasons! {
    // Any kind.
    /// InferenceBackend or Tenant: usable (Ready=True).
    Ready,
    /// A referenced Secret does not exist in the resource's namespace.
    SecretNotFound,
    /// A referenced Secret exists without the `switchyard.dev/credential` label for this use.
    SecretNotLabelled,
    /// A referenced Secret lacks the key, or the key is empty.
    SecretKeyMissing,

    // InferenceBackend.
    /// The `tls.caSecretRef` key holds no PEM certificate.
    CABundleInvalid,
    /// Neither or both of `external` and `selfHosted` are set (admission normally refuses it).
    InvalidSpec,
    /// `selfHosted.replicas` is 0.
    ScaledToZero,
    /// Pods are being created or started.
    PodsStarting,
    /// Ready pods are receiving their warm-up requests.
    WarmingUp,
    /// A pod failed its warm-up three times in a row.
    WarmupFailed,
    /// An inference container keeps crashing (the kubelet's reason).
    CrashLoopBackOff,
    /// The image cannot be pulled (the kubelet's `ErrImagePull` or `ImagePullBackOff`).
    ImagePullBackOff,
    /// The image reference is malformed (the kubelet's reason).
    InvalidImageName,
    /// A Secret or ConfigMap the container needs is missing (the kubelet's reason).
    CreateContainerConfigError,
    /// The container runtime could not create the container (the kubelet's reason).
    CreateContainerError,
    /// Pods are unschedulable for lack of `nvidia.com/gpu`.
    InsufficientGPU,
    /// Pods are unschedulable for another reason the scheduler names.
    Unschedulable,
    /// The API server refused to apply the Deployment, Service or PodDisruptionBudget (403).
    ApplyForbidden,
    /// The API server refused the generated object as invalid (422).
    ApplyInvalid,
    /// Deleted while routes still use it; it keeps serving until they let go.
    InUse,
    /// The gateway ejected some of its endpoints (condition `EndpointsEjected`).
    OutlierEjection,

    // ModelRoute.
    /// The desired split is fully in effect.
    SplitInEffect,
    /// A migration moves through its steps.
    Progressing,
    /// A migration copies traffic to the new backends before moving live weight.
    Mirroring,
    /// An operator paused the migration.
    Paused,
    /// The step holds on inconclusive analyses.
    Holding,
    /// The step holds because a backend gaining traffic is not Ready.
    TargetNotReady,
    /// The step holds because Prometheus could not be queried.
    PrometheusUnreachable,
    /// No Prometheus is configured to judge the migration, which holds where it is.
    PrometheusNotConfigured,
    /// The migration was rolled back to the stable split.
    RolledBack,
    /// An operator aborted the migration.
    Aborted,
    /// A step could not advance within `rollout.progressDeadline`.
    ProgressDeadlineExceeded,
    /// A backend the route names does not exist in its namespace.
    BackendNotFound,
    /// Another route of the namespace claims the same model name.
    ModelConflict,
}

impl Reason {
    /// The reason for a container the kubelet reports waiting for `kubelet_reason`, when
    /// waiting will not help. `ErrImagePull` turns into `ImagePullBackOff` on the next try,
    /// so it is reported as that and the reason does not flap.
    pub fn of_stuck_container(kubelet_reason: &str) -> Option<Reason> {
        Some(match kubelet_reason {
            "CrashLoopBackOff" => Reason::CrashLoopBackOff,
            "ImagePullBackOff" | "ErrImagePull" => Reason::ImagePullBackOff,
            "InvalidImageName" => Reason::InvalidImageName,
            "CreateContainerConfigError" => Reason::CreateContainerConfigError,
            "CreateContainerError" => Reason::CreateContainerError,
            _ => return None,
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_camel_case_words() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} twice");
            // What Kubernetes requires of a condition reason.
            assert!(s.starts_with(|c: char| c.is_ascii_uppercase()), "{s}");
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
        }
        assert_eq!(Reason::InsufficientGPU.as_str(), "InsufficientGPU");
    }

    #[test]
    fn only_containers_stuck_for_good_have_a_reason() {
        assert_eq!(
            Reason::of_stuck_container("ErrImagePull"),
            Some(Reason::ImagePullBackOff)
        );
        assert_eq!(
            Reason::of_stuck_container("CrashLoopBackOff"),
            Some(Reason::CrashLoopBackOff)
        );
        assert_eq!(Reason::of_stuck_container("ContainerCreating"), None);
    }
}
