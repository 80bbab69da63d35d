//! The product's compression layer (src/codec/deflate.rs `DeflateWriter`, as a backup uses
//! it: a message a stream, big ones in blocks on two threads) over the codec data sets:
//! process CPU (user+sys, every thread) and compressed size, fastest of N. Built against
//! an older checkout it gives the "before" figures.
//!
//! Usage: deflate_writer [--level 1] [--reps 3] SET...   (record files of tests/bench/codec/run)

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use smailarchiver::codec::{deflate, Finish};

/// Counts what reaches it, keeps nothing.
struct Count(Arc<AtomicU64>);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(std::hint::black_box(buf).len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Finish for Count {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

fn process_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) }, 0);
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn read_set(path: &str) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut recs = Vec::new();
    let mut pos = 0;
    while pos + 4 <= data.len() {
        let n = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4;
        recs.push(data[pos..pos + n].to_vec());
        pos += n;
    }
    assert_eq!(pos, data.len(), "{path}: not a record file");
    recs
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut level, mut reps, mut sets) = (1u8, 3usize, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--level" => level = args.next().and_then(|v| v.parse().ok()).expect("--level N"),
            "--reps" => reps = args.next().and_then(|v| v.parse().ok()).expect("--reps N"),
            _ => sets.push(a),
        }
    }
    println!("| set | MB | CPU s (fastest of {reps}) | MB/s of CPU | ratio |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for path in sets {
        let recs = read_set(&path);
        let input: usize = recs.iter().map(Vec::len).sum();
        let mut best = Duration::MAX;
        let mut out = 0;
        for _ in 0..reps {
            let count = Arc::new(AtomicU64::new(0));
            let t0 = process_cpu();
            for r in &recs {
                let mut w = Box::new(deflate::DeflateWriter::new(Box::new(Count(count.clone())), level));
                w.write_all(r).expect("compresses");
                w.finish().expect("finishes");
            }
            best = best.min(process_cpu() - t0);
            out = count.load(Ordering::Relaxed);
        }
        let name = path.rsplit('/').next().unwrap_or(&path);
        let mb = input as f64 / 1e6;
        println!(
            "| {name} | {mb:.1} | {:.3} | {:.0} | {:.4} |",
            best.as_secs_f64(),
            mb / best.as_secs_f64(),
            out as f64 / input as f64
        );
    }
}
