//! The web client the service serves at `/`: plain HTML and ES modules (no build step) that speak
//! the same signaling protocol and offer the same media lines as the Rust client, so a person with
//! only a browser can join a call. Every file is compiled into the service.

use axum::http::header;
use axum::routing::get;

/// The content type of the page.
const HTML: &str = "text/html; charset=utf-8";
/// The content type of the client's modules.
const JS: &str = "text/javascript; charset=utf-8";

/// Every file served: its path, content type and content. The page loads the entry module
/// `client.js`, which imports the others by these paths (see its header for what each holds).
const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../web/index.html")),
    ("/client.js", JS, include_str!("../web/client.js")),
    ("/protocol.js", JS, include_str!("../web/protocol.js")),
    ("/state.js", JS, include_str!("../web/state.js")),
    ("/media.js", JS, include_str!("../web/media.js")),
    ("/session.js", JS, include_str!("../web/session.js")),
    ("/calls.js", JS, include_str!("../web/calls.js")),
    ("/ui.js", JS, include_str!("../web/ui.js")),
];

/// `router` with every one of [`FILES`] added at its path.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(router: axum::Router<S>) -> axum::Router<S> {
    FILES
        .iter()
        .fold(router, |router, &(path, content_type, body)| {
            let headers = [(header::CONTENT_TYPE, content_type)];
            router.route(path, get(move || async move { (headers, body) }))
        })
}
