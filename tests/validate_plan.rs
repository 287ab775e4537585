//! `validate` says everything that `run` will say: over every shipped example and every campaign
//! of the malformed corpus, a campaign validates exactly when `plan --dry-run` (the injector's
//! planner, which `run` uses) accepts every fault of it.

use std::path::{Path, PathBuf};

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        // The inventory is not a campaign; the examples that name it read it.
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n != "testbed-inventory.yaml")
        })
        .collect();
    files.sort();
    files
}

/// What `butterfly plan --dry-run FILE` does, as the command's own functions do it.
fn plan_dry_run(file: &Path) -> Result<String, String> {
    let campaign = scenarios::load(file).map_err(|diagnostics| diagnostics.to_string())?;
    let plan = scenarios::plan::expand(&campaign);
    butterfly::commands::plan::dry_run(&campaign, &plan)
}

#[test]
fn a_campaign_validates_exactly_when_its_dry_run_plans() {
    let mut files = yaml_files("scenarios/examples");
    let examples = files.len();
    files.extend(yaml_files("scenarios/tests/malformed"));
    assert!(examples >= 6 && files.len() >= examples + 40, "{files:?}");
    let mut disagreements = Vec::new();
    for file in &files {
        let validated = scenarios::load(file);
        let planned = plan_dry_run(file);
        match (&validated, &planned) {
            (Ok(_), Err(refusal)) => disagreements.push(format!(
                "{}: validates, but plan --dry-run refuses it: {refusal}",
                file.display()
            )),
            (Err(diagnostics), Ok(_)) => disagreements.push(format!(
                "{}: plan --dry-run accepts it, but validate refuses it:\n{diagnostics}",
                file.display()
            )),
            _ => {}
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
