//! RLP (Ethereum's recursive length prefix), as discv5 messages and node records use it: byte
//! strings and lists, borrowed from the input on decoding. The decoder takes any bytes from a
//! peer and never panics; it refuses non-canonical encodings (a single byte below 0x80 given a
//! prefix, lengths with leading zeros or in the long form below 56), as EIP-778 records must be
//! canonical for their signatures to mean anything.

/// Why bytes are not RLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RlpError {
    /// The input ended inside an item.
    #[error("RLP truncated")]
    Truncated,
    /// A length or a single byte not in its shortest form.
    #[error("RLP not canonical")]
    NotCanonical,
    /// A list where a byte string was expected, or the reverse.
    #[error("RLP item of the wrong kind")]
    WrongKind,
    /// An integer longer than its type or with leading zeros.
    #[error("RLP integer out of range")]
    BadInteger,
    /// Bytes after the item that should have been the whole input.
    #[error("RLP trailing bytes")]
    Trailing,
}

/// One decoded item, borrowing the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A byte string.
    Bytes(&'a [u8]),
    /// A list: its payload (the encodings of its items, one after another).
    List(&'a [u8]),
}

impl<'a> Item<'a> {
    /// The byte string, or `WrongKind`.
    pub fn bytes(self) -> Result<&'a [u8], RlpError> {
        match self {
            Item::Bytes(b) => Ok(b),
            Item::List(_) => Err(RlpError::WrongKind),
        }
    }

    /// The list's items, or `WrongKind`.
    pub fn list(self) -> Result<Vec<Item<'a>>, RlpError> {
        match self {
            Item::List(payload) => items(payload),
            Item::Bytes(_) => Err(RlpError::WrongKind),
        }
    }

    /// The item's whole encoding again (header and payload), as it was in the input.
    pub fn encoded(self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Item::Bytes(b) => put_bytes(&mut out, b),
            Item::List(payload) => put_list(&mut out, payload),
        }
        out
    }

    /// An unsigned integer of at most 8 bytes, big-endian with no leading zero.
    pub fn uint(self) -> Result<u64, RlpError> {
        let b = self.bytes()?;
        if b.len() > 8 || b.first() == Some(&0) {
            return Err(RlpError::BadInteger);
        }
        Ok(b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
    }
}

/// Decodes the item at the start of `input`: the item and the bytes after it.
pub fn decode(input: &[u8]) -> Result<(Item<'_>, &[u8]), RlpError> {
    let (&prefix, rest) = input.split_first().ok_or(RlpError::Truncated)?;
    let (list, len, rest) = match prefix {
        0x00..=0x7f => return Ok((Item::Bytes(&input[..1]), rest)),
        0x80..=0xb7 => (false, usize::from(prefix - 0x80), rest),
        0xb8..=0xbf => {
            let (len, rest) = long_length(rest, usize::from(prefix - 0xb7))?;
            (false, len, rest)
        }
        0xc0..=0xf7 => (true, usize::from(prefix - 0xc0), rest),
        0xf8..=0xff => {
            let (len, rest) = long_length(rest, usize::from(prefix - 0xf7))?;
            (true, len, rest)
        }
    };
    if rest.len() < len {
        return Err(RlpError::Truncated);
    }
    let (payload, after) = rest.split_at(len);
    if !list && len == 1 && payload[0] < 0x80 {
        return Err(RlpError::NotCanonical);
    }
    Ok((if list { Item::List(payload) } else { Item::Bytes(payload) }, after))
}

/// Decodes `input` as exactly one item.
pub fn decode_exact(input: &[u8]) -> Result<Item<'_>, RlpError> {
    match decode(input)? {
        (item, []) => Ok(item),
        _ => Err(RlpError::Trailing),
    }
}

/// The items of a list's payload.
pub fn items(mut payload: &[u8]) -> Result<Vec<Item<'_>>, RlpError> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let (item, rest) = decode(payload)?;
        out.push(item);
        payload = rest;
    }
    Ok(out)
}

/// A long-form length of `n` bytes at the start of `input`: it must have no leading zero and be
/// at least 56 (shorter lengths have a short form).
fn long_length(input: &[u8], n: usize) -> Result<(usize, &[u8]), RlpError> {
    if input.len() < n {
        return Err(RlpError::Truncated);
    }
    let (digits, rest) = input.split_at(n);
    if digits[0] == 0 || n > std::mem::size_of::<usize>() {
        return Err(RlpError::NotCanonical);
    }
    let len = digits.iter().fold(0usize, |v, &x| (v << 8) | usize::from(x));
    if len < 56 {
        return Err(RlpError::NotCanonical);
    }
    Ok((len, rest))
}

/// Appends the header of an item of `len` payload bytes: offset 0x80 for strings, 0xc0 for lists.
fn header(out: &mut Vec<u8>, offset: u8, len: usize) {
    if len < 56 {
        out.push(offset + len as u8);
        return;
    }
    let digits = len.to_be_bytes();
    let skip = digits.iter().take_while(|&&d| d == 0).count();
    out.push(offset + 55 + (digits.len() - skip) as u8);
    out.extend_from_slice(&digits[skip..]);
}

/// Appends byte string `b`.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() == 1 && b[0] < 0x80 {
        out.push(b[0]);
        return;
    }
    header(out, 0x80, b.len());
    out.extend_from_slice(b);
}

/// Appends unsigned integer `v` (big-endian, no leading zeros; 0 is the empty string).
pub fn put_uint(out: &mut Vec<u8>, v: u64) {
    let digits = v.to_be_bytes();
    let skip = digits.iter().take_while(|&&d| d == 0).count();
    put_bytes(out, &digits[skip..]);
}

/// Appends a list whose items' encodings are `payload`.
pub fn put_list(out: &mut Vec<u8>, payload: &[u8]) {
    header(out, 0xc0, payload.len());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_yellow_papers_examples() {
        let mut out = Vec::new();
        put_bytes(&mut out, b"dog");
        assert_eq!(out, [0x83, b'd', b'o', b'g']);
        let mut cat_dog = Vec::new();
        put_bytes(&mut cat_dog, b"cat");
        put_bytes(&mut cat_dog, b"dog");
        let mut list = Vec::new();
        put_list(&mut list, &cat_dog);
        assert_eq!(list, [0xc8, 0x83, b'c', b'a', b't', 0x83, b'd', b'o', b'g']);
        let (mut zero, mut fifteen, mut k) = (Vec::new(), Vec::new(), Vec::new());
        put_uint(&mut zero, 0);
        put_uint(&mut fifteen, 15);
        put_uint(&mut k, 1024);
        assert_eq!((zero, fifteen, k), (vec![0x80], vec![0x0f], vec![0x82, 0x04, 0x00]));
        let long = [b'a'; 56];
        let mut out = Vec::new();
        put_bytes(&mut out, &long);
        assert_eq!(&out[..2], &[0xb8, 56]);
        assert_eq!(decode_exact(&out).unwrap(), Item::Bytes(&long));
    }

    #[test]
    fn non_canonical_and_truncated_input_is_refused() {
        assert_eq!(decode(&[0x81, 0x05]), Err(RlpError::NotCanonical), "a byte below 0x80 with a prefix");
        assert_eq!(decode(&[0xb8, 0x05, 1, 2, 3, 4, 5]), Err(RlpError::NotCanonical), "long form below 56");
        assert_eq!(decode(&[0xb9, 0x00, 0x40]), Err(RlpError::NotCanonical), "a leading zero in the length");
        assert_eq!(decode(&[0x83, b'd']), Err(RlpError::Truncated));
        assert_eq!(decode(&[]), Err(RlpError::Truncated));
        assert_eq!(decode_exact(&[0x01, 0x02]), Err(RlpError::Trailing));
        assert_eq!(Item::Bytes(&[0, 1]).uint(), Err(RlpError::BadInteger));
        assert_eq!(Item::Bytes(&[1; 9]).uint(), Err(RlpError::BadInteger));
    }

    fn tree() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..8)
    }

    proptest! {
        #[test]
        fn lists_of_strings_round_trip(strings in tree(), v in any::<u64>()) {
            let mut payload = Vec::new();
            for s in &strings {
                put_bytes(&mut payload, s);
            }
            put_uint(&mut payload, v);
            let mut out = Vec::new();
            put_list(&mut out, &payload);
            let items = decode_exact(&out).unwrap().list().unwrap();
            prop_assert_eq!(items.len(), strings.len() + 1);
            for (item, s) in items.iter().zip(&strings) {
                prop_assert_eq!(item.bytes().unwrap(), &s[..]);
            }
            prop_assert_eq!(items[strings.len()].uint().unwrap(), v);
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((item, _)) = decode(&bytes) {
                let _ = item.list();
                let _ = item.uint();
            }
        }
    }
}
