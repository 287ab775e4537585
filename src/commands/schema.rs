//! `butterfly schema`: print the JSON Schema of the campaign (or inventory) format.

use crate::exit::{CliError, Exit};

/// Print the JSON Schema of the campaign format (generated from the parser's own types).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  butterfly schema > campaign.schema.json\n  butterfly schema --inventory"
)]
pub struct Args {
    /// Print the schema of inventory files instead.
    #[arg(long)]
    pub inventory: bool,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let schema = if args.inventory {
        scenarios::inventory_schema()
    } else {
        scenarios::campaign_schema()
    };
    let text = serde_json::to_string_pretty(&schema)
        .map_err(|error| CliError::Setup(format!("cannot render the schema: {error}")))?;
    println!("{text}");
    Ok(Exit::Pass)
}
