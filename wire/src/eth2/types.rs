//! The consensus types a peer exchanges with Ethereum clients: `Status`, `MetaData`, the block
//! range and root requests, the fork digest and the ENR's `eth2` field, and the schema of a
//! `SignedBeaconBlock` for each fork and preset, from which a block's root is computed.

use super::ssz::{SszError, Ty, fields_of, hash_tree_root};

/// A consensus fork, as far as block contents go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fork {
    /// The beacon chain at genesis.
    Phase0,
    /// Sync committees.
    Altair,
    /// The merge: execution payloads.
    Bellatrix,
    /// Withdrawals.
    Capella,
}

impl Fork {
    /// The fork's name as clients and the specs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Fork::Phase0 => "phase0",
            Fork::Altair => "altair",
            Fork::Bellatrix => "bellatrix",
            Fork::Capella => "capella",
        }
    }

    /// The fork named `name`.
    pub fn from_name(name: &str) -> Option<Fork> {
        [Fork::Phase0, Fork::Altair, Fork::Bellatrix, Fork::Capella].into_iter().find(|f| f.name() == name)
    }
}

/// The constants that size a block: the specs' `minimal` (devnets, tests) or `mainnet` preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `SYNC_COMMITTEE_SIZE` 32, `MAX_WITHDRAWALS_PER_PAYLOAD` 4.
    Minimal,
    /// `SYNC_COMMITTEE_SIZE` 512, `MAX_WITHDRAWALS_PER_PAYLOAD` 16.
    Mainnet,
}

impl Preset {
    /// The preset named `name` (`minimal`, `mainnet`).
    pub fn from_name(name: &str) -> Option<Preset> {
        match name {
            "minimal" => Some(Preset::Minimal),
            "mainnet" => Some(Preset::Mainnet),
            _ => None,
        }
    }

    fn sync_committee_size(self) -> usize {
        if self == Preset::Minimal { 32 } else { 512 }
    }

    fn max_withdrawals(self) -> usize {
        if self == Preset::Minimal { 4 } else { 16 }
    }
}

/// `Vector[byte, 96]`: a BLS signature.
fn signature() -> Ty {
    Ty::Bytes(96)
}

fn checkpoint() -> Ty {
    Ty::Container(vec![Ty::Uint(8), Ty::root()])
}

fn attestation_data() -> Ty {
    Ty::Container(vec![Ty::Uint(8), Ty::Uint(8), Ty::root(), checkpoint(), checkpoint()])
}

/// `MAX_VALIDATORS_PER_COMMITTEE`, the same in both presets.
const MAX_VALIDATORS_PER_COMMITTEE: usize = 2048;

fn block_header() -> Ty {
    Ty::Container(vec![Ty::Uint(8), Ty::Uint(8), Ty::root(), Ty::root(), Ty::root()])
}

/// `Attestation` (phase0 to capella).
fn attestation() -> Ty {
    Ty::Container(vec![Ty::Bitlist(MAX_VALIDATORS_PER_COMMITTEE), attestation_data(), signature()])
}

/// The slot of an `Attestation` (the `beacon_attestation_{subnet}` topics' payload).
pub fn attestation_slot(bytes: &[u8]) -> Result<u64, SszError> {
    let parts = fields_of(&[Ty::Bitlist(MAX_VALIDATORS_PER_COMMITTEE), attestation_data(), signature()], bytes)?;
    Ok(u64::from_le_bytes(parts[1][..8].try_into().expect("AttestationData starts with its slot")))
}

/// The slot of a `SignedAggregateAndProof` (the `beacon_aggregate_and_proof` topic's payload):
/// its aggregate's.
pub fn aggregate_slot(bytes: &[u8]) -> Result<u64, SszError> {
    let signed = fields_of(&[Ty::Container(vec![Ty::Uint(8), attestation(), signature()]), signature()], bytes)?;
    let message = fields_of(&[Ty::Uint(8), attestation(), signature()], signed[0])?;
    attestation_slot(message[1])
}

fn body(fork: Fork, preset: Preset) -> Ty {
    let signed_header = Ty::Container(vec![block_header(), signature()]);
    let indexed =
        Ty::Container(vec![Ty::list(Ty::Uint(8), MAX_VALIDATORS_PER_COMMITTEE), attestation_data(), signature()]);
    let deposit_data = Ty::Container(vec![Ty::Bytes(48), Ty::root(), Ty::Uint(8), signature()]);
    let exit = Ty::Container(vec![Ty::Uint(8), Ty::Uint(8)]);
    let mut fields = vec![
        signature(),
        Ty::Container(vec![Ty::root(), Ty::Uint(8), Ty::root()]),
        Ty::root(),
        Ty::list(Ty::Container(vec![signed_header.clone(), signed_header]), 16),
        Ty::list(Ty::Container(vec![indexed.clone(), indexed]), 2),
        Ty::list(attestation(), 128),
        Ty::list(Ty::Container(vec![Ty::Vector(Box::new(Ty::root()), 33), deposit_data]), 16),
        Ty::list(Ty::Container(vec![exit, signature()]), 16),
    ];
    if fork >= Fork::Altair {
        fields.push(Ty::Container(vec![Ty::Bitvector(preset.sync_committee_size()), signature()]));
    }
    if fork >= Fork::Bellatrix {
        let mut payload = vec![
            Ty::root(),
            Ty::Bytes(20),
            Ty::root(),
            Ty::root(),
            Ty::Bytes(256),
            Ty::root(),
            Ty::Uint(8),
            Ty::Uint(8),
            Ty::Uint(8),
            Ty::Uint(8),
            Ty::ByteList(32),
            Ty::Uint(32),
            Ty::root(),
            Ty::list(Ty::ByteList(1 << 30), 1 << 20),
        ];
        if fork >= Fork::Capella {
            let withdrawal = Ty::Container(vec![Ty::Uint(8), Ty::Uint(8), Ty::Bytes(20), Ty::Uint(8)]);
            payload.push(Ty::list(withdrawal, preset.max_withdrawals()));
        }
        fields.push(Ty::Container(payload));
    }
    if fork >= Fork::Capella {
        let change = Ty::Container(vec![Ty::Uint(8), Ty::Bytes(48), Ty::Bytes(20)]);
        fields.push(Ty::list(Ty::Container(vec![change, signature()]), 16));
    }
    Ty::Container(fields)
}

/// `BeaconBlock` of `fork` under `preset`.
pub fn beacon_block(fork: Fork, preset: Preset) -> Ty {
    Ty::Container(vec![Ty::Uint(8), Ty::Uint(8), Ty::root(), Ty::root(), body(fork, preset)])
}

/// What a node needs of a `SignedBeaconBlock` to serve and follow the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSummary {
    /// The block's root (`hash_tree_root` of its `BeaconBlock`).
    pub root: [u8; 32],
    /// Its slot.
    pub slot: u64,
    /// Its proposer's index.
    pub proposer: u64,
    /// Its parent's root.
    pub parent: [u8; 32],
}

/// Reads a `SignedBeaconBlock` of `fork` under `preset`: its root, slot, proposer and parent.
pub fn read_signed_block(fork: Fork, preset: Preset, bytes: &[u8]) -> Result<BlockSummary, SszError> {
    let block_ty = beacon_block(fork, preset);
    let parts = fields_of(&[block_ty.clone(), signature()], bytes)?;
    let block = parts[0];
    let root = hash_tree_root(&block_ty, block)?;
    let u64_at = |at: usize| u64::from_le_bytes(block[at..at + 8].try_into().expect("8 bytes"));
    Ok(BlockSummary { root, slot: u64_at(0), proposer: u64_at(8), parent: block[16..48].try_into().expect("32 bytes") })
}

/// `compute_fork_digest`: the first 4 bytes of the root of `ForkData(version, gvr)`.
pub fn fork_digest(version: [u8; 4], genesis_validators_root: [u8; 32]) -> [u8; 4] {
    let mut bytes = version.to_vec();
    bytes.extend_from_slice(&genesis_validators_root);
    let root = hash_tree_root(&Ty::Container(vec![Ty::Bytes(4), Ty::root()]), &bytes).expect("36 bytes of ForkData");
    root[..4].try_into().expect("4 bytes")
}

/// The ENR's `eth2` value, `ENRForkID(fork_digest, next_fork_version, next_fork_epoch)`, for a
/// network with no fork scheduled (the next version is the current one, its epoch far away).
pub fn enr_fork_id(digest: [u8; 4], version: [u8; 4]) -> Vec<u8> {
    let mut v = digest.to_vec();
    v.extend_from_slice(&version);
    v.extend_from_slice(&u64::MAX.to_le_bytes());
    v
}

/// `Status`: what a node says of its chain when it meets a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The fork digest of its current fork.
    pub fork_digest: [u8; 4],
    /// Its finalized checkpoint's root (zero at genesis).
    pub finalized_root: [u8; 32],
    /// Its finalized checkpoint's epoch.
    pub finalized_epoch: u64,
    /// Its head block's root.
    pub head_root: [u8; 32],
    /// Its head block's slot.
    pub head_slot: u64,
}

impl Status {
    /// The serialised size.
    pub const LEN: usize = 84;

    /// SSZ bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend_from_slice(&self.fork_digest);
        v.extend_from_slice(&self.finalized_root);
        v.extend_from_slice(&self.finalized_epoch.to_le_bytes());
        v.extend_from_slice(&self.head_root);
        v.extend_from_slice(&self.head_slot.to_le_bytes());
        v
    }

    /// Reads SSZ bytes.
    pub fn decode(b: &[u8]) -> Result<Status, SszError> {
        if b.len() != Self::LEN {
            return Err(SszError::Length(b.len()));
        }
        let root = |at: usize| -> [u8; 32] { b[at..at + 32].try_into().expect("32 bytes") };
        let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        Ok(Status {
            fork_digest: b[0..4].try_into().expect("4 bytes"),
            finalized_root: root(4),
            finalized_epoch: word(36),
            head_root: root(44),
            head_slot: word(76),
        })
    }
}

/// `MetaData`: the node's sequence number and the subnets it is subscribed to long-term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaData {
    /// Bumped whenever the bitfields change.
    pub seq_number: u64,
    /// Attestation subnets (`Bitvector[64]`).
    pub attnets: u64,
    /// Sync committee subnets (`Bitvector[4]`, v2 only).
    pub syncnets: u8,
}

impl MetaData {
    /// SSZ bytes: version 1 (phase0) without `syncnets`, version 2 with.
    pub fn encode(&self, v2: bool) -> Vec<u8> {
        let mut v = self.seq_number.to_le_bytes().to_vec();
        v.extend_from_slice(&self.attnets.to_le_bytes());
        if v2 {
            v.push(self.syncnets & 0x0f);
        }
        v
    }

    /// Reads SSZ bytes of either version (16 or 17 bytes).
    pub fn decode(b: &[u8]) -> Result<MetaData, SszError> {
        let syncnets = match b.len() {
            16 => 0,
            17 if b[16] >> 4 == 0 => b[16],
            17 => return Err(SszError::Value("bitvector")),
            n => return Err(SszError::Length(n)),
        };
        let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        Ok(MetaData { seq_number: word(0), attnets: word(8), syncnets })
    }
}

/// `BeaconBlocksByRangeRequest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlocksByRange {
    /// The first slot.
    pub start_slot: u64,
    /// How many slots.
    pub count: u64,
    /// Deprecated: clients send 1.
    pub step: u64,
}

impl BlocksByRange {
    /// SSZ bytes.
    pub fn encode(&self) -> Vec<u8> {
        [self.start_slot, self.count, self.step].iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Reads SSZ bytes.
    pub fn decode(b: &[u8]) -> Result<BlocksByRange, SszError> {
        if b.len() != 24 {
            return Err(SszError::Length(b.len()));
        }
        let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        Ok(BlocksByRange { start_slot: word(0), count: word(8), step: word(16) })
    }
}

/// `MAX_REQUEST_BLOCKS`: the most roots a `BeaconBlocksByRoot` request may name.
pub const MAX_REQUEST_BLOCKS: usize = 1024;

/// Reads a `BeaconBlocksByRootRequest` (`List[Root, MAX_REQUEST_BLOCKS]`).
pub fn decode_roots(b: &[u8]) -> Result<Vec<[u8; 32]>, SszError> {
    if !b.len().is_multiple_of(32) || b.len() / 32 > MAX_REQUEST_BLOCKS {
        return Err(SszError::Length(b.len()));
    }
    Ok(b.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect())
}
