//! The consensus req/resp domain's framing (`ssz_snappy`): one protocol per method, one stream
//! per request. A request is the varint length of its SSZ bytes, then those bytes in snappy's
//! framing format; the requester then closes its side. Each response chunk is a result byte,
//! for the versioned block methods the 4-byte fork digest of the block's fork (its *context*),
//! then the same length-and-frames encoding; the responder closes the stream after the last.

use super::snappy::{self, SnappyError, framed_extent};
use crate::varint;

/// A req/resp method this side knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// `status/1`: both chains' heads and finalized checkpoints.
    Status,
    /// `goodbye/1`: the reason a peer leaves.
    Goodbye,
    /// `ping/1`: liveness and the metadata sequence number.
    Ping,
    /// `metadata/1` (`false`) or `metadata/2` (`true`, with `syncnets`).
    MetaData(bool),
    /// `beacon_blocks_by_range/1` or `/2` (`true`: chunks carry the fork digest).
    BlocksByRange(bool),
    /// `beacon_blocks_by_root/1` or `/2`.
    BlocksByRoot(bool),
}

/// Every method, in the order a listener offers them.
pub const METHODS: [Method; 9] = [
    Method::Status,
    Method::Goodbye,
    Method::Ping,
    Method::MetaData(true),
    Method::MetaData(false),
    Method::BlocksByRange(true),
    Method::BlocksByRange(false),
    Method::BlocksByRoot(true),
    Method::BlocksByRoot(false),
];

/// The result byte of a successful chunk.
pub const SUCCESS: u8 = 0;
/// The result byte for a request this side could not serve (`ServerError`).
pub const SERVER_ERROR: u8 = 2;
/// The result byte for a request that made no sense (`InvalidRequest`).
pub const INVALID_REQUEST: u8 = 1;

impl Method {
    /// The multistream protocol id.
    pub fn protocol(self) -> String {
        let (name, version) = match self {
            Method::Status => ("status", 1),
            Method::Goodbye => ("goodbye", 1),
            Method::Ping => ("ping", 1),
            Method::MetaData(v2) => ("metadata", 1 + u8::from(v2)),
            Method::BlocksByRange(v2) => ("beacon_blocks_by_range", 1 + u8::from(v2)),
            Method::BlocksByRoot(v2) => ("beacon_blocks_by_root", 1 + u8::from(v2)),
        };
        format!("/eth2/beacon_chain/req/{name}/{version}/ssz_snappy")
    }

    /// The method a protocol id names, if this side knows it.
    pub fn from_protocol(protocol: &str) -> Option<Method> {
        METHODS.into_iter().find(|m| m.protocol() == protocol)
    }

    /// The bounds of the request's SSZ size; `None` for a method without a request body.
    pub fn request_len(self) -> Option<(usize, usize)> {
        match self {
            Method::Status => Some((84, 84)),
            Method::Goodbye | Method::Ping => Some((8, 8)),
            Method::MetaData(_) => None,
            Method::BlocksByRange(_) => Some((24, 24)),
            Method::BlocksByRoot(_) => Some((0, 32 * super::types::MAX_REQUEST_BLOCKS)),
        }
    }

    /// Whether response chunks carry the fork digest before their length.
    pub fn has_context(self) -> bool {
        matches!(self, Method::BlocksByRange(true) | Method::BlocksByRoot(true))
    }
}

/// Why req/resp bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReqRespError {
    /// The length prefix is not a varint.
    #[error("bad length prefix")]
    Length,
    /// The announced SSZ size is outside the type's bounds.
    #[error("an SSZ size of {0} bytes is out of bounds")]
    Bounds(u64),
    /// The snappy frames are invalid.
    #[error(transparent)]
    Snappy(#[from] SnappyError),
    /// Bytes followed the request.
    #[error("trailing bytes after the request")]
    Trailing,
}

/// SSZ bytes as a length-prefixed snappy-framed payload.
pub fn encode_payload(ssz: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ssz.len() / 2 + 32);
    varint::put(&mut out, ssz.len() as u64);
    out.extend_from_slice(&snappy::encode_framed(ssz));
    out
}

/// Reads one length-prefixed payload of between `min` and `max` SSZ bytes at the start of
/// `buf`: the SSZ bytes and how much of `buf` they took, or `None` while incomplete.
pub fn decode_payload(buf: &[u8], (min, max): (usize, usize)) -> Result<Option<(Vec<u8>, usize)>, ReqRespError> {
    let (len, n) = match varint::get(buf) {
        Ok(v) => v,
        Err(varint::VarintError::Truncated) => return Ok(None),
        Err(varint::VarintError::Overflow) => return Err(ReqRespError::Length),
    };
    if len < min as u64 || len > max as u64 {
        return Err(ReqRespError::Bounds(len));
    }
    let len = len as usize;
    let Some(end) = framed_extent(&buf[n..], len)? else { return Ok(None) };
    Ok(Some((snappy::decompress_delimited(&buf[n..n + end], len)?, n + end)))
}

/// A whole request stream's bytes (the requester closed its side) read for `method`: its SSZ
/// bytes (empty for a method without a body).
pub fn decode_request(method: Method, buf: &[u8]) -> Result<Vec<u8>, ReqRespError> {
    let Some(bounds) = method.request_len() else {
        return if buf.is_empty() { Ok(Vec::new()) } else { Err(ReqRespError::Trailing) };
    };
    match decode_payload(buf, bounds)? {
        Some((ssz, used)) if used == buf.len() => Ok(ssz),
        Some(_) => Err(ReqRespError::Trailing),
        None => Err(ReqRespError::Snappy(SnappyError::TooShort { got: buf.len(), want: bounds.0 })),
    }
}

/// A request's bytes (nothing for a method without a body).
pub fn encode_request(method: Method, ssz: &[u8]) -> Vec<u8> {
    if method.request_len().is_none() { Vec::new() } else { encode_payload(ssz) }
}

/// One successful response chunk: the result byte, the context when the method has one, the
/// payload.
pub fn encode_chunk(method: Method, context: [u8; 4], ssz: &[u8]) -> Vec<u8> {
    let mut out = vec![SUCCESS];
    if method.has_context() {
        out.extend_from_slice(&context);
    }
    out.extend_from_slice(&encode_payload(ssz));
    out
}

/// An error response: the result byte and a message (`List[byte, 256]`).
pub fn encode_error(code: u8, message: &str) -> Vec<u8> {
    let bytes = message.as_bytes();
    let mut out = vec![code];
    out.extend_from_slice(&encode_payload(&bytes[..bytes.len().min(256)]));
    out
}

/// One response chunk as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The result byte.
    pub result: u8,
    /// The fork digest, for methods with a context and a successful result.
    pub context: Option<[u8; 4]>,
    /// The SSZ bytes (an error message's bytes for a failed result).
    pub ssz: Vec<u8>,
}

/// Reads one response chunk of at most `max` SSZ bytes at the start of `buf`, with how much of
/// `buf` it took; `None` while incomplete.
pub fn decode_chunk(method: Method, buf: &[u8], max: usize) -> Result<Option<(Chunk, usize)>, ReqRespError> {
    let Some(&result) = buf.first() else { return Ok(None) };
    let mut at = 1;
    let context = if result == SUCCESS && method.has_context() {
        let Some(c) = buf.get(1..5) else { return Ok(None) };
        at = 5;
        Some(c.try_into().expect("4 bytes"))
    } else {
        None
    };
    let bounds = if result == SUCCESS { (0, max) } else { (0, 256) };
    let Some((ssz, used)) = decode_payload(&buf[at..], bounds)? else { return Ok(None) };
    Ok(Some((Chunk { result, context, ssz }, at + used)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protocol_ids_follow_the_spec() {
        assert_eq!(Method::Status.protocol(), "/eth2/beacon_chain/req/status/1/ssz_snappy");
        assert_eq!(Method::MetaData(true).protocol(), "/eth2/beacon_chain/req/metadata/2/ssz_snappy");
        assert_eq!(Method::BlocksByRoot(false).protocol(), "/eth2/beacon_chain/req/beacon_blocks_by_root/1/ssz_snappy");
        for m in METHODS {
            assert_eq!(Method::from_protocol(&m.protocol()), Some(m));
        }
        assert_eq!(Method::from_protocol("/eth2/beacon_chain/req/status/9/ssz_snappy"), None);
    }

    #[test]
    fn requests_round_trip_and_are_bounded() {
        let ping = 7u64.to_le_bytes();
        let wire = encode_request(Method::Ping, &ping);
        assert_eq!(wire[0], 8, "the length prefix counts SSZ bytes");
        assert_eq!(decode_request(Method::Ping, &wire).unwrap(), ping);
        assert_eq!(decode_request(Method::Status, &wire), Err(ReqRespError::Bounds(8)));
        let mut trailing = wire.clone();
        trailing.push(0);
        assert_eq!(decode_request(Method::Ping, &trailing), Err(ReqRespError::Trailing));
        assert!(decode_request(Method::Ping, &wire[..wire.len() - 1]).is_err());
        assert_eq!(decode_request(Method::MetaData(true), &[]).unwrap(), Vec::<u8>::new());
        assert!(encode_request(Method::MetaData(false), &[]).is_empty());
    }

    #[test]
    fn chunks_carry_their_context_only_where_the_method_has_one() {
        let block = vec![3u8; 500];
        let v2 = encode_chunk(Method::BlocksByRange(true), [1, 2, 3, 4], &block);
        let v1 = encode_chunk(Method::BlocksByRange(false), [1, 2, 3, 4], &block);
        assert_eq!(v2.len(), v1.len() + 4);
        let (c, used) = decode_chunk(Method::BlocksByRange(true), &v2, 1 << 20).unwrap().unwrap();
        assert_eq!((c.result, c.context, c.ssz, used), (SUCCESS, Some([1, 2, 3, 4]), block.clone(), v2.len()));
        // Two chunks back to back read one at a time; a cut one is incomplete.
        let mut two = v1.clone();
        two.extend_from_slice(&v1);
        let (_, used) = decode_chunk(Method::BlocksByRange(false), &two, 1 << 20).unwrap().unwrap();
        assert_eq!(used, v1.len());
        assert_eq!(decode_chunk(Method::BlocksByRange(false), &v1[..v1.len() - 2], 1 << 20), Ok(None));
        let err = encode_error(SERVER_ERROR, "no such block");
        let (c, _) = decode_chunk(Method::BlocksByRoot(true), &err, 1 << 20).unwrap().unwrap();
        assert_eq!((c.result, c.context, c.ssz.as_slice()), (SERVER_ERROR, None, &b"no such block"[..]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200), m in 0usize..9) {
            let _ = decode_request(METHODS[m], &buf);
            let _ = decode_chunk(METHODS[m], &buf, 1 << 20);
        }
    }
}
