//! The demo's own loopback HTTP servers: the service's health endpoint and the webhook
//! receiver that catches the notification. Small on purpose (std only, one connection at a
//! time, `Connection: close`): they only ever talk to the demo's own children.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The most the demo reads of a request (head and body); its clients send a few KiB.
const MAX_REQUEST: usize = 1 << 20;

/// A request as the handlers see it.
pub(super) struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// A listener on `127.0.0.1:<ephemeral>` served by one thread; stopped and joined on drop.
pub(super) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving: `handler` returns the status and body of each answer.
    pub(super) fn start<F>(handler: F) -> io::Result<Self>
    where
        F: Fn(&Request) -> (u16, String) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    // A client that misbehaves only loses its own answer.
                    let _ = serve(stream, &handler);
                }
            }
        });
        Ok(Self { addr, stop, thread: Some(thread) })
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve<F>(mut stream: TcpStream, handler: &F) -> io::Result<()>
where
    F: Fn(&Request) -> (u16, String),
{
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 || buf.len() > MAX_REQUEST {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let (status, text) = handler(&Request { method, path, body });
    let reason = if status < 400 { "OK" } else { "Error" };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(answer.as_bytes())?;
    stream.flush()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_the_handlers_status_and_sees_the_body() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = Arc::clone(&seen);
        let server = Server::start(move |req| {
            kept.lock().unwrap().push((req.method.clone(), req.path.clone(), req.body.clone()));
            (503, "down".to_owned())
        })
        .unwrap();
        let addr = server.url("").trim_start_matches("http://").to_owned();
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.write_all(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.ends_with("down"), "{answer}");
        drop(server);
        assert_eq!(seen.lock().unwrap().as_slice(), &[("POST".to_owned(), "/hook".to_owned(), b"hello".to_vec())]);
    }
}
