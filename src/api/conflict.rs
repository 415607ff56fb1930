//! Which route serves a model name that several routes claim: the oldest (creation time),
//! then the first by namespace and name. The gateway routes by this rule and the controller
//! reports conflicts by it, so what status says is what the gateway does.

use std::borrow::Borrow;

use kube::ResourceExt;

use super::ModelRoute;

/// The model name `mr` claims.
pub fn model_of(mr: &ModelRoute) -> String {
    mr.spec.model_name(&mr.name_any()).to_owned()
}

/// Orders routes by precedence: the smaller key serves.
pub fn precedence(
    mr: &ModelRoute,
) -> (Option<k8s_openapi::jiff::Timestamp>, Option<String>, String) {
    (
        mr.creation_timestamp().map(|t| t.0),
        mr.namespace(),
        mr.name_any(),
    )
}

/// Of `routes`, the one serving `model`, if any claims it.
pub fn serving<R: Borrow<ModelRoute>>(
    routes: impl IntoIterator<Item = R>,
    model: &str,
) -> Option<R> {
    routes
        .into_iter()
        .filter(|r| model_of(r.borrow()) == model)
        .min_by_key(|r| precedence(r.borrow()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn route(ns: &str, name: &str, model: &str, created: &str) -> Arc<ModelRoute> {
        Arc::new(
            serde_yaml::from_str(&format!(
                "apiVersion: switchyard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: {name}, namespace: {ns}, creationTimestamp: '{created}'}}\nspec: {{model: {model}, backends: [{{name: x, weight: 1}}]}}"
            ))
            .unwrap(),
        )
    }

    #[test]
    fn the_oldest_then_namespace_and_name_serves() {
        let old = route("b", "z", "chat", "2026-01-01T00:00:00Z");
        let new = route("a", "a", "chat", "2026-01-02T00:00:00Z");
        let other = route("a", "o", "embed", "2025-01-01T00:00:00Z");
        let routes = vec![new.clone(), other.clone(), old.clone()];
        assert!(Arc::ptr_eq(&serving(routes.clone(), "chat").unwrap(), &old));
        assert!(Arc::ptr_eq(
            &serving(routes.clone(), "embed").unwrap(),
            &other
        ));
        assert!(serving(routes, "none").is_none());
        // Same second: namespace, then name decide.
        let twin = route("a", "b", "chat", "2026-01-01T00:00:00Z");
        assert!(Arc::ptr_eq(
            &serving([old, twin.clone()], "chat").unwrap(),
            &twin
        ));
    }
}
