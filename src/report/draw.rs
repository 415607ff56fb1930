//! Draws a [`Report`] on any plotters backend (SVG text or an RGB buffer).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Error, HEADER, LINE, MarkerKind, PANEL, Panel, Report, WIDTH, segments};

/// Width of the legend beside each chart.
const LEGEND: u32 = 200;
const FONT: &str = "sans-serif";

/// Tableau 10: distinct for the few backends a route has, and readable for colour-blind eyes.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const GREY: RGBColor = RGBColor(120, 120, 120);
const PROMOTED: RGBColor = RGBColor(30, 140, 60);
const ENDED: RGBColor = RGBColor(200, 30, 30);

fn err(e: impl std::fmt::Display) -> Error {
    Error::Draw(e.to_string())
}

pub(super) fn report<DB: DrawingBackend>(backend: DB, r: &Report) -> Result<(), Error> {
    let root = backend.into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (header, rest) = root.split_vertically(HEADER);
    header
        .draw_text(&r.title, &(FONT, 22).into_font().color(&BLACK), (20, 12))
        .map_err(err)?;
    header
        .draw_text(&r.subtitle, &(FONT, 13).into_font().color(&GREY), (20, 42))
        .map_err(err)?;

    let names = r.names();
    let panels = r.panels.len().max(1);
    let (charts, text) = rest.split_vertically(PANEL * panels as u32);
    for (i, (area, panel)) in charts
        .split_evenly((panels, 1))
        .iter()
        .zip(&r.panels)
        .enumerate()
    {
        chart(area, panel, r, &names, i == 0)?;
    }
    for (i, line) in r.text_lines().iter().enumerate() {
        text.draw_text(
            line,
            &(FONT, 13).into_font().color(&BLACK),
            (20, 10 + (i as u32 * LINE) as i32),
        )
        .map_err(err)?;
    }
    root.present().map_err(err)
}

fn colour(names: &[&str], name: &str) -> RGBColor {
    let i = names.iter().position(|n| *n == name).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

fn marker_colour(kind: MarkerKind) -> RGBColor {
    match kind {
        MarkerKind::Started | MarkerKind::Step => GREY,
        MarkerKind::Promoted => PROMOTED,
        MarkerKind::Ended => ENDED,
    }
}

/// One panel: the chart, the markers across it, and its legend on the right.
fn chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    r: &Report,
    names: &[&str],
    label_markers: bool,
) -> Result<(), Error> {
    let (plot, legend) = area.split_horizontally(WIDTH - LEGEND);
    let top = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let (start, end) = if r.end > r.start {
        (r.start, r.end)
    } else {
        (r.start, r.start + 1.0)
    };
    let mut chart = ChartBuilder::on(&plot)
        .caption(&panel.title, (FONT, 15))
        .margin(8)
        .x_label_area_size(26)
        .y_label_area_size(64)
        .build_cartesian_2d(start..end, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(5)
        .x_label_formatter(&|x| clock(*x))
        .y_label_formatter(&|y| short(*y))
        .light_line_style(RGBColor(238, 238, 238))
        .label_style((FONT, 11))
        .draw()
        .map_err(err)?;

    for (i, m) in r.markers.iter().enumerate() {
        let c = marker_colour(m.kind);
        let style = if m.kind == MarkerKind::Step {
            c.stroke_width(1)
        } else {
            c.stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new([(m.at, 0.0), (m.at, top)], style))
            .map_err(err)?;
        if label_markers {
            // Staggered over three rows, so labels of close steps do not overlap.
            let y = top * (0.96 - 0.1 * (i % 3) as f64);
            let label = EmptyElement::at((m.at, y))
                + Text::new(m.label.clone(), (3, 0), (FONT, 11).into_font().color(&c));
            chart.draw_series(std::iter::once(label)).map_err(err)?;
        }
    }

    let gap = if r.step > 0.0 {
        3.0 * r.step
    } else {
        f64::INFINITY
    };
    let mut drawn = false;
    for s in &panel.series {
        let c = colour(names, &s.name);
        for seg in segments(&s.points, gap) {
            drawn = true;
            if seg.len() == 1 {
                chart
                    .draw_series(std::iter::once(Circle::new(seg[0], 2, c.filled())))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(seg, c.stroke_width(2)))
                    .map_err(err)?;
            }
        }
    }
    if !drawn {
        let (w, h) = plot.dim_in_pixel();
        plot.draw_text(
            "no data in this range",
            &(FONT, 14).into_font().color(&GREY),
            (w as i32 / 2 - 70, h as i32 / 2),
        )
        .map_err(err)?;
    }

    for (i, s) in panel.series.iter().enumerate() {
        let y = 40 + 20 * i as i32;
        let c = colour(names, &s.name);
        legend
            .draw(&PathElement::new([(6, y), (28, y)], c.stroke_width(3)))
            .map_err(err)?;
        // The value now; none for a series that ended earlier (a backend that left).
        let last = s
            .points
            .iter()
            .rev()
            .find(|p| p.1.is_finite())
            .filter(|p| r.end - p.0 <= 3.0 * r.step.max(1.0))
            .map(|p| format!("  {}", short(p.1)))
            .unwrap_or_default();
        legend
            .draw_text(
                &format!("{}{last}", s.name),
                &(FONT, 12).into_font().color(&BLACK),
                (34, y - 7),
            )
            .map_err(err)?;
    }
    Ok(())
}

/// Unix seconds as a UTC time of day, `HH:MM:SS`.
pub(super) fn clock(t: f64) -> String {
    let s = t.rem_euclid(86_400.0) as i64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A value with three significant digits, without trailing zeros: `0.004`, `1.25`, `950`.
pub(super) fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 9) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}
