//! One big message through the product's writer chain (src/codec), in memory: client CPU
//! (user+sys of the whole process, every thread) and wall time, fastest of N, for `-z -e`
//! as shipped (AES+HMAC+base64 on the relay thread) and without the relay thread, plus `-z`
//! and `-e` alone for scale. Built against an older checkout it gives the "before" figures.
//!
//! Usage: one_message [--mb 100] [--reps 5]

use std::io::Write;
use std::time::{Duration, Instant};

use smailarchiver::codec::{self, base64, cipher, deflate, fromline, Finish, Form, WriteOptions};
use smailarchiver_codec_bench::{process_cpu, Count};

/// A message like the benchmark's big one: headers, then base64 lines of random bytes.
fn message(mb: usize) -> Vec<u8> {
    let mut m = b"From: a@example.org\nSubject: The big one: disk image\nContent-Type: application/octet-stream\n\
Content-Transfer-Encoding: base64\n\n"
        .to_vec();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut raw = vec![0u8; 57];
    while m.len() < mb * 1_000_000 {
        for b in raw.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut line = String::new();
        use ::base64::Engine;
        ::base64::engine::general_purpose::STANDARD.encode_string(&raw, &mut line);
        m.extend_from_slice(line.as_bytes());
        m.push(b'\n');
    }
    m
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut mb, mut reps) = (100usize, 5usize);
    while let Some(a) = args.next() {
        let v: usize = args.next().and_then(|v| v.parse().ok()).expect("a number after the option");
        match a.as_str() {
            "--mb" => mb = v,
            "--reps" => reps = v,
            _ => panic!("unknown option {a}"),
        }
    }
    let dir = std::env::temp_dir().join(format!("one-message-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let keys = smailarchiver::keys::create(&dir.join("keys"), None).expect("key file");
    std::fs::remove_dir_all(&dir).ok();
    let msg = message(mb);
    let ze = Form { compressed: true, encrypted: true };
    type Chain<'a> = Box<dyn Fn() -> Box<dyn Finish> + 'a>;
    let variants: Vec<(&str, Chain)> = vec![
        (
            "-z -e as shipped (src/codec::writer)",
            Box::new(|| {
                codec::writer(WriteOptions { form: ze, level: 1, keys: Some(&keys) }, Box::new(Count::default()))
                    .unwrap()
            }),
        ),
        (
            "-z -e without the relay thread (encryption on the deflate thread)",
            Box::new(|| {
                let enc =
                    cipher::EncryptWriter::new(&keys, Box::new(base64::Base64Writer::new(Box::new(Count::default()))));
                let z = deflate::DeflateWriter::new(Box::new(enc.unwrap()), 1);
                Box::new(fromline::FromLineWriter::new(Box::new(z)))
            }),
        ),
        (
            "-z alone",
            Box::new(|| {
                let form = Form { compressed: true, encrypted: false };
                codec::writer(WriteOptions { form, level: 1, keys: None }, Box::new(Count::default())).unwrap()
            }),
        ),
        (
            "-e alone",
            Box::new(|| {
                let form = Form { compressed: false, encrypted: true };
                codec::writer(WriteOptions { form, level: 1, keys: Some(&keys) }, Box::new(Count::default())).unwrap()
            }),
        ),
    ];
    println!("one message of {:.1} MB, fastest of {reps} (wall and CPU each)", msg.len() as f64 / 1e6);
    println!("| chain | wall s | CPU s (all threads) | MB/s |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, chain) in &variants {
        let (mut wall, mut cpu) = (Duration::MAX, Duration::MAX);
        for _ in 0..reps {
            let (c0, t0) = (process_cpu(), Instant::now());
            let mut w = chain();
            for piece in msg.chunks(256 * 1024) {
                w.write_all(piece).expect("in memory");
            }
            w.finish().expect("in memory");
            wall = wall.min(t0.elapsed());
            cpu = cpu.min(process_cpu() - c0);
        }
        println!(
            "| {name} | {:.3} | {:.3} | {:.0} |",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            msg.len() as f64 / 1e6 / wall.as_secs_f64()
        );
    }
}
