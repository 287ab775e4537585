//! Malformed campaigns: each file under `tests/malformed/` must be refused with diagnostics that
//! point at the problem. The diagnostics are snapshotted, so a change in wording or location is a
//! reviewed change.

use std::path::Path;

fn diagnostics_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    // Paths in snapshots are relative so that they do not depend on the checkout's location.
    let shown = Path::new("malformed").join(path.file_name().unwrap());
    let dir = path.parent().unwrap().to_owned();
    // Errors name the file as the campaign does (relative), not where the test found it.
    let read = move |file: &Path| {
        let kind = userinput::file::FileKind::INVENTORY;
        userinput::file::read_to_string(
            &dir.join(file.strip_prefix("malformed").unwrap_or(file)),
            kind,
        )
        .map_err(|error| match error {
            userinput::file::Error::Io { source, .. } => {
                userinput::file::Error::io(file, kind, source)
            }
            other => other,
        })
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
            assert!(
                line.contains(".yaml") || line.contains(".txt") || line.contains(".json"),
                "{line}"
            );
        }
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn a_url_file_given_as_inventory_is_refused_without_showing_its_password() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed/inventory-is-a-url-file.yaml");
    let rendered = diagnostics_of(&path);
    assert!(
        rendered.contains("malformed/amqp-url.txt:1:1"),
        "{rendered}"
    );
    assert!(!rendered.contains("S3cretPw"), "{rendered}");
    assert!(
        !rendered.contains("amqp://butterfly-tracer:S3cretPw@10.77.0.2:5672/"),
        "{rendered}"
    );
}

#[test]
fn a_long_value_is_echoed_as_a_short_excerpt_with_its_length() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed/very-long-fault-kind.yaml");
    let rendered = diagnostics_of(&path);
    assert!(rendered.contains("(10008 characters)"), "{rendered}");
    assert!(!rendered.contains(&"process-kill".repeat(10)), "{rendered}");
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
