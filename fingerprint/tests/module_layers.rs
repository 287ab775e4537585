//! The crate's modules import each other in layers, never in a circle: each rule module builds on
//! the ones below it (see `docs/fingerprint.md`, "Engine").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Per module of `src/`, the crate modules its `use crate::…` lines name.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Tests may reach anywhere; the modules' own code may not.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let used = code
            .lines()
            .filter_map(|line| {
                let rest = line
                    .trim_start()
                    .trim_start_matches("pub ")
                    .strip_prefix("use crate::")?;
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                (!module.is_empty() && module != name).then_some(module)
            })
            .collect();
        modules.insert(name, used);
    }
    modules
}

#[test]
fn the_modules_import_each_other_without_a_circle() {
    let mut left = imports();
    assert!(left.contains_key("engine") && left.contains_key("suspicion"));
    // Peel off modules that import nothing still left; a circle is what cannot be peeled.
    while !left.is_empty() {
        let free: Vec<String> = left
            .iter()
            .filter(|(_, used)| used.iter().all(|module| !left.contains_key(module)))
            .map(|(name, _)| name.clone())
            .collect();
        assert!(
            !free.is_empty(),
            "modules importing each other in a circle: {left:?}"
        );
        for name in free {
            left.remove(&name);
        }
    }
}

#[test]
fn the_engine_sits_on_top_and_suspicion_below_every_rule() {
    let modules = imports();
    // Only the production mode drives the engine; no rule builds on it.
    for (name, used) in &modules {
        assert!(
            !used.contains("engine") || name == "watch",
            "{name} imports the engine"
        );
        assert!(!used.contains("watch"), "{name} imports the watch");
    }
    for rule in ["answer", "diagnose", "monitor", "engine"] {
        assert!(
            modules[rule].contains("suspicion"),
            "{rule} weighs without the table"
        );
    }
    assert!(
        !modules["suspicion"]
            .iter()
            .any(|m| ["answer", "diagnose", "monitor", "store"].contains(&m.as_str()))
    );
}
