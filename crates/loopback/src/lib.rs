//! One small HTTP server on 127.0.0.1: a real socket, a thread per connection, a handler
//! per request, every request recorded. The demo's health endpoint and webhook receiver
//! (`bulwark demo`) and the end-to-end tests' servers are this one (std only, no async
//! runtime). It only ever talks to clients on the same machine that bulwark started.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most of a request body kept: the demo's and the tests' clients send a few KiB, git
/// pushes through [`HttpServer`] in tests a few MiB; a larger `Content-Length` is cut here
/// rather than allocated.
const MAX_BODY: usize = 64 << 20;

/// A request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON (`null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering at all (a hanging endpoint).
    pub delay: Duration,
    /// Send the body one byte at a time with this pause (a trickling endpoint).
    pub trickle: Option<Duration>,
}

impl Response {
    pub fn status(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Vec::new(), delay: Duration::ZERO, trickle: None }
    }
    pub fn ok(body: &str) -> Self {
        Self::status(200).body(body)
    }
    #[must_use]
    pub fn body(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self
    }
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    #[must_use]
    pub fn trickle(mut self, pause: Duration) -> Self {
        self.trickle = Some(pause);
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running server; stops when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpServer {
    /// Starts a server on 127.0.0.1 (a free port) that answers with `handler`; panics when
    /// it cannot listen (for tests, see [`HttpServer::try_start`]).
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        Self::try_start(handler).expect("listen on 127.0.0.1")
    }

    /// Starts a server on 127.0.0.1 (a free port) that answers with `handler`.
    pub fn try_start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let handler = handler.clone();
                    let requests = requests.clone();
                    let stop = stop.clone();
                    std::thread::spawn(move || serve(stream, &*handler, &requests, &stop));
                }
            });
        }
        Ok(Self { addr, stop, requests })
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// A loopback address where nothing listens (connection refused).
pub fn refused_url(path: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    let addr = listener.local_addr().expect("a bound address");
    drop(listener);
    format!("http://{addr}{path}")
}

fn serve(stream: TcpStream, handler: &Handler, requests: &Mutex<Vec<Request>>, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut reader)
    } else {
        let len = header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0).min(MAX_BODY);
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        body
    };
    let request = Request { method, path, headers, body };
    requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(request.clone());
    let response = handler(&request);
    if !response.delay.is_zero() {
        let deadline = std::time::Instant::now() + response.delay;
        while std::time::Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.body.len()
    );
    for (k, v) in &response.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    match response.trickle {
        None => {
            let _ = out.write_all(&response.body);
        }
        Some(pause) => {
            for byte in &response.body {
                if stop.load(Ordering::SeqCst) || out.write_all(&[*byte]).is_err() {
                    return;
                }
                let _ = out.flush();
                std::thread::sleep(pause);
            }
        }
    }
    let _ = out.flush();
}

/// The reason phrase of a status line (clients read only the code).
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        s if s < 400 => "OK",
        _ => "Error",
    }
}

/// A `Transfer-Encoding: chunked` request body (git sends large pushes that way).
fn read_chunked(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            break;
        }
        let Ok(len) = usize::from_str_radix(size.trim().split(';').next().unwrap_or_default(), 16) else { break };
        if len == 0 {
            let mut trailer = String::new();
            let _ = reader.read_line(&mut trailer);
            break;
        }
        if len > MAX_BODY - body.len().min(MAX_BODY) {
            break;
        }
        let mut chunk = vec![0; len + 2];
        if reader.read_exact(&mut chunk).is_err() {
            break;
        }
        body.extend_from_slice(&chunk[..len]);
    }
    body
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn answers_with_the_handlers_status_and_records_the_request() {
        let server = HttpServer::start(|req| Response::status(503).body("down").header("X-Path", &req.path));
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.write_all(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("X-Path: /hook\r\n"), "{answer}");
        assert!(answer.ends_with("down"), "{answer}");
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].path.as_str(), seen[0].body.as_slice()),
            ("POST", "/hook", &b"hello"[..])
        );
    }

    #[test]
    fn a_huge_content_length_is_not_allocated() {
        let server = HttpServer::start(|req| Response::ok(&req.body.len().to_string()));
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.write_all(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\nabc").unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }
}
