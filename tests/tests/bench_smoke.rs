//! `shoal-bench run --scenario smoke` end to end, as the README tells a
//! newcomer to run it: the built binary (with the daemons next to it) on
//! the embedded defaults, `--baseline direct`, plus `--baseline
//! bittorrent` when aria2c, opentracker and mktorrent are installed
//! (`scripts/test.sh` installs them). The report's invariants are checked,
//! never its timings: every node of every system completed with verified
//! digests, every field present and finite, Shoal fetched the image from
//! the upstream about once (≤ 1.02 copies) and got most bytes from peers,
//! one completion time per node, and completion.svg is well-formed SVG.
//! A second, small run takes a real registry as `--upstream` and checks
//! that it was pushed to, pulled from and counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shoal_bench::report::{Report, SystemReport};
use shoal_bench::torrent::Tools;
use shoal_tests::child::ChildGuard;
use shoal_tests::registry::Registry;
use shoal_tests::{lock, procs, tmp};

/// Nodes of the smoke scenario.
const PEERS: usize = 10;

/// Generous bound on the whole run (it takes about a minute).
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs the built `shoal-bench run` with `args` and `--out DIR/out`,
/// waits for it to succeed, and returns the parsed report and the output
/// directory. The bench and everything it started are killed if the test
/// fails first.
async fn run_bench(dir: &Path, args: &[&str]) -> (Report, PathBuf) {
    let out = dir.join("out");
    let mut cmd = Command::new(procs::binary("shoal-bench"));
    cmd.arg("run").args(args).arg("--out").arg(&out);
    let mut bench = ChildGuard::spawn("shoal-bench", cmd, &dir.join("bench.log"));
    let bench_pid = bench.id();
    let status = shoal_tests::wait::poll("shoal-bench run to finish", RUN_TIMEOUT, || {
        let exited = bench.try_exited();
        async move { Ok(exited) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "shoal-bench run {args:?}: {status}");
    assert_no_aria2_left(bench_pid);
    let json = std::fs::read(out.join("report.json")).expect("report.json written");
    let report = serde_json::from_slice(&json).expect("report.json parses");
    (report, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_run_writes_a_consistent_report() {
    let _heavy = lock::heavy().await;
    let dir = tmp::dir("shoal-bench-smoke-");
    let bittorrent = match Tools::find() {
        Ok(_) => true,
        Err(missing) => {
            eprintln!("bench_smoke: without the bittorrent baseline: {missing}");
            false
        }
    };
    let mut args = vec!["--scenario", "smoke", "--baseline", "direct"];
    if bittorrent {
        args.extend(["--baseline", "bittorrent"]);
    }
    let (report, out) = run_bench(dir.path(), &args).await;

    assert_eq!(report.scenario, "smoke");
    assert_eq!(report.peers, PEERS);
    assert!(report.image_bytes >= 64 << 20, "{}", report.image_bytes);
    for bound in [report.bound_s, report.direct_bound_s] {
        assert!(bound.is_finite() && bound > 0.0, "bound {bound}");
    }
    let mut expected = vec!["direct", "shoal"];
    if bittorrent {
        expected.insert(0, "bittorrent");
    }
    assert_eq!(
        report
            .systems
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        expected,
        "notes: {:?}",
        report.notes
    );
    for (name, system) in &report.systems {
        check_system(name, system);
    }

    let shoal = &report.systems["shoal"];
    assert!(
        shoal.upstream_bytes_ratio >= 1.0 && shoal.upstream_bytes_ratio <= 1.02,
        "shoal fetched {} copies of the image from the upstream",
        shoal.upstream_bytes_ratio
    );
    assert!(
        shoal.peer_bytes_fraction > 0.5,
        "shoal nodes got only {} of their bytes from peers",
        shoal.peer_bytes_fraction
    );
    let direct = &report.systems["direct"];
    assert!(
        direct.upstream_bytes_ratio >= PEERS as f64,
        "direct: {} copies from the upstream for {PEERS} nodes",
        direct.upstream_bytes_ratio
    );
    assert_eq!(direct.peer_bytes_fraction, 0.0);
    if let Some(bt) = report.systems.get("bittorrent") {
        assert!(
            bt.seed_bytes_ratio >= 1.0,
            "the seed sent {} copies",
            bt.seed_bytes_ratio
        );
    }

    let svg = std::fs::read_to_string(out.join("completion.svg")).expect("completion.svg written");
    check_well_formed_svg(&svg);
    for name in report.systems.keys() {
        assert!(
            svg.contains(&format!("{name} (max ")),
            "no legend for {name}"
        );
    }
    assert!(
        out.join("logs").join("shoal").is_dir(),
        "daemon logs kept in {}",
        out.display()
    );
}

/// `--upstream URL`: the bench pushes its image to a real registry, Shoal
/// and the direct pulls fetch from it, and the report counts the upstream
/// bytes from the supernode's metrics and the bench's proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_upstream_is_pushed_to_pulled_from_and_counted() {
    let _heavy = lock::heavy().await;
    let registry = Registry::start().await;
    let dir = tmp::dir("shoal-bench-upstream-");
    let url = registry.url();
    let peers: usize = 3;
    let peers_arg = peers.to_string();
    let args = [
        "--peers",
        &peers_arg,
        "--image-mib",
        "4",
        "--baseline",
        "direct",
        "--upstream",
        &url,
    ];
    let (report, _) = run_bench(dir.path(), &args).await;
    let shoal = &report.systems["shoal"];
    let direct = &report.systems["direct"];
    for (name, s) in [("shoal", shoal), ("direct", direct)] {
        assert_eq!(
            (s.verified_pulls, s.failed_pulls),
            (peers, 0),
            "{name}: {:?}",
            s.errors
        );
    }
    assert!(
        (1.0..=1.02).contains(&shoal.upstream_bytes_ratio),
        "shoal: {} copies from the upstream",
        shoal.upstream_bytes_ratio
    );
    assert!(
        direct.upstream_bytes_ratio >= peers as f64,
        "{}",
        direct.upstream_bytes_ratio
    );
    assert!(
        report.notes.iter().any(|n| n.contains(&url)),
        "the report says where the upstream bytes come from: {:?}",
        report.notes
    );
    // The config and both layers went out of the registry for every
    // direct node (through the proxy) and at least once for Shoal.
    registry.settle().await;
    let blob_gets = registry.count_requests("GET", "/v2/library/shoal-bench/blobs/sha256:");
    assert!(
        blob_gets >= 3 * (peers + 1),
        "{blob_gets} blob GETs: {:#?}",
        registry.requests()
    );
}

/// Every node completed and was verified, and every figure is present,
/// finite and consistent with the per-node times.
fn check_system(name: &str, s: &SystemReport) {
    assert_eq!(
        (s.verified_pulls, s.failed_pulls),
        (PEERS, 0),
        "{name}: {:?}",
        s.errors
    );
    assert!(s.errors.is_empty(), "{name}: {:?}", s.errors);
    assert_eq!(s.per_node_s.len(), PEERS, "{name}: one time per node");
    let times: Vec<f64> = s
        .per_node_s
        .iter()
        .map(|t| t.unwrap_or_else(|| panic!("{name}: a node without a time")))
        .collect();
    assert!(
        times.iter().all(|t| t.is_finite() && *t > 0.0),
        "{name}: {times:?}"
    );
    let (p50, p90, max) = (
        s.p50_s.expect("p50_s"),
        s.p90_s.expect("p90_s"),
        s.max_s.expect("max_s"),
    );
    assert!(p50 <= p90 && p90 <= max, "{name}: {p50} {p90} {max}");
    assert_eq!(max, times.iter().copied().fold(0.0, f64::max), "{name}");
    let ratio = s.ratio_to_bound.expect("ratio_to_bound");
    assert!(
        (ratio - max / s.bound_s).abs() < 1e-9,
        "{name}: ratio {ratio}"
    );
    for (field, v) in [
        ("bound_s", s.bound_s),
        ("upstream_bytes_ratio", s.upstream_bytes_ratio),
        ("seed_bytes_ratio", s.seed_bytes_ratio),
        ("peer_bytes_fraction", s.peer_bytes_fraction),
        ("cpu_s", s.cpu_s),
    ] {
        assert!(v.is_finite() && v >= 0.0, "{name}.{field} = {v}");
    }
    assert!(
        s.upstream_bytes_ratio > 0.0,
        "{name}: nothing from upstream"
    );
    assert!(s.peer_bytes_fraction <= 1.0, "{name}");
    assert!(s.cpu_s > 0.0, "{name}: no CPU time counted");
}

/// An XML document whose root is `<svg>` and whose tags nest properly.
fn check_well_formed_svg(svg: &str) {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    let mut root = None;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>').expect("unterminated tag");
        let tag = &after[..close];
        rest = &after[close + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        assert!(!name.is_empty(), "empty tag <{tag}>");
        assert!(
            root.is_none() || !stack.is_empty(),
            "a second root element <{name}>"
        );
        root.get_or_insert(name);
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    assert_eq!(root, Some("svg"), "root element");
    assert!(stack.is_empty(), "unclosed tags {stack:?}");
    assert!(rest.trim().is_empty(), "text after the root element");
}

/// No aria2c the bench started is still running: each was told
/// `--stop-with-process=<bench pid>`, which names them.
fn assert_no_aria2_left(bench_pid: u32) {
    let marker = format!("--stop-with-process={bench_pid}");
    let procs = std::fs::read_dir("/proc").expect("read /proc");
    for entry in procs.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!args.contains(&marker), "left running: {args}");
    }
}

#[test]
fn svg_checker_rejects_broken_documents() {
    check_well_formed_svg(
        "<?xml version=\"1.0\"?>\n<svg a=\"1\"><g><rect/></g><text>x</text></svg>\n",
    );
    for broken in [
        "<svg><g></svg>",
        "<svg>",
        "<html></html>",
        "<svg></svg><svg></svg>",
        "<svg></svg>x",
    ] {
        let caught = std::panic::catch_unwind(|| check_well_formed_svg(broken));
        assert!(caught.is_err(), "accepted {broken}");
    }
}
