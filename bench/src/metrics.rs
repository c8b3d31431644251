//! Reading the daemons' Prometheus text exposition.

use std::collections::BTreeMap;

/// The sum of every sample of metric `name` (all label sets), or `None` if
/// the metric is absent.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for (_, value) in samples(text, name) {
        *found.get_or_insert(0.0) += value;
    }
    found
}

/// The samples of `name` summed per value of `label` (samples without the
/// label count under the empty string).
pub fn sum_by_label(text: &str, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (labels, value) in samples(text, name) {
        let key = label_value(labels, label).unwrap_or_default();
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

/// `(labels inside the braces, value)` of each sample line of `name`.
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(move |line| {
            let rest = line.strip_prefix(name)?;
            let (labels, rest) = if let Some(r) = rest.strip_prefix('{') {
                let close = r.find('}')?;
                (&r[..close], &r[close + 1..])
            } else if rest.starts_with(' ') {
                ("", rest)
            } else {
                return None;
            };
            let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
            Some((labels, value))
        })
}

fn label_value(labels: &str, label: &str) -> Option<String> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == label).then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        shoal_bytes{source=\"supernode\"} 2\n\
        shoal_bytes{source=\"peer\",zone=\"a\"} 3\n\
        shoal_bytes{source=\"peer\",zone=\"b\"} 4\n\
        shoal_bytes_total 9\n";

    #[test]
    fn sums_all_samples() {
        assert_eq!(sum(TEXT, "shoal_bytes"), Some(9.0));
        assert_eq!(sum(TEXT, "shoal_bytes_total"), Some(9.0));
        assert_eq!(sum(TEXT, "missing"), None);
    }

    #[test]
    fn sums_per_label() {
        let by = sum_by_label(TEXT, "shoal_bytes", "source");
        assert_eq!(by.get("peer"), Some(&7.0));
        assert_eq!(by.get("supernode"), Some(&2.0));
    }
}
