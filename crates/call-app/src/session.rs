//! Signing in: where the call service is, how this app gets tokens for its person and its bots,
//! and the devices it offers on a machine without hardware.

use std::time::Duration;

use bevy::prelude::*;
use bevy_calling::prelude::*;
use bevy_calling::{DeviceManager, Role};
use call_service::token::TokenIssuer;
use call_service::{CallService, ServiceConfig};

/// How long the tokens this app signs last.
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The call service this app signs in to.
pub enum Service {
    /// Started in this process (the default): tokens are signed with its secret.
    Embedded(CallService),
    /// A shared service (`--server`): tokens are signed with its secret when given, or the
    /// one token given is used for this app's person (bots then need the secret).
    Shared {
        /// Its signaling URL.
        url: String,
        /// Signs tokens, when the secret was given.
        issuer: Option<TokenIssuer>,
        /// A token for this app's person.
        token: Option<String>,
    },
}

/// The service, as a resource.
#[derive(Resource)]
pub struct Connection(pub Service);

impl Connection {
    /// Starts an embedded service on loopback, on the deployment ports (8470, 8471) when free so
    /// that another window or bot can find it, otherwise on free ones, signing tokens with
    /// `secret` (which another window or bot then uses with `--secret`).
    pub fn embedded(secret: &str) -> Result<Self, String> {
        let config = ServiceConfig {
            secret: Some(secret.as_bytes().to_vec()),
            ..Default::default()
        };
        let fixed = ServiceConfig {
            http_port: 8470,
            media_port: 8471,
            ..config.clone()
        };
        let service = CallService::start(fixed)
            .or_else(|_| CallService::start(config))
            .map_err(|e| format!("the embedded call service did not start: {e}"))?;
        Ok(Self(Service::Embedded(service)))
    }

    /// The signaling URL.
    pub fn url(&self) -> String {
        match &self.0 {
            Service::Embedded(service) => service.ws_url(),
            Service::Shared { url, .. } => url.clone(),
        }
    }

    /// What to tell people about where the service is.
    pub fn describe(&self) -> String {
        match &self.0 {
            Service::Embedded(service) => format!("embedded service at {}", service.ws_url()),
            Service::Shared { url, .. } => format!("service at {url}"),
        }
    }

    /// A token for `user`; `person` marks this app's own person, who may use a given token.
    pub fn token(
        &self,
        user: &CommunicationIdentifier,
        role: Role,
        person: bool,
    ) -> Result<String, String> {
        match &self.0 {
            Service::Embedded(service) => Ok(service
                .issue_token_with_role(user, role, TOKEN_LIFETIME)
                .token),
            Service::Shared {
                issuer: Some(issuer),
                ..
            } => Ok(issuer.issue_with_role(user, role, TOKEN_LIFETIME).token),
            Service::Shared {
                token: Some(token), ..
            } if person => Ok(token.clone()),
            Service::Shared { .. } => Err(
                "signing in to a shared service needs --secret (or CALL_SERVICE_SECRET) or --token"
                    .into(),
            ),
        }
    }
}

/// A user id for a display name: letters, digits, `-`, `_` and `.` kept, the rest dropped.
pub fn user_for(name: &str) -> CommunicationIdentifier {
    let id: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    let id = if id.is_empty() { "guest".into() } else { id };
    CommunicationIdentifier::user(&id)
        .unwrap_or_else(|_| CommunicationIdentifier::user("guest").expect("a valid user id"))
}

/// Synthetic devices for machines without hardware: a camera drawing the stamped test pattern
/// and a microphone playing the speech clip. Hardware stays the default where there is some.
pub fn add_synthetic_devices(devices: &DeviceManager) {
    devices.add_pattern_camera("Test pattern camera", 640, 360, 30);
    let speech = speech_clip();
    if speech.exists() {
        devices.add_wav_microphone("Speech clip", speech);
    }
}

/// The speech clip in the repository's assets.
pub fn speech_clip() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sounds/speech.wav")
}

/// Spawns an agent for `name` with the default devices; returns it and its user.
pub fn sign_in(
    commands: &mut Commands,
    connection: &Connection,
    devices: &DeviceManager,
    name: &str,
    role: Role,
    person: bool,
) -> Result<(Entity, CommunicationIdentifier), String> {
    let user = user_for(name);
    let token = connection.token(&user, role, person)?;
    let default = |kind| devices.default_device(kind).map(|d| d.id);
    let agent = commands
        .spawn(CallAgent::new(AgentConfig {
            service_url: connection.url(),
            token,
            display_name: name.trim().to_owned(),
            microphone: default(DeviceKind::Microphone),
            speaker: default(DeviceKind::Speaker),
            ..Default::default()
        }))
        .id();
    if let Some(camera) = default(DeviceKind::Camera) {
        commands.trigger(SelectDevice {
            agent,
            kind: DeviceKind::Camera,
            device: Some(camera),
        });
    }
    Ok((agent, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_valid_user_ids() {
        assert_eq!(user_for("Ada Lovelace").to_string(), "8:acs:ada-lovelace");
        assert_eq!(user_for("  ").to_string(), "8:acs:guest");
        assert_eq!(user_for("zoë!").to_string(), "8:acs:zo");
    }
}
