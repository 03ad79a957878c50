//! The device manager's tests: listing, typed open failures, and each synthetic device.

use super::*;

struct Silence;
impl PlayoutSource for Silence {
    fn fill(&self, out: &mut [f32]) {
        out.fill(0.0);
    }
}

#[test]
fn synthetic_devices_are_listed_with_their_kind() {
    let devices = DeviceManager::new();
    let mic = devices.add_tone_microphone("tone", 440.0, 0.5);
    let (speaker, _) = devices.add_recording_speaker("recorder", None);
    let mics = devices.list(DeviceKind::Microphone);
    assert!(
        mics.iter()
            .any(|d| d.id == mic && d.is_synthetic && d.name == "tone")
    );
    assert!(!mics.iter().any(|d| d.id == speaker));
    assert!(
        devices
            .list(DeviceKind::Speaker)
            .iter()
            .any(|d| d.id == speaker)
    );
}

#[test]
fn failures_to_open_are_typed_errors() {
    let devices = DeviceManager::new();
    let missing = devices.add_wav_microphone("missing", "/nonexistent/speech.wav");
    assert!(matches!(
        devices.open_microphone(&missing),
        Err(DeviceError::Open { .. })
    ));
    let unknown = DeviceId("synthetic:mic:99".into());
    assert_eq!(
        devices.open_microphone(&unknown).err(),
        Some(DeviceError::NotFound(unknown))
    );
    let gone = DeviceId("cpal:no-such-card".into());
    assert!(matches!(
        devices.open_speaker(&gone, Arc::new(Silence)),
        Err(DeviceError::NotFound(_))
    ));
    let mic = devices.add_tone_microphone("tone", 440.0, 0.5);
    assert!(matches!(
        devices.open_speaker(&mic, Arc::new(Silence)),
        Err(DeviceError::WrongKind { .. })
    ));
}

#[test]
fn tone_microphone_delivers_paced_frames_and_speaker_records() {
    let devices = DeviceManager::new();
    let mic = devices.add_tone_microphone("tone", 1000.0, 0.5);
    let mut open = devices.open_microphone(&mic).unwrap();
    let start = Instant::now();
    let mut frames = Vec::new();
    while frames.len() < 10 {
        if let Some(f) = open.frames.blocking_recv() {
            frames.push(f);
        }
    }
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(180),
        "paced in real time"
    );
    assert!(frames.iter().all(|f| f.samples.len() == FRAME_SAMPLES));
    let rms = (frames[5].samples.iter().map(|s| s * s).sum::<f32>() / FRAME_SAMPLES as f32).sqrt();
    assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.01, "tone RMS {rms}");

    let (speaker, recording) = devices.add_recording_speaker("recorder", None);
    let open = devices.open_speaker(&speaker, Arc::new(Silence)).unwrap();
    // Wait for the speaker thread's pulls themselves: a fixed sleep loses to a busy machine.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while recording.len() < 4 * 480 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(open);
    assert!(recording.len() >= 4 * 480, "recorded {}", recording.len());
    assert!(recording.started_at().is_some());
}

#[test]
fn synthetic_cameras_are_listed_and_a_y4m_file_plays() {
    let dir = std::env::temp_dir().join(format!("bevy_calling_y4m_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("two_frames.y4m");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut encoder = y4m::encode(64, 36, y4m::Ratio::new(30, 1))
            .with_colorspace(y4m::Colorspace::C420jpeg)
            .write_header(file)
            .unwrap();
        for luma in [40u8, 200] {
            let (y, uv) = (vec![luma; 64 * 36], vec![128u8; 32 * 18]);
            encoder
                .write_frame(&y4m::Frame::new([&y, &uv, &uv], None))
                .unwrap();
        }
    }
    let devices = DeviceManager::new();
    let file_camera = devices.add_y4m_camera("file", &path);
    let pattern = devices.add_pattern_camera("pattern", 320, 180, 30);
    let cameras = devices.list(DeviceKind::Camera);
    for id in [&file_camera, &pattern] {
        let info = cameras.iter().find(|d| &d.id == id).expect("listed");
        assert_eq!(info.facing, Some(CameraFacing::Virtual));
    }
    let open = devices.open_camera(&file_camera).unwrap();
    let lumas: Vec<u8> = (0..3)
        .map(|_| open.frames.recv().unwrap())
        .map(|f| {
            assert_eq!((f.width, f.height), (64, 36));
            f.y[0]
        })
        .collect();
    // The first two fit the camera's queue; a slow reader may see the camera drop later ones,
    // so the third is whichever frame of the file came next when there was room. A third frame
    // from a two-frame file is the loop.
    assert_eq!(lumas[..2], [40, 200], "plays the file in order");
    assert!([40, 200].contains(&lumas[2]), "plays the file in a loop");
    let missing = devices.add_y4m_camera("missing", dir.join("none.y4m"));
    assert!(matches!(
        devices.open_camera(&missing),
        Err(DeviceError::Open { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wav_file_that_breaks_mid_way_opens_and_its_stream_ends() {
    let path = std::env::temp_dir().join(format!("bevy_calling_cut_{}.wav", std::process::id()));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for _ in 0..48_000 {
        writer.write_sample(1000i16).unwrap();
    }
    writer.finalize().unwrap();
    // The header still promises a second of samples; half of them are gone.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let devices = DeviceManager::new();
    let cut = devices.add_wav_microphone("cut", &path);
    let mut open = devices.open_microphone(&cut).expect("the header parses");
    assert!(open.frames.blocking_recv().is_none(), "the stream ended");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn async_opens_give_the_same_devices_and_errors() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let devices = DeviceManager::new();
    let mic = devices.add_tone_microphone("tone", 440.0, 0.5);
    let camera = devices.add_pattern_camera("pattern", 64, 36, 30);
    let (speaker, recording) = devices.add_recording_speaker("recorder", None);
    let missing = devices.add_y4m_camera("missing", "/nonexistent/clip.y4m");
    runtime.block_on(async {
        // 10 ms frames, as the low-latency voice mode opens them.
        let mut open = devices
            .open_microphone_async(&mic, FRAME_SAMPLES / 2)
            .await
            .unwrap();
        assert_eq!(
            open.frames.recv().await.unwrap().samples.len(),
            FRAME_SAMPLES / 2
        );
        let open = devices.open_camera_async(&camera).await.unwrap();
        assert!(open.frames.recv().is_ok());
        let open = devices
            .open_speaker_async(&speaker, Arc::new(Silence))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(open);
        assert!(!recording.is_empty());
        assert!(matches!(
            devices.open_camera_async(&missing).await,
            Err(DeviceError::Open { .. })
        ));
    });
}

#[test]
fn synthetic_devices_come_and_go_and_the_app_may_choose_the_default() {
    let devices = DeviceManager::synthetic_only();
    assert!(devices.list(DeviceKind::Microphone).is_empty());
    let first = devices.add_tone_microphone("first", 440.0, 0.5);
    let second = devices.add_tone_microphone("second", 880.0, 0.5);
    let generation = devices.generation();
    let default = |d: &DeviceManager| d.default_device(DeviceKind::Microphone).map(|i| i.id);
    assert_eq!(
        default(&devices),
        Some(first.clone()),
        "the first one by default"
    );
    devices.set_default(&second);
    assert_eq!(default(&devices), Some(second.clone()));
    assert!(devices.generation() > generation);
    assert!(devices.remove(&second));
    assert!(!devices.remove(&second), "removed once");
    assert_eq!(
        default(&devices),
        Some(first.clone()),
        "the preference went with it"
    );
    assert!(matches!(
        devices.open_microphone(&second),
        Err(DeviceError::NotFound(_))
    ));
    // Ids are never reused.
    let third = devices.add_tone_microphone("third", 660.0, 0.5);
    assert!(third != second && third != first);
    // A synthetic-only manager opens no hardware.
    assert!(matches!(
        devices.open_microphone(&DeviceId("cpal:alsa:default".into())),
        Err(DeviceError::NotFound(_))
    ));
    assert!(devices.is_synthetic(&first));
}

#[test]
fn an_unreachable_display_is_refused_and_its_sources_are_not_found() {
    let devices = DeviceManager::synthetic_only();
    let refused = devices.add_display("/nonexistent/socket:7");
    assert!(
        matches!(&refused, Err(DeviceError::Open { .. })),
        "{refused:?}"
    );
    assert!(devices.list(DeviceKind::Screen).is_empty());
    let window = DeviceId("x11:window:0x400001@/nonexistent/socket:7".into());
    assert!(matches!(
        devices.open_camera(&window),
        Err(DeviceError::NotFound(_))
    ));
}
