//! Packet capture of a direct host: every IPv4 packet it sends and receives, with simulated
//! timestamps, as a classic pcap file with link type `LINKTYPE_RAW` (101: each record is an IPv4
//! packet), which tcpdump, tshark and Wireshark read.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Link type of records that are raw IP packets.
pub const LINKTYPE_RAW: u32 = 101;
/// The largest packet a record holds in full.
pub const SNAPLEN: u32 = 65_535;
const MAGIC_US: u32 = 0xa1b2_c3d4;

/// Writes a host's `packets.pcap`.
pub struct PcapWriter {
    out: BufWriter<File>,
    /// The first write error, reported when the capture is finished.
    error: Option<io::Error>,
}

/// The 24-byte global header of a microsecond-resolution pcap file.
pub fn file_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[..4].copy_from_slice(&MAGIC_US.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs: 0
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
    h
}

/// The 16-byte header of a record of `len` bytes captured at simulated time `ns`.
pub fn record_header(ns: u64, len: usize) -> [u8; 16] {
    let mut h = [0u8; 16];
    let caplen = (len as u32).min(SNAPLEN);
    h[..4].copy_from_slice(&((ns / 1_000_000_000) as u32).to_le_bytes());
    h[4..8].copy_from_slice(&(((ns % 1_000_000_000) / 1000) as u32).to_le_bytes());
    h[8..12].copy_from_slice(&caplen.to_le_bytes());
    h[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    h
}

impl PcapWriter {
    /// Create `path` and write the file header.
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&file_header())?;
        Ok(PcapWriter { out, error: None })
    }

    /// Append a packet seen at simulated time `ns` (timestamps count from the simulation's start).
    pub fn record(&mut self, ns: u64, packet: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let caplen = packet.len().min(SNAPLEN as usize);
        let r =
            self.out.write_all(&record_header(ns, packet.len())).and_then(|_| self.out.write_all(&packet[..caplen]));
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    /// Flush the file; the first error met while writing, if any.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_pcap_format() {
        let h = file_header();
        assert_eq!(&h[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 101);
        let r = record_header(2_500_001_000, 70_000);
        assert_eq!(u32::from_le_bytes(r[..4].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 500_001);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 65_535);
        assert_eq!(u32::from_le_bytes(r[12..16].try_into().unwrap()), 70_000);
    }
}
