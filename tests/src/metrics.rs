//! Reading Prometheus text: samples picked by label (plain sums of a
//! metric are [`crate::procs::sum_metric`]).

/// The samples of metric `name` whose labels contain `label` (for instance
/// `reason="corrupt_piece"`), summed; 0 if none.
pub fn labelled(metrics: &str, name: &str, label: &str) -> f64 {
    let prefix = format!("{name}{{");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_the_samples_with_the_label() {
        let text = "# HELP d x\nd{reason=\"a\"} 2\nd{reason=\"b\"} 3\nd{reason=\"a\",x=\"y\"} 4\ndd{reason=\"a\"} 9\n";
        assert_eq!(super::labelled(text, "d", "reason=\"a\""), 6.0);
        assert_eq!(super::labelled(text, "d", "reason=\"c\""), 0.0);
    }
}
