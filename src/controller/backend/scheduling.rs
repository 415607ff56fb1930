//! Explains pods the scheduler cannot place, in the scheduler's own words.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::workload::GPU_RESOURCE;
use crate::api::reason::Reason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    /// `InsufficientGPU` when GPUs are what is missing, else `Unschedulable`.
    pub reason: Reason,
    pub message: String,
}

/// Looks for pods that have been unschedulable for longer than `grace` (a short wait lets
/// the scheduler and autoscalers act first). `gpus`/`product` describe what each pod asks for.
pub fn unschedulable(
    pods: &[Pod],
    now: Timestamp,
    grace: Duration,
    gpus: i32,
    product: Option<&str>,
) -> Option<Unschedulable> {
    let stuck: Vec<(&Pod, String, Timestamp)> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let c = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "PodScheduled")?;
            (c.status == "False" && c.reason.as_deref() == Some("Unschedulable")).then(|| {
                let since = c.last_transition_time.as_ref().map_or(now, |t| t.0);
                (p, c.message.clone().unwrap_or_default(), since)
            })
        })
        .filter(|(_, _, since)| now.duration_since(*since).unsigned_abs() >= grace)
        .collect();
    let (_, scheduler_says, _) = stuck.iter().min_by_key(|(_, _, since)| *since)?;
    let reason = if scheduler_says.contains(&format!("Insufficient {GPU_RESOURCE}")) {
        Reason::InsufficientGPU
    } else {
        Reason::Unschedulable
    };
    let asks = match (gpus, product) {
        (0, _) => "no GPUs".to_owned(),
        (n, Some(p)) => format!("{n} {GPU_RESOURCE} on {p} nodes"),
        (n, None) => format!("{n} {GPU_RESOURCE}"),
    };
    // No elapsed time in the message: an unchanged situation must not rewrite status.
    Some(Unschedulable {
        reason,
        message: format!(
            "{} pod(s) unschedulable for longer than {}s, each asking for {asks}: {}",
            stuck.len(),
            grace.as_secs(),
            scheduler_says.trim()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    const PENDING: &str = r#"
metadata: {name: llama-abc}
status:
  phase: Pending
  conditions:
  - type: PodScheduled
    status: "False"
    reason: Unschedulable
    lastTransitionTime: "2026-01-01T00:00:00Z"
    message: "0/6 nodes are available: 2 Insufficient nvidia.com/gpu, 4 node(s) didn't match Pod's node affinity/selector. preemption: 0/6 nodes are available: 2 No preemption victims found for incoming pod, 4 Preemption is not helpful for scheduling."
"#;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn insufficient_gpu_after_the_grace_period_with_the_schedulers_message() {
        let pods = [pod(PENDING)];
        let grace = Duration::from_secs(20);
        assert_eq!(
            unschedulable(
                &pods,
                at("2026-01-01T00:00:10Z"),
                grace,
                8,
                Some("NVIDIA-L40S")
            ),
            None
        );
        let u = unschedulable(
            &pods,
            at("2026-01-01T00:00:30Z"),
            grace,
            8,
            Some("NVIDIA-L40S"),
        )
        .unwrap();
        assert_eq!(u.reason, "InsufficientGPU");
        assert!(
            u.message.contains("8 nvidia.com/gpu on NVIDIA-L40S nodes"),
            "{}",
            u.message
        );
        assert!(
            u.message
                .contains("0/6 nodes are available: 2 Insufficient nvidia.com/gpu")
        );
        assert!(u.message.contains("unschedulable for longer than 20s"));
        // Later, nothing changed: the same words, so status is not rewritten.
        let later = unschedulable(
            &pods,
            at("2026-01-01T00:05:00Z"),
            grace,
            8,
            Some("NVIDIA-L40S"),
        )
        .unwrap();
        assert_eq!(later, u);
    }

    #[test]
    fn other_reasons_are_plain_unschedulable_and_scheduled_pods_are_fine() {
        let other = PENDING.replace(
            "2 Insufficient nvidia.com/gpu",
            "2 node(s) had untolerated taint",
        );
        let u = unschedulable(
            &[pod(&other)],
            at("2026-01-02T00:00:00Z"),
            Duration::ZERO,
            1,
            None,
        )
        .unwrap();
        assert_eq!(u.reason, "Unschedulable");
        let scheduled = pod(
            "metadata: {name: ok}\nstatus: {conditions: [{type: PodScheduled, status: \"True\"}]}",
        );
        assert_eq!(
            unschedulable(
                &[scheduled],
                at("2026-01-02T00:00:00Z"),
                Duration::ZERO,
                1,
                None
            ),
            None
        );
    }
}
