//! Big-endian primitives shared by every explicit byte format of the bus (event batches, shard
//! reports, process-backend frames). Reading never panics: every read checks the remaining length.

/// Why bytes could not be decoded. Offsets are from the start of the decoded buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ended inside a field.
    #[error("truncated input: needed {needed} more bytes for {what} at offset {offset}, {available} available")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// How many bytes it needs.
        needed: usize,
        /// How many bytes were left.
        available: usize,
    },
    /// The leading magic bytes are not the format's.
    #[error("bad magic {found:02x?} for {format}; expected {expected:02x?}")]
    BadMagic {
        /// Which format was expected.
        format: &'static str,
        /// What the format starts with.
        expected: [u8; 4],
        /// What was found.
        found: [u8; 4],
    },
    /// A version this build does not read.
    #[error("unsupported {format} version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// Which format.
        format: &'static str,
        /// The version in the input.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {what} at offset {offset}: {detail}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// What is wrong with it.
        detail: String,
    },
    /// Bytes left over after a complete value.
    #[error("{count} trailing bytes after the end of the {format} at offset {offset}")]
    TrailingBytes {
        /// Which format.
        format: &'static str,
        /// Where the value ended.
        offset: usize,
        /// How many bytes follow it.
        count: usize,
    },
}

/// Appends big-endian fields to a byte vector.
pub struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// Write after whatever `buf` already holds.
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        Writer { buf }
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Big-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Big-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Raw bytes, no length.
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// A u32 length followed by the bytes. Panics if longer than 4 GiB (an internal bug).
    pub fn len_bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).expect("field longer than 4 GiB"));
        self.bytes(v);
    }
    /// A u32 length followed by UTF-8 text.
    pub fn string(&mut self, v: &str) {
        self.len_bytes(v.as_bytes());
    }
}

/// Reads big-endian fields from a byte slice, with bounds checks and offsets for errors.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Read `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Current offset.
    pub fn offset(&self) -> usize {
        self.pos
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { what, offset: self.pos, needed: n, available: self.remaining() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    /// Big-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    /// Big-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    /// Big-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
    /// A u32 length followed by that many bytes.
    pub fn len_bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    /// A u32 length followed by UTF-8 text.
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let offset = self.pos;
        let b = self.len_bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|e| DecodeError::Invalid { what, offset, detail: e.to_string() })
    }
    /// Check a 4-byte magic and a u16 version.
    pub fn header(&mut self, format: &'static str, magic: [u8; 4], version: u16) -> Result<(), DecodeError> {
        let found: [u8; 4] = self.array("magic")?;
        if found != magic {
            return Err(DecodeError::BadMagic { format, expected: magic, found });
        }
        let v = self.u16("version")?;
        if v != version {
            return Err(DecodeError::UnsupportedVersion { format, found: v, supported: version });
        }
        Ok(())
    }
    /// A count of items that each take at least `min_item_bytes`: rejected if the rest of the
    /// buffer could not hold that many, so a hostile count cannot make us allocate.
    pub fn count(&mut self, what: &'static str, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::Invalid {
                what,
                offset,
                detail: format!("{n} items cannot fit in the {} bytes that remain", self.remaining()),
            });
        }
        Ok(n)
    }
    /// Fail unless every byte was read.
    pub fn finish(&self, format: &'static str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::TrailingBytes { format, offset: self.pos, count: self.remaining() });
        }
        Ok(())
    }
}
