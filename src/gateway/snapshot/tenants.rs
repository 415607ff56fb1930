//! The tenants' keys, from Tenants and the Secrets labelled `tenant-key` they name, with the
//! routes each key may use resolved to names here, so a request checks a set.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::build::secret_value;
use crate::api::{CredentialPurpose, ModelRoute, Tenant};
use crate::gateway::auth::{Caller, Keys, Scope};
use crate::gateway::cache::Stores;

/// Every accepted key. Tenants are taken oldest first, so when two hold the same key the
/// older keeps it and a newer Tenant cannot take over another's key.
pub fn keys(
    tenants: &Stores<Tenant>,
    secrets: &Stores<Secret>,
    routes: &[Arc<ModelRoute>],
) -> Keys {
    let mut all = tenants.state();
    all.sort_by(|a, b| {
        (
            a.creation_timestamp().map(|t| t.0),
            a.namespace(),
            a.name_any(),
        )
            .cmp(&(
                b.creation_timestamp().map(|t| t.0),
                b.namespace(),
                b.name_any(),
            ))
    });
    let mut keys = Keys::default();
    for t in &all {
        let ns = t.namespace().unwrap_or_default();
        let scope = match &t.spec.routes {
            None => Scope::Namespace,
            Some(s) => Scope::Routes(
                routes
                    .iter()
                    .filter(|r| r.namespace().as_deref() == Some(ns.as_str()))
                    .filter(|r| s.allows(&r.name_any(), r.labels()))
                    .map(|r| r.name_any())
                    .collect::<HashSet<_>>(),
            ),
        };
        let caller = Arc::new(Caller {
            namespace: ns.clone(),
            tenant: t.name_any().into(),
            scope,
        });
        for k in &t.spec.keys {
            let r = &k.secret_ref;
            // The controller reports why in the Tenant's status; the log names no value.
            let why =
                match secret_value(secrets, &ns, &r.name, &r.key, CredentialPurpose::TenantKey) {
                    Some(v) if !v.is_empty() => {
                        if keys.insert(v.as_bytes(), caller.clone()) {
                            continue;
                        }
                        "an older Tenant holds the same key"
                    }
                    _ => "no such key in a Secret labelled switchyard.dev/credential=tenant-key",
                };
            tracing::debug!(namespace = %ns, tenant = %t.name_any(), secret = %r.name, key = %r.key, why, "tenant key not accepted");
        }
    }
    keys
}
