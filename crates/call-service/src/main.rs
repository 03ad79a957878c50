//! The `call-service` binary: run the signaling server and SFU, or mint an access token.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use call_protocol::{CommunicationIdentifier, Role};
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

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
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
                ..ServiceConfig::default()
            };
            match CallService::start(config) {
                Ok(service) => {
                    println!("signaling: {}", service.ws_url());
                    println!("media:     udp {}", service.media_addr());
                    println!("web:       {}", service.web_url());
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
