//! `butterfly faults`: the fault catalog, from the campaign model's own descriptions.

use scenarios::fault::FAULT_KINDS;

use crate::exit::{CliError, Exit};

/// List every fault kind with its parameters and a one-line description.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  butterfly faults\n  butterfly faults network-delay\n  butterfly faults --json"
)]
pub struct Args {
    /// Show only this kind.
    pub kind: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let kinds: Vec<_> = match &args.kind {
        None => FAULT_KINDS.to_vec(),
        Some(name) => match scenarios::fault::FaultKind::from_name(name) {
            Some(kind) => vec![kind],
            None => {
                let known: Vec<_> = FAULT_KINDS.iter().map(|kind| kind.name()).collect();
                return Err(CliError::InvalidInput(format!(
                    "unknown fault kind {name:?}; known kinds: {}",
                    known.join(", ")
                )));
            }
        },
    };
    print!("{}", render(&kinds, args.json));
    Ok(Exit::Pass)
}

/// The catalog as text or JSON.
pub fn render(kinds: &[scenarios::fault::FaultKind], json: bool) -> String {
    if json {
        let list: Vec<_> = kinds
            .iter()
            .map(|kind| {
                serde_json::json!({
                    "kind": kind.name(),
                    "description": kind.description(),
                    "needs_service": kind.needs_service(),
                    "reversible": kind.is_reversible(),
                    "parameters": kind
                        .parameters()
                        .iter()
                        .map(|(name, text)| serde_json::json!({"name": name, "description": text}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&list).unwrap_or_default();
        text.push('\n');
        return text;
    }
    let mut out = String::new();
    for kind in kinds {
        let mut tags = Vec::new();
        if kind.needs_service() {
            tags.push("needs a service");
        }
        if !kind.is_reversible() {
            tags.push("one-shot");
        }
        let tags = if tags.is_empty() {
            String::new()
        } else {
            format!(" ({})", tags.join(", "))
        };
        out.push_str(&format!(
            "{}{tags}\n    {}\n",
            kind.name(),
            kind.description()
        ));
        for (name, text) in kind.parameters() {
            out.push_str(&format!("    {name:<10} {text}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_lists_every_kind_with_its_parameters() {
        let text = render(FAULT_KINDS, false);
        for kind in FAULT_KINDS {
            assert!(
                text.contains(kind.description()),
                "{kind} has no description"
            );
            for (name, _) in kind.parameters() {
                assert!(text.contains(name), "{kind} lacks parameter {name}");
            }
        }
        insta::assert_snapshot!(text);
    }

    #[test]
    fn json_output_is_an_array_of_every_kind() {
        let json: serde_json::Value = serde_json::from_str(&render(FAULT_KINDS, true)).unwrap();
        assert_eq!(json.as_array().unwrap().len(), FAULT_KINDS.len());
        assert_eq!(json[0]["kind"], "process-kill");
    }

    #[test]
    fn an_unknown_kind_is_invalid_input() {
        let error = run(Args {
            kind: Some("network-explode".into()),
            json: false,
        })
        .unwrap_err();
        assert_eq!(error.code(), 2);
        assert!(error.to_string().contains("network-delay"));
    }
}
