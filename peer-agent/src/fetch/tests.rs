use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::TryStreamExt;

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
    let h = fetcher.get(&d, || src).await.unwrap();
    assert!(read_all(h).await.is_err());
    assert!(fetcher.local(&d).await.is_none());
}
