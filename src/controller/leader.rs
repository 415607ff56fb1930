//! Leader election on a `coordination.k8s.io/v1` Lease, so the controller can run with
//! several replicas and exactly one reconciles. It follows client-go's leaderelection:
//!
//! - A standby judges another holder's lease by its *own* clock: it records when it last saw
//!   the lease record change (`observed`), and the lease has expired once that local
//!   observation plus the record's duration has passed. The holder's `renewTime` is written
//!   by another machine's clock and is never compared with ours, so clock skew between
//!   replicas cannot make a standby take a live lease.
//! - The leader gives up when no renewal has succeeded within `renew_deadline` of the start
//!   of the last successful one, even while a request hangs (each attempt is cut off at that
//!   deadline). `renew_deadline < lease_duration`, so it has stopped acting before any
//!   standby can have seen the lease expire.
//!
//! `kube-lease-manager` was considered: it computes expiry as the holder's `renewTime` plus
//! the duration, compared with the local wall clock, which is the skew problem above.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease is valid without renewal; a standby waits this long after it last
    /// saw the lease change.
    pub lease_duration: Duration,
    /// How often the leader renews, and a standby looks.
    pub renew_every: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    pub renew_deadline: Duration,
}

impl Config {
    /// The election settings from the command line, checked so that a leader always stops
    /// before a standby may start.
    pub fn from_args(args: &super::Args) -> anyhow::Result<Self> {
        let lease_duration = Duration::from_secs(args.lease_duration.as_secs());
        let renew_deadline = args
            .lease_renew_deadline
            .unwrap_or(lease_duration.mul_f64(2.0 / 3.0));
        anyhow::ensure!(
            lease_duration >= Duration::from_secs(1),
            "--lease-duration must be at least 1s (the Lease stores whole seconds)"
        );
        anyhow::ensure!(
            args.lease_renew_every < renew_deadline && renew_deadline < lease_duration,
            "leader election needs --lease-renew-every ({:?}) < --lease-renew-deadline ({:?}) < --lease-duration ({:?}): a leader must stop before a standby may take over",
            args.lease_renew_every,
            renew_deadline,
            lease_duration
        );
        Ok(Self {
            namespace: args.lease_namespace.clone(),
            name: super::CONTROLLER_NAME.into(),
            identity: String::new(),
            lease_duration,
            renew_every: args.lease_renew_every,
            renew_deadline,
        })
    }

    pub fn with_identity(self, identity: String) -> Self {
        Self { identity, ..self }
    }
}

/// The lease record as last seen, and when this replica saw it change.
#[derive(Debug, Clone)]
struct Observed {
    record: LeaseSpec,
    at: Instant,
}

pub struct Elector {
    api: Api<Lease>,
    cfg: Config,
    observed: Mutex<Option<Observed>>,
}

/// Whether `identity` may take or keep the lease `record`, which this replica has seen
/// unchanged since `observed_at` (its own clock), at `now` (the same clock).
pub fn may_take(record: &LeaseSpec, identity: &str, observed_at: Instant, now: Instant) -> bool {
    let holder = record.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = u64::try_from(record.lease_duration_seconds.unwrap_or(0)).unwrap_or(0);
    now >= observed_at + Duration::from_secs(duration)
}

impl Elector {
    pub fn new(client: Client, cfg: Config) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: Mutex::new(None),
        }
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(&self) {
        let mut logged = false;
        loop {
            let started = Instant::now();
            let attempt =
                tokio::time::timeout(self.cfg.renew_deadline, self.try_acquire(started)).await;
            match attempt {
                Ok(Ok(true)) => {
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "became leader");
                    return;
                }
                Ok(Ok(false)) if !logged => {
                    tracing::info!(lease = %self.cfg.name, "another replica leads; standing by");
                    logged = true;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "lease acquisition failed; retrying"),
                Err(_) => tracing::warn!("lease acquisition timed out; retrying"),
            }
            tokio::time::sleep(self.cfg.renew_every).await;
        }
    }

    /// Renews the lease until it cannot: returns when leadership is lost. Call right after
    /// [`Elector::acquire`] returned.
    pub async fn hold(&self) -> anyhow::Error {
        // The acquisition that just succeeded started no earlier than this.
        let mut last_success = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.renew_every).await;
            let deadline = last_success + self.cfg.renew_deadline;
            loop {
                let started = Instant::now();
                // The attempt is cut off at the deadline, however long the API takes.
                match tokio::time::timeout_at(deadline, self.try_acquire(started)).await {
                    Ok(Ok(true)) => {
                        last_success = started;
                        break;
                    }
                    Ok(Ok(false)) => {
                        return anyhow::anyhow!(
                            "lease {} was taken by another replica",
                            self.cfg.name
                        );
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
                    Err(_) => {
                        return anyhow::anyhow!(
                            "could not renew lease {} within {:?} of the last renewal",
                            self.cfg.name,
                            self.cfg.renew_deadline
                        );
                    }
                }
                let retry = (Instant::now() + self.cfg.renew_every).min(deadline);
                tokio::time::sleep_until(retry).await;
                if Instant::now() >= deadline {
                    return anyhow::anyhow!(
                        "could not renew lease {} within {:?} of the last renewal",
                        self.cfg.name,
                        self.cfg.renew_deadline
                    );
                }
            }
        }
    }

    /// Hands the lease back on shutdown so a standby takes over at once.
    pub async fn release(&self) {
        let release = async {
            let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
                return Ok(false);
            };
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
                return Ok(false);
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            // With the resourceVersion read above: never clears a lease someone else took.
            self.api
                .replace(&self.cfg.name, &PostParams::default(), &lease)
                .await
                .map(|_| true)
        };
        match tokio::time::timeout(self.cfg.renew_deadline, release).await {
            Ok(Ok(true)) => tracing::info!(lease = %self.cfg.name, "released lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not release lease"),
            Err(_) => tracing::warn!("releasing the lease timed out"),
        }
    }

    /// Records `record` as seen at `now`; returns when this replica first saw it unchanged.
    fn observe(&self, record: &LeaseSpec, now: Instant) -> Instant {
        let mut observed = self.observed.lock().expect("lease observation lock");
        match observed.as_ref() {
            Some(o) if o.record == *record => o.at,
            _ => {
                *observed = Some(Observed {
                    record: record.clone(),
                    at: now,
                });
                now
            }
        }
    }

    /// One client-go `tryAcquireOrRenew`. `started` is when this attempt began.
    async fn try_acquire(&self, started: Instant) -> Result<bool, kube::Error> {
        let wall = Timestamp::now();
        let duration = i32::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let spec = LeaseSpec {
                holder_identity: Some(self.cfg.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(MicroTime(wall)),
                renew_time: Some(MicroTime(wall)),
                lease_transitions: Some(0),
                ..Default::default()
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(spec.clone()),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observe(&spec, started);
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let observed_at = self.observe(spec, Instant::now());
        if !may_take(spec, &self.cfg.identity, observed_at, Instant::now()) {
            return Ok(false);
        }
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            spec.holder_identity = Some(self.cfg.identity.clone());
            spec.acquire_time = Some(MicroTime(wall));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(MicroTime(wall));
        let written = spec.clone();
        // resourceVersion in `lease` makes this a compare-and-swap: of two replicas racing
        // for an expired lease, one gets 409 Conflict.
        match self
            .api
            .replace(&lease.name_any(), &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observe(&written, started);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(duration),
            ..Default::default()
        }
    }

    #[test]
    fn another_holders_lease_expires_by_local_observation_not_its_renew_time() {
        let seen = Instant::now();
        // renewTime is far in the past by our wall clock (the holder's clock is behind):
        // still not ours until 15 s after we saw the record change.
        let skewed = record("a", 0, 15);
        assert!(!may_take(&skewed, "b", seen, seen));
        assert!(!may_take(
            &skewed,
            "b",
            seen,
            seen + Duration::from_secs(14)
        ));
        assert!(may_take(&skewed, "b", seen, seen + Duration::from_secs(15)));
        // renewTime far in the future (holder's clock ahead) does not extend it either.
        let ahead = record("a", 4_000_000_000, 15);
        assert!(may_take(&ahead, "b", seen, seen + Duration::from_secs(15)));
    }

    #[test]
    fn own_or_empty_lease_can_be_taken_at_once() {
        let seen = Instant::now();
        assert!(may_take(&record("b", 0, 15), "b", seen, seen));
        assert!(may_take(&record("", 0, 15), "b", seen, seen));
        assert!(may_take(&LeaseSpec::default(), "b", seen, seen));
    }

    fn args(extra: &[&str]) -> super::super::Args {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: super::super::Args,
        }
        let mut argv = vec!["controller"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn renew_deadline_defaults_below_the_lease_and_bad_orders_are_refused() {
        let cfg = Config::from_args(&args(&["--lease-duration", "15s"])).unwrap();
        assert_eq!(cfg.renew_deadline, Duration::from_secs(10));
        let cfg = Config::from_args(&args(&[
            "--lease-duration",
            "4s",
            "--lease-renew-every",
            "1s",
        ]))
        .unwrap();
        assert!(cfg.renew_deadline > cfg.renew_every && cfg.renew_deadline < cfg.lease_duration);
        assert!(
            Config::from_args(&args(&[
                "--lease-duration",
                "4s",
                "--lease-renew-deadline",
                "5s"
            ]))
            .is_err()
        );
        assert!(
            Config::from_args(&args(&[
                "--lease-duration",
                "4s",
                "--lease-renew-every",
                "3s"
            ]))
            .is_err()
        );
    }
}
