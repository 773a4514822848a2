//! `livekit-operator`: thin entry point; the logic lives in the library.

use clap::Parser as _;
use livekit_operator::cli::{self, Args};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    cli::init_tracing(&args);
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "operator failed");
            std::process::ExitCode::FAILURE
        }
    }
}
