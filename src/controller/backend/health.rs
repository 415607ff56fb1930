//! Pods that will not get better by waiting: containers stuck in CrashLoopBackOff, an image
//! that cannot be pulled, or a container whose configuration (a Secret or ConfigMap it
//! names) is missing. Read from the pods' container statuses, in the kubelet's own words.
//! Messages carry no restart counts or ages, so an unchanged situation writes no new status.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt;

use crate::api::reason::Reason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// The kubelet's waiting reason, e.g. `CrashLoopBackOff` (see
    /// [`Reason::of_stuck_container`]).
    pub reason: Reason,
    pub message: String,
}

/// The first stuck container of the pods, in a stable order (pod name, then container).
pub fn stuck(pods: &[Pod]) -> Option<Stuck> {
    let mut pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    pods.sort_by_key(|p| p.name_any());
    let mut found: Vec<(&Pod, &ContainerStatus, Reason)> = vec![];
    for pod in pods {
        let Some(st) = pod.status.as_ref() else {
            continue;
        };
        let statuses = st
            .init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten());
        for cs in statuses {
            let Some(reason) = cs
                .state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .and_then(Reason::of_stuck_container)
            else {
                continue;
            };
            found.push((pod, cs, reason));
        }
    }
    let (pod, cs, reason) = found.first().copied()?;
    // The kubelet's CrashLoopBackOff message names the current back-off delay, which grows
    // with every restart: left out, like the restart count.
    let kubelet = cs
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.message.as_deref())
        .map(str::trim)
        .filter(|m| !m.is_empty() && reason != Reason::CrashLoopBackOff);
    let last_exit = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| {
            format!(
                "; it last exited with code {}{}",
                t.exit_code,
                t.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let hint = match reason {
        Reason::CrashLoopBackOff => {
            "the inference server keeps crashing; see `kubectl logs --previous`"
        }
        Reason::ImagePullBackOff | Reason::InvalidImageName => {
            "check spec.selfHosted.image and pull access"
        }
        _ => "a Secret or ConfigMap the pod needs is missing or lacks the key",
    };
    let others = found.len() - 1;
    let more = if others > 0 {
        format!(" ({others} more container(s) stuck)")
    } else {
        String::new()
    };
    Some(Stuck {
        reason,
        message: format!(
            "container {:?} of pod {}: {reason}{}{last_exit}{more}: {hint}",
            cs.name,
            pod.name_any(),
            kubelet.map(|k| format!(": {k}")).unwrap_or_default(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, waiting: &str, message: &str) -> Pod {
        serde_yaml::from_str(&format!(
            r#"
metadata: {{name: {name}}}
status:
  containerStatuses:
  - name: inference
    image: vllm/vllm-openai
    imageID: ""
    ready: false
    restartCount: 7
    state: {{waiting: {{reason: {waiting}, message: "{message}"}}}}
    lastState: {{terminated: {{exitCode: 1, reason: Error}}}}
"#
        ))
        .unwrap()
    }

    #[test]
    fn each_stuck_state_has_its_reason_and_the_kubelets_words() {
        let s = stuck(&[pod(
            "a",
            "CrashLoopBackOff",
            "back-off 5m0s restarting failed container",
        )])
        .unwrap();
        assert_eq!(s.reason, "CrashLoopBackOff");
        assert!(s.message.contains("pod a"), "{}", s.message);
        assert!(
            s.message.contains("exited with code 1 (Error)"),
            "{}",
            s.message
        );
        assert!(!s.message.contains('7'), "no restart count: {}", s.message);
        assert!(
            !s.message.contains("5m0s"),
            "no back-off delay: {}",
            s.message
        );

        let s = stuck(&[pod("a", "ErrImagePull", "pull access denied")]).unwrap();
        assert_eq!(s.reason, "ImagePullBackOff");
        assert!(s.message.contains("pull access denied"));
        let s = stuck(&[pod("a", "ImagePullBackOff", "Back-off pulling image")]).unwrap();
        assert_eq!(s.reason, "ImagePullBackOff");

        let s = stuck(&[pod(
            "a",
            "CreateContainerConfigError",
            "secret \\\"hf\\\" not found",
        )])
        .unwrap();
        assert_eq!(s.reason, "CreateContainerConfigError");
        assert!(
            s.message.contains("secret \"hf\" not found"),
            "{}",
            s.message
        );
    }

    #[test]
    fn starting_containers_are_not_stuck_and_the_order_is_stable() {
        assert_eq!(stuck(&[pod("a", "ContainerCreating", "")]), None);
        let b = pod("b", "CrashLoopBackOff", "");
        let a = pod("a", "ImagePullBackOff", "");
        let one = stuck(&[b.clone(), a.clone()]).unwrap();
        assert_eq!(one, stuck(&[a, b]).unwrap());
        assert_eq!(one.reason, "ImagePullBackOff");
        assert!(one.message.contains("1 more container(s) stuck"));
    }
}
