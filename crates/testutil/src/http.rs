//! Loopback HTTP servers for the tests: [`bulwark_loopback`]'s server (the demo's too), a
//! webhook receiver, and a smart-HTTP git server.

use std::io::Write as _;

pub use bulwark_loopback::{HttpServer, Request, Response, refused_url};

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
