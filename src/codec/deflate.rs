//! The compression layer: a zlib stream (RFC 1950) as the original wrote it. Reading
//! also accepts a real gzip member (RFC 1952), which the `.gz` suffix suggests.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, deflate_flags::TDEFL_COMPUTE_ADLER32, CompressorOxide,
    TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use super::base64::read_full;
use super::literals::{self, LiteralCode};
use super::{invalid, Finish, BUF_SIZE};

/// Uncompressed bytes per block. Each block is compressed on its own (no window shared
/// with the previous one), so two blocks can be compressed at once: a message bigger than
/// a block uses two cores. Small, for memory (two blocks in, two out, per message being
/// written); large enough that the cost of starting afresh stays in the noise (README).
const BLOCK: usize = 128 * 1024;

/// Whether a helper thread exists: there is one at most in the process, so that two
/// writer threads (`-z`, two messages at once) do not add two more compressors and their
/// blocks to the memory, for no gain on two cores.
static HELPER_TAKEN: AtomicBool = AtomicBool::new(false);

/// The last block of a deflate stream: empty, fixed Huffman codes, final bit set.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

/// Compresses everything written to it into a zlib stream (RFC 1950) made of raw deflate
/// blocks, each ended by a sync flush (byte-aligned, non-final), then an empty final block
/// and the Adler-32 of the whole: what zlib itself writes when flushed now and then, so any
/// zlib decoder (the original's `zlib.decompress`) reads it. A message of more than one
/// block has its blocks compressed alternately on a helper thread and here.
pub struct DeflateWriter {
    level: u8,
    compressor: BlockCompressor,
    block: Vec<u8>,
    /// An emptied block buffer back from the helper, for the next block.
    spare: Option<Vec<u8>>,
    out: Vec<u8>,
    adler: u32,
    header_written: bool,
    helper: Option<Helper>,
    /// Length of the block the helper holds; its output precedes the next block's.
    pending: Option<usize>,
    /// Another message had the helper when this one needed it.
    alone: bool,
    inner: Box<dyn Finish>,
}

/// What a block comes back as: its buffer (for reuse), its compressed bytes, its Adler-32.
type Compressed = io::Result<(Vec<u8>, Vec<u8>, u32)>;

/// The thread compressing every other block of a big message; holds [`HELPER_TAKEN`].
struct Helper {
    blocks: Option<SyncSender<Vec<u8>>>,
    results: Receiver<Compressed>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    /// Starts the helper, unless another message has it: then `None`.
    fn start(level: u8) -> io::Result<Option<Helper>> {
        if HELPER_TAKEN.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Ok(None);
        }
        let (blocks, rx) = mpsc::sync_channel::<Vec<u8>>(1);
        let (tx, results) = mpsc::channel();
        let thread = std::thread::Builder::new().name("codec-deflate".into()).spawn(move || {
            let mut compressor = BlockCompressor::new(level);
            for block in rx {
                let mut out = Vec::with_capacity(block.len() / 2);
                let res = compressor.compress(&block, &mut out).map(|adler| (block, out, adler));
                if tx.send(res).is_err() {
                    return;
                }
            }
        });
        match thread {
            Ok(t) => Ok(Some(Helper { blocks: Some(blocks), results, thread: Some(t) })),
            Err(e) => {
                HELPER_TAKEN.store(false, Ordering::Release);
                Err(e)
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Without its queue the thread ends after the block in hand.
        self.blocks = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        HELPER_TAKEN.store(false, Ordering::Release);
    }
}

/// Bytes at the start of a block compressed first, to see whether LZ77 finds matches
/// there: large enough that a block header weighs little, small enough that the work is
/// little when it is thrown away.
const SAMPLE: usize = 8 * 1024;

/// LZ77 has to save this share (in percent) on the sample for the block to be compressed
/// by miniz; otherwise it is coded as literals: base64 of compressed attachments, where
/// matches hardly occur.
const LZ_MIN_GAIN_PERCENT: u64 = 2;

/// About what a literal block's header takes (its code lengths), for a fair comparison
/// with the sample's miniz block, header included.
const LITERAL_HEADER_BITS: u64 = 48 * 8;

/// A compressor of independent blocks.
struct BlockCompressor {
    level: u8,
    state: Box<CompressorOxide>,
    /// Whether the state holds a block's history, to be cleared before the next one.
    used: bool,
    /// The last block was coded as literals: a next block of nothing but base64 is too,
    /// without a sample (the same attachment goes on).
    after_literals: bool,
}

impl BlockCompressor {
    fn new(level: u8) -> Self {
        // Negative window bits: raw deflate, no zlib header; the Adler-32 is still computed.
        let flags = create_comp_flags_from_zip_params(i32::from(level.min(10)), -15, 0) | TDEFL_COMPUTE_ADLER32;
        BlockCompressor { level, state: Box::new(CompressorOxide::new(flags)), used: false, after_literals: false }
    }

    /// Compresses `block` on its own, ending with a sync flush, into `out`; returns the
    /// block's Adler-32. The block's start is compressed by miniz first; if LZ77 gained
    /// little there, the block is Huffman-coded as literals instead (src/codec/literals.rs),
    /// for the same size at a fraction of the CPU, else miniz goes on where it stopped.
    fn compress(&mut self, block: &[u8], out: &mut Vec<u8>) -> io::Result<u32> {
        let after_literals = std::mem::take(&mut self.after_literals);
        if self.level == 0 || block.len() < 2 * SAMPLE {
            return self.lz(block, out);
        }
        let (sample, rest) = block.split_at(SAMPLE);
        if after_literals {
            let counts = literals::histogram(block);
            if base64_only(&counts) {
                return Ok(self.literals(block, &counts, out));
            }
        }
        self.lz(sample, out)?;
        let mut counts = literals::histogram(sample);
        let literal_bits = LiteralCode::for_counts(&counts).cost_bits(&counts) + LITERAL_HEADER_BITS;
        if out.len() as u64 * 8 * 100 < literal_bits * (100 - LZ_MIN_GAIN_PERCENT) {
            return self.lz_more(rest, out);
        }
        for (c, r) in counts.iter_mut().zip(literals::histogram(rest)) {
            *c += r;
        }
        Ok(self.literals(block, &counts, out))
    }

    /// Codes `block` (whose bytes `counts` counts) as one block of literals into `out`;
    /// returns its Adler-32.
    fn literals(&mut self, block: &[u8], counts: &[u32; 256], out: &mut Vec<u8>) -> u32 {
        out.clear();
        LiteralCode::for_counts(counts).write_block(block, out);
        self.after_literals = true;
        adler32(1, block)
    }

    /// Compresses `block` with miniz (LZ77 and Huffman codes), ending with a sync flush.
    fn lz(&mut self, block: &[u8], out: &mut Vec<u8>) -> io::Result<u32> {
        if self.used {
            self.state.reset();
        }
        self.used = true;
        out.clear();
        self.lz_more(block, out)
    }

    /// Goes on compressing after what [`Self::lz`] compressed, matches reaching back into it,
    /// appending to `out`; returns the Adler-32 of everything since.
    fn lz_more(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<u32> {
        let (status, consumed) = compress_to_output(&mut self.state, data, TDEFLFlush::Sync, |bytes| {
            out.extend_from_slice(bytes);
            true
        });
        if status != TDEFLStatus::Okay || consumed != data.len() {
            return Err(io::Error::other(format!("zlib compression failed: {status:?}")));
        }
        Ok(self.state.adler32())
    }
}

/// Whether only base64's alphabet and line ends occur in the bytes `counts` counts.
fn base64_only(counts: &[u32; 256]) -> bool {
    counts.iter().enumerate().all(|(b, &c)| {
        let b = b as u8;
        c == 0 || b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\r' | b'\n')
    })
}

/// The Adler-32 of `data` continued from `adler` (RFC 1950 8.2).
fn adler32(adler: u32, data: &[u8]) -> u32 {
    const BASE: u64 = 65521;
    // Bytes summed in lanes: the compiler keeps the lanes in vector registers.
    const LANES: usize = 16;
    // A chunk is summed before a reduction; lane sums stay far below 2^32 within it.
    const CHUNK: usize = 5552;
    let (mut a, mut b) = (u64::from(adler & 0xffff), u64::from(adler >> 16));
    for chunk in data.chunks(CHUNK) {
        let mut sums = [0u32; LANES];
        let mut weighted = [0u32; LANES];
        let mut rows = chunk.chunks_exact(LANES);
        for row in &mut rows {
            for j in 0..LANES {
                sums[j] += u32::from(row[j]);
                weighted[j] += sums[j];
            }
        }
        // Byte j of row k (of n rows) adds (n - k) * LANES - j times itself to b.
        let n = (chunk.len() - rows.remainder().len()) as u64;
        b += n * a;
        for j in 0..LANES {
            b += u64::from(weighted[j]) * LANES as u64 - j as u64 * u64::from(sums[j]);
            a += u64::from(sums[j]);
        }
        for &x in rows.remainder() {
            a += u64::from(x);
            b += a;
        }
        a %= BASE;
        b %= BASE;
    }
    (b << 16 | a) as u32
}

/// The Adler-32 of two pieces joined, from theirs (zlib's adler32_combine).
fn adler32_combine(first: u32, second: u32, second_len: usize) -> u32 {
    const BASE: u64 = 65521;
    let rem = second_len as u64 % BASE;
    let a1 = u64::from(first & 0xffff);
    let b1 = u64::from(first >> 16);
    let a2 = u64::from(second & 0xffff);
    let b2 = u64::from(second >> 16);
    let a = (a1 + a2 + BASE - 1) % BASE;
    let b = (rem * a1 % BASE + b1 + b2 + BASE - rem) % BASE;
    (b << 16 | a) as u32
}

impl DeflateWriter {
    /// Compresses at `level` (0..=10; values above are clamped) into `inner`.
    pub fn new(inner: Box<dyn Finish>, level: u8) -> Self {
        DeflateWriter {
            level,
            compressor: BlockCompressor::new(level),
            block: Vec::with_capacity(BLOCK),
            spare: None,
            out: Vec::new(),
            adler: 1,
            header_written: false,
            helper: None,
            pending: None,
            alone: false,
            inner,
        }
    }

    /// Writes compressed bytes, after the zlib header the first time.
    fn emit(inner: &mut Box<dyn Finish>, header_written: &mut bool, level: u8, bytes: &[u8]) -> io::Result<()> {
        if !*header_written {
            // CMF: deflate, 32 KiB window; FLG: the level class, check bits (RFC 1950 2.2).
            let flg = match level {
                0 | 1 => 0x01,
                2..=5 => 0x5e,
                6 => 0x9c,
                _ => 0xda,
            };
            inner.write_all(&[0x78, flg])?;
            *header_written = true;
        }
        inner.write_all(bytes)
    }

    /// Writes the helper's block, if it holds one: it comes before the block in hand.
    fn collect(&mut self) -> io::Result<()> {
        let (Some(len), Some(helper)) = (self.pending.take(), self.helper.as_ref()) else { return Ok(()) };
        let (mut buf, out, adler) =
            helper.results.recv().map_err(|_| io::Error::other("the compression thread stopped"))??;
        self.adler = adler32_combine(self.adler, adler, len);
        Self::emit(&mut self.inner, &mut self.header_written, self.level, &out)?;
        buf.clear();
        self.spare = Some(buf);
        Ok(())
    }

    /// A full block: to the helper when it is free, else compressed here.
    fn block_full(&mut self) -> io::Result<()> {
        if self.pending.is_none() && !self.alone {
            if self.helper.is_none() {
                self.helper = Helper::start(self.level)?;
                // Another message has the helper: this one is compressed here, whole.
                self.alone = self.helper.is_none();
                if self.alone {
                    return self.compress_here();
                }
            }
            let next = self.spare.take().unwrap_or_else(|| Vec::with_capacity(BLOCK));
            let block = std::mem::replace(&mut self.block, next);
            let len = block.len();
            let sent = self.helper.as_ref().and_then(|h| h.blocks.as_ref()).is_some_and(|tx| tx.send(block).is_ok());
            if !sent {
                return Err(io::Error::other("the compression thread stopped"));
            }
            self.pending = Some(len);
            return Ok(());
        }
        self.compress_here()
    }

    /// Compresses the block in hand on this thread and writes it after the helper's.
    fn compress_here(&mut self) -> io::Result<()> {
        let adler = self.compressor.compress(&self.block, &mut self.out)?;
        self.collect()?;
        self.adler = adler32_combine(self.adler, adler, self.block.len());
        Self::emit(&mut self.inner, &mut self.header_written, self.level, &self.out)?;
        self.block.clear();
        Ok(())
    }
}

impl Write for DeflateWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&data[..n]);
        if self.block.len() == BLOCK {
            self.block_full()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Finish for DeflateWriter {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if self.block.is_empty() {
            self.collect()?;
            Self::emit(&mut self.inner, &mut self.header_written, self.level, &[])?;
        } else {
            self.compress_here()?;
        }
        self.helper = None;
        let mut tail = FINAL_EMPTY_BLOCK.to_vec();
        tail.extend_from_slice(&self.adler.to_be_bytes());
        self.inner.write_all(&tail)?;
        self.inner.finish()
    }
}

/// Which container the compressed stream came in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Container {
    Zlib,
    Gzip,
}

/// Decompresses a zlib stream or a gzip member, checking its checksum at the end.
pub struct InflateReader<R: Read> {
    inner: R,
    state: Option<Box<InflateState>>,
    container: Container,
    input: Vec<u8>,
    in_pos: usize,
    in_end: usize,
    done: bool,
    crc: u32,
    size: u32,
}

impl<R: Read> InflateReader<R> {
    /// Wraps a reader of compressed bytes.
    pub fn new(inner: R) -> Self {
        InflateReader {
            inner,
            state: None,
            container: Container::Zlib,
            input: vec![0u8; BUF_SIZE],
            in_pos: 0,
            in_end: 0,
            done: false,
            crc: 0,
            size: 0,
        }
    }

    /// Looks at the first bytes to tell zlib from gzip; skips a gzip header.
    fn start(&mut self) -> io::Result<()> {
        self.in_end = read_full(&mut self.inner, &mut self.input)?;
        if self.in_end >= 2 && self.input[0] == 0x1f && self.input[1] == 0x8b {
            self.container = Container::Gzip;
            self.in_pos = self.gzip_header_len()?;
            self.state = Some(InflateState::new_boxed(DataFormat::Raw));
        } else {
            if self.in_end < 2 {
                return Err(invalid("compressed data is too short"));
            }
            let (cmf, flg) = (self.input[0], self.input[1]);
            if cmf & 0x0f != 8 || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
                return Err(invalid("not zlib or gzip data (bad header)"));
            }
            self.state = Some(InflateState::new_boxed(DataFormat::Zlib));
        }
        Ok(())
    }

    /// Length of the gzip header in the first buffer (RFC 1952 section 2.3).
    fn gzip_header_len(&self) -> io::Result<usize> {
        let h = &self.input[..self.in_end];
        let short = || invalid("gzip header is cut short");
        if h.len() < 10 || h[2] != 8 {
            return Err(invalid("unsupported gzip header"));
        }
        let flags = h[3];
        let mut pos = 10;
        if flags & 0x04 != 0 {
            let xlen =
                usize::from(*h.get(pos).ok_or_else(short)?) | usize::from(*h.get(pos + 1).ok_or_else(short)?) << 8;
            pos += 2 + xlen;
        }
        for bit in [0x08, 0x10] {
            if flags & bit != 0 {
                let nul = h.get(pos..).ok_or_else(short)?.iter().position(|&b| b == 0).ok_or_else(short)?;
                pos += nul + 1;
            }
        }
        if flags & 0x02 != 0 {
            pos += 2;
        }
        if pos > h.len() {
            return Err(short());
        }
        Ok(pos)
    }

    /// Reads `n` trailer bytes that follow the deflate data.
    fn trailer(&mut self, n: usize) -> io::Result<[u8; 8]> {
        let mut t = [0u8; 8];
        let from_buf = (self.in_end - self.in_pos).min(n);
        t[..from_buf].copy_from_slice(&self.input[self.in_pos..self.in_pos + from_buf]);
        self.in_pos += from_buf;
        if read_full(&mut self.inner, &mut t[from_buf..n])? != n - from_buf {
            return Err(invalid("gzip trailer is cut short"));
        }
        Ok(t)
    }

    /// After the stream's end, the file must end too.
    fn expect_end(&mut self) -> io::Result<()> {
        let mut probe = [0u8; 1];
        if self.in_pos < self.in_end || read_full(&mut self.inner, &mut probe)? != 0 {
            return Err(invalid("unexpected data after the end of the compressed stream"));
        }
        Ok(())
    }
}

impl<R: Read> Read for InflateReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        if self.state.is_none() {
            self.start()?;
        }
        loop {
            if self.in_pos == self.in_end {
                self.in_end = read_full(&mut self.inner, &mut self.input)?;
                self.in_pos = 0;
            }
            let eof = self.in_end == 0;
            let state = self.state.as_mut().ok_or_else(|| io::Error::other("inflate state missing"))?;
            let res =
                miniz_oxide::inflate::stream::inflate(state, &self.input[self.in_pos..self.in_end], out, MZFlush::None);
            self.in_pos += res.bytes_consumed;
            let written = &out[..res.bytes_written];
            if self.container == Container::Gzip {
                self.crc = crc32_update(self.crc, written);
                self.size = self.size.wrapping_add(written.len() as u32);
            }
            match res.status {
                Ok(MZStatus::StreamEnd) => {
                    if self.container == Container::Gzip {
                        let t = self.trailer(8)?;
                        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
                        let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
                        if crc != self.crc || size != self.size {
                            return Err(invalid("gzip checksum mismatch: the data is corrupt"));
                        }
                    }
                    self.expect_end()?;
                    self.done = true;
                    return Ok(res.bytes_written);
                }
                Ok(_) | Err(MZError::Buf) => {
                    if res.bytes_written > 0 {
                        return Ok(res.bytes_written);
                    }
                    if eof {
                        return Err(invalid("compressed data is cut short"));
                    }
                }
                Err(MZError::Data) => {
                    return Err(invalid(if self.container == Container::Zlib {
                        "corrupt zlib data (bad deflate block or Adler-32 checksum)"
                    } else {
                        "corrupt gzip data"
                    }))
                }
                Err(e) => return Err(invalid(format!("decompression failed: {e:?}"))),
            }
        }
    }
}

/// CRC-32 (IEEE) as gzip uses it; table built at compile time.
fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !crc;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_combines_like_one_pass() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let whole = BlockCompressor::new(1).compress(&data, &mut Vec::new()).unwrap();
        for cut in [0, 1, 5552, 65521, 200_000, data.len()] {
            let a = BlockCompressor::new(1).compress(&data[..cut], &mut Vec::new()).unwrap();
            let b = BlockCompressor::new(1).compress(&data[cut..], &mut Vec::new()).unwrap();
            assert_eq!(adler32_combine(a, b, data.len() - cut), whole, "cut at {cut}");
        }
        // Known answer (RFC 1950's algorithm): "Wikipedia" is 0x11E60398.
        assert_eq!(BlockCompressor::new(1).compress(b"Wikipedia", &mut Vec::new()).unwrap(), 0x11e6_0398);
    }

    #[test]
    fn adler32_matches_miniz() {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80).collect();
        for len in [0, 1, 15, 16, 17, 5551, 5552, 5553, 11_104, 40_000] {
            let mut lz = BlockCompressor::new(1);
            let want = lz.lz(&data[..len], &mut Vec::new()).unwrap();
            assert_eq!(adler32(1, &data[..len]), want, "{len} bytes");
            let cut = len / 3;
            assert_eq!(adler32(adler32(1, &data[..cut]), &data[cut..len]), want, "{len} bytes cut at {cut}");
        }
        assert_eq!(adler32(1, &[0xff; 100_000]), {
            let mut lz = BlockCompressor::new(1);
            lz.lz(&[0xff; 100_000], &mut Vec::new()).unwrap()
        });
    }

    /// 128,000 bytes of base64 of random bytes (as an attachment travels), and as much text.
    fn base64_and_text(mut seed: u64) -> (Vec<u8>, Vec<u8>) {
        let random: Vec<u8> = (0..96_000)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 40) as u8
            })
            .collect();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &random).into_bytes();
        let text = (0..b64.len()).map(|i| b"From the quick brown fox\n"[i % 25]).collect();
        (b64, text)
    }

    /// A block of base64 (random bytes) is coded as literals, a block of text by miniz.
    #[test]
    fn blocks_where_lz_finds_nothing_are_coded_as_literals() {
        let (b64, text) = base64_and_text(11);
        for (data, literal) in [(&b64, true), (&text, false)] {
            let mut out = Vec::new();
            let adler = BlockCompressor::new(1).compress(data, &mut out).unwrap();
            let mut lz_out = Vec::new();
            let mut lz = BlockCompressor::new(1);
            lz.lz(&data[..SAMPLE], &mut lz_out).unwrap();
            assert_eq!(lz.lz_more(&data[SAMPLE..], &mut lz_out).unwrap(), adler);
            let mut lit_out = Vec::new();
            LiteralCode::for_counts(&literals::histogram(data)).write_block(data, &mut lit_out);
            assert_eq!(out == lit_out, literal, "literal block expected: {literal}");
            assert_eq!(out == lz_out, !literal);
        }
    }

    /// After a block of literals, a block of base64 is coded as literals without a sample,
    /// and a block of text still goes to miniz; every output inflates to its block.
    #[test]
    fn after_literals_base64_skips_the_sample_and_text_does_not() {
        let (b64, text) = base64_and_text(5);
        let mut c = BlockCompressor::new(1);
        for (data, literal) in [(&b64, true), (&b64, true), (&text, false), (&b64, true)] {
            let mut out = Vec::new();
            c.compress(data, &mut out).unwrap();
            let mut lit = Vec::new();
            LiteralCode::for_counts(&literals::histogram(data)).write_block(data, &mut lit);
            assert_eq!(out == lit, literal);
            assert_eq!(c.after_literals, literal);
            out.extend_from_slice(&FINAL_EMPTY_BLOCK);
            assert_eq!(&miniz_oxide::inflate::decompress_to_vec(&out).unwrap(), data);
        }
    }

    /// Streams of many blocks, written in odd pieces, at several levels, read back by
    /// miniz's one-shot zlib decoder (which checks the header and Adler-32) and by ours.
    #[test]
    fn block_streams_are_standard_zlib() {
        let text: Vec<u8> =
            (0..(3 * BLOCK + 12_345)).map(|i| b"From the quick brown fox\n"[i % 25] ^ ((i / 4099) as u8 & 1)).collect();
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, text.len()] {
            for level in [0u8, 1, 6, 10] {
                let (sink, out) = crate::codec::shared_sink();
                let mut w = Box::new(DeflateWriter::new(sink, level));
                for piece in text[..len].chunks(7_777) {
                    w.write_all(piece).unwrap();
                }
                w.finish().unwrap();
                let z = out.lock().unwrap().clone();
                assert_eq!(u16::from_be_bytes([z[0], z[1]]) % 31, 0, "header check bits");
                let back = miniz_oxide::inflate::decompress_to_vec_zlib(&z).unwrap();
                assert!(back == text[..len], "len {len} level {level}");
                let mut ours = Vec::new();
                InflateReader::new(&z[..]).read_to_end(&mut ours).unwrap();
                assert!(ours == text[..len], "len {len} level {level} (InflateReader)");
            }
        }
    }

    /// While another message has the helper, a big message is compressed here, whole.
    #[test]
    fn without_the_helper_blocks_are_compressed_here() {
        // Take the helper as another message would (waiting for other tests to drop theirs).
        while HELPER_TAKEN.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            std::thread::yield_now();
        }
        let data: Vec<u8> = (0..(3 * BLOCK + 5)).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect();
        let (sink, out) = crate::codec::shared_sink();
        let mut w = Box::new(DeflateWriter::new(sink, 1));
        w.write_all(&data).unwrap();
        let alone = w.alone && w.helper.is_none();
        w.finish().unwrap();
        HELPER_TAKEN.store(false, Ordering::Release);
        assert!(alone, "the writer must not have started a second helper");
        assert!(miniz_oxide::inflate::decompress_to_vec_zlib(&out.lock().unwrap()).unwrap() == data);
    }

    #[test]
    fn crc32_known_answer() {
        assert_eq!(crc32_update(0, b"123456789"), 0xcbf4_3926);
    }
}
