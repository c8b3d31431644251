//! Sizes and rates as the command line and the reports spell them.
//!
//! Rates are bytes per second internally. On the command line a bare number
//! is MiB/s (the unit of DESIGN.md's scenario table); a suffix picks another
//! unit: `16`, `16MiB`, `16MiB/s`, `512KiB`, `100Mbit`, `1Gbit/s`, `20MB`.

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

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Rate, RateError> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| RateError::NotANumber(text.to_string()))?;
        let unit = unit.trim();
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

#[cfg(test)]
mod tests {
    use super::*;

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
