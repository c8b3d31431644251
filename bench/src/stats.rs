//! Completion-time statistics.

/// The `p`-th percentile (0 < p ≤ 100) of `values` by the nearest-rank
/// method: the smallest value that at least `p`% of the values do not
/// exceed. `None` for an empty slice. With ten nodes, p50 is the 5th
/// fastest and p90 the 9th; p100 is the maximum.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p90 and max of completion times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// The slowest.
    pub max: f64,
}

impl Summary {
    /// The summary of `values`; `None` if empty.
    pub fn of(values: &[f64]) -> Option<Summary> {
        Some(Summary {
            p50: percentile(values, 50.0)?,
            p90: percentile(values, 90.0)?,
            max: percentile(values, 100.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        assert_eq!(percentile(&v, 1.0), Some(1.0));
        assert_eq!(percentile(&[3.5], 50.0), Some(3.5));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.p50, s.p90, s.max), (2.0, 4.0, 4.0));
        assert_eq!(Summary::of(&[]), None);
    }
}
