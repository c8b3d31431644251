use futures_util::TryStreamExt;
use shoal_proto::PieceHasher;

use super::*;
use crate::store::ContentStore;

const PIECE: u32 = 256 * 1024;

fn blob(n: usize) -> (Bytes, PieceMap) {
    let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    let mut h = PieceHasher::new(PIECE);
    h.update(&data);
    (Bytes::from(data), h.finish().unwrap())
}

fn piece(data: &Bytes, map: &PieceMap, i: u32) -> Vec<Bytes> {
    let r = map.piece_range(i);
    vec![data.slice(r.start as usize..r.end as usize)]
}

/// Pieces put in reverse order: a reader gets the whole blob in order, and
/// the blob is stored with its piece map.
#[tokio::test]
async fn out_of_order_pieces_stream_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 0);
    let (data, map) = blob(5 * PIECE as usize + 1000);
    let (d2, m2) = (data.clone(), map.clone());
    let handle = fetcher
        .get_pieced(&map.digest, move |task| async move {
            let have = task.start(Layout::of(&m2)).await?;
            assert_eq!(have.count(), 0);
            task.set_known_hashes(&m2.pieces);
            for i in (0..m2.piece_count()).rev() {
                assert!(task.put_piece(i, piece(&d2, &m2, i)).await?);
                tokio::task::yield_now().await;
            }
            Ok(m2)
        })
        .await
        .unwrap();
    assert_eq!(handle.size(), data.len() as u64);
    let got: Vec<Bytes> = handle.stream(0..u64::MAX).try_collect().await.unwrap();
    assert_eq!(got.concat(), data.to_vec());
    assert_eq!(
        fetcher.store().get_piece_map(&map.digest),
        Some(map.clone())
    );
    assert!(!dir.path().join("tasks").join(map.digest.hex()).exists());
    // The stored blob is read back the way it was written (directly where
    // the file system allows it), whole and from mid-block.
    let path = fetcher.store().blob_path(&map.digest);
    let direct = BlobFile::open_direct(&path).unwrap().is_direct();
    let stored = fetcher.local(&map.digest).await.unwrap();
    assert_eq!(stored.direct, direct);
    let got: Vec<Bytes> = stored
        .stream(1000..2 * u64::from(PIECE) + 5)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.concat(), data[1000..2 * PIECE as usize + 5].to_vec());
    let stored = fetcher.local(&map.digest).await.unwrap();
    let got: Vec<Bytes> = stored.stream(0..u64::MAX).try_collect().await.unwrap();
    assert_eq!(got.concat(), data.to_vec());
}

/// A task that stops half-way is resumed by a new fetcher on the same data
/// dir (as after an agent restart): the held pieces are not asked again.
#[tokio::test]
async fn interrupted_task_resumes_from_persisted_bitfield() {
    let dir = tempfile::tempdir().unwrap();
    let (data, map) = blob(4 * PIECE as usize);
    interrupt_after(dir.path(), &data, &map, &[0, 2]).await;
    assert_eq!(resume(dir.path(), &data, &map).await, vec![0, 2]);
}

/// Runs a download in `dir` that writes `pieces` and then fails (as an
/// agent killed mid-blob), and waits for it to end.
async fn interrupt_after(dir: &Path, data: &Bytes, map: &PieceMap, pieces: &[u32]) {
    let fetcher = Fetcher::new(ContentStore::open(dir).unwrap(), 0);
    let (d2, m2, p2) = (data.clone(), map.clone(), pieces.to_vec());
    let handle = fetcher
        .get_pieced(&map.digest, move |task| async move {
            task.start(Layout::of(&m2)).await?;
            for i in p2 {
                task.put_piece(i, piece(&d2, &m2, i)).await?;
            }
            Err(FetchError::Io("killed".into()))
        })
        .await;
    if let Ok(h) = handle {
        let r: Result<Vec<Bytes>, _> = h.stream(0..u64::MAX).try_collect().await;
        assert!(r.is_err(), "a failed download must not complete a body");
    }
    assert!(fetcher.local(&map.digest).await.is_none());
}

/// Restarts the download in `dir` (as a restarted agent), puts the pieces
/// it does not hold, checks the blob streams whole, and returns the pieces
/// it held at the start.
async fn resume(dir: &Path, data: &Bytes, map: &PieceMap) -> Vec<u32> {
    let fetcher = Fetcher::new(ContentStore::open(dir).unwrap(), 0);
    let (d2, m2) = (data.clone(), map.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = fetcher
        .get_pieced(&map.digest, move |task| async move {
            let have = task.start(Layout::of(&m2)).await?;
            let _ = tx.send(have.iter_held().collect::<Vec<_>>());
            for i in have.iter_missing().collect::<Vec<_>>() {
                task.put_piece(i, piece(&d2, &m2, i)).await?;
            }
            Ok(m2)
        })
        .await
        .unwrap();
    let got: Vec<Bytes> = handle.stream(0..u64::MAX).try_collect().await.unwrap();
    assert_eq!(got.concat(), data.to_vec());
    rx.await.unwrap()
}

/// A resumed piece whose bytes on disk were damaged (marked, but not
/// what was verified) is caught before the blob is committed: the task is
/// discarded, and the next attempt starts afresh and completes.
#[tokio::test]
async fn damaged_resumed_piece_is_caught_before_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (data, map) = blob(3 * PIECE as usize);
    interrupt_after(dir.path(), &data, &map, &[0, 1]).await;
    let task = dir.path().join("tasks").join(map.digest.hex());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(task.join("data"))
        .unwrap();
    file.write_all_at(&[data[PIECE as usize + 5] ^ 1], u64::from(PIECE) + 5)
        .unwrap();
    drop(file);

    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 0);
    let (d2, m2) = (data.clone(), map.clone());
    let handle = fetcher
        .get_pieced(&map.digest, move |task| async move {
            let have = task.start(Layout::of(&m2)).await?;
            assert_eq!(have.iter_held().collect::<Vec<_>>(), [0, 1]);
            task.set_known_hashes(&m2.pieces);
            task.put_piece(2, piece(&d2, &m2, 2)).await?;
            Ok(m2)
        })
        .await
        .unwrap();
    let r: Result<Vec<Bytes>, _> = handle.stream(0..u64::MAX).try_collect().await;
    let err = r.unwrap_err().to_string();
    assert!(err.contains("resumed piece 1"), "{err}");
    assert!(fetcher.local(&map.digest).await.is_none());
    assert!(!task.exists());
    assert!(resume(dir.path(), &data, &map).await.is_empty());
}

/// Piece hashes may only grow: a list that changes a hash already known
/// (pieces were verified against it) is refused, and so is a final map
/// that does not extend them.
#[tokio::test]
async fn known_hashes_only_grow() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(ContentStore::open(dir.path()).unwrap(), 0);
    let (data, map) = blob(2 * PIECE as usize);
    let (d2, m2) = (data.clone(), map.clone());
    let handle = fetcher
        .get_pieced(&map.digest, move |task| async move {
            task.start(Layout::of(&m2)).await?;
            assert!(task.set_known_hashes(&m2.pieces[..1]));
            let mut changed = m2.pieces.clone();
            changed[0] = Digest::of(b"other");
            assert!(!task.set_known_hashes(&changed));
            assert!(task.set_known_hashes(&m2.pieces));
            for i in 0..2 {
                task.put_piece(i, piece(&d2, &m2, i)).await?;
            }
            let mut other = m2.clone();
            other.pieces = changed;
            Ok(other)
        })
        .await
        .unwrap();
    let r: Result<Vec<Bytes>, _> = handle.stream(0..u64::MAX).try_collect().await;
    assert!(r.unwrap_err().to_string().contains("does not fit"));
    assert!(fetcher.local(&map.digest).await.is_none());
}

/// A task whose `pieces` file is damaged (a flag that is neither 0 nor 1,
/// or a file cut short) is started afresh instead of trusting it, and
/// still completes.
#[tokio::test]
async fn damaged_piece_flags_restart_the_task() {
    for damage in [Damage::BadFlag, Damage::Truncated] {
        let dir = tempfile::tempdir().unwrap();
        let (data, map) = blob(3 * PIECE as usize);
        interrupt_after(dir.path(), &data, &map, &[1]).await;
        let meta = dir
            .path()
            .join("tasks")
            .join(map.digest.hex())
            .join("pieces");
        let mut bytes = std::fs::read(&meta).unwrap();
        assert_eq!(bytes[META_HEADER as usize + 1], 1, "piece 1 is marked");
        match damage {
            Damage::BadFlag => bytes[META_HEADER as usize] = 7,
            Damage::Truncated => bytes.truncate(META_HEADER as usize + 2),
        }
        std::fs::write(&meta, bytes).unwrap();
        let held = resume(dir.path(), &data, &map).await;
        assert!(held.is_empty(), "{damage:?}: a damaged file is not trusted");
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    BadFlag,
    Truncated,
}
