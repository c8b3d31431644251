//! Unit tests of the content store: manifests, leftovers, the quota's
//! eviction with real files, and the free-space check.

use super::*;

#[tokio::test]
async fn manifests_round_trip_and_damage_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let body = b"{\"schemaVersion\":2}";
    let d = Digest::of(body);
    assert!(store.get_manifest(&d).await.is_none());
    store.put_manifest(&d, "application/x", body).await.unwrap();
    let (mt, got) = store.get_manifest(&d).await.unwrap();
    assert_eq!((mt.as_str(), &got[..]), ("application/x", &body[..]));
    std::fs::write(store.manifest_path(&d), b"tampered").unwrap();
    assert!(store.get_manifest(&d).await.is_none());
}

#[tokio::test]
async fn tmp_is_cleared_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let t = store.temp_path("x");
    std::fs::write(&t, b"partial").unwrap();
    drop(store);
    ContentStore::open(dir.path()).unwrap();
    assert!(!t.exists());
}

/// Stores `body` as a complete blob (as a download would).
async fn put_blob(store: &ContentStore, body: &[u8]) -> Digest {
    let d = Digest::of(body);
    let tmp = store.temp_path("t");
    std::fs::write(&tmp, body).unwrap();
    store.commit_blob(&tmp, &d).await.unwrap();
    d
}

#[tokio::test]
async fn quota_evicts_the_least_recently_used_unpinned_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open_with_quota(dir.path(), ByteSize::from_bytes(300)).unwrap();
    let a = put_blob(&store, &[1; 100]).await;
    let b = put_blob(&store, &[2; 100]).await;
    let c = put_blob(&store, &[3; 100]).await;
    assert_eq!(store.used_bytes(), 300);
    // `a` is used again, `b` is read right now: `c` must go.
    assert_eq!(store.blob_size(&a).await, Some(100));
    let pin = store.pin(&b);
    store.make_room_for(100).await.unwrap();
    assert!(!store.blob_path(&c).exists());
    assert!(store.blob_path(&a).is_file() && store.blob_path(&b).is_file());
    assert_eq!(store.used_bytes(), 200);
    // With `b` released it is the least recently used.
    drop(pin);
    assert_eq!(store.make_room(200).await, 1);
    assert!(!store.blob_path(&b).exists() && store.blob_path(&a).is_file());
    // Nothing evicted is left in tmp/.
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn evictions_are_announced_to_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open_with_quota(dir.path(), ByteSize::from_bytes(150)).unwrap();
    let mut first = store.evictions();
    let a = put_blob(&store, &[1; 100]).await;
    let mut second = store.evictions();
    let b = put_blob(&store, &[2; 100]).await;
    assert!(first.try_recv().is_err(), "nothing evicted yet");
    assert_eq!(store.make_room(0).await, 1);
    assert_eq!(first.try_recv().unwrap(), a);
    assert_eq!(second.try_recv().unwrap(), a);
    assert!(first.try_recv().is_err() && store.blob_path(&b).is_file());
}

#[tokio::test]
async fn eviction_removes_the_piece_map_and_pinned_blobs_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open_with_quota(dir.path(), ByteSize::from_bytes(10)).unwrap();
    let body = vec![7u8; 64];
    let mut h = shoal_proto::PieceHasher::new(64);
    h.update(&body);
    let map = h.finish().unwrap();
    store.put_piece_map(&map).await.unwrap();
    let d = put_blob(&store, &body).await;
    assert!(store.get_piece_map(&d).is_some());
    let pin = store.pin(&d);
    assert_eq!(store.make_room(0).await, 0, "a pinned blob was evicted");
    drop(pin);
    assert_eq!(store.make_room(0).await, 1);
    assert!(store.blob_size(&d).await.is_none());
    assert!(store.get_piece_map(&d).is_none());
}

#[tokio::test]
async fn reopening_ranks_stored_blobs_and_refuses_oversized_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let old = put_blob(&store, &[1; 50]).await;
    let new = put_blob(&store, &[2; 50]).await;
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(store.blob_path(&old))
        .unwrap()
        .set_modified(past)
        .unwrap();
    drop(store);
    let store = ContentStore::open_with_quota(dir.path(), ByteSize::from_bytes(60)).unwrap();
    assert_eq!(store.used_bytes(), 100);
    assert!(matches!(
        store.make_room_for(61).await,
        Err(StoreError::OverQuota { size: 61, .. })
    ));
    store.make_room_for(10).await.unwrap();
    assert!(!store.blob_path(&old).exists() && store.blob_path(&new).is_file());
}

#[tokio::test]
async fn a_blob_larger_than_the_free_space_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    store.make_room_for(1).await.unwrap();
    assert!(matches!(
        store.make_room_for(u64::MAX / 2).await,
        Err(StoreError::NoSpace { .. })
    ));
}
