//! The campaign language: the model of a fault campaign, its YAML parsing with `file:line:col`
//! diagnostics, validation, JSON Schema and plan expansion.
//!
//! Data comes from campaign and inventory YAML files ([`load`]); the checked [`model::Campaign`] and
//! the expanded [`plan::Plan`] go to the runner. Parsing is two-staged in cargo-deny's
//! `UnvalidatedConfig` pattern: [`raw`] types keep source spans, [`validate`] turns them into
//! [`model`] types while collecting every problem as a [`diag::Diagnostic`]. This crate is
//! synchronous and pure: it reads files, nothing else. The [`safety`] rules (what a fault may not
//! touch) live here, shared by validation and the injector's planner.
#![warn(missing_docs)]

pub mod diag;
pub mod fault;
pub mod history;
pub mod labels;
pub mod model;
pub mod plan;
pub mod rally;
pub mod raw;
pub mod remediation;
pub mod safety;
pub mod units;
pub mod validate;

use std::path::Path;

use serde::de::DeserializeOwned;
use userinput::file::{FileKind, size_in_words};

use crate::diag::{Diagnostic, Diagnostics, quoted, suggestion};
use crate::raw::{Pos, RawCampaign};

/// Campaign and inventory files larger than this are refused before parsing: a real campaign is a
/// few kilobytes, and the limit keeps a hostile file from costing memory.
pub const MAX_FILE_BYTES: usize = FileKind::CAMPAIGN.limit as usize;

/// How deep a campaign or inventory document may nest.
const MAX_DEPTH: usize = 32;
/// How many nodes (values, lists, mappings) a document may hold.
const MAX_NODES: usize = 100_000;
/// How many aliases, and how many anchors, a document may use.
const MAX_ALIASES: usize = 1_000;

/// Reads, parses and validates a campaign file (and the inventory it names), each through the
/// bounded reader.
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
pub enum Document {
    /// A campaign.
    Campaign,
    /// An inventory.
    Inventory,
}

/// Like [`load`], but a file whose top level is an inventory's (`hosts` and no `experiments` or
/// `testbed`) is validated as an inventory instead of failing as a campaign.
pub fn check_file(path: &Path) -> (Document, Result<Checked, Diagnostics>) {
    let bytes = match read_file(path) {
        Ok(bytes) => bytes,
        Err(diagnostics) => return (Document::Campaign, Err(diagnostics)),
    };
    let text = match check_text(path, &bytes) {
        Ok(text) if is_inventory(path, text) => text,
        _ => {
            let campaign = load_bytes(path, &bytes, &read_named_file);
            return (
                Document::Campaign,
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
    (Document::Inventory, inventory.map(Checked::Inventory))
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
    userinput::file::read(path, FileKind::CAMPAIGN)
        .map_err(|error| Diagnostics(vec![Diagnostic::new(path, Pos::default(), error.reason())]))
}

fn read_named_file(path: &Path) -> Result<String, userinput::file::Error> {
    userinput::file::read_to_string(path, FileKind::INVENTORY)
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
                "the file is {}; {} is limited to {}",
                size_in_words(bytes.len() as u64),
                FileKind::CAMPAIGN,
                size_in_words(FileKind::CAMPAIGN.limit)
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
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ALIASES;
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
            let diagnostic = Diagnostic::new(
                path,
                at,
                format!("unknown field {field}", field = quoted(field)),
            );
            if expected.is_empty() {
                diagnostic.with_hint("this section takes no fields")
            } else {
                diagnostic.with_hint(suggestion(field, expected))
            }
        }
        E::SerdeMissingField { field, .. } => Diagnostic::new(
            path,
            at,
            format!("missing field {field}", field = quoted(field)),
        )
        .with_hint(format!("add `{field}:`")),
        E::DuplicateMappingKey { key, .. } => match key {
            Some(key) => {
                Diagnostic::new(path, at, format!("duplicate key {key}", key = quoted(key)))
            }
            None => Diagnostic::new(path, at, "duplicate key"),
        },
        E::Budget { breach, .. } => Diagnostic::new(path, at, budget_breach(breach))
            .with_hint("campaign and inventory files are small, flat documents"),
        E::NonFiniteFloat { value, .. } => Diagnostic::new(
            path,
            at,
            format!("{} is not a finite number", quoted(value)),
        )
        .with_hint("write a number such as 0.5"),
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => Diagnostic::new(
            path,
            at,
            format!(
                "expected {}, found {}",
                tame(expected),
                kind_of_value(unexpected)
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
                other => tame(other),
            };
            Diagnostic::new(path, at, friendly)
        }
    }
}

/// A parser safety limit in words, naming the limit [`parse_yaml`] sets.
fn budget_breach(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Depth { .. } => format!("the document nests deeper than {MAX_DEPTH} levels"),
        B::Nodes { .. } => format!(
            "the document has more than {MAX_NODES} nodes (values, lists and mappings)"
        ),
        B::Aliases { .. } => format!("the document uses more than {MAX_ALIASES} aliases (`*name`)"),
        B::Anchors { .. } => format!("the document defines more than {MAX_ALIASES} anchors (`&name`)"),
        B::Documents { .. } => "the file holds more than one YAML document (`---`)".to_owned(),
        B::ScalarBytes { .. } => format!(
            "the document's values add up to more than {}",
            size_in_words(MAX_FILE_BYTES as u64)
        ),
        B::RecordedAnchorBytes { .. } | B::RecordedAnchorEvents { .. } => format!(
            "the anchored values (`&name`) add up to more than {}",
            size_in_words(MAX_FILE_BYTES as u64)
        ),
        B::AliasAnchorRatio { .. } => {
            "the document expands its aliases far more often than it defines anchors (an alias bomb)"
                .to_owned()
        }
        B::MergeKeys { .. } => "the document uses too many merge keys (`<<`)".to_owned(),
        _ => "the document exceeds a parser safety limit".to_owned(),
    }
}

/// What kind of value serde found, without the value: `found a string`, not the string (which may
/// be a line of a file never meant for this parser, such as a URL with a password).
fn kind_of_value(unexpected: &str) -> String {
    let kind = unexpected
        .split([' ', '`', '"'])
        .next()
        .unwrap_or(unexpected);
    match kind {
        "string" => "a string".to_owned(),
        "integer" => "a whole number".to_owned(),
        "floating" => "a number".to_owned(),
        "boolean" => "a boolean".to_owned(),
        "sequence" => "a list".to_owned(),
        "map" => "a mapping".to_owned(),
        "unit" => "nothing (an empty value)".to_owned(),
        _ => "a value of another type".to_owned(),
    }
}

/// A parser message with each quoted value in it cut to an excerpt and its URL passwords hidden,
/// and Rust type names (`struct RawInventory`) in words.
fn tame(message: &str) -> String {
    let message = message
        .replace("struct Raw", "the fields of ")
        .replace("a sequence", "a list")
        .replace("a map", "a mapping");
    let mut out = String::new();
    let mut rest = message.as_str();
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        let Some(length) = rest[start + 1..].find(quote) else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 1..start + 1 + length];
        if quote == '"' {
            out.push_str(&quoted(inner));
        } else {
            out.push('`');
            out.push_str(&diag::excerpt(inner));
            out.push('`');
        }
        rest = &rest[start + 2 + length..];
    }
    out.push_str(&diag::excerpt(rest).replace('…', ""));
    out
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
