//! Reachability of the LiveKit server: a background task asks its HTTP endpoint (the `ws`/`wss` URL
//! mapped to `http`/`https`) on an interval, and health and `/readyz` read the cached answer, so they
//! never wait on the network.

use tokio_util::sync::CancellationToken;

use crate::health::{ProbeSettings, Reachability};
use crate::state::AppState;

/// The HTTP URL of a LiveKit server URL: `ws` → `http`, `wss` → `https`, path reset to `/`.
pub fn http_url(server_url: &str) -> Option<url::Url> {
    let mut url = url::Url::parse(server_url).ok()?;
    let scheme = match url.scheme() {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        _ => return None,
    };
    url.set_scheme(scheme).ok()?;
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

/// Probes until `shutdown`; a no-op when probing is off.
pub fn spawn(state: AppState, settings: ProbeSettings, shutdown: CancellationToken) {
    if settings.interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let client = crate::outbound::client(settings.timeout);
        loop {
            let target = state
                .snapshot()
                .service
                .as_ref()
                .and_then(|s| http_url(&s.settings.server_url));
            let result = match target {
                None => Reachability::Unknown,
                Some(url) => match client.get(url).send().await {
                    Ok(response) if response.status().is_success() => Reachability::Reachable,
                    Ok(response) => {
                        tracing::debug!(
                            status = response.status().as_u16(),
                            "LiveKit probe failed"
                        );
                        Reachability::Unreachable
                    }
                    Err(error) => {
                        tracing::debug!(error = %error.without_url(), "LiveKit probe failed");
                        Reachability::Unreachable
                    }
                },
            };
            let previous = state.reachability().get();
            if previous != result {
                tracing::info!(?previous, now = ?result, "LiveKit server reachability changed");
            }
            state.reachability().set(result);
            state.refresh_health_gauges();
            tokio::select! {
                _ = tokio::time::sleep(settings.interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_websocket_urls_to_http() {
        assert_eq!(
            http_url("ws://localhost:7880").unwrap().as_str(),
            "http://localhost:7880/"
        );
        assert_eq!(
            http_url("wss://lk.example.com/rtc?x=1").unwrap().as_str(),
            "https://lk.example.com/"
        );
        assert_eq!(
            http_url("https://lk.example.com").unwrap().as_str(),
            "https://lk.example.com/"
        );
        assert!(http_url("ftp://x").is_none());
    }
}
