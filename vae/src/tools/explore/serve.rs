//! The HTTP side of the explorer: a blocking HTTP/1.1 server on `std::net`, one thread per
//! connection, `httparse` reading each request head, and a handler (the explorer's
//! [`Explorer::answer`](super::Explorer::answer)) computing the reply.
//!
//! The server reads only request heads: a head larger than [`MAX_HEAD_BYTES`] gets 431, a head
//! that does not parse gets 400, and a request announcing a body gets 400 (405 for methods
//! other than GET/HEAD) before any of the body is read — the connection is then closed, so
//! an unread body is never taken for the next request; so do conflicting `Content-Length`
//! headers. A `Host` header naming another site gets 403 (a page elsewhere that rebinds its
//! DNS name to the loopback address cannot use the explorer). A connection idle for
//! [`IDLE_TIMEOUT`], or that takes longer than that to send one head, is closed. A panic
//! while answering becomes a 500 for that request, not a dead server.
//!
//! A connection that sends more than [`MAX_REQUESTS_PER_SECOND`] requests within one second
//! gets 429 for the next one and is closed: a page asks for one decoding at a time per picture
//! and a dragged slider moves at the screen's frame rate, tens of requests a second, while a
//! client pipelining thousands a second would keep a thread busy answering it, taking CPU from
//! the decoder that every other client waits on.
//!
//! At most [`MAX_CONNECTIONS`] connections are served at once. When all are open, a new one
//! closes the connection that has waited longest for its next request (a silent client or an
//! idle browser connection), so clients that send nothing cannot lock others out; only when
//! every connection is busy answering does a new one get 503. The accept loop blocks in
//! `accept` (a fresh connection is answered at once); a small thread wakes it on stop.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Reply;

/// Largest request head (request line and headers) read; larger ones get 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request; more get 431.
pub const MAX_HEADERS: usize = 64;
/// Most connections served at once (a few browser tabs open 6 each).
pub const MAX_CONNECTIONS: usize = 64;
/// Most requests one connection may send within one second; the next gets 429 and the
/// connection is closed.
pub const MAX_REQUESTS_PER_SECOND: usize = 500;
/// A connection that sends nothing for this long, or takes this long to send one head, is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the thread that wakes the accept loop looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How often connections waiting for a request look at the stop flag and at eviction.
    pub poll: Duration,
    /// The `Host` header values answered (`name:port`, compared without case); empty: any.
    /// A request without a `Host` header is answered (browsers always send one).
    pub allowed_hosts: Vec<String>,
    /// Most requests one connection may send within one second; the next gets 429 and the
    /// connection is closed. Default: `MAX_REQUESTS_PER_SECOND`, 500.
    pub max_requests_per_second: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            poll: Duration::from_millis(50),
            allowed_hosts: vec![],
            max_requests_per_second: MAX_REQUESTS_PER_SECOND,
        }
    }
}

/// The `Host` values a server listening on `addr` answers: the loopback names, and `host` as
/// the user typed it (with `--host`). Empty, meaning any, when it listens on every address
/// (0.0.0.0 or ::), whose names it cannot know.
pub fn allowed_hosts(host: &str, addr: SocketAddr) -> Vec<String> {
    if addr.ip().is_unspecified() {
        return vec![];
    }
    let port = addr.port();
    let bracketed = |h: &str| if h.contains(':') && !h.starts_with('[') { format!("[{h}]") } else { h.to_string() };
    let mut names: Vec<String> = ["127.0.0.1", "localhost", "[::1]"].map(String::from).to_vec();
    names.push(bracketed(host));
    names.push(bracketed(&addr.ip().to_string()));
    let mut hosts: Vec<String> = names.iter().map(|n| format!("{}:{port}", n.to_ascii_lowercase())).collect();
    if port == 80 {
        hosts.extend(names.iter().map(|n| n.to_ascii_lowercase()));
    }
    hosts.dedup();
    hosts
}

/// One open connection, as the accept loop sees it.
#[derive(Default)]
struct Slot {
    /// When it began waiting for its next request head; `None` while it answers one.
    waiting_since: Mutex<Option<Instant>>,
    /// Set when the server is full and this connection has waited longest: it closes if it
    /// is still waiting.
    evict: AtomicBool,
}

impl Slot {
    fn set_waiting(&self, since: Option<Instant>) {
        if let Ok(mut w) = self.waiting_since.lock() {
            *w = since;
        }
    }

    fn waiting_since(&self) -> Option<Instant> {
        self.waiting_since.lock().ok().and_then(|w| *w)
    }
}

/// The open connections.
#[derive(Default)]
struct Slots(Mutex<Vec<Arc<Slot>>>);

impl Slots {
    /// A slot for a new connection, or `None` when every connection is busy answering. When
    /// all [`MAX_CONNECTIONS`] are open, the one that has waited longest for a request is
    /// told to close; the new one is served alongside it until it has.
    fn open(&self) -> Option<Arc<Slot>> {
        let mut slots = self.0.lock().ok()?;
        let live = slots.iter().filter(|s| !s.evict.load(Ordering::SeqCst)).count();
        if live >= MAX_CONNECTIONS {
            // Evicted connections close within one poll; this bounds how many can be pending.
            if slots.len() >= 2 * MAX_CONNECTIONS {
                return None;
            }
            let oldest = slots
                .iter()
                .filter(|s| !s.evict.load(Ordering::SeqCst))
                .filter_map(|s| s.waiting_since().map(|t| (t, s)))
                .min_by_key(|(t, _)| *t)
                .map(|(_, s)| Arc::clone(s))?;
            oldest.evict.store(true, Ordering::SeqCst);
        }
        let slot = Arc::new(Slot::default());
        slot.set_waiting(Some(Instant::now()));
        slots.push(Arc::clone(&slot));
        Some(slot)
    }

    fn close(&self, slot: &Arc<Slot>) {
        if let Ok(mut slots) = self.0.lock() {
            slots.retain(|s| !Arc::ptr_eq(s, slot));
        }
    }
}

/// Answers connections on `listener` with `answer(method, url)` until `stop` is set (by
/// Ctrl-C), then returns once every connection has finished the request it was answering.
/// Errors only when the listener cannot be set up.
pub fn serve(
    listener: &TcpListener,
    answer: &(dyn Fn(&str, &str) -> Reply + Sync),
    stop: &AtomicBool,
    opts: &ServeOptions,
) -> std::io::Result<()> {
    listener.set_nonblocking(false)?;
    let wake_at = loopback_of(listener.local_addr()?);
    let slots = Slots::default();
    let refusing = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(STOP_CHECK);
            }
            // Wakes the accept below, which then sees the flag.
            let _ = TcpStream::connect_timeout(&wake_at, Duration::from_secs(1));
        });
        while !stop.load(Ordering::SeqCst) {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                // A connection that failed between the handshake and accept (reset by the
                // client), or no file descriptor left: nothing to answer, the server goes on.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Some(slot) = slots.open() else {
                // Refused on a thread of its own, so that a client that never reads cannot
                // hold up the accept loop; past MAX_CONNECTIONS refusals the socket is dropped.
                if refusing.fetch_add(1, Ordering::SeqCst) < MAX_CONNECTIONS {
                    let refusing = &refusing;
                    scope.spawn(move || {
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                        let _ =
                            write_reply(&stream, &Reply::error(503, "too many connections; try again"), false, true);
                        refusing.fetch_sub(1, Ordering::SeqCst);
                    });
                } else {
                    refusing.fetch_sub(1, Ordering::SeqCst);
                }
                continue;
            };
            let slots = &slots;
            scope.spawn(move || {
                let _ = connection(stream, answer, stop, &slot, opts);
                slots.close(&slot);
            });
        }
    });
    Ok(())
}

/// The address to connect to to reach a listener on `addr` (its loopback when it listens on
/// every address).
fn loopback_of(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// One request head, parsed: what the handler needs and what decides the connection.
struct Head {
    method: String,
    url: String,
    has_body: bool,
    keep_alive: bool,
    /// The `Host` header, when sent.
    host: Option<String>,
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
fn connection(
    stream: TcpStream,
    answer: &(dyn Fn(&str, &str) -> Reply + Sync),
    stop: &AtomicBool,
    slot: &Slot,
    opts: &ServeOptions,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(opts.poll.max(Duration::from_millis(10))))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut buffer: Vec<u8> = Vec::with_capacity(4096);
    // When this connection's requests of the last second arrived, oldest first.
    let mut last_second: VecDeque<Instant> = VecDeque::with_capacity(opts.max_requests_per_second.min(1024));
    loop {
        slot.set_waiting(Some(Instant::now()));
        let next =
            read_head(&stream, &mut buffer, &|| stop.load(Ordering::SeqCst) || slot.evict.load(Ordering::SeqCst))?;
        slot.set_waiting(None);
        match next {
            Next::Closed => return Ok(()),
            Next::Refuse(reply) => return write_reply(&stream, &reply, false, true),
            Next::Request(head) => {
                let now = Instant::now();
                while last_second.front().is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1)) {
                    last_second.pop_front();
                }
                if last_second.len() >= opts.max_requests_per_second {
                    let reason = format!(
                        "more than {} requests within one second on one connection",
                        opts.max_requests_per_second
                    );
                    return write_reply(&stream, &Reply::error(429, reason), false, true);
                }
                last_second.push_back(now);
                let head_only = head.method == "HEAD";
                let foreign_host = head.host.as_deref().filter(|h| {
                    !opts.allowed_hosts.is_empty()
                        && !opts.allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(h.trim()))
                });
                let reply = if let Some(host) = foreign_host {
                    Reply::error(
                        403,
                        format!(
                            "Host '{host}' is not this server's address (expected {})",
                            opts.allowed_hosts.join(", ")
                        ),
                    )
                } else if head.has_body && (head.method == "GET" || head.method == "HEAD") {
                    Reply::error(400, "a GET request carries no body")
                } else {
                    catch_unwind(AssertUnwindSafe(|| answer(&head.method, &head.url))).unwrap_or_else(|_| {
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
/// (bytes after it, a pipelined request, stay). Gives up when `give_up()` turns true.
fn read_head(mut stream: &TcpStream, buffer: &mut Vec<u8>, give_up: &dyn Fn() -> bool) -> std::io::Result<Next> {
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((next, len)) = parse_buffered_head(buffer) {
            buffer.drain(..len);
            return Ok(next);
        }
        if give_up() || started.elapsed() > IDLE_TIMEOUT {
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

/// The head at the start of `buffer`, parsed, and the bytes it took; `None` while it is
/// incomplete and still within [`MAX_HEAD_BYTES`].
fn parse_buffered_head(buffer: &[u8]) -> Option<(Next, usize)> {
    if buffer.is_empty() {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let refuse = |reply| Some((Next::Refuse(reply), buffer.len()));
    match request.parse(buffer) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => refuse(too_large()),
        Ok(httparse::Status::Complete(len)) => match head_of(&request) {
            Ok(head) => Some((Next::Request(head), len)),
            Err(reply) => Some((Next::Refuse(reply), len)),
        },
        Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD_BYTES => refuse(too_large()),
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => refuse(Reply::error(431, format!("more than {MAX_HEADERS} headers"))),
        Err(e) => refuse(Reply::error(400, format!("malformed request: {e}"))),
    }
}

/// What the server makes of `bytes` arriving first on a connection: the first request's
/// method and URL, or the reply that refuses it (and closes the connection); `None` while
/// the head is incomplete. The explorer's fuzz target (`vae::fuzz`) reaches the head parser
/// through this.
pub fn first_request(bytes: &[u8]) -> Option<Result<(String, String), Reply>> {
    parse_buffered_head(bytes).and_then(|(next, _)| match next {
        Next::Request(head) => Some(Ok((head.method, head.url))),
        Next::Refuse(reply) => Some(Err(reply)),
        Next::Closed => None,
    })
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
    let mut content_length: Option<u64> = None;
    for h in request.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("Content-Length")) {
        let v = String::from_utf8_lossy(h.value);
        let n =
            v.trim().parse::<u64>().map_err(|_| Reply::error(400, format!("Content-Length '{v}' is not a number")))?;
        // Two different lengths would let the body be cut where the client did not mean it.
        if content_length.is_some_and(|seen| seen != n) {
            return Err(Reply::error(400, "conflicting Content-Length headers"));
        }
        content_length = Some(n);
    }
    let has_body = content_length.is_some_and(|n| n > 0) || header("Transfer-Encoding").is_some();
    let connection = header("Connection").map(|v| v.to_ascii_lowercase()).unwrap_or_default();
    // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told to keep.
    let keep_alive = if version == 1 { !connection.contains("close") } else { connection.contains("keep-alive") };
    let host = header("Host").map(|h| h.into_owned());
    Ok(Head { method: method.to_string(), url: url.to_string(), has_body, keep_alive, host })
}

/// Reads and drops what the client still sends (an unread body), for a moment: closing a
/// socket with unread input resets it, and the client could lose the reply written just before.
fn drain_briefly(mut stream: &TcpStream) {
    // Its own read timeout: a stream fresh from accept has none, and a client that sends
    // nothing would block the read for as long as it keeps the socket open.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
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
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes `reply` with headers that keep the page to this server's own assets.
fn write_reply(mut stream: &TcpStream, reply: &Reply, head_only: bool, close: bool) -> std::io::Result<()> {
    // A 204 (a superseded decode) has no body, and HTTP forbids it to announce one.
    let body_headers = if reply.status == 204 {
        String::new()
    } else {
        format!("Content-Type: {}\r\nContent-Length: {}\r\n", reply.content_type, reply.body.len())
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n{body_headers}Cache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
         Content-Security-Policy: default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'\r\n",
        reply.status,
        reason(reply.status),
    );
    if let Some(ms) = reply.decode_ms {
        head += &format!("X-Decode-Ms: {ms:.2}\r\n");
    }
    if reply.status == 405 {
        head += "Allow: GET, HEAD\r\n";
    }
    head += if close { "Connection: close\r\n\r\n" } else { "Connection: keep-alive\r\n\r\n" };
    let mut bytes = head.into_bytes();
    if !head_only && reply.status != 204 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `answer` with `opts` on a free loopback port while `body` runs, then stops.
    fn with_server(opts: ServeOptions, body: impl FnOnce(SocketAddr)) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = AtomicBool::new(false);
        let answer = |_: &str, url: &str| Reply::error(404, url.to_string());
        std::thread::scope(|scope| {
            let server = scope.spawn(|| serve(&listener, &answer, &stop, &opts));
            body(addr);
            stop.store(true, Ordering::SeqCst);
            server.join().unwrap().unwrap();
        });
    }

    fn get(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn a_fresh_connection_is_answered_without_waiting_for_a_poll() {
        // With a 10 s poll, an accept loop that sleeps between polls leaves a fresh
        // connection waiting for seconds.
        with_server(ServeOptions { poll: Duration::from_secs(10), ..ServeOptions::default() }, |addr| {
            let started = Instant::now();
            assert!(get(addr).starts_with("HTTP/1.1 404"));
            assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());
        });
    }

    #[test]
    fn a_connection_sending_too_many_requests_a_second_gets_429_and_is_closed_while_another_is_answered() {
        let opts = ServeOptions { max_requests_per_second: 20, ..ServeOptions::default() };
        with_server(opts, |addr| {
            let mut other = TcpStream::connect(addr).unwrap();
            other.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut flood = TcpStream::connect(addr).unwrap();
            flood.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let _ = flood.write_all("GET /x HTTP/1.1\r\n\r\n".repeat(100).as_bytes());
            let mut answers = vec![];
            // Ends when the server closes the connection (a read timeout would fail below).
            let _ = flood.read_to_end(&mut answers);
            let answers = String::from_utf8_lossy(&answers);
            assert_eq!(answers.matches("HTTP/1.1 404").count(), 20, "the first 20 are answered");
            assert_eq!(answers.matches("HTTP/1.1 ").count(), 21, "then one more answer, and the end");
            assert!(answers.contains("HTTP/1.1 429 Too Many Requests"), "{answers}");
            other.write_all(b"GET /y HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = String::new();
            other.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 404"), "the other connection is answered: {answer}");
        });
    }

    #[test]
    fn allowed_hosts_are_the_loopback_names_and_the_given_host_with_the_port() {
        let hosts = allowed_hosts("MyBox.local", "127.0.0.1:8123".parse().unwrap());
        for h in ["127.0.0.1:8123", "localhost:8123", "[::1]:8123", "mybox.local:8123"] {
            assert!(hosts.iter().any(|a| a == h), "{h} missing from {hosts:?}");
        }
        assert!(!hosts.iter().any(|a| a.starts_with("localhost") && !a.ends_with(":8123")), "{hosts:?}");
        assert!(allowed_hosts("0.0.0.0", "0.0.0.0:8123".parse().unwrap()).is_empty(), "every address: any host");
        let v6 = allowed_hosts("::1", "[::1]:9000".parse().unwrap());
        assert!(v6.iter().any(|a| a == "[::1]:9000"), "{v6:?}");
    }

    #[test]
    fn when_every_connection_is_busy_a_new_one_gets_503() {
        let slots = Slots::default();
        let held: Vec<Arc<Slot>> = (0..MAX_CONNECTIONS).map(|_| slots.open().unwrap()).collect();
        // All waiting: the oldest is evicted to make room.
        let extra = slots.open().unwrap();
        assert!(held[0].evict.load(Ordering::SeqCst) && !held[1].evict.load(Ordering::SeqCst));
        slots.close(&held[0]);
        // All answering: no room.
        for slot in held.iter().skip(1).chain([&extra]) {
            slot.set_waiting(None);
        }
        assert!(slots.open().is_none());
    }
}
