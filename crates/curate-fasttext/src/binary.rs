//! Little-endian reads of fastText's binary layout, tracking the byte offset for errors.

use std::io::{ErrorKind, Read};

use crate::FastTextError;

/// Elements read per chunk for arrays whose length comes from the file: a corrupt length
/// then fails on the missing bytes instead of on one huge allocation.
const CHUNK: usize = 1 << 16;

pub(crate) struct Reader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Reader { inner, offset: 0 }
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> FastTextError {
        FastTextError::Invalid { offset: self.offset, message: message.into() }
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), FastTextError> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(FastTextError::Truncated { offset: self.offset + done as u64, what });
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(FastTextError::Io { offset: self.offset + done as u64, source: e }),
            }
        }
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FastTextError> {
        let mut b = [0u8; N];
        self.fill(&mut b, what)?;
        Ok(b)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, FastTextError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A C++ `bool`: any non-zero byte reads as true.
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, FastTextError> {
        Ok(self.u8(what)? != 0)
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, FastTextError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, FastTextError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn f64(&mut self, what: &'static str) -> Result<f64, FastTextError> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// A NUL-terminated byte string (dictionary entries).
    pub(crate) fn cstr(&mut self, out: &mut Vec<u8>, what: &'static str) -> Result<(), FastTextError> {
        loop {
            let b = self.u8(what)?;
            if b == 0 {
                return Ok(());
            }
            out.push(b);
        }
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<Vec<u8>, FastTextError> {
        let mut out = Vec::with_capacity(n.min(CHUNK));
        while out.len() < n {
            let start = out.len();
            let take = (n - start).min(CHUNK);
            out.resize(start + take, 0);
            self.fill(&mut out[start..], what)?;
        }
        Ok(out)
    }

    pub(crate) fn f32s(&mut self, n: usize, what: &'static str) -> Result<Vec<f32>, FastTextError> {
        let mut out: Vec<f32> = Vec::with_capacity(n.min(CHUNK));
        let mut buf = vec![0u8; 4 * n.min(CHUNK)];
        while out.len() < n {
            let take = (n - out.len()).min(CHUNK);
            let chunk = &mut buf[..4 * take];
            self.fill(chunk, what)?;
            out.extend(chunk.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        Ok(out)
    }
}
