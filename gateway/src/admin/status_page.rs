//! `GET /`: a small self-contained HTML status page (no external assets)
//! that fetches `/readyz`, `/admin/backends` and `/admin/connections` and
//! refreshes its tables in place every two seconds.

use axum::response::Html;

/// The page.
const PAGE: &str = include_str!("status.html");

/// `GET /`.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}
