//! Snappy as Ethereum's consensus layer uses it: the *block* format (one raw snappy block) for
//! gossip payloads, and the *framing* format (a stream of checksummed chunks after the
//! `sNaPpY` stream identifier) inside req/resp's `ssz_snappy` chunks. The codecs are the `snap`
//! crate's; this module finds where a framed stream carrying a known number of bytes ends in a
//! buffer still being filled, and bounds every size before allocating, because both come from
//! peers.

use std::io::Read as _;

/// The largest uncompressed chunk the framing format allows.
const MAX_CHUNK: usize = 65_536;
/// The stream identifier chunk's body.
const STREAM_ID: &[u8] = b"sNaPpY";

/// Why snappy bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnappyError {
    /// A raw block or a frame's body is not valid snappy, or its checksum is wrong.
    #[error("corrupt snappy data: {0}")]
    Corrupt(String),
    /// The framed stream does not start with the stream identifier.
    #[error("framed snappy without its stream identifier")]
    NoStreamIdentifier,
    /// A chunk type the format reserves as unskippable (0x02..=0x7f).
    #[error("reserved unskippable snappy chunk type {0:#04x}")]
    Reserved(u8),
    /// The data decompress to more bytes than were announced or allowed.
    #[error("snappy data longer than {0} bytes")]
    TooLong(usize),
    /// The data decompress to fewer bytes than were announced.
    #[error("snappy data shorter than announced: {got} of {want} bytes")]
    TooShort {
        /// Bytes the data held.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
}

/// `data` as one raw snappy block (gossip's payload encoding).
pub fn compress_block(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).expect("snap compresses any input below 4 GiB")
}

/// A raw snappy block's contents, refusing any that would exceed `max` bytes.
pub fn decompress_block(data: &[u8], max: usize) -> Result<Vec<u8>, SnappyError> {
    let len = snap::raw::decompress_len(data).map_err(|e| SnappyError::Corrupt(e.to_string()))?;
    if len > max {
        return Err(SnappyError::TooLong(max));
    }
    snap::raw::Decoder::new().decompress_vec(data).map_err(|e| SnappyError::Corrupt(e.to_string()))
}

/// `data` in the framing format: the stream identifier, then checksummed chunks of at most
/// 64 KiB each.
pub fn encode_framed(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = snap::write::FrameEncoder::new(Vec::with_capacity(data.len() / 2 + 64));
    w.write_all(data).expect("writing to a Vec cannot fail");
    let out = w.into_inner().expect("flushing to a Vec cannot fail");
    // `snap` writes nothing at all for no data; the stream identifier alone says "empty".
    if out.is_empty() { [&[0xff, 6, 0, 0][..], STREAM_ID].concat() } else { out }
}

/// How many bytes at the start of `buf` make a framed stream holding exactly `want` bytes:
/// `Ok(None)` while `buf` ends before them. Only chunk headers and snappy's length preambles
/// are read; [`decode_framed`] decompresses and checks what this delimits. An empty payload
/// may be nothing at all or the stream identifier alone.
pub fn framed_extent(buf: &[u8], want: usize) -> Result<Option<usize>, SnappyError> {
    let (mut at, mut got) = (0usize, 0usize);
    let mut identified = false;
    if want == 0 && buf.first() != Some(&0xff) {
        return Ok(Some(0));
    }
    while got < want || (want == 0 && !identified) {
        let Some(header) = buf.get(at..at + 4) else { return Ok(None) };
        let (kind, len) =
            (header[0], usize::from(header[1]) | usize::from(header[2]) << 8 | usize::from(header[3]) << 16);
        let Some(body) = buf.get(at + 4..at + 4 + len) else { return Ok(None) };
        match kind {
            0xff if body == STREAM_ID => identified = true,
            0xff => return Err(SnappyError::NoStreamIdentifier),
            _ if !identified => return Err(SnappyError::NoStreamIdentifier),
            0x00 | 0x01 => {
                let data =
                    body.get(4..).ok_or_else(|| SnappyError::Corrupt("chunk shorter than its checksum".into()))?;
                let n = match kind {
                    0x00 => snap::raw::decompress_len(data).map_err(|e| SnappyError::Corrupt(e.to_string()))?,
                    _ => data.len(),
                };
                if n > MAX_CHUNK {
                    return Err(SnappyError::Corrupt(format!("a chunk of {n} bytes")));
                }
                got += n;
                if got > want {
                    return Err(SnappyError::TooLong(want));
                }
            }
            0x02..=0x7f => return Err(SnappyError::Reserved(kind)),
            _ => {}
        }
        at += 4 + len;
    }
    Ok(Some(at))
}

/// Decompresses a framed stream that must hold exactly `want` bytes (checksums verified).
pub fn decode_framed(buf: &[u8], want: usize) -> Result<Vec<u8>, SnappyError> {
    let Some(end) = framed_extent(buf, want)? else {
        return Err(SnappyError::TooShort { got: 0, want });
    };
    decompress_delimited(&buf[..end], want)
}

/// Decompresses `framed`, a stream [`framed_extent`] delimited for `want` bytes.
pub(crate) fn decompress_delimited(framed: &[u8], want: usize) -> Result<Vec<u8>, SnappyError> {
    let mut out = Vec::with_capacity(want);
    snap::read::FrameDecoder::new(framed).read_to_end(&mut out).map_err(|e| SnappyError::Corrupt(e.to_string()))?;
    match out.len() {
        n if n == want => Ok(out),
        n if n > want => Err(SnappyError::TooLong(want)),
        got => Err(SnappyError::TooShort { got, want }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_framed_stream_starts_with_the_identifier_and_round_trips() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let framed = encode_framed(&data);
        assert_eq!(&framed[..10], b"\xff\x06\x00\x00sNaPpY");
        assert_eq!(framed_extent(&framed, data.len()), Ok(Some(framed.len())));
        assert_eq!(decode_framed(&framed, data.len()).unwrap(), data);
        // Every proper prefix is incomplete, not an error.
        for cut in [0, 3, 10, 11, framed.len() / 2, framed.len() - 1] {
            assert_eq!(framed_extent(&framed[..cut], data.len()), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn announced_lengths_are_held_to() {
        let framed = encode_framed(b"hello, beacon chain");
        assert_eq!(framed_extent(&framed, 5), Err(SnappyError::TooLong(5)));
        assert!(matches!(decode_framed(&framed, 50), Err(SnappyError::TooShort { .. })));
        let mut bad = framed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(decode_framed(&bad, 19), Err(SnappyError::Corrupt(_))));
        assert_eq!(framed_extent(&framed[10..], 19), Err(SnappyError::NoStreamIdentifier));
        let mut reserved = framed[..10].to_vec();
        reserved.extend_from_slice(&[0x05, 0, 0, 0]);
        assert_eq!(framed_extent(&reserved, 1), Err(SnappyError::Reserved(5)));
    }

    #[test]
    fn an_empty_payload_is_the_identifier_alone() {
        let framed = encode_framed(b"");
        assert_eq!(framed_extent(&framed, 0), Ok(Some(framed.len())));
        assert_eq!(decode_framed(&framed, 0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn raw_blocks_respect_their_limit() {
        let block = compress_block(&[7u8; 4096]);
        assert_eq!(decompress_block(&block, 4096).unwrap(), vec![7u8; 4096]);
        assert_eq!(decompress_block(&block, 4095), Err(SnappyError::TooLong(4095)));
        assert!(decompress_block(&[0xff, 0xff, 0xff], 100).is_err());
    }

    proptest! {
        #[test]
        fn framing_round_trips_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..70_000)) {
            let framed = encode_framed(&data);
            prop_assert_eq!(decode_framed(&framed, data.len()).unwrap(), data);
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..300), want in 0usize..1000) {
            let _ = framed_extent(&buf, want);
            let _ = decode_framed(&buf, want);
            let _ = decompress_block(&buf, want);
        }
    }
}
