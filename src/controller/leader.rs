//! Leader election on a `coordination.k8s.io/v1` Lease, so the controller can run with
//! several replicas and exactly one reconciles. The standby takes over once the leader's
//! lease expires; a leader that cannot renew in time stops leading (the process exits and
//! is restarted) rather than risk two writers.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease is valid without renewal; the standby waits this long.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
}

pub struct Elector {
    api: Api<Lease>,
    cfg: Config,
}

/// Whether `lease` lets `identity` take or keep the lead at `now`.
pub fn can_acquire(lease: &LeaseSpec, identity: &str, now: Timestamp) -> bool {
    let holder = lease.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = i64::from(lease.lease_duration_seconds.unwrap_or(15));
    let renewed = lease
        .renew_time
        .as_ref()
        .or(lease.acquire_time.as_ref())
        .map(|t| t.0);
    match renewed {
        Some(t) => now.as_second() > t.as_second() + duration,
        None => true,
    }
}

impl Elector {
    pub fn new(client: Client, cfg: Config) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
        }
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(&self) {
        let mut logged = false;
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "became leader");
                    return;
                }
                Ok(false) if !logged => {
                    tracing::info!(lease = %self.cfg.name, "another replica leads; standing by");
                    logged = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "lease acquisition failed; retrying"),
            }
            tokio::time::sleep(self.cfg.renew_every).await;
        }
    }

    /// Renews the lease until it cannot: returns when leadership is lost.
    pub async fn hold(&self) -> anyhow::Error {
        // Give up before the lease could have expired in another replica's eyes.
        let deadline = self.cfg.lease_duration.saturating_sub(self.cfg.renew_every);
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.cfg.renew_every).await;
            match self.try_acquire().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    return anyhow::anyhow!("lease {} was taken by another replica", self.cfg.name);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lease renewal failed");
                    if last_renewal.elapsed() > deadline {
                        return anyhow::anyhow!(
                            "could not renew lease {} in time: {e}",
                            self.cfg.name
                        );
                    }
                }
            }
        }
    }

    /// Hands the lease back on shutdown so a standby takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() == Some(self.cfg.identity.as_str()) {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                if let Err(e) = self
                    .api
                    .replace(&self.cfg.name, &PostParams::default(), &lease)
                    .await
                {
                    tracing::warn!(error = %e, "could not release lease");
                } else {
                    tracing::info!(lease = %self.cfg.name, "released lease");
                }
            }
        }
    }

    async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let duration = i32::try_from(self.cfg.lease_duration.as_secs())
            .unwrap_or(15)
            .max(1);
        match self.api.get_opt(&self.cfg.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.cfg.identity.clone()),
                        lease_duration_seconds: Some(duration),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                if !can_acquire(spec, &self.cfg.identity, now) {
                    return Ok(false);
                }
                if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
                    spec.holder_identity = Some(self.cfg.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(duration);
                spec.renew_time = Some(MicroTime(now));
                // resourceVersion in `lease` makes this a compare-and-swap: of two
                // replicas racing for an expired lease, one gets 409 Conflict.
                match self
                    .api
                    .replace(&lease.name_any(), &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(duration),
            ..Default::default()
        }
    }

    #[test]
    fn only_an_expired_or_own_or_empty_lease_can_be_taken() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert!(!can_acquire(&spec("a", 990, 15), "b", now));
        assert!(can_acquire(&spec("a", 980, 15), "b", now));
        assert!(can_acquire(&spec("b", 999, 15), "b", now));
        assert!(can_acquire(&spec("", 999, 15), "b", now));
    }
}
