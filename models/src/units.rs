//! Sizes and bandwidths written with units, as Shadow's network graphs and Thermocline specs write
//! them: `"100 KiB"`, `"1.5 MB"`, `"50 Mbit"`, `"1 Gbit"`, `"10 MiB"` per second.
//!
//! Bit units (`bit`, `kbit`, `Mbit`, …, `Kibit`, `Mibit`, …) and byte units (`B`, `kB`, `MB`, …,
//! `KiB`, `MiB`, …): SI prefixes are powers of 1000, IEC prefixes (`Ki`, `Mi`, `Gi`, `Ti`) powers of
//! 1024. A bandwidth is an amount per second; both `"50 Mbit"` and `"50 Mbit/s"` (or `Mbps`) are
//! read. Decimal fractions are exact (no floating point) and must come to a whole number of
//! bits. Everything is stored in bits (bandwidth: bits per second).

use std::fmt;

/// Why a size or bandwidth could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// No number.
    #[error("{0:?} has no number; expected e.g. \"100 Mbit\" or \"64 KiB\"")]
    NoNumber(String),
    /// A number that is not a plain decimal.
    #[error("invalid number in {0:?}")]
    BadNumber(String),
    /// No unit.
    #[error("{0:?} has no unit; expected a bit or byte unit such as bit, kbit, Mbit, Gbit, B, KiB, MB")]
    NoUnit(String),
    /// A unit that is not known.
    #[error("unknown unit {unit:?} in {text:?}; expected a bit or byte unit such as bit, kbit, Mbit, Gbit, B, KiB, MB")]
    BadUnit {
        /// The unit.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// Not a whole number of bits, or too large.
    #[error("{0:?} is not a whole number of bits or is too large")]
    Range(String),
}

/// The multiplier, in bits, of a unit.
fn unit_bits(unit: &str) -> Option<u64> {
    let (prefix, base) = if let Some(p) = unit.strip_suffix("bit") {
        (p, 1u64)
    } else if let Some(p) = unit.strip_suffix("bits") {
        (p, 1)
    } else if let Some(p) = unit.strip_suffix("bps") {
        (p, 1)
    } else if let Some(p) = unit.strip_suffix('B') {
        (p, 8)
    } else if let Some(p) = unit.strip_suffix("byte") {
        (p, 8)
    } else if let Some(p) = unit.strip_suffix("bytes") {
        (p, 8)
    } else {
        return None;
    };
    let scale: u64 = match prefix {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    Some(base * scale)
}

/// Parse `"<number> <unit>"` (space optional) into bits; `per_second` strips a `/s` suffix.
fn parse_bits(text: &str, per_second: bool) -> Result<u64, UnitError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    if number.is_empty() {
        return Err(UnitError::NoNumber(text.to_string()));
    }
    let unit = if per_second { unit.strip_suffix("/s").unwrap_or(unit) } else { unit };
    if unit.is_empty() {
        return Err(UnitError::NoUnit(text.to_string()));
    }
    let scale = unit_bits(unit).ok_or_else(|| UnitError::BadUnit { unit: unit.to_string(), text: text.to_string() })?;
    let number: String = number.chars().filter(|&c| c != '_').collect();
    let (int_part, frac_part) = number.split_once('.').unwrap_or((&number, ""));
    if !int_part.chars().all(|c| c.is_ascii_digit())
        || !frac_part.chars().all(|c| c.is_ascii_digit())
        || (int_part.is_empty() && frac_part.is_empty())
    {
        return Err(UnitError::BadNumber(text.to_string()));
    }
    let range = || UnitError::Range(text.to_string());
    let whole: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| range())? };
    let mut bits = whole.checked_mul(scale as u128).ok_or_else(range)?;
    let frac = frac_part.trim_end_matches('0');
    if !frac.is_empty() {
        if frac.len() > 24 {
            return Err(range());
        }
        let num = frac.parse::<u128>().map_err(|_| range())? * scale as u128;
        let den = 10u128.pow(frac.len() as u32);
        if !num.is_multiple_of(den) {
            return Err(range());
        }
        bits += num / den;
    }
    u64::try_from(bits).map_err(|_| range())
}

/// An amount of data, in bits.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    /// Whole bytes, rounding up.
    pub fn bytes(self) -> u64 {
        self.0.div_ceil(8)
    }
}

/// A data rate, in bits per second.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bandwidth(pub u64);

impl Bandwidth {
    /// Nanoseconds to serialise `bytes` bytes at this rate, rounded up (at least 1 ns for a
    /// non-empty message); `None` for a zero rate.
    pub fn transmit_ns(self, bytes: u64) -> Option<u64> {
        if self.0 == 0 {
            return None;
        }
        // Every message up to 2.3 GB fits 64-bit arithmetic, several times cheaper than the
        // 128-bit division kept for the rest; both give the same exact result.
        if let Some(bits_ns) = bytes.checked_mul(8 * 1_000_000_000) {
            return Some(bits_ns.div_ceil(self.0));
        }
        let ns = (bytes as u128 * 8 * 1_000_000_000).div_ceil(self.0 as u128);
        Some(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

impl std::str::FromStr for Size {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        parse_bits(s, false).map(Size)
    }
}

impl std::str::FromStr for Bandwidth {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        parse_bits(s, true).map(Bandwidth)
    }
}

fn fmt_bits(bits: u64, f: &mut fmt::Formatter<'_>, suffix: &str) -> fmt::Result {
    for (scale, name) in [(1_000_000_000_000u64, "Tbit"), (1_000_000_000, "Gbit"), (1_000_000, "Mbit"), (1_000, "kbit")]
    {
        if bits >= scale && bits.is_multiple_of(scale) {
            return write!(f, "{} {name}{suffix}", bits / scale);
        }
    }
    write!(f, "{bits} bit{suffix}")
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_bits(self.0, f, "")
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_bits(self.0, f, "")
    }
}

macro_rules! serde_as_text {
    ($t:ty, $what:literal) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

serde_as_text!(Size, "a size with a unit, e.g. \"100 KiB\"");
serde_as_text!(Bandwidth, "a bandwidth with a unit, e.g. \"50 Mbit\"");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bit_and_byte_units_with_si_and_iec_prefixes() {
        assert_eq!("50 Mbit".parse::<Bandwidth>().unwrap(), Bandwidth(50_000_000));
        assert_eq!("50Mbit".parse::<Bandwidth>().unwrap(), Bandwidth(50_000_000));
        assert_eq!("1 Gbit/s".parse::<Bandwidth>().unwrap(), Bandwidth(1_000_000_000));
        assert_eq!("25 Mbps".parse::<Bandwidth>().unwrap(), Bandwidth(25_000_000));
        assert_eq!("1 MiB".parse::<Bandwidth>().unwrap(), Bandwidth(8 * 1024 * 1024));
        assert_eq!("100 KiB".parse::<Size>().unwrap(), Size(8 * 100 * 1024));
        assert_eq!("1.5 MB".parse::<Size>().unwrap(), Size(12_000_000));
        assert_eq!("2 kbit".parse::<Size>().unwrap(), Size(2_000));
        assert_eq!("3 B".parse::<Size>().unwrap().bytes(), 3);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(matches!("50".parse::<Bandwidth>(), Err(UnitError::NoUnit(_))));
        assert!(matches!("Mbit".parse::<Bandwidth>(), Err(UnitError::NoNumber(_))));
        assert!(matches!("5 Mfurlong".parse::<Bandwidth>(), Err(UnitError::BadUnit { .. })));
        assert!(matches!("0.1 bit".parse::<Size>(), Err(UnitError::Range(_))));
        assert!(matches!("99999999999999 Tbit".parse::<Size>(), Err(UnitError::Range(_))));
    }

    #[test]
    fn transmission_time_is_size_over_rate() {
        // 100 KiB at 25 Mbit/s: 819,200 bits / 25e6 = 32.768 ms.
        assert_eq!(Bandwidth(25_000_000).transmit_ns(100 * 1024), Some(32_768_000));
        assert_eq!(Bandwidth(3).transmit_ns(1), Some(2_666_666_667));
        assert_eq!(Bandwidth(0).transmit_ns(1), None);
        // Past 64-bit arithmetic: 3 GB at 1 bit/s saturates, 3 GB at 1 Gbit/s is 24 s.
        assert_eq!(Bandwidth(1).transmit_ns(3_000_000_000), Some(u64::MAX));
        assert_eq!(Bandwidth(1_000_000_000).transmit_ns(3_000_000_000), Some(24_000_000_000));
    }

    proptest::proptest! {
        /// The 64-bit shortcut gives exactly the 128-bit result.
        #[test]
        fn transmission_time_is_exact(rate in 1u64.., bytes in 0u64..5_000_000_000) {
            let exact = (bytes as u128 * 8_000_000_000).div_ceil(rate as u128);
            proptest::prop_assert_eq!(Bandwidth(rate).transmit_ns(bytes), Some(u64::try_from(exact).unwrap_or(u64::MAX)));
        }
    }

    #[test]
    fn display_round_trips() {
        for b in [Bandwidth(50_000_000), Bandwidth(1_000), Bandwidth(1_234)] {
            assert_eq!(b.to_string().parse::<Bandwidth>().unwrap(), b);
        }
    }
}
