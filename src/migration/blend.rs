//! The weights at a step: each backend gets `(1-f)·stable + f·desired` of the traffic, with
//! both splits normalised, so N-way splits (60/30/10 → 10/30/60) migrate exactly like
//! 100 → 0. The result is in thousandths and sums to exactly 1000, each weight within one
//! thousandth of the exact share (largest-remainder rounding).

use crate::api::WeightedBackend;

/// Total of a blended split.
pub const SCALE: u64 = 1000;

/// Blends `stable` towards `desired` by `percent` (0..=100).
pub fn blend(
    stable: &[WeightedBackend],
    desired: &[WeightedBackend],
    percent: i32,
) -> Vec<WeightedBackend> {
    let p = u128::from(percent.clamp(0, 100) as u32);
    let sum = |ws: &[WeightedBackend]| {
        ws.iter()
            .map(|w| u128::from(w.weight.max(0) as u32))
            .sum::<u128>()
    };
    let (s_total, d_total) = (sum(stable), sum(desired));
    // An empty side contributes nothing; treat its total as 1 to keep the arithmetic exact.
    let (s_div, d_div) = (s_total.max(1), d_total.max(1));
    let weight_of = |ws: &[WeightedBackend], name: &str| {
        ws.iter()
            .filter(|w| w.name == name)
            .map(|w| u128::from(w.weight.max(0) as u32))
            .sum::<u128>()
    };
    let mut names: Vec<&str> = vec![];
    for w in stable.iter().chain(desired) {
        if !names.contains(&w.name.as_str()) {
            names.push(&w.name);
        }
    }
    // Exact share of each backend in units of 1 / (100 · S · D).
    let (p_stable, p_desired) = (
        if s_total == 0 { 0 } else { 100 - p },
        if d_total == 0 { 0 } else { p },
    );
    let denom = (p_stable + p_desired).max(1) * s_div * d_div;
    let shares: Vec<u128> = names
        .iter()
        .map(|n| {
            p_stable * weight_of(stable, n) * d_div + p_desired * weight_of(desired, n) * s_div
        })
        .collect();
    let scale = u128::from(SCALE);
    let mut out: Vec<(u128, u128)> = shares
        .iter()
        .map(|s| (s * scale / denom, s * scale % denom))
        .collect();
    let assigned: u128 = out.iter().map(|(w, _)| w).sum();
    let mut missing = scale.saturating_sub(assigned);
    // Hand the remaining thousandths to the largest remainders (ties: listed first).
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|a, b| out[*b].1.cmp(&out[*a].1).then(a.cmp(b)));
    for i in order {
        if missing == 0 {
            break;
        }
        if out[i].1 > 0 {
            out[i].0 += 1;
            missing -= 1;
        }
    }
    names
        .iter()
        .zip(out)
        .filter(|(_, (w, _))| *w > 0)
        .map(|(n, (w, _))| WeightedBackend {
            name: (*n).to_owned(),
            weight: w as i32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::split::gaining;

    fn split(pairs: &[(&str, i32)]) -> Vec<WeightedBackend> {
        pairs
            .iter()
            .map(|(n, w)| WeightedBackend {
                name: (*n).into(),
                weight: *w,
            })
            .collect()
    }

    fn get(ws: &[WeightedBackend], n: &str) -> i32 {
        ws.iter().find(|w| w.name == n).map_or(0, |w| w.weight)
    }

    #[test]
    fn one_to_another() {
        let s = split(&[("openai", 100)]);
        let d = split(&[("llama", 100)]);
        assert_eq!(blend(&s, &d, 5), split(&[("openai", 950), ("llama", 50)]));
        assert_eq!(blend(&s, &d, 100), split(&[("llama", 1000)]));
        assert_eq!(blend(&s, &d, 0), split(&[("openai", 1000)]));
        assert_eq!(gaining(&s, &blend(&s, &d, 20)), ["llama"]);
    }

    #[test]
    fn sixty_thirty_ten_to_ten_thirty_sixty() {
        let s = split(&[("a", 60), ("b", 30), ("c", 10)]);
        let d = split(&[("a", 10), ("b", 30), ("c", 60)]);
        for (p, a, c) in [
            (5, 575, 125),
            (20, 500, 200),
            (50, 350, 350),
            (100, 100, 600),
        ] {
            let w = blend(&s, &d, p);
            assert_eq!(
                (get(&w, "a"), get(&w, "b"), get(&w, "c")),
                (a, 300, c),
                "at {p}%"
            );
        }
        assert_eq!(gaining(&s, &blend(&s, &d, 20)), ["c"]);
    }

    /// Property test over random splits and steps (fixed seed, so failures reproduce).
    #[test]
    fn blends_are_valid_exact_and_monotonic() {
        let mut rng = fastrand::Rng::with_seed(7);
        let names = ["a", "b", "c", "d", "e"];
        for _ in 0..5000 {
            let pick = |rng: &mut fastrand::Rng| -> Vec<WeightedBackend> {
                let mut v = vec![];
                for n in names {
                    if rng.bool() {
                        v.push(WeightedBackend {
                            name: n.into(),
                            weight: rng.i32(0..1000),
                        });
                    }
                }
                if v.iter().all(|w| w.weight == 0) {
                    v.push(WeightedBackend {
                        name: "z".into(),
                        weight: rng.i32(1..50),
                    });
                }
                v
            };
            let (s, d) = (pick(&mut rng), pick(&mut rng));
            let (st, dt) = (
                s.iter().map(|w| f64::from(w.weight)).sum::<f64>(),
                d.iter().map(|w| f64::from(w.weight)).sum::<f64>(),
            );
            let mut previous: Option<(i32, Vec<WeightedBackend>)> = None;
            for p in [0, 1, 5, 20, 33, 50, 99, 100] {
                let w = blend(&s, &d, p);
                assert_eq!(
                    w.iter().map(|x| x.weight).sum::<i32>(),
                    1000,
                    "sums exactly"
                );
                assert!(w.iter().all(|x| x.weight > 0));
                let f = f64::from(p) / 100.0;
                for n in names.iter().chain(&["z"]) {
                    let exact = 1000.0
                        * ((1.0 - f) * f64::from(get(&s, n)) / st + f * f64::from(get(&d, n)) / dt);
                    assert!(
                        (f64::from(get(&w, n)) - exact).abs() < 1.0,
                        "faithful to 0.1%"
                    );
                }
                if let Some((prev_p, prev)) = &previous {
                    // A backend gaining overall never loses weight from one step to the next
                    // (once the exact growth is at least the one-thousandth rounding unit).
                    for n in names {
                        let (sv, dv) = (f64::from(get(&s, n)) / st, f64::from(get(&d, n)) / dt);
                        let growth = 1000.0 * (dv - sv) * f64::from(p - prev_p) / 100.0;
                        if growth >= 1.0 {
                            assert!(get(&w, n) >= get(prev, n), "monotonic growth of {n}");
                        }
                    }
                }
                previous = Some((p, w));
            }
        }
    }
}
