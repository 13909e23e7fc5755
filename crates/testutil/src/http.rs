//! Loopback HTTP servers for health checks and webhook receivers: real sockets on
//! 127.0.0.1, a handler per request, every request recorded.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
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
    /// Starts a server on 127.0.0.1 (a free port) that answers with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
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
        Self { addr, stop, requests }
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
        self.requests.lock().unwrap().clone()
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
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
        let len = header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        body
    };
    let request = Request { method, path, headers, body };
    requests.lock().unwrap().push(request.clone());
    let response = handler(&request);
    if !response.delay.is_zero() {
        let deadline = std::time::Instant::now() + response.delay;
        while std::time::Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut out = stream;
    let mut head =
        format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n", response.status, response.body.len());
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
        let mut chunk = vec![0; len + 2];
        if reader.read_exact(&mut chunk).is_err() {
            break;
        }
        body.extend_from_slice(&chunk[..len]);
    }
    body
}

/// Answers `req` as a smart-HTTP git server for the bare repositories under `root`,
/// through `git http-backend` (CGI), pushes allowed (as user `bot`). For a server
/// handler: `HttpServer::start(move |req| git_http_backend(&root, req))`.
pub fn git_http_backend(root: &std::path::Path, req: &Request) -> Response {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let mut cmd = std::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "bot")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = req.header(header) {
            cmd.env(var, value);
        }
    }
    let Ok(mut child) = cmd.spawn() else { return Response::status(500).body("cannot run git http-backend") };
    if let Some(mut stdin) = child.stdin.take() {
        let body = req.body.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }
    let Ok(out) = child.wait_with_output() else { return Response::status(500) };
    // CGI output: headers (`Status:` among them), a blank line, the body.
    let text = out.stdout;
    let split = text.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let split = split.or_else(|| text.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else { return Response::status(500).body("bad CGI output") };
    let mut response = Response::status(200);
    for line in String::from_utf8_lossy(&text[..at]).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if name.eq_ignore_ascii_case("status") {
            response.status = value.trim().split(' ').next().and_then(|s| s.parse().ok()).unwrap_or(500);
        } else {
            response = response.header(name.trim(), value.trim());
        }
    }
    response.body = text[at + sep..].to_vec();
    response
}

/// A loopback webhook receiver that keeps the JSON body of every delivery it accepts; it
/// can be taken down (answering 503, keeping nothing) and brought back.
pub struct Receiver {
    server: HttpServer,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    /// Starts a receiver that is up.
    pub fn start() -> Self {
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_up, kept) = (up.clone(), accepted.clone());
        let server = HttpServer::start(move |req| {
            if is_up.load(std::sync::atomic::Ordering::SeqCst) {
                kept.lock().unwrap().push(req.json());
                Response::ok("")
            } else {
                Response::status(503)
            }
        });
        Self { server, up, accepted }
    }

    /// Its URL for `path`.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Takes it down (`false`: deliveries get 503) or brings it back.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every request it got, accepted or not.
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// The bodies of the deliveries accepted, in order.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.accepted.lock().unwrap().clone()
    }

    /// The bodies accepted whose `kind` is `kind`.
    pub fn accepted_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.accepted().into_iter().filter(|body| body["kind"] == kind).collect()
    }
}
