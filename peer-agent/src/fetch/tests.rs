use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::{FutureExt, StreamExt, TryStreamExt};

use super::*;

/// An in-memory source that can truncate or corrupt its first response.
struct MemSource {
    data: Bytes,
    opens: Arc<AtomicU32>,
    /// Cut the first `n` opens' streams short after this many bytes.
    cut_first: u32,
    cut_at: usize,
    corrupt: bool,
}

impl BlobSource for MemSource {
    fn open(&self, offset: u64) -> BoxFuture<'static, Result<SourceBody, RegistryError>> {
        let n = self.opens.fetch_add(1, Ordering::SeqCst);
        let mut data = self.data.slice(offset as usize..).to_vec();
        if self.corrupt && !data.is_empty() {
            data[0] ^= 0xff;
        }
        let total = self.data.len() as u64;
        let cut = (n < self.cut_first).then_some(self.cut_at);
        async move {
            let chunks: Vec<Result<Bytes, RegistryError>> = match cut {
                Some(c) => {
                    let c = c.min(data.len());
                    vec![
                        Ok(Bytes::copy_from_slice(&data[..c])),
                        Err(RegistryError::bad_gateway("connection reset")),
                    ]
                }
                None => data
                    .chunks(1000)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect(),
            };
            Ok(SourceBody {
                total_size: total,
                stream: futures_util::stream::iter(chunks).boxed(),
            })
        }
        .boxed()
    }
    fn label(&self) -> &'static str {
        "test"
    }
}

fn blob(n: usize) -> (Bytes, Digest) {
    let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    let d = Digest::of(&data);
    (Bytes::from(data), d)
}

fn source(data: &Bytes, opens: &Arc<AtomicU32>) -> MemSource {
    MemSource {
        data: data.clone(),
        opens: opens.clone(),
        cut_first: 0,
        cut_at: 0,
        corrupt: false,
    }
}

async fn read_all(h: BlobHandle) -> io::Result<Vec<u8>> {
    let size = h.size();
    let parts: Vec<Bytes> = h.stream(0..size).try_collect().await?;
    Ok(parts.concat())
}

#[tokio::test]
async fn concurrent_requests_open_the_source_once() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 3);
    let (data, d) = blob(300_000);
    let opens = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (f, data, opens) = (fetcher.clone(), data.clone(), opens.clone());
        tasks.push(tokio::spawn(async move {
            let h = f.get(&d, || source(&data, &opens)).await.unwrap();
            read_all(h).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), data);
    }
    assert_eq!(opens.load(Ordering::SeqCst), 1);
    assert!(fetcher.local(&d).await.is_some());
    // A later request is served from the store without the source.
    let h = fetcher
        .get(&d, || -> MemSource { panic!("source opened") })
        .await
        .unwrap();
    assert!(h.is_complete());
}

#[tokio::test]
async fn ranges_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 3);
    let (data, d) = blob(10_000);
    let opens = Arc::new(AtomicU32::new(0));
    let h = fetcher.get(&d, || source(&data, &opens)).await.unwrap();
    let got: Vec<Bytes> = h.stream(100..2100).try_collect().await.unwrap();
    assert_eq!(got.concat(), &data[100..2100]);
}

#[tokio::test]
async fn corrupt_content_is_discarded_and_never_completed() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 3);
    let (data, d) = blob(50_000);
    let opens = Arc::new(AtomicU32::new(0));
    let mut src = source(&data, &opens);
    src.corrupt = true;
    let res = match fetcher.get(&d, || src).await {
        Ok(h) => read_all(h).await.map(|_| ()),
        Err(e) => Err(io::Error::other(e.to_string())),
    };
    let err = res.unwrap_err().to_string();
    assert!(err.contains("does not match digest"), "{err}");
    assert!(fetcher.local(&d).await.is_none());
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn broken_stream_resumes_from_offset() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 3);
    let (data, d) = blob(100_000);
    let opens = Arc::new(AtomicU32::new(0));
    let mut src = source(&data, &opens);
    src.cut_first = 2;
    src.cut_at = 30_000;
    let h = fetcher.get(&d, || src).await.unwrap();
    assert_eq!(read_all(h).await.unwrap(), data);
    assert_eq!(opens.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn truncated_stream_fails_once_resumes_are_spent() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 1);
    let (data, d) = blob(100_000);
    let opens = Arc::new(AtomicU32::new(0));
    let mut src = source(&data, &opens);
    src.cut_first = 5;
    src.cut_at = 10;
    // The failure shows either before the size is known or while reading.
    if let Ok(h) = fetcher.get(&d, || src).await {
        assert!(read_all(h).await.is_err());
    }
    assert!(fetcher.local(&d).await.is_none());
}

#[tokio::test]
async fn piece_maps_are_computed_stored_and_served_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 3).with_piece_maps();
    let (data, d) = blob(3 * 256 * 1024 + 100);
    let opens = Arc::new(AtomicU32::new(0));
    let h = fetcher.get(&d, || source(&data, &opens)).await.unwrap();
    assert_eq!(read_all(h).await.unwrap(), data);
    let map = fetcher
        .store()
        .get_piece_map(&d)
        .expect("map stored with the blob");
    assert_eq!(map.size, data.len() as u64);
    assert_eq!(map.piece_count(), 4);
    for i in 0..4 {
        let r = map.piece_range(i);
        map.verify_piece(i, &data[r.start as usize..r.end as usize])
            .unwrap();
    }
    // Served to peers from the store once complete.
    let pieces = crate::pieces::FetcherPieces::new(fetcher.clone());
    use crate::p2p::PieceProvider;
    assert!(pieces.has_piece(&d, 3));
    let got = pieces.read_piece(&d, 1).await.unwrap();
    assert_eq!(&got[..], &data[256 * 1024..512 * 1024]);
}

#[tokio::test]
async fn partial_piece_maps_grow_with_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 3).with_piece_maps();
    let (data, d) = blob(4 * 256 * 1024);
    // A source that sends two pieces and a byte (a piece is listed once
    // the next byte shows it is not the blob's last), then waits until
    // released.
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    struct Gated(Bytes, Mutex<Option<tokio::sync::oneshot::Receiver<()>>>);
    impl BlobSource for Gated {
        fn open(&self, _offset: u64) -> BoxFuture<'static, Result<SourceBody, RegistryError>> {
            let data = self.0.clone();
            let gate = self.1.lock().unwrap().take().expect("opened once");
            async move {
                let half = data.len() / 2 + 1;
                let total = data.len() as u64;
                let first = futures_util::stream::iter(vec![Ok(data.slice(..half))]);
                let rest = futures_util::stream::once(async move {
                    let _ = gate.await;
                    Ok(data.slice(half..))
                });
                Ok(SourceBody {
                    total_size: total,
                    stream: first.chain(rest).boxed(),
                })
            }
            .boxed()
        }
        fn label(&self) -> &'static str {
            "gated"
        }
    }
    let h = fetcher
        .get(&d, || Gated(data.clone(), Mutex::new(Some(release_rx))))
        .await
        .unwrap();
    let pieces = crate::pieces::FetcherPieces::new(fetcher.clone());
    use crate::p2p::PieceProvider;
    // Wait (bounded) until the first half is written and hashed.
    for _ in 0..500 {
        if pieces.has_piece(&d, 1) {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(pieces.has_piece(&d, 1));
    assert!(!pieces.has_piece(&d, 2));
    assert_eq!(pieces.piece_map(&d).unwrap().piece_count(), 2);
    let got = pieces.read_piece(&d, 0).await.unwrap();
    assert_eq!(&got[..], &data[..256 * 1024]);
    release_tx.send(()).unwrap();
    assert_eq!(read_all(h).await.unwrap(), data);
    assert_eq!(pieces.piece_map(&d).unwrap().piece_count(), 4);
}

/// A request arriving after a download's failure was published, but
/// before the failed job left the map, starts afresh instead of taking the
/// old failure; the old job's exit leaves the new entry alone.
#[test]
fn a_published_failure_is_not_joined() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 3);
    let digest = Digest::of(b"blob");
    let mut first = None;
    let old = fetcher.join_or_start(&digest, false, |tx, _| {
        tx.send_replace(State::Failed(FetchError::Io("upstream said 500".into())));
        first = Some(tx);
    });
    let old = old.expect("a download was registered");
    let first = first.expect("the first download started");
    let mut started = false;
    let new = fetcher
        .join_or_start(&digest, false, |_tx, _| started = true)
        .expect("a download was registered");
    assert!(started, "the failed download was joined");
    assert!(!new.same_channel(&old));
    drop(Forget::new(&fetcher, digest, &first));
    let map = fetcher.inflight.lock().unwrap();
    assert!(map.get(&digest).is_some_and(|e| e.rx.same_channel(&new)));
}
