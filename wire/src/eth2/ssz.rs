//! Simple Serialize (SSZ) as the consensus specs define it, read through a schema: a [`Ty`]
//! describes a type, and [`hash_tree_root`] walks bytes of that type, checking every offset and
//! length, to its Merkle root. One interpreter serves every fork's block (the schemas are data,
//! see [`super::types`]), and because the bytes come from peers it never panics: anything that
//! is not a valid serialisation of the type is an [`SszError`].

use sha2::{Digest as _, Sha256};

/// An SSZ type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `uintN` of this many bytes (1, 2, 4, 8, 16 or 32), little-endian.
    Uint(usize),
    /// `boolean`: one byte, 0 or 1.
    Bool,
    /// `Vector[byte, N]` (roots, signatures, keys, addresses).
    Bytes(usize),
    /// `List[byte, N]`.
    ByteList(usize),
    /// `Bitvector[N]`.
    Bitvector(usize),
    /// `Bitlist[N]`.
    Bitlist(usize),
    /// `Vector[T, N]` of a composite `T`.
    Vector(Box<Ty>, usize),
    /// `List[T, N]`.
    List(Box<Ty>, usize),
    /// A container: its fields in order.
    Container(Vec<Ty>),
}

/// Why bytes are not a valid serialisation of a type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SszError {
    /// The bytes are shorter or longer than the type allows.
    #[error("{0} bytes do not fit the type")]
    Length(usize),
    /// An offset points outside the bytes, backwards, or not where the fixed part ends.
    #[error("bad offset {0}")]
    Offset(usize),
    /// More elements than the list's limit.
    #[error("{len} elements over the limit of {limit}")]
    Limit {
        /// Elements found.
        len: usize,
        /// The type's limit.
        limit: usize,
    },
    /// A boolean other than 0 or 1, a bitvector with bits set past its length, a bitlist
    /// without its delimiting bit.
    #[error("invalid {0}")]
    Value(&'static str),
}

impl Ty {
    /// `Vector[byte, 32]`: a root or a hash.
    pub fn root() -> Ty {
        Ty::Bytes(32)
    }

    /// A `List[T, limit]`.
    pub fn list(t: Ty, limit: usize) -> Ty {
        Ty::List(Box::new(t), limit)
    }

    /// The serialised size of a fixed-size type; `None` for a variable-size one.
    pub fn fixed_len(&self) -> Option<usize> {
        match self {
            Ty::Uint(n) | Ty::Bytes(n) => Some(*n),
            Ty::Bool => Some(1),
            Ty::Bitvector(n) => Some(n.div_ceil(8)),
            Ty::ByteList(_) | Ty::Bitlist(_) | Ty::List(..) => None,
            Ty::Vector(t, n) => t.fixed_len().map(|l| l * n),
            Ty::Container(fields) => fields.iter().map(Ty::fixed_len).sum(),
        }
    }

    /// Whether the type packs into chunks (`uintN` and `boolean`).
    fn is_basic(&self) -> bool {
        matches!(self, Ty::Uint(_) | Ty::Bool)
    }
}

/// `SHA-256(a ‖ b)`.
fn hash_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    Sha256::new().chain_update(a).chain_update(b).finalize().into()
}

/// The roots of all-zero trees of depth 0, 1, …
fn zero_hashes() -> &'static [[u8; 32]; 65] {
    static ZERO: std::sync::OnceLock<[[u8; 32]; 65]> = std::sync::OnceLock::new();
    ZERO.get_or_init(|| {
        let mut z = [[0u8; 32]; 65];
        for d in 1..65 {
            z[d] = hash_pair(&z[d - 1], &z[d - 1]);
        }
        z
    })
}

/// The Merkle root of `chunks` padded with zero chunks to the next power of two of `limit`
/// chunks (of the chunk count itself when `limit` is `None`).
pub fn merkleize(mut chunks: Vec<[u8; 32]>, limit: Option<usize>) -> Result<[u8; 32], SszError> {
    let width = match limit {
        Some(l) if chunks.len() > l => return Err(SszError::Limit { len: chunks.len(), limit: l }),
        Some(l) => l,
        None => chunks.len(),
    };
    let depth = width.max(1).next_power_of_two().trailing_zeros() as usize;
    let zero = zero_hashes();
    for z in &zero[..depth] {
        if chunks.len() % 2 == 1 {
            chunks.push(*z);
        }
        chunks = chunks.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
    }
    Ok(chunks.first().copied().unwrap_or(zero[depth]))
}

/// `root` with a length mixed in, as lists and bitlists have.
fn mix_in_length(root: [u8; 32], len: usize) -> [u8; 32] {
    let mut l = [0u8; 32];
    l[..8].copy_from_slice(&(len as u64).to_le_bytes());
    hash_pair(&root, &l)
}

/// `bytes` cut into 32-byte chunks, the last one zero-padded.
fn pack(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes
        .chunks(32)
        .map(|c| {
            let mut chunk = [0u8; 32];
            chunk[..c.len()].copy_from_slice(c);
            chunk
        })
        .collect()
}

/// The hash tree root of `bytes` read as a `ty`.
pub fn hash_tree_root(ty: &Ty, bytes: &[u8]) -> Result<[u8; 32], SszError> {
    if let Some(n) = ty.fixed_len()
        && bytes.len() != n
    {
        return Err(SszError::Length(bytes.len()));
    }
    match ty {
        Ty::Bool if bytes[0] > 1 => Err(SszError::Value("boolean")),
        Ty::Uint(_) | Ty::Bool | Ty::Bytes(_) => merkleize(pack(bytes), None),
        Ty::ByteList(limit) => {
            if bytes.len() > *limit {
                return Err(SszError::Limit { len: bytes.len(), limit: *limit });
            }
            Ok(mix_in_length(merkleize(pack(bytes), Some(limit.div_ceil(32)))?, bytes.len()))
        }
        Ty::Bitvector(n) => {
            if n % 8 != 0 && bytes.last().is_some_and(|&b| b >> (n % 8) != 0) {
                return Err(SszError::Value("bitvector"));
            }
            merkleize(pack(bytes), Some(n.div_ceil(256)))
        }
        Ty::Bitlist(limit) => {
            let (&last, _) = bytes.split_last().ok_or(SszError::Value("bitlist"))?;
            if last == 0 {
                return Err(SszError::Value("bitlist"));
            }
            let bits = (bytes.len() - 1) * 8 + 7 - last.leading_zeros() as usize;
            if bits > *limit {
                return Err(SszError::Limit { len: bits, limit: *limit });
            }
            let mut data = bytes.to_vec();
            let top = data.len() - 1;
            data[top] ^= 1 << (bits % 8);
            data.truncate(bits.div_ceil(8));
            Ok(mix_in_length(merkleize(pack(&data), Some(limit.div_ceil(256)))?, bits))
        }
        Ty::Vector(t, _) if t.is_basic() => merkleize(pack(bytes), None),
        Ty::Vector(t, n) => merkleize(element_roots(t, &elements(t, bytes, Some(*n))?)?, None),
        Ty::List(t, limit) => {
            if let Some(size) = t.fixed_len().filter(|_| t.is_basic()) {
                if !bytes.len().is_multiple_of(size) || bytes.len() / size > *limit {
                    return Err(SszError::Length(bytes.len()));
                }
                let root = merkleize(pack(bytes), Some((limit * size).div_ceil(32)))?;
                return Ok(mix_in_length(root, bytes.len() / size));
            }
            let parts = elements(t, bytes, None)?;
            if parts.len() > *limit {
                return Err(SszError::Limit { len: parts.len(), limit: *limit });
            }
            Ok(mix_in_length(merkleize(element_roots(t, &parts)?, Some(*limit))?, parts.len()))
        }
        Ty::Container(fields) => {
            let parts = fields_of(fields, bytes)?;
            let roots = fields.iter().zip(&parts).map(|(f, b)| hash_tree_root(f, b)).collect::<Result<_, _>>()?;
            merkleize(roots, None)
        }
    }
}

/// The roots of a composite sequence's elements.
fn element_roots(t: &Ty, parts: &[&[u8]]) -> Result<Vec<[u8; 32]>, SszError> {
    parts.iter().map(|b| hash_tree_root(t, b)).collect()
}

/// Splits a sequence of `t` (a vector of `n` when given) into its elements' bytes.
fn elements<'a>(t: &Ty, bytes: &'a [u8], n: Option<usize>) -> Result<Vec<&'a [u8]>, SszError> {
    let parts: Vec<&[u8]> = match t.fixed_len() {
        Some(0) => return Err(SszError::Value("zero-size element")),
        Some(size) if bytes.len().is_multiple_of(size) => bytes.chunks(size).collect(),
        Some(_) => return Err(SszError::Length(bytes.len())),
        None if bytes.is_empty() => Vec::new(),
        None => {
            let first = offset(bytes, 0)?;
            if first % 4 != 0 || first == 0 || first > bytes.len() {
                return Err(SszError::Offset(first));
            }
            let offsets = (0..first / 4).map(|k| offset(bytes, 4 * k)).collect::<Result<Vec<_>, _>>()?;
            split_at_offsets(bytes, &offsets, first)?
        }
    };
    match n {
        Some(n) if parts.len() != n => Err(SszError::Length(bytes.len())),
        _ => Ok(parts),
    }
}

/// Splits a container's bytes into its fields' bytes.
pub fn fields_of<'a>(fields: &[Ty], bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, SszError> {
    let fixed: usize = fields.iter().map(|f| f.fixed_len().unwrap_or(4)).sum();
    if bytes.len() < fixed {
        return Err(SszError::Length(bytes.len()));
    }
    let (mut at, mut offsets) = (0usize, Vec::new());
    let mut spans: Vec<Option<(usize, usize)>> = Vec::with_capacity(fields.len());
    for f in fields {
        match f.fixed_len() {
            Some(n) => {
                spans.push(Some((at, at + n)));
                at += n;
            }
            None => {
                offsets.push(offset(bytes, at)?);
                spans.push(None);
                at += 4;
            }
        }
    }
    if offsets.is_empty() && bytes.len() != fixed {
        return Err(SszError::Length(bytes.len()));
    }
    let mut variable = split_at_offsets(bytes, &offsets, fixed)?.into_iter();
    Ok(spans
        .into_iter()
        .map(|s| match s {
            Some((a, b)) => &bytes[a..b],
            None => variable.next().expect("one part per offset"),
        })
        .collect())
}

/// The parts between consecutive `offsets` (the first must be `start`), the last to the end.
fn split_at_offsets<'a>(bytes: &'a [u8], offsets: &[usize], start: usize) -> Result<Vec<&'a [u8]>, SszError> {
    if offsets.first().is_some_and(|&o| o != start) {
        return Err(SszError::Offset(offsets[0]));
    }
    let mut parts = Vec::with_capacity(offsets.len());
    for (k, &o) in offsets.iter().enumerate() {
        let end = offsets.get(k + 1).copied().unwrap_or(bytes.len());
        if end < o || end > bytes.len() {
            return Err(SszError::Offset(end));
        }
        parts.push(&bytes[o..end]);
    }
    Ok(parts)
}

/// The 4-byte little-endian offset at `at`.
fn offset(bytes: &[u8], at: usize) -> Result<usize, SszError> {
    let b = bytes.get(at..at + 4).ok_or(SszError::Length(bytes.len()))?;
    Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex32(s: &str) -> [u8; 32] {
        let v: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    }

    #[test]
    fn basic_values_are_their_padded_chunk() {
        let mut want = [0u8; 32];
        want[..8].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(hash_tree_root(&Ty::Uint(8), &5u64.to_le_bytes()).unwrap(), want);
        assert_eq!(hash_tree_root(&Ty::Bool, &[2]), Err(SszError::Value("boolean")));
        assert_eq!(hash_tree_root(&Ty::Uint(8), &[0; 7]), Err(SszError::Length(7)));
    }

    #[test]
    fn zero_trees_match_the_known_roots() {
        // The root of 2^k zero chunks: depth 1 is SHA-256 of 64 zero bytes.
        assert_eq!(zero_hashes()[1], hex32("f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b"));
        assert_eq!(merkleize(vec![], Some(4)).unwrap(), zero_hashes()[2]);
        assert_eq!(merkleize(vec![[0; 32]; 3], None).unwrap(), zero_hashes()[2]);
        assert!(merkleize(vec![[0; 32]; 5], Some(4)).is_err());
    }

    #[test]
    fn an_empty_list_mixes_in_zero_length() {
        let root = hash_tree_root(&Ty::list(Ty::root(), 1024), &[]).unwrap();
        assert_eq!(root, mix_in_length(zero_hashes()[10], 0));
    }

    #[test]
    fn bitlists_drop_their_delimiter() {
        // Bitlist [1, 0, 1] is 0b1101 on the wire; its chunk holds 0b101 and the length 3.
        let root = hash_tree_root(&Ty::Bitlist(2048), &[0b1101]).unwrap();
        let mut chunk = [0u8; 32];
        chunk[0] = 0b101;
        assert_eq!(root, mix_in_length(merkleize(vec![chunk], Some(8)).unwrap(), 3));
        assert_eq!(hash_tree_root(&Ty::Bitlist(2048), &[0]), Err(SszError::Value("bitlist")));
        assert!(hash_tree_root(&Ty::Bitlist(2), &[0b1111]).is_err());
        assert_eq!(hash_tree_root(&Ty::Bitvector(4), &[0x10]), Err(SszError::Value("bitvector")));
    }

    #[test]
    fn containers_check_their_offsets() {
        let t = Ty::Container(vec![Ty::Uint(8), Ty::ByteList(10), Ty::ByteList(10)]);
        let mut ok = 7u64.to_le_bytes().to_vec();
        ok.extend_from_slice(&16u32.to_le_bytes());
        ok.extend_from_slice(&18u32.to_le_bytes());
        ok.extend_from_slice(b"ab");
        ok.extend_from_slice(b"cde");
        assert_eq!(fields_of(&[Ty::Uint(8), Ty::ByteList(10), Ty::ByteList(10)], &ok).unwrap()[2], b"cde");
        assert!(hash_tree_root(&t, &ok).is_ok());
        let mut backwards = ok.clone();
        backwards[12..16].copy_from_slice(&15u32.to_le_bytes());
        assert!(hash_tree_root(&t, &backwards).is_err());
        let mut wrong_start = ok.clone();
        wrong_start[8..12].copy_from_slice(&17u32.to_le_bytes());
        assert_eq!(hash_tree_root(&t, &wrong_start), Err(SszError::Offset(17)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let t = Ty::Container(vec![
                Ty::Uint(8),
                Ty::list(Ty::Container(vec![Ty::Bitlist(64), Ty::Bytes(8)]), 4),
                Ty::Vector(Box::new(Ty::root()), 2),
                Ty::list(Ty::ByteList(40), 3),
            ]);
            let _ = hash_tree_root(&t, &bytes);
        }
    }
}
