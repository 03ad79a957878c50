//! The web client the service serves at `/`: plain HTML and JS (no build step) that speaks the
//! same signaling protocol and offers the same media lines as the Rust client, so a person with
//! only a browser can join a call. Both files are compiled into the service.

use axum::http::header;
use axum::routing::get;

/// The page.
const INDEX: &str = include_str!("../web/index.html");
/// The client: signaling, the one peer connection, the roster and the remote videos.
const CLIENT: &str = include_str!("../web/client.js");

/// `router` with `/` (the page) and `/client.js` added.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(router: axum::Router<S>) -> axum::Router<S> {
    let html = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
    let js = [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")];
    router
        .route("/", get(move || async move { (html, INDEX) }))
        .route("/client.js", get(move || async move { (js, CLIENT) }))
}
