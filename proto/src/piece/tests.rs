//! Tests of piece sizing, piece maps and the streaming piece hasher.

use proptest::prelude::*;

use super::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

#[test]
fn piece_size_policy() {
    let cases = [
        (0, 256 * KIB),
        (1, 256 * KIB),
        (32 * MIB, 256 * KIB),
        (64 * MIB, 256 * KIB),
        (64 * MIB + 1, 512 * KIB),
        (100 * MIB, 512 * KIB),
        (1024 * MIB, 4 * MIB),
        (4096 * MIB, 16 * MIB),
        (MAX_BLOB_SIZE, 16 * MIB),
        (u64::MAX, 16 * MIB),
    ];
    for (size, want) in cases {
        assert_eq!(u64::from(piece_size_for(size)), want, "size {size}");
    }
}

#[test]
fn empty_blob_has_no_pieces() {
    let map = PieceHasher::for_size(0).finish().unwrap();
    assert_eq!(map.digest, Digest::of(b""));
    assert_eq!((map.size, map.piece_count()), (0, 0));
    assert_eq!(
        map.verify_piece(0, b""),
        Err(PieceError::NoSuchPiece { index: 0, count: 0 })
    );
}

#[test]
fn validation_errors() {
    let d = Digest::of(b"");
    assert_eq!(
        PieceMap::build(d, MAX_BLOB_SIZE + 1, MAX_PIECE_SIZE, []),
        Err(PieceMapError::BlobTooLarge {
            size: MAX_BLOB_SIZE + 1
        })
    );
    assert_eq!(
        PieceMap::build(d, 10, 0, []),
        Err(PieceMapError::BadPieceSize(0))
    );
    assert_eq!(
        PieceMap::build(d, 10, 100, [d]),
        Err(PieceMapError::BadPieceSize(100)),
        "chaining values exist only at 64-byte blocks"
    );
    assert_eq!(
        PieceMap::build(d, 10, MAX_PIECE_SIZE + 1, []),
        Err(PieceMapError::BadPieceSize(MAX_PIECE_SIZE + 1))
    );
    assert_eq!(
        PieceMap::build(d, MAX_BLOB_SIZE, 64, []),
        Err(PieceMapError::TooManyPieces(MAX_BLOB_SIZE / 64))
    );
    assert_eq!(
        PieceMap::build(d, 130, 64, [d; 2]),
        Err(PieceMapError::CountMismatch {
            expected: 3,
            actual: 2
        })
    );
    // An endless iterator is cut off after one extra hash.
    assert_eq!(
        PieceMap::build(d, 130, 64, std::iter::repeat(d)),
        Err(PieceMapError::CountMismatch {
            expected: 3,
            actual: 4
        })
    );
    let ok = PieceMap::build(d, 130, 64, [d; 3]).unwrap();
    assert_eq!(ok.validate(), Ok(()));
    // The chain must end at the digest, also for an empty blob.
    let other = Digest::of(b"other");
    assert_eq!(
        PieceMap::build(d, 130, 64, [d, d, other]),
        Err(PieceMapError::DigestMismatch)
    );
    assert_eq!(
        PieceMap::build(other, 0, 64, []),
        Err(PieceMapError::DigestMismatch)
    );
    assert!(PieceMap::build(d, 0, 64, []).is_ok());
    let largest = PieceMap::build(
        d,
        MAX_BLOB_SIZE,
        MAX_PIECE_SIZE,
        vec![d; MAX_PIECES as usize],
    );
    assert!(largest.is_ok());
}

#[test]
fn verify_piece_checks_index_length_and_hash() {
    let blob: Vec<u8> = (0..140u8).collect();
    let mut h = PieceHasher::new(64);
    h.update(&blob);
    let map = h.finish().unwrap();
    assert_eq!(map.piece_range(2), 128..140);
    assert_eq!(map.verify_piece(0, &blob[0..64]), Ok(()));
    assert_eq!(map.verify_piece(1, &blob[64..128]), Ok(()));
    assert_eq!(map.verify_piece(2, &blob[128..140]), Ok(()));
    assert_eq!(
        map.verify_piece(2, &blob[124..140]),
        Err(PieceError::WrongLength {
            index: 2,
            expected: 12,
            actual: 16
        })
    );
    assert_eq!(
        map.verify_piece(1, &blob[0..64]),
        Err(PieceError::HashMismatch { index: 1 })
    );
    let mut flipped = blob.clone();
    flipped[139] ^= 1;
    assert_eq!(
        map.verify_piece(2, &flipped[128..140]),
        Err(PieceError::HashMismatch { index: 2 })
    );
    // Streamed in any chunks, the same verdicts.
    let mut check = map.check_piece(1).unwrap();
    for c in blob[64..128].chunks(7) {
        check.update(c);
    }
    assert_eq!(check.finish(), Ok(()));
    let mut short = map.check_piece(1).unwrap();
    short.update(&blob[64..127]);
    assert!(matches!(
        short.finish(),
        Err(PieceError::WrongLength { .. })
    ));
    assert_eq!(
        map.verify_piece(3, &[]),
        Err(PieceError::NoSuchPiece { index: 3, count: 3 })
    );
}

#[test]
#[should_panic(expected = "out of range")]
fn piece_range_out_of_range_panics() {
    let d = Digest::of(b"");
    PieceMap::build(d, 130, 64, [d; 3]).unwrap().piece_range(3);
}

#[test]
fn hasher_reports_completed_pieces_as_they_finish() {
    let blob = [5u8; 200];
    let mut h = PieceHasher::new(64);
    h.update(&blob[..63]);
    assert!(h.completed().is_empty());
    h.update(&blob[63..128]);
    // The second piece may still be the blob's last, whose entry is the
    // digest: it is listed once a byte of the third arrives.
    assert_eq!(h.completed(), &chain_values(&blob[..128], 64)[..1]);
    h.update(&blob[128..129]);
    assert_eq!(h.completed(), &chain_values(&blob[..129], 64)[..2]);
    assert_eq!(h.len(), 129);

    let mut h = PieceHasher::new(64);
    h.update(&blob[..128]);
    let map = h.finish().unwrap();
    assert_eq!(map.pieces.len(), 2, "no empty trailing piece");
    assert_eq!(map.pieces[1], Digest::of(&blob[..128]));
}

#[test]
fn hasher_refuses_a_piece_size_off_the_block() {
    let mut h = PieceHasher::new(100);
    h.update(&[1; 300]);
    assert_eq!(h.finish(), Err(PieceMapError::BadPieceSize(100)));
}

/// The map's entries by definition: sha256's state after each piece, and
/// the digest for the last.
fn chain_values(data: &[u8], piece_size: usize) -> Vec<Digest> {
    let mut out = Vec::new();
    let mut end = 0;
    while end < data.len() {
        end = (end + piece_size).min(data.len());
        if end == data.len() {
            out.push(Digest::of(data));
        } else {
            let mut h = ChainHasher::new();
            h.update(&data[..end]);
            out.push(h.chain_value().unwrap());
        }
    }
    out
}

#[test]
fn hasher_with_policy_piece_size() {
    let blob = vec![7u8; (MIN_PIECE_SIZE as usize) * 3 + 5];
    let mut h = PieceHasher::for_size(blob.len() as u64);
    h.update(&blob);
    let map = h.finish().unwrap();
    assert_eq!(map.piece_size, MIN_PIECE_SIZE);
    assert_eq!(map.piece_count(), 4);
    assert_eq!(map.digest, Digest::of(&blob));
}

#[test]
fn hasher_refuses_zero_piece_size_at_finish() {
    let mut h = PieceHasher::new(0);
    h.update(b"abc");
    assert_eq!(h.finish(), Err(PieceMapError::BadPieceSize(0)));
}

#[test]
fn json_form_is_validated() {
    let map = PieceMap::build(
        Digest::of(b"x"),
        65,
        64,
        [Digest::of(b"a"), Digest::of(b"x")],
    )
    .unwrap();
    let json = serde_json::to_string(&map).unwrap();
    assert!(json.contains("\"digest\":\"sha256:"), "{json}");
    assert_eq!(serde_json::from_str::<PieceMap>(&json).unwrap(), map);
    let bad = json.replace("\"size\":65", "\"size\":200");
    let err = serde_json::from_str::<PieceMap>(&bad).unwrap_err();
    assert!(err.to_string().contains("lists 2 pieces"), "{err}");
}

/// Cuts `data` into chunks of the given sizes (cycled; zero-length ones too).
fn feed_chunked(h: &mut PieceHasher, data: &[u8], chunks: &[usize]) {
    let mut rest = data;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().map_or(rest.len(), |c| c.min(rest.len()));
        h.update(&rest[..n]);
        rest = &rest[n..];
        if chunks.iter().all(|&c| c == 0) {
            h.update(rest);
            break;
        }
    }
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_map(
        data in prop::collection::vec(any::<u8>(), 0..2000),
        piece_size in (1u32..6).prop_map(|b| b * 64),
        chunks in prop::collection::vec(0usize..500, 0..8),
    ) {
        let mut one = PieceHasher::new(piece_size);
        one.update(&data);
        let one = one.finish().unwrap();
        let mut many = PieceHasher::new(piece_size);
        feed_chunked(&mut many, &data, &chunks);
        prop_assert_eq!(many.finish().unwrap(), one.clone());

        // And the map is what the definition says.
        prop_assert_eq!(one.digest, Digest::of(&data));
        prop_assert_eq!(one.size, data.len() as u64);
        prop_assert_eq!(&one.pieces, &chain_values(&data, piece_size as usize));
        for i in 0..one.piece_count() {
            let r = one.piece_range(i);
            prop_assert_eq!(one.verify_piece(i, &data[r.start as usize..r.end as usize]), Ok(()));
        }
    }

    #[test]
    fn piece_ranges_tile_the_blob(
        blocks in 1u32..=MAX_PIECE_SIZE / 64,
        n in 0u64..2000,
        last in 1u32..=MAX_PIECE_SIZE,
    ) {
        let piece_size = blocks * 64;
        // n pieces, the last one `last` bytes (at most a full piece) long.
        let size = if n == 0 { 0 } else { (n - 1) * u64::from(piece_size) + u64::from(last.min(piece_size)) };
        let d = Digest::of(b"");
        let map = PieceMap::build(d, size, piece_size, vec![d; n as usize]).unwrap();
        prop_assert_eq!(u64::from(map.piece_count()), n);
        let mut next = 0;
        for i in 0..map.piece_count() {
            let r = map.piece_range(i);
            prop_assert_eq!(r.start, next);
            prop_assert!(r.end > r.start);
            if i + 1 < map.piece_count() {
                prop_assert_eq!(r.end - r.start, u64::from(piece_size));
            }
            next = r.end;
        }
        prop_assert_eq!(next, size);
    }

    #[test]
    fn policy_gives_a_few_hundred_pieces(size in 0u64..=MAX_BLOB_SIZE) {
        let p = piece_size_for(size);
        prop_assert!(p.is_power_of_two());
        prop_assert!((MIN_PIECE_SIZE..=MAX_PIECE_SIZE).contains(&p));
        let n = size.div_ceil(u64::from(p));
        prop_assert!(n <= u64::from(MAX_PIECES));
        if p < MAX_PIECE_SIZE {
            prop_assert!(n <= 256, "{} pieces of {}", n, p);
        }
        if p > MIN_PIECE_SIZE {
            prop_assert!(n > 128, "{} pieces of {}", n, p);
        }
    }
}
