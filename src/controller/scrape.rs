//! Prometheus' scrape interval, which sets the smallest usable analysis window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::analysis::Prometheus;

/// Scrape intervals read from Prometheus' configuration API, per URL, re-read every few
/// minutes so a changed configuration is noticed without asking on every analysis.
#[derive(Default)]
pub struct ScrapeIntervals(Mutex<HashMap<String, (Instant, Duration)>>);

impl ScrapeIntervals {
    const TTL: Duration = Duration::from_secs(300);

    pub async fn get(&self, prometheus: &Prometheus) -> Option<Duration> {
        let url = prometheus.url().to_owned();
        if let Some((at, d)) = self.0.lock().expect("scrape interval lock").get(&url)
            && at.elapsed() < Self::TTL
        {
            return Some(*d);
        }
        match prometheus.scrape_interval().await {
            Ok(d) => {
                self.0
                    .lock()
                    .expect("scrape interval lock")
                    .insert(url, (Instant::now(), d));
                Some(d)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read Prometheus' scrape interval; assuming its default of 1m");
                None
            }
        }
    }
}
