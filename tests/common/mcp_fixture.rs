//! The in-repo MCP server (`examples/mcp_fixture.rs`) the MCP tests run, built once per test run.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The fixture server's binary, brought up to date once per test run (`cargo test --test mcp` alone does not
/// build examples, and a stale fixture would test old code).
pub fn fixture() -> &'static PathBuf {
    static FIXTURE: OnceLock<PathBuf> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        // target/<profile>/deps/<test>-HASH -> target/<profile>/examples/mcp_fixture
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test binary is in target/<profile>/deps")
            .to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--offline", "--example", "mcp_fixture"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // The variables cargo sets for a test would change build scripts' fingerprints, and the next
        // `cargo test` would build those crates again: the nested build gets the developer's environment.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if (name.starts_with("CARGO_") && name != "CARGO_HOME") || name == "OUT_DIR" {
                build.env_remove(name.as_ref());
            }
        }
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("run cargo build --example mcp_fixture");
        assert!(status.success(), "cargo build --example mcp_fixture failed");
        profile_dir.join("examples").join("mcp_fixture")
    })
}
