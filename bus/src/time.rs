//! Simulated time: instants ([`SimTime`]) and spans ([`SimDuration`]), both in integer nanoseconds.
//!
//! Integer nanoseconds keep every run bit-identical across machines: no floating point enters the
//! schedule. Durations parse from human strings such as `"10 ms"`, `"0.7 s"` or `"5 min"`, exactly
//! (a decimal fraction is converted without floating point and must come to whole nanoseconds).

use std::fmt;
use std::str::FromStr;

/// An instant of simulated time, in nanoseconds since the start of the simulation.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(u64);

/// A span of simulated time, in nanoseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration(u64);

impl SimTime {
    /// The start of the simulation.
    pub const ZERO: SimTime = SimTime(0);
    /// "No event": later than any real instant. Used as the next-event time of an idle engine.
    pub const NEVER: SimTime = SimTime(u64::MAX);

    /// The instant `ns` nanoseconds after the start.
    pub const fn from_nanos(ns: u64) -> Self {
        SimTime(ns)
    }

    /// Nanoseconds since the start.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`SimTime::NEVER`] (an infinite runahead stays infinite).
    pub const fn saturating_add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }

    /// The span from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }

    /// True for [`SimTime::NEVER`].
    pub const fn is_never(self) -> bool {
        self.0 == u64::MAX
    }
}

impl SimDuration {
    /// No time at all.
    pub const ZERO: SimDuration = SimDuration(0);
    /// An unbounded span (e.g. the runahead of a single shard, which has no boundary to cross).
    pub const INFINITE: SimDuration = SimDuration(u64::MAX);

    /// `ns` nanoseconds.
    pub const fn from_nanos(ns: u64) -> Self {
        SimDuration(ns)
    }
    /// `us` microseconds.
    pub const fn from_micros(us: u64) -> Self {
        SimDuration(us * 1_000)
    }
    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(ms * 1_000_000)
    }
    /// `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(s * 1_000_000_000)
    }
    /// Length in nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Length in seconds, for display and rates only (never for scheduling).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl std::ops::Add<SimDuration> for SimTime {
    type Output = SimTime;
    /// Panics on overflow in debug builds like any integer addition; use
    /// [`SimTime::saturating_add`] where the span may be infinite.
    fn add(self, d: SimDuration) -> SimTime {
        SimTime(self.0 + d.0)
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_never() {
            return f.write_str("never");
        }
        write!(f, "{}", SimDuration(self.0))
    }
}

impl fmt::Display for SimDuration {
    /// The largest unit that shows the value exactly with at most 3 decimals, e.g. `1.5 s`, `700 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == u64::MAX {
            return f.write_str("infinite");
        }
        const UNITS: [(u64, &str); 4] = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us"), (1, "ns")];
        for (scale, name) in UNITS {
            if self.0 >= scale {
                let whole = self.0 / scale;
                let frac = self.0 % scale;
                if frac == 0 {
                    return write!(f, "{whole} {name}");
                }
                if scale >= 1_000 && frac.is_multiple_of(scale / 1_000) {
                    let milli = frac / (scale / 1_000);
                    let text = format!("{milli:03}");
                    return write!(f, "{whole}.{} {name}", text.trim_end_matches('0'));
                }
            }
        }
        write!(f, "{} ns", self.0)
    }
}

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationParseError {
    /// Nothing but white space.
    #[error("empty duration; expected a number and a unit, e.g. \"10 ms\"")]
    Empty,
    /// The number part is not a plain decimal number.
    #[error("invalid number {0:?} in duration; expected digits with an optional decimal point")]
    BadNumber(String),
    /// No unit after the number.
    #[error("duration {0:?} has no unit; expected one of ns, us, ms, s, min, h (e.g. \"10 ms\")")]
    MissingUnit(String),
    /// A unit that is not known.
    #[error("unknown duration unit {0:?}; expected one of ns, us, ms, s, min, h")]
    BadUnit(String),
    /// A fraction finer than one nanosecond.
    #[error("duration {0:?} is not a whole number of nanoseconds")]
    NotWholeNanos(String),
    /// More than about 584 years.
    #[error("duration {0:?} is out of range: at most about 584 years (18446744073 s)")]
    Overflow(String),
    /// A minus sign: durations are never negative.
    #[error("duration {0:?} is negative; durations are zero or more")]
    Negative(String),
    /// Scientific notation, which durations do not take.
    #[error("duration {0:?} uses an exponent; write the number out (e.g. \"1500 ms\")")]
    Exponent(String),
}

impl FromStr for SimDuration {
    type Err = DurationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(DurationParseError::Empty);
        }
        if text.starts_with('-') {
            return Err(DurationParseError::Negative(s.to_string()));
        }
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(text.len());
        let (number, unit) = (&text[..split], text[split..].trim());
        let exponent = unit
            .strip_prefix(['e', 'E'])
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-'));
        if !number.is_empty() && exponent {
            return Err(DurationParseError::Exponent(s.to_string()));
        }
        if unit.is_empty() {
            return Err(DurationParseError::MissingUnit(s.to_string()));
        }
        let scale: u64 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
            "min" | "mins" | "minute" | "minutes" => 60_000_000_000,
            "h" | "hour" | "hours" => 3_600_000_000_000,
            _ => return Err(DurationParseError::BadUnit(unit.to_string())),
        };
        let number: String = number.chars().filter(|&c| c != '_').collect();
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number.as_str(), ""),
        };
        let digits_ok = |p: &str| p.chars().all(|c| c.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty()) || !digits_ok(int_part) || !digits_ok(frac_part) {
            return Err(DurationParseError::BadNumber(number.clone()));
        }
        let overflow = || DurationParseError::Overflow(s.to_string());
        let whole: u64 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| overflow())? };
        let mut ns = whole.checked_mul(scale).ok_or_else(overflow)?;
        // Exact decimal fraction: frac_digits * scale / 10^len must be an integer.
        let frac_digits = frac_part.trim_end_matches('0');
        if !frac_digits.is_empty() {
            if frac_digits.len() > 18 {
                return Err(DurationParseError::NotWholeNanos(s.to_string()));
            }
            let numerator = frac_digits.parse::<u128>().map_err(|_| overflow())? * scale as u128;
            let denominator = 10u128.pow(frac_digits.len() as u32);
            if !numerator.is_multiple_of(denominator) {
                return Err(DurationParseError::NotWholeNanos(s.to_string()));
            }
            ns = ns.checked_add((numerator / denominator) as u64).ok_or_else(overflow)?;
        }
        if ns == u64::MAX {
            return Err(overflow());
        }
        Ok(SimDuration(ns))
    }
}

/// Durations read from and write to configuration files as strings with a unit (`"10 ms"`).
impl serde::Serialize for SimDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for SimDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SimDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string with a unit, e.g. \"10 ms\" or \"0.7 s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SimDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_fractions_exactly() {
        assert_eq!("10 ms".parse::<SimDuration>().unwrap(), SimDuration::from_millis(10));
        assert_eq!("0.7 s".parse::<SimDuration>().unwrap(), SimDuration::from_millis(700));
        assert_eq!("5min".parse::<SimDuration>().unwrap(), SimDuration::from_secs(300));
        assert_eq!("1_000 us".parse::<SimDuration>().unwrap(), SimDuration::from_millis(1));
        assert_eq!("12 s".parse::<SimDuration>().unwrap(), SimDuration::from_secs(12));
        assert_eq!(".5 ms".parse::<SimDuration>().unwrap(), SimDuration::from_micros(500));
        assert_eq!("1.000000001 s".parse::<SimDuration>().unwrap(), SimDuration::from_nanos(1_000_000_001));
    }

    #[test]
    fn rejects_bad_durations_with_reason() {
        assert_eq!("10".parse::<SimDuration>(), Err(DurationParseError::MissingUnit("10".into())));
        assert!(matches!("10 parsecs".parse::<SimDuration>(), Err(DurationParseError::BadUnit(_))));
        assert!(matches!("1.5 ns".parse::<SimDuration>(), Err(DurationParseError::NotWholeNanos(_))));
        assert!(matches!("1.2.3 s".parse::<SimDuration>(), Err(DurationParseError::BadNumber(_))));
        assert!(matches!("".parse::<SimDuration>(), Err(DurationParseError::Empty)));
        assert!(matches!("99999999999 h".parse::<SimDuration>(), Err(DurationParseError::Overflow(_))));
        assert!(matches!("-1 s".parse::<SimDuration>(), Err(DurationParseError::Negative(_))));
        assert!(matches!(" -0.5ms".parse::<SimDuration>(), Err(DurationParseError::Negative(_))));
        assert!(matches!("1e30 s".parse::<SimDuration>(), Err(DurationParseError::Exponent(_))));
        assert!(matches!("2E-3 s".parse::<SimDuration>(), Err(DurationParseError::Exponent(_))));
        let text = "1e30 s".parse::<SimDuration>().unwrap_err().to_string();
        assert!(text.contains("exponent"), "{text}");
    }

    #[test]
    fn displays_round_trip() {
        for ns in [0u64, 1, 999, 1_000, 1_500_000, 700_000_000, 12_000_000_000, 1_234_567] {
            let d = SimDuration::from_nanos(ns);
            let text = d.to_string();
            assert_eq!(text.parse::<SimDuration>().unwrap(), d, "{text}");
        }
        assert_eq!(SimDuration::from_millis(1500).to_string(), "1.5 s");
        assert_eq!(SimTime::NEVER.to_string(), "never");
    }

    #[test]
    fn saturating_time_arithmetic() {
        assert_eq!(SimTime::from_nanos(5).saturating_add(SimDuration::INFINITE), SimTime::NEVER);
        assert_eq!(SimTime::from_nanos(5).saturating_since(SimTime::from_nanos(9)), SimDuration::ZERO);
    }
}
