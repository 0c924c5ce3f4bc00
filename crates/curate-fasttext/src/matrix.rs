//! Input and output matrices, dense or product-quantized, read as fastText writes them.

use std::io::Read;

use crate::binary::Reader;
use crate::FastTextError;

/// Centroids per sub-quantizer (8-bit codes).
const KSUB: usize = 256;
/// Values of a decoded quantized output matrix (labels x dim), 1 GiB of f32.
const MAX_DECODED_OUTPUT: usize = 1 << 28;

/// A product quantizer (`ProductQuantizer`): `nsubq` sub-vectors of `dsub` values (the last
/// one `lastdsub`), each coded by one byte indexing 256 centroids.
pub(crate) struct Pq {
    dim: usize,
    nsubq: usize,
    dsub: usize,
    lastdsub: usize,
    centroids: Vec<f32>,
}

impl Pq {
    fn read<R: Read>(r: &mut Reader<R>) -> Result<Pq, FastTextError> {
        let what = "product quantizer";
        let dim = r.i32(what)?;
        let nsubq = r.i32(what)?;
        let dsub = r.i32(what)?;
        let lastdsub = r.i32(what)?;
        if dim <= 0 || nsubq <= 0 || dsub <= 0 || lastdsub <= 0 || lastdsub > dsub {
            return Err(r.invalid(format!(
                "product quantizer with dim {dim}, nsubq {nsubq}, dsub {dsub}, lastdsub {lastdsub}"
            )));
        }
        let (dim, nsubq, dsub, lastdsub) = (dim as usize, nsubq as usize, dsub as usize, lastdsub as usize);
        if (nsubq - 1).checked_mul(dsub).and_then(|v| v.checked_add(lastdsub)) != Some(dim) {
            return Err(r.invalid(format!(
                "product quantizer sub-vectors ({nsubq} x {dsub}, last {lastdsub}) do not cover dim {dim}"
            )));
        }
        let n = dim.checked_mul(KSUB).ok_or_else(|| r.invalid("product quantizer too large"))?;
        let centroids = r.f32s(n, "product quantizer centroids")?;
        Ok(Pq { dim, nsubq, dsub, lastdsub, centroids })
    }

    /// `get_centroids(m, code)`: the last sub-quantizer's centroids are packed by `lastdsub`.
    #[inline(always)]
    fn centroid(&self, m: usize, code: u8) -> &[f32] {
        let code = code as usize;
        if m == self.nsubq - 1 {
            let start = m * KSUB * self.dsub + code * self.lastdsub;
            &self.centroids[start..start + self.lastdsub]
        } else {
            let start = (m * KSUB + code) * self.dsub;
            &self.centroids[start..start + self.dsub]
        }
    }
}

/// A quantized matrix (`QuantMatrix`): row `i` is `norm_i * centroids(codes_i)`.
pub(crate) struct QuantMatrix {
    rows: usize,
    cols: usize,
    codes: Vec<u8>,
    pq: Pq,
    /// Norm code per row and the 256 norm centroids, with `-qnorm`.
    norms: Option<(Vec<u8>, Pq)>,
}

impl QuantMatrix {
    fn read<R: Read>(r: &mut Reader<R>) -> Result<QuantMatrix, FastTextError> {
        let what = "quantized matrix";
        let qnorm = r.bool(what)?;
        let rows = r.i64(what)?;
        let cols = r.i64(what)?;
        let codesize = r.i32(what)?;
        if rows < 0 || cols <= 0 || codesize < 0 {
            return Err(r.invalid(format!("quantized matrix {rows} x {cols} with {codesize} codes")));
        }
        let (rows, cols) = (to_usize(r, rows)?, to_usize(r, cols)?);
        let codes = r.bytes(codesize as usize, "quantized matrix codes")?;
        let pq = Pq::read(r)?;
        if pq.dim != cols {
            return Err(r.invalid(format!("product quantizer of dim {} for a matrix of {cols} columns", pq.dim)));
        }
        if rows.checked_mul(pq.nsubq).is_none_or(|n| n > codes.len()) {
            return Err(r.invalid(format!("{} codes for {rows} rows of {} sub-quantizers", codes.len(), pq.nsubq)));
        }
        let norms = if qnorm {
            let codes = r.bytes(rows, "quantized matrix norm codes")?;
            let npq = Pq::read(r)?;
            if npq.dim != 1 || npq.nsubq != 1 {
                return Err(r.invalid("norm quantizer is not one-dimensional"));
            }
            Some((codes, npq))
        } else {
            None
        };
        Ok(QuantMatrix { rows, cols, codes, pq, norms })
    }

    #[inline(always)]
    fn norm(&self, row: usize) -> f32 {
        match &self.norms {
            Some((codes, npq)) => npq.centroid(0, codes[row])[0],
            None => 1.0,
        }
    }

    /// `addRowToVector(x, i)` → `addcode(x, codes, i, norm)`: `x += norm * c`, term by term.
    #[inline]
    fn add_row(&self, x: &mut [f32], row: usize) {
        let alpha = self.norm(row);
        let code = &self.codes[row * self.pq.nsubq..(row + 1) * self.pq.nsubq];
        for (m, &c) in code.iter().enumerate() {
            let cent = self.pq.centroid(m, c);
            let start = m * self.pq.dsub;
            for (xv, cv) in x[start..start + cent.len()].iter_mut().zip(cent) {
                *xv += alpha * *cv;
            }
        }
    }

    /// The rows as fastText adds them: `norm * c` rounded to f32 (alpha is exactly 1 without
    /// `-qnorm`), so summing decoded rows is bit-identical to `addcode`.
    fn decode(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (row, x) in out.chunks_exact_mut(self.cols).enumerate() {
            self.add_row(x, row);
        }
        out
    }

    /// Rows without their norm, and the norms: `mulcode` multiplies the finished dot product.
    fn decode_unscaled(&self) -> (Vec<f32>, Option<Vec<f32>>) {
        let mut out = vec![0f32; self.rows * self.cols];
        for (row, x) in out.chunks_exact_mut(self.cols).enumerate() {
            let code = &self.codes[row * self.pq.nsubq..(row + 1) * self.pq.nsubq];
            for (m, &c) in code.iter().enumerate() {
                let cent = self.pq.centroid(m, c);
                let start = m * self.pq.dsub;
                x[start..start + cent.len()].copy_from_slice(cent);
            }
        }
        let norms = self.norms.as_ref().map(|_| (0..self.rows).map(|i| self.norm(i)).collect());
        (out, norms)
    }
}

fn to_usize<R: Read>(r: &Reader<R>, v: i64) -> Result<usize, FastTextError> {
    usize::try_from(v).map_err(|_| r.invalid(format!("size {v} out of range")))
}

fn read_dense<R: Read>(r: &mut Reader<R>) -> Result<(usize, usize, Vec<f32>), FastTextError> {
    let what = "dense matrix";
    let rows = r.i64(what)?;
    let cols = r.i64(what)?;
    if rows < 0 || cols <= 0 {
        return Err(r.invalid(format!("dense matrix of {rows} x {cols}")));
    }
    let (rows, cols) = (to_usize(r, rows)?, to_usize(r, cols)?);
    let n = rows.checked_mul(cols).ok_or_else(|| r.invalid("dense matrix too large"))?;
    Ok((rows, cols, r.f32s(n, "dense matrix values")?))
}

/// The input (embedding) matrix.
pub(crate) enum Input {
    /// Row-major values; quantized matrices small enough are decoded into this at load.
    Dense { rows: usize, cols: usize, data: Vec<f32> },
    /// Codes, kept as they are (`FastText::read_compact`).
    Quant(QuantMatrix),
}

impl Input {
    pub(crate) fn read<R: Read>(
        r: &mut Reader<R>,
        quantized: bool,
        decode_limit: usize,
    ) -> Result<Input, FastTextError> {
        if !quantized {
            let (rows, cols, data) = read_dense(r)?;
            return Ok(Input::Dense { rows, cols, data });
        }
        let q = QuantMatrix::read(r)?;
        let decoded_bytes = q.rows.saturating_mul(q.cols).saturating_mul(4);
        Ok(if decoded_bytes <= decode_limit {
            Input::Dense { rows: q.rows, cols: q.cols, data: q.decode() }
        } else {
            Input::Quant(q)
        })
    }

    pub(crate) fn shape(&self) -> (usize, usize) {
        match self {
            Input::Dense { rows, cols, .. } => (*rows, *cols),
            Input::Quant(q) => (q.rows, q.cols),
        }
    }

    /// `x += row`, in fastText's order of operations. `row` was bounds-checked at load.
    #[inline(always)]
    pub(crate) fn add_row(&self, x: &mut [f32], row: u32) {
        match self {
            Input::Dense { cols, data, .. } => {
                let start = row as usize * cols;
                let src = &data[start..start + cols];
                for (xv, v) in x.iter_mut().zip(src) {
                    *xv += *v;
                }
            }
            Input::Quant(q) => q.add_row(x, row as usize),
        }
    }
}

/// The output matrix, transposed so that all rows' dot products advance together (each
/// still summed in fastText's order, one column after the other).
pub(crate) struct Output {
    pub(crate) rows: usize,
    transposed: Vec<f32>,
    /// Per-row factor of a quantized output with `-qnorm`, applied after the dot product.
    scale: Option<Vec<f32>>,
}

impl Output {
    /// Reads the matrix and checks it has one row per label and `dim` columns.
    pub(crate) fn read<R: Read>(
        r: &mut Reader<R>,
        quantized: bool,
        labels: usize,
        dim: usize,
    ) -> Result<Output, FastTextError> {
        let check = |r: &Reader<R>, rows: usize, cols: usize| {
            if rows != labels || cols != dim {
                return Err(
                    r.invalid(format!("output matrix is {rows} x {cols}, expected {labels} labels x dim {dim}"))
                );
            }
            Ok(())
        };
        let (rows, cols, data, scale) = if quantized {
            let q = QuantMatrix::read(r)?;
            // Checked before decoding, which allocates rows x cols: a few bytes of codes can
            // claim a huge matrix.
            check(r, q.rows, q.cols)?;
            if q.rows.saturating_mul(q.cols) > MAX_DECODED_OUTPUT {
                return Err(FastTextError::Unsupported(format!(
                    "quantized output matrix of {} x {} is too large to decode",
                    q.rows, q.cols
                )));
            }
            let (data, scale) = q.decode_unscaled();
            (q.rows, q.cols, data, scale)
        } else {
            let (rows, cols, data) = read_dense(r)?;
            check(r, rows, cols)?;
            (rows, cols, data, None)
        };
        let mut transposed = vec![0f32; data.len()];
        for (i, row) in data.chunks_exact(cols).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                transposed[j * rows + i] = v;
            }
        }
        Ok(Output { rows, transposed, scale })
    }

    /// `out[i] = dotRow(hidden, i)`: `d = 0; d += w[i][j] * h[j]` for j in order, in f32.
    #[inline]
    pub(crate) fn dots(&self, hidden: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        if self.rows == 0 {
            return;
        }
        for (col, &h) in self.transposed.chunks_exact(self.rows).zip(hidden) {
            for (o, &w) in out.iter_mut().zip(col) {
                *o += w * h;
            }
        }
        if let Some(scale) = &self.scale {
            for (o, &s) in out.iter_mut().zip(scale) {
                *o *= s;
            }
        }
    }
}
