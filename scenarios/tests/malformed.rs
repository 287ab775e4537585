//! Malformed campaigns: each file under `tests/malformed/` must be refused with diagnostics that
//! point at the problem. The diagnostics are snapshotted, so a change in wording or location is a
//! reviewed change.

use std::path::Path;

fn diagnostics_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    // Paths in snapshots are relative so that they do not depend on the checkout's location.
    let shown = Path::new("malformed").join(path.file_name().unwrap());
    let dir = path.parent().unwrap().to_owned();
    let read = move |file: &Path| {
        std::fs::read_to_string(dir.join(file.strip_prefix("malformed").unwrap_or(file)))
    };
    match scenarios::load_bytes(&shown, &bytes, &read) {
        Ok(_) => panic!("{} was accepted but must be refused", path.display()),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

#[test]
fn every_malformed_campaign_is_refused_with_located_diagnostics() {
    insta::glob!("malformed/*.yaml", |path| {
        let rendered = diagnostics_of(path);
        // Every diagnostic names the file, and all but whole-file problems a line and column.
        for line in rendered.lines().filter(|l| l.starts_with("malformed/")) {
            assert!(line.contains(".yaml"), "{line}");
        }
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn many_problems_are_all_reported_in_one_run() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed/many-problems-at-once.yaml");
    let rendered = diagnostics_of(&path);
    let headlines = rendered
        .lines()
        .filter(|l| l.starts_with("malformed/"))
        .count();
    assert!(
        headlines >= 5,
        "expected every problem at once, got:\n{rendered}"
    );
}

#[test]
fn at_least_forty_malformed_cases_exist() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    assert!(std::fs::read_dir(dir).unwrap().count() >= 40);
}
