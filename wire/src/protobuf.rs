//! The protobuf wire format, as much of it as the libp2p application messages need: a reader
//! that walks the fields of one message (skipping unknown ones, groups included, as protobuf
//! requires) and writers for varint and length-delimited fields. Hand-written rather than
//! generated so that every allocation a decoder makes is a copy of a slice of its (bounded)
//! input, and so that decoding never panics.

use crate::varint;

/// How deep unknown groups may nest before the reader gives up (prost's recursion limit).
const MAX_GROUP_DEPTH: usize = 100;

/// Why protobuf bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The input ended inside a field.
    #[error("protobuf truncated")]
    Truncated,
    /// A varint longer than 10 bytes or above `u64::MAX`.
    #[error("protobuf varint overflows 64 bits")]
    VarintOverflow,
    /// A field key with wire type 6 or 7, or field number 0.
    #[error("invalid protobuf field key {0:#x}")]
    InvalidKey(u64),
    /// A known field came with a wire type its declaration does not allow.
    #[error("field {field} has wire type {wire_type}, not the declared one")]
    WrongWireType {
        /// The field number.
        field: u32,
        /// The wire type it came with.
        wire_type: u8,
    },
    /// A `string` field held bytes that are not UTF-8.
    #[error("field {0} is not valid UTF-8")]
    InvalidUtf8(u32),
    /// Groups nested deeper than the reader allows, or an end-group without its start.
    #[error("malformed or too deeply nested group")]
    BadGroup,
    /// More list items than the caller's limit allows.
    #[error("more than {0} list items")]
    TooManyItems(usize),
}

/// One field's value as it came on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: bytes, string or embedded message.
    Bytes(&'a [u8]),
    /// Wire type 3 to its matching 4, already skipped.
    Group,
    /// Wire type 5.
    Fixed32(u32),
}

impl Value<'_> {
    /// The wire type number, for error reports.
    fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Group => 3,
            Value::Fixed32(_) => 5,
        }
    }
}

/// A protobuf varint (up to 10 bytes, unlike the 9 of libp2p's length prefixes) at the start of
/// `bytes`: its value and length.
fn get_varint(bytes: &[u8]) -> Result<(u64, usize), ProtoError> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            return Err(ProtoError::VarintOverflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    if bytes.len() >= 10 { Err(ProtoError::VarintOverflow) } else { Err(ProtoError::Truncated) }
}

/// Walks the fields of one encoded message in order.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over one message's bytes.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The next field (number and value), or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, ProtoError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let (field, wire_type) = self.key()?;
        let value = match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| ProtoError::Truncated)?)),
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(usize::try_from(len).map_err(|_| ProtoError::Truncated)?)?)
            }
            3 => {
                self.skip_group(field)?;
                Value::Group
            }
            4 => return Err(ProtoError::BadGroup),
            _ => Value::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| ProtoError::Truncated)?)),
        };
        Ok(Some((field, value)))
    }

    /// Reads a field key: number and wire type (6 and 7 refused).
    fn key(&mut self) -> Result<(u32, u8), ProtoError> {
        let key = self.varint()?;
        let wire_type = (key & 7) as u8;
        let field = u32::try_from(key >> 3).map_err(|_| ProtoError::InvalidKey(key))?;
        if field == 0 || wire_type > 5 {
            return Err(ProtoError::InvalidKey(key));
        }
        Ok((field, wire_type))
    }

    /// Reads a varint.
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let (v, n) = get_varint(self.buf)?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    /// Takes the next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.buf.len() {
            return Err(ProtoError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Skips to the end-group key matching the start-group of `field`, nested groups included.
    fn skip_group(&mut self, field: u32) -> Result<(), ProtoError> {
        let mut open = vec![field];
        while let Some(&top) = open.last() {
            let (f, wire_type) = self.key()?;
            match wire_type {
                0 => drop(self.varint()?),
                1 => drop(self.take(8)?),
                2 => {
                    let len = self.varint()?;
                    self.take(usize::try_from(len).map_err(|_| ProtoError::Truncated)?)?;
                }
                3 if open.len() < MAX_GROUP_DEPTH => open.push(f),
                4 if f == top => drop(open.pop()),
                5 => drop(self.take(4)?),
                _ => return Err(ProtoError::BadGroup),
            }
        }
        Ok(())
    }
}

/// The bytes of a length-delimited field, or the error for any other wire type.
pub(crate) fn bytes<'a>(field: u32, value: Value<'a>) -> Result<&'a [u8], ProtoError> {
    match value {
        Value::Bytes(b) => Ok(b),
        other => Err(ProtoError::WrongWireType { field, wire_type: other.wire_type() }),
    }
}

/// A `string` field's text (UTF-8 checked).
pub(crate) fn string(field: u32, value: Value<'_>) -> Result<String, ProtoError> {
    let b = bytes(field, value)?;
    std::str::from_utf8(b).map(str::to_owned).map_err(|_| ProtoError::InvalidUtf8(field))
}

/// A varint field's value (`uint64`, or `bool` as non-zero).
pub(crate) fn uint(field: u32, value: Value<'_>) -> Result<u64, ProtoError> {
    match value {
        Value::Varint(v) => Ok(v),
        other => Err(ProtoError::WrongWireType { field, wire_type: other.wire_type() }),
    }
}

/// Counts decoded list items against a limit, so a hostile peer's many tiny items cannot make
/// the decoder build a huge number of structures out of one bounded frame.
pub(crate) struct ItemBudget {
    left: usize,
    max: usize,
}

impl ItemBudget {
    /// A budget of `max` items.
    pub(crate) fn new(max: usize) -> Self {
        ItemBudget { left: max, max }
    }

    /// Takes one item from the budget.
    pub(crate) fn take(&mut self) -> Result<(), ProtoError> {
        self.left = self.left.checked_sub(1).ok_or(ProtoError::TooManyItems(self.max))?;
        Ok(())
    }
}

/// Appends a field key.
fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint::put(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// Appends a varint field.
pub(crate) fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, 0);
    varint::put(out, v);
}

/// Appends a length-delimited field (bytes, string or an encoded message).
pub(crate) fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_key(out, field, 2);
    varint::put(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends an embedded message field, encoding the message with `encode`.
pub(crate) fn put_message(out: &mut Vec<u8>, field: u32, encode: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    encode(&mut inner);
    put_bytes(out, field, &inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(bytes: &[u8]) -> Result<Vec<(u32, Value<'_>)>, ProtoError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(f) = r.next_field()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn reads_every_wire_type() {
        let mut b = vec![0x08, 0x96, 0x01]; // field 1 varint 150
        b.extend([0x11, 1, 0, 0, 0, 0, 0, 0, 0]); // field 2 fixed64 1
        b.extend([0x1a, 2, b'h', b'i']); // field 3 bytes
        b.extend([0x23, 0x08, 0x01, 0x2b, 0x2c, 0x24]); // group 4 { varint, group 5 {} }
        b.extend([0x35, 7, 0, 0, 0]); // field 6 fixed32 7
        let f = fields(&b).unwrap();
        assert_eq!(
            f,
            vec![
                (1, Value::Varint(150)),
                (2, Value::Fixed64(1)),
                (3, Value::Bytes(b"hi")),
                (4, Value::Group),
                (6, Value::Fixed32(7))
            ]
        );
    }

    #[test]
    fn refuses_malformed_keys_and_groups() {
        assert_eq!(fields(&[0x00, 0x01]), Err(ProtoError::InvalidKey(0)));
        assert_eq!(fields(&[0x0e]), Err(ProtoError::InvalidKey(0x0e)));
        assert_eq!(fields(&[0x0c]), Err(ProtoError::BadGroup)); // end-group with no start
        assert_eq!(fields(&[0x0b, 0x14]), Err(ProtoError::BadGroup)); // mismatched end
        assert_eq!(fields(&[0x0b]), Err(ProtoError::Truncated));
        assert_eq!(fields(&[0x0a, 0x05, 1]), Err(ProtoError::Truncated));
        let deep: Vec<u8> = std::iter::repeat_n(0x0b, MAX_GROUP_DEPTH + 1).collect();
        assert_eq!(fields(&deep), Err(ProtoError::BadGroup));
    }

    #[test]
    fn ten_byte_varints() {
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(get_varint(&max), Ok((u64::MAX, 10)));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(get_varint(&over), Err(ProtoError::VarintOverflow));
        let mut out = Vec::new();
        put_uint(&mut out, 1, u64::MAX);
        assert_eq!(fields(&out), Ok(vec![(1, Value::Varint(u64::MAX))]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = fields(&bytes);
        }
    }
}
