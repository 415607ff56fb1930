//! Finding the Secret a resource names, among those labelled for its purpose only. The
//! controller never reads an unlabelled Secret's data: the labelled one is listed by name and
//! label; when none is found, a metadata-only read tells "not labelled" from "missing", so
//! the condition can say exactly which label to add.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PartialObjectMeta};
use kube::{Api, Client};

use crate::api::reason::Reason;
use crate::api::{CREDENTIAL_LABEL, CredentialPurpose};

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The Secret, labelled for the purpose.
    Found(Box<Secret>),
    /// A Secret of that name exists without the label for this purpose (its label value, if
    /// it has one for another purpose).
    NotLabelled {
        has: Option<String>,
    },
    Missing,
}

pub async fn find(
    client: &Client,
    namespace: &str,
    name: &str,
    purpose: CredentialPurpose,
) -> Result<Lookup, kube::Error> {
    let by_name = format!("metadata.name={name}");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let labelled = ListParams::default()
        .labels(&format!("{CREDENTIAL_LABEL}={}", purpose.as_str()))
        .fields(&by_name);
    if let Some(s) = secrets.list(&labelled).await?.items.into_iter().next() {
        return Ok(Lookup::Found(Box::new(s)));
    }
    let meta: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), namespace);
    let any = meta
        .list_metadata(&ListParams::default().fields(&by_name))
        .await?;
    Ok(match any.items.into_iter().next() {
        Some(s) => Lookup::NotLabelled {
            has: s
                .metadata
                .labels
                .and_then(|l| l.get(CREDENTIAL_LABEL).cloned()),
        },
        None => Lookup::Missing,
    })
}

/// The value of `key` (empty when absent).
pub fn value(secret: &Secret, key: &str) -> Vec<u8> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return v.0.clone();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default()
}

/// Whether `secret` holds a non-empty `key`.
pub fn has_key(secret: &Secret, key: &str) -> bool {
    secret
        .data
        .as_ref()
        .is_some_and(|d| d.get(key).is_some_and(|v| !v.0.is_empty()))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.get(key).is_some_and(|v| !v.is_empty()))
}

/// Why a named Secret key cannot be used, as a condition's reason and message (naming the
/// Secret, the key and the label, never a value); `None` when it can.
pub fn problem(
    lookup: &Lookup,
    namespace: &str,
    name: &str,
    key: &str,
    purpose: CredentialPurpose,
) -> Option<(Reason, String)> {
    let label = format!("{CREDENTIAL_LABEL}={}", purpose.as_str());
    match lookup {
        Lookup::Found(s) if has_key(s, key) => None,
        Lookup::Found(_) => Some((
            Reason::SecretKeyMissing,
            format!("Secret {name:?} has no non-empty key {key:?}"),
        )),
        Lookup::NotLabelled { has } => Some((
            Reason::SecretNotLabelled,
            match has {
                Some(other) => format!(
                    "Secret {name:?} is labelled {CREDENTIAL_LABEL}={other}, which may not be used here; this needs a Secret labelled {label} (kubectl label secret {name} -n {namespace} --overwrite {label}, or use a separate Secret)"
                ),
                None => format!(
                    "Secret {name:?} is not labelled {label}; Switchyard uses only Secrets that opt in: kubectl label secret {name} -n {namespace} {label}"
                ),
            },
        )),
        Lookup::Missing => Some((
            Reason::SecretNotFound,
            format!("Secret {name:?} not found; create it with key {key:?} and the label {label}"),
        )),
    }
}
