//! `hale mcp import FILE`: the MCP servers of a Claude Desktop, VS Code or Cursor config (`mcpServers`, or
//! VS Code's `servers`), printed as hale's `mcp_servers`, ready to paste; 2 for a file that cannot be read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{fail, EXIT_BAD_INPUT};
use crate::config::EditorMcpFile;

#[derive(Debug, clap::Subcommand)]
pub enum McpCommand {
    /// Print the MCP servers of an editor's config file (`mcpServers` or `servers`) in hale's form.
    Import {
        /// The file: Claude Desktop's `claude_desktop_config.json`, VS Code's `mcp.json`, Cursor's
        /// `mcp.json`.
        file: PathBuf,
    },
}

pub(super) fn run(what: McpCommand) -> ExitCode {
    match what {
        McpCommand::Import { file } => import(&file),
    }
}

fn import(file: &Path) -> ExitCode {
    let shown = file.display();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => return fail(EXIT_BAD_INPUT, &format!("cannot read {shown}: {e}")),
    };
    let mut de = serde_json::Deserializer::from_str(&text);
    let parsed: Result<EditorMcpFile, _> = serde_path_to_error::deserialize(&mut de);
    let servers = match parsed.map_err(|e| format!("{}: {}", e.path(), e.inner())) {
        Ok(parsed) => parsed.into_servers(),
        Err(e) => Err(e),
    };
    match servers {
        Ok(servers) => {
            let value = serde_json::json!({ "mcp_servers": servers });
            match serde_json::to_string_pretty(&value) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, &format!("cannot print the servers: {e}")),
            }
        }
        Err(e) => fail(EXIT_BAD_INPUT, &format!("{shown}: {e}")),
    }
}
