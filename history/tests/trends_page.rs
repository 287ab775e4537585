//! The trends page (`butterfly report --trends`): its structure is snapshotted, and it is loaded
//! in a real headless Chromium like the run report (see `reports/tests/browser.rs`).

mod common;

use std::path::Path;

#[path = "../../reports/tests/support/chromium.rs"]
mod chromium;

use history::store::Location;
use history::trends::Trends;
use history::{Filter, Store};

/// Three releases of nova-resilience recorded out of order, and a boot-storm run.
fn trends(dir: &Path, experiment: Option<&str>) -> Trends {
    let mut store = Store::open(&Location::beside(dir)).unwrap();
    let base = common::report("baseline-run");
    for (n, release, factor) in [(0, "2025.2", 1.3), (1, "2024.2", 1.0), (2, "2025.1", 1.1)] {
        store
            .record(
                &common::variant(&base, n, i64::from(n), factor),
                &common::labels(&[("release", release)]),
                None,
                common::now(),
            )
            .unwrap();
    }
    store
        .record(
            &common::report("recorded-boot-storm"),
            &Default::default(),
            None,
            common::now(),
        )
        .unwrap();
    let filter = Filter {
        campaign: Some("nova-resilience".into()),
        ..Filter::default()
    };
    Trends::load(&mut store, &filter, experiment, Some("release")).unwrap()
}

/// The page reduced to its outline: headings, plot captions and the points of each plot.
fn outline(html: &str) -> String {
    let mut out = String::new();
    for line in html.lines() {
        if let Some(h) = line.strip_prefix("<h2>") {
            out.push_str(&format!("section {}\n", h.trim_end_matches("</h2>")));
        } else if let Some(caption) = line.strip_prefix("<figcaption>") {
            let caption = caption.split(" <span").next().unwrap();
            out.push_str(&format!("  plot {caption}"));
        } else if line.starts_with("<path class=\"series\"") {
            out.push_str(&format!(": {} points\n", line.matches(['M', 'L']).count()));
        }
    }
    out
}

#[test]
fn the_trends_page_has_a_plot_per_experiment_and_figure() {
    let dir = tempfile::tempdir().unwrap();
    let trends = trends(dir.path(), Some("kill-nova-conductor"));
    let html = trends.to_html("Butterfly trends: nova-resilience");
    assert!(
        html.contains(
            "in order of label <code>release</code>, left to right: 2024.2, 2025.1, 2025.2"
        )
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "self-contained"
    );
    insta::assert_snapshot!(outline(&html));
}

#[test]
fn the_trends_page_renders_in_headless_chromium() {
    let Some(binary) = chromium::chromium() else {
        eprintln!("BUTTERFLY_SKIP_BROWSER is set: skipping the browser test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let trends = trends(dir.path(), None);
    let page = dir.path().join("trends.html");
    std::fs::write(&page, trends.to_html("Butterfly trends")).unwrap();
    let dom = chromium::run_chromium(&binary, &page, &["--dump-dom".to_owned()]);
    assert!(
        dom.console.is_empty(),
        "console messages: {:#?}",
        dom.console
    );
    let plots: usize = trends.series.values().map(|f| f.len()).sum();
    assert!(plots > 50, "{plots} plots");
    let svgs: Vec<&str> = dom
        .stdout
        .split("<svg class=\"trend-plot\"")
        .skip(1)
        .collect();
    assert_eq!(
        svgs.len(),
        plots,
        "one plot per experiment and figure in the rendered DOM"
    );
    for svg in &svgs {
        let svg = &svg[..svg.find("</svg>").expect("closed svg")];
        assert_eq!(
            svg.matches("<circle class=\"point\"").count(),
            3,
            "a point per run"
        );
        let names: Vec<&str> = svg
            .split("<text class=\"run\"")
            .skip(1)
            .map(|t| &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()])
            .collect();
        assert_eq!(names, ["2024.2", "2025.1", "2025.2"], "runs in label order");
    }
    assert!(dom.stdout.contains("<h2>Detectors (whole run)</h2>"));
    let screenshot = dir.path().join("trends.png");
    let shot = chromium::run_chromium(
        &binary,
        &page,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,2400".to_owned(),
        ],
    );
    assert!(
        shot.console.is_empty(),
        "console messages: {:#?}",
        shot.console
    );
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 30_000, "blank page? {} bytes", png.len());
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::copy(&page, keep.join("trends.html")).unwrap();
    std::fs::copy(&screenshot, keep.join("trends.png")).unwrap();
}
