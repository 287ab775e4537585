//! The campaign language: the model of a fault campaign, its YAML parsing with `file:line:col`
//! diagnostics, validation, JSON Schema and plan expansion.
//!
//! Data comes from campaign and inventory YAML files ([`load`]); the checked [`model::Campaign`] and
//! the expanded [`plan::Plan`] go to the runner. Parsing is two-staged in cargo-deny's
//! `UnvalidatedConfig` pattern: [`raw`] types keep source spans, [`validate`] turns them into
//! [`model`] types while collecting every problem as a [`diag::Diagnostic`]. This crate is
//! synchronous and pure: it reads files, nothing else.
#![warn(missing_docs)]

pub mod diag;
pub mod fault;
pub mod model;
pub mod plan;
pub mod raw;
pub mod units;
pub mod validate;

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::diag::{Diagnostic, Diagnostics, suggestion};
use crate::raw::{Pos, RawCampaign};

/// Campaign and inventory files larger than this are refused before parsing: a real campaign is a
/// few kilobytes, and the limit keeps a hostile file from costing memory.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Reads, parses and validates a campaign file (and the inventory it names).
pub fn load(path: &Path) -> Result<model::Campaign, Diagnostics> {
    let bytes = read_file(path)?;
    load_bytes(path, &bytes, &read_named_file)
}

/// What a file given to `butterfly validate` turned out to be, once valid.
#[derive(Debug)]
pub enum Checked {
    /// A campaign (boxed: it is far larger than an inventory).
    Campaign(Box<model::Campaign>),
    /// An inventory (hosts and services), as `butterfly testbed up` writes.
    Inventory(model::Testbed),
}

/// What kind of file [`check_file`] judged a file to be (a campaign when it could not tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A campaign.
    Campaign,
    /// An inventory.
    Inventory,
}

/// Like [`load`], but a file whose top level is an inventory's (`hosts` and no `experiments` or
/// `testbed`) is validated as an inventory instead of failing as a campaign.
pub fn check_file(path: &Path) -> (FileKind, Result<Checked, Diagnostics>) {
    let bytes = match read_file(path) {
        Ok(bytes) => bytes,
        Err(diagnostics) => return (FileKind::Campaign, Err(diagnostics)),
    };
    let text = match check_text(path, &bytes) {
        Ok(text) if is_inventory(path, text) => text,
        _ => {
            let campaign = load_bytes(path, &bytes, &read_named_file);
            return (
                FileKind::Campaign,
                campaign.map(|campaign| Checked::Campaign(Box::new(campaign))),
            );
        }
    };
    let inventory = parse_yaml::<raw::RawInventory>(path, text).and_then(|raw| {
        validate::validate_inventory(path, &raw).map_err(|mut diagnostics| {
            diagnostics.attach_source(path, text);
            diagnostics
        })
    });
    (FileKind::Inventory, inventory.map(Checked::Inventory))
}

/// Whether a document's top level has an inventory's keys rather than a campaign's.
fn is_inventory(path: &Path, text: &str) -> bool {
    let keys: Result<std::collections::BTreeMap<String, serde::de::IgnoredAny>, _> =
        parse_yaml(path, text);
    keys.is_ok_and(|keys| {
        keys.contains_key("hosts")
            && !keys.contains_key("experiments")
            && !keys.contains_key("testbed")
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, Diagnostics> {
    std::fs::read(path).map_err(|error| {
        Diagnostics(vec![Diagnostic::new(
            path,
            Pos::default(),
            format!("cannot read the file: {error}"),
        )])
    })
}

fn read_named_file(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

/// Parses and validates campaign bytes; `read` loads files the campaign names.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    read: &validate::ReadFile<'_>,
) -> Result<model::Campaign, Diagnostics> {
    let text = check_text(path, bytes)?;
    let raw: RawCampaign = parse_yaml(path, text)?;
    validate::validate_campaign(path, raw, read).map_err(|mut diagnostics| {
        diagnostics.attach_source(path, text);
        diagnostics
    })
}

/// Refuses oversized and non-UTF-8 input, pointing at the first invalid byte.
fn check_text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, Diagnostics> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Diagnostics(vec![Diagnostic::new(
            path,
            Pos::default(),
            format!(
                "the file is {} bytes; campaign files are limited to {MAX_FILE_BYTES} bytes",
                bytes.len()
            ),
        )]));
    }
    std::str::from_utf8(bytes).map_err(|error| {
        let valid = &bytes[..error.valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() as u32 + 1;
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count() as u32
            + 1;
        Diagnostics(vec![
            Diagnostic::new(path, Pos { line, column }, "the file is not valid UTF-8")
                .with_hint("save it as UTF-8"),
        ])
    })
}

/// Parses YAML into a raw type with this crate's parser settings: duplicate keys are errors,
/// nesting, node counts and alias expansion are bounded (YAML bombs fail fast), and YAML 1.1
/// booleans such as `yes` are not booleans.
pub(crate) fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Diagnostics> {
    if text.trim().is_empty() {
        return Err(Diagnostics(vec![Diagnostic::new(
            path,
            Pos::default(),
            "the file is empty",
        )]));
    }
    // Both types are non-exhaustive: start from the defaults and tighten what matters here.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = MAX_FILE_BYTES;
    budget.max_recorded_anchor_bytes = MAX_FILE_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.strict_booleans = true;
    options.with_snippet = false;
    // A first pass that accepts any structure enforces the budget and the syntax rules over the
    // whole document, so that a YAML bomb or a duplicate key is reported as such even where a type
    // error would otherwise stop the typed pass first.
    let untyped: Result<serde::de::IgnoredAny, _> =
        serde_saphyr::from_str_with_options(text, options.clone());
    let typed = untyped.and_then(|_| serde_saphyr::from_str_with_options(text, options));
    typed.map_err(|error| {
        let mut diagnostics = Diagnostics(vec![describe_parse_error(path, &error)]);
        diagnostics.attach_source(path, text);
        diagnostics
    })
}

/// Turns a parser error into a diagnostic in this tool's words, with a did-you-mean for unknown
/// fields.
fn describe_parse_error(path: &Path, error: &serde_saphyr::Error) -> Diagnostic {
    use serde_saphyr::Error as E;
    let mut error = error;
    while let E::WithSnippet { error: inner, .. } | E::AliasError { error: inner, .. } = error {
        error = inner;
    }
    let at = error
        .location()
        .map(|location| Pos {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        })
        .unwrap_or_default();
    match error {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let diagnostic = Diagnostic::new(path, at, format!("unknown field \"{field}\""));
            if expected.is_empty() {
                diagnostic.with_hint("this section takes no fields")
            } else {
                diagnostic.with_hint(suggestion(field, expected))
            }
        }
        E::SerdeMissingField { field, .. } => {
            Diagnostic::new(path, at, format!("missing field \"{field}\""))
                .with_hint(format!("add `{field}:`"))
        }
        E::DuplicateMappingKey { key, .. } => match key {
            Some(key) => Diagnostic::new(path, at, format!("duplicate key \"{key}\"")),
            None => Diagnostic::new(path, at, "duplicate key"),
        },
        E::Budget { breach, .. } => Diagnostic::new(
            path,
            at,
            format!(
                "the document exceeds a safety limit ({breach:?}); campaign files are small, flat documents"
            ),
        ),
        other => {
            let message = other.to_string();
            let first_line = message.lines().next().unwrap_or(&message).trim();
            let cleaned = first_line
                .find(" at line ")
                .map_or(first_line, |index| &first_line[..index]);
            let friendly = match cleaned {
                "expected sequence start" => "expected a list here".to_owned(),
                "expected mapping start" => "expected a mapping (key: value) here".to_owned(),
                other => other.to_owned(),
            };
            Diagnostic::new(path, at, friendly)
        }
    }
}

/// The JSON Schema of the campaign format, generated from the raw types.
pub fn campaign_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RawCampaign);
    let mut value = serde_json::to_value(schema).expect("a schema is always serializable");
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "$id".into(),
            serde_json::Value::String(
                "https://butterfly-effect.invalid/schema/campaign-v1.json".into(),
            ),
        );
        object.insert(
            "title".into(),
            serde_json::Value::String("Butterfly Effect campaign".into()),
        );
    }
    value
}

/// The JSON Schema of the inventory format.
pub fn inventory_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(raw::RawInventory))
        .expect("a schema is always serializable")
}
