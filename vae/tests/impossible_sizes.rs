//! Files whose headers claim sizes no file of theirs holds — 10^12 bytes of images, a tensor
//! of 2^60 bytes, a picture of 64 million pixels in 70 bytes — are refused by name before anything of that
//! size is allocated. Each case runs the binary a user runs on the file, with its address space
//! capped (so that an allocation of the claimed size fails at once, where without the cap a
//! lazily mapped one could pass unnoticed) and its peak resident memory read back (`wait4`).
//! CIFAR-10 and STL-10 files carry no sizes: their counts are their lengths, so a length that
//! is not a whole number of records is what is refused.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use super::common;

/// The address space a case may map: far below every claimed size, far above what refusing
/// needs (a thread's stack and heap arena reserve tens of MiB each).
const ADDRESS_SPACE: u64 = 8 << 30;
/// The peak resident memory a refusal may take.
const PEAK_KIB: i64 = 256 * 1024;

/// What a capped run gave: exit code (`None` if a signal ended it), stderr, peak memory in KiB.
struct Capped {
    code: Option<i32>,
    stderr: String,
    peak_kib: i64,
}

// The child is reaped by wait4, which Child::wait would not let this read its peak memory.
#[allow(clippy::zombie_processes)]
fn run_capped(binary: &str, args: &[&str]) -> Capped {
    let mut command = common::command(binary);
    command.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: ADDRESS_SPACE, rlim_max: ADDRESS_SPACE };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // wait4 rather than Child::wait: it also gives this child's own peak memory.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4: {}", std::io::Error::last_os_error());
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Capped { code, stderr, peak_kib: usage.ru_maxrss }
}

/// Asserts that `binary args` refused the file named `file` with an error (exit 1) whose text
/// holds `says`, within [`PEAK_KIB`].
fn assert_refused(binary: &str, args: &[&str], file: &str, says: &str) {
    let run = run_capped(binary, args);
    assert_eq!(run.code, Some(1), "an error, not a crash or an abort:\n{}", run.stderr);
    assert!(run.stderr.contains(file) && run.stderr.contains(says), "expected {file} and {says:?}:\n{}", run.stderr);
    eprintln!("{binary} refused {file} at a peak of {} MiB", run.peak_kib / 1024);
    assert!(run.peak_kib < PEAK_KIB, "refusing took {} MiB at its peak:\n{}", run.peak_kib / 1024, run.stderr);
}

fn train_on(dataset: &str, dir: &Path) -> Vec<String> {
    [
        "--dataset",
        dataset,
        "--data-dir",
        &dir.display().to_string(),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--epochs",
        "1",
    ]
    .map(String::from)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// An IDX image file declaring `dims`, followed by `body` bytes.
fn idx_images(dims: [u32; 3], body: usize) -> Vec<u8> {
    let header: Vec<u8> = [0x0803u32].iter().chain(&dims).flat_map(|d| d.to_be_bytes()).collect();
    [header, vec![7; body]].concat()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Fashion-MNIST's other three files, valid and tiny, beside a hostile training image file.
fn other_idx_files(dir: &Path) {
    let labels = [&0x0801u32.to_be_bytes()[..], &1u32.to_be_bytes(), &[3]].concat();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), &labels).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), &labels).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx_images([1, 2, 2], 4)).unwrap();
}

#[test]
fn an_idx_header_claiming_a_terabyte_of_images_is_refused_within_a_small_peak() {
    let scratch = common::scratch("claims-idx");
    other_idx_files(scratch.path());
    let file = scratch.path().join("train-images-idx3-ubyte");
    std::fs::write(&file, idx_images([1_000_000, 1000, 1000], 16)).unwrap();
    let args = train_on("fashion-mnist", scratch.path());
    assert_refused(env!("CARGO_BIN_EXE_train"), &strs(&args), "train-images-idx3-ubyte", "1000000000000 bytes");
}

#[test]
fn a_gzipped_idx_header_claiming_a_terabyte_is_refused_before_inflating() {
    let scratch = common::scratch("claims-idx-gz");
    other_idx_files(scratch.path());
    let file = scratch.path().join("train-images-idx3-ubyte.gz");
    std::fs::write(&file, gzip(&idx_images([1_000_000, 1000, 1000], 16))).unwrap();
    let args = train_on("fashion-mnist", scratch.path());
    assert_refused(env!("CARGO_BIN_EXE_train"), &strs(&args), "train-images-idx3-ubyte.gz", "gzip stream can hold");
}

#[test]
fn a_cifar10_batch_that_is_not_whole_records_is_refused() {
    let scratch = common::scratch("claims-cifar");
    std::fs::write(scratch.path().join("data_batch_1.bin"), vec![1u8; 2 * 3073 + 1]).unwrap();
    let args = train_on("cifar10", scratch.path());
    assert_refused(env!("CARGO_BIN_EXE_train"), &strs(&args), "data_batch_1.bin", "whole number");
}

#[test]
fn an_stl10_image_file_that_is_not_whole_images_is_refused() {
    let scratch = common::scratch("claims-stl");
    std::fs::write(scratch.path().join("train_X.bin"), vec![1u8; 27648 + 5]).unwrap();
    std::fs::write(scratch.path().join("train_y.bin"), [1u8]).unwrap();
    let args = [train_on("stl10", scratch.path()), vec!["--split".into(), "1:1:0".into()]].concat();
    assert_refused(env!("CARGO_BIN_EXE_train"), &strs(&args), "train_X.bin", "whole number");
}

#[test]
fn a_png_header_claiming_64_million_pixels_in_70_bytes_is_refused_before_its_buffer_is_allocated() {
    let scratch = common::scratch("claims-png");
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(2, 2).write_to(&mut png, image::ImageFormat::Png).unwrap();
    let mut png = png.into_inner();
    // IHDR's width and height, then its checksum mended: a valid header for 8000², 192 MB of
    // pixels, which the decoder's own default limit (512 MiB) would allocate.
    png[16..24].copy_from_slice(&[8000u32.to_be_bytes(), 8000u32.to_be_bytes()].concat());
    let mut crc = flate2::Crc::new();
    crc.update(&png[12..29]);
    png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    std::fs::create_dir_all(scratch.path().join("cats")).unwrap();
    std::fs::write(scratch.path().join("cats/huge.png"), png).unwrap();
    let args = train_on("folder", scratch.path());
    assert_refused(env!("CARGO_BIN_EXE_train"), &strs(&args), "huge.png", "imit");
}

/// A run folder for `eval` whose best checkpoint is `checkpoint`.
fn eval_run_with(scratch: &Path, checkpoint: &[u8]) -> Vec<String> {
    let run = scratch.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let config = vae::config::RunConfig {
        arch: vae::model::Arch::Dense,
        z_dim: 2,
        max_images: Some(40),
        ..vae::config::RunConfig::default()
    };
    std::fs::write(run.join("config.json"), config.to_json()).unwrap();
    std::fs::write(run.join("best.safetensors"), checkpoint).unwrap();
    vec!["--run".to_string(), run.display().to_string()]
}

#[test]
fn a_safetensors_header_claiming_a_tensor_of_two_to_the_sixty_bytes_is_refused() {
    let scratch = common::scratch("claims-safetensors");
    let header = format!(
        "{{\"encoder.0.weight\":{{\"dtype\":\"F32\",\"shape\":[{},4],\"data_offsets\":[0,{}]}}}}",
        1u64 << 56,
        1u64 << 60
    );
    let file = [&(header.len() as u64).to_le_bytes()[..], header.as_bytes(), &[0u8; 64]].concat();
    let args = eval_run_with(scratch.path(), &file);
    assert_refused(env!("CARGO_BIN_EXE_eval"), &strs(&args), "best.safetensors", "not a valid safetensors file");
}

#[test]
fn a_safetensors_header_length_of_two_to_the_sixty_is_refused() {
    let scratch = common::scratch("claims-safetensors-header");
    let file = [&(1u64 << 60).to_le_bytes()[..], b"{}      "].concat();
    let args = eval_run_with(scratch.path(), &file);
    assert_refused(env!("CARGO_BIN_EXE_eval"), &strs(&args), "best.safetensors", "not a valid safetensors file");
}
