use super::*;

/// A migration from openai to llama over ten minutes, rolled back at the end.
fn sample(eval: bool) -> Report {
    let start = 1_700_000_000.0;
    let ramp = |f: &dyn Fn(f64) -> f64| -> Vec<(f64, f64)> {
        (0..=60)
            .map(|i| (start + 10.0 * i as f64, f(i as f64)))
            .collect()
    };
    let weight = |share: f64| Series {
        name: "llama".into(),
        points: ramp(&|i| if i < 30.0 { share * i } else { 0.0 }),
    };
    Report {
        title: "ModelRoute prod/chat".into(),
        subtitle: "10 minutes from Prometheus http://prometheus:9090".into(),
        start,
        end: start + 600.0,
        step: 10.0,
        panels: vec![
            Panel {
                title: "Weight (%)".into(),
                series: vec![
                    Series {
                        name: "openai".into(),
                        points: ramp(&|i| if i < 30.0 { 100.0 - i } else { 100.0 }),
                    },
                    weight(1.0),
                ],
            },
            Panel {
                title: "Error rate".into(),
                series: vec![Series {
                    name: "llama".into(),
                    // A gap in the middle: two segments.
                    points: ramp(&|i| 0.01 * i)
                        .into_iter()
                        .filter(|(t, _)| *t < start + 200.0 || *t > start + 300.0)
                        .collect(),
                }],
            },
            Panel {
                title: "Cost per 1k requests".into(),
                series: vec![],
            },
        ],
        markers: vec![
            Marker {
                at: start + 60.0,
                label: "step 1".into(),
                kind: MarkerKind::Step,
            },
            Marker {
                at: start + 300.0,
                label: "RolledBack".into(),
                kind: MarkerKind::Ended,
            },
        ],
        eval: eval.then(|| Eval {
            verdict: "Fail".into(),
            backends: vec![EvalBackend {
                backend: "llama".into(),
                passed: 17,
                total: 20,
            }],
            failing: vec![EvalFailure {
                backend: "llama".into(),
                case: "refund-json".into(),
                reason: "not valid JSON".into(),
            }],
        }),
        notes: vec!["no step data".into()],
    }
}

/// (width, height) from a PNG's IHDR, after checking the signature and chunk layout.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "first chunk");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// The decoded RGB pixels.
fn pixels(bytes: &[u8]) -> Vec<[u8; 3]> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf[..info.buffer_size()]
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

#[test]
fn the_png_is_a_valid_image_of_the_reported_size_with_every_series_drawn() {
    let report = sample(true);
    let bytes = png(&report).unwrap();
    let (w, h) = png_size(&bytes);
    assert_eq!((w, h), (WIDTH, report.height()));
    assert_eq!(
        h,
        HEADER + 3 * PANEL + 20 + 4 * LINE,
        "eval (3 lines) and a note"
    );
    let px = pixels(&bytes);
    assert_eq!(px.len(), (w * h) as usize);
    // openai and llama get the first two colours, by name: llama, then openai.
    let has = |c: [u8; 3]| px.iter().filter(|p| **p == c).count();
    assert!(has([31, 119, 180]) > 200, "llama's lines");
    assert!(has([255, 127, 14]) > 200, "openai's line");
    assert!(has([200, 30, 30]) > 50, "the rollback marker");
    // Text was drawn with the bundled font: dark pixels in the title's place.
    let title_ink = (15..40)
        .flat_map(|y| (20..200).map(move |x| (x, y)))
        .filter(|&(x, y)| px[(y * w + x) as usize] == [0, 0, 0])
        .count();
    assert!(
        title_ink > 50,
        "title text rendered: {title_ink} black pixels"
    );
}

#[test]
fn the_svg_parses_and_names_every_panel_series_marker_and_eval_result() {
    let text = svg(&sample(true)).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("1200"));
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().to_owned())
        .collect();
    let shown = |s: &str| texts.iter().any(|t| t.contains(s));
    for s in [
        "ModelRoute prod/chat",
        "Weight (%)",
        "Error rate",
        "Cost per 1k requests",
        "openai  100",
        "llama  0",
        "step 1",
        "RolledBack",
        "no data in this range",
        "Evaluation: Fail",
        "llama: 17 of 20 passed (85.0%)",
        "failing on llama: refund-json: not valid JSON",
        "no step data",
    ] {
        assert!(shown(s), "{s:?} missing from {texts:?}");
    }
    // The error rate's gap breaks its line: llama has three lines (weight, two segments),
    // beside its two legend swatches (drawn wider).
    let llama = |width| {
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| n.attribute("stroke") == Some("#1F77B4"))
            .filter(|n| n.attribute("stroke-width") == Some(width))
            .count()
    };
    assert_eq!((llama("2"), llama("3")), (3, 2));
}

#[test]
fn without_evaluation_the_image_has_no_evaluation_text() {
    let mut report = sample(false);
    report.notes.clear();
    assert_eq!(report.height(), HEADER + 3 * PANEL);
    let text = svg(&report).unwrap();
    assert!(!text.contains("Evaluation"));
    assert_eq!(png_size(&png(&report).unwrap()).1, report.height());
}

#[test]
fn the_range_is_fitted_to_the_data_within_the_range_asked() {
    let mut r = sample(false);
    let asked = r.start - 3000.0;
    r.start = asked;
    r.fit_to_data();
    // The first sample is at the old start; 5% of the 600 s shown before it.
    assert_eq!(r.start, asked + 3000.0 - 30.0);
    let mut empty = Report {
        start: 10.0,
        end: 100.0,
        step: 1.0,
        ..Report::default()
    };
    empty.fit_to_data();
    assert_eq!(empty.start, 10.0, "nothing to fit to");
}

#[test]
fn a_series_that_ended_before_the_range_shows_no_current_value() {
    let mut r = sample(false);
    r.panels[0].series[0].points.truncate(30);
    let text = svg(&r).unwrap();
    assert!(
        text.contains(">\nopenai\n<") || text.contains(">openai<") || !text.contains("openai  ")
    );
    assert!(!text.contains("openai  "), "stale value shown");
    assert!(text.contains("llama  0"));
}

#[test]
fn segments_break_where_samples_are_missing() {
    let pts = [
        (0.0, 1.0),
        (10.0, 2.0),
        (50.0, 3.0),
        (60.0, f64::NAN),
        (70.0, 4.0),
    ];
    assert_eq!(
        segments(&pts, 30.0),
        vec![
            vec![(0.0, 1.0), (10.0, 2.0)],
            vec![(50.0, 3.0), (70.0, 4.0)]
        ]
    );
    assert!(segments(&[], 30.0).is_empty());
}

#[test]
fn evaluation_results_are_read_from_status_json() {
    let v = serde_json::json!({
        "verdict": "Pass",
        "backends": [{"backend": "openai", "passed": 20, "total": 20}, {"backend": "llama", "passed": 19, "total": 20}],
        "failing": [{"backend": "llama", "case": "c1", "reason": "regex did not match"}],
        "extra": "ignored"
    });
    let eval = Eval::from_json(&v).unwrap();
    assert_eq!(
        eval.lines(),
        [
            "Evaluation: Pass",
            "  openai: 20 of 20 passed (100.0%)",
            "  llama: 19 of 20 passed (95.0%)",
            "  failing on llama: c1: regex did not match",
        ]
    );
    assert_eq!(Eval::from_json(&serde_json::Value::Null), None);
    assert_eq!(Eval::from_json(&serde_json::json!("x")), None);
}

#[test]
fn axis_labels_are_utc_times_and_short_numbers() {
    assert_eq!(draw::clock(1_700_000_000.0), "22:13:20");
    assert_eq!(draw::short(0.004), "0.004");
    assert_eq!(draw::short(0.31234), "0.312");
    assert_eq!(draw::short(100.0), "100");
    assert_eq!(draw::short(0.0), "0");
}
