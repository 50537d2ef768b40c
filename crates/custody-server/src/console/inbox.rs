//! The inbox (`/`): what waits for the signed-in principal.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::escape::text;
use super::layout::{self, Nav, Page};
use super::session::Session;
use crate::AppState;

/// `GET /`.
pub async fn inbox(State(_state): State<AppState>, session: Session) -> Response {
    let body = html! {
        h1 { "Inbox" }
        p { "Signed in as " (text(session.principal.id.as_str())) "." }
    };
    layout::respond(
        StatusCode::OK,
        Page {
            title: "Inbox",
            session: Some(&session),
            current: Some(Nav::Inbox),
            body,
        },
    )
}
