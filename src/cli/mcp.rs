//! `hale mcp`: hale's MCP tools on stdin/stdout for an AI assistant (Claude Desktop, VS Code), relayed to
//! the running hale's `/mcp`; 1 when it cannot be reached. `hale mcp import FILE`: the MCP servers of a
//! Claude Desktop, VS Code or Cursor config (`mcpServers`, or VS Code's `servers`), printed as hale's
//! `mcp_servers`, ready to paste; 2 for a file that cannot be read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{fail, EXIT_BAD_INPUT};
use crate::config::{Config, EditorMcpFile, DEFAULT_CONFIG_PATH};
use crate::kind::ServiceKind;
use crate::mcp::server::relay_stdio;
use crate::ops::listen_addr;

/// The variable `hale mcp` reads its bearer token from (a read token for the reads; operate for `heal`).
pub const TOKEN_VARIABLE: &str = "HALE_TOKEN";

/// `hale mcp [--url URL] [--config FILE]`, or `hale mcp import FILE`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct McpArgs {
    #[command(subcommand)]
    pub what: Option<McpCommand>,
    /// hale's MCP endpoint (default: `/mcp` on the config's `listen.mcp_bridge`).
    #[arg(long, env = "HALE_MCP_URL")]
    pub url: Option<String>,
    /// The JSON config file, for the MCP WebBridge's address.
    #[arg(long, env = "HALE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum McpCommand {
    /// Print the MCP servers of an editor's config file (`mcpServers` or `servers`) in hale's form.
    Import {
        /// The file: Claude Desktop's `claude_desktop_config.json`, VS Code's `mcp.json`, Cursor's
        /// `mcp.json`.
        file: PathBuf,
    },
}

pub(super) async fn run(args: McpArgs) -> ExitCode {
    match args.what {
        Some(McpCommand::Import { file }) => import(&file),
        None => serve_stdio(args.url, &args.config).await,
    }
}

/// Serves hale's tools on stdio (stdout is the protocol: nothing else is printed there).
async fn serve_stdio(url: Option<String>, config: &Path) -> ExitCode {
    let url = match url {
        Some(url) => url,
        None => match listen_addr_of(config, ServiceKind::McpBridge) {
            Ok(addr) => format!("http://{addr}/mcp"),
            Err(e) => return fail(EXIT_BAD_INPUT, &e),
        },
    };
    let token = env_token();
    match relay_stdio(&url, token.as_deref()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}

/// Where a running hale's service `kind` listens, from the config file `config` (the defaults when the file
/// does not exist); the config's error when it cannot be read. `hale mcp` and `hale workflow` find hale so.
pub(super) fn listen_addr_of(config: &Path, kind: ServiceKind) -> Result<SocketAddr, String> {
    let config = if config.exists() {
        Config::load(config).map_err(|e| e.to_string())?
    } else {
        Config::default()
    };
    Ok(listen_addr(&config, kind))
}

/// The bearer token from `HALE_TOKEN`, when set and not empty.
pub(super) fn env_token() -> Option<String> {
    std::env::var(TOKEN_VARIABLE).ok().filter(|t| !t.is_empty())
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
