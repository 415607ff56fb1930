//! A backend's `pricing`, resolved once per snapshot into per-token prices, and the cost of
//! one answer's usage at them.

use super::translate::Usage;
use crate::api::Pricing;

/// Prices per million tokens. Total-token pricing is the three prices set alike, so every
/// pricing form costs an answer by the same arithmetic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Input tokens not read from a prompt cache (cache writes included).
    pub input: f64,
    /// Input tokens read from a prompt cache.
    pub cached_input: f64,
    pub output: f64,
}

impl Price {
    /// `None` when the pricing is incomplete or a price does not parse (admission refuses
    /// both; an object written before the rule existed then costs nothing rather than a guess).
    pub fn from_spec(p: &Pricing) -> Option<Self> {
        let parse = |s: &Option<String>| s.as_deref().map(str::parse::<f64>);
        if let Some(total) = parse(&p.total_per_million_tokens) {
            let total = total.ok()?;
            return Some(Self {
                input: total,
                cached_input: total,
                output: total,
            });
        }
        let input = parse(&p.input_per_million_tokens)?.ok()?;
        Some(Self {
            input,
            cached_input: match parse(&p.cached_input_per_million_tokens) {
                Some(c) => c.ok()?,
                None => input,
            },
            output: parse(&p.output_per_million_tokens)?.ok()?,
        })
    }

    /// The cost of one answer's tokens. `usage.input` counts every prompt token, cached
    /// ones included, so only the rest is priced as plain input.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached.min(usage.input);
        ((usage.input - cached) as f64 * self.input
            + cached as f64 * self.cached_input
            + usage.output as f64 * self.output)
            / 1_000_000.0
    }
}
