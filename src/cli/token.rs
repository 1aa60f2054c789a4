//! `hale token`: prints a new random bearer token that `auth.tokens` accepts.

use std::process::ExitCode;

pub(super) fn run() -> ExitCode {
    println!("{}", crate::auth::generate_token());
    ExitCode::SUCCESS
}
