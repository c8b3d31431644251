//! Hostile HTTP clients against real daemons, over raw TCP: request heads
//! too large for the limit get 431, a client that never finishes its
//! headers (slowloris) is cut after `--http-header-timeout`, connections
//! over `--http-max-connections` get 503 instead of a hang, and a flood of
//! connections costs the daemon a bounded number of file descriptors, and
//! a few seconds of all of these at once a bounded amount of memory. After
//! each, `/healthz` answers 200. The limits live in the shared accept loop
//! (`shoal_agent::serve`); the last test shows them on the supernode and
//! the tracker too.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_agent::serve::{DEFAULT_MAX_CONNECTIONS, MAX_HEAD_BYTES};
use shoal_tests::proc_status::{open_fds, rss_kib};
use shoal_tests::procs::{Daemon, SupernodeOptions};
use shoal_tests::wait::poll;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on any one exchange; only guards against a hung test.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a cut is waited for, with a 1 s header timeout.
const CUT_TIMEOUT: Duration = Duration::from_secs(30);

fn args(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|s| s.to_string()).collect()
}

/// A supernode and an agent, each with the given extra flags.
async fn agent(flags: &[&str]) -> (Daemon, Daemon) {
    let supernode = Daemon::supernode_with(&SupernodeOptions::default(), &args(flags)).await;
    let agent = Daemon::agent_with(&supernode, &[], &args(flags)).await;
    (supernode, agent)
}

/// A tracker (without auth) with the given extra flags.
async fn tracker(flags: &[&str]) -> Daemon {
    let dir = shoal_tests::tmp::dir("hostile-secret-");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "hostile http test secret, 32 bytes\n").expect("write secret");
    Daemon::tracker_with(&secret, &args(flags)).await
}

/// The status of a response's first line, if it is one.
fn status_of(raw: &[u8]) -> Option<u16> {
    let line = raw.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Sends `request` on a new connection (while reading, so a server that
/// answers early is heard) and reads until the server closes.
async fn exchange(addr: SocketAddr, request: Vec<u8>) -> Vec<u8> {
    let conn = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = conn.into_split();
    let writer = tokio::spawn(async move {
        // The server may stop reading once it has refused the request.
        let _ = wr.write_all(&request).await;
        wr
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let mut buf = [0u8; 8192];
        // A reset after the response is fine; what arrived before it counts.
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            raw.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    writer.abort();
    assert!(
        read.is_ok(),
        "no end of the response within {EXCHANGE_TIMEOUT:?}"
    );
    raw
}

/// `GET path` with the given extra header lines.
fn get(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: shoal\r\n{headers}Connection: close\r\n\r\n").into_bytes()
}

/// The status of `GET /healthz` on a fresh connection.
async fn healthz(addr: SocketAddr) -> Option<u16> {
    status_of(&exchange(addr, get("/healthz", "")).await)
}

/// Waits (bounded) until `/healthz` answers 200.
async fn wait_healthy(addr: SocketAddr, what: &str) {
    poll(
        &format!("/healthz 200 on {what}"),
        EXCHANGE_TIMEOUT,
        || async move { Ok((healthz(addr).await == Some(200)).then_some(())) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Head size limits: heads over [`MAX_HEAD_BYTES`] (one big header, many
/// headers, a long URL) are refused with 431 (or 414 for the URL), never a
/// 5xx or a hang, and the daemon stays healthy.
async fn check_head_limits(addr: SocketAddr, what: &str) {
    let big = "a".repeat(MAX_HEAD_BYTES + 36 * 1024);
    let huge = "b".repeat(1 << 20);
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases = [
        (
            "a 100 KiB header",
            get("/healthz", &format!("X-Big: {big}\r\n")),
        ),
        (
            "a 1 MiB header",
            get("/healthz", &format!("X-Huge: {huge}\r\n")),
        ),
        ("500 headers", get("/healthz", &many)),
        (
            "a 100 KiB URL",
            get(&format!("/v2/{big}/manifests/latest"), ""),
        ),
    ];
    for (case, request) in cases {
        let raw = exchange(addr, request).await;
        let status = status_of(&raw);
        assert!(
            matches!(status, Some(431 | 414)),
            "{what}, {case}: expected 431 (or 414), got {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        );
        assert_eq!(
            healthz(addr).await,
            Some(200),
            "{what} unhealthy after {case}"
        );
    }
}

/// Slow clients: one that sends part of a head and stops, one that sends a
/// head one byte at a time forever, and one that sends nothing, are each
/// cut (the server closes) within a bounded wait, with a 1 s header
/// timeout; meanwhile `/healthz` answers.
async fn check_slow_clients_are_cut(addr: SocketAddr, what: &str) {
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: shoal\r\nX-Slow: ")
        .await
        .expect("send part of a head");
    let silent = TcpStream::connect(addr).await.expect("connect");
    let trickler = tokio::spawn(async move {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /healthz HTTP/1.1\r\nX-Trickle: ")
            .await?;
        loop {
            conn.write_all(b"z").await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    assert_eq!(
        healthz(addr).await,
        Some(200),
        "{what}: /healthz during slow clients"
    );

    for (name, mut conn) in [("stalled", stalled), ("silent", silent)] {
        let mut buf = Vec::new();
        let cut = tokio::time::timeout(CUT_TIMEOUT, conn.read_to_end(&mut buf)).await;
        assert!(
            cut.is_ok(),
            "{what}: a {name} client was not cut within {CUT_TIMEOUT:?}"
        );
    }
    let trickled = tokio::time::timeout(CUT_TIMEOUT, trickler).await;
    assert!(
        matches!(trickled, Ok(Ok(Err(_)))),
        "{what}: a client trickling its head was not cut within {CUT_TIMEOUT:?}"
    );
    wait_healthy(addr, what).await;
}

#[tokio::test]
async fn oversized_heads_get_431_and_the_agent_stays_healthy() {
    let (_supernode, agent) = agent(&[]).await;
    check_head_limits(agent.http_addr(), "agent").await;
}

#[tokio::test]
async fn slow_clients_are_cut_after_the_header_timeout() {
    let (_supernode, agent) = agent(&["--http-header-timeout", "1s"]).await;
    check_slow_clients_are_cut(agent.http_addr(), "agent").await;
}

/// A connection that got a 200 for `/healthz` and stays open (keep-alive),
/// or `None` if the server refused it.
async fn held_connection(addr: SocketAddr) -> Option<TcpStream> {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: shoal\r\n\r\n")
        .await
        .ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        while !raw.ends_with(b"\r\n\r\nok\n") {
            match conn.read(&mut buf).await {
                Ok(n @ 1..) => raw.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to /healthz");
    (status_of(&raw) == Some(200)).then_some(conn)
}

#[tokio::test]
async fn connections_over_the_limit_get_503_until_a_slot_frees() {
    const LIMIT: usize = 4;
    let limit = LIMIT.to_string();
    let (_supernode, agent) = agent(&["--http-max-connections", &limit]).await;
    let addr = agent.http_addr();

    // Hold every slot with an idle keep-alive connection. The start-up
    // health checks' connections may still hold slots for a moment: a
    // refused attempt is simply tried again.
    let mut held = Vec::new();
    for _ in 0..200 {
        if held.len() == LIMIT {
            break;
        }
        match held_connection(addr).await {
            Some(conn) => held.push(conn),
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(held.len(), LIMIT, "could not hold {LIMIT} connections");

    let raw = exchange(addr, get("/healthz", "")).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert_eq!(status_of(&raw), Some(503), "over the limit: {text:?}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text:?}"
    );
    assert!(text.contains("too many connections"), "{text:?}");

    drop(held);
    wait_healthy(addr, "agent after the held connections closed").await;
    let refused = agent
        .metric_sum(shoal_agent::serve::CONNECTIONS_REFUSED)
        .await
        .unwrap_or(0.0);
    assert!(refused >= 1.0, "refusals not counted: {refused}");
}

#[tokio::test]
async fn a_connection_flood_costs_bounded_descriptors() {
    const LIMIT: usize = 16;
    const FLOOD: usize = 300;
    // The 503 answers being written or lingering at once, plus slack for
    // the daemon's own files and sockets.
    const BOUND: usize = LIMIT + 64 + 24;
    let limit = LIMIT.to_string();
    let (_supernode, agent) = agent(&["--http-max-connections", &limit]).await;
    let addr = agent.http_addr();
    let before = open_fds(agent.pid());

    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        let _ = conn.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").await;
        flood.push(conn);
    }
    // Watch the descriptors while the daemon works through its accept
    // queue: without a limit they would grow by one per connection.
    let mut peak = 0;
    for _ in 0..30 {
        peak = peak.max(open_fds(agent.pid()).saturating_sub(before));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        peak <= BOUND,
        "{FLOOD} connections cost {peak} descriptors (bound {BOUND})"
    );
    drop(flood);
    wait_healthy(addr, "agent after the flood").await;
}

#[tokio::test]
async fn the_supernode_and_tracker_have_the_same_limits() {
    let (supernode, _agent) = agent(&["--http-header-timeout", "1s"]).await;
    check_head_limits(supernode.http_addr(), "supernode").await;
    check_slow_clients_are_cut(supernode.http_addr(), "supernode").await;
    let tracker = tracker(&["--http-header-timeout", "1s"]).await;
    check_head_limits(tracker.http_addr(), "tracker").await;
    check_slow_clients_are_cut(tracker.http_addr(), "tracker").await;
}

/// How long the mixed hostile load of
/// [`hostile_load_keeps_the_agent_memory_bounded`] lasts.
const HOSTILE_LOAD: Duration = Duration::from_secs(6);

/// Connects and, until `until`, keeps doing `act` on new connections;
/// every error (a refusal, a reset) is expected and ignored.
fn hostile_worker<F, Fut>(
    addr: SocketAddr,
    until: tokio::time::Instant,
    act: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send,
{
    tokio::spawn(async move {
        while tokio::time::Instant::now() < until {
            if let Ok(conn) = TcpStream::connect(addr).await {
                let _ = tokio::time::timeout_at(until, act(conn)).await;
            }
            // Paced, so refused clients do not just spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// Sends `request` and reads until the server closes.
async fn send_and_drain(mut conn: TcpStream, request: &[u8]) -> std::io::Result<()> {
    let (mut rd, mut wr) = conn.split();
    let drain = async {
        let mut buf = [0u8; 8192];
        while rd.read(&mut buf).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let (_, drained) = tokio::join!(wr.write_all(request), drain);
    drained
}

/// Writes `head`, never ends it, and holds the connection until cut.
async fn hold_unfinished(mut conn: TcpStream, head: &[u8]) -> std::io::Result<()> {
    conn.write_all(head).await?;
    let mut buf = [0u8; 1024];
    while conn.read(&mut buf).await? > 0 {}
    Ok(())
}

/// A few seconds of everything at once against an agent with its default
/// limits: twice `--http-max-connections` clients each holding an
/// unfinished head, half of them just under [`MAX_HEAD_BYTES`] and half
/// four times over it, clients sending 1 MiB headers, 100 KiB URLs and
/// random bytes over and over, and slowloris clients trickling a head.
/// The agent's resident memory (sampled every 100 ms, and its high-water
/// mark) stays within [`HOSTILE_RSS_BOUND_MIB`] of its idle figure, and
/// `/healthz` answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_load_keeps_the_agent_memory_bounded() {
    const HOLDERS: usize = 4 * DEFAULT_MAX_CONNECTIONS;
    const SLOWLORIS: usize = 100;
    let _heavy = shoal_tests::lock::heavy().await;
    let (_supernode, agent) = agent(&[]).await;
    let (addr, pid) = (agent.http_addr(), agent.pid());
    wait_healthy(addr, "agent before the load").await;
    let (idle, _) = rss_kib(pid);

    let until = tokio::time::Instant::now() + HOSTILE_LOAD;
    let unfinished = |fill: usize| {
        std::sync::Arc::new(
            format!(
                "GET /v2/library/x/manifests/latest HTTP/1.1\r\nHost: shoal\r\nX-Fill: {}",
                "h".repeat(fill)
            )
            .into_bytes(),
        )
    };
    let heads = [
        unfinished(MAX_HEAD_BYTES - 2048),
        unfinished(4 * MAX_HEAD_BYTES),
    ];
    let mut tasks = Vec::new();
    for i in 0..HOLDERS {
        let head = heads[i % 2].clone();
        tasks.push(hostile_worker(addr, until, move |c| {
            let head = head.clone();
            async move { hold_unfinished(c, &head).await }
        }));
    }
    let over_limit = std::sync::Arc::new(get(
        "/v2/library/x/manifests/latest",
        &format!("X-Huge: {}\r\n", "o".repeat(1 << 20)),
    ));
    let long_url = std::sync::Arc::new(get(
        &format!("/v2/{}/manifests/latest", "u".repeat(100 << 10)),
        "",
    ));
    let mut garbage = vec![0u8; 256 << 10];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut garbage)
        .expect("random bytes");
    let garbage = std::sync::Arc::new(garbage);
    for request in [over_limit, long_url, garbage] {
        for _ in 0..4 {
            let request = request.clone();
            tasks.push(hostile_worker(addr, until, move |c| {
                let request = request.clone();
                async move { send_and_drain(c, &request).await }
            }));
        }
    }
    for _ in 0..SLOWLORIS {
        tasks.push(hostile_worker(addr, until, |mut c| async move {
            c.write_all(b"GET /healthz HTTP/1.1\r\nX-Trickle: ").await?;
            loop {
                c.write_all(b"z").await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }

    let mut peak = idle;
    while tokio::time::Instant::now() < until {
        peak = peak.max(rss_kib(pid).0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for task in tasks {
        task.await.expect("hostile client task");
    }
    // The kernel's high-water mark catches a peak between two samples.
    peak = peak.max(rss_kib(pid).1);
    wait_healthy(addr, "agent after the hostile load").await;
    let grew_mib = peak.saturating_sub(idle) / 1024;
    println!(
        "hostile load: agent RSS idle {} MiB, peak {} MiB (+{grew_mib} MiB)",
        idle / 1024,
        peak / 1024
    );
    assert!(
        grew_mib <= HOSTILE_RSS_BOUND_MIB,
        "the hostile load grew the agent's RSS by {grew_mib} MiB (bound {HOSTILE_RSS_BOUND_MIB} MiB)"
    );
}

/// How far the agent's RSS may grow under the hostile load. Measured (debug
/// build): +112 to +115 MiB with the default limits, about 110 KiB per
/// connection slot, each holding a head of up to 64 KiB; +277 MiB with
/// `--http-max-connections 100000`, where every held connection adds its
/// head. The bound leaves room for noise and fails well short of that.
const HOSTILE_RSS_BOUND_MIB: u64 = 160;
