//! The statistics panel: one row per stream of a call's [`CallStats`].

use bevy_egui::egui;
use call_media::stats::StreamStats;
use call_protocol::{CommunicationIdentifier, MediaType};

use crate::model::CallStats;

/// A table of `stats`: the round trip, then per stream its bitrate, packet loss, jitter,
/// resolution and frame rate. `name` turns a participant's identifier into what the app shows
/// for them.
pub fn stats_panel(
    ui: &mut egui::Ui,
    stats: &CallStats,
    name: impl Fn(&CommunicationIdentifier) -> String,
) {
    ui.label(match stats.round_trip_time {
        Some(rtt) => format!("Round trip: {:.1} ms", rtt.as_secs_f64() * 1e3),
        None => "Round trip: not measured yet".to_owned(),
    });
    let mut rows = vec![
        ("Sent audio".to_owned(), &stats.outgoing_audio),
        ("Received audio".to_owned(), &stats.incoming_audio),
    ];
    for (media_type, s) in &stats.outgoing_video {
        rows.push((format!("Sent {}", kind(*media_type)), s));
    }
    for v in &stats.incoming_video {
        rows.push((
            format!("{} {}", name(&v.participant), kind(v.media_type)),
            &v.stats,
        ));
    }
    egui::Grid::new("call-stats")
        .striped(true)
        .num_columns(6)
        .show(ui, |ui| {
            for header in ["Stream", "Bitrate", "Lost", "Jitter", "Size", "FPS"] {
                ui.strong(header);
            }
            ui.end_row();
            for (label, s) in rows {
                ui.label(label);
                for cell in cells(s) {
                    ui.label(cell);
                }
                ui.end_row();
            }
        });
}

fn kind(media_type: MediaType) -> &'static str {
    match media_type {
        MediaType::Video => "camera",
        MediaType::ScreenSharing => "screen",
    }
}

/// A stream's figures as the table's cells.
fn cells(s: &StreamStats) -> [String; 5] {
    [
        format!("{:.0} kbit/s", f64::from(s.bitrate) / 1e3),
        format!("{} ({:.1} %)", s.packets_lost, s.loss_fraction * 100.0),
        format!("{:.1} ms", s.jitter.as_secs_f64() * 1e3),
        s.frame_size
            .map_or_else(|| "-".to_owned(), |(w, h)| format!("{w}x{h}")),
        s.frames_per_second
            .map_or_else(|| "-".to_owned(), |f| format!("{f:.0}")),
    ]
}
