//! Discv5 packets between identities, at message level: what a packet says (its kind, how it is
//! sealed, its request id and the records it carries as identity indices), its encoding on the
//! bus, and its size on the wire, taken from the real encoders in `thermocline_wire::discv5`.

use k256::ecdsa::SigningKey;
use thermocline_bus::binary::{DecodeError, Reader, Writer};
use thermocline_wire::discv5::enr::Enr;
use thermocline_wire::discv5::message::Message;
use thermocline_wire::discv5::packet::{AuthData, Header, MAX_PACKET};

/// Most records one FINDNODE answer carries (k), in as many NODES packets as the wire limit
/// needs (see [`Sizes::records_per_packet`]).
pub const MAX_RECORDS: usize = 16;

/// IPv4 and UDP headers, added to every packet's size on the network.
const IP_UDP: u32 = 28;

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// PING: are you there (carries the sender's record sequence number).
    Ping = 0,
    /// PONG: yes.
    Pong = 1,
    /// FINDNODE: records at distances `[d, d + 1, d − 1]` from the recipient.
    FindNode = 2,
    /// NODES: one of `total` answers to a FINDNODE.
    Nodes = 3,
    /// WHOAREYOU: the recipient has no session with the sender; a handshake must follow.
    WhoAreYou = 4,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 5] = [Kind::Ping, Kind::Pong, Kind::FindNode, Kind::Nodes, Kind::WhoAreYou];

    /// The name, for tables.
    pub fn name(self) -> &'static str {
        ["ping", "pong", "findnode", "nodes", "whoareyou"][self as usize]
    }

    /// Whether it asks for an answer.
    pub fn is_request(self) -> bool {
        matches!(self, Kind::Ping | Kind::FindNode)
    }
}

/// How a message packet is sealed, which decides what the recipient does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seal {
    /// Encrypted with the session's keys.
    Ordinary = 0,
    /// Random content: the sender has no session and starts the handshake; the recipient
    /// answers WHOAREYOU and reads nothing.
    Random = 1,
    /// The handshake packet, answering a WHOAREYOU: it carries the id signature, the ephemeral
    /// key and the sender's record, and the message.
    Handshake = 2,
}

/// One packet between identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Packet {
    /// What it is.
    pub kind: Kind,
    /// How it is sealed (WHOAREYOU: [`Seal::Ordinary`]).
    pub seal: Seal,
    /// The request id: a request's, echoed by its answers and by a WHOAREYOU it provoked.
    pub req: u32,
    /// PING and PONG: the sender's record sequence number; FINDNODE: the first distance asked;
    /// NODES: how many NODES packets answer the request.
    pub value: u32,
    /// NODES: how many of `nodes` are records.
    pub count: u8,
    /// How many wire packets this stands for: one, but for NODES, whose packets of one answer
    /// travel together (each drawn lost or not; the survivors' records arrive with the last).
    pub packets: u8,
    /// NODES: the records, as identity indices, packet after packet.
    pub nodes: [u32; MAX_RECORDS],
}

impl Packet {
    /// A packet without records.
    pub fn new(kind: Kind, seal: Seal, req: u32, value: u32) -> Packet {
        Packet { kind, seal, req, value, count: 0, packets: 1, nodes: [0; MAX_RECORDS] }
    }

    /// `packets` NODES packets of the `total` answering request `req`, carrying `records` (at
    /// most [`MAX_RECORDS`]) in order.
    pub fn nodes(req: u32, total: u32, packets: u8, records: &[u32]) -> Packet {
        let mut p = Packet::new(Kind::Nodes, Seal::Ordinary, req, total);
        p.count = records.len() as u8;
        p.packets = packets;
        p.nodes[..records.len()].copy_from_slice(records);
        p
    }

    /// The records a NODES packet carries.
    pub fn records(&self) -> &[u32] {
        &self.nodes[..self.count as usize]
    }

    /// The distances a FINDNODE with first distance `d` asks for, as clients ask them around a
    /// lookup target: `d`, then `d + 1` and `d − 1` where they exist (1..=256).
    pub fn distances(d: u32) -> impl Iterator<Item = u16> {
        let d = d.clamp(1, 256) as i32;
        [d, d + 1, d - 1].into_iter().filter(|x| (1..=256).contains(x)).map(|x| x as u16)
    }

    /// The bus encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(self.kind as u8);
        w.u8(self.seal as u8);
        w.u32(self.req);
        w.u32(self.value);
        w.u8(self.count);
        w.u8(self.packets);
        self.records().iter().for_each(|&n| w.u32(n));
    }

    /// Decode the bus encoding; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        let mut r = Reader::new(bytes);
        let invalid = |what, offset, detail: String| DecodeError::Invalid { what, offset, detail };
        let at = r.offset();
        let kind = r.u8("discv5 kind")?;
        let kind = *Kind::ALL.get(kind as usize).ok_or_else(|| invalid("discv5 kind", at, format!("{kind}")))?;
        let at = r.offset();
        let seal = match r.u8("discv5 seal")? {
            0 => Seal::Ordinary,
            1 => Seal::Random,
            2 => Seal::Handshake,
            s => return Err(invalid("discv5 seal", at, format!("{s}"))),
        };
        let req = r.u32("request id")?;
        let value = r.u32("value")?;
        let at = r.offset();
        let count = r.u8("record count")?;
        if count as usize > MAX_RECORDS || (count > 0 && kind != Kind::Nodes) {
            return Err(invalid("record count", at, format!("{count} records in a {} packet", kind.name())));
        }
        let at = r.offset();
        let packets = r.u8("packet count")?;
        if packets == 0 || (packets > 1 && kind != Kind::Nodes) || usize::from(packets) > MAX_RECORDS {
            return Err(invalid("packet count", at, format!("{packets} packets in a {} event", kind.name())));
        }
        let mut p = Packet { kind, seal, req, value, count, packets, nodes: [0; MAX_RECORDS] };
        for n in p.nodes.iter_mut().take(count as usize) {
            *n = r.u32("record")?;
        }
        r.finish("discv5 packet")?;
        Ok(p)
    }
}

/// Packet sizes on the network (IPv4 and UDP headers included), measured once from the wire
/// encoders with an Ethereum record (`ip`, `tcp`, `udp`, `eth2`, `attnets`, `syncnets`, custody
/// count), a real secp256k1 key and 8-byte request ids, as clients send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    ping: u32,
    pong: u32,
    findnode: u32,
    nodes_empty: u32,
    record: u32,
    whoareyou: u32,
    /// What a handshake packet adds to the message it seals (signature, ephemeral key, record).
    handshake_extra: u32,
    /// Records that fit one NODES packet under the 1,280-byte limit.
    records_per_packet: usize,
}

impl Sizes {
    /// Measure the sizes with the encoders.
    pub fn measure() -> Sizes {
        let key = SigningKey::from_slice(&[0x5a; 32]).expect("a valid scalar");
        let pairs: [(&[u8], Vec<u8>); 7] = [
            (b"attnets", vec![0xff; 8]),
            (b"cgc", vec![8]),
            (b"eth2", vec![0xab; 16]),
            (b"ip", vec![10, 1, 2, 3]),
            (b"syncnets", vec![0x0f]),
            (b"tcp", 9000u16.to_be_bytes().to_vec()),
            (b"udp", 9000u16.to_be_bytes().to_vec()),
        ];
        let enr = Enr::signed(&key, 3, &pairs).expect("an Ethereum record fits 300 bytes");
        let req_id = vec![0x77; 8];
        let ordinary_header = Header { nonce: [0; 12], auth: AuthData::Message { src: [0; 32] } }.encode().len();
        // masking IV + header + message + GCM tag.
        let packet = |m: &Message| (16 + ordinary_header + m.encode().len() + 16) as u32 + IP_UDP;
        let ping = packet(&Message::Ping { req_id: req_id.clone(), enr_seq: 3 });
        let pong = packet(&Message::Pong { req_id: req_id.clone(), enr_seq: 3, ip: [10, 1, 2, 3].into(), port: 9000 });
        let findnode = packet(&Message::FindNode { req_id: req_id.clone(), distances: vec![255, 256, 254] });
        let nodes_with = |n: usize| {
            packet(&Message::Nodes { req_id: req_id.clone(), total: 1, records: vec![enr.encoded().to_vec(); n] })
        };
        let nodes_empty = nodes_with(0);
        let record = enr.encoded().len() as u32;
        let whoareyou = (16
            + Header { nonce: [0; 12], auth: AuthData::WhoAreYou { id_nonce: [0; 16], enr_seq: 0 } }.encode().len())
            as u32
            + IP_UDP;
        let handshake_header = Header {
            nonce: [0; 12],
            auth: AuthData::Handshake {
                src: [0; 32],
                signature: vec![0; 64],
                eph_pubkey: vec![0; 33],
                record: Some(enr.encoded().to_vec()),
            },
        };
        let handshake_extra = (handshake_header.encode().len() - ordinary_header) as u32;
        let limit = MAX_PACKET as u32 + IP_UDP;
        let records_per_packet = (1..=MAX_RECORDS).take_while(|&n| nodes_with(n) <= limit).last().unwrap_or(1);
        Sizes { ping, pong, findnode, nodes_empty, record, whoareyou, handshake_extra, records_per_packet }
    }

    /// The size on the network of the packets `p` stands for, in bytes.
    pub fn bytes(&self, p: &Packet) -> u32 {
        let message = match p.kind {
            Kind::Ping => self.ping,
            Kind::Pong => self.pong,
            Kind::FindNode => self.findnode,
            Kind::Nodes => return (0..p.packets).map(|k| self.nodes_packet(self.records_in(p, k))).sum(),
            Kind::WhoAreYou => return self.whoareyou,
        };
        match p.seal {
            Seal::Handshake => message + self.handshake_extra,
            Seal::Ordinary | Seal::Random => message,
        }
    }

    /// Records per NODES packet.
    pub fn records_per_packet(&self) -> usize {
        self.records_per_packet
    }

    /// How many records the `k`-th of the NODES packets `p` stands for carries.
    pub fn records_in(&self, p: &Packet, k: u8) -> usize {
        let before = usize::from(k) * self.records_per_packet;
        usize::from(p.count).saturating_sub(before).min(self.records_per_packet)
    }

    /// One NODES packet with `records` records. The RLP list of records has a 3-byte header
    /// once it is over 55 bytes, 1 byte when empty.
    fn nodes_packet(&self, records: usize) -> u32 {
        self.nodes_empty + records as u32 * self.record + if records > 0 { 2 } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_follow_the_wire_encoders() {
        let s = Sizes::measure();
        // A WHOAREYOU is the smallest packet there is: 63 bytes of UDP payload.
        assert_eq!(s.whoareyou, 63 + IP_UDP);
        assert!(s.ping > s.whoareyou && s.pong > s.ping);
        // An Ethereum record is 150–300 bytes (195 here), so a NODES packet holds 4 to 7 of them.
        assert!((150..=300).contains(&s.record), "record {}", s.record);
        assert!((4..=7).contains(&s.records_per_packet()), "{}", s.records_per_packet());
        let per = s.records_per_packet();
        let full = Packet::nodes(1, 1, 1, &vec![7; per]);
        assert!(s.bytes(&full) <= MAX_PACKET as u32 + IP_UDP);
        assert!(s.nodes_packet(per + 1) > MAX_PACKET as u32 + IP_UDP);
        // A full answer of 16 records is three packets (6, 6, 4), each within the limit: 3.6 KB,
        // what a crawler measured receiving for a FINDNODE on mainnet.
        let n = MAX_RECORDS.div_ceil(per) as u8;
        assert_eq!(n, 3);
        let answer = Packet::nodes(1, u32::from(n), n, &[9; MAX_RECORDS]);
        let sizes: Vec<u32> = (0..n).map(|k| s.nodes_packet(s.records_in(&answer, k))).collect();
        assert!(sizes.iter().all(|&b| b <= MAX_PACKET as u32 + IP_UDP), "{sizes:?}");
        assert_eq!((0..n).map(|k| s.records_in(&answer, k)).collect::<Vec<_>>(), [6, 6, 4]);
        assert_eq!(s.bytes(&answer), sizes.iter().sum::<u32>());
        assert!((3_400..3_800).contains(&s.bytes(&answer)), "{}", s.bytes(&answer));
        // The handshake adds a 64-byte signature, a 33-byte key and the record.
        let ping = Packet::new(Kind::Ping, Seal::Ordinary, 1, 3);
        let sealed = Packet { seal: Seal::Handshake, ..ping };
        assert_eq!(s.bytes(&sealed) - s.bytes(&ping), 2 + 64 + 33 + s.record);
    }

    #[test]
    fn findnode_distances_stay_within_one_to_256() {
        assert_eq!(Packet::distances(200).collect::<Vec<_>>(), [200, 201, 199]);
        assert_eq!(Packet::distances(256).collect::<Vec<_>>(), [256, 255]);
        assert_eq!(Packet::distances(1).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(Packet::distances(0).collect::<Vec<_>>(), [1, 2]);
    }

    fn packet() -> impl Strategy<Value = Packet> {
        (
            0usize..5,
            0u8..3,
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 0..=MAX_RECORDS),
            1u8..=4,
        )
            .prop_map(|(k, s, req, value, nodes, packets)| {
                let kind = Kind::ALL[k];
                let seal = [Seal::Ordinary, Seal::Random, Seal::Handshake][s as usize];
                if kind == Kind::Nodes {
                    Packet { seal, ..Packet::nodes(req, value, packets, &nodes) }
                } else {
                    Packet::new(kind, seal, req, value)
                }
            })
    }

    proptest! {
        #[test]
        fn bus_encoding_round_trips(p in packet()) {
            let mut b = Vec::new();
            p.encode(&mut b);
            prop_assert_eq!(Packet::decode(&b).unwrap(), p);
        }

        #[test]
        fn decoding_any_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = Packet::decode(&b);
        }
    }
}
