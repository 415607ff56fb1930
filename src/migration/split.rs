//! Splits as shares of traffic: weights are relative, so two splits are the same when every
//! backend gets the same share (50/50 is 1/1), and what the gateway applies is always in
//! thousandths.

use super::blend::blend;
use crate::api::WeightedBackend;

/// `openai=95,llama=5`, the compact form `kubectl get mr` shows.
pub fn weights_summary(weights: &[WeightedBackend]) -> String {
    weights
        .iter()
        .map(|w| format!("{}={}", w.name, w.weight))
        .collect::<Vec<_>>()
        .join(",")
}

/// Two splits are the same when every backend gets the same share of the traffic: order,
/// zero weights and scale do not matter (50/50 and 1/1 are one split). Compared exactly, by
/// cross-multiplying each weight with the other split's total.
pub fn same_split(a: &[WeightedBackend], b: &[WeightedBackend]) -> bool {
    let total = |ws: &[WeightedBackend]| ws.iter().map(|w| weight(w.weight)).sum::<u64>();
    let (ta, tb) = (total(a), total(b));
    if ta == 0 || tb == 0 {
        return ta == tb;
    }
    a.iter()
        .chain(b)
        .all(|w| weight_of(a, &w.name) * tb == weight_of(b, &w.name) * ta)
}

/// The split in thousandths summing to exactly 1000: the unit of `status.weights` in every
/// phase, so the printer column never changes scale.
pub fn normalize(split: &[WeightedBackend]) -> Vec<WeightedBackend> {
    blend(split, split, 100)
}

/// Backends whose share of traffic grows from `from` to `to`: what analysis judges.
pub fn gaining(from: &[WeightedBackend], to: &[WeightedBackend]) -> Vec<String> {
    let (tf, tt) = (
        from.iter().map(|w| weight(w.weight)).sum::<u64>().max(1),
        to.iter().map(|w| weight(w.weight)).sum::<u64>().max(1),
    );
    let mut out: Vec<String> = vec![];
    for w in to {
        // share_to > share_from, exactly: wt / tt > wf / tf.
        if weight_of(to, &w.name) * tf > weight_of(from, &w.name) * tt && !out.contains(&w.name) {
            out.push(w.name.clone());
        }
    }
    out
}

/// Backends of `to` that carry no traffic in `from`: what a mirror phase copies requests to.
pub fn new_backends(from: &[WeightedBackend], to: &[WeightedBackend]) -> Vec<String> {
    to.iter()
        .filter(|t| t.weight > 0 && weight_of(from, &t.name) == 0)
        .map(|t| t.name.clone())
        .collect()
}

fn weight(w: i32) -> u64 {
    u64::from(w.max(0) as u32)
}

fn weight_of(ws: &[WeightedBackend], name: &str) -> u64 {
    ws.iter()
        .filter(|w| w.name == name)
        .map(|w| weight(w.weight))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pairs: &[(&str, i32)]) -> Vec<WeightedBackend> {
        pairs
            .iter()
            .map(|(n, w)| WeightedBackend {
                name: (*n).into(),
                weight: *w,
            })
            .collect()
    }

    #[test]
    fn equal_shares_are_the_same_split() {
        assert!(same_split(
            &split(&[("a", 50), ("b", 50)]),
            &split(&[("b", 1), ("a", 1)])
        ));
        assert!(same_split(
            &split(&[("a", 950), ("b", 50)]),
            &split(&[("a", 95), ("b", 5), ("c", 0)])
        ));
        assert!(!same_split(
            &split(&[("a", 50), ("b", 50)]),
            &split(&[("a", 51), ("b", 49)])
        ));
        assert!(!same_split(&split(&[("a", 1)]), &split(&[("b", 1)])));
        assert!(same_split(&[], &split(&[("a", 0)])));
        assert_eq!(weights_summary(&split(&[("x", 1), ("y", 0)])), "x=1,y=0");
    }

    #[test]
    fn only_a_growing_share_gains() {
        let from = split(&[("a", 50), ("b", 50)]);
        assert!(gaining(&from, &split(&[("a", 1), ("b", 1)])).is_empty());
        assert_eq!(gaining(&from, &split(&[("a", 40), ("b", 60)])), ["b"]);
        assert_eq!(gaining(&from, &split(&[("a", 1), ("c", 1)])), ["c"]);
        assert_eq!(new_backends(&from, &split(&[("a", 1), ("c", 1)])), ["c"]);
        assert!(new_backends(&from, &split(&[("a", 1), ("b", 3)])).is_empty());
    }

    #[test]
    fn normalized_weights_are_thousandths() {
        assert_eq!(
            normalize(&split(&[("a", 95), ("b", 5)])),
            split(&[("a", 950), ("b", 50)])
        );
        assert_eq!(normalize(&split(&[("a", 1)])), split(&[("a", 1000)]));
    }
}
