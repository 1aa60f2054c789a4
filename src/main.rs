//! The `hale` binary: parses the command line and hands it to `hale::cli`, which runs the command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before the runtime starts its threads: glibc fixes its arena limit when a second thread allocates.
    hale::process::limit_allocator_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let cli = match hale::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                hale::cli::EXIT_BAD_INPUT
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    hale::cli::run(cli).await
}
