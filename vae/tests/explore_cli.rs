//! The `explore` binary as a user (and a hostile client) meets it: it serves its page and the
//! model's answers, refuses paths that try to leave it, survives malformed and oversized
//! requests, answers several clients at once, stops on Ctrl-C, and works in a real browser.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A one-epoch dense run on 300 dSprites images at 16×16 (z = 4), trained once per test binary.
/// Tests share it, and a static is never dropped, so it lives at one fixed path in cargo's
/// scratch space under `target/` (replaced on each run) rather than in a `TempDir`.
fn tiny_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explore-cli-run");
        let _ = std::fs::remove_dir_all(&dir);
        let out = common::command(env!("CARGO_BIN_EXE_train"))
            .args(["--arch", "dense", "--max-images", "300", "--image-size", "16", "--batch-size", "32"])
            .args(["--z-dim", "4", "--threads", "2", "--epochs", "1", "--run-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

/// A running `explore`, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<std::process::ChildStdout>,
    /// What it printed up to its URL.
    printed: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Server::try_start(extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `explore` on the tiny run; the error is what it printed when it exited instead.
    fn try_start(extra: &[&str]) -> Result<Server, String> {
        Server::try_start_on(tiny_run(), extra)
    }

    fn try_start_on(run: &Path, extra: &[&str]) -> Result<Server, String> {
        let mut child = common::command(env!("CARGO_BIN_EXE_explore"))
            .arg("--run")
            .arg(run)
            .args(["--threads", "2"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let mut printed = String::new();
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                let _ = child.wait();
                return Err(format!("explore exited before printing its URL:\n{printed}\n{err}"));
            }
            printed += &line;
            if let Some(rest) = line.split("http://").nth(1) {
                break rest.split('/').next().unwrap().parse().unwrap();
            }
        };
        Ok(Server { child, addr, stdout, printed })
    }

    /// Sends `bytes` on a new connection and reads until the server closes it.
    fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // The server may close before reading everything (a refused body); that is its right.
        let _ = s.write_all(bytes);
        let mut out = vec![];
        let _ = s.read_to_end(&mut out);
        out
    }

    fn get(&self, path: &str) -> Response {
        self.get_as(path, &self.addr.to_string())
    }

    /// GET `path` with the given `Host` header.
    fn get_as(&self, path: &str, host: &str) -> Response {
        Response::parse(
            &self.raw(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn parse(bytes: &[u8]) -> Response {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
            panic!("no complete response head in {:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]))
        });
        let head = String::from_utf8_lossy(&bytes[..end]).to_string();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Response { status, head, body: bytes[end + 4..].to_vec() }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    fn image(&self) -> image::GrayImage {
        assert_eq!(self.status, 200, "{}", self.text());
        assert!(self.head.contains("Content-Type: image/png"), "{}", self.head);
        image::load_from_memory(&self.body).unwrap().to_luma8()
    }
}

#[test]
fn the_page_and_its_script_come_from_the_binary_and_info_describes_the_run() {
    let server = Server::start(&[]);
    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<script src=\"/explore.js\""), "{}", page.text());
    assert_eq!(server.get("/explore.js").status, 200);
    assert_eq!(server.get("/explore.css").status, 200);
    let info: serde_json::Value = serde_json::from_slice(&server.get("/api/info").body).unwrap();
    assert_eq!(info["z_dim"], 4);
    assert_eq!(info["image"], serde_json::json!([1, 16, 16]));
    let kl: Vec<f64> = info["dims"].as_array().unwrap().iter().map(|d| d["kl"].as_f64().unwrap()).collect();
    assert_eq!(kl.len(), 4);
    assert!(kl.windows(2).all(|w| w[0] >= w[1]), "sliders are ordered by KL, largest first: {kl:?}");
    assert_eq!(info["metrics"]["rows"].as_array().unwrap().len(), 1, "one epoch in metrics.csv");
}

#[test]
fn a_decoded_code_is_an_image_of_the_run_size_that_changes_with_the_code() {
    let server = Server::start(&[]);
    let a = server.get("/api/decode.png?z=0,0,0,0");
    assert!(a.head.contains("X-Decode-Ms: "), "{}", a.head);
    let (a, b) = (a.image(), server.get("/api/decode.png?z=3,-3,3,-3").image());
    assert_eq!(a.dimensions(), (16, 16));
    assert_ne!(a.as_raw(), b.as_raw(), "a different code decodes to a different image");
    assert_eq!(server.get("/api/recon.png?i=2").image().dimensions(), (16, 16));
    assert_eq!(server.get("/api/test.png?i=2").image().dimensions(), (16, 16));
    assert!(server.get("/api/mix.png?a=0&b=1&w=0.6&negate_b=1").image().width() == 16);
    let code: serde_json::Value = serde_json::from_slice(&server.get("/api/code?i=1").body).unwrap();
    assert_eq!(code["mu"].as_array().unwrap().len(), 4);
    // 16 samples, 8 to a row with 2-pixel padding: 8·16 + 9·2 wide, 2·16 + 3·2 high.
    assert_eq!(server.get("/api/samples.png?seed=5&n=16").image().dimensions(), (146, 38));
}

#[test]
fn dot_dot_and_percent_encoded_traversal_paths_get_4xx_and_never_a_file() {
    let server = Server::start(&[]);
    for path in [
        "/../config.json",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2Fconfig.json",
        "/..%2f..%2fetc%2fpasswd",
        "/%252e%252e/config.json",
        "/api/../config.json",
        "/..\\..\\config.json",
        "/explore.js/../config.json",
        "/config.json",
        "/best.safetensors",
        "//etc/passwd",
        "/api/test.png/../../metrics.csv?i=0",
    ] {
        let r = server.get(path);
        assert!((400..500).contains(&r.status), "{path}: status {} {}", r.status, r.text());
        assert!(!r.text().contains("\"z_dim\"") && !r.text().contains("root:"), "{path} leaked a file: {}", r.text());
    }
    assert_eq!(server.get("/api/info").status, 200, "the server still answers");
}

#[test]
fn malformed_requests_get_400_and_the_server_keeps_answering() {
    let server = Server::start(&[]);
    for bytes in [
        &b"GARBAGE\r\n\r\n"[..],
        b"\xff\xfe\x00\x01 / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /api/info HTTP/1.1\r\nContent-Length: many\r\n\r\n",
        b"GET /api/info HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /api/info HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /api/info HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // Two lengths: the first would make the rest a second, smuggled request.
        b"GET /api/info HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 25\r\n\r\nGET /api/code?i=0 HTTP/1.1\r\n\r\n",
    ] {
        let r = Response::parse(&server.raw(bytes));
        assert_eq!(r.status, 400, "{:?}: {}", String::from_utf8_lossy(bytes), r.text());
    }
    assert_eq!(server.get("/api/info").status, 200);
}

#[test]
fn oversized_requests_get_4xx_without_the_server_reading_or_allocating_them() {
    let server = Server::start(&[]);
    let long_url = format!("GET /api/decode.png?z={} HTTP/1.1\r\n\r\n", "0,".repeat(5000));
    assert_eq!(Response::parse(&server.raw(long_url.as_bytes())).status, 414);
    let long_header = format!("GET / HTTP/1.1\r\nX-Padding: {}\r\n\r\n", "y".repeat(40_000));
    assert_eq!(Response::parse(&server.raw(long_header.as_bytes())).status, 431);
    let many: String = (0..200).map(|i| format!("X-{i}: y\r\n")).collect();
    assert_eq!(Response::parse(&server.raw(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes())).status, 431);
    // A body announced as a terabyte: refused at once (a server that reserved the space for
    // it would abort).
    let huge = b"GET /api/info HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\nabc";
    assert_eq!(Response::parse(&server.raw(huge)).status, 400);
    let post = b"POST /api/info HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\nabc";
    assert_eq!(Response::parse(&server.raw(post)).status, 405);
    // A head that never ends is cut off at the limit, not buffered forever.
    let endless = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100_000));
    assert_eq!(Response::parse(&server.raw(endless.as_bytes())).status, 431);
    assert_eq!(server.get("/api/info").status, 200, "the server still answers");
}

/// The code of test image `i` as the explorer reports it, formatted for `/api/decode.png?z=`.
fn code_of(server: &Server, i: usize, sign: f64) -> String {
    let code: serde_json::Value = serde_json::from_slice(&server.get(&format!("/api/code?i={i}")).body).unwrap();
    code["mu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| format!("{}", sign * v.as_f64().unwrap()))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn mixing_weighs_image_a_by_w_and_negates_image_b_whole() {
    // The STL-10 paper's mix is w·μ_a + (1 − w)·(±μ_b): at w = 1 it is image a's code, at
    // w = 0 image b's, negated in every dimension when negate_b=1.
    let server = Server::start(&[]);
    let decode = |z: String| server.get(&format!("/api/decode.png?z={z}")).image().into_raw();
    let mix = |q: &str| server.get(&format!("/api/mix.png?a=0&b=1&{q}")).image().into_raw();
    assert_eq!(mix("w=1&negate_b=1"), decode(code_of(&server, 0, 1.0)), "w = 1 is all image a");
    assert_eq!(mix("w=0"), decode(code_of(&server, 1, 1.0)), "w = 0 is all image b");
    assert_eq!(mix("w=0&negate_b=1"), decode(code_of(&server, 1, -1.0)), "negate_b negates b's whole code");
    assert_ne!(mix("w=0&negate_b=1"), mix("w=0"));
}

#[test]
fn a_traversal_has_one_row_per_listed_dimension_that_sweeps_only_it() {
    let server = Server::start(&[]);
    let r = server.get("/api/traverse.png?z=0.5,-1,0,2&dims=2,0&steps=5");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.head.contains("X-Decode-Ms: "), "{}", r.head);
    // 2 rows of 5 decodings of 16×16 with 1-pixel padding: 5·16 + 6 wide, 2·16 + 3 high.
    let grid = r.image();
    assert_eq!(grid.dimensions(), (86, 35));
    // Row 0's first cell is the code with z_2 at −3, row 1's last the code with z_0 at +3.
    let cell = |row: u32, col: u32| {
        let (x0, y0) = (1 + col * 17, 1 + row * 17);
        (0..16)
            .flat_map(|y| (0..16).map(move |x| (x, y)))
            .map(|(x, y)| grid.get_pixel(x0 + x, y0 + y)[0])
            .collect::<Vec<u8>>()
    };
    let decode = |z: &str| server.get(&format!("/api/decode.png?z={z}")).image().into_raw();
    assert_eq!(cell(0, 0), decode("0.5,-1,-3,2"));
    assert_eq!(cell(1, 4), decode("3,-1,0,2"));
}

#[test]
fn the_page_offers_every_kept_test_image_a_page_at_a_time() {
    let server = Server::start(&["--grid", "8"]);
    let info: serde_json::Value = serde_json::from_slice(&server.get("/api/info").body).unwrap();
    assert_eq!(info["grid"], 8, "images per page");
    let n = info["test_images"].as_u64().unwrap();
    assert!(n > 8, "more test images than one page: {n}");
    assert_eq!(server.get(&format!("/api/test.png?i={}", n - 1)).status, 200, "the last test image");
    assert_eq!(server.get(&format!("/api/code?i={}", n - 1)).status, 200);
    assert_eq!(server.get(&format!("/api/test.png?i={n}")).status, 400);
}

#[test]
fn bad_parameters_get_400_naming_the_parameter() {
    let server = Server::start(&[]);
    for (path, expect) in [
        ("/api/decode.png?z=0,0,0", "expected 4"),
        ("/api/decode.png?z=nan,0,0,0", "finite"),
        ("/api/decode.png?z=1e30,0,0,0", "finite"),
        ("/api/decode.png?z=0,0,x,0", "'x'"),
        ("/api/decode.png?z=0,,0,0", "item 2 is empty"),
        ("/api/decode.png?z=0,0,0,0,", "item 5 is empty"),
        ("/api/decode.png", "missing parameter 'z'"),
        ("/api/decode.png?z=0,0,0,0&z=1,1,1,1", "twice"),
        ("/api/decode.png?z=0,0,0,0&zz=1", "unknown parameter 'zz'"),
        ("/api/samples.png?seed=1&n=0", "n=0"),
        ("/api/samples.png?seed=1&n=100000", "n=100000"),
        ("/api/samples.png?seed=-1&n=4", "seed=-1"),
        ("/api/code?i=999", "i=999"),
        ("/api/code?i=99999999999999999999999", "i="),
        ("/api/mix.png?a=0&b=1&w=0.5&negate_b=2", "negate_b=2"),
        ("/api/mix.png?a=0&b=1&w=0.5&flip=1", "unknown parameter 'flip'"),
        ("/api/mix.png?a=0&b=1&w=50", "w=50"),
        ("/api/traverse.png?z=0,0,0,0&dims=4&steps=5", "4 is not a latent dimension"),
        ("/api/traverse.png?z=0,0,0,0&dims=1,1&steps=5", "1 is listed twice"),
        ("/api/traverse.png?z=0,0,0,0&dims=1&steps=1", "steps=1"),
        ("/api/traverse.png?z=0,0,0,0&dims=1&steps=99", "steps=99"),
        ("/api/traverse.png?z=0,0,0&dims=1&steps=5", "expected 4"),
        ("/api/traverse.png?z=0,0,0,0&steps=5", "missing parameter 'dims'"),
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.text().contains(expect), "{path}: {}", r.text());
    }
    assert_eq!(server.get("/nothing/here").status, 404);
    let r = Response::parse(&server.raw(b"DELETE /api/info HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 405);
}

#[test]
fn concurrent_requests_from_several_threads_all_succeed_with_the_same_answers() {
    let server = Server::start(&[]);
    let reference = server.get("/api/decode.png?z=0.5,-1,2,0.25").body;
    let samples = server.get("/api/samples.png?seed=3&n=8").body;
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (server, reference, samples) = (&server, &reference, &samples);
            scope.spawn(move || {
                for k in 0..12 {
                    match (t + k) % 4 {
                        0 => assert_eq!(&server.get("/api/decode.png?z=0.5,-1,2,0.25").body, reference),
                        1 => assert_eq!(&server.get("/api/samples.png?seed=3&n=8").body, samples),
                        2 => assert_eq!(server.get("/api/info").status, 200),
                        _ => assert_eq!(server.get(&format!("/api/recon.png?i={}", k % 5)).status, 200),
                    }
                }
            });
        }
    });
}

#[test]
fn a_decode_may_name_its_client_and_a_malformed_client_id_gets_400() {
    let server = Server::start(&[]);
    let named = server.get("/api/decode.png?z=0.5,-1,2,0.25&client=page-1_a");
    assert_eq!(named.image().into_raw(), server.get("/api/decode.png?z=0.5,-1,2,0.25").image().into_raw());
    for id in ["", "a%20b", "a/b", &"x".repeat(65)] {
        let r = server.get(&format!("/api/decode.png?z=0,0,0,0&client={id}"));
        assert_eq!(r.status, 400, "client={id}: {}", r.text());
        assert!(r.text().contains("client"), "{}", r.text());
    }
}

/// Requests of one client sent together on several connections: those still queued when a
/// newer one arrives are answered 204 without a body, the others with their image, and each
/// connection goes on serving. Which ones are superseded depends on timing; that the newest
/// is decoded and an older waiting one is not is `queue.rs`'s unit test.
#[test]
fn superseded_decodes_are_answered_204_without_a_body_and_the_connection_goes_on() {
    let server = Server::start(&[]);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let askers: Vec<_> = (0..12)
            .map(|k| {
                let server = &server;
                scope.spawn(move || {
                    let mut s = TcpStream::connect(server.addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let z = format!("{},0,0,0", k as f32 * 0.25);
                    s.write_all(format!("GET /api/decode.png?z={z}&client=same HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
                    s.write_all(b"GET /api/code?i=0 HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
                    let mut all = vec![];
                    s.read_to_end(&mut all).unwrap();
                    let first = Response::parse(&all);
                    let length = match first.status {
                        204 => {
                            assert!(!first.head.contains("Content-Length"), "{}", first.head);
                            0
                        }
                        200 => {
                            let len = first.head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap();
                            len.parse().unwrap()
                        }
                        other => panic!("status {other}: {}", first.text()),
                    };
                    let second = Response::parse(&first.body[length..]);
                    assert_eq!(second.status, 200, "the connection answers its next request");
                    first.status
                })
            })
            .collect();
        askers.into_iter().map(|a| a.join().unwrap()).collect()
    });
    assert!(statuses.contains(&200), "{statuses:?}");
}

/// A client pipelining requests by the thousand is cut off (429, then the connection closes)
/// at the per-connection rate limit, and a kept-alive connection opened before it is still
/// answered.
#[test]
fn a_connection_pipelining_thousands_of_requests_is_cut_off_while_another_is_answered() {
    let server = Server::start(&[]);
    let mut other = TcpStream::connect(server.addr).unwrap();
    other.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let answers = server.raw("GET /api/code?i=0 HTTP/1.1\r\n\r\n".repeat(3000).as_bytes());
    let answers = String::from_utf8_lossy(&answers);
    let answered = answers.matches("HTTP/1.1 200").count();
    assert!(answers.contains("HTTP/1.1 429 Too Many Requests"), "not cut off after {answered} answers");
    assert!(answered < 3000, "{answered} answered");
    other.write_all(b"GET /api/info HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = vec![];
    other.read_to_end(&mut answer).unwrap();
    assert_eq!(Response::parse(&answer).status, 200);
}

#[test]
fn a_kept_alive_connection_answers_pipelined_requests_in_order() {
    let server = Server::start(&[]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /api/code?i=0 HTTP/1.1\r\n\r\nGET /nothing HTTP/1.1\r\n\r\nGET /api/code?i=1 HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = vec![];
    s.read_to_end(&mut all).unwrap();
    let mut statuses = vec![];
    let mut rest = &all[..];
    while !rest.is_empty() {
        let r = Response::parse(rest);
        let len: usize = r.head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
        let head_len = rest.len() - r.body.len();
        statuses.push((r.status, String::from_utf8_lossy(&r.body[..len]).to_string()));
        rest = &rest[head_len + len..];
    }
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().map(|s| s.0).collect::<Vec<_>>(), [200, 404, 200]);
    assert!(statuses[0].1.contains("\"i\":0") && statuses[2].1.contains("\"i\":1"), "{statuses:?}");
}

#[test]
fn ctrl_c_stops_the_server_cleanly() {
    let mut server = Server::start(&[]);
    assert_eq!(server.get("/api/info").status, 200);
    // An idle kept-alive connection (a browser tab) must not hold the server open.
    let idle = TcpStream::connect(server.addr).unwrap();
    let ok = Command::new("kill").args(["-INT", &server.child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "explore still running 10 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(idle);
    assert!(status.success(), "exit status {status:?}");
    let mut rest = String::new();
    server.stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("stopped"), "{rest}");
    let mut err = String::new();
    server.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.is_empty(), "a clean stop prints nothing on stderr: {err}");
}

#[test]
fn a_host_header_naming_another_site_is_refused_and_loopback_names_are_answered() {
    // A page on another site that rebinds its DNS name to 127.0.0.1 sends its own name.
    let server = Server::start(&[]);
    let port = server.addr.port();
    let r = server.get_as("/api/info", &format!("rebound.example:{port}"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("rebound.example"), "{}", r.text());
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("LOCALHOST:{port}")] {
        assert_eq!(server.get_as("/api/info", &host).status, 200, "{host}");
    }
}

#[test]
fn a_host_name_is_resolved() {
    let server = Server::start(&["--host", "localhost"]);
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    assert_eq!(server.get("/api/info").status, 200);
}

#[test]
fn a_port_in_use_is_reported_before_the_run_is_read() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = common::command(env!("CARGO_BIN_EXE_explore"))
        .args(["--run", "no-such-run", "--port", &port])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot listen") && !err.contains("no-such-run"), "{err}");
}

#[test]
fn silent_clients_beyond_the_connection_limit_do_not_lock_out_a_well_behaved_one() {
    let mut server = Server::start(&[]);
    // 70 connections that send nothing: more than the server serves at once.
    let silent: Vec<TcpStream> = (0..70).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = server.get("/api/info");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(1), "answered after {:?}", started.elapsed());
    // And Ctrl-C still stops it while they stay open.
    let ok = Command::new("kill").args(["-INT", &server.child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let started = Instant::now();
    while server.child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "explore still running 10 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(silent);
}

#[test]
fn a_host_that_is_not_loopback_is_warned_about() {
    let mut server = Server::start(&["--host", "0.0.0.0"]);
    let mut err = BufReader::new(server.child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("warning: --host 0.0.0.0 is not a loopback address"), "{line}");
    let local = SocketAddr::new([127, 0, 0, 1].into(), server.addr.port());
    server.addr = local;
    assert_eq!(server.get("/api/info").status, 200);
}

#[test]
fn bad_flags_are_clear_errors_before_anything_is_served() {
    let scratch = common::scratch("empty");
    let empty = scratch.path();
    for (args, expect) in [
        (vec!["--run".to_string(), empty.display().to_string()], "config.json".to_string()),
        (
            vec!["--run".into(), tiny_run().display().to_string(), "--host".into(), "localhost:80".into()],
            "--host".into(),
        ),
        (vec!["--run".into(), tiny_run().display().to_string(), "--device".into(), "tpu".into()], "--device".into()),
        (
            vec![
                "--run".into(),
                tiny_run().display().to_string(),
                "--checkpoint".into(),
                "/nonexistent.safetensors".into(),
            ],
            "--checkpoint /nonexistent.safetensors: no such file".into(),
        ),
    ] {
        let out = common::command(env!("CARGO_BIN_EXE_explore")).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(&expect), "{args:?}: {err}");
    }
}

/// A `--device gpu` explorer that failed for want of an adapter is skipped (with the reason
/// printed), unless `VAE_REQUIRE_GPU=1` (CI) makes that a failure.
#[test]
fn decoding_on_the_gpu_gives_the_cpu_image() {
    let gpu = match Server::try_start(&["--device", "gpu"]) {
        Ok(server) => server,
        Err(e) if e.contains("adapter") && std::env::var("VAE_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("skipped: no GPU adapter ({e})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let cpu = Server::start(&[]);
    for z in ["0,0,0,0", "2.5,-1,0.3,-2.9"] {
        let path = format!("/api/decode.png?z={z}");
        let (a, b) = (cpu.get(&path).image(), gpu.get(&path).image());
        let worst = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
        assert!(worst <= 1, "z = {z}: GPU and CPU decodings differ by {worst} grey levels");
    }
}

/// Chromium, if installed (Debian's `chromium`; `.ci/run` installs it).
fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists());
    if found.is_none() {
        eprintln!("skipped: no Chromium at /usr/bin/chromium (Debian package 'chromium'; .ci/run installs it)");
    }
    found
}

/// Loads `url` in headless Chromium and returns the JSON the page's self-test wrote into
/// `#selftest`, after checking that the page showed no error.
fn browser_selftest(chromium: &str, url: &str) -> serde_json::Value {
    let profile = common::scratch("chromium-profile");
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        // Virtual time runs the page's timers and waits for its fetches before the DOM is dumped.
        .args(["--virtual-time-budget=20000", "--dump-dom", url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let error = dom.split("<p id=\"error\"").nth(1).and_then(|s| s.split("</p>").next()).unwrap_or_default();
    assert!(!error.contains("api"), "the page showed an error: {error}");
    let report =
        dom.split("<pre id=\"selftest\">").nth(1).and_then(|s| s.split("</pre>").next()).unwrap_or_else(|| {
            panic!("no self-test result in the page:\n{dom}\n{}", String::from_utf8_lossy(&out.stderr))
        });
    serde_json::from_str(report).unwrap()
}

/// The PNG in the self-test report's `key`, a data URL.
fn reported_image(report: &serde_json::Value, key: &str) -> image::GrayImage {
    let url = report[key].as_str().unwrap_or_else(|| panic!("{key} missing: {report}"));
    let b64 = url.strip_prefix("data:image/png;base64,").unwrap_or_else(|| panic!("{key}: {url}"));
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
    image::load_from_memory(&bytes).unwrap().to_luma8()
}

/// Headless Chromium loads the page with `?selftest=slider`: the page moves the most active
/// dimension's slider to the end of its range through the same input event a drag fires, and
/// writes the decoded image and the traversals before and after into `#selftest`.
#[test]
fn in_a_real_browser_moving_a_slider_changes_the_decoded_image_and_the_traversals() {
    let Some(chromium) = chromium() else { return };
    let server = Server::start(&[]);
    let report = browser_selftest(chromium, &format!("http://{}/?selftest=slider", server.addr));
    let (before, after) = (reported_image(&report, "before"), reported_image(&report, "after"));
    assert_eq!(before.dimensions(), (16, 16));
    assert_eq!(after.dimensions(), (16, 16));
    assert_ne!(before.as_raw(), after.as_raw(), "the decoded image did not change when the slider moved");
    // The page's image is the server's decoding of the code the sliders hold.
    assert_eq!(report["value"].as_f64().unwrap().abs(), 3.0);
    // Traversals: a row for each of the 4 dimensions, 9 steps of 16×16 with 1-pixel padding.
    let (t0, t1) = (reported_image(&report, "traversalBefore"), reported_image(&report, "traversalAfter"));
    assert_eq!(t0.dimensions(), (9 * 17 + 1, 4 * 17 + 1));
    assert_ne!(t0.as_raw(), t1.as_raw(), "the traversals did not follow the code");
    // The URL's fragment holds the moved value.
    let hash = report["hash"].as_str().unwrap();
    let moved = format!("{:.4}", report["value"].as_f64().unwrap());
    assert!(hash.contains("z=") && hash.contains(&moved), "{hash} lacks {moved}");
}

/// The browser tests read `#selftest` after `--virtual-time-budget`, and headless Chromium's
/// virtual time waits for the page's timers and fetches (bodies included) but not for other
/// asynchronous work: a page awaiting one `FileReader` after another is dumped before it ends
/// (Chromium 156: 200 reads of 20 kB never finished, 200 fetches with their bodies always did).
/// A self-test that read its images through a `FileReader` passed alone and failed under load.
#[test]
fn the_pages_self_test_awaits_only_work_that_virtual_time_waits_for() {
    let js = include_str!("../src/tools/explore/assets/explore.js");
    for api in ["FileReader", "createImageBitmap", "crypto.subtle"] {
        assert!(!js.contains(api), "explore.js uses {api}, which headless Chromium's virtual time does not wait for");
    }
}

/// A view written into the URL's fragment is restored by a fresh page: images A and B, the
/// page of the grid, the code, the mixing weight and negation, the samples' seed.
#[test]
fn in_a_real_browser_a_view_in_the_url_is_restored() {
    let Some(chromium) = chromium() else { return };
    let server = Server::start(&["--grid", "8"]);
    let view = "a=9&b=3&page=1&w=0.3&neg=1&seed=7&z=1.5,-2,0.25,0.75";
    let report = browser_selftest(chromium, &format!("http://{}/?selftest=state#{view}", server.addr));
    assert_eq!((report["a"].as_u64(), report["b"].as_u64(), report["page"].as_u64()), (Some(9), Some(3), Some(1)));
    assert_eq!(report["seed"].as_u64(), Some(7));
    assert_eq!(report["w"].as_f64(), Some(0.3));
    assert_eq!(report["neg"].as_bool(), Some(true));
    let code: Vec<f64> = report["code"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(code, [1.5, -2.0, 0.25, 0.75]);
}

#[test]
fn the_explorer_borrows_the_cpu_kernels_its_run_measured_on_this_cpu() {
    let server = Server::start(&["--device", "cpu"]);
    assert!(server.printed.contains("CPU kernels: the run's own measured choices (GEMM "), "{}", server.printed);
}

#[test]
fn a_run_measured_on_another_cpu_is_explored_by_the_size_rules_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny_run()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let provenance = dir.path().join("provenance.json");
    let text = std::fs::read_to_string(&provenance).unwrap();
    let here = vae::provenance::cpu_model();
    assert!(text.contains(&format!("\"cpu\": \"{here}\"")) || text.contains(&format!("\"cpu\":\"{here}\"")), "{text}");
    std::fs::write(&provenance, text.replace(&here, "Another CPU (AuthenticAMD, family 26, model 68)")).unwrap();
    let server = Server::try_start_on(dir.path(), &["--device", "cpu"]).unwrap_or_else(|e| panic!("{e}"));
    let said =
        "CPU kernels: by the size rules (its choices were made on Another CPU (AuthenticAMD, family 26, model 68)";
    assert!(server.printed.contains(said), "{}", server.printed);
}
