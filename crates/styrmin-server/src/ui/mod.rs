//! The web UI, served by the server itself at `/`: pages rendered on the server from the
//! same GraphQL schema the API serves (so every role check is the API's), kept live over
//! Server-Sent Events, with a little vanilla JS and CSS built into the binary.
//!
//! Sign-in: a token, kept in a `HttpOnly`, `SameSite=Strict` session cookie; every form
//! carries a CSRF token bound to that session (an HMAC under the server key). A request
//! with `Authorization: Bearer` works too, for scripts, and needs no CSRF token since the
//! browser never sends that header on its own.

mod fields;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use minijinja::Environment;

use crate::graphql::StyrminSchema;
use crate::state::AppState;

const TEMPLATES: [(&str, &str); 18] = [
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("deployment.html", include_str!("templates/deployment.html")),
    ("diff.html", include_str!("templates/diff.html")),
    ("new.html", include_str!("templates/new.html")),
    ("edit.html", include_str!("templates/edit.html")),
    ("upgrade.html", include_str!("templates/upgrade.html")),
    ("cluster.html", include_str!("templates/cluster.html")),
    (
        "environment.html",
        include_str!("templates/environment.html"),
    ),
    ("drivers.html", include_str!("templates/drivers.html")),
    ("driver.html", include_str!("templates/driver.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("backups.html", include_str!("templates/backups.html")),
    ("macros.html", include_str!("templates/macros.html")),
    (
        "deployments_table.html",
        include_str!("templates/deployments_table.html"),
    ),
    (
        "backups_table.html",
        include_str!("templates/backups_table.html"),
    ),
];

pub struct Ui {
    pub state: AppState,
    pub schema: StyrminSchema,
    pub templates: Environment<'static>,
}

pub type SharedUi = Arc<Ui>;

/// True for the URLs a page may link to: `http:` and `https:` ones. Anything else an agent
/// reports (`javascript:`, `data:`…) is shown as text.
fn is_web_url(value: &str) -> bool {
    let lower = value.trim_start().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && !value.chars().any(char::is_control)
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_test("web_url", |value: &str| is_web_url(value));
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("built-in template {name}: {e}"));
    }
    env
}

pub fn router(state: AppState, schema: StyrminSchema) -> Router {
    let ui = Arc::new(Ui {
        state,
        schema,
        templates: templates(),
    });
    Router::new()
        .route("/", get(pages::overview))
        .route(
            "/login",
            get(pages::login_page)
                .post(pages::login)
                .layer(DefaultBodyLimit::max(LOGIN_BODY)),
        )
        .route("/logout", post(pages::logout))
        .route("/clusters/{id}", get(pages::cluster))
        .route("/environments/{id}", get(pages::environment))
        .route("/environments/{id}/{op}", post(pages::environment_action))
        .route("/drivers", get(pages::drivers))
        .route("/drivers/{id}", get(pages::driver))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/backups", get(pages::backups))
        .route("/backups/{id}/{op}", post(pages::backup_action))
        .route("/deployments/new", get(pages::new_page).post(pages::new))
        .route("/deployments/{id}", get(pages::deployment))
        .route("/deployments/{id}/diff", get(pages::diff))
        .route(
            "/deployments/{id}/edit",
            get(pages::edit_page).post(pages::edit),
        )
        .route(
            "/deployments/{id}/upgrade",
            get(pages::upgrade_page).post(pages::upgrade),
        )
        .route("/deployments/{id}/{op}", post(pages::operate))
        .route("/events", get(pages::events))
        .route(
            "/static/app.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    include_str!("static/app.css"),
                )
                    .into_response()
            }),
        )
        .route(
            "/static/console.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    include_str!("static/console.js"),
                )
                    .into_response()
            }),
        )
        .route(
            "/static/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    include_str!("static/app.js"),
                )
                    .into_response()
            }),
        )
        .route_layer(middleware::from_fn_with_state(
            ui.clone(),
            pages::posts_need_a_session,
        ))
        .with_state(ui)
}

/// A sign-in form holds one token: anything longer is refused unread.
const LOGIN_BODY: usize = 4096;

#[cfg(test)]
mod tests {
    #[test]
    fn only_http_urls_are_links() {
        assert!(super::is_web_url("https://shop.example.test"));
        assert!(super::is_web_url("HTTP://x"));
        for text in [
            "javascript:alert(1)",
            " javascript:x",
            "data:text/html,x",
            "//evil",
            "ftp://x",
            "http://a\nb",
        ] {
            assert!(!super::is_web_url(text), "{text}");
        }
    }

    /// An agent-reported `javascript:` URL is shown as text, never as a link.
    #[test]
    fn a_javascript_url_is_not_rendered_as_a_link() {
        let env = super::templates();
        let html = env
            .get_template("deployments_table.html")
            .unwrap()
            .render(minijinja::context! {
                deployments => vec![minijinja::context! {
                    id => "d", name => "shop",
                    status => minijinja::context! { status => "READY", urls => vec!["javascript:alert(1)", "https://ok.test"] },
                }],
            })
            .unwrap();
        assert!(!html.contains("href=\"javascript:"), "{html}");
        assert!(html.contains("javascript:alert(1)"), "{html}");
        assert!(html.contains("<a href=\"https:"), "{html}");
    }

    #[test]
    fn every_built_in_template_parses() {
        let env = super::templates();
        for (name, _) in super::TEMPLATES {
            env.get_template(name).unwrap();
        }
    }
}
