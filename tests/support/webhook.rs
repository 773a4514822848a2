//! A tiny HTTP/1.1 server on 127.0.0.1 standing in for the application's authorization webhook.
//!
//! Every request is answered with the same status after a fixed delay, on its own thread, and then the
//! connection is closed. Each request's path and JSON body is recorded and also announced on a channel
//! as soon as it has been read, so a test can act while the sidecar is still waiting for the answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

/// One request the webhook received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// The running webhook; stops accepting when dropped.
pub struct Webhook {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    arrivals: Mutex<mpsc::Receiver<Received>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Webhook {
    /// Answers every request with `status` after `delay`.
    pub fn start(status: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook on loopback");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("bound address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let accept = {
            let received = Arc::clone(&received);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let received = Arc::clone(&received);
                            let tx = tx.clone();
                            std::thread::spawn(move || {
                                handle(stream, status, delay, &received, &tx);
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            addr,
            received,
            arrivals: Mutex::new(rx),
            stop,
            accept: Some(accept),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits up to `timeout` for the next request to arrive (before it is answered).
    pub fn next_arrival(&self, timeout: Duration) -> Option<Received> {
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv_timeout(timeout)
            .ok()
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn handle(
    stream: TcpStream,
    status: u16,
    delay: Duration,
    received: &Mutex<Vec<Received>>,
    tx: &mpsc::Sender<Received>,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Received {
        method,
        path,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(request.clone());
    let _ = tx.send(request);

    std::thread::sleep(delay);
    let mut stream = stream;
    // A 204 carries no body and, as real servers do, no content-length.
    let length = if status == 204 {
        ""
    } else {
        "content-length: 0\r\n"
    };
    let response = format!("HTTP/1.1 {status} Webhook\r\n{length}connection: close\r\n\r\n");
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}
