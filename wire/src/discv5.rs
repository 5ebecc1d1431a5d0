//! Node Discovery v5.1 on the wire, as Ethereum's consensus clients speak it: what a surrogate
//! identity answers a real client's discovery with. Codecs and cryptography only, sans-IO:
//! [`packet`] (masking and the three kinds of header), [`message`] (PING, PONG, FINDNODE, NODES,
//! TALKREQ, TALKRESP), [`session`] (the handshake's ECDH, key derivation and id signature, and
//! AES-GCM), [`enr`] (EIP-778 node records, "v4" scheme), and [`node`], one node's sessions
//! and handshakes over them. Written from devp2p's `discv5-wire.md`
//! and checked against its `discv5-wire-test-vectors.md`.

pub mod enr;
pub mod message;
pub mod node;
pub mod packet;
pub mod session;

#[cfg(test)]
mod tests;
