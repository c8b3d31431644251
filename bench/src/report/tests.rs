use std::time::Duration;

use super::*;
use crate::systems::NodeResult;

fn outcome(kind: SystemKind, times: &[f64], failed: usize) -> SystemOutcome {
    let mut nodes: Vec<NodeResult> = times
        .iter()
        .map(|&t| NodeResult {
            finished_s: t,
            bytes: 100,
            error: None,
        })
        .collect();
    nodes.extend((0..failed).map(|_| NodeResult {
        finished_s: 1.0,
        bytes: 0,
        error: Some("GET x: 500".into()),
    }));
    SystemOutcome {
        kind,
        nodes,
        upstream_bytes: 250,
        seed_bytes: 300,
        peer_bytes_fraction: 0.5,
        cpu: Duration::from_secs(4),
        notes: vec![],
    }
}

fn report() -> Report {
    let mut systems = BTreeMap::new();
    let times: Vec<f64> = (1..=10).map(f64::from).collect();
    systems.insert(
        "shoal".to_string(),
        SystemReport::new(&outcome(SystemKind::Shoal, &times, 0), 8.0, 100),
    );
    systems.insert(
        "direct".to_string(),
        SystemReport::new(&outcome(SystemKind::Direct, &[2.0], 1), 4.0, 100),
    );
    Report {
        scenario: "smoke".into(),
        peers: 10,
        image_bytes: 100,
        layers: 2,
        bound_s: 8.0,
        direct_bound_s: 4.0,
        rates_mib_s: Rates {
            seed_up: 16.0,
            peer_up: 4.0,
            peer_down: 4.0,
        },
        schedule: "concurrent".into(),
        notes: vec!["a note".into()],
        machine: Machine {
            nproc: 2,
            cpu_model: "test".into(),
        },
        systems,
    }
}

#[test]
fn system_figures() {
    let r = report();
    let shoal = &r.systems["shoal"];
    assert_eq!(
        (shoal.p50_s, shoal.p90_s, shoal.max_s),
        (Some(5.0), Some(9.0), Some(10.0))
    );
    assert_eq!(shoal.ratio_to_bound, Some(1.25));
    assert_eq!(shoal.upstream_bytes_ratio, 2.5);
    assert_eq!(shoal.seed_bytes_ratio, 3.0);
    assert_eq!(shoal.cpu_per_wall, Some(0.4));
    assert_eq!((shoal.verified_pulls, shoal.failed_pulls), (10, 0));
    let direct = &r.systems["direct"];
    assert_eq!((direct.verified_pulls, direct.failed_pulls), (1, 1));
    assert_eq!(direct.per_node_s, vec![Some(2.0), None]);
    assert_eq!(direct.errors, vec!["GET x: 500".to_string()]);
}

#[test]
fn json_has_the_fields_issue_4_names() {
    let json = serde_json::to_value(report()).unwrap();
    for key in [
        "scenario",
        "peers",
        "image_bytes",
        "bound_s",
        "systems",
        "notes",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    for system in ["shoal", "direct"] {
        let s = &json["systems"][system];
        for key in [
            "p50_s",
            "p90_s",
            "max_s",
            "ratio_to_bound",
            "upstream_bytes_ratio",
            "peer_bytes_fraction",
            "cpu_s",
            "per_node_s",
        ] {
            assert!(s.get(key).is_some(), "{system} lacks {key}");
        }
    }
    assert_eq!(
        json["systems"]["shoal"]["per_node_s"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, report());
}

#[test]
fn no_completed_node_gives_nulls() {
    let s = SystemReport::new(&outcome(SystemKind::Direct, &[], 2), 4.0, 100);
    assert_eq!(
        (s.max_s, s.ratio_to_bound, s.cpu_per_wall),
        (None, None, None)
    );
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["p50_s"].is_null());
}

#[test]
fn table_lists_shoal_first_with_notes_and_errors() {
    let table = render_table(&report());
    let shoal = table.find("\nshoal ").unwrap();
    let direct = table.find("\ndirect ").unwrap();
    assert!(shoal < direct, "{table}");
    assert!(table.contains("10/10"), "{table}");
    assert!(table.contains("note: a note"), "{table}");
    assert!(table.contains("direct error: GET x: 500"), "{table}");
}
