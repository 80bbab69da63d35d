//! Deflate blocks of literals only (RFC 1951 3.2.7, no LZ77 matches), Huffman-coded with a
//! code of their own. Most of mail's bytes are base64 of already compressed attachments, in
//! which LZ77 finds nothing: coding such a block's bytes directly gives the same size as
//! miniz's level 1 at a fraction of its CPU, which is what `-z` costs on a NAS.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Longest code of the literal/length alphabet (RFC 1951 3.2.7).
const MAX_CODE: u8 = 15;
/// Longest code of the code-length alphabet.
const MAX_CL_CODE: u8 = 7;
/// End-of-block symbol.
const EOB: usize = 256;
/// Literal/length codes sent: the 256 literals and end-of-block.
const LIT_CODES: usize = 257;
/// Distance codes sent: two of length 1, as zlib does when a block has no match, so that
/// every decoder sees a complete code.
const DIST_LENGTHS: [u8; 2] = [1, 1];
/// The order in which code-length code lengths are sent.
const CL_ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/// How often each byte value occurs in `data`.
pub fn histogram(data: &[u8]) -> [u32; 256] {
    // Four tables: consecutive equal bytes would otherwise wait on each other's increment.
    let mut t = [[0u32; 256]; 4];
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        t[0][usize::from(c[0])] += 1;
        t[1][usize::from(c[1])] += 1;
        t[2][usize::from(c[2])] += 1;
        t[3][usize::from(c[3])] += 1;
    }
    for &b in chunks.remainder() {
        t[0][usize::from(b)] += 1;
    }
    let mut out = [0u32; 256];
    for (i, o) in out.iter_mut().enumerate() {
        *o = t[0][i] + t[1][i] + t[2][i] + t[3][i];
    }
    out
}

/// The Huffman code of one block's literals: code lengths of the 257 symbols.
pub struct LiteralCode {
    lengths: [u8; LIT_CODES],
}

impl LiteralCode {
    /// The optimal code (lengths at most 15) for bytes counted in `counts`, plus the
    /// end-of-block symbol.
    pub fn for_counts(counts: &[u32; 256]) -> LiteralCode {
        let mut freqs = [0u32; LIT_CODES];
        freqs[..256].copy_from_slice(counts);
        freqs[EOB] = 1;
        let mut lengths = [0u8; LIT_CODES];
        code_lengths(&freqs, MAX_CODE, &mut lengths);
        LiteralCode { lengths }
    }

    /// Bits the bytes counted in `counts` take in this code (the block's header aside).
    pub fn cost_bits(&self, counts: &[u32; 256]) -> u64 {
        counts.iter().zip(&self.lengths).map(|(&c, &l)| u64::from(c) * u64::from(l)).sum()
    }

    /// Appends `data` as one non-final block in this code, then a sync flush (an empty
    /// stored block), so the output ends on a byte boundary, as a flushed zlib block does.
    /// Every byte of `data` must have been counted when the code was made.
    pub fn write_block(&self, data: &[u8], out: &mut Vec<u8>) {
        let codes = canonical_codes(&self.lengths);
        let mut w = BitWriter::new(out);
        w.put(0, 1); // not the final block
        w.put(2, 2); // dynamic Huffman codes
        self.write_header(&mut w);
        // Each symbol's code and length in one word, so the loop does one load per byte.
        let mut table = [0u32; 256];
        for (t, (&code, &len)) in table.iter_mut().zip(codes.iter().zip(&self.lengths)) {
            *t = u32::from(code) | u32::from(len) << 16;
        }
        w.put_bytes(data, &table);
        w.put(u32::from(codes[EOB]), u32::from(self.lengths[EOB]));
        // Sync flush: an empty non-final stored block, byte-aligned.
        w.put(0, 3);
        w.align();
        w.out.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    }

    /// HLIT, HDIST, HCLEN, the code-length code and the run-length coded code lengths.
    fn write_header(&self, w: &mut BitWriter<'_>) {
        let mut all = [0u8; LIT_CODES + DIST_LENGTHS.len()];
        all[..LIT_CODES].copy_from_slice(&self.lengths);
        all[LIT_CODES..].copy_from_slice(&DIST_LENGTHS);
        let runs = run_lengths(&all);
        let mut cl_freqs = [0u32; 19];
        for &(sym, _) in &runs {
            cl_freqs[usize::from(sym)] += 1;
        }
        let mut cl_lengths = [0u8; 19];
        code_lengths(&cl_freqs, MAX_CL_CODE, &mut cl_lengths);
        let cl_codes = canonical_codes(&cl_lengths);
        let sent = CL_ORDER.iter().rposition(|&s| cl_lengths[s] != 0).map_or(4, |p| (p + 1).max(4));
        w.put((LIT_CODES - 257) as u32, 5);
        w.put((DIST_LENGTHS.len() - 1) as u32, 5);
        w.put((sent - 4) as u32, 4);
        for &s in &CL_ORDER[..sent] {
            w.put(u32::from(cl_lengths[s]), 3);
        }
        for &(sym, extra) in &runs {
            let s = usize::from(sym);
            w.put(u32::from(cl_codes[s]), u32::from(cl_lengths[s]));
            match sym {
                16 => w.put(u32::from(extra), 2),
                17 => w.put(u32::from(extra), 3),
                18 => w.put(u32::from(extra), 7),
                _ => {}
            }
        }
    }
}

/// Code lengths as the code-length alphabet sends them: (symbol, extra bits' value), with
/// 16 repeating the previous length 3-6 times, 17 and 18 runs of 3-10 and 11-138 zeros.
fn run_lengths(lengths: &[u8]) -> Vec<(u8, u8)> {
    let mut out = Vec::with_capacity(lengths.len());
    let mut i = 0;
    while i < lengths.len() {
        let len = lengths[i];
        let run = lengths[i..].iter().take_while(|&&l| l == len).count();
        i += run;
        let mut left = run;
        if len == 0 {
            while left >= 11 {
                let n = left.min(138);
                out.push((18, (n - 11) as u8));
                left -= n;
            }
            if left >= 3 {
                out.push((17, (left - 3) as u8));
                left = 0;
            }
        } else {
            out.push((len, 0));
            left -= 1;
            while left >= 3 {
                let n = left.min(6);
                out.push((16, (n - 3) as u8));
                left -= n;
            }
        }
        out.extend(std::iter::repeat_n((len, 0), left));
    }
    out
}

/// Huffman code lengths for `freqs` (0 for symbols that do not occur), none longer than
/// `max`. Lengths are made optimal first; if some exceed `max`, the counts per length are
/// moved back into range as zlib and miniz do, and given to the symbols by frequency.
fn code_lengths(freqs: &[u32], max: u8, lengths: &mut [u8]) {
    lengths.fill(0);
    let used: Vec<usize> = (0..freqs.len()).filter(|&s| freqs[s] != 0).collect();
    match used.len() {
        0 => return,
        1 => {
            // A code needs two codes to be complete; one symbol still gets one bit.
            lengths[used[0]] = 1;
            return;
        }
        _ => {}
    }
    // Tree nodes: leaves first, then inner nodes; parent links give each leaf its depth.
    let mut parent = vec![0usize; 2 * used.len() - 1];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> =
        used.iter().enumerate().map(|(i, &s)| Reverse((u64::from(freqs[s]), i))).collect();
    let mut next = used.len();
    while heap.len() > 1 {
        let (Some(Reverse((fa, a))), Some(Reverse((fb, b)))) = (heap.pop(), heap.pop()) else { break };
        parent[a] = next;
        parent[b] = next;
        heap.push(Reverse((fa + fb, next)));
        next += 1;
    }
    let root = next - 1;
    let mut depth = vec![0u32; 2 * used.len() - 1];
    for n in (0..root).rev() {
        depth[n] = depth[parent[n]] + 1;
    }
    let longest = depth[..used.len()].iter().copied().max().unwrap_or(0);
    if longest <= u32::from(max) {
        for (i, &s) in used.iter().enumerate() {
            lengths[s] = depth[i] as u8;
        }
        return;
    }
    // Count the codes per length, folding the too long ones into `max`, then shorten
    // until the Kraft sum is exactly one again.
    let max = usize::from(max);
    let mut per_len = vec![0u32; max + 1];
    for &d in &depth[..used.len()] {
        per_len[(d as usize).min(max)] += 1;
    }
    let kraft = |per_len: &[u32]| -> u64 { (1..=max).map(|l| u64::from(per_len[l]) << (max - l)).sum() };
    let mut total = kraft(&per_len);
    while total > 1u64 << max {
        per_len[max] -= 1;
        if let Some(l) = (1..max).rev().find(|&l| per_len[l] != 0) {
            per_len[l] -= 1;
            per_len[l + 1] += 2;
        }
        total -= 1;
    }
    // The most frequent symbols get the shortest codes.
    let mut by_freq = used.clone();
    by_freq.sort_by_key(|&s| (Reverse(freqs[s]), s));
    let mut syms = by_freq.into_iter();
    for (l, &n) in per_len.iter().enumerate().skip(1) {
        for s in syms.by_ref().take(n as usize) {
            lengths[s] = l as u8;
        }
    }
}

/// The canonical codes for `lengths` (RFC 1951 3.2.2), bit-reversed: deflate sends a
/// Huffman code's first bit first, in a stream written from the least significant bit.
fn canonical_codes(lengths: &[u8]) -> Vec<u16> {
    let mut per_len = [0u16; 16];
    for &l in lengths {
        per_len[usize::from(l)] += 1;
    }
    per_len[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for l in 1..16 {
        code = (code + per_len[l - 1]) << 1;
        next[l] = code;
    }
    lengths
        .iter()
        .map(|&l| {
            if l == 0 {
                return 0;
            }
            let c = next[usize::from(l)];
            next[usize::from(l)] += 1;
            c.reverse_bits() >> (16 - l)
        })
        .collect()
}

/// Writes bits least significant first, as deflate packs them.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, bits: 0 }
    }

    /// Appends the low `n` (at most 16) bits of `value`.
    #[inline(always)]
    fn put(&mut self, value: u32, n: u32) {
        self.acc |= u64::from(value) << self.bits;
        self.bits += n;
        if self.bits >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.bits -= 32;
        }
    }

    /// Appends each byte of `data` as its code in `table` (code | length << 16, lengths at
    /// most 15). Three codes fit in the 64-bit word between two stores, which write whole
    /// words into room reserved beforehand: no per-code check of the vector's length.
    fn put_bytes(&mut self, data: &[u8], table: &[u32; 256]) {
        // Start with fewer than 8 bits held, as `store` leaves them.
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
        let start = self.out.len();
        // At most 15 bits a byte, and a word's slack for the last store.
        self.out.resize(start + data.len() * 15 / 8 + 16, 0);
        let mut pos = start;
        let (mut acc, mut bits) = (self.acc, self.bits);
        let buf = &mut self.out[..];
        let mut store = |acc: &mut u64, bits: &mut u32| {
            if let Some(word) = buf.get_mut(pos..pos + 8) {
                word.copy_from_slice(&acc.to_le_bytes());
            }
            let whole = *bits / 8;
            pos += whole as usize;
            *acc = if whole == 8 { 0 } else { *acc >> (whole * 8) };
            *bits -= whole * 8;
        };
        let mut triples = data.chunks_exact(3);
        for t in &mut triples {
            for &b in t {
                let e = table[usize::from(b)];
                acc |= u64::from(e & 0xffff) << bits;
                bits += e >> 16;
            }
            store(&mut acc, &mut bits);
        }
        for &b in triples.remainder() {
            let e = table[usize::from(b)];
            acc |= u64::from(e & 0xffff) << bits;
            bits += e >> 16;
            store(&mut acc, &mut bits);
        }
        self.out.truncate(pos);
        self.acc = acc;
        self.bits = bits;
    }

    /// Writes the bits still held, padding the last byte with zeros.
    fn align(&mut self) {
        while self.bits > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits = self.bits.saturating_sub(8);
        }
        self.acc = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miniz_oxide::inflate::decompress_to_vec;

    /// A raw deflate stream of `data` as literal blocks of `block` bytes, closed by an
    /// empty final block.
    fn encode(data: &[u8], block: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in data.chunks(block.max(1)) {
            LiteralCode::for_counts(&histogram(piece)).write_block(piece, &mut out);
        }
        if data.is_empty() {
            LiteralCode::for_counts(&histogram(data)).write_block(data, &mut out);
        }
        out.extend_from_slice(&[0x03, 0x00]);
        out
    }

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn round_trips_through_an_inflater() {
        let mut seed = 7;
        let random: Vec<u8> = (0..100_000).map(|_| lcg(&mut seed) as u8).collect();
        let b64: Vec<u8> = random
            .chunks(57)
            .flat_map(|c| {
                let mut l = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, c).into_bytes();
                l.extend_from_slice(b"\r\n");
                l
            })
            .collect();
        for data in [&b""[..], b"a", b"aaaaaaaaaaaaaaaaaaaa", b"ab", &random, &b64] {
            for block in [1, 7, 4096, 1 << 20] {
                let back = decompress_to_vec(&encode(data, block)).expect("inflates");
                assert_eq!(back, data, "{} bytes in blocks of {block}", data.len());
            }
        }
    }

    #[test]
    fn base64_shrinks_like_an_order_zero_coder() {
        let mut seed = 3;
        let random: Vec<u8> = (0..96_000).map(|_| lcg(&mut seed) as u8).collect();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &random).into_bytes();
        let out = encode(&b64, b64.len());
        // 6 bits of information per character, and a header of a few dozen bytes.
        let ratio = out.len() as f64 / b64.len() as f64;
        assert!((0.75..0.76).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn skewed_counts_are_limited_to_fifteen_bits() {
        // Fibonacci counts (after the end-of-block symbol's 1) make an unlimited Huffman
        // code as deep as there are symbols.
        let mut data = Vec::new();
        let (mut a, mut b) = (2usize, 3usize);
        for sym in 0..25u8 {
            data.extend(std::iter::repeat_n(sym, a));
            (a, b) = (b, a + b);
        }
        let code = LiteralCode::for_counts(&histogram(&data));
        assert!(code.lengths.iter().all(|&l| l <= MAX_CODE));
        assert!(code.lengths.contains(&MAX_CODE), "{:?}", &code.lengths[..26]);
        let kraft: f64 = code.lengths.iter().filter(|&&l| l > 0).map(|&l| 0.5f64.powi(i32::from(l))).sum();
        assert!((kraft - 1.0).abs() < 1e-12, "kraft sum {kraft}");
        assert_eq!(decompress_to_vec(&encode(&data, data.len())).expect("inflates"), data);
    }

    #[test]
    fn cost_counts_the_coded_bits() {
        let data = b"abracadabra, abracadabra";
        let counts = histogram(data);
        let code = LiteralCode::for_counts(&counts);
        let bits: u64 = data.iter().map(|&b| u64::from(code.lengths[usize::from(b)])).sum();
        assert_eq!(code.cost_bits(&counts), bits);
    }
}
