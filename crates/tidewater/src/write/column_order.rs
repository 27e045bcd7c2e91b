//! The column order every reader knows. parquet 60 declares `IEEE_754_TOTAL_ORDER` for
//! FLOAT and DOUBLE columns, an order pyarrow 26 and DuckDB do not know yet: they then
//! ignore those columns' min/max statistics, so no filter on a number skips a row group.
//! Our float statistics follow the type-defined order's rules (NaN left out, a zero
//! min written as -0.0 and a zero max as +0.0), so the footer can declare that order
//! instead, which pyarrow, DuckDB, Polars and parquet-rs all read.
//!
//! In a file without encryption the column orders are the footer's last field: a list
//! of one-field unions of three bytes each (`TypeDefinedOrder` is field 1, the IEEE
//! order field 2), then the footer's stop byte, its length and `PAR1`. So the change is
//! one byte per float column among the last bytes of the file, which [`TypeDefinedOrders`]
//! holds back until the file is closed.

use std::io::{self, Write};

/// A `TypeDefinedOrder` union in the thrift compact protocol: field 1, a struct, empty.
const TYPE_DEFINED: [u8; 3] = [0x1C, 0x00, 0x00];
/// The `IEEE_754_TOTAL_ORDER` union: field 2.
const IEEE_754: [u8; 3] = [0x2C, 0x00, 0x00];
/// The `INT96_TIMESTAMP_ORDER` union: field 3.
const INT96: [u8; 3] = [0x3C, 0x00, 0x00];

/// Writes a Parquet file of `columns` leaf columns through to `inner`, holding back its
/// last bytes; [`TypeDefinedOrders::finish`] declares the type-defined order for every
/// float column and writes them.
pub(crate) struct TypeDefinedOrders<W: Write> {
    inner: W,
    tail: Vec<u8>,
    /// How many bytes the tail keeps: the column orders and what follows them.
    keep: usize,
    columns: usize,
}

impl<W: Write> TypeDefinedOrders<W> {
    pub(crate) fn new(inner: W, columns: usize) -> Self {
        let keep = 3 * columns + 32;
        TypeDefinedOrders {
            inner,
            tail: Vec::with_capacity(2 * keep),
            keep,
            columns,
        }
    }

    /// Writes the held-back end of the file, its column orders changed, and returns the
    /// writer. A footer of another shape (which this crate does not write) is left as it
    /// is.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        type_defined_orders(&mut self.tail, self.columns);
        self.inner.write_all(&self.tail)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for TypeDefinedOrders<W> {
    /// Passes on all but the last `keep` bytes written so far; a large `buf` goes
    /// through without being copied into the tail first.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let total = self.tail.len() + buf.len();
        if total <= 2 * self.keep {
            self.tail.extend_from_slice(buf);
            return Ok(buf.len());
        }
        let pass = total - self.keep;
        if pass <= self.tail.len() {
            self.inner.write_all(&self.tail[..pass])?;
            self.tail.drain(..pass);
            self.tail.extend_from_slice(buf);
        } else {
            let from_buf = pass - self.tail.len();
            self.inner.write_all(&self.tail)?;
            self.inner.write_all(&buf[..from_buf])?;
            self.tail.clear();
            self.tail.extend_from_slice(&buf[from_buf..]);
        }
        Ok(buf.len())
    }

    /// Flushes what has passed; the held-back bytes wait for [`TypeDefinedOrders::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Changes the IEEE 754 column orders at the end of a file's bytes `tail` to the
/// type-defined order. Returns whether the end had the expected shape.
pub(crate) fn type_defined_orders(tail: &mut [u8], columns: usize) -> bool {
    let orders_len = 3 * columns;
    let Some(list_end) = tail.len().checked_sub(9) else {
        return false;
    };
    if !tail.ends_with(b"PAR1") || tail[list_end] != 0 {
        return false;
    }
    let Some(start) = list_end.checked_sub(orders_len) else {
        return false;
    };
    let header = list_header(columns);
    if start < header.len() || tail[start - header.len()..start] != header[..] {
        return false;
    }
    let orders = &mut tail[start..list_end];
    if !orders
        .chunks(3)
        .all(|o| o == TYPE_DEFINED || o == IEEE_754 || o == INT96)
    {
        return false;
    }
    for order in orders.chunks_mut(3) {
        if order == IEEE_754 {
            order.copy_from_slice(&TYPE_DEFINED);
        }
    }
    true
}

/// The compact protocol's header of a list of `n` structs.
fn list_header(n: usize) -> Vec<u8> {
    if n < 15 {
        return vec![((n as u8) << 4) | 0x0C];
    }
    let mut out = vec![0xFC];
    super::chunk::put_varint(&mut out, n as u64);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_columns_get_the_type_defined_order_at_any_width() {
        for columns in [1, 2, 14, 15, 200, 9_503] {
            let mut file = b"PAR1...data...meta".to_vec();
            file.extend(list_header(columns));
            for i in 0..columns {
                file.extend(if i % 2 == 0 { IEEE_754 } else { TYPE_DEFINED });
            }
            file.extend([0x00, 1, 2, 3, 4]);
            file.extend(b"PAR1");
            // In small pieces, and in one piece as a full file buffer hands it on.
            for piece in [7, file.len()] {
                let mut out = TypeDefinedOrders::new(Vec::new(), columns);
                for piece in file.chunks(piece) {
                    out.write_all(piece).unwrap();
                }
                let written = out.finish().unwrap();
                assert_eq!(written.len(), file.len());
                let start = written.len() - 9 - 3 * columns;
                assert_eq!(written[..start], file[..start], "bytes before the orders");
                let orders = &written[start..written.len() - 9];
                assert!(orders.chunks(3).all(|o| o == TYPE_DEFINED), "{columns}");
            }
        }
    }

    #[test]
    fn a_footer_of_another_shape_is_left_alone() {
        let mut file = b"PAR1 no column orders here".to_vec();
        file.extend([0x2C, 0x00, 0x00, 0x00, 1, 2, 3, 4]);
        file.extend(b"PAR1");
        let mut tail = file.clone();
        assert!(!type_defined_orders(&mut tail, 1));
        assert_eq!(tail, file);
    }
}
