//! `hale status`: one screen of hale's state, or the same as JSON (`ops::status` gathers it).

use std::process::ExitCode;

use crate::cli::{fail, Files, EXIT_BAD_INPUT};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub files: Files,
    /// The same data as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `hale status`: 0 once the status is printed, whatever it shows; 2 for a config that cannot be used.
pub(super) async fn run(args: StatusArgs) -> ExitCode {
    use crate::ops::status;
    let config = match Config::load(&args.files.config) {
        Ok(config) => config,
        Err(e) => return fail(EXIT_BAD_INPUT, &e.to_string()),
    };
    let found = status::gather(&config, &args.files.config, &args.files.db).await;
    if args.json {
        match serde_json::to_string_pretty(&found) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(1, &format!("cannot encode the status: {e}")),
        }
    } else {
        print!("{}", status::render(&found, status::colour_wanted()));
    }
    ExitCode::SUCCESS
}
