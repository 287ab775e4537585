//! Recomputes the detector scores of a `report.json` from its own faults and alarms and writes
//! the file back: `cargo run -p reports --example rescore -- RUN_DIR/report.json`.
//!
//! Used to keep hand-edited fixtures consistent with the scoring rules.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or("usage: rescore PATH/TO/report.json")?;
    let path = std::path::PathBuf::from(path);
    let mut report = reports::Report::from_json(&std::fs::read_to_string(&path)?)?;
    report.detectors = report.rescore();
    reports::write_atomically(&path, report.to_json().as_bytes())?;
    Ok(())
}
