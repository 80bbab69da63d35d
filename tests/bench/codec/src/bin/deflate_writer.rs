//! The product's compression layer (src/codec/deflate.rs `DeflateWriter`, as a backup uses
//! it: a message a stream, big ones in blocks on two threads) over the codec data sets:
//! process CPU (user+sys, every thread) and compressed size, fastest of N. Built against
//! an older checkout it gives the "before" figures.
//!
//! Usage: deflate_writer [--level 1] [--reps 3] SET...   (record files of tests/bench/codec/run)

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use smailarchiver::codec::{deflate, Finish};
use smailarchiver_codec_bench::{process_cpu, read_set, Count};

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
            let count = Count::default();
            let t0 = process_cpu();
            for r in &recs {
                let mut w = Box::new(deflate::DeflateWriter::new(Box::new(count.clone()), level));
                w.write_all(r).expect("compresses");
                w.finish().expect("finishes");
            }
            best = best.min(process_cpu() - t0);
            out = count.0.load(Ordering::Relaxed);
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
