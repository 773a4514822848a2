//! Command-line flags; each has an environment fallback so the sidecar is configurable from a pod spec.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Source;
use crate::health::ProbeSettings;
use crate::server::ConnectionLimits;
use crate::state::Limits;

#[derive(Debug, Parser)]
#[command(
    name = "livekit-sidecar",
    version,
    about = "Issues LiveKit access tokens to the application next to it",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a caller JWT that a `--dev` sidecar accepts, for trying the API with curl.
    DevToken(DevTokenArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (JSON), generated from the code.
    Openapi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Throw-away development credentials (LiveKit's devkey/secret, a published caller secret). Never in production.
    #[arg(long, env = "SIDECAR_DEV", conflicts_with = "config_dir")]
    pub dev: bool,
    /// Directory where the operator's Secret and ConfigMap are mounted (one file per key).
    /// Without it, the LIVEKIT_* and SIDECAR_AUTH* environment variables configure the sidecar.
    #[arg(long, env = "SIDECAR_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Address of the API; keep it on loopback so only containers of the same pod reach it.
    #[arg(long, env = "SIDECAR_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,
    /// Address of /livez, /readyz (and /metrics), for the kubelet and Prometheus.
    #[arg(long, env = "SIDECAR_METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    pub metrics_listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SIDECAR_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,
    /// Requests handled at once; more are answered 503.
    #[arg(long, env = "SIDECAR_MAX_CONCURRENCY", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: u32,
    /// Open connections at once; more wait to be accepted.
    #[arg(long, env = "SIDECAR_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Time a client has to send its request headers, in milliseconds.
    #[arg(long, env = "SIDECAR_HEADER_TIMEOUT_MS", default_value_t = 5_000)]
    pub header_timeout_ms: u64,
    /// Time a client has to send its request body, in milliseconds.
    #[arg(long, env = "SIDECAR_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// How long shutdown waits for requests in flight, in seconds.
    #[arg(long, env = "SIDECAR_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
    #[arg(long, env = "SIDECAR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How often the LiveKit server is probed, in seconds; 0 turns probing off.
    #[arg(
        long,
        env = "SIDECAR_LIVEKIT_PROBE_INTERVAL_SECONDS",
        default_value_t = 10
    )]
    pub livekit_probe_interval_seconds: u64,
    /// Bound on one probe of the LiveKit server, in milliseconds.
    #[arg(long, env = "SIDECAR_LIVEKIT_PROBE_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub livekit_probe_timeout_ms: u64,
    /// Whether an unreachable LiveKit server makes health `unhealthy` (/readyz never depends on it).
    #[arg(long, env = "SIDECAR_UNREACHABLE_IS_UNHEALTHY", default_value_t = true, action = clap::ArgAction::Set)]
    pub unreachable_is_unhealthy: bool,
    /// How often the config directory is re-checked in case a file event was missed, in seconds.
    #[arg(long, env = "SIDECAR_RELOAD_CHECK_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub reload_check_seconds: u64,
    /// Watch the config directory for file events (`false`: the re-check timer alone, e.g. on a file
    /// system without inotify).
    #[arg(long, env = "SIDECAR_WATCH_CONFIG_DIR", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch_config_dir: bool,
}

impl ServeArgs {
    /// The configuration source the flags select.
    pub fn config_source(&self) -> Source {
        if self.dev {
            Source::Dev
        } else if let Some(dir) = &self.config_dir {
            Source::Dir(dir.clone())
        } else {
            Source::Env
        }
    }

    pub fn request_limits(&self) -> Limits {
        // No request-wide timer: the body, the webhook and JWKS fetches are each bounded already.
        Limits {
            max_body_bytes: self.max_body_bytes,
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            max_concurrency: self.max_concurrency as usize,
        }
    }

    pub fn probe_settings(&self) -> ProbeSettings {
        ProbeSettings {
            interval: Duration::from_secs(self.livekit_probe_interval_seconds),
            timeout: Duration::from_millis(self.livekit_probe_timeout_ms),
            unreachable_is_unhealthy: self.unreachable_is_unhealthy,
        }
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.header_timeout_ms),
            max_connections: self.max_connections as usize,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            ..ConnectionLimits::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DevTokenArgs {
    /// The caller's identity (`sub`).
    #[arg(long)]
    pub identity: String,
    /// Display name (`name` claim).
    #[arg(long)]
    pub name: Option<String>,
    /// A permission to grant, repeatable: `JOIN_CHANNEL` (every room) or `JOIN_CHANNEL:<roomId>`.
    /// Defaults to `JOIN_CHANNEL` when none is given.
    #[arg(long = "permission", value_name = "PERMISSION")]
    pub permissions: Vec<String>,
    /// Lifetime of the caller token, in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ttl: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_conflicts() {
        let cli = Cli::try_parse_from(["livekit-sidecar"]).unwrap();
        assert_eq!(cli.serve.listen.to_string(), "127.0.0.1:3001");
        assert_eq!(cli.serve.metrics_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(cli.serve.max_body_bytes, 16 * 1024);
        assert!(Cli::try_parse_from(["livekit-sidecar", "--dev", "--config-dir", "/x"]).is_err());
        let cli =
            Cli::try_parse_from(["livekit-sidecar", "dev-token", "--identity", "alice"]).unwrap();
        assert!(matches!(cli.command, Some(Command::DevToken(_))));
        let cli = Cli::try_parse_from(["livekit-sidecar", "openapi"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Openapi)));
        assert!(
            Cli::try_parse_from([
                "livekit-sidecar",
                "dev-token",
                "--identity",
                "a",
                "--ttl",
                "0"
            ])
            .is_err()
        );
    }
}
