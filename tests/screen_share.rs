//! Screen sharing from real sources: each test starts its own X server (Xvfb), opens windows of
//! known pixels on it with x11rb, shares the whole screen or one window through the device
//! manager's screen sources, and checks what the far side's texture shows.

mod common;

use bevy::prelude::*;
use bevy_calling::prelude::*;
use bevy_calling::{ShareableView, ViewSource};
use common::x11::{Rect, TestWindow, XServer, assert_colour, crop, known_pixel, rgba_of};
use common::*;

const SCREEN: (u32, u32) = (1280, 720);

/// A call between A and B, A's device manager listing the X server's screen sources.
struct Sharing {
    _service: call_service::CallService,
    a: Client,
    b: Client,
    a_call: Entity,
    b_call: Entity,
}

fn sharing(x: &XServer) -> Sharing {
    let service = service();
    let mut a = client(&service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let devices = a.app.world().resource::<Devices>().0.clone();
    devices
        .add_display(&x.display)
        .expect("the display is reachable");
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    Sharing {
        _service: service,
        a,
        b,
        a_call,
        b_call,
    }
}

impl Sharing {
    fn clients(&mut self) -> [&mut Client; 2] {
        [&mut self.a, &mut self.b]
    }

    /// Waits for A's screen source named `name` to be listed as a device entity.
    fn source(&mut self, name: &str) -> Device {
        let mut found = None;
        run_until(&mut self.clients(), "the screen source listed", |c| {
            let mut q = c[0].app.world_mut().query::<&Device>();
            found = q
                .iter(c[0].app.world())
                .find(|d| d.kind == DeviceKind::Screen && d.name == name)
                .cloned();
            found.is_some()
        });
        found.expect("listed")
    }

    /// Waits until A's device entities no longer list `id`.
    fn unlisted(&mut self, id: &DeviceId) {
        run_until(&mut self.clients(), "the source unlisted", |c| {
            let mut q = c[0].app.world_mut().query::<&Device>();
            !q.iter(c[0].app.world()).any(|d| &d.id == id)
        });
    }

    /// Shares `source` from A, subscribes B, and returns B's stream once it shows a picture
    /// of `size`.
    fn share(&mut self, source: DeviceId, size: (u32, u32)) -> Entity {
        let call = self.a_call;
        self.a.trigger(StartScreenShare { call, source });
        let (alice, b_call) = (self.a.user.clone(), self.b_call);
        let stream = available_stream(
            &mut self.clients(),
            1,
            b_call,
            &alice,
            MediaType::ScreenSharing,
        );
        self.b.trigger(SubscribeVideo { stream });
        run_until(&mut self.clients(), "the share's picture at B", |c| {
            view_pixels(c[1], stream).is_some_and(|(_, w, h)| (w, h) == size)
        });
        stream
    }

    /// PSNR of `rect` of B's picture of `stream` against `expected` (RGBA), after the encoder
    /// has had a second to refine the still picture.
    fn quality(&mut self, stream: Entity, rect: Rect, expected: &[u8]) -> f64 {
        run_for(&mut self.clients(), std::time::Duration::from_secs(1));
        let (rgba, width, _) = view_pixels(&self.b, stream).expect("a picture");
        let quality = psnr(&crop(&rgba, width, rect), expected);
        println!("PSNR of {rect:?}: {quality:.1} dB");
        quality
    }
}

#[test]
fn the_entire_screen_arrives_with_a_window_of_known_pixels() {
    let x = XServer::start(SCREEN.0, SCREEN.1);
    let (at, size) = ((200, 120), (480, 300));
    let _window = TestWindow::open(&x.display, "Known", "BcTest", at, size, known_pixel(7));
    let mut s = sharing(&x);
    let screen = s.source(&format!("Entire screen ({}x{})", SCREEN.0, SCREEN.1));
    let stream = s.share(screen.id, SCREEN);
    let rect = (200, 120, 480, 300);
    let expected = rgba_of(known_pixel(7), 480, 300);
    let quality = s.quality(stream, rect, &expected);
    assert!(
        quality > 30.0,
        "the window on the shared screen: {quality:.1} dB"
    );
    // The black screen around it arrives too.
    let black = s.quality(
        stream,
        (800, 500, 200, 100),
        &[0, 0, 0, 255].repeat(200 * 100),
    );
    assert!(black > 30.0, "the screen around the window: {black:.1} dB");
}

#[test]
fn a_window_chosen_by_title_arrives_without_the_window_covering_it() {
    let x = XServer::start(SCREEN.0, SCREEN.1);
    let (w, h) = (400, 300);
    let _chosen = TestWindow::open(
        &x.display,
        "Chosen",
        "BcTest",
        (100, 100),
        (w, h),
        known_pixel(3),
    );
    // Opened later, so on top: it covers the chosen window's lower right quarter.
    let _cover = TestWindow::open(
        &x.display,
        "Cover",
        "BcOther",
        (300, 250),
        (300, 200),
        |_, _| [250, 20, 20],
    );
    let mut s = sharing(&x);
    let chosen = s.source("Chosen");
    assert_eq!(chosen.application.as_deref(), Some("BcTest"));
    let stream = s.share(chosen.id, (w.into(), h.into()));
    let expected = rgba_of(known_pixel(3), w.into(), h.into());
    let quality = s.quality(stream, (0, 0, w.into(), h.into()), &expected);
    assert!(quality > 30.0, "the chosen window: {quality:.1} dB");
}

#[test]
fn closing_the_shared_window_ends_the_share_with_a_reason_at_both_sides() {
    let x = XServer::start(SCREEN.0, SCREEN.1);
    let window = TestWindow::open(
        &x.display,
        "Closing",
        "BcTest",
        (0, 0),
        (320, 240),
        known_pixel(1),
    );
    let mut s = sharing(&x);
    let source = s.source("Closing");
    let stream = s.share(source.id.clone(), (320, 240));
    window.close();
    let (a_call, reason) = (s.a_call, StreamStopReason::SourceClosed);
    let mut facts: Vec<VideoStopped> = Vec::new();
    run_until(&mut s.clients(), "the share ended at both sides", |c| {
        // Facts last two updates: collect them as they come.
        let world = c[0].app.world_mut();
        facts.extend(world.resource_mut::<Messages<VideoStopped>>().drain());
        let stopped = world.get::<LocalScreenShare>(a_call).is_none();
        let seen = c[1]
            .app
            .world()
            .get::<RemoteVideoStream>(stream)
            .is_some_and(|r| !r.is_available && r.stopped == Some(reason));
        stopped && seen
    });
    assert!(
        facts.iter().any(|f| f.call == a_call
            && f.media_type == MediaType::ScreenSharing
            && f.reason == reason),
        "A was told why its share ended: {facts:?}"
    );
    // The closed window leaves the list.
    s.unlisted(&source.id);
}

#[test]
fn windows_opening_and_closing_are_listed_with_title_and_application() {
    let x = XServer::start(SCREEN.0, SCREEN.1);
    let mut s = sharing(&x);
    let window = TestWindow::open(
        &x.display,
        "Editor — notes.txt",
        "BcEditor",
        (10, 10),
        (200, 100),
        known_pixel(2),
    );
    let listed = s.source("Editor — notes.txt");
    assert_eq!(listed.application.as_deref(), Some("BcEditor"));
    window.close();
    s.unlisted(&listed.id);
}

#[test]
fn a_camera_and_a_screen_share_go_out_at_once() {
    let x = XServer::start(SCREEN.0, SCREEN.1);
    let _window = TestWindow::open(
        &x.display,
        "Slides",
        "BcTest",
        (40, 40),
        (320, 240),
        known_pixel(5),
    );
    let mut s = sharing(&x);
    let camera = add_camera(&s.a, 320, 180, 30);
    let call = s.a_call;
    s.a.trigger(StartVideo { call, camera });
    let slides = s.source("Slides");
    let share = s.share(slides.id, (320, 240));
    let (alice, b_call) = (s.a.user.clone(), s.b_call);
    let video = available_camera_stream(&mut s.clients(), 1, b_call, &alice);
    s.b.trigger(SubscribeVideo { stream: video });
    run_until(&mut s.clients(), "the camera's stamped picture at B", |c| {
        shown(c[1], video).is_some()
    });
    let expected = rgba_of(known_pixel(5), 320, 240);
    let quality = s.quality(share, (0, 0, 320, 240), &expected);
    assert!(
        quality > 30.0,
        "the shared window beside the camera: {quality:.1} dB"
    );
    let (rgba, w, h, stamp) = shown(&s.b, video).expect("the camera still shows");
    let camera = psnr_against_source(&rgba, w, h, stamp);
    assert!(camera > 30.0, "the camera beside the share: {camera:.1} dB");
}

/// The rendered scene's background and its blocks: colour (sRGB) and rectangle in pixels.
const BACKGROUND: [u8; 3] = [30, 40, 90];
const BLOCKS: [([u8; 3], Rect); 3] = [
    ([220, 40, 40], (80, 60, 160, 120)),
    ([40, 200, 60], (360, 40, 200, 100)),
    ([240, 220, 40], (200, 220, 240, 100)),
];

/// A headless app that renders (no window: Bevy's renderer on the GPU, or lavapipe without
/// one), with the calling plugin, ready to be driven by hand.
fn rendering_app() -> App {
    let mut app = App::new();
    app.add_plugins((
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: bevy::window::ExitCondition::DontExit,
                ..default()
            })
            .disable::<bevy::winit::WinitPlugin>(),
        CallingPlugin::default(),
    ));
    // The renderer starts asynchronously: wait for it as `App::run` would.
    while app.plugins_state() == bevy::app::PluginsState::Adding {
        bevy::tasks::tick_global_task_pools_on_main_thread();
    }
    app
}

/// A 2D camera rendering the blocks on the background into a new `width`x`height` image.
fn render_scene(world: &mut World, width: u32, height: u32) -> Handle<Image> {
    use bevy::render::render_resource::{TextureFormat, TextureUsages};
    let mut target = Image::new_target_texture(width, height, TextureFormat::Rgba8UnormSrgb, None);
    target.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    let image = world.resource_mut::<Assets<Image>>().add(target);
    let [r, g, b] = BACKGROUND;
    world.spawn((
        Camera2d,
        Camera {
            clear_color: ClearColorConfig::Custom(Color::srgb_u8(r, g, b)),
            ..default()
        },
        bevy::camera::RenderTarget::from(image.clone()),
        bevy::core_pipeline::tonemapping::Tonemapping::None,
        bevy::render::view::Msaa::Off,
    ));
    for ([r, g, b], (x, y, w, h)) in BLOCKS {
        // The camera looks at the origin from the image's centre, y up.
        let centre = Vec2::new(
            (x + w / 2) as f32 - width as f32 / 2.0,
            height as f32 / 2.0 - (y + h / 2) as f32,
        );
        world.spawn((
            Sprite::from_color(Color::srgb_u8(r, g, b), Vec2::new(w as f32, h as f32)),
            Transform::from_translation(centre.extend(0.0)),
        ));
    }
    image
}

#[test]
fn what_a_bevy_camera_renders_arrives() {
    let service = service();
    let mut a = client_in(rendering_app(), &service, "alice", Mic::None);
    let mut b = client(&service, "bob", Mic::None);
    let (width, height) = (640, 360);
    let image = render_scene(a.app.world_mut(), width, height);
    let view = a
        .app
        .world_mut()
        .spawn(ShareableView {
            name: "Game view".into(),
            image,
        })
        .id();
    let (a_call, b_call) = connected_call(&mut a, &mut b);
    let source = a
        .app
        .world()
        .get::<ViewSource>(view)
        .expect("listed")
        .id
        .clone();
    let listed = a
        .app
        .world_mut()
        .query::<&Device>()
        .iter(a.app.world())
        .any(|d| d.id == source && d.kind == DeviceKind::Screen && d.name == "Game view");
    assert!(listed, "the view is a screen source");
    a.trigger(StartScreenShare {
        call: a_call,
        source,
    });
    let alice = a.user.clone();
    let stream = available_stream(
        &mut [&mut a, &mut b],
        1,
        b_call,
        &alice,
        MediaType::ScreenSharing,
    );
    b.trigger(SubscribeVideo { stream });
    run_until(&mut [&mut a, &mut b], "the rendered view at B", |c| {
        view_pixels(c[1], stream).is_some_and(|(_, w, h)| (w, h) == (width, height))
    });
    run_for(&mut [&mut a, &mut b], std::time::Duration::from_secs(1));
    let (rgba, w, _) = view_pixels(&b, stream).expect("a picture");
    let inside = |(x, y, w, h): Rect| (x + 12, y + 12, w - 24, h - 24);
    for (colour, rect) in BLOCKS.into_iter().chain([(BACKGROUND, (8, 200, 150, 150))]) {
        assert_colour(&rgba, w, inside(rect), colour);
    }
}

#[test]
fn a_screen_larger_than_1080p_is_scaled_down_to_fit() {
    let x = XServer::start(2560, 1440);
    let red = [200, 40, 40];
    let _window = TestWindow::open(
        &x.display,
        "Big",
        "BcTest",
        (640, 360),
        (1280, 720),
        |_, _| red,
    );
    let mut s = sharing(&x);
    let screen = s.source("Entire screen (2560x1440)");
    let stream = s.share(screen.id, (1920, 1080));
    run_for(&mut s.clients(), std::time::Duration::from_secs(1));
    let (rgba, w, _) = view_pixels(&s.b, stream).expect("a picture");
    // Scaled by 3/4: the window now covers (480, 270) to (1440, 810).
    assert_colour(&rgba, w, (500, 290, 920, 500), red);
    assert_colour(&rgba, w, (20, 20, 400, 200), [0, 0, 0]);
}

#[test]
fn choosing_another_window_during_a_share_switches_what_arrives() {
    let x = XServer::start(SCREEN.0, SCREEN.1);
    let (first_size, second_size) = ((320, 240), (400, 300));
    let _first = TestWindow::open(
        &x.display,
        "First",
        "BcTest",
        (0, 0),
        first_size,
        known_pixel(4),
    );
    let _second = TestWindow::open(
        &x.display,
        "Second",
        "BcTest",
        (500, 300),
        second_size,
        known_pixel(8),
    );
    let mut s = sharing(&x);
    let first = s.source("First");
    let second = s.source("Second");
    let stream = s.share(first.id, (320, 240));
    let agent = s.a.agent;
    s.a.trigger(SelectDevice {
        agent,
        kind: DeviceKind::Screen,
        device: Some(second.id.clone()),
    });
    run_until(&mut s.clients(), "the second window at B", |c| {
        view_pixels(c[1], stream).is_some_and(|(_, w, h)| (w, h) == (400, 300))
    });
    let shared =
        s.a.app
            .world()
            .get::<LocalScreenShare>(s.a_call)
            .map(|l| l.source.clone());
    assert_eq!(shared, Some(second.id), "A's share names the new source");
    let expected = rgba_of(known_pixel(8), 400, 300);
    let quality = s.quality(stream, (0, 0, 400, 300), &expected);
    assert!(quality > 30.0, "the second window: {quality:.1} dB");
}
