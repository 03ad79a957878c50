//! The echo test service through the real stack: a client calls `8:echo123` on the embedded
//! service, hears the spoken prompt, then its own speech played back after five seconds, and
//! sees its own camera echoed live.

mod common;

use bevy_calling::prelude::*;
use common::*;

const RATE: usize = 48_000;

/// Samples `from`..`to` seconds into a recording.
fn window(samples: &[f32], from: f32, to: f32) -> &[f32] {
    &samples[(from * RATE as f32) as usize..(to * RATE as f32) as usize]
}

#[test]
fn the_echo_bot_plays_its_prompt_then_the_callers_speech_and_echoes_its_camera() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Speech);
    let camera = add_camera(&a, 320, 180, 30);
    run_until(&mut [&mut a], "signed in", |c| c[0].agent().is_connected());
    let agent = a.agent;
    let call = a.start_call(StartCall {
        agent,
        targets: vec![CommunicationIdentifier::EchoBot],
        video: Some(camera),
    });
    run_until(&mut [&mut a], "the bot answers", |c| {
        c[0].call(call).state == CallState::Connected
    });
    let heard_from = a.speaker.len();
    let bot = a
        .participant(call, &CommunicationIdentifier::EchoBot)
        .expect("the bot is a participant");
    assert_eq!(bot.state, ParticipantState::Connected);

    // The camera comes back live: the caller's own stamped pattern, frame after frame.
    let stream = available_camera_stream(&mut [&mut a], 0, call, &CommunicationIdentifier::EchoBot);
    a.trigger(SubscribeVideo { stream });
    let mut picture = None;
    run_until(&mut [&mut a], "the echoed camera in the texture", |c| {
        picture = shown(c[0], stream);
        picture.as_ref().is_some_and(|p| p.3.counter > 10)
    });
    let (rgba, w, h, stamp) = picture.expect("a picture");
    assert_eq!((w, h), (320, 180));
    let quality = psnr_against_source(&rgba, w, h, stamp);
    assert!(
        quality > 30.0,
        "echoed frame {} at {quality:.1} dB",
        stamp.counter
    );
    run_until(&mut [&mut a], "the echo to move on", |c| {
        shown(c[0], stream).is_some_and(|p| p.3.counter > stamp.counter + 10)
    });

    // Audio: the prompt, five seconds of listening, then what the caller said.
    let prompt = wav_samples("echo_prompt.wav");
    let prompt_s = prompt.len() as f32 / RATE as f32;
    let total = ((prompt_s + 10.5) * RATE as f32) as usize;
    run_until(&mut [&mut a], "prompt, recording and playback", |c| {
        c[0].speaker.len() >= heard_from + total
    });
    let received = a.speaker.samples_from(heard_from);
    let heard_prompt = window(&received, 0.2, prompt_s - 0.2);
    let corr = looped_envelope_correlation(heard_prompt, &prompt);
    assert!(
        corr > 0.8,
        "the prompt as heard correlates {corr} with the shipped one"
    );
    let recording = energy(window(&received, prompt_s + 0.5, prompt_s + 4.5));
    assert!(
        recording < 1e-5,
        "the bot is quiet while it records: {recording}"
    );
    let playback = window(&received, prompt_s + 5.5, prompt_s + 9.5);
    let e = energy(playback);
    let corr = looped_envelope_correlation(playback, &speech_samples());
    assert!(e > 0.002, "the caller's speech played back: energy {e}");
    assert!(
        corr > 0.8,
        "the playback correlates {corr} with the caller's speech"
    );
}
