//! Decode: gzip detection by magic bytes and streaming, multi-member inflate (IN1).

use std::io::Read;

use flate2::bufread::MultiGzDecoder;

/// The two bytes every gzip member starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `head` starts with the gzip magic bytes.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC)
}

/// A reader that inflates every gzip member in `inner`. A stream that ends before a
/// member's trailer yields an `UnexpectedEof` error, which the framer reports as an
/// incomplete input (IN5). `inner` is already buffered: flate2's `read` decoders would
/// wrap it in a buffer of their own and copy every compressed byte once more (1% of a
/// convert's instructions).
pub fn gzip_reader<R: std::io::BufRead>(inner: R) -> impl Read {
    MultiGzDecoder::new(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn in1_multi_member_gzip_reads_all_members() {
        let mut both = gz(b"first\n");
        both.extend(gz(b"second\n"));
        let mut out = String::new();
        gzip_reader(&both[..]).read_to_string(&mut out).unwrap();
        assert_eq!(out, "first\nsecond\n");
    }

    #[test]
    fn in5_truncated_gzip_is_an_error() {
        let data = gz(&b"{\"event\":\"x\"}\n".repeat(1000));
        let cut = &data[..data.len() - 10];
        let mut out = Vec::new();
        let err = gzip_reader(cut).read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
