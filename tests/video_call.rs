//! Video end to end: a synthetic camera at A, H.264 through the SFU, decoded into B's texture.

mod common;

use bevy_calling::pattern::{self, FrameStamp};
use bevy_calling::prelude::*;
use common::*;

/// The decoded picture B shows, with the stamp it carries.
fn shown(b: &Client, stream: bevy::prelude::Entity) -> Option<(Vec<u8>, u32, u32, FrameStamp)> {
    let (rgba, w, h) = view_pixels(b, stream)?;
    let stamp = pattern::read_rgba(&rgba, w, h)?;
    Some((rgba, w, h, stamp))
}

#[test]
fn video_from_a_camera_arrives_in_b_texture_with_psnr_above_30_db() {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let camera = add_camera(&a, 640, 360);
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    a.write(StartVideo {
        call: a_call,
        camera,
    });
    let alice = a.user.clone();

    let mut stream = None;
    run_until(
        &mut [&mut a, &mut b],
        "B sees A's camera stream available",
        |c| {
            stream = camera_stream(c[1], b_call, &alice);
            stream.is_some_and(|s| {
                c[1].app
                    .world()
                    .get::<RemoteVideoStream>(s)
                    .is_some_and(|r| r.is_available)
            })
        },
    );
    let stream = stream.unwrap();
    assert!(a.app.world().get::<LocalVideoStream>(a_call).is_some());
    b.write(SubscribeVideo { stream });

    let mut picture = None;
    run_until(
        &mut [&mut a, &mut b],
        "a decoded, stamped picture in B's texture",
        |c| {
            picture = shown(c[1], stream);
            picture.as_ref().is_some_and(|p| p.3.counter > 10)
        },
    );
    let (rgba, w, h, stamp) = picture.unwrap();
    assert_eq!((w, h), (640, 360));
    let mut reference = vec![0; rgba.len()];
    pattern::draw(stamp, w, h).to_rgba(&mut reference);
    let quality = psnr(&rgba, &reference);
    assert!(
        quality > 30.0,
        "PSNR of frame {} is {quality:.1} dB",
        stamp.counter
    );
}
