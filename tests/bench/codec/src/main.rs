//! Micro-benchmark of the archive file layers, each alone on one core: deflate back ends
//! (miniz_oxide 0.8 as shipped, miniz_oxide 0.9, zlib-rs) at levels 1 and 6, inflate, and
//! AES-256-CBC, HMAC-SHA256 and base64 as the product calls them. Every figure is the
//! fastest of N repetitions (the machine is shared: the minimum is the least disturbed),
//! measured as this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so other jobs on the
//! machine slow a figure only through caches and frequency, not by taking the core.
//!
//! Usage: codec-bench [--reps N] [--only deflate|crypto] FILE...
//! Each FILE is a data set: a sequence of records `u32 little-endian length, bytes`, each
//! record compressed as one stream with a fresh compressor, as the product writes one
//! file per message (tests/bench/codec/run makes them from the benchmark's corpus).

use std::io::Write;
use std::time::Duration;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use smailarchiver_codec_bench::read_set;

const CHUNK: usize = 64 * 1024;

fn thread_cpu() -> Duration {
    let mut ts = std::mem::MaybeUninit::<libc_timespec>::uninit();
    // SAFETY: clock_gettime writes a timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { clock_gettime(3, ts.as_mut_ptr()) };
    assert_eq!(rc, 0, "clock_gettime failed");
    let ts = unsafe { ts.assume_init() };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[repr(C)]
struct libc_timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clk: i32, ts: *mut libc_timespec) -> i32;
}

/// Fastest of `reps` runs of `f` (thread CPU time), and what the last run returned.
fn best<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..reps {
        let t0 = thread_cpu();
        let r = f();
        best = best.min(thread_cpu() - t0);
        last = Some(r);
    }
    (best, last.expect("reps >= 1"))
}

/// One compressor: compresses `input` as a whole zlib stream, fed in CHUNK pieces into a
/// CHUNK output buffer (as src/codec/deflate.rs does); returns the compressed size.
type Deflater = fn(&[u8], u8, &mut Vec<u8>) -> usize;

/// The same streaming loop for each miniz_oxide version (two crates, one API).
macro_rules! miniz_deflater {
    ($name:ident, $krate:ident) => {
        fn $name(input: &[u8], level: u8, out: &mut Vec<u8>) -> usize {
            use $krate::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
            use $krate::deflate::stream::deflate;
            use $krate::{MZFlush, MZStatus};
            let mut st = Box::new(CompressorOxide::new(create_comp_flags_from_zip_params(level.into(), 15, 0)));
            let mut buf = vec![0u8; CHUNK];
            out.clear();
            for piece in input.chunks(CHUNK) {
                let mut p = piece;
                while !p.is_empty() {
                    let r = deflate(&mut st, p, &mut buf, MZFlush::None);
                    out.extend_from_slice(&buf[..r.bytes_written]);
                    p = &p[r.bytes_consumed..];
                }
            }
            loop {
                let r = deflate(&mut st, &[], &mut buf, MZFlush::Finish);
                out.extend_from_slice(&buf[..r.bytes_written]);
                if r.status == Ok(MZStatus::StreamEnd) {
                    return out.len();
                }
            }
        }
    };
}

miniz_deflater!(miniz08, miniz_oxide);
miniz_deflater!(miniz09, miniz_oxide_09);

fn zlibrs(input: &[u8], level: u8, out: &mut Vec<u8>) -> usize {
    use zlib_rs::{Deflate, DeflateFlush, Status};
    let mut st = Deflate::new(level.into(), true, 15);
    let mut buf = vec![0u8; CHUNK];
    out.clear();
    for piece in input.chunks(CHUNK) {
        let mut p = piece;
        while !p.is_empty() {
            let (in0, out0) = (st.total_in(), st.total_out());
            st.compress(p, &mut buf, DeflateFlush::NoFlush).expect("zlib-rs deflate");
            out.extend_from_slice(&buf[..(st.total_out() - out0) as usize]);
            p = &p[(st.total_in() - in0) as usize..];
        }
    }
    loop {
        let out0 = st.total_out();
        let s = st.compress(&[], &mut buf, DeflateFlush::Finish).expect("zlib-rs finish");
        out.extend_from_slice(&buf[..(st.total_out() - out0) as usize]);
        if s == Status::StreamEnd {
            return out.len();
        }
    }
}

fn inflate_miniz(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let v = miniz_oxide::inflate::decompress_to_vec_zlib(input).expect("miniz inflate");
    out.extend_from_slice(&v);
}

fn inflate_zlibrs(input: &[u8], out: &mut Vec<u8>) {
    use zlib_rs::{Inflate, InflateFlush, Status};
    let mut st = Inflate::new(true, 15);
    let mut buf = vec![0u8; CHUNK];
    out.clear();
    let mut p = input;
    loop {
        let (in0, out0) = (st.total_in(), st.total_out());
        let s = st.decompress(p, &mut buf, InflateFlush::NoFlush).expect("zlib-rs inflate");
        out.extend_from_slice(&buf[..(st.total_out() - out0) as usize]);
        p = &p[(st.total_in() - in0) as usize..];
        if s == Status::StreamEnd {
            return;
        }
    }
}

fn mbps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64()
}

fn deflate_bench(name: &str, set: &[Vec<u8>], reps: usize) {
    let total: usize = set.iter().map(Vec::len).sum();
    println!("## {name}: {} records, {:.1} MB", set.len(), total as f64 / 1e6);
    println!("| back end | level | MB/s (deflate) | ratio | MB/s (inflate, miniz / zlib-rs) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let backends: [(&str, Deflater); 3] =
        [("miniz_oxide 0.8", miniz08), ("miniz_oxide 0.9", miniz09), ("zlib-rs 0.6", zlibrs)];
    for level in [1u8, 2, 6] {
        for (bname, f) in backends {
            let mut outs: Vec<Vec<u8>> = vec![Vec::new(); set.len()];
            let (t, packed) = best(reps, || {
                let mut packed = 0usize;
                for (rec, out) in set.iter().zip(outs.iter_mut()) {
                    packed += f(rec, level, out);
                }
                packed
            });
            // Every stream must be a zlib stream the other library reads back exactly.
            let mut back = Vec::new();
            for (rec, out) in set.iter().zip(&outs) {
                inflate_miniz(out, &mut back);
                assert!(back == *rec, "{bname} level {level}: miniz does not read it back");
                inflate_zlibrs(out, &mut back);
                assert!(back == *rec, "{bname} level {level}: zlib-rs does not read it back");
            }
            let (ti_m, ()) = best(reps, || outs.iter().for_each(|o| inflate_miniz(o, &mut back)));
            let (ti_z, ()) = best(reps, || outs.iter().for_each(|o| inflate_zlibrs(o, &mut back)));
            println!(
                "| {bname} | {level} | {:.1} | {:.4} | {:.0} / {:.0} |",
                mbps(total, t),
                packed as f64 / total as f64,
                mbps(total, ti_m),
                mbps(total, ti_z)
            );
            let _ = std::io::stdout().flush();
        }
    }
    println!();
}

fn crypto_bench(set: &[Vec<u8>], reps: usize) {
    type Enc = cbc::Encryptor<aes::Aes256>;
    type Dec = cbc::Decryptor<aes::Aes256>;
    let mut data: Vec<u8> = set.concat();
    data.truncate(data.len() / CHUNK * CHUNK);
    let n = data.len();
    let key = [7u8; 32];
    let iv = [9u8; 16];
    println!("## crypto layers on {:.1} MB in {CHUNK}-byte pieces", n as f64 / 1e6);
    println!("| layer | MB/s |");
    println!("| --- | ---: |");
    let mut buf = data.clone();
    let (t, ()) = best(reps, || {
        let mut c = Enc::new(&key.into(), &iv.into());
        for piece in buf.chunks_mut(CHUNK) {
            let (blocks, _) = aes::cipher::inout::InOutBuf::from(piece).into_chunks();
            c.encrypt_blocks_inout_mut(blocks);
        }
    });
    println!("| AES-256-CBC encrypt | {:.0} |", mbps(n, t));
    let (t, ()) = best(reps, || {
        let mut c = Dec::new(&key.into(), &iv.into());
        for piece in buf.chunks_mut(CHUNK) {
            let (blocks, _) = aes::cipher::inout::InOutBuf::from(piece).into_chunks();
            c.decrypt_blocks_inout_mut(blocks);
        }
    });
    println!("| AES-256-CBC decrypt | {:.0} |", mbps(n, t));
    let (t, tag) = best(reps, || {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
        for piece in data.chunks(CHUNK) {
            m.update(piece);
        }
        m.finalize().into_bytes()
    });
    println!("| HMAC-SHA256 | {:.0} |", mbps(n, t));
    std::hint::black_box(tag);
    let mut text = Vec::with_capacity(n * 4 / 3 + 4);
    let (t, ()) = best(reps, || {
        use base64::write::EncoderWriter;
        text.clear();
        let mut w = EncoderWriter::new(&mut text, &base64::engine::general_purpose::STANDARD);
        for piece in data.chunks(CHUNK) {
            w.write_all(piece).expect("to memory");
        }
        w.finish().expect("to memory");
    });
    println!("| base64 encode | {:.0} |", mbps(n, t));
    let (t, ()) = best(reps, || {
        use std::io::Read;
        let mut r = base64::read::DecoderReader::new(&text[..], &base64::engine::general_purpose::STANDARD);
        let mut piece = vec![0u8; CHUNK];
        while r.read(&mut piece).expect("valid base64") > 0 {}
    });
    println!("| base64 decode | {:.0} |", mbps(n, t));
    println!();
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut reps = 5;
    let mut only = String::new();
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        let value = args.remove(0);
        match flag.as_str() {
            "--reps" => reps = value.parse().expect("--reps N"),
            "--only" => only = value,
            _ => panic!("unknown option {flag}"),
        }
    }
    #[cfg(target_arch = "x86_64")]
    println!(
        "CPU: aes {}, sha {}, avx2 {}; build: {}\n",
        std::arch::is_x86_feature_detected!("aes"),
        std::arch::is_x86_feature_detected!("sha"),
        std::arch::is_x86_feature_detected!("avx2"),
        if cfg!(feature = "force-soft") { "soft AES and SHA-256 forced" } else { "as shipped" }
    );
    #[cfg(target_arch = "aarch64")]
    println!(
        "CPU: aes {}, sha2 {}; build: {}\n",
        std::arch::is_aarch64_feature_detected!("aes"),
        std::arch::is_aarch64_feature_detected!("sha2"),
        if cfg!(feature = "force-soft") { "soft AES and SHA-256 forced" } else { "as shipped" }
    );
    let mut first = None;
    for path in &args {
        let set = read_set(path);
        if only != "crypto" {
            deflate_bench(path.rsplit('/').next().unwrap_or(path), &set, reps);
        }
        first.get_or_insert(set);
    }
    if only != "deflate" {
        crypto_bench(&first.unwrap_or_else(|| vec![vec![0x5a; 16 << 20]]), reps);
    }
}
