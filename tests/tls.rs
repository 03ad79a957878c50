//! The service behind TLS: Rust clients sign in over `wss://` with the certificate they were
//! told to trust and talk as over plain WebSocket; a certificate they do not trust fails the
//! sign-in with its own reason. (A browser on the HTTPS web client: `tests/browser_interop.rs`.)

mod common;

use bevy_calling::AgentError;
use bevy_calling::prelude::*;
use common::*;

#[test]
fn clients_trusting_the_certificate_sign_in_over_wss_and_hear_each_other() {
    let (identity, certificate) = self_signed(&["127.0.0.1"]);
    let service = tls_service(identity);
    assert!(
        service.ws_url().starts_with("wss://127.0.0.1:"),
        "{}",
        service.ws_url()
    );
    assert!(
        service.web_url().starts_with("https://127.0.0.1:"),
        "{}",
        service.web_url()
    );
    let trust = |config: &mut AgentConfig| config.trusted_certificates = certificate.clone();
    let mut a = client_with(&service, "alice", Mic::Speech, trust);
    let mut b = client_with(&service, "bob", Mic::Speech, trust);
    connected_call(&mut a, &mut b);
    let heard = listen(&mut a, &mut b, 3 * 48_000, 48_000);
    let (e, corr) = (
        energy(&heard),
        looped_envelope_correlation(&heard, &speech_samples()),
    );
    assert!(
        e > 0.002 && corr > 0.8,
        "speech over a wss-signed call: energy {e}, correlation {corr}"
    );
}

#[test]
fn a_certificate_the_client_does_not_trust_fails_the_sign_in_with_that_reason() {
    let (identity, _) = self_signed(&["127.0.0.1"]);
    let service = tls_service(identity);
    // Another self-signed certificate for the same address is no help.
    let (_, stranger) = self_signed(&["127.0.0.1"]);
    for (what, trusted) in [("nothing", Vec::new()), ("another certificate", stranger)] {
        let mut m = client_with(&service, "mallory", Mic::None, |config| {
            config.trusted_certificates = trusted;
        });
        run_until(&mut [&mut m], "the sign-in to fail", |c| {
            matches!(c[0].agent().connection, AgentConnection::Disconnected(_))
        });
        match &m.agent().connection {
            AgentConnection::Disconnected(AgentError::Untrusted { reason, .. }) => {
                assert!(reason.contains("certificate"), "trusting {what}: {reason}")
            }
            other => panic!("trusting {what}: expected an untrusted certificate, got {other:?}"),
        }
    }
    // Plain WebSocket to the TLS port is no WebSocket at all: unreachable, not a hang.
    let plain = service.ws_url().replacen("wss://", "ws://", 1);
    let user = CommunicationIdentifier::user("eve").expect("a name");
    let token = service
        .issue_token(&user, std::time::Duration::from_secs(60))
        .token;
    let mut e = client_at(bevy::app::App::new(), &plain, "eve", Mic::None, token);
    run_until(&mut [&mut e], "the plain sign-in to fail", |c| {
        matches!(c[0].agent().connection, AgentConnection::Disconnected(_))
    });
    assert!(
        matches!(
            &e.agent().connection,
            AgentConnection::Disconnected(AgentError::Unreachable { .. })
        ),
        "{:?}",
        e.agent().connection
    );
}
