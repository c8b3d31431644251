//! Unit tests of the uploader: slots, refusals, the wait list.

use std::time::Duration;

use super::*;

fn serve(peer: u64, piece: u32) -> UploadAction {
    UploadAction::Serve {
        peer: PeerId(peer),
        piece,
    }
}

fn busy(peer: u64, piece: u32) -> UploadAction {
    UploadAction::Reject {
        peer: PeerId(peer),
        piece,
        reason: Rejection::Busy,
    }
}

fn available(peer: u64) -> UploadAction {
    UploadAction::Available { peer: PeerId(peer) }
}

fn drain<P: ServePolicy>(u: &mut Uploader<P>) -> Vec<UploadAction> {
    std::iter::from_fn(|| u.poll_action()).collect()
}

fn one_slot() -> UploadConfig {
    UploadConfig {
        max_active: 1,
        max_active_spare: 2,
        max_waitlist: 2,
        reserve_for: Duration::from_millis(100),
    }
}

const T0: Time = Time::ZERO;

#[test]
fn bounded_slots_then_busy_then_called_back() {
    let mut u = Uploader::new(one_slot(), Bitfield::full(4), ServeAll);
    u.handle_request(T0, PeerId(1), 0);
    u.handle_request(T0, PeerId(2), 1);
    u.handle_request(T0, PeerId(3), 2);
    assert_eq!(drain(&mut u), [serve(1, 0), busy(2, 1), busy(3, 2)]);
    u.handle_upload_done(T0, PeerId(1), 0);
    // The oldest waiting peer is called and the slot kept for it.
    assert_eq!(drain(&mut u), [available(2)]);
    u.handle_request(T0, PeerId(3), 2);
    assert_eq!(drain(&mut u), [busy(3, 2)]);
    u.handle_request(T0, PeerId(2), 3);
    assert_eq!(drain(&mut u), [serve(2, 3)]);
    assert_eq!(u.stats().served, 1);
    assert_eq!(u.stats().offered, 1);
}

#[test]
fn unclaimed_reservations_expire() {
    let mut u = Uploader::new(one_slot(), Bitfield::full(4), ServeAll);
    u.handle_request(T0, PeerId(1), 0);
    u.handle_request(T0, PeerId(2), 1);
    u.handle_request(T0, PeerId(3), 1);
    drain(&mut u);
    u.handle_upload_done(T0, PeerId(1), 0);
    assert_eq!(drain(&mut u), [available(2)]);
    assert_eq!(u.poll_timeout(), Some(Time::from_millis(100)));
    u.handle_timeout(Time::from_millis(100));
    assert_eq!(drain(&mut u), [available(3)]);
    assert_eq!(u.stats().unclaimed, 1);
}

#[test]
fn spare_link_allows_more_uploads() {
    let mut u = Uploader::new(one_slot(), Bitfield::full(4), ServeAll);
    u.handle_request(T0, PeerId(1), 0);
    u.handle_link_spare(T0, true);
    u.handle_request(T0, PeerId(2), 1);
    u.handle_request(T0, PeerId(3), 2);
    assert_eq!(drain(&mut u), [serve(1, 0), serve(2, 1), busy(3, 2)]);
}

#[test]
fn not_held_is_refused() {
    let mut held = Bitfield::new(4);
    held.set(0);
    let mut u = Uploader::new(one_slot(), held, ServeAll);
    u.handle_request(T0, PeerId(1), 3);
    let got = drain(&mut u);
    assert!(matches!(
        got[..],
        [UploadAction::Reject {
            reason: Rejection::NotHeld,
            ..
        }]
    ));
    u.handle_piece_added(T0, 3);
    u.handle_request(T0, PeerId(1), 3);
    assert_eq!(drain(&mut u), [serve(1, 3)]);
}

#[test]
fn cancel_and_disconnect_free_slots() {
    let mut u = Uploader::new(one_slot(), Bitfield::full(4), ServeAll);
    u.handle_request(T0, PeerId(1), 0);
    u.handle_request(T0, PeerId(2), 1);
    u.handle_request(T0, PeerId(3), 2);
    drain(&mut u);
    u.handle_cancel(T0, PeerId(1), 0);
    assert_eq!(drain(&mut u), [available(2)]);
    u.handle_peer_disconnected(T0, PeerId(2));
    assert_eq!(drain(&mut u), [available(3)]);
    assert_eq!(u.stats().aborted, 1);
}
