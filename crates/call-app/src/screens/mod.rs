//! The app's screens in egui: sign-in, start (call a user, join a group, dial pad, echo test),
//! the incoming-call prompt, the in-call bar, and the roster, device and statistics panels,
//! built from the plugin's reusable panels (`bevy_calling::ui`). Names, initials and muted
//! badges are drawn over the 3D tiles.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_calling::prelude::*;
use bevy_calling::ui::{self, CallView, egui};
use bevy_calling::{Devices, LevelMeter, Role};
use bevy_egui::{EguiContexts, EguiTextureHandle};
use call_service::token::TokenIssuer;

use crate::bots::{self, Goal};
use crate::scene::{Focus, Tile};
use crate::session::{self, Connection};
use crate::visible::OnScreen;

mod overlays;

use overlays::{incoming_calls, overlays};

/// What the screens remember between frames.
#[derive(Resource, Debug)]
pub struct Screens {
    /// The display name to sign in with.
    pub name: String,
    /// The service to sign in to: empty for the one this app started or was given.
    pub server: String,
    /// That service's token secret.
    pub secret: String,
    /// Whether the side panel shows the devices.
    pub show_devices: bool,
    /// Whether it shows the people in the call.
    pub show_roster: bool,
    /// Whether it shows the call's statistics.
    pub show_stats: bool,
    /// The user id typed in "call a user".
    pub call_target: String,
    /// The group id typed in "join a group".
    pub group_id: String,
    /// Digits typed on the dial pad.
    pub dial: String,
    /// How many bots "Add bots" adds.
    pub bot_count: usize,
    /// Bots added so far (their numbers continue from here).
    pub bots_added: usize,
    /// The last thing worth telling: an ended call's reason, a refused request, an error.
    pub status: String,
    /// Where the last frame drew its panels.
    pub drawn: Drawn,
}

/// Where panels were drawn, in physical pixels: `[left, top, right, bottom]`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Drawn {
    /// The in-call bar.
    pub controls: Option<[f32; 4]>,
    /// The statistics section.
    pub stats: Option<[f32; 4]>,
    /// What the panels leave free: the 3D stage.
    pub stage: Option<[f32; 4]>,
    /// The incoming-call prompt.
    pub incoming: Option<[f32; 4]>,
}

/// A rectangle in egui points as physical pixels.
fn pixels(rect: egui::Rect, scale: f32) -> [f32; 4] {
    [rect.min.x, rect.min.y, rect.max.x, rect.max.y].map(|v| v * scale)
}

impl Screens {
    /// Screens for `name`.
    pub fn new(name: String) -> Self {
        Self {
            name,
            server: String::new(),
            secret: String::new(),
            show_devices: false,
            show_roster: true,
            show_stats: false,
            call_target: String::new(),
            group_id: CallId::new_group().0,
            dial: String::new(),
            bot_count: 4,
            bots_added: 0,
            status: String::new(),
            drawn: Drawn::default(),
        }
    }
}

/// The app's screens.
pub struct ScreensPlugin;

impl Plugin for ScreensPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, remember_what_happened)
            .add_systems(bevy_egui::EguiPrimaryContextPass, draw);
    }
}

/// A call as the screens read it: the call, its people, its statistics, and whether this side
/// sends camera video and shares its screen in it.
type CallRow = (
    &'static Call,
    Option<&'static Participants>,
    Option<&'static CallStats>,
    Has<LocalVideoStream>,
    Has<LocalScreenShare>,
);

/// The entities the screens read.
#[derive(SystemParam)]
pub struct Seen<'w, 's> {
    agents: Query<'w, 's, (&'static CallAgent, Option<&'static LevelMeter>)>,
    calls: Query<'w, 's, CallRow>,
    local_video: Query<'w, 's, &'static LocalVideoStream>,
    participants: Query<'w, 's, &'static RemoteParticipant>,
    devices: Query<'w, 's, &'static Device>,
    tiles: Query<'w, 's, (&'static Tile, &'static OnScreen)>,
    incoming: Query<'w, 's, (Entity, &'static Call, &'static CallOf)>,
    callers: Query<'w, 's, &'static RemoteParticipant>,
}

/// Services the screens act on.
#[derive(SystemParam)]
pub struct Services<'w> {
    /// The call service.
    pub connection: ResMut<'w, Connection>,
    /// The device manager.
    pub devices: Res<'w, Devices>,
    /// The person and their call.
    pub focus: ResMut<'w, Focus>,
    /// The screens' state.
    pub screens: ResMut<'w, Screens>,
}

/// Ended calls and refused requests become the status line.
fn remember_what_happened(
    mut screens: ResMut<Screens>,
    focus: Res<Focus>,
    mut changes: MessageReader<CallStateChanged>,
    mut failures: MessageReader<RequestFailed>,
    calls: Query<(&Call, &CallOf)>,
    agents: Query<&CallAgent>,
) {
    for change in changes.read() {
        if let Ok((call, of)) = calls.get(change.call)
            && Some(of.0) == focus.agent
            && call.state == CallState::Disconnected
        {
            screens.status = format!("Call {}", ui::describe_call(call));
        }
    }
    for failure in failures.read() {
        if Some(failure.agent) == focus.agent {
            screens.status = format!("Request refused: {}", failure.error);
        }
    }
    if let Some(AgentConnection::Disconnected(error)) = focus
        .agent
        .and_then(|a| agents.get(a).ok())
        .map(|a| &a.connection)
    {
        screens.status = format!("Signed out: {error}");
    }
}

fn draw(
    mut commands: Commands,
    mut contexts: EguiContexts,
    world: Seen,
    mut services: Services,
) -> Result {
    let preview = services
        .focus
        .call
        .and_then(|c| world.local_video.get(c).ok())
        .map(|v| contexts.add_image(EguiTextureHandle::Weak(v.preview.id())));
    let ctx = contexts.ctx_mut()?.clone();
    let mut root = egui::Ui::new(
        ctx.clone(),
        "viewport".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    top_bar(&mut root, &world, &mut services);
    let Some(agent) = services.focus.agent else {
        sign_in(&ctx, &mut commands, &mut services);
        return Ok(());
    };
    let Ok((state, meter)) = world.agents.get(agent) else {
        return Ok(());
    };
    if let AgentConnection::Disconnected(_) = state.connection {
        // Signed out (the service went away, the token expired): offer to sign in again.
        sign_in(&ctx, &mut commands, &mut services);
    }
    let call = services
        .focus
        .call
        .and_then(|c| Some((c, world.calls.get(c).ok()?)));
    egui::Panel::left("start")
        .default_size(220.0)
        .show(&mut root, |ui| {
            start(
                ui,
                &mut commands,
                agent,
                state,
                call.map(|c| c.1.0),
                &mut services,
            )
        });
    let scale = ctx.pixels_per_point();
    services.screens.drawn = Drawn::default();
    let screens = &services.screens;
    if screens.show_devices || screens.show_roster || screens.show_stats {
        let organizer = is_organizer(&services.connection);
        let (devices, roster, statistics) = (
            screens.show_devices,
            screens.show_roster,
            screens.show_stats,
        );
        let side = egui::Panel::right("side")
            .default_size(400.0)
            .show(&mut root, |ui| {
                if devices {
                    ui.heading("Devices");
                    ui::device_picker(ui, &mut commands, agent, state, world.devices.iter(), meter);
                    ui.separator();
                }
                if roster && let Some((entity, (_, participants, ..))) = call {
                    ui.heading("People");
                    let people = participants
                        .map(|p| p.entities())
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|&e| world.participants.get(e).ok());
                    ui::roster(ui, &mut commands, entity, people, organizer);
                    ui.separator();
                }
                let stats = call.and_then(|(_, (_, _, stats, ..))| stats);
                (statistics && call.is_some()).then(|| {
                    ui.scope(|ui| {
                        ui.heading("Statistics");
                        match stats {
                            Some(stats) => ui::stats_panel(ui, stats, |id| name_of(&world, id)),
                            None => {
                                ui.label(
                                    "The first figures come a second after the call connects.",
                                );
                            }
                        }
                    })
                    .response
                    .rect
                })
            });
        services.screens.drawn.stats = side.inner.map(|rect| pixels(rect, scale));
    }
    if let Some((entity, (c, _, _, video_on, sharing))) = call {
        let bar = egui::Panel::bottom("in-call").show(&mut root, |ui| {
            ui.label(egui::RichText::new(format!("Call {}", ui::describe_call(c))).strong());
            let cameras: Vec<DeviceId> = world
                .devices
                .iter()
                .filter(|d| d.kind == DeviceKind::Camera)
                .map(|d| d.id.clone())
                .collect();
            let screens: Vec<Device> = world
                .devices
                .iter()
                .filter(|d| d.kind == DeviceKind::Screen)
                .cloned()
                .collect();
            ui::call_controls(
                ui,
                &mut commands,
                CallView {
                    entity,
                    call: c,
                    agent,
                    camera: state.camera(),
                    video_on,
                    sharing,
                    cameras: &cameras,
                    screen_sources: &screens,
                    is_organizer: is_organizer(&services.connection),
                },
            );
        });
        services.screens.drawn.controls = Some(pixels(bar.response.rect, scale));
    }
    services.screens.drawn.stage = Some(pixels(root.available_rect_before_wrap(), scale));
    services.screens.drawn.incoming =
        incoming_calls(&ctx, &mut commands, agent, state, &world).map(|rect| pixels(rect, scale));
    overlays(&ctx, &world);
    if let Some(texture) = preview {
        egui::Window::new("You")
            .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -60.0])
            .resizable(false)
            .title_bar(false)
            .show(&ctx, |ui| {
                ui.image(egui::load::SizedTexture::new(texture, [192.0, 108.0]));
            });
    }
    Ok(())
}

/// Organizers may remove people and end calls for everyone. This app signs its person in as
/// an organizer whenever it signs the tokens itself (its embedded service, or a shared one's
/// secret); with a token given to it, the token's role is the service's to read. The service
/// has the final word either way.
fn is_organizer(connection: &Connection) -> bool {
    matches!(
        connection.0,
        session::Service::Embedded(_)
            | session::Service::Shared {
                issuer: Some(_),
                ..
            }
    )
}

fn name_of(world: &Seen, id: &CommunicationIdentifier) -> String {
    world
        .participants
        .iter()
        .find(|p| &p.identifier == id && !p.display_name.is_empty())
        .map_or_else(|| id.to_string(), |p| p.display_name.clone())
}

fn top_bar(root: &mut egui::Ui, world: &Seen, services: &mut Services) {
    egui::Panel::top("top").show(root, |ui| {
        ui.horizontal(|ui| {
            ui.heading("bevy_calling");
            ui.separator();
            let agent = services.focus.agent.and_then(|a| world.agents.get(a).ok());
            ui.label(match agent {
                Some((a, _)) => format!(
                    "{} · {} · {}",
                    a.display_name,
                    connection_words(&a.connection),
                    services.connection.describe()
                ),
                None => format!("Not signed in · {}", services.connection.describe()),
            });
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let s = &mut services.screens;
                ui.toggle_value(&mut s.show_stats, "Statistics");
                ui.toggle_value(&mut s.show_roster, "People");
                ui.toggle_value(&mut s.show_devices, "Devices");
            });
        });
        if !services.screens.status.is_empty() {
            ui.label(&services.screens.status);
        }
    });
}

fn connection_words(connection: &AgentConnection) -> String {
    match connection {
        AgentConnection::Connecting => "signing in".into(),
        AgentConnection::Connected { .. } => "signed in".into(),
        AgentConnection::Disconnected(error) => format!("signed out: {error}"),
    }
}

fn sign_in(ctx: &egui::Context, commands: &mut Commands, services: &mut Services) {
    egui::Window::new("Sign in")
        .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
        .collapsible(false)
        .resizable(false)
        .show(ctx, |ui| {
            let screens = &mut services.screens;
            ui.label("Display name");
            ui.text_edit_singleline(&mut screens.name);
            ui.label(format!("Now: {}", services.connection.describe()));
            ui.label("Another server (ws://host:8470/ws) and its secret");
            ui.add(egui::TextEdit::singleline(&mut screens.server).hint_text("this one"));
            ui.add(egui::TextEdit::singleline(&mut screens.secret).password(true));
            if ui.button("Sign in").clicked() {
                if let Some(previous) = services.focus.agent.take() {
                    commands.entity(previous).despawn();
                }
                let server = services.screens.server.trim().to_owned();
                if !server.is_empty() {
                    let secret = services.screens.secret.clone();
                    services.connection.0 = session::Service::Shared {
                        url: server,
                        issuer: Some(TokenIssuer::new(secret.as_bytes())),
                        token: None,
                    };
                }
                let name = services.screens.name.clone();
                match session::sign_in(
                    commands,
                    &services.connection,
                    &services.devices.0,
                    &name,
                    Role::Organizer,
                    true,
                ) {
                    Ok((agent, _)) => services.focus.agent = Some(agent),
                    Err(e) => services.screens.status = e,
                }
            }
        });
}

fn start(
    ui: &mut egui::Ui,
    commands: &mut Commands,
    agent: Entity,
    state: &CallAgent,
    call: Option<&Call>,
    services: &mut Services,
) {
    let ready = state.is_connected() && call.is_none();
    let camera = state.camera().cloned();
    ui.heading("Start");
    if ui
        .add_enabled(ready, egui::Button::new("Call the echo test"))
        .on_hover_text("Test your microphone, speaker and camera")
        .clicked()
    {
        commands.start_call(StartCall {
            agent,
            targets: vec![CommunicationIdentifier::EchoBot],
            video: camera.clone(),
        });
    }
    ui.separator();
    ui.label("Call a user");
    ui.text_edit_singleline(&mut services.screens.call_target);
    let target = ui::parse_target(&services.screens.call_target);
    ui.horizontal(|ui| {
        for (label, video) in [("Call", None), ("Video call", camera.clone())] {
            let enabled = ready && target.is_some() && (label == "Call" || video.is_some());
            if ui.add_enabled(enabled, egui::Button::new(label)).clicked()
                && let Some(target) = target.clone()
            {
                commands.start_call(StartCall {
                    agent,
                    targets: vec![target],
                    video,
                });
            }
        }
    });
    ui.separator();
    ui.label("Join a group call");
    ui.horizontal(|ui| {
        ui.add(egui::TextEdit::singleline(&mut services.screens.group_id).desired_width(170.0));
        if ui.button("New").on_hover_text("A fresh group id").clicked() {
            services.screens.group_id = CallId::new_group().0;
        }
    });
    let group = CallId(services.screens.group_id.trim().to_owned());
    if ui
        .add_enabled(ready && group.is_guid(), egui::Button::new("Join"))
        .on_disabled_hover_text("a group id is a GUID")
        .clicked()
    {
        commands.join_group_call(JoinGroupCall {
            agent,
            group_id: group.clone(),
            video: camera,
        });
    }
    ui.horizontal(|ui| {
        ui.add(egui::DragValue::new(&mut services.screens.bot_count).range(1..=16));
        let in_group = call.is_some_and(|c| c.id.is_guid() && c.state.is_live());
        if ui
            .add_enabled(in_group, egui::Button::new("Add bots"))
            .on_disabled_hover_text("join a group call first")
            .on_hover_text("Bots with a test-pattern camera and a voice join this call")
            .clicked()
            && let Some(c) = call
        {
            add_bots(commands, services, c.id.clone(), services.screens.bot_count);
        }
    });
    ui.separator();
    ui.label("Dial a phone number");
    ui.text_edit_singleline(&mut services.screens.dial);
    egui::Grid::new("dial-pad").show(ui, |ui| {
        for row in [
            ["1", "2", "3"],
            ["4", "5", "6"],
            ["7", "8", "9"],
            ["+", "0", "Del"],
        ] {
            for key in row {
                if ui.button(key).clicked() {
                    match key {
                        "Del" => drop(services.screens.dial.pop()),
                        key => services.screens.dial.push_str(key),
                    }
                }
            }
            ui.end_row();
        }
    });
    let digits: String = services
        .screens
        .dial
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let number = format!("4:+{digits}")
        .parse::<CommunicationIdentifier>()
        .ok();
    if ui
        .add_enabled(ready && number.is_some(), egui::Button::new("Dial"))
        .on_disabled_hover_text("an E.164 number: 7 to 15 digits")
        .on_hover_text("Through the service's SIP gateway (call-service serve --sip-trunk)")
        .clicked()
        && let Some(number) = number
    {
        commands.start_call(StartCall {
            agent,
            targets: vec![number],
            video: None,
        });
    }
}

/// Adds `count` bots to the group call `group`.
pub fn add_bots(commands: &mut Commands, services: &mut Services, group: CallId, count: usize) {
    for _ in 0..count {
        services.screens.bots_added += 1;
        let name = format!("Bot {}", services.screens.bots_added);
        if let Err(e) = bots::spawn_bot(
            commands,
            &services.connection,
            &services.devices.0,
            &name,
            30,
            Goal::Join(group.clone()),
        ) {
            services.screens.status = e;
            return;
        }
    }
}
