//! Benchmark: the frame time of one App with 50 signed-in agents on its one media runtime, and
//! the time one `update()` takes while an agent is despawned.
//!
//! `cargo run --release --example bench_agents`

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_calling::prelude::*;
use call_service::{CallService, ServiceConfig};

const AGENTS: usize = 50;
const FRAMES: usize = 500;
const DROPS: usize = 20;

fn main() {
    let service = CallService::start(ServiceConfig::default()).expect("service");
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, CallingPlugin::default()));
    // Driven by hand with update(): finish the plugins first, as App::run would.
    app.finish();
    app.cleanup();
    let started = Instant::now();
    let agents: Vec<Entity> = (0..AGENTS)
        .map(|k| {
            let user = CommunicationIdentifier::user(&format!("agent{k}")).expect("valid");
            let token = service.issue_token(&user, Duration::from_secs(600)).token;
            app.world_mut()
                .spawn(CallAgent::new(AgentConfig {
                    service_url: service.ws_url(),
                    token,
                    display_name: format!("agent {k}"),
                    microphone: None,
                    speaker: None,
                    ..Default::default()
                }))
                .id()
        })
        .collect();
    while !agents.iter().all(|&a| {
        app.world()
            .get::<CallAgent>(a)
            .is_some_and(|a| a.is_connected())
    }) {
        if started.elapsed() > Duration::from_secs(60) {
            let states: Vec<String> = agents
                .iter()
                .filter_map(|&a| app.world().get::<CallAgent>(a))
                .filter(|a| !a.is_connected())
                .map(|a| format!("{:?}", a.connection))
                .collect();
            panic!("{} agents did not sign in: {states:?}", states.len());
        }
        app.update();
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "{AGENTS} agents signed in (spawn to media connected, all): {:.0} ms",
        ms(started.elapsed())
    );

    let mut frames = Vec::with_capacity(FRAMES);
    for _ in 0..FRAMES {
        let t = Instant::now();
        app.update();
        frames.push(ms(t.elapsed()));
        std::thread::sleep(Duration::from_millis(2));
    }
    report(&format!("frame time with {AGENTS} agents"), &mut frames);

    let mut drops = Vec::with_capacity(DROPS);
    for &agent in &agents[..DROPS] {
        let t = Instant::now();
        app.world_mut().despawn(agent);
        app.update();
        drops.push(ms(t.elapsed()));
        for _ in 0..10 {
            app.update();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    report("despawn of a signed-in agent + one update()", &mut drops);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: p50 {:.3} ms, p95 {:.3} ms, max {:.3} ms ({} samples)",
        at(0.5),
        at(0.95),
        at(1.0),
        samples.len()
    );
}
