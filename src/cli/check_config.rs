//! `hale check-config`: the config file as it resolves, with every default filled in and every possible secret
//! replaced by a placeholder; 2 for a config that cannot be used.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::{fail, EXIT_BAD_INPUT};
use crate::config::Config;

pub(super) fn run(config: &Path) -> ExitCode {
    match Config::load(config) {
        Ok(config) => match config
            .printable()
            .and_then(|shown| serde_json::to_string_pretty(&shown))
        {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &format!("cannot print the config: {e}")),
        },
        Err(e) => fail(EXIT_BAD_INPUT, &e.to_string()),
    }
}
