//! The HTTP side of the explorer: a blocking HTTP/1.1 server on `std::net`, one thread per
//! connection (at most [`MAX_CONNECTIONS`]), `httparse` reading each request head, and
//! [`Explorer::answer`] computing the reply.
//!
//! The server reads only request heads: a head larger than [`MAX_HEAD_BYTES`] gets 431, a head
//! that does not parse gets 400, and a request announcing a body gets 400 (405 for methods
//! other than GET/HEAD) before any of the body is read — the connection is then closed, so
//! an unread body is never taken for the next request. A connection idle for
//! [`IDLE_TIMEOUT`], or that takes longer than that to send one head, is closed. A panic
//! while answering becomes a 500 for that request, not a dead server.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Explorer, Reply};

/// Largest request head (request line and headers) read; larger ones get 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request; more get 431.
pub const MAX_HEADERS: usize = 64;
/// Most connections served at once (a few browser tabs open 6 each); more get 503.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection that sends nothing for this long, or takes this long to send one head, is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How often the accept loop and idle connections look at the stop flag.
    pub poll: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { poll: Duration::from_millis(50) }
    }
}

/// Answers connections on `listener` until `stop` is set (by Ctrl-C), then returns once every
/// connection has finished the request it was answering. Errors only when the listener
/// cannot be polled.
pub fn serve(
    listener: &TcpListener,
    explorer: &Explorer,
    stop: &AtomicBool,
    opts: &ServeOptions,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let open = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        while !stop.load(Ordering::SeqCst) {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(opts.poll);
                    continue;
                }
                // A connection that failed between the handshake and accept (reset by the
                // client): nothing to answer, the server goes on.
                Err(_) => continue,
            };
            if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                let _ = write_reply(&stream, &Reply::error(503, "too many connections; try again"), false, true);
                continue;
            }
            open.fetch_add(1, Ordering::SeqCst);
            let open = &open;
            scope.spawn(move || {
                let _ = connection(stream, explorer, stop, opts);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(())
}

/// One request head, parsed: what [`Explorer::answer`] needs and what decides the connection.
struct Head {
    method: String,
    url: String,
    has_body: bool,
    keep_alive: bool,
}

/// What reading the next head gave.
enum Next {
    Request(Head),
    /// The client is done (closed, idle too long, or the server is stopping).
    Closed,
    /// A head the server will not answer normally: reply with this and close.
    Refuse(Reply),
}

/// Serves the requests of one connection, in order, until it closes.
fn connection(stream: TcpStream, explorer: &Explorer, stop: &AtomicBool, opts: &ServeOptions) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(opts.poll.max(Duration::from_millis(10))))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut buffer: Vec<u8> = Vec::with_capacity(4096);
    loop {
        match read_head(&stream, &mut buffer, stop)? {
            Next::Closed => return Ok(()),
            Next::Refuse(reply) => return write_reply(&stream, &reply, false, true),
            Next::Request(head) => {
                let head_only = head.method == "HEAD";
                let reply = if head.has_body && (head.method == "GET" || head.method == "HEAD") {
                    Reply::error(400, "a GET request carries no body")
                } else {
                    catch_unwind(AssertUnwindSafe(|| explorer.answer(&head.method, &head.url))).unwrap_or_else(|_| {
                        Reply::error(500, "internal error while answering (see the server's output)")
                    })
                };
                // A body is never read: close rather than take it for the next request.
                let close = head.has_body || !head.keep_alive || stop.load(Ordering::SeqCst);
                write_reply(&stream, &reply, head_only, close)?;
                if close {
                    return Ok(());
                }
            }
        }
    }
}

/// Reads until `buffer` holds one complete head, parses it and removes it from `buffer`
/// (bytes after it, a pipelined request, stay).
fn read_head(mut stream: &TcpStream, buffer: &mut Vec<u8>, stop: &AtomicBool) -> std::io::Result<Next> {
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        if !buffer.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(buffer) {
                Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => {
                    return Ok(Next::Refuse(too_large()));
                }
                Ok(httparse::Status::Complete(len)) => {
                    let head = head_of(&request);
                    buffer.drain(..len);
                    return Ok(match head {
                        Ok(head) => Next::Request(head),
                        Err(reply) => Next::Refuse(reply),
                    });
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Ok(Next::Refuse(Reply::error(431, format!("more than {MAX_HEADERS} headers"))));
                }
                Err(e) => return Ok(Next::Refuse(Reply::error(400, format!("malformed request: {e}")))),
            }
            if buffer.len() > MAX_HEAD_BYTES {
                return Ok(Next::Refuse(too_large()));
            }
        }
        if stop.load(Ordering::SeqCst) || started.elapsed() > IDLE_TIMEOUT {
            return Ok(Next::Closed);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(Next::Closed),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
}

fn too_large() -> Reply {
    Reply::error(
        431,
        format!("the request head exceeds {MAX_HEAD_BYTES} bytes (a URL is at most {} bytes)", super::MAX_URL_BYTES),
    )
}

/// The parts of a parsed head the server uses, or the refusal of a head it cannot serve.
fn head_of(request: &httparse::Request) -> Result<Head, Reply> {
    let (Some(method), Some(url), Some(version)) = (request.method, request.path, request.version) else {
        return Err(Reply::error(400, "malformed request line"));
    };
    let header = |name: &str| {
        request.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| String::from_utf8_lossy(h.value))
    };
    let content_length = match header("Content-Length") {
        Some(v) => Some(
            v.trim().parse::<u64>().map_err(|_| Reply::error(400, format!("Content-Length '{v}' is not a number")))?,
        ),
        None => None,
    };
    let has_body = content_length.is_some_and(|n| n > 0) || header("Transfer-Encoding").is_some();
    let connection = header("Connection").map(|v| v.to_ascii_lowercase()).unwrap_or_default();
    // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told to keep.
    let keep_alive = if version == 1 { !connection.contains("close") } else { connection.contains("keep-alive") };
    Ok(Head { method: method.to_string(), url: url.to_string(), has_body, keep_alive })
}

/// Reads and drops what the client still sends (an unread body), for a moment: closing a
/// socket with unread input resets it, and the client could lose the reply written just before.
fn drain_briefly(mut stream: &TcpStream) {
    let until = Instant::now() + Duration::from_millis(200);
    let mut chunk = [0u8; 8192];
    let mut left = 1 << 20;
    while left > 0 && Instant::now() < until {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => left -= n.min(left),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes `reply` with headers that keep the page to this server's own assets.
fn write_reply(mut stream: &TcpStream, reply: &Reply, head_only: bool, close: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
         Content-Security-Policy: default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    );
    if let Some(ms) = reply.decode_ms {
        head += &format!("X-Decode-Ms: {ms:.2}\r\n");
    }
    if reply.status == 405 {
        head += "Allow: GET, HEAD\r\n";
    }
    head += if close { "Connection: close\r\n\r\n" } else { "Connection: keep-alive\r\n\r\n" };
    let mut bytes = head.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&reply.body);
    }
    let written = stream.write_all(&bytes).and_then(|()| stream.flush());
    if close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
        drain_briefly(stream);
    }
    // A client that went away before its answer is not the server's error.
    match written {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}
