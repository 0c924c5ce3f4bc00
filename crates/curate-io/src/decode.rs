//! Decompression that only vouches for what the stream itself verified.
//!
//! A compressed file is a sequence of units (gzip members, zstd frames). Bytes decoded from a
//! unit are handed on as *sound* or *damaged* (with the reason), never as sound before the
//! unit proved them:
//!
//! * gzip: a member's bytes are sound only once its CRC-32 and length trailer matched. Deflate
//!   has no redundancy of its own, so damage shows up as garbled output long before a decoder
//!   error or the trailer; a member that fails (bad data, bad trailer, truncated) is damaged
//!   as a whole. After a bad trailer the next member is read; after bad data or truncation
//!   nothing further can be decoded.
//! * zstd: a frame with a content checksum is sound only once the checksum matched; if it
//!   does not, the whole frame is damaged and the next frame is read. zstd decodes block by
//!   block and checks each block's structure (entropy streams must end exactly, sizes and
//!   offsets must agree), so when a block fails to decode, the blocks before it are sound, as
//!   `zstd -dc` outputs them, and nothing after it can be decoded. A frame without a checksum
//!   cannot be verified: its output is taken as decoded.
//!
//! A unit is held in memory until it is verified, up to a bound; a larger unit is decoded
//! once to verify it (output discarded), then read again from its start and decoded for
//! real. Most `.gz` files are one member, so this second pass is the common case for large
//! files: bounded memory and no temporary files, for twice the decompression work.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;

/// Compression of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Not compressed.
    Plain,
    /// gzip, one or more members.
    Gzip,
    /// zstd, one or more frames.
    Zstd,
}

impl Codec {
    /// The codec a file name implies.
    pub(crate) fn of(name: &str) -> Codec {
        if name.ends_with(".gz") {
            Codec::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".zstd") {
            Codec::Zstd
        } else {
            Codec::Plain
        }
    }
}

/// Decoded bytes held in memory while a unit awaits its check.
pub(crate) const HOLD_BYTES: usize = 16 << 20;

/// Opens the compressed input again at a byte offset, for the second pass over a unit too
/// large to hold.
pub(crate) type Reopen<'a> = Box<dyn Fn(u64) -> io::Result<Box<dyn Read + Send + 'a>> + Send + 'a>;

/// Why a unit's output cannot be trusted.
#[derive(Debug, Clone)]
struct Failure {
    message: String,
    /// The output decoded before the failure is sound.
    keep_before: bool,
    /// The unit's end is known, so decoding goes on with the next unit.
    resumable: bool,
}

enum State {
    Going,
    /// The unit ended intact.
    End,
    Failed(Failure),
}

struct Step {
    consumed: usize,
    produced: usize,
    state: State,
}

/// One codec's decoder, unit by unit.
trait UnitDecoder: Send {
    /// What a unit is called in messages.
    fn unit(&self) -> &'static str;
    /// Prepares for a unit starting at the next input byte.
    fn start(&mut self);
    /// Whether the unit carries a checksum, once its header has been read.
    fn checked(&self) -> Option<bool>;
    /// The most input the next step may take, so that a step never decodes a sound block
    /// and a failing one together (the sound output would be lost with the error).
    fn max_input(&self) -> usize;
    /// Decodes from `input` into `output`.
    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Step;
    /// The failure when the input ends inside a unit.
    fn truncated(&self) -> Failure;
}

/// A stretch of decoded output that failed verification.
struct Damage {
    start: u64,
    end: u64,
    reason: Arc<str>,
}

enum Mode {
    /// Between units.
    Between,
    /// Holding the unit's output until its check.
    Hold,
    /// A unit without checksum: output goes out as decoded.
    Stream,
    /// First pass over a large unit: decode to learn the verdict, discard the output.
    Verify,
    /// Second pass: decode again, output sound or damaged per the first pass.
    Replay { damaged: Option<Arc<str>> },
    Done,
}

/// Decompressed input that marks which stretches are damaged. It never fails on damaged
/// data: a read error is an I/O error of the underlying input.
pub(crate) struct Decoded<'a> {
    label: String,
    dec: Box<dyn UnitDecoder>,
    input: Box<dyn Read + Send + 'a>,
    reopen: Option<Reopen<'a>>,
    hold: usize,
    inbuf: Box<[u8]>,
    in_lo: usize,
    in_hi: usize,
    in_eof: bool,
    /// Compressed offset of `inbuf[in_lo]`.
    in_pos: u64,
    /// Furthest compressed offset decoded, for progress.
    in_max: u64,
    /// The last step filled the output buffer: the decoder may hold more output.
    out_full: bool,
    scratch: Box<[u8]>,
    pending: Vec<u8>,
    ready: Vec<u8>,
    ready_lo: usize,
    /// Decoded offset of the end of `ready`.
    released: u64,
    damage: VecDeque<Damage>,
    unit_index: u64,
    unit_in: u64,
    mode: Mode,
    failure: Option<Arc<str>>,
}

impl<'a> Decoded<'a> {
    fn new(dec: Box<dyn UnitDecoder>, label: String, input: Box<dyn Read + Send + 'a>, reopen: Option<Reopen<'a>>, hold: usize) -> Self {
        Decoded {
            label,
            dec,
            input,
            reopen,
            hold,
            inbuf: vec![0; 256 << 10].into_boxed_slice(),
            in_lo: 0,
            in_hi: 0,
            in_eof: false,
            in_pos: 0,
            in_max: 0,
            out_full: false,
            scratch: vec![0; 256 << 10].into_boxed_slice(),
            pending: Vec::new(),
            ready: Vec::new(),
            ready_lo: 0,
            released: 0,
            damage: VecDeque::new(),
            unit_index: 0,
            unit_in: 0,
            mode: Mode::Between,
            failure: None,
        }
    }

    /// The reason the decoded range `[start, end)` is damaged, if any part of it is. Ranges
    /// must be asked in increasing order, and only once read.
    pub(crate) fn damage(&mut self, start: u64, end: u64) -> Option<Arc<str>> {
        while self.damage.front().is_some_and(|d| d.end <= start) {
            self.damage.pop_front();
        }
        self.damage.front().filter(|d| d.start < end).map(|d| d.reason.clone())
    }

    /// Why decoding stopped before the end of the input, once it has.
    pub(crate) fn failure(&self) -> Option<Arc<str>> {
        self.failure.clone()
    }

    /// Compressed bytes decoded so far.
    pub(crate) fn raw_consumed(&self) -> u64 {
        self.in_max
    }

    fn unit_name(&self) -> String {
        format!("{}: {} {} (from compressed byte {})", self.label, self.dec.unit(), self.unit_index, self.unit_in)
    }

    fn release(&mut self, bytes: &[u8], reason: Option<&Arc<str>>) {
        if bytes.is_empty() {
            return;
        }
        let start = self.released;
        self.released += bytes.len() as u64;
        self.ready.extend_from_slice(bytes);
        if let Some(reason) = reason {
            match self.damage.back_mut() {
                Some(d) if d.end == start && Arc::ptr_eq(&d.reason, reason) => d.end = self.released,
                _ => self.damage.push_back(Damage { start, end: self.released, reason: reason.clone() }),
            }
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        if self.in_lo < self.in_hi || self.in_eof {
            return Ok(());
        }
        self.in_lo = 0;
        self.in_hi = loop {
            match self.input.read(&mut self.inbuf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.in_eof = self.in_hi == 0;
        Ok(())
    }

    /// One decoder step; the output is in `scratch[..produced]`.
    fn step(&mut self) -> io::Result<(usize, State)> {
        self.refill()?;
        let avail = self.in_hi - self.in_lo;
        if avail == 0 && !self.out_full {
            return Ok((0, State::Failed(self.dec.truncated())));
        }
        let take = avail.min(self.dec.max_input());
        let s = self.dec.step(&self.inbuf[self.in_lo..self.in_lo + take], &mut self.scratch);
        self.in_lo += s.consumed;
        self.in_pos += s.consumed as u64;
        self.in_max = self.in_max.max(self.in_pos);
        self.out_full = s.produced == self.scratch.len();
        if s.consumed == 0 && s.produced == 0 && take > 0 && matches!(s.state, State::Going) {
            let message = "the decoder stopped making progress".to_string();
            return Ok((0, State::Failed(Failure { message, keep_before: false, resumable: false })));
        }
        Ok((s.produced, s.state))
    }

    fn reason(&self, f: &Failure) -> Arc<str> {
        format!("{}: {}", self.unit_name(), f.message).into()
    }

    /// After a unit failed: on to the next one, or stop for good.
    fn after_failure(&mut self, f: &Failure) {
        if f.resumable {
            self.mode = Mode::Between;
        } else {
            let what = format!("{}; nothing after it can be decompressed", self.reason(f));
            self.failure = Some(what.into());
            self.mode = Mode::Done;
        }
    }

    fn replay(&mut self, damaged: Option<Arc<str>>) -> io::Result<()> {
        let reopen = self.reopen.as_ref().ok_or_else(|| io::Error::other("no second pass without reopen"))?;
        self.input = reopen(self.unit_in)?;
        self.in_lo = 0;
        self.in_hi = 0;
        self.in_eof = false;
        self.in_pos = self.unit_in;
        self.out_full = false;
        self.dec.start();
        self.mode = Mode::Replay { damaged };
        Ok(())
    }

    /// Works until some output is ready or the input is done.
    fn advance(&mut self) -> io::Result<()> {
        if let Mode::Between = self.mode {
            self.refill()?;
            if self.in_lo == self.in_hi {
                self.mode = Mode::Done;
                return Ok(());
            }
            self.dec.start();
            self.unit_index += 1;
            self.unit_in = self.in_pos;
            self.pending.clear();
            self.mode = Mode::Hold;
        }
        if let Mode::Done = self.mode {
            return Ok(());
        }
        let (n, state) = self.step()?;
        let out = std::mem::take(&mut self.scratch);
        match &self.mode {
            Mode::Hold => {
                self.pending.extend_from_slice(&out[..n]);
                if self.dec.checked() == Some(false) {
                    let pending = std::mem::take(&mut self.pending);
                    self.release(&pending, None);
                    self.mode = Mode::Stream;
                } else if self.pending.len() > self.hold && self.reopen.is_some() {
                    self.pending = Vec::new();
                    self.mode = Mode::Verify;
                }
            }
            Mode::Stream => self.release(&out[..n], None),
            Mode::Replay { damaged } => {
                let damaged = damaged.clone();
                self.release(&out[..n], damaged.as_ref());
            }
            Mode::Verify | Mode::Between | Mode::Done => {}
        }
        self.scratch = out;
        match state {
            State::Going => {}
            State::End => match self.mode {
                Mode::Verify => self.replay(None)?,
                _ => {
                    let pending = std::mem::take(&mut self.pending);
                    self.release(&pending, None);
                    self.mode = Mode::Between;
                }
            },
            State::Failed(f) => match self.mode {
                Mode::Verify => {
                    let damaged = (!f.keep_before).then(|| self.reason(&f));
                    self.replay(damaged)?;
                }
                _ => {
                    let pending = std::mem::take(&mut self.pending);
                    let reason = (!f.keep_before).then(|| self.reason(&f));
                    self.release(&pending, reason.as_ref());
                    self.after_failure(&f);
                }
            },
        }
        Ok(())
    }
}

impl Read for Decoded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.ready_lo == self.ready.len() {
            if let Mode::Done = self.mode {
                return Ok(0);
            }
            self.ready.clear();
            self.ready_lo = 0;
            self.advance()?;
        }
        let n = buf.len().min(self.ready.len() - self.ready_lo);
        buf[..n].copy_from_slice(&self.ready[self.ready_lo..self.ready_lo + n]);
        self.ready_lo += n;
        Ok(n)
    }
}

/// The longest gzip header accepted (names and extra fields included).
const GZIP_HEADER_MAX: usize = 1 << 20;

enum GzPhase {
    Header(Vec<u8>),
    Body,
    Trailer(Vec<u8>),
}

/// gzip members (RFC 1952): header, raw deflate body, CRC-32 and length trailer.
struct Gzip {
    phase: GzPhase,
    inflate: flate2::Decompress,
    crc: flate2::Crc,
}

impl Gzip {
    fn new() -> Self {
        Gzip { phase: GzPhase::Header(Vec::new()), inflate: flate2::Decompress::new(false), crc: flate2::Crc::new() }
    }
}

fn fatal(message: String) -> State {
    State::Failed(Failure { message, keep_before: false, resumable: false })
}

/// The length of the gzip header at the start of `b`: `None` while more bytes are needed.
fn gzip_header_len(b: &[u8]) -> Result<Option<usize>, String> {
    const MAGIC: [u8; 3] = [0x1f, 0x8b, 8];
    if b.iter().zip(MAGIC).any(|(x, y)| *x != y) {
        return Err("not a gzip member (bad magic bytes or compression method)".into());
    }
    if b.len() < 10 {
        return Ok(None);
    }
    let flags = b[3];
    if flags & 0xe0 != 0 {
        return Err(format!("gzip header has reserved flag bits set ({flags:#04x})"));
    }
    let mut p = 10;
    if flags & 4 != 0 {
        let Some(x) = b.get(p..p + 2) else { return Ok(None) };
        p += 2 + u16::from_le_bytes([x[0], x[1]]) as usize;
    }
    for flag in [8, 16] {
        if flags & flag != 0 {
            let Some(rest) = b.get(p..) else { return Ok(None) };
            match memchr::memchr(0, rest) {
                Some(i) => p += i + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & 2 != 0 {
        let Some(x) = b.get(p..p + 2) else { return Ok(None) };
        let mut crc = flate2::Crc::new();
        crc.update(&b[..p]);
        if u16::from_le_bytes([x[0], x[1]]) != crc.sum() as u16 {
            return Err("gzip header checksum mismatch".into());
        }
        p += 2;
    }
    Ok((b.len() >= p).then_some(p))
}

impl UnitDecoder for Gzip {
    fn unit(&self) -> &'static str {
        "gzip member"
    }

    fn start(&mut self) {
        self.phase = GzPhase::Header(Vec::new());
        self.inflate.reset(false);
        self.crc.reset();
    }

    fn checked(&self) -> Option<bool> {
        Some(true)
    }

    fn max_input(&self) -> usize {
        usize::MAX
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Step {
        let step = |consumed, produced, state| Step { consumed, produced, state };
        match &mut self.phase {
            GzPhase::Header(h) => {
                let before = h.len();
                let take = input.len().min(GZIP_HEADER_MAX - before);
                h.extend_from_slice(&input[..take]);
                match gzip_header_len(h) {
                    Ok(Some(len)) => {
                        self.phase = GzPhase::Body;
                        step(len - before, 0, State::Going)
                    }
                    Ok(None) if h.len() >= GZIP_HEADER_MAX => step(take, 0, fatal("gzip header is too long".into())),
                    Ok(None) => step(take, 0, State::Going),
                    Err(message) => step(0, 0, fatal(message)),
                }
            }
            GzPhase::Body => {
                let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
                let result = self.inflate.decompress(input, output, flate2::FlushDecompress::None);
                let consumed = (self.inflate.total_in() - in0) as usize;
                let produced = (self.inflate.total_out() - out0) as usize;
                self.crc.update(&output[..produced]);
                let state = match result {
                    Ok(flate2::Status::StreamEnd) => {
                        self.phase = GzPhase::Trailer(Vec::with_capacity(8));
                        State::Going
                    }
                    Ok(_) => State::Going,
                    Err(e) => fatal(format!("invalid deflate data ({e}); the member's output is not trusted")),
                };
                step(consumed, produced, state)
            }
            GzPhase::Trailer(t) => {
                let take = input.len().min(8 - t.len());
                t.extend_from_slice(&input[..take]);
                if t.len() < 8 {
                    return step(take, 0, State::Going);
                }
                let stored_crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
                let stored_len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
                let (crc, len) = (self.crc.sum(), self.crc.amount());
                let state = if stored_crc != crc {
                    let message = format!("checksum mismatch (CRC-32 stored {stored_crc:#010x}, computed {crc:#010x}): the member's output is garbled");
                    State::Failed(Failure { message, keep_before: false, resumable: true })
                } else if stored_len != len {
                    let message = format!("length mismatch (stored {stored_len}, decoded {len} mod 2^32)");
                    State::Failed(Failure { message, keep_before: false, resumable: true })
                } else {
                    State::End
                };
                step(take, 0, state)
            }
        }
    }

    fn truncated(&self) -> Failure {
        let message = "truncated: the file ends inside this member, so its checksum cannot be verified".to_string();
        Failure { message, keep_before: false, resumable: false }
    }
}

/// zstd frames, fed at most the input the decoder asks for so that each step decodes at
/// most one block.
struct Zstd {
    dctx: zstd::zstd_safe::DCtx<'static>,
    /// The frame's first bytes (magic number and frame header descriptor).
    head: Vec<u8>,
    hint: usize,
}

/// `ZSTD_getErrorName` of `ZSTD_error_checksum_wrong` (zstd-safe does not expose the codes).
const ZSTD_CHECKSUM_WRONG: &str = "Restored data doesn't match checksum";
/// Magic number of a zstd frame.
const ZSTD_MAGIC: u32 = 0xFD2F_B528;

impl Zstd {
    fn new() -> Self {
        Zstd { dctx: zstd::zstd_safe::DCtx::create(), head: Vec::with_capacity(5), hint: 5 }
    }
}

impl UnitDecoder for Zstd {
    fn unit(&self) -> &'static str {
        "zstd frame"
    }

    fn start(&mut self) {
        // Resetting a session cannot fail; a failure would surface on the next step anyway.
        let _ = self.dctx.reset(zstd::zstd_safe::ResetDirective::SessionOnly);
        self.head.clear();
        self.hint = 5;
    }

    fn checked(&self) -> Option<bool> {
        let h = self.head.get(..5)?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        // Skippable frames carry no data, unknown magic fails to decode: neither has a checksum.
        Some(magic == ZSTD_MAGIC && h[4] & 4 != 0)
    }

    fn max_input(&self) -> usize {
        self.hint.max(1)
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Step {
        let mut inb = zstd::zstd_safe::InBuffer::around(input);
        let mut outb = zstd::zstd_safe::OutBuffer::around(output);
        let result = self.dctx.decompress_stream(&mut outb, &mut inb);
        let (consumed, produced) = (inb.pos, outb.pos());
        let missing = 5usize.saturating_sub(self.head.len());
        let state = match result {
            Ok(0) => State::End,
            Ok(hint) => {
                self.hint = hint;
                State::Going
            }
            Err(code) if zstd::zstd_safe::get_error_name(code) == ZSTD_CHECKSUM_WRONG => {
                // The checksum is the frame's last field, and the step was given no more
                // input than the frame asked for: the next frame starts after it.
                let message = "checksum mismatch (XXH64 content checksum): the frame's output is garbled".to_string();
                self.head.extend_from_slice(&input[..missing.min(input.len())]);
                return Step { consumed: input.len(), produced, state: State::Failed(Failure { message, keep_before: false, resumable: true }) };
            }
            Err(code) => State::Failed(Failure {
                message: format!("cannot be decoded ({}); the blocks before the damaged one are kept", zstd::zstd_safe::get_error_name(code)),
                keep_before: true,
                resumable: false,
            }),
        };
        self.head.extend_from_slice(&input[..missing.min(consumed)]);
        Step { consumed, produced, state }
    }

    fn truncated(&self) -> Failure {
        let message = "truncated: the file ends inside this frame; the blocks before the end are kept".to_string();
        Failure { message, keep_before: true, resumable: false }
    }
}

/// A file's bytes as the JSONL reader sees them: plain, or decoded with damage marked.
pub(crate) enum Input<'a> {
    /// Uncompressed.
    Plain(Box<dyn Read + Send + 'a>),
    /// Decompressed.
    Decoded(Box<Decoded<'a>>),
}

impl<'a> Input<'a> {
    /// `raw` read as `codec`; `label` names the file in reasons. `reopen` allows the second
    /// pass over units larger than `hold` bytes; without it such units are held whole.
    pub(crate) fn new(codec: Codec, label: String, raw: Box<dyn Read + Send + 'a>, reopen: Option<Reopen<'a>>, hold: usize) -> Self {
        let dec: Box<dyn UnitDecoder> = match codec {
            Codec::Plain => return Input::Plain(raw),
            Codec::Gzip => Box::new(Gzip::new()),
            Codec::Zstd => Box::new(Zstd::new()),
        };
        Input::Decoded(Box::new(Decoded::new(dec, label, raw, reopen, hold)))
    }

    /// The reason the range `[start, end)` is damaged, if it is (see [`Decoded::damage`]).
    pub(crate) fn damage(&mut self, start: u64, end: u64) -> Option<Arc<str>> {
        match self {
            Input::Plain(_) => None,
            Input::Decoded(d) => d.damage(start, end),
        }
    }

    /// Why the input stopped early, once it has.
    pub(crate) fn failure(&self) -> Option<Arc<str>> {
        match self {
            Input::Plain(_) => None,
            Input::Decoded(d) => d.failure(),
        }
    }

    /// Compressed bytes consumed so far, for compressed input.
    pub(crate) fn raw_consumed(&self) -> Option<u64> {
        match self {
            Input::Plain(_) => None,
            Input::Decoded(d) => Some(d.raw_consumed()),
        }
    }
}

impl Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(r) => r.read(buf),
            Input::Decoded(d) => d.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn lines(from: usize, to: usize) -> Vec<u8> {
        (from..to).map(|i| format!("{{\"text\": \"line {i} of the test corpus, with words\"}}\n")).collect::<String>().into_bytes()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd_frame(data: &[u8], checksum: bool) -> Vec<u8> {
        let mut e = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        e.include_checksum(checksum).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Decodes `bytes` with a hold bound of `hold`: (sound bytes, damaged bytes, failure).
    fn decode(codec: Codec, bytes: &[u8], hold: usize) -> (Vec<u8>, Vec<u8>, Option<String>) {
        let owned = bytes.to_vec();
        let reopen: Reopen<'static> = Box::new(move |at| Ok(Box::new(io::Cursor::new(owned[at as usize..].to_vec()))));
        let Input::Decoded(mut d) = Input::new(codec, "f".into(), Box::new(io::Cursor::new(bytes.to_vec())), Some(reopen), hold) else {
            panic!("{codec:?} is compressed")
        };
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        let (mut sound, mut damaged) = (Vec::new(), Vec::new());
        for (i, b) in out.iter().enumerate() {
            match d.damage(i as u64, i as u64 + 1) {
                Some(_) => damaged.push(*b),
                None => sound.push(*b),
            }
        }
        (sound, damaged, d.failure().map(|f| f.to_string()))
    }

    /// Both the held and the two-pass paths give `expected`.
    fn check(codec: Codec, bytes: &[u8], expected: (&[u8], &[u8], Option<&str>)) {
        for hold in [usize::MAX, 1000] {
            let (sound, damaged, failure) = decode(codec, bytes, hold);
            assert!(sound == expected.0, "hold {hold}: sound {} bytes, expected {}", sound.len(), expected.0.len());
            assert!(damaged == expected.1, "hold {hold}: damaged {} bytes, expected {}", damaged.len(), expected.1.len());
            match (failure.as_deref(), expected.2) {
                (None, None) => {}
                (Some(f), Some(e)) => assert!(f.contains(e), "hold {hold}: `{f}` lacks `{e}`"),
                (f, e) => panic!("hold {hold}: failure {f:?}, expected {e:?}"),
            }
        }
    }

    #[test]
    fn intact_members_and_frames_are_sound() {
        let (a, b) = (lines(0, 300), lines(300, 500));
        let all = [a.clone(), b.clone()].concat();
        check(Codec::Gzip, &[gzip(&a), gzip(&b)].concat(), (&all, &[], None));
        check(Codec::Zstd, &[zstd_frame(&a, true), zstd_frame(&b, false)].concat(), (&all, &[], None));
        check(Codec::Gzip, &[], (&[], &[], None));
    }

    #[test]
    fn gzip_member_with_bad_crc_is_damaged_and_the_next_is_read() {
        let (a, b, c) = (lines(0, 300), lines(300, 600), lines(600, 700));
        let mut bad = gzip(&b);
        let n = bad.len();
        bad[n - 8] ^= 0xff;
        let file = [gzip(&a), bad, gzip(&c)].concat();
        check(Codec::Gzip, &file, (&[a, c].concat(), &b, None));
    }

    #[test]
    fn gzip_member_with_bad_data_is_damaged_and_ends_decoding() {
        let (a, b) = (lines(0, 300), lines(300, 2000));
        let mut bad = gzip(&b);
        let mid = bad.len() / 2;
        for x in &mut bad[mid..mid + 16] {
            *x ^= 0x5a;
        }
        let file = [gzip(&a), bad, gzip(&a)].concat();
        let (sound, damaged, failure) = decode(Codec::Gzip, &file, usize::MAX);
        assert!(!damaged.is_empty() && !b.starts_with(&damaged), "the damaged member's output is garbled");
        // Damage either breaks the deflate data (nothing after it decodes) or only shows in
        // the trailer (the third member is read).
        match &failure {
            Some(f) => assert!(sound == a && f.contains("gzip member 2"), "{f}"),
            None => assert!(sound == [a.clone(), a.clone()].concat()),
        }
        check(Codec::Gzip, &file, (&sound, &damaged, failure.as_ref().map(|_| "gzip member 2")));
        // Truncation: nothing of the member is vouched for.
        let cut = &file[..gzip(&a).len() + 40];
        let (sound, _, failure) = decode(Codec::Gzip, cut, usize::MAX);
        assert!(sound == a);
        assert!(failure.unwrap().contains("truncated"));
    }

    #[test]
    fn zstd_keeps_blocks_before_a_decode_error_and_drops_frames_failing_their_checksum() {
        let data = lines(0, 20000);
        let frame = zstd_frame(&data, true);
        // Find damage that breaks block decoding, and the output a byte-by-byte decoder
        // (which cannot lose output to the error) gets before it.
        let (bytes, before) = (frame.len() / 3..frame.len())
            .find_map(|at| {
                let mut f = frame.clone();
                f[at] ^= 0x41;
                let mut dctx = zstd::zstd_safe::DCtx::create();
                let mut out = vec![0u8; data.len() + 1000];
                let mut opos = 0;
                for i in 0..f.len() {
                    let mut inb = zstd::zstd_safe::InBuffer::around(&f[i..i + 1]);
                    let mut outb = zstd::zstd_safe::OutBuffer::around(&mut out[opos..]);
                    match dctx.decompress_stream(&mut outb, &mut inb) {
                        Ok(_) => opos += outb.pos(),
                        Err(c) if zstd::zstd_safe::get_error_name(c) != ZSTD_CHECKSUM_WRONG && opos > 0 => return Some((f, opos)),
                        Err(_) => return None,
                    }
                }
                None
            })
            .unwrap();
        check(Codec::Zstd, &bytes, (&data[..before], &[], Some("zstd frame 1")));
        // A flipped checksum: the frame decodes but is not trusted; the next frame is read.
        let mut bad = zstd_frame(&lines(0, 100), true);
        let n = bad.len();
        bad[n - 1] ^= 1;
        let tail = lines(100, 200);
        check(Codec::Zstd, &[bad, zstd_frame(&tail, true)].concat(), (&tail, &lines(0, 100), None));
    }
}
