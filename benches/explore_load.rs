//! The `explore` server under many clients: N client threads, each on its own kept-alive
//! loopback connection, drag a slider (ask `/api/decode.png` for a new random code the moment
//! the previous answer arrived) for a fixed time. Prints the decodes done, decodes/s, the
//! latency's p50/p99/max, errors (a status other than 200 or 204, or an I/O error), the
//! server's peak memory (VmHWM in /proc/PID/status at the end) and the CPU.
//!
//! With `--abuse`, three more connections run alongside the N clients: one pipelining
//! `/api/info` as fast as the socket takes it, one sending headers without end as fast as it
//! can, and one sending a header line every half second (a slow head). Each is reported with
//! how, and after how long, the server cut it off.
//!
//!     cargo build --release -p vae --bin explore
//!     cargo bench --bench explore_load -- --run RUN_DIR --clients 50 --seconds 60 [--abuse]
//!
//! `--binary PATH` serves with another `explore` (default: the one next to this bench in
//! target/release), `--threads T` is passed to it (default 0: every core), `--client-ids`
//! sends each client's id as `client=` (servers that batch requests know it). `--make-images
//! DIR` writes 240 smooth 64×64 colour PNGs into DIR/waves/ for a `--dataset folder` run,
//! and exits. Only loopback is used, and the run ends after `--seconds` plus the answers in
//! flight (each read gives up after 30 s).
//!
//! `--batch-costs [--reps R]` starts no server: it times, in this process, what the server's
//! decode worker does for one batch of n codes (`decode_codes`, random weights, batch norms
//! folded as the server folds them) at n = 1 to 64, for `conv` (1×64×64, z = 10) and
//! `resnet-bn` (3×64×64, z = 128), with the PNG encoding of one image and, taking turns, 16
//! codes with and without the folding, and prints the ops that took the time at n = 1 and n = 32, then resnet-bn's
//! decoder convolutions one by one at n = 16 (ms and GFLOP/s). With
//! `--measured-kernels` the convolutions' cuts are chosen by timing them first, as `train`'s
//! default does (the tuner prints each choice); without, by the rules, as the server runs.
//! `benches/pytorch_explore_decode.py` times PyTorch decoding the same resnet-bn batches.

#[allow(dead_code)] // the table helpers there serve the per-layer benches
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::flag;

// The allocator the server runs on (see `explore`), so that `--batch-costs` times what it does.
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

/// How long a client waits for one answer before counting an error.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The slider's range, as the page's: the prior's ±3σ.
const SLIDER_RANGE: f64 = 3.0;

fn main() {
    if std::env::args().any(|a| a == "--batch-costs") {
        if std::env::args().any(|a| a == "--measured-kernels") {
            // As the server does: the convolutions' cuts chosen by timing them here.
            tensor::cpu::tuning::enable_tuning(vae::cli::cpu_kernel_cache_path());
        }
        batch_costs(number_flag("--reps", 5));
        return;
    }
    if let Some(dir) = flag("--make-images") {
        if let Err(e) = make_images(Path::new(&dir)) {
            fail(&format!("--make-images {dir}: {e}"));
        }
        println!("wrote 240 images to {dir}/waves/");
        return;
    }
    let run = flag("--run").unwrap_or_else(|| fail("--run RUN_DIR is required (a run folder written by train)"));
    let clients: usize = number_flag("--clients", 50);
    let seconds: u64 = number_flag("--seconds", 60);
    let threads: usize = number_flag("--threads", 0);
    let abuse = std::env::args().any(|a| a == "--abuse");
    let client_ids = std::env::args().any(|a| a == "--client-ids");
    let binary = flag("--binary").map(PathBuf::from).unwrap_or_else(default_binary);

    let mut server = Server::start(&binary, &run, threads);
    let z_dim = server.z_dim();
    println!("cpu: {}", cpu_model());
    println!("server: {} --run {run} --threads {threads} (pid {})", binary.display(), server.child.id());
    println!(
        "{clients} clients, {seconds} s, z = {z_dim}{}{}",
        if client_ids { ", with client ids" } else { "" },
        if abuse { ", with the abusive clients" } else { "" }
    );

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let stop_abuse = AtomicBool::new(false);
    let (samples, abusers) = std::thread::scope(|scope| {
        let drags: Vec<_> = (0..clients)
            .map(|k| {
                let addr = server.addr;
                scope.spawn(move || drag_slider(addr, z_dim, k, client_ids, deadline))
            })
            .collect();
        let abusers: Vec<_> = if abuse {
            let (addr, stop) = (server.addr, &stop_abuse);
            vec![
                scope.spawn(move || flood_pipelined(addr, stop)),
                scope.spawn(move || endless_headers(addr, stop, Duration::ZERO)),
                scope.spawn(move || endless_headers(addr, stop, Duration::from_millis(500))),
            ]
        } else {
            vec![]
        };
        let samples: Vec<Sample> = drags.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
        stop_abuse.store(true, Ordering::SeqCst);
        let abusers: Vec<Abuser> = abusers.into_iter().filter_map(|h| h.join().ok()).collect();
        (samples, abusers)
    });
    let peak_kib = server.peak_memory_kib();
    server.stop();

    let mut latencies: Vec<f64> = samples.iter().filter(|s| s.ok).map(|s| s.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let decoded = samples.iter().filter(|s| s.ok && s.status == 200).count();
    let in_time = samples.iter().filter(|s| s.ok && s.status == 200 && s.finished <= deadline).count();
    let superseded = samples.iter().filter(|s| s.ok && s.status == 204).count();
    let errors = samples.iter().filter(|s| !s.ok).count();
    let ms = |v: Option<&f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    println!("decodes: {decoded} ({in_time} within the {seconds} s), superseded: {superseded}");
    println!("decodes/s: {:.1}", in_time as f64 / seconds as f64);
    println!(
        "latency ms: p50 {}, p99 {}, max {}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last())
    );
    // Where the latency went: the decode of its batch, and the rest (waiting for the batches
    // ahead, the connection's threads, the PNG).
    let mut decode: Vec<f64> = samples.iter().filter_map(|s| s.decode_ms).collect();
    let mut rest: Vec<f64> = samples.iter().filter_map(|s| s.decode_ms.map(|d| s.latency_ms - d)).collect();
    decode.sort_by(f64::total_cmp);
    rest.sort_by(f64::total_cmp);
    println!(
        "of which the batch's decode ms: p50 {}, p99 {}; the rest: p50 {}, p99 {}",
        ms(percentile(&decode, 0.50)),
        ms(percentile(&decode, 0.99)),
        ms(percentile(&rest, 0.50)),
        ms(percentile(&rest, 0.99))
    );
    println!("errors: {errors}");
    if let Some(first) = samples.iter().find(|s| !s.ok) {
        println!("first error: {}", first.error);
    }
    println!(
        "server peak memory (VmHWM): {}",
        peak_kib.map_or("unknown".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
    );
    for a in &abusers {
        println!("abuser {}: {}", a.name, a.outcome);
    }
    println!(
        "| {decoded} | {:.1} | {} | {} | {} | {errors} | {} |",
        in_time as f64 / seconds as f64,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last()),
        peak_kib.map_or("-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
    );
}

/// The value at fraction `p` of `sorted` (ascending), `None` when it is empty.
fn percentile(sorted: &[f64], p: f64) -> Option<&f64> {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().max(1) - 1))
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

fn number_flag<T: std::str::FromStr>(name: &str, default: T) -> T {
    match flag(name) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| fail(&format!("{name} {v}: not a number of the expected kind"))),
    }
}

/// target/release/explore, next to this bench's own executable (target/release/deps/).
fn default_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("cannot find this bench's path: {e}")));
    let release = exe.parent().and_then(Path::parent).unwrap_or_else(|| fail("this bench is not under target/"));
    let binary = release.join("explore");
    if !binary.exists() {
        fail(&format!("{} is missing: cargo build --release -p vae --bin explore", binary.display()));
    }
    binary
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown".into())
        + &format!(", {} logical CPUs", std::thread::available_parallelism().map_or(0, |n| n.get()))
}

/// The `explore` process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts `binary` on `run` (a free loopback port) and waits until it prints its address.
    fn start(binary: &Path, run: &str, threads: usize) -> Server {
        let mut child = Command::new(binary)
            .args(["--run", run, "--device", "cpu", "--host", "127.0.0.1", "--port", "0"])
            .args(["--threads", &threads.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start {}: {e}", binary.display())));
        let Some(stdout) = child.stdout.take() else { fail("no stdout from the server") };
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.split("http://").nth(1).and_then(|r| r.split('/').next()) {
                        break addr.parse().unwrap_or_else(|_| fail(&format!("not an address: {line}")));
                    }
                }
                _ => {
                    let _ = child.kill();
                    fail("the server exited before printing its address")
                }
            }
        };
        // The rest of its output is not needed, but a full pipe would block it.
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, addr }
    }

    /// The latent size, from `/api/info`.
    fn z_dim(&self) -> usize {
        let mut conn = Connection::open(self.addr).unwrap_or_else(|e| fail(&format!("cannot connect: {e}")));
        let Response { status, body, .. } = conn.get("/api/info").unwrap_or_else(|e| fail(&format!("/api/info: {e}")));
        let text = String::from_utf8_lossy(&body);
        let z = text.split("\"z_dim\":").nth(1).map(|r| r.chars().take_while(char::is_ascii_digit).collect::<String>());
        match (status, z.and_then(|z| z.parse().ok())) {
            (200, Some(z)) => z,
            _ => fail(&format!("/api/info: status {status}, no z_dim in {}", &text[..text.len().min(200)])),
        }
    }

    /// The server's peak resident memory so far, in KiB.
    fn peak_memory_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One kept-alive client connection.
struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Connection { stream: BufReader::new(stream), host: addr.to_string() })
    }

    /// GET `path` and read the answer: status, body and the batch's decode time.
    fn get(&mut self, path: &str) -> std::io::Result<Response> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.get_mut().write_all(request.as_bytes())?;
        read_response(&mut self.stream)
    }
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// One answer: its status, its body, and the milliseconds the decode of the batch that held
/// it took (the server's `X-Decode-Ms`, on decodes).
struct Response {
    status: u16,
    body: Vec<u8>,
    decode_ms: Option<f64>,
}

/// Reads one response (head and `Content-Length` body) from `stream`.
fn read_response(stream: &mut BufReader<TcpStream>) -> std::io::Result<Response> {
    let mut line = String::new();
    if stream.read_line(&mut line)? == 0 {
        return Err(invalid("the server closed the connection".into()));
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    let mut decode_ms = None;
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(invalid("the server closed the connection inside a head".into()));
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            }
            if name.eq_ignore_ascii_case("x-decode-ms") {
                decode_ms = value.trim().parse().ok();
            }
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok(Response { status, body, decode_ms })
}

/// One answered (or failed) request of a dragging client.
#[derive(Clone, Debug)]
struct Sample {
    ok: bool,
    status: u16,
    latency_ms: f64,
    /// The server's decode of the batch that held this code (the rest of the latency waited).
    decode_ms: Option<f64>,
    finished: Instant,
    error: String,
}

/// A small xorshift generator: each client draws its own codes.
struct Xorshift(u64);

impl Xorshift {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One client dragging a slider until `deadline`: a new random code (uniform over the
/// slider's range) the moment the previous answer has arrived.
fn drag_slider(addr: SocketAddr, z_dim: usize, k: usize, client_ids: bool, deadline: Instant) -> Vec<Sample> {
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let client = if client_ids { format!("&client=load{k}") } else { String::new() };
    let mut samples = vec![];
    let mut conn: Option<Connection> = None;
    while Instant::now() < deadline {
        let z: Vec<String> = (0..z_dim).map(|_| format!("{:.4}", (rng.uniform() * 2.0 - 1.0) * SLIDER_RANGE)).collect();
        let path = format!("/api/decode.png?z={}{client}", z.join(","));
        let started = Instant::now();
        let result = match conn.as_mut() {
            Some(c) => c.get(&path),
            None => Connection::open(addr).and_then(|mut c| {
                let r = c.get(&path);
                conn = Some(c);
                r
            }),
        };
        let finished = Instant::now();
        let latency_ms = (finished - started).as_secs_f64() * 1e3;
        match result {
            Ok(Response { status, body, decode_ms }) => {
                let ok = status == 200 || status == 204;
                let error =
                    if ok { String::new() } else { format!("status {status}: {}", String::from_utf8_lossy(&body)) };
                samples.push(Sample { ok, status, latency_ms, decode_ms, finished, error });
            }
            Err(e) => {
                // A broken connection is reopened for the next request.
                conn = None;
                samples.push(Sample {
                    ok: false,
                    status: 0,
                    latency_ms,
                    decode_ms: None,
                    finished,
                    error: format!("I/O: {e}"),
                });
            }
        }
    }
    samples
}

/// What an abusive client met.
struct Abuser {
    name: &'static str,
    outcome: String,
}

/// Pipelines `GET /api/info` on one connection as fast as the socket takes it, while another
/// thread reads the answers; reports how many were answered and how the connection ended.
fn flood_pipelined(addr: SocketAddr, stop: &AtomicBool) -> Abuser {
    let name = "pipelining /api/info";
    let started = Instant::now();
    let Ok(stream) = TcpStream::connect(addr) else { return Abuser { name, outcome: "could not connect".into() } };
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let request = format!("GET /api/info HTTP/1.1\r\nHost: {addr}\r\n\r\n").repeat(50);
    let closed = AtomicBool::new(false);
    let (answered, statuses, sent, ended) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let Ok(clone) = stream.try_clone() else { return (0usize, vec![], String::from("no clone")) };
            let mut reader = BufReader::new(clone);
            let mut answered = 0usize;
            let mut statuses: Vec<(u16, usize)> = vec![];
            let ended = loop {
                match read_response(&mut reader) {
                    Ok(Response { status, .. }) => {
                        answered += 1;
                        match statuses.iter_mut().find(|(s, _)| *s == status) {
                            Some((_, n)) => *n += 1,
                            None => statuses.push((status, 1)),
                        }
                    }
                    Err(e) => break format!("{e}"),
                }
                if stop.load(Ordering::SeqCst) {
                    break "still open when the run ended".into();
                }
            };
            closed.store(true, Ordering::SeqCst);
            (answered, statuses, ended)
        });
        // Written by hand rather than with write_all, which loses track of a part-written
        // buffer when its write times out (the server reads only as fast as it answers).
        let (mut sent, mut written) = (0usize, 0usize);
        let mut writer = &stream;
        while !stop.load(Ordering::SeqCst) && !closed.load(Ordering::SeqCst) {
            match writer.write(&request.as_bytes()[written..]) {
                Ok(0) => break,
                Ok(n) => {
                    written += n;
                    if written == request.len() {
                        (sent, written) = (sent + 50, 0);
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let (answered, statuses, ended) = reader.join().unwrap_or_default();
        (answered, statuses, sent, ended)
    });
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{n}× {s}")).collect();
    Abuser {
        name,
        outcome: format!(
            "{answered} answered ({}) of about {sent} sent; ended after {:.2} s: {ended}",
            statuses.join(", "),
            started.elapsed().as_secs_f64()
        ),
    }
}

/// Sends a request line, then header lines without end (`pause` between lines); reports the
/// bytes sent and what the server answered, and when.
fn endless_headers(addr: SocketAddr, stop: &AtomicBool, pause: Duration) -> Abuser {
    let name = if pause.is_zero() { "endless headers, fast" } else { "endless headers, one line per 0.5 s" };
    let started = Instant::now();
    let Ok(stream) = TcpStream::connect(addr) else { return Abuser { name, outcome: "could not connect".into() } };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_nonblocking(false);
    let mut writer = &stream;
    let mut sent = writer.write(format!("GET / HTTP/1.1\r\nHost: {addr}\r\n").as_bytes()).unwrap_or(0);
    let mut line = 0usize;
    let ended = loop {
        if stop.load(Ordering::SeqCst) {
            break "still open when the run ended".to_string();
        }
        match writer.write_all(format!("X-Padding-{line}: {}\r\n", "a".repeat(100)).as_bytes()) {
            Ok(()) => sent += 114 + line.to_string().len(),
            Err(e) => break format!("the server closed it ({e})"),
        }
        line += 1;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    };
    let cut_after = started.elapsed().as_secs_f64();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = vec![];
    let _ = (&stream).take(4096).read_to_end(&mut answer);
    let first = String::from_utf8_lossy(&answer).lines().next().unwrap_or("no answer").to_string();
    Abuser { name, outcome: format!("{sent} bytes sent; ended after {cut_after:.2} s: {ended}; answer: {first}") }
}

/// Writes 240 smooth 64×64 colour images (three sine waves, one per channel) as PNGs into
/// `dir/waves/`: a `--dataset folder` run for the 64×64×3 presets, without a download.
fn make_images(dir: &Path) -> Result<(), String> {
    let out = dir.join("waves");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let opts = vae::plot::GridOptions { cols: 1, padding: 0, scale: Some(1), ..vae::plot::GridOptions::default() };
    for k in 0..240u64 {
        let mut rng = Xorshift(0x2545_f491_4f6c_dd1d ^ (k + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let waves: Vec<[f64; 3]> =
            (0..3).map(|_| [0.02 + 0.18 * rng.uniform(), 0.02 + 0.18 * rng.uniform(), 6.3 * rng.uniform()]).collect();
        let mut pixels = vec![0f32; 3 * 64 * 64];
        for (c, [a, b, p]) in waves.iter().enumerate() {
            for y in 0..64 {
                for x in 0..64 {
                    pixels[(c * 64 + y) * 64 + x] = (0.5 + 0.5 * (a * x as f64 + b * y as f64 + p).sin()) as f32;
                }
            }
        }
        let image = vae::plot::image_grid(&pixels, [1, 3, 64, 64], &opts).map_err(|e| e.to_string())?;
        let png = vae::plot::png_bytes(&image).map_err(|e| e.to_string())?;
        std::fs::write(out.join(format!("img{k:03}.png")), png).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Times one decode batch of n codes, per preset, and the PNG encoding of one image; then the
/// ops that took the time at n = 1 and n = 32 (tensor's profiler), per code.
fn batch_costs(reps: usize) {
    use nn::Init;
    use vae::model::{Arch, ModelConfig, OutputActivation, Vae};
    println!("cpu: {}; {} rayon threads; median of {reps}", cpu_model(), rayon::current_num_threads());
    let norm = vae::data::Normalization::ZeroOne;
    let output = OutputActivation::Logits;
    for (arch, input, z_dim) in [(Arch::Conv, [1, 64, 64], 10), (Arch::ResNetBn, [3, 64, 64], 128)] {
        let new_model = || {
            Vae::new(ModelConfig { arch, input, z_dim }, &mut Init::new(0))
                .unwrap_or_else(|e| fail(&format!("{}: {e}", arch.name())))
        };
        // As the server decodes: batch norms folded into their convolutions.
        let (mut model, unfolded) = (new_model(), new_model());
        let folds = model.fold_batch_norms_for_inference().unwrap_or_else(|e| fail(&format!("folding: {e}")));
        let [c, h, w] = input;
        let mut rng = Xorshift(7);
        let codes: Vec<f32> = (0..64 * z_dim).map(|_| (rng.uniform() * 6.0 - 3.0) as f32).collect();
        let decode_by = |model: &Vae, n: usize| {
            vae::tools::eval::decode_codes(model, &codes[..n * z_dim], &norm, output, 64)
                .unwrap_or_else(|e| fail(&format!("decode: {e}")))
        };
        let decode = |n: usize| decode_by(&model, n);
        println!("\n{} ({c}×{h}×{w}, z = {z_dim}), {folds} batch norms folded\n", arch.name());
        println!("| codes in the batch | batch ms | ms per code |");
        println!("|---|---|---|");
        for n in [1, 2, 4, 8, 16, 32, 64] {
            let ms = common::median_ms(reps, || drop(decode(n)));
            println!("| {n} | {ms:.1} | {:.2} |", ms / n as f64);
        }
        let image = decode(1);
        let opts = vae::plot::GridOptions { cols: 1, padding: 0, scale: Some(1), ..vae::plot::GridOptions::default() };
        let png_ms = common::median_ms(reps * 4, || {
            let grid = vae::plot::image_grid(&image, [1, c, h, w], &opts).unwrap_or_else(|e| fail(&format!("{e}")));
            drop(vae::plot::png_bytes(&grid));
        });
        println!("\nPNG of one image: {png_ms:.2} ms");
        if folds > 0 {
            // Taking turns, so that a slow moment of the machine falls on both.
            let (mut with, mut without) = (vec![], vec![]);
            for _ in 0..reps {
                with.push(common::median_ms(1, || drop(decode_by(&model, 16))));
                without.push(common::median_ms(1, || drop(decode_by(&unfolded, 16))));
            }
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (with, without) = (median(with), median(without));
            println!("16 codes, taking turns: {with:.1} ms with the batch norms folded, {without:.1} ms without");
        }
        println!();
        println!("| op | ms per code at n = 1 | ms per code at n = 32 |");
        println!("|---|---|---|");
        let profile = |n: usize| {
            decode(n);
            tensor::profile::reset();
            tensor::profile::set_enabled(true);
            for _ in 0..reps {
                decode(n);
            }
            tensor::profile::set_enabled(false);
            tensor::profile::snapshot().ops
        };
        let (one, many) = (profile(1), profile(32));
        let per_code = |ops: &[tensor::profile::OpTotal], name: &str, n: usize| {
            ops.iter().find(|o| o.name == name).map_or(0.0, |o| o.time.as_secs_f64() * 1e3 / (reps * n) as f64)
        };
        for op in &many {
            println!("| {} | {:.2} | {:.2} |", op.name, per_code(&one, op.name, 1), per_code(&many, op.name, 32));
        }
    }
    resnet_bn_convolutions(reps);
}

/// resnet-bn's decoder convolutions one by one at the server's batch of 16 codes (64×64, the
/// ops the decoder calls, random values): ms a batch, ms a code, and GFLOP/s counting the
/// multiply-adds each computes (a quarter of the layer as written for the upsampled ones,
/// whose transform does 9 per output quad and input channel against 36).
fn resnet_bn_convolutions(reps: usize) {
    use tensor::ops::conv2d::{conv2d, Conv2dParams};
    use tensor::ops::upsampled_conv::conv2d_nearest_upsampled;
    use tensor::{DType, Rng, Tensor};
    const BATCH: usize = 16;
    println!("\nresnet-bn's decoder convolutions at {BATCH} codes\n");
    println!("| layer | input | batch ms | ms per code | GFLOP/s |");
    println!("|---|---|---|---|---|");
    let mut rng = Rng::new(3);
    let mut total = 0.0;
    for (upsampled, c_in, c_out, side) in [
        (true, 512, 512, 4),
        (false, 512, 512, 8),
        (true, 512, 256, 8),
        (false, 256, 256, 16),
        (true, 256, 128, 16),
        (false, 128, 128, 32),
        (true, 128, 64, 32),
        (false, 64, 64, 64),
        (false, 64, 3, 64),
    ] {
        let x = Tensor::rand_uniform(&[BATCH, c_in, side, side], -1.0, 1.0, DType::F32, &mut rng);
        let w = Tensor::rand_uniform(&[c_out, c_in, 3, 3], -0.1, 0.1, DType::F32, &mut rng);
        let run = || {
            let y = if upsampled {
                conv2d_nearest_upsampled(&x, &w, None)
            } else {
                conv2d(&x, &w, None, &Conv2dParams::new(1, 1))
            };
            drop(y.unwrap_or_else(|e| fail(&format!("{c_in}→{c_out}: {e}"))));
        };
        let ms = common::median_ms(reps, run);
        total += ms;
        let out_side = if upsampled { 2 * side } else { side };
        let multiply_adds = BATCH * c_out * out_side * out_side * c_in * 9 / if upsampled { 4 } else { 1 };
        let name = if upsampled { "Up(2) → Conv(3,1,1)" } else { "Conv(3,1,1)" };
        println!(
            "| {name} {c_in}→{c_out} | {side}×{side} | {ms:.2} | {:.2} | {:.0} |",
            ms / BATCH as f64,
            2.0 * multiply_adds as f64 / ms / 1e6
        );
    }
    println!("| all | | {total:.1} | {:.2} | |", total / BATCH as f64);
}
