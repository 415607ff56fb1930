//! Who is calling: the key a request presents, looked up among the tenants' keys.
//!
//! Keys are held only as SHA-256 digests. A presented key is hashed, then its digest is
//! looked up, and the stored digest is compared with it in constant time: a timing
//! difference can only tell a caller about the digest of the key it sent itself, never about
//! a stored key. A key arrives the way each SDK sends it: `Authorization: Bearer …` (OpenAI)
//! or `x-api-key` (Anthropic); either is accepted on every endpoint.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::api::Dialect;

/// A SHA-256 digest of a key.
pub type Digest = [u8; 32];

pub fn digest(key: &[u8]) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether the gateway requires keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every request must present a tenant's key (the default).
    Required,
    /// Anyone who can reach the gateway may use every route; for trusted networks only.
    Disabled,
}

/// The routes a caller may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every route (only with `--auth=disabled`).
    Any,
    /// Every route of the tenant's namespace.
    Namespace,
    /// These routes of the tenant's namespace, by name.
    Routes(HashSet<String>),
}

/// An authenticated caller: a tenant, or anyone when keys are not required.
#[derive(Debug)]
pub struct Caller {
    pub namespace: String,
    /// The `tenant` label of its requests' metrics.
    pub tenant: Arc<str>,
    pub scope: Scope,
}

/// The `tenant` label when keys are not required.
pub const ANONYMOUS: &str = "anonymous";
/// The `tenant` label of the controller's evaluation replays. A Tenant's name cannot hold a
/// colon, so no Tenant is ever counted as this one.
pub const EVALUATION_TENANT: &str = "switchyard:eval";

impl Caller {
    pub fn anonymous() -> Self {
        Self {
            namespace: String::new(),
            tenant: ANONYMOUS.into(),
            scope: Scope::Any,
        }
    }

    /// Whether this is the controller replaying an evaluation set.
    pub fn is_evaluation(&self) -> bool {
        &*self.tenant == EVALUATION_TENANT
    }

    /// Whether the caller may use the route `(namespace, name)`.
    pub fn may_use(&self, namespace: &str, name: &str) -> bool {
        match &self.scope {
            Scope::Any => true,
            Scope::Namespace => namespace == self.namespace,
            Scope::Routes(names) => namespace == self.namespace && names.contains(name),
        }
    }
}

/// Every key the gateway accepts, by digest.
#[derive(Default)]
pub struct Keys {
    by_digest: HashMap<Digest, Arc<Caller>>,
}

impl Keys {
    /// Adds a key; `false` when the same key already belongs to a caller (it keeps it).
    pub fn insert(&mut self, key: &[u8], caller: Arc<Caller>) -> bool {
        use std::collections::hash_map::Entry;
        match self.by_digest.entry(digest(key)) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(caller);
                true
            }
        }
    }

    /// The caller whose key this is.
    pub fn find(&self, key: &[u8]) -> Option<&Arc<Caller>> {
        let d = digest(key);
        let (stored, caller) = self.by_digest.get_key_value(&d)?;
        bool::from(stored.ct_eq(&d)).then_some(caller)
    }
}

/// The key a request presents, the way the OpenAI or the Anthropic SDK sends it.
pub fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get("x-api-key") {
        return Some(v.as_bytes());
    }
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let scheme = v.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| v[7..].trim_ascii())
}

/// The dialect to answer in before the request is read: Anthropic's for its paths or when
/// the caller sends Anthropic's headers, OpenAI's otherwise.
pub fn dialect_of(path: &str, headers: &HeaderMap) -> Dialect {
    if path.starts_with("/v1/messages")
        || headers.contains_key("anthropic-version")
        || headers.contains_key("x-api-key")
    {
        Dialect::Anthropic
    } else {
        Dialect::Openai
    }
}

/// Why a request is not let in, as the caller is told (never which keys exist).
pub fn rejection(headers: &HeaderMap) -> &'static str {
    if presented(headers).is_some_and(|k| !k.is_empty()) {
        "The API key presented is not valid for this gateway. Use a key of a Tenant (sent as Authorization: Bearer <key> or x-api-key: <key>)."
    } else {
        "No API key presented. Send a Tenant's key as Authorization: Bearer <key> (OpenAI SDKs: api_key=...) or x-api-key: <key> (Anthropic SDKs: api_key=...)."
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_key_is_read_as_each_sdk_sends_it() {
        assert_eq!(
            presented(&headers(&[("authorization", "Bearer sk-1")])),
            Some(&b"sk-1"[..])
        );
        assert_eq!(
            presented(&headers(&[("authorization", "bearer  sk-1 ")])),
            Some(&b"sk-1"[..])
        );
        assert_eq!(
            presented(&headers(&[("x-api-key", "sk-2")])),
            Some(&b"sk-2"[..])
        );
        assert_eq!(presented(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(presented(&headers(&[])), None);
    }

    #[test]
    fn only_the_digest_is_kept_and_a_key_finds_its_caller() {
        let mut keys = Keys::default();
        let team = Arc::new(Caller {
            namespace: "a".into(),
            tenant: "team".into(),
            scope: Scope::Namespace,
        });
        assert!(keys.insert(b"sk-team", team.clone()));
        assert!(
            !keys.insert(b"sk-team", Arc::new(Caller::anonymous())),
            "taken"
        );
        assert!(Arc::ptr_eq(keys.find(b"sk-team").unwrap(), &team));
        assert!(keys.find(b"sk-tea").is_none());
        assert!(keys.find(b"").is_none());
        assert!(keys.by_digest.keys().all(|d| d != b"sk-team".as_slice()));
    }

    #[test]
    fn a_scope_is_within_the_tenants_namespace() {
        let named = Caller {
            namespace: "a".into(),
            tenant: "t".into(),
            scope: Scope::Routes(HashSet::from(["chat".to_owned()])),
        };
        assert!(named.may_use("a", "chat"));
        assert!(!named.may_use("b", "chat"));
        assert!(!named.may_use("a", "other"));
        let ns = Caller {
            scope: Scope::Namespace,
            ..named
        };
        assert!(ns.may_use("a", "other") && !ns.may_use("b", "chat"));
        assert!(Caller::anonymous().may_use("b", "chat"));
    }
}
