//! The scripted mode (`--script <file>`): the app performs a scenario, one step per line, and
//! saves screenshots with a JSON sidecar saying where each tile and panel is on screen, so a
//! test can check the pixels. Blank lines and `#` comments are skipped. Steps:
//!
//! - `wait <seconds>`: let the app run;
//! - `wait-for signed-in | connected | ended | incoming | share | video <n>`: until the person is
//!   signed in, their call is connected or has ended, a call rings for them, a screen share on
//!   stage shows a picture, or `n` tiles show a picture (at most [`STEP_TIMEOUT`]);
//! - `call-echo`, `call <user>`, `join-group [id]`, `hang-up`: what the buttons do (a group id
//!   given here replaces the one on the start screen);
//! - `accept`, `decline`: the incoming-call prompt's buttons ("Accept with video" when the
//!   person has a camera);
//! - `add-bots <n>`: `n` bots join the person's group call;
//! - `bot-shares-screen`: a bot in a connected call shares a 1280x720 test pattern as its
//!   screen (at 5 frames a second);
//! - `no-camera`: the person chooses no camera (calls from then on send no video);
//! - `show <stats | devices | roster>`, `hide <...>`: panels;
//! - `screenshot <file.png>`: the window as a PNG, and `<file.png>.json` beside it;
//! - `measure <seconds> <file.json>`: frames drawn per second, the times between them (mean,
//!   p50, p95) and the process's CPU use over that long, with how many tiles show video, as
//!   JSON (the benchmarks);
//! - `latency <samples> <file.json>`: glass-to-glass latency to the presented frame, read from
//!   captures of the window until that many tile pictures were read (`probe.rs`);
//! - `quit`: exit (also after the last step).
//!
//! A step that times out ends the app with exit code 1, saying which.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::diagnostic::FrameCount;
use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy::window::RequestRedraw;
use bevy_calling::prelude::*;

use crate::bots::Bot;
use crate::probe::{self, Probe};
use crate::scene::{Frozen, SharePanel, Tile};
use crate::screens::{self, Screens};
use crate::visible::OnScreen;

/// The longest a `wait-for` step waits.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// One step of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Run for this long.
    Wait(Duration),
    /// Run until this holds.
    WaitFor(Condition),
    /// Call the echo test.
    CallEcho,
    /// Call a user.
    Call(CommunicationIdentifier),
    /// Join this group id, or the one on the start screen.
    JoinGroup(Option<CallId>),
    /// Hang up the person's call.
    HangUp,
    /// Accept (with video when the person has a camera) or decline the call ringing for them.
    Answer(bool),
    /// Add bots to the person's group call.
    AddBots(usize),
    /// A bot in a connected call shares a 1280x720 pattern "screen" at 5 frames a second.
    BotSharesScreen,
    /// Choose no camera.
    NoCamera,
    /// Show or hide a panel.
    Panel(Panel, bool),
    /// Save a screenshot and its sidecar.
    Screenshot(PathBuf),
    /// Measure frame times and CPU for this long, into this file.
    Measure(Duration, PathBuf),
    /// Measure glass-to-glass latency until this many samples, into this file.
    Latency(usize, PathBuf),
    /// Exit.
    Quit,
}

/// What `wait-for` waits for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Condition {
    /// The person's agent is signed in.
    SignedIn,
    /// Their call is connected.
    Connected,
    /// They have no live call.
    Ended,
    /// This many tiles show video.
    Video(usize),
    /// A call for the person is ringing.
    Incoming,
    /// A screen share is on stage and a picture of it arrived.
    Share,
}

/// A panel `show` and `hide` act on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Panel {
    /// Statistics.
    Stats,
    /// Devices.
    Devices,
    /// People.
    Roster,
}

/// Parses a scenario; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: `{line}`: {why}", number + 1);
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or_default();
        let arg = words.next();
        let number_arg = || -> Result<f64, String> {
            arg.and_then(|a| a.parse().ok())
                .ok_or_else(|| bad("expected a number"))
        };
        let panel = || match arg {
            Some("stats") => Ok(Panel::Stats),
            Some("devices") => Ok(Panel::Devices),
            Some("roster") => Ok(Panel::Roster),
            _ => Err(bad("expected stats, devices or roster")),
        };
        steps.push(match verb {
            "wait" => Step::Wait(Duration::from_secs_f64(number_arg()?.max(0.0))),
            "wait-for" => Step::WaitFor(match arg {
                Some("signed-in") => Condition::SignedIn,
                Some("connected") => Condition::Connected,
                Some("ended") => Condition::Ended,
                Some("incoming") => Condition::Incoming,
                Some("share") => Condition::Share,
                Some("video") => Condition::Video(
                    words
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| bad("expected `video <count>`"))?,
                ),
                _ => {
                    return Err(bad(
                        "expected signed-in, connected, ended, incoming, share or video <n>",
                    ));
                }
            }),
            "call-echo" => Step::CallEcho,
            "call" => Step::Call(
                arg.and_then(bevy_calling::ui::parse_target)
                    .ok_or_else(|| bad("expected a user id"))?,
            ),
            "join-group" => Step::JoinGroup(arg.map(|id| CallId(id.to_owned()))),
            "hang-up" => Step::HangUp,
            "accept" => Step::Answer(true),
            "decline" => Step::Answer(false),
            "no-camera" => Step::NoCamera,
            "add-bots" => Step::AddBots(number_arg()? as usize),
            "bot-shares-screen" => Step::BotSharesScreen,
            "show" => Step::Panel(panel()?, true),
            "hide" => Step::Panel(panel()?, false),
            "screenshot" => Step::Screenshot(arg.ok_or_else(|| bad("expected a file"))?.into()),
            "measure" => Step::Measure(
                Duration::from_secs_f64(number_arg()?.max(0.1)),
                words
                    .next()
                    .ok_or_else(|| bad("expected `measure <seconds> <file>`"))?
                    .into(),
            ),
            "latency" => Step::Latency(
                number_arg()? as usize,
                words
                    .next()
                    .ok_or_else(|| bad("expected `latency <samples> <file>`"))?
                    .into(),
            ),
            "quit" => Step::Quit,
            _ => return Err(bad("unknown step")),
        });
    }
    Ok(steps)
}

/// A scenario being performed.
#[derive(Resource, Debug)]
pub struct Script {
    steps: Vec<Step>,
    next: usize,
    /// When the current step began.
    since: Option<Instant>,
    /// A measurement's frame times so far, and the CPU time when it began.
    frames: Vec<f32>,
    cpu_at_start: Duration,
    /// A screenshot was asked for and is not saved yet.
    shooting: bool,
}

impl Script {
    /// Performs `steps` in order.
    pub fn new(steps: Vec<Step>) -> Self {
        Self {
            steps,
            next: 0,
            since: None,
            frames: Vec::new(),
            cpu_at_start: Duration::ZERO,
            shooting: false,
        }
    }
}

/// Runs the [`Script`] resource, one step at a time.
pub struct ScriptPlugin;

impl Plugin for ScriptPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(probe::ProbePlugin).add_systems(
            Update,
            (perform, keep_going).chain().after(crate::scene::SceneSet),
        );
    }
}

/// The app draws on demand: when the script moves to its next step, and while it takes
/// pictures or reads latency, it asks for the next frame at once instead of sleeping until
/// something changes. Waiting and measuring steps ask for nothing, so a measurement sees the
/// app as a person would.
fn keep_going(
    script: Res<Script>,
    frozen: Res<Frozen>,
    mut last: Local<Option<usize>>,
    mut redraw: MessageWriter<RequestRedraw>,
) {
    let capturing = matches!(
        script.steps.get(script.next),
        Some(Step::Screenshot(_) | Step::Latency(..))
    );
    if capturing || frozen.0 || *last != Some(script.next) {
        redraw.write(RequestRedraw);
    }
    *last = Some(script.next);
}

/// What else a step looks at: each call's statistics and agent, and the bots' calls.
#[derive(SystemParam)]
struct Around<'w, 's> {
    stats: Query<'w, 's, &'static CallStats>,
    calls: Query<'w, 's, (Entity, &'static Call, &'static CallOf)>,
    bots: Query<'w, 's, &'static AgentCalls, With<Bot>>,
}

#[allow(clippy::too_many_arguments)]
fn perform(
    mut commands: Commands,
    mut script: ResMut<Script>,
    mut services: screens::Services,
    agents: Query<&CallAgent>,
    calls: Query<&Call>,
    tiles: Query<(&Tile, &OnScreen)>,
    panels: Query<(&SharePanel, &OnScreen)>,
    mut exit: MessageWriter<AppExit>,
    time: Res<Time<Real>>,
    mut frozen: ResMut<Frozen>,
    (mut probe, frame): (ResMut<Probe>, Res<FrameCount>),
    around: Around,
) {
    let Some(step) = script.steps.get(script.next).cloned() else {
        exit.write(AppExit::Success);
        return;
    };
    if script.since.is_none() {
        script.cpu_at_start = process_cpu();
        script.frames.clear();
    }
    let since = *script.since.get_or_insert_with(Instant::now);
    let person = services.focus.agent;
    let call = services.focus.call;
    // The camera the person chose: calls they start or accept send it.
    let camera = person
        .and_then(|a| agents.get(a).ok())
        .and_then(|a| a.camera().cloned());
    let done = match &step {
        Step::Wait(time) => since.elapsed() >= *time,
        Step::WaitFor(condition) => {
            let holds = match condition {
                Condition::SignedIn => person
                    .and_then(|a| agents.get(a).ok())
                    .is_some_and(CallAgent::is_connected),
                Condition::Connected => call
                    .and_then(|c| calls.get(c).ok())
                    .is_some_and(|c| c.state == CallState::Connected),
                Condition::Ended => call.is_none(),
                Condition::Video(n) => tiles.iter().filter(|(t, _)| t.has_video).count() >= *n,
                Condition::Incoming => ringing(person, &around.calls).is_some(),
                Condition::Share => panels.iter().any(|(p, _)| p.has_picture),
            };
            if !holds && since.elapsed() > STEP_TIMEOUT {
                error!("script: `{step:?}` did not happen within {STEP_TIMEOUT:?}");
                exit.write(AppExit::error());
                return;
            }
            holds
        }
        Step::CallEcho | Step::Call(_) => {
            let target = match &step {
                Step::Call(target) => target.clone(),
                _ => CommunicationIdentifier::EchoBot,
            };
            if let Some(agent) = person {
                commands.start_call(StartCall {
                    agent,
                    targets: vec![target],
                    video: camera,
                });
            }
            true
        }
        Step::JoinGroup(id) => {
            if let Some(id) = id {
                services.screens.group_id = id.0.clone();
            }
            if let Some(agent) = person {
                commands.join_group_call(JoinGroupCall {
                    agent,
                    group_id: CallId(services.screens.group_id.clone()),
                    video: camera,
                });
            }
            true
        }
        Step::NoCamera => {
            if let Some(agent) = person {
                commands.trigger(SelectDevice {
                    agent,
                    kind: DeviceKind::Camera,
                    device: None,
                });
            }
            true
        }
        Step::Answer(accept) => {
            match (ringing(person, &around.calls), accept) {
                (Some(call), true) => bevy_calling::ui::accept_call(&mut commands, call, camera),
                (Some(call), false) => commands.trigger(RejectCall { call }),
                (None, _) => {}
            }
            true
        }
        Step::HangUp => {
            if let Some(call) = call {
                commands.trigger(HangUp { call });
            }
            true
        }
        Step::AddBots(count) => {
            if let Some(c) = call.and_then(|c| calls.get(c).ok()) {
                let group = c.id.clone();
                screens::add_bots(&mut commands, &mut services, group, *count);
            }
            true
        }
        Step::BotSharesScreen => {
            let connected =
                |c: &Entity| calls.get(*c).is_ok_and(|c| c.state == CallState::Connected);
            let call = around.bots.iter().find_map(|b| b.iter().find(connected));
            if let Some(call) = call {
                let source = services
                    .devices
                    .0
                    .add_pattern_camera("Bot screen", 1280, 720, 5);
                commands.trigger(StartScreenShare { call, source });
            } else {
                error!("script: no bot is in a connected call to share its screen");
                exit.write(AppExit::error());
            }
            true
        }
        Step::Panel(panel, shown) => {
            let s: &mut Screens = &mut services.screens;
            match panel {
                Panel::Stats => s.show_stats = *shown,
                Panel::Devices => s.show_devices = *shown,
                Panel::Roster => s.show_roster = *shown,
            }
            true
        }
        Step::Screenshot(path) => {
            // Tiles hold still until the picture is taken, so the sidecar says where they are.
            // The corners come from the last frame's transforms: freeze first, and write the
            // sidecar and ask for the picture on the next frame, once nothing moved since. The
            // step ends when the picture is saved (the observer thaws the tiles), so the next
            // step never changes the window or the call under a capture.
            if script.shooting {
                script.shooting = frozen.0;
                // Saved once the tiles thawed.
                return finish(&mut script, &step, !frozen.0);
            }
            if !frozen.0 {
                frozen.0 = true;
                return;
            }
            let received = call.and_then(|c| around.stats.get(c).ok());
            let sidecar = sidecar(&tiles, &panels, &services.screens, &calls, call, received);
            let json = path.with_extension("png.json");
            if let Err(e) = std::fs::write(&json, sidecar) {
                error!("script: writing {}: {e}", json.display());
            }
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to_disk(path.clone()))
                .observe(|_: On<ScreenshotCaptured>, mut frozen: ResMut<Frozen>| {
                    frozen.0 = false;
                    info!("script: screenshot taken");
                });
            script.shooting = true;
            false
        }
        Step::Measure(length, path) => {
            script.frames.push(time.delta_secs());
            let done = since.elapsed() >= *length;
            if done {
                let cpu = process_cpu().saturating_sub(script.cpu_at_start);
                let video = tiles.iter().filter(|(t, _)| t.has_video).count();
                let report = measurement(&mut script.frames, cpu, since.elapsed(), video);
                info!("script: measured {report}");
                if let Err(e) = std::fs::write(path, report) {
                    error!("script: writing {}: {e}", path.display());
                }
            }
            done
        }
        Step::Latency(count, path) => {
            if probe.samples.len() >= *count {
                let report = probe::report(&mut probe.samples);
                probe.samples.clear();
                info!("script: latency {report}");
                if let Err(e) = std::fs::write(path, report) {
                    error!("script: writing {}: {e}", path.display());
                }
                true
            } else if since.elapsed() > STEP_TIMEOUT {
                error!("script: only {} latency samples", probe.samples.len());
                exit.write(AppExit::error());
                return;
            } else {
                probe::ask(&mut commands, &mut probe, &mut frozen, &frame, &tiles);
                false
            }
        }
        Step::Quit => {
            exit.write(AppExit::Success);
            true
        }
    };
    finish(&mut script, &step, done);
}

/// The call ringing for the person's agent, if any.
fn ringing(person: Option<Entity>, calls: &Query<(Entity, &Call, &CallOf)>) -> Option<Entity> {
    calls
        .iter()
        .find(|(_, c, of)| Some(of.0) == person && c.state == CallState::Incoming)
        .map(|(e, ..)| e)
}

/// Moves on from `step` when it is `done`.
fn finish(script: &mut Script, step: &Step, done: bool) {
    if done {
        info!("script: {step:?} done");
        script.next += 1;
        script.since = None;
    }
}

/// The CPU time this process has used (user and system), from `/proc/self/stat`.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and
    // 13th, in clock ticks of 1/100 s.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Mean, median and 95th percentile of `values` (sorted in place); `None` when empty.
pub fn summary(values: &mut [f64]) -> Option<[f64; 3]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    Some([mean, at(0.5), at(0.95)])
}

/// A measurement as JSON: frame times in milliseconds, and CPU in cores.
fn measurement(frames: &mut [f32], cpu: Duration, wall: Duration, video_tiles: usize) -> String {
    let mut ms: Vec<f64> = frames.iter().map(|&s| f64::from(s) * 1e3).collect();
    let [mean, p50, p95] = summary(&mut ms).unwrap_or_default();
    serde_json::json!({
        "frames": frames.len(),
        "frames_per_second": frames.len() as f64 / wall.as_secs_f64().max(1e-3),
        "frame_ms_mean": mean,
        "frame_ms_p50": p50,
        "frame_ms_p95": p95,
        "cpu_cores": cpu.as_secs_f64() / wall.as_secs_f64().max(1e-3),
        "video_tiles": video_tiles,
    })
    .to_string()
}

/// Where things are on screen, as JSON: tiles (participant name, corners, video or not), the
/// share panel, and the egui panels the screens drew.
fn sidecar(
    tiles: &Query<(&Tile, &OnScreen)>,
    panels: &Query<(&SharePanel, &OnScreen)>,
    screens: &Screens,
    calls: &Query<&Call>,
    call: Option<Entity>,
    stats: Option<&CallStats>,
) -> String {
    let corners = |o: &OnScreen| o.corners.map(|c| [c.x, c.y]);
    let tiles: Vec<_> = tiles
        .iter()
        .map(|(t, o)| {
            serde_json::json!({
                "name": t.name,
                "has_video": t.has_video,
                "visible": o.visible,
                "corners": corners(o),
            })
        })
        .collect();
    let share: Vec<_> = panels.iter().map(|(_, o)| corners(o)).collect();
    serde_json::json!({
        "call_state": call.and_then(|c| calls.get(c).ok()).map(|c| format!("{:?}", c.state)),
        "tiles": tiles,
        "share": share,
        "controls": screens.drawn.controls,
        "stats": screens.drawn.stats,
        "incoming": screens.drawn.incoming,
        // What the receive loops counted over the last second, all video streams together.
        "received_video_kbps": stats.map_or(0, |s| {
            s.0.incoming_video.iter().map(|v| v.stats.bitrate).sum::<u32>() / 1000
        }),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse_and_bad_lines_are_named() {
        let steps = parse(
            "# a call\ncall-echo\nwait-for video 1\nwait 0.5\nshow stats\nscreenshot a.png\n",
        )
        .unwrap();
        assert_eq!(
            steps,
            vec![
                Step::CallEcho,
                Step::WaitFor(Condition::Video(1)),
                Step::Wait(Duration::from_millis(500)),
                Step::Panel(Panel::Stats, true),
                Step::Screenshot("a.png".into()),
            ]
        );
        let error = parse("wait\n").unwrap_err();
        assert!(error.starts_with("line 1"), "{error}");
        assert!(parse("dance\n").is_err());
    }
}
