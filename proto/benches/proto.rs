//! Costs of the protocol's hot paths, without I/O: the piece scheduler of
//! one download in a 50-peer swarm, piece verification, framing, bitfield
//! arithmetic. `cargo bench -p shoal-proto` runs them;
//! `docs/BENCHMARKS.md` ("Protocol hot paths") keeps the figures.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shoal_proto::swarm::{Action, Download, DownloadConfig, Layout, PeerId, PeerKind};
use shoal_proto::time::Time;
use shoal_proto::wire::{HaveMessage, PieceRequest};
use shoal_proto::{Bitfield, Digest, FrameDecoder, PieceHasher, decode_frame, encode_frame};

/// `peers` peer bitfields of `pieces` bits, each piece held by about half.
fn swarm(pieces: u32, peers: usize) -> Vec<Bitfield> {
    // Seeded, so every run schedules the same swarm.
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    (0..peers)
        .map(|_| {
            let mut bits = Bitfield::new(pieces);
            for i in 0..pieces {
                if rng.random_bool(0.5) {
                    bits.set(i);
                }
            }
            bits
        })
        .collect()
}

/// Runs one download of `layout` to completion against `peers` (and a
/// seed holding everything), every request answered at once; returns the
/// number of requests made.
fn download(layout: Layout, peers: &[Bitfield]) -> u64 {
    let n = layout.piece_count();
    let mut dl = Download::new(DownloadConfig::default(), layout, Bitfield::new(n), 7);
    let mut now = Time::ZERO;
    dl.handle_peer_connected(now, PeerId(0), PeerKind::Seed, Bitfield::full(n));
    for (i, bits) in peers.iter().enumerate() {
        dl.handle_peer_connected(now, PeerId(i as u64 + 1), PeerKind::Peer, bits.clone());
    }
    let mut requests = 0;
    let mut pending = Vec::new();
    for _ in 0..100_000 {
        if dl.is_complete() {
            return requests;
        }
        now = Time::from_micros(now.as_micros() + 1_000);
        while let Some(action) = dl.poll_action() {
            if let Action::Request { peer, piece } = action {
                requests += 1;
                pending.push((peer, piece));
            }
        }
        for (peer, piece) in pending.drain(..) {
            dl.handle_piece_verified(now, peer, piece);
        }
        dl.handle_timeout(now);
    }
    panic!("the download did not complete");
}

fn scheduler(c: &mut Criterion) {
    let mut group = c.benchmark_group("download");
    for (pieces, peers) in [(128u32, 10usize), (512, 50)] {
        let layout = Layout {
            size: u64::from(pieces) * 256 * 1024,
            piece_size: 256 * 1024,
        };
        let bits = swarm(pieces, peers);
        group.throughput(Throughput::Elements(u64::from(pieces)));
        group.bench_with_input(
            BenchmarkId::new("whole_blob", format!("{pieces}_pieces_{peers}_peers")),
            &bits,
            |b, bits| b.iter(|| black_box(download(layout, bits))),
        );
    }
    group.finish();
}

fn verification(c: &mut Criterion) {
    let piece_size = 256 * 1024;
    let blob: Vec<u8> = (0..4 * piece_size).map(|i| (i * 31 % 251) as u8).collect();
    let mut hasher = PieceHasher::new(piece_size as u32);
    hasher.update(&blob);
    let map = hasher.finish().expect("a valid map");
    let piece = &blob[piece_size..2 * piece_size];
    let mut group = c.benchmark_group("piece");
    group.throughput(Throughput::Bytes(piece_size as u64));
    group.bench_function("verify_256KiB", |b| {
        b.iter(|| map.verify_piece(1, black_box(piece)).expect("verifies"))
    });
    group.finish();
}

fn framing(c: &mut Criterion) {
    let digest = Digest::of(b"layer");
    let mut group = c.benchmark_group("frame");
    let request = PieceRequest { digest, index: 411 };
    group.bench_function("piece_request_roundtrip", |b| {
        let mut buf = Vec::with_capacity(64);
        b.iter(|| {
            buf.clear();
            encode_frame(black_box(&request), &mut buf).expect("encodes");
            black_box(decode_frame::<PieceRequest>(&buf).expect("decodes"))
        })
    });
    // A `have` stream's worth: one bitfield, then 200 single pieces, read
    // back through the streaming decoder.
    let mut stream = Vec::new();
    let bits = swarm(512, 1).pop().expect("one");
    encode_frame(&HaveMessage::Bitfield { digest, bits }, &mut stream).expect("encodes");
    for index in 0..200 {
        encode_frame(&HaveMessage::Have { digest, index }, &mut stream).expect("encodes");
    }
    group.throughput(Throughput::Elements(201));
    group.bench_function("have_stream_decode_201", |b| {
        b.iter(|| {
            let mut decoder = FrameDecoder::<HaveMessage>::new();
            let mut buf = bytes::Bytes::from(stream.clone());
            let mut n = 0;
            while let Some(msg) = decoder.decode(&mut buf).expect("decodes") {
                black_box(msg);
                n += 1;
            }
            assert_eq!(n, 201);
        })
    });
    group.finish();
}

fn bitfields(c: &mut Criterion) {
    let mut all = swarm(8192, 2);
    let (a, b) = (all.pop().expect("two"), all.pop().expect("two"));
    c.bench_function("bitfield/count_not_in_8192", |bench| {
        bench.iter(|| black_box(&a).count_not_in(black_box(&b)))
    });
}

criterion_group!(benches, scheduler, verification, framing, bitfields);
criterion_main!(benches);
