//! `livekit-operator`: thin entry point; the logic lives in the library.

use clap::Parser as _;
use livekit_operator::cli::{self, Args};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(cli::Command::Inject(inject)) = &args.command {
        let (mut stdin, mut out, mut err) =
            (std::io::stdin(), std::io::stdout(), std::io::stderr());
        return livekit_operator::inject::args::run_inject(inject, &mut stdin, &mut out, &mut err);
    }
    cli::init_tracing(&args);
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "operator failed");
            std::process::ExitCode::FAILURE
        }
    }
}
