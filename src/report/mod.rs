//! The picture of a migration: a timeline of panels (weight, error rate, latency, time to
//! first token, cost per backend), with the steps and the migration's end marked, and the
//! evaluation results as text, rendered as SVG and PNG.
//!
//! Plain data in, bytes out: no Kubernetes or Prometheus types here, so the drawing is
//! tested on its own and `cli::report` only gathers.

mod draw;
mod font;

use std::collections::BTreeSet;

use serde::Deserialize;

/// Size of the image: wide enough for an hour at a readable resolution.
pub const WIDTH: u32 = 1200;
const HEADER: u32 = 70;
const PANEL: u32 = 210;
const LINE: u32 = 18;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("drawing the report: {0}")]
    Draw(String),
    #[error("encoding the PNG: {0}")]
    Png(String),
}

/// Everything one report shows.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// First line, e.g. `ModelRoute prod/chat`.
    pub title: String,
    /// Second line, e.g. the time range and the Prometheus asked.
    pub subtitle: String,
    /// The time range, in Unix seconds.
    pub start: f64,
    pub end: f64,
    /// Seconds between samples; a longer gap in a series breaks its line.
    pub step: f64,
    pub panels: Vec<Panel>,
    /// Vertical lines across every panel.
    pub markers: Vec<Marker>,
    /// Evaluation results, when the route has them.
    pub eval: Option<Eval>,
    /// Remarks under the charts (missing data and why).
    pub notes: Vec<String>,
}

/// One chart: a series per backend.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    /// Title, with the unit, e.g. `Error rate (share of live requests)`.
    pub title: String,
    pub series: Vec<Series>,
}

/// One line: (Unix seconds, value) points, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub at: f64,
    pub label: String,
    pub kind: MarkerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// A migration began.
    Started,
    /// A rollout step began.
    Step,
    /// A migration ended with the target promoted.
    Promoted,
    /// A migration ended any other way (rolled back, aborted, superseded, deadline).
    Ended,
}

/// The evaluation results as `status.evaluation` carries them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Eval {
    pub verdict: String,
    pub backends: Vec<EvalBackend>,
    pub failing: Vec<EvalFailure>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EvalBackend {
    pub backend: String,
    pub passed: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EvalFailure {
    pub backend: String,
    pub case: String,
    pub reason: String,
}

/// Failing examples listed; the rest are counted.
const MAX_FAILING: usize = 8;

impl Eval {
    /// The results from `status.evaluation`'s JSON; `None` when it is not an object.
    pub fn from_json(value: &serde_json::Value) -> Option<Eval> {
        value
            .is_object()
            .then(|| serde_json::from_value(value.clone()).ok())
            .flatten()
    }

    /// The text the report shows, one line each.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "Evaluation: {}",
            if self.verdict.is_empty() {
                "no verdict"
            } else {
                &self.verdict
            }
        )];
        for b in &self.backends {
            let share = if b.total == 0 {
                String::new()
            } else {
                format!(" ({:.1}%)", 100.0 * b.passed as f64 / b.total as f64)
            };
            out.push(format!(
                "  {}: {} of {} passed{share}",
                b.backend, b.passed, b.total
            ));
        }
        for f in self.failing.iter().take(MAX_FAILING) {
            out.push(format!(
                "  failing on {}: {}: {}",
                f.backend, f.case, f.reason
            ));
        }
        if self.failing.len() > MAX_FAILING {
            out.push(format!(
                "  … and {} more failing",
                self.failing.len() - MAX_FAILING
            ));
        }
        out
    }
}

impl Report {
    /// The names of every series, sorted: each keeps one colour across all panels.
    fn names(&self) -> Vec<&str> {
        let names: BTreeSet<&str> = self
            .panels
            .iter()
            .flat_map(|p| &p.series)
            .map(|s| s.name.as_str())
            .collect();
        names.into_iter().collect()
    }

    /// Lines of text under the charts.
    fn text_lines(&self) -> Vec<String> {
        let mut lines = self.eval.as_ref().map(Eval::lines).unwrap_or_default();
        lines.extend(self.notes.iter().cloned());
        lines
    }

    /// Narrows the range to where there is something to show: from a little before the
    /// first sample or marker. A migration of a few minutes asked for over the last hour
    /// would otherwise be a sliver at the right edge.
    pub fn fit_to_data(&mut self) {
        let first = self
            .panels
            .iter()
            .flat_map(|p| &p.series)
            .filter_map(|s| s.points.iter().find(|p| p.1.is_finite()).map(|p| p.0))
            .chain(self.markers.iter().map(|m| m.at))
            .filter(|t| *t >= self.start)
            .fold(f64::INFINITY, f64::min);
        if first.is_finite() && first < self.end {
            let margin = ((self.end - first) * 0.05).max(self.step);
            self.start = (first - margin).max(self.start);
        }
    }

    /// Height of the image for this report.
    pub fn height(&self) -> u32 {
        let text = self.text_lines().len() as u32;
        let text = if text == 0 { 0 } else { 20 + text * LINE };
        HEADER + PANEL * self.panels.len().max(1) as u32 + text
    }
}

/// Splits a series' points where samples are missing for longer than `gap` seconds, so a
/// line is not drawn across a time without data.
pub fn segments(points: &[(f64, f64)], gap: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![];
    for &(t, v) in points.iter().filter(|(_, v)| v.is_finite()) {
        match out.last_mut() {
            Some(seg) if seg.last().is_some_and(|(last, _)| t - last <= gap) => seg.push((t, v)),
            _ => out.push(vec![(t, v)]),
        }
    }
    out
}

/// The report as an SVG document.
pub fn svg(report: &Report) -> Result<String, Error> {
    font::register()?;
    let mut out = String::new();
    {
        let backend =
            plotters::backend::SVGBackend::with_string(&mut out, (WIDTH, report.height()));
        draw::report(backend, report)?;
    }
    Ok(out)
}

/// The report as a PNG image.
pub fn png(report: &Report) -> Result<Vec<u8>, Error> {
    font::register()?;
    let (w, h) = (WIDTH, report.height());
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let backend = plotters::backend::BitMapBackend::with_buffer(&mut rgb, (w, h));
        draw::report(backend, report)?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| Error::Png(e.to_string()))?;
    writer
        .write_image_data(&rgb)
        .map_err(|e| Error::Png(e.to_string()))?;
    writer.finish().map_err(|e| Error::Png(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests;
