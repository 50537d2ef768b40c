//! The page around every console view: landmarks, the skip link, the
//! navigation, who is signed in, and the sign-out form.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::escape::text;
use super::session::Session;

/// One page of the console.
pub struct Page<'a> {
    /// The page's title (a constant or from [`text`]-safe input).
    pub title: &'a str,
    /// The signed-in session, when there is one.
    pub session: Option<&'a Session>,
    /// Which navigation entry is this page (`aria-current`).
    pub current: Option<Nav>,
    /// The page's content, inside `<main>`.
    pub body: Markup,
}

/// The navigation's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    /// `/`
    Inbox,
    /// `/cases`
    Cases,
    /// `/request`
    Request,
    /// `/readiness`
    Readiness,
    /// `/audit`
    Audit,
}

/// The page as HTML with `status`.
pub fn respond(status: StatusCode, page: Page<'_>) -> Response {
    let mut response = (status, render(page).into_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The page as markup.
pub fn render(page: Page<'_>) -> Markup {
    let entries: &[(Nav, &str, &str)] = &[
        (Nav::Inbox, "/", "Inbox"),
        (Nav::Cases, "/cases", "Cases"),
        (Nav::Request, "/request", "New request"),
        (Nav::Readiness, "/readiness", "Readiness"),
        (Nav::Audit, "/audit", "Audit"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (text(page.title)) " · Custody" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    p.brand { a href="/" { "Custody" } }
                    @if let Some(session) = page.session {
                        nav aria-label="Main" {
                            ul {
                                @for (nav, href, label) in entries {
                                    @if *nav != Nav::Audit || session.is_auditor() {
                                        li {
                                            @if page.current == Some(*nav) {
                                                a href=(href) aria-current="page" { (label) }
                                            } @else {
                                                a href=(href) { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        div.who {
                            span { "Signed in as " strong { (text(session.principal.id.as_str())) }
                                @if session.principal.display_name != session.principal.id.as_str() {
                                    " (" (text(&session.principal.display_name)) ")"
                                }
                            }
                            form method="post" action="/sign-out" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    (page.body)
                }
                footer {
                    p { "Custody: the system of record for governed access changes." }
                }
            }
        }
    }
}

/// The 404 page.
pub fn not_found(session: Option<&Session>, what: &str) -> Response {
    respond(
        StatusCode::NOT_FOUND,
        Page {
            title: "Not found",
            session,
            current: None,
            body: html! {
                h1 { "Not found" }
                p { (text(what)) }
                p { a href="/" { "Back to the inbox" } }
            },
        },
    )
}
