use std::process::ExitCode;

use clap::Parser;
use livekit_sidecar::cli::{Cli, Command, LogFormat};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = &cli.command {
        print!("{}", livekit_sidecar::http::openapi::json());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::DevToken(args)) = &cli.command {
        livekit_sidecar::install_crypto_provider();
        return match livekit_sidecar::dev::dev_token(args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("livekit-sidecar: cannot mint a dev token: {error}");
                ExitCode::FAILURE
            }
        };
    }
    // Flushes buffered log lines when main returns.
    let _log_guard = init_logging(cli.serve.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        livekit_sidecar::server::cancel_on_signals(shutdown.clone());
        match livekit_sidecar::start(&cli.serve, shutdown).await {
            Ok(running) => {
                let _ = running.task.await;
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(error) => {
                tracing::error!(%error, "cannot start");
                eprintln!("livekit-sidecar: {error}");
                ExitCode::from(2)
            }
        }
    })
}

/// Lines the log writer holds while stderr is slower than the sidecar logs. tracing-appender's
/// default is 128,000, and its channel allocates and initialises every slot up front: 4 MB of the
/// idle sidecar's memory, more than a third of it, for a burst the refusal-log budget
/// (`log_budget`) never lets happen. 4,096 lines are seconds of the busiest legitimate logging.
const LOG_BUFFER_LINES: usize = 4096;

/// Logs to stderr through a writer thread, so request handling never waits on a write system call.
/// When the buffer is full (stderr slower than a flood of log lines), lines are dropped rather than
/// blocking the runtime, and counted in `livekit_sidecar_log_lines_dropped_total`.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    livekit_sidecar::log_budget::set_dropped_lines_source(move || dropped.dropped_lines() as u64);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    guard
}
