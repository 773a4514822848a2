//! The fake over HTTP/1 on a loopback socket, for a controller in another process: a benchmark then
//! measures that process's memory without the fake's store in it, and its client runs the same
//! connection pool, codecs and streaming watches as against a real API server.

use super::FakeApi;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;

impl FakeApi {
    /// Answers every connection on `listener` until the task running this is dropped or the
    /// listener fails. Each connection is served on its own task, so a watch holds its connection
    /// only, as with a real API server.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            self.state().connections += 1;
            let me = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let me = me.clone();
                    async move { Ok::<_, Infallible>(me.handle(request).await) }
                });
                // A client that goes away mid-request is not the fake's error.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}
