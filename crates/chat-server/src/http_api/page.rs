//! The chat page (`GET /`): plain HTML, CSS and a JavaScript module,
//! embedded in the binary, nothing fetched from elsewhere.

use http1::Response;

const INDEX: &str = include_str!("../../web/index.html");
const STYLE: &str = include_str!("../../web/app.css");
const SCRIPT: &str = include_str!("../../web/app.js");
const PROTOCOL: &str = include_str!("../../web/protocol.js");

/// What the page may load and reach: itself only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::text(200, body)
        .content_type(content_type)
        .header("Cache-Control", "no-cache")
        .header("X-Content-Type-Options", "nosniff")
}

/// The asset at `path`, if it is one.
pub fn asset_at(path: &str) -> Option<Response> {
    Some(match path {
        "/" | "/index.html" => asset(INDEX, "text/html; charset=utf-8")
            .header("Content-Security-Policy", POLICY)
            .header("Referrer-Policy", "no-referrer"),
        "/app.css" => asset(STYLE, "text/css; charset=utf-8"),
        "/app.js" => asset(SCRIPT, "text/javascript; charset=utf-8"),
        "/protocol.js" => asset(PROTOCOL, "text/javascript; charset=utf-8"),
        _ => return None,
    })
}
