//! Unsigned LEB128 varints as libp2p uses them (multistream-select lengths, gossipsub and
//! identify frame lengths, mplex headers, protobuf fields): at most 9 bytes for a `u64`
//! (`unsigned-varint`'s limit, which libp2p applies), minimal encoding not required on input.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    /// The input ended before the varint's last byte.
    #[error("varint truncated")]
    Truncated,
    /// More than 9 bytes, or a value above `u64::MAX`.
    #[error("varint longer than 9 bytes")]
    Overflow,
}

/// Appends `v` as a varint. Values from 2^63 on take 10 bytes, which [`get`] refuses as the
/// multiformats spec does; lengths and protobuf fields in this crate stay far below.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The number of bytes `v` takes as a varint.
pub fn len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads a varint at the start of `bytes`: its value and the bytes it took.
pub fn get(bytes: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate() {
        if i == 9 {
            return Err(VarintError::Overflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    if bytes.len() >= 9 { Err(VarintError::Overflow) } else { Err(VarintError::Truncated) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut out = Vec::new();
        put(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        assert_eq!(get(&[0xac, 0x02, 0xff]), Ok((300, 2)));
        assert_eq!(get(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(get(&[0xff; 10]), Err(VarintError::Overflow));
        assert_eq!(len(0), 1);
        assert_eq!(len(127), 1);
        assert_eq!(len(128), 2);
    }

    proptest! {
        #[test]
        fn round_trip(v in 0u64..(1u64 << 63)) {
            let mut out = Vec::new();
            put(&mut out, v);
            prop_assert_eq!(out.len(), len(v));
            prop_assert_eq!(get(&out), Ok((v, out.len())));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = get(&bytes);
        }
    }
}
