//! The signaling server over a real WebSocket: sign-in, typed errors for bad frames on a
//! connection that stays healthy, a client too slow to read being disconnected with a reason,
//! the dev token endpoint, and the `token` CLI.

use std::time::Duration;

use call_protocol::{
    ClientMessage, CommunicationIdentifier, ErrorCode, MAX_MESSAGE_BYTES, ServerMessage, decode,
    encode,
};
use call_service::token::TokenIssuer;
use call_service::{CallService, ServiceConfig};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(service: &CallService) -> Ws {
    tokio_tungstenite::connect_async(service.ws_url())
        .await
        .expect("connects")
        .0
}

async fn send_raw(ws: &mut Ws, text: String) {
    ws.send(Message::Text(text.into())).await.expect("sends");
}

/// The next server message, or `None` when the server closed the connection.
async fn next(ws: &mut Ws) -> Option<ServerMessage> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a reply in time");
        match frame {
            Some(Ok(Message::Text(t))) => {
                return Some(decode(t.as_str()).expect("server frames decode"));
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

fn error_code(message: Option<ServerMessage>) -> ErrorCode {
    match message {
        Some(ServerMessage::Error { code, .. }) => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn hello(ws: &mut Ws, token: String) -> Option<ServerMessage> {
    send_raw(
        ws,
        encode(&ClientMessage::Hello {
            token,
            display_name: "Alice".into(),
        }),
    )
    .await;
    next(ws).await
}

fn alice() -> CommunicationIdentifier {
    CommunicationIdentifier::user("alice").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_typed_errors_and_the_connection_stays_healthy() {
    let service = CallService::start(ServiceConfig::default()).unwrap();
    let mut ws = open(&service).await;

    send_raw(&mut ws, "{not json".into()).await;
    assert_eq!(error_code(next(&mut ws).await), ErrorCode::MalformedMessage);

    send_raw(&mut ws, r#"{"v":1,"type":"teleport"}"#.into()).await;
    assert_eq!(error_code(next(&mut ws).await), ErrorCode::MalformedMessage);

    send_raw(&mut ws, r#"{"v":9,"type":"hang_up","call_id":"x"}"#.into()).await;
    assert_eq!(
        error_code(next(&mut ws).await),
        ErrorCode::UnsupportedVersion
    );

    let huge = format!(
        r#"{{"v":1,"type":"offer","sdp":"{}"}}"#,
        "a".repeat(2 * MAX_MESSAGE_BYTES)
    );
    send_raw(&mut ws, huge).await;
    assert_eq!(error_code(next(&mut ws).await), ErrorCode::MessageTooLarge);

    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(error_code(next(&mut ws).await), ErrorCode::MalformedMessage);

    send_raw(
        &mut ws,
        encode(&ClientMessage::HangUp {
            call_id: call_protocol::CallId("x".into()),
        }),
    )
    .await;
    assert_eq!(error_code(next(&mut ws).await), ErrorCode::NotSignedIn);

    // After all that, the same connection signs in and serves requests.
    let token = service.issue_token(&alice(), Duration::from_secs(60)).token;
    assert_eq!(
        hello(&mut ws, token).await,
        Some(ServerMessage::Welcome { user: alice() })
    );
    send_raw(
        &mut ws,
        encode(&ClientMessage::HangUp {
            call_id: call_protocol::CallId("x".into()),
        }),
    )
    .await;
    assert_eq!(error_code(next(&mut ws).await), ErrorCode::UnknownCall);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_close_the_connection_without_a_session() {
    let service = CallService::start(ServiceConfig::default()).unwrap();
    let forged = TokenIssuer::new(b"other")
        .issue(&alice(), Duration::from_secs(60))
        .token;
    for (token, code) in [
        (forged, ErrorCode::InvalidToken),
        (String::new(), ErrorCode::MissingToken),
    ] {
        let mut ws = open(&service).await;
        assert_eq!(error_code(hello(&mut ws, token).await), code);
        assert_eq!(
            next(&mut ws).await,
            None,
            "the server closes after a refused token"
        );
    }
    // Nobody was signed in: calling alice finds no one.
    let bob = CommunicationIdentifier::user("bob").unwrap();
    let mut ws = open(&service).await;
    hello(
        &mut ws,
        service.issue_token(&bob, Duration::from_secs(60)).token,
    )
    .await;
    let call_id = call_protocol::CallId("c".into());
    send_raw(
        &mut ws,
        encode(&ClientMessage::StartCall {
            call_id: call_id.clone(),
            targets: vec![alice()],
        }),
    )
    .await;
    assert_eq!(
        next(&mut ws).await,
        Some(ServerMessage::CallEnded {
            call_id,
            reason: call_protocol::CallEndReason::USER_NOT_FOUND
        })
    );
}

async fn http_get(service: &CallService, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(service.http_addr())
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_endpoint_issues_tokens_the_service_accepts() {
    let service = CallService::start(ServiceConfig::default()).unwrap();
    let (status, body) = http_get(&service, "/dev/token?user=8:acs:alice").await;
    assert_eq!(status, 200, "{body}");
    let issued: call_service::token::IssuedToken = serde_json::from_str(&body).unwrap();
    assert_eq!(issued.user, alice());
    let mut ws = open(&service).await;
    assert_eq!(
        hello(&mut ws, issued.token).await,
        Some(ServerMessage::Welcome { user: alice() })
    );

    let (status, body) = http_get(&service, "/dev/token?user=alice").await;
    assert_eq!(status, 400);
    assert!(body.contains("not an identifier"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_endpoint_is_off_unless_asked_for() {
    let service = CallService::start(ServiceConfig {
        dev_tokens: false,
        ..ServiceConfig::default()
    })
    .unwrap();
    let (status, _) = http_get(&service, "/dev/token?user=8:acs:alice").await;
    assert_eq!(status, 404);
}

#[test]
fn cli_token_is_signed_with_the_given_secret() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_call-service"))
        .args(["token", "--user", "8:acs:alice", "--ttl", "60"])
        .env("CALL_SERVICE_SECRET", "s3cret")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        TokenIssuer::new(b"s3cret")
            .verify(token.trim())
            .map(|grant| grant.user),
        Ok(alice())
    );
    assert!(TokenIssuer::new(b"other").verify(token.trim()).is_err());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_call-service"))
        .args(["token", "--user", "alice", "--secret", "s"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an identifier"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_signaling_with_its_secret() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_call-service"))
        .args(["serve", "--port", "0", "--media-port", "0"])
        .env("CALL_SERVICE_SECRET", "deploy-secret")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("prints its address in time")
        .unwrap()
        .expect("a line");
    let url = first
        .strip_prefix("signaling: ")
        .expect("the signaling URL first");
    let mut ws = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects")
        .0;
    let token = TokenIssuer::new(b"deploy-secret")
        .issue(&alice(), Duration::from_secs(60))
        .token;
    assert_eq!(
        hello(&mut ws, token).await,
        Some(ServerMessage::Welcome { user: alice() })
    );
    child.kill().await.unwrap();
}

/// Signs `name` in on a fresh connection with `display_name`, past its welcome.
async fn signed_in(service: &CallService, name: &str, display_name: String) -> Ws {
    let user = CommunicationIdentifier::user(name).unwrap();
    let mut ws = open(service).await;
    send_raw(
        &mut ws,
        encode(&ClientMessage::Hello {
            token: service.issue_token(&user, Duration::from_secs(60)).token,
            display_name,
        }),
    )
    .await;
    assert_eq!(next(&mut ws).await, Some(ServerMessage::Welcome { user }));
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_with_a_reason() {
    let service = CallService::start(ServiceConfig::default()).unwrap();
    // A long display name makes every update about the flooder large, so the slow client's
    // socket buffers fill after hundreds of updates rather than tens of thousands.
    let mut flooder = signed_in(&service, "flooder", "F".repeat(32 * 1024)).await;
    let mut slow = signed_in(&service, "slow", "Slow".into()).await;
    let call_id = call_protocol::CallId("flood".into());
    send_raw(
        &mut flooder,
        encode(&ClientMessage::StartCall {
            call_id: call_id.clone(),
            targets: vec![CommunicationIdentifier::user("slow").unwrap()],
        }),
    )
    .await;
    assert!(matches!(
        next(&mut slow).await,
        Some(ServerMessage::IncomingCall { .. })
    ));

    // From here on `slow` reads nothing while every mute toggle sends it an update.
    let slow_user = CommunicationIdentifier::user("slow").unwrap();
    let mut left = None;
    'flood: for round in 0..200 {
        for i in 0..32 {
            send_raw(
                &mut flooder,
                encode(&ClientMessage::SetMuted {
                    call_id: call_id.clone(),
                    muted: (round * 32 + i) % 2 == 0,
                }),
            )
            .await;
        }
        // Take what came back (refusals once the call is gone), so the flooder stays fast.
        while let Ok(frame) = tokio::time::timeout(Duration::from_millis(5), flooder.next()).await {
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                other => panic!("the flooder's connection broke: {other:?}"),
            };
            if let ServerMessage::ParticipantLeft { id, reason, .. } =
                decode::<ServerMessage>(text.as_str()).unwrap()
                && id == slow_user
            {
                left = Some(reason);
                break 'flood;
            }
        }
    }
    assert_eq!(
        left,
        Some(call_protocol::CallEndReason::REMOTE_CONNECTION_LOST),
        "the slow client leaves the call as a lost connection"
    );

    // The slow client, reading at last, finds the backlog, then the reason, then the close.
    let mut last = None;
    let mut count = 0;
    while let Some(message) = next(&mut slow).await {
        count += 1;
        last = Some(message);
    }
    assert!(count > 1, "a backlog came before the close");
    assert_eq!(error_code(last), ErrorCode::TooSlow);

    // The service stays healthy: the flooder is still served, and a newcomer signs in.
    send_raw(&mut flooder, encode(&ClientMessage::HangUp { call_id })).await;
    loop {
        match next(&mut flooder).await {
            Some(ServerMessage::Error {
                code: ErrorCode::UnknownCall,
                ..
            }) => break,
            Some(_) => continue,
            None => panic!("the flooder was disconnected"),
        }
    }
    signed_in(&service, "newcomer", "New".into()).await;
}
