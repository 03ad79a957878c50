//! The `call-service` binary: run the signaling server and SFU, or mint an access token.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use call_protocol::{CommunicationIdentifier, Role};
use call_service::pstn;
use call_service::token::TokenIssuer;
use call_service::{CallService, ServiceConfig, TlsIdentity};
use clap::{Parser, Subcommand};

/// The bevy_calling call service.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run signaling and the SFU until interrupted.
    Serve {
        /// Address to bind; 0.0.0.0 (every interface) needs --advertise-ip.
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
        /// Address clients reach the media socket at, when not --ip (behind NAT, in a
        /// container). Default: --ip.
        #[arg(long)]
        advertise_ip: Option<IpAddr>,
        /// Signaling (HTTP/WebSocket) port.
        #[arg(long, default_value_t = 8470)]
        port: u16,
        /// Media (UDP) port.
        #[arg(long, default_value_t = 8471)]
        media_port: u16,
        /// Token signing secret; without it a random one is used and only dev tokens work.
        #[arg(long, env = "CALL_SERVICE_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Serve GET /dev/token?user=8:acs:<id> (development only).
        #[arg(long)]
        dev_tokens: bool,
        /// Serve HTTPS and WSS with this PEM certificate chain (with --tls-key). Browsers grant
        /// camera and microphone only to secure origins: needed for the web client anywhere
        /// but localhost.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        #[command(flatten)]
        trunk: Trunk,
    },
    /// Print an access token for a user, signed with the service's secret.
    Token {
        /// The user, e.g. `8:acs:alice`.
        #[arg(long)]
        user: CommunicationIdentifier,
        /// What the user may do in calls: organizer, presenter or attendee.
        #[arg(long, default_value_t = Role::Presenter)]
        role: Role,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        /// The service's signing secret.
        #[arg(long, env = "CALL_SERVICE_SECRET", hide_env_values = true)]
        secret: String,
    },
}

/// A carrier's SIP trunk, for calls to and from phone numbers.
#[derive(clap::Args)]
struct Trunk {
    /// The trunk's SIP address (UDP), e.g. 203.0.113.5:5060. Without it, phone numbers are
    /// not found.
    #[arg(long)]
    sip_trunk: Option<SocketAddr>,
    /// The local SIP (UDP) port, on --advertise-ip (else --ip).
    #[arg(long, default_value_t = 5060)]
    sip_port: u16,
    /// The user name for the trunk's digest challenges (with --sip-password).
    #[arg(long, requires = "sip_password")]
    sip_user: Option<String>,
    /// The password for the trunk's digest challenges.
    #[arg(long, env = "CALL_SERVICE_SIP_PASSWORD", hide_env_values = true)]
    sip_password: Option<String>,
    /// The number our calls come from, E.164 with its `+`.
    #[arg(long, default_value = "+10000000000")]
    caller_id: String,
    /// A number on the trunk and whom it rings: `+15550002=8:acs:bob` (a user) or
    /// `+15550003=<group call GUID>`. Repeatable.
    #[arg(long, value_parser = pstn::parse_dial_in)]
    dial_in: Vec<(String, pstn::DialIn)>,
}

impl Trunk {
    /// The gateway's configuration, if a trunk is given.
    fn config(self) -> Option<pstn::PstnConfig> {
        let credentials = self.sip_user.zip(self.sip_password);
        Some(pstn::PstnConfig {
            trunk: self.sip_trunk?,
            sip_port: self.sip_port,
            credentials: credentials
                .map(|(username, password)| pstn::SipCredentials { username, password }),
            caller_id: self.caller_id,
            dial_in: self.dial_in.into_iter().collect(),
        })
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            // rsipstack logs every SIP datagram at info.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rsipstack=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Token {
            user,
            role,
            ttl,
            secret,
        } => {
            let issued = TokenIssuer::new(secret.as_bytes()).issue_with_role(
                &user,
                role,
                Duration::from_secs(ttl),
            );
            println!("{}", issued.token);
            std::process::ExitCode::SUCCESS
        }
        Command::Serve {
            ip,
            advertise_ip,
            port,
            media_port,
            secret,
            dev_tokens,
            tls_cert,
            tls_key,
            trunk,
        } => {
            let tls = match tls_cert.zip(tls_key) {
                Some((cert, key)) => match TlsIdentity::from_files(&cert, &key) {
                    Ok(identity) => Some(identity),
                    Err(e) => {
                        eprintln!(
                            "call-service: reading {} and {}: {e}",
                            cert.display(),
                            key.display()
                        );
                        return std::process::ExitCode::FAILURE;
                    }
                },
                None => None,
            };
            if secret.is_none() {
                tracing::warn!("no --secret: tokens from `call-service token` will not verify");
            }
            let config = ServiceConfig {
                ip,
                advertise_ip,
                http_port: port,
                media_port,
                secret: secret.map(String::into_bytes),
                dev_tokens,
                tls,
                pstn: trunk.config(),
                ..ServiceConfig::default()
            };
            match CallService::start(config) {
                Ok(service) => {
                    println!("signaling: {}", service.ws_url());
                    println!("media:     udp {}", service.media_addr());
                    println!("web:       {}", service.web_url());
                    if let Some(sip) = service.sip_addr() {
                        println!("sip:       udp {sip}");
                    }
                    service.wait();
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("call-service: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
