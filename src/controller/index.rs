//! Lookups by name instead of scans: which routes of a namespace claim a model name, which
//! name a backend, which report a model conflict, and which backends are being deleted. At
//! 10,000 routes a scan per watch event is 10^8 comparisons while settling; these maps make
//! each event cost what it touches. Kept current from the watch events that feed the
//! reflector stores (see `runner`); knows names only, no API objects.

use std::collections::{BTreeSet, HashMap};

/// Namespace → key (model or backend name) → names of the routes.
type Names = HashMap<String, HashMap<String, BTreeSet<String>>>;

/// What the index keeps of one route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteKeys {
    /// The model name it claims.
    pub model: String,
    /// Every backend it names, in spec or status (deduplicated by the index).
    pub backends: Vec<String>,
    /// Whether it reports a model conflict (as loser or as the serving route).
    pub conflicted: bool,
}

#[derive(Debug, Default)]
pub struct RouteIndex {
    routes: HashMap<(String, String), RouteKeys>,
    by_model: Names,
    by_backend: Names,
    conflicted: HashMap<String, BTreeSet<String>>,
}

fn add(map: &mut Names, ns: &str, key: &str, route: &str) {
    map.entry(ns.to_owned())
        .or_default()
        .entry(key.to_owned())
        .or_default()
        .insert(route.to_owned());
}

fn drop_from(map: &mut Names, ns: &str, key: &str, route: &str) {
    let Some(keys) = map.get_mut(ns) else { return };
    if let Some(routes) = keys.get_mut(key) {
        routes.remove(route);
        if routes.is_empty() {
            keys.remove(key);
        }
    }
    if keys.is_empty() {
        map.remove(ns);
    }
}

fn lookup<'a>(map: &'a Names, ns: &str, key: &str) -> impl Iterator<Item = &'a str> + 'a {
    map.get(ns)
        .and_then(|keys| keys.get(key))
        .into_iter()
        .flatten()
        .map(String::as_str)
}

impl RouteIndex {
    /// Records route `ns/name` as it is now, forgetting what it claimed or named before.
    pub fn upsert(&mut self, ns: &str, name: &str, keys: RouteKeys) {
        self.remove(ns, name);
        add(&mut self.by_model, ns, &keys.model, name);
        for backend in &keys.backends {
            add(&mut self.by_backend, ns, backend, name);
        }
        if keys.conflicted {
            self.conflicted
                .entry(ns.to_owned())
                .or_default()
                .insert(name.to_owned());
        }
        self.routes.insert((ns.to_owned(), name.to_owned()), keys);
    }

    /// Forgets route `ns/name` (deleted).
    pub fn remove(&mut self, ns: &str, name: &str) {
        let Some(old) = self.routes.remove(&(ns.to_owned(), name.to_owned())) else {
            return;
        };
        drop_from(&mut self.by_model, ns, &old.model, name);
        for backend in &old.backends {
            drop_from(&mut self.by_backend, ns, backend, name);
        }
        if let Some(set) = self.conflicted.get_mut(ns) {
            set.remove(name);
            if set.is_empty() {
                self.conflicted.remove(ns);
            }
        }
    }

    /// Routes of `ns` claiming `model` (sorted).
    pub fn claiming<'a>(&'a self, ns: &str, model: &str) -> impl Iterator<Item = &'a str> + 'a {
        lookup(&self.by_model, ns, model)
    }

    /// Routes of `ns` naming backend `backend` anywhere (sorted).
    pub fn naming<'a>(&'a self, ns: &str, backend: &str) -> impl Iterator<Item = &'a str> + 'a {
        lookup(&self.by_backend, ns, backend)
    }

    /// Routes of `ns` that report a model conflict (sorted).
    pub fn conflicted<'a>(&'a self, ns: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.conflicted
            .get(ns)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.routes.len()
    }
}

/// Backends being deleted, per namespace: a change to any route of that namespace may let
/// one of them go.
#[derive(Debug, Default)]
pub struct Deleting {
    by_ns: HashMap<String, BTreeSet<String>>,
}

impl Deleting {
    /// Records whether backend `ns/name` is being deleted (`false` also when it is gone).
    pub fn set(&mut self, ns: &str, name: &str, deleting: bool) {
        if deleting {
            self.by_ns
                .entry(ns.to_owned())
                .or_default()
                .insert(name.to_owned());
        } else if let Some(set) = self.by_ns.get_mut(ns) {
            set.remove(name);
            if set.is_empty() {
                self.by_ns.remove(ns);
            }
        }
    }

    pub fn in_namespace<'a>(&'a self, ns: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.by_ns.get(ns).into_iter().flatten().map(String::as_str)
    }
}

/// An index fed by a watch: a re-list (after a watch broke off) builds a fresh one that
/// replaces the live one once complete, as the reflector store does, so objects deleted
/// while the watch was down do not linger.
#[derive(Debug, Default)]
pub struct Relisted<I> {
    pub live: I,
    building: Option<I>,
}

impl<I: Default> Relisted<I> {
    /// A re-list starts.
    pub fn begin(&mut self) {
        self.building = Some(I::default());
    }

    /// The index an object of the re-list goes into.
    pub fn listing(&mut self) -> &mut I {
        self.building.get_or_insert_with(I::default)
    }

    /// The re-list is complete: it becomes the live index.
    pub fn done(&mut self) {
        if let Some(fresh) = self.building.take() {
            self.live = fresh;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(model: &str, backends: &[&str], conflicted: bool) -> RouteKeys {
        RouteKeys {
            model: model.into(),
            backends: backends.iter().map(|b| b.to_string()).collect(),
            conflicted,
        }
    }

    fn all<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        it.collect()
    }

    #[test]
    fn routes_are_found_by_model_and_backend_per_namespace() {
        let mut ix = RouteIndex::default();
        ix.upsert("a", "r1", keys("chat", &["b1", "b2"], false));
        ix.upsert("a", "r2", keys("chat", &["b2"], true));
        ix.upsert("b", "r1", keys("chat", &["b1"], false));
        assert_eq!(all(ix.claiming("a", "chat")), ["r1", "r2"]);
        assert_eq!(all(ix.claiming("b", "chat")), ["r1"]);
        assert!(all(ix.claiming("c", "chat")).is_empty());
        assert_eq!(all(ix.naming("a", "b2")), ["r1", "r2"]);
        assert_eq!(all(ix.naming("a", "b1")), ["r1"]);
        assert_eq!(all(ix.conflicted("a")), ["r2"]);
        assert!(all(ix.conflicted("b")).is_empty());
        assert_eq!(ix.len(), 3);
    }

    #[test]
    fn an_update_forgets_the_old_model_and_backends() {
        let mut ix = RouteIndex::default();
        ix.upsert("a", "r1", keys("chat", &["old", "new"], true));
        ix.upsert("a", "r2", keys("chat", &["old"], false));
        // r1 renamed to another model, moved off `old`, conflict resolved.
        ix.upsert("a", "r1", keys("chat2", &["new"], false));
        assert_eq!(all(ix.claiming("a", "chat")), ["r2"]);
        assert_eq!(all(ix.claiming("a", "chat2")), ["r1"]);
        assert_eq!(all(ix.naming("a", "old")), ["r2"]);
        assert_eq!(all(ix.naming("a", "new")), ["r1"]);
        assert!(all(ix.conflicted("a")).is_empty());
        // The same backend named twice (spec and status) is one entry.
        ix.upsert("a", "r2", keys("chat", &["old", "old"], false));
        assert_eq!(all(ix.naming("a", "old")), ["r2"]);
        assert_eq!(ix.len(), 2);
    }

    #[test]
    fn a_deletion_leaves_nothing_behind() {
        let mut ix = RouteIndex::default();
        ix.upsert("a", "r1", keys("chat", &["b1"], true));
        ix.upsert("a", "r2", keys("chat", &["b1"], false));
        ix.remove("a", "r1");
        assert_eq!(all(ix.claiming("a", "chat")), ["r2"]);
        assert_eq!(all(ix.naming("a", "b1")), ["r2"]);
        assert!(all(ix.conflicted("a")).is_empty());
        ix.remove("a", "r2");
        ix.remove("a", "never-there");
        assert!(all(ix.claiming("a", "chat")).is_empty());
        assert_eq!(ix.len(), 0);
        assert!(ix.by_model.is_empty() && ix.by_backend.is_empty() && ix.conflicted.is_empty());
    }

    #[test]
    fn deleting_backends_come_and_go() {
        let mut d = Deleting::default();
        d.set("a", "b1", true);
        d.set("a", "b2", true);
        d.set("b", "b1", true);
        d.set("a", "b1", false);
        d.set("c", "x", false);
        assert_eq!(all(d.in_namespace("a")), ["b2"]);
        assert_eq!(all(d.in_namespace("b")), ["b1"]);
        d.set("b", "b1", false);
        assert!(!d.by_ns.contains_key("b"));
    }

    #[test]
    fn a_relist_replaces_the_index_once_complete() {
        let mut r: Relisted<RouteIndex> = Relisted::default();
        r.live.upsert("a", "gone", keys("chat", &["b"], false));
        r.begin();
        r.listing().upsert("a", "kept", keys("chat", &["b"], false));
        // Until the re-list completes, lookups see the old index.
        assert_eq!(all(r.live.claiming("a", "chat")), ["gone"]);
        r.done();
        assert_eq!(all(r.live.claiming("a", "chat")), ["kept"]);
    }
}
