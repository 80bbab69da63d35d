//! What the codec benchmark's programs share: reading the data sets, a sink that counts,
//! and the process's CPU time.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use smailarchiver::codec::Finish;

/// Reads a record file of tests/bench/codec/run (each record: u32 LE length, bytes).
pub fn read_set(path: &str) -> Vec<Vec<u8>> {
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

/// Counts what reaches it (into the shared counter), keeps nothing.
#[derive(Clone, Default)]
pub struct Count(pub Arc<AtomicU64>);

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

/// User+sys CPU of the whole process (every thread) so far.
pub fn process_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) }, 0);
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
