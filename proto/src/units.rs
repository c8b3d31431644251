//! Sizes and rates as the command line and the reports spell them.
//!
//! Rates are bytes per second internally. On the command line a bare number
//! is MiB/s (the unit of DESIGN.md's scenario table); a suffix picks another
//! unit: `16`, `16MiB`, `16MiB/s`, `512KiB`, `100Mbit`, `1Gbit/s`, `20MB`.
//!
//! Sizes ([`ByteSize`], for disk quotas) are bytes; a bare number is bytes
//! and a suffix picks a binary (`KiB`, `MiB`, `GiB`, `TiB`, or `K`, `M`,
//! `G`, `T`) or decimal (`KB`, `MB`, `GB`, `TB`) unit: `20GiB`, `500MB`.

use std::fmt;
use std::str::FromStr;

/// 2^20 bytes.
pub const MIB: u64 = 1 << 20;

/// Bytes → MiB, for display.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// A transfer rate in bytes per second (never zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

/// Why a rate could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// The text does not start with a number.
    #[error("`{0}` is not a rate: expected a number, e.g. 16, 16MiB or 100Mbit")]
    NotANumber(String),
    /// The suffix is not a known unit.
    #[error(
        "unknown unit `{unit}` in `{text}`: use MiB, KiB, GiB, MB, KB, GB, B, Mbit, Kbit or Gbit"
    )]
    UnknownUnit {
        /// The whole input.
        text: String,
        /// The suffix that was not understood.
        unit: String,
    },
    /// Zero, negative or not finite.
    #[error("rate `{0}` must be a positive number")]
    NotPositive(String),
}

impl Rate {
    /// `n` bytes per second; `None` for zero.
    pub fn from_bytes_per_sec(n: u64) -> Option<Rate> {
        (n > 0).then_some(Rate(n))
    }

    /// `n` MiB/s; panics on zero (for constants in the scenario table).
    pub const fn mib_per_sec(n: u64) -> Rate {
        assert!(n > 0, "rate must be positive");
        Rate(n * MIB)
    }

    /// Bytes per second.
    pub fn bytes_per_sec(self) -> u64 {
        self.0
    }

    /// MiB per second, for display and reports.
    pub fn as_mib_per_sec(self) -> f64 {
        mib(self.0)
    }

    /// Seconds to move `bytes` at this rate.
    pub fn secs_for(self, bytes: u64) -> f64 {
        bytes as f64 / self.0 as f64
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.as_mib_per_sec();
        if (v - v.round()).abs() < 1e-9 {
            write!(f, "{v:.0} MiB/s")
        } else {
            write!(f, "{v:.2} MiB/s")
        }
    }
}

/// Splits `text` into its leading number and the trimmed unit after it;
/// `None` when it does not start with a number.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Rate, RateError> {
        let (number, unit) =
            split_number(text).ok_or_else(|| RateError::NotANumber(text.to_string()))?;
        let lower = unit.to_ascii_lowercase();
        let lower = lower.strip_suffix("/s").unwrap_or(&lower);
        let factor = match lower {
            "" | "mib" | "m" => MIB as f64,
            "kib" | "k" => 1024.0,
            "gib" | "g" => (1u64 << 30) as f64,
            "b" => 1.0,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "kbit" | "kbps" => 1e3 / 8.0,
            "mbit" | "mbps" => 1e6 / 8.0,
            "gbit" | "gbps" => 1e9 / 8.0,
            _ => {
                return Err(RateError::UnknownUnit {
                    text: text.to_string(),
                    unit: unit.to_string(),
                });
            }
        };
        let bytes = number * factor;
        if !bytes.is_finite() || bytes < 1.0 {
            return Err(RateError::NotPositive(text.to_string()));
        }
        Ok(Rate(bytes.round() as u64))
    }
}

/// A size in bytes (never zero), as `--max-disk` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

/// Why a size could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByteSizeError {
    /// The text does not start with a number.
    #[error("`{0}` is not a size: expected a number with a unit, e.g. 20GiB or 500MB")]
    NotANumber(String),
    /// The suffix is not a known unit.
    #[error("unknown unit `{unit}` in `{text}`: use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB")]
    UnknownUnit {
        /// The whole input.
        text: String,
        /// The suffix that was not understood.
        unit: String,
    },
    /// Zero, negative, not finite, or beyond 2^64 bytes.
    #[error("size `{0}` must be a positive number of bytes below 16 EiB")]
    OutOfRange(String),
}

impl ByteSize {
    /// `n` bytes; `None` for zero.
    pub fn from_bytes(n: u64) -> Option<ByteSize> {
        (n > 0).then_some(ByteSize(n))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", MIB),
            ("KiB", 1 << 10),
        ];
        for (name, factor) in UNITS {
            if self.0 >= factor {
                let v = self.0 as f64 / factor as f64;
                return if self.0.is_multiple_of(factor) {
                    write!(f, "{v:.0}{name}")
                } else {
                    write!(f, "{v:.2}{name}")
                };
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(text: &str) -> Result<ByteSize, ByteSizeError> {
        let (number, unit) =
            split_number(text).ok_or_else(|| ByteSizeError::NotANumber(text.to_string()))?;
        let factor = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kib" => 1024.0,
            "m" | "mib" => MIB as f64,
            "g" | "gib" => (1u64 << 30) as f64,
            "t" | "tib" => (1u64 << 40) as f64,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "tb" => 1e12,
            _ => {
                return Err(ByteSizeError::UnknownUnit {
                    text: text.to_string(),
                    unit: unit.to_string(),
                });
            }
        };
        let bytes = (number * factor).round();
        if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
            return Err(ByteSizeError::OutOfRange(text.to_string()));
        }
        Ok(ByteSize(bytes as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        let b = |s: &str| s.parse::<ByteSize>().unwrap().bytes();
        assert_eq!(b("20GiB"), 20 << 30);
        assert_eq!(b("20 gib"), 20 << 30);
        assert_eq!(b("1.5G"), 3 << 29);
        assert_eq!(b("500MB"), 500_000_000);
        assert_eq!(b("4096"), 4096);
        assert_eq!(b("64KiB"), 64 << 10);
        assert_eq!(b("2TB"), 2_000_000_000_000);
        assert!(matches!(
            "".parse::<ByteSize>(),
            Err(ByteSizeError::NotANumber(_))
        ));
        assert!(matches!(
            "20 furlongs".parse::<ByteSize>(),
            Err(ByteSizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            "0GiB".parse::<ByteSize>(),
            Err(ByteSizeError::OutOfRange(_))
        ));
        assert!(matches!(
            "99999999TiB".parse::<ByteSize>(),
            Err(ByteSizeError::OutOfRange(_))
        ));
        assert_eq!(ByteSize::from_bytes(20 << 30).unwrap().to_string(), "20GiB");
        assert_eq!(ByteSize::from_bytes(1536).unwrap().to_string(), "1.50KiB");
        assert_eq!(ByteSize::from_bytes(12).unwrap().to_string(), "12B");
    }

    #[test]
    fn parses_the_spellings_the_cli_accepts() {
        let r = |s: &str| s.parse::<Rate>().unwrap().bytes_per_sec();
        assert_eq!(r("16"), 16 * MIB);
        assert_eq!(r("16MiB"), 16 * MIB);
        assert_eq!(r("16 MiB/s"), 16 * MIB);
        assert_eq!(r("0.5"), MIB / 2);
        assert_eq!(r("512KiB"), 512 * 1024);
        assert_eq!(r("100Mbit"), 12_500_000);
        assert_eq!(r("1Gbit/s"), 125_000_000);
        assert_eq!(r("20MB"), 20_000_000);
    }

    #[test]
    fn refuses_nonsense() {
        assert!(matches!("".parse::<Rate>(), Err(RateError::NotANumber(_))));
        assert!(matches!(
            "fast".parse::<Rate>(),
            Err(RateError::NotANumber(_))
        ));
        assert!(matches!(
            "16furlongs".parse::<Rate>(),
            Err(RateError::UnknownUnit { .. })
        ));
        assert!(matches!(
            "0".parse::<Rate>(),
            Err(RateError::NotPositive(_))
        ));
    }

    #[test]
    fn displays_in_mib_per_sec() {
        assert_eq!(Rate::mib_per_sec(16).to_string(), "16 MiB/s");
        assert_eq!(
            "100Mbit".parse::<Rate>().unwrap().to_string(),
            "11.92 MiB/s"
        );
        assert_eq!(Rate::mib_per_sec(4).secs_for(64 * MIB), 16.0);
    }
}
