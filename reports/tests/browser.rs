//! Renders `report.html` from the recorded run in a real headless Chromium (Debian's `chromium`
//! package): the page must load without a single console message (the page has no scripts, so
//! any message is an error, e.g. a blocked external asset), every plot must be in the DOM, and a
//! screenshot is taken (kept in the target directory for people to look at).
//!
//! Needs `chromium` on PATH (or `CHROMIUM=/path/to/chromium`). The test fails without it; set
//! `BUTTERFLY_SKIP_BROWSER=1` to skip it explicitly on a machine without a browser.

use std::path::Path;

#[path = "support/chromium.rs"]
mod chromium;

use chromium::{chromium, run_chromium};

#[test]
fn report_html_renders_in_headless_chromium() {
    let Some(binary) = chromium() else {
        eprintln!("BUTTERFLY_SKIP_BROWSER is set: skipping the browser test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // The console check must be able to fail: a page that logs an error is caught.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><p>x</p><script>console.error('control-error')</script>",
    )
    .unwrap();
    let control_run = run_chromium(&binary, &control, &["--dump-dom".to_owned()]);
    assert!(
        control_run
            .console
            .iter()
            .any(|l| l.contains("control-error")),
        "console messages are not captured: {:?}",
        control_run.console
    );

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recorded-boot-storm");
    let report = reports::read_run(&fixture).unwrap();
    reports::render_all(&report, dir.path()).unwrap();
    let page = dir.path().join("report.html");

    let dom = run_chromium(&binary, &page, &["--dump-dom".to_owned()]);
    assert!(
        dom.console.is_empty(),
        "console messages while loading report.html: {:#?}",
        dom.console
    );
    let repetitions: usize = report.experiments.iter().map(|e| e.repetitions.len()).sum();
    let timelines: Vec<&str> = dom
        .stdout
        .split("<svg class=\"timeline\"")
        .skip(1)
        .collect();
    assert_eq!(
        timelines.len(),
        repetitions,
        "one timeline plot per repetition in the rendered DOM"
    );
    for (i, svg) in timelines.iter().enumerate() {
        let svg = &svg[..svg.find("</svg>").expect("closed svg")];
        let start = svg
            .find("class=\"series series-success\" d=\"M")
            .unwrap_or_else(|| panic!("plot {i} lacks the success ratio"));
        let path = &svg[start..];
        let path = &path[path.find(" d=\"").unwrap() + 4..];
        let d = &path[..path.find('"').expect("closed attribute")];
        assert!(
            d.matches('L').count() > 20,
            "plot {i}: the success ratio has too few points"
        );
        assert!(
            svg.matches("class=\"latency-bar").count() > 20,
            "plot {i}: the latency plot has too few bars"
        );
        assert!(
            svg.contains("class=\"fault-span\""),
            "plot {i} shows no fault window"
        );
        assert!(svg.contains("class=\"alarm\""), "plot {i} shows no alarm");
    }
    assert!(
        dom.stdout.contains("<svg class=\"divergence\""),
        "the failing transaction view is missing"
    );
    assert!(
        dom.stdout.contains("id=\"detectors\""),
        "the detector score table is missing"
    );

    let screenshot = dir.path().join("report.png");
    let shot = run_chromium(
        &binary,
        &page,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,5200".to_owned(),
        ],
    );
    assert!(
        shot.console.is_empty(),
        "console messages while screenshotting: {:#?}",
        shot.console
    );
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 5200));
    assert!(
        png.len() > 50_000,
        "the screenshot is suspiciously small ({} bytes): blank page?",
        png.len()
    );

    // Keep the page and its screenshot where people can look at them after the test.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::copy(&page, keep.join("report.html")).unwrap();
    std::fs::copy(&screenshot, keep.join("report.png")).unwrap();
}
