//! The web UI over HTTP, as a browser uses it: sign-in sets a strict session cookie,
//! pages show what the API knows, forms need the session's CSRF token (a forged POST is
//! refused and changes nothing), a viewer gets no buttons, a bearer token works for
//! scripts, values are HTML-escaped, and `/events` streams a change as it happens.

mod common;

use std::time::Duration;

use common::{Harness, Kind, create_example, ok};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

const ADMIN: &str = common::ADMIN_TOKEN;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Page {
    status: StatusCode,
    body: String,
}

async fn get(h: &Harness, path: &str, cookie: Option<&str>) -> Page {
    let mut request = browser().get(format!("{}{path}", h.server.url()));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    Page {
        status: response.status(),
        body: response.text().await.unwrap(),
    }
}

async fn post(h: &Harness, path: &str, cookie: Option<&str>, form: &str) -> reqwest::Response {
    let mut request = browser()
        .post(format!("{}{path}", h.server.url()))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form.to_owned());
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

/// Signs in with `token`; returns the `Cookie` header value.
async fn sign_in(h: &Harness, token: &str) -> String {
    let response = post(h, "/login", None, &format!("token={token}")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 64].to_owned()
}

/// A cluster, an environment and the example deployment `shop`.
async fn with_a_deployment(h: &Harness) -> String {
    let (_, env, _) = h.cluster_with_environment("prod", "shop-env").await;
    h.load_example_driver().await;
    create_example(&h.admin, &env, "shop").await["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn phase(h: &Harness, id: &str) -> String {
    ok(
        &h.admin,
        "query($id: ID!) { deployment(id: $id) { phase } }",
        json!({"id": id}),
    )
    .await["deployment"]["phase"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_shows_the_overview() {
    let h = Harness::new(Kind::Sqlite).await;
    let id = with_a_deployment(&h).await;

    let response = browser().get(h.server.url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/login");

    let refused = post(&h, "/login", None, "token=stm_wrong").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("That token was not accepted.")
    );

    let response = post(&h, "/login", None, &format!("token={ADMIN}")).await;
    let set = response.headers()[SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();

    let page = get(&h, "/", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    for shown in [
        "prod",
        "shop-env",
        "shop",
        "my-app",
        "2.3.1",
        "data-status=\"",
        &format!("/deployments/{id}"),
    ] {
        assert!(
            page.body.contains(shown),
            "{shown} missing from {}",
            page.body
        );
    }
    let page = get(&h, &format!("/deployments/{id}"), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("admin_email") && page.body.contains("ops@example.com"));
    assert!(
        page.body.contains("Log of the latest run (create)"),
        "{}",
        page.body
    );

    let out = post(
        &h,
        "/logout",
        Some(&cookie),
        &format!("csrf={}", csrf_of(&page.body)),
    )
    .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn a_forged_post_is_refused_and_changes_nothing() {
    let h = Harness::new(Kind::Sqlite).await;
    let id = with_a_deployment(&h).await;
    let cookie = sign_in(&h, ADMIN).await;
    let before = h.row_counts().await;

    for form in ["", "csrf=", &format!("csrf={}", "0".repeat(64))] {
        let response = post(&h, &format!("/deployments/{id}/stop"), Some(&cookie), form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{form}");
        assert!(response.text().await.unwrap().contains("CSRF"));
    }
    assert_eq!(h.row_counts().await, before, "a refused form wrote nothing");
    assert_eq!(phase(&h, &id).await, "running");

    // The page's own form works.
    let page = get(&h, &format!("/deployments/{id}"), Some(&cookie)).await;
    let response = post(
        &h,
        &format!("/deployments/{id}/stop"),
        Some(&cookie),
        &format!("csrf={}", csrf_of(&page.body)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(phase(&h, &id).await, "stopped");
}

#[tokio::test]
async fn a_viewer_sees_no_buttons_and_cannot_operate() {
    let h = Harness::new(Kind::Sqlite).await;
    let id = with_a_deployment(&h).await;
    let v = ok(
        &h.admin,
        "mutation { createToken(name: \"eve\", role: viewer) { secret } }",
        json!({}),
    )
    .await;
    let cookie = sign_in(&h, v["createToken"]["secret"].as_str().unwrap()).await;

    let page = get(&h, &format!("/deployments/{id}"), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("shop"));
    assert!(
        !page.body.contains(&format!("action=\"/deployments/{id}/")),
        "{}",
        page.body
    );

    // Even with a valid CSRF token, the API's role check refuses, and says so.
    let response = post(
        &h,
        &format!("/deployments/{id}/delete"),
        Some(&cookie),
        &format!("csrf={}", csrf_of(&page.body)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("delete:")
    );
    assert_eq!(phase(&h, &id).await, "running");
}

#[tokio::test]
async fn a_bearer_token_works_on_pages_for_scripts() {
    let h = Harness::new(Kind::Sqlite).await;
    let id = with_a_deployment(&h).await;
    let page = browser()
        .get(format!("{}/deployments/{id}", h.server.url()))
        .header(AUTHORIZATION, format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let response = browser()
        .post(format!("{}/deployments/{id}/stop", h.server.url()))
        .header(AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(phase(&h, &id).await, "stopped");
    let refused = browser()
        .get(h.server.url())
        .header(AUTHORIZATION, "Bearer stm_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn values_are_html_escaped() {
    let h = Harness::new(Kind::Sqlite).await;
    let (_, env, _) = h.cluster_with_environment("prod", "dev").await;
    h.load_example_driver().await;
    let v = ok(&h.admin, "mutation($env: ID!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $env, name: \"shop\", parameters: {admin_email: \"<script>alert(1)</script>\"}) { deployment { id } } }", json!({"env": env})).await;
    let id = v["createDeployment"]["deployment"]["id"].as_str().unwrap();
    let cookie = sign_in(&h, ADMIN).await;
    let page = get(&h, &format!("/deployments/{id}"), Some(&cookie)).await;
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);
    assert!(
        page.body.contains("&lt;script&gt;alert(1)"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn events_stream_a_change_as_it_happens() {
    let h = Harness::new(Kind::Sqlite).await;
    let id = with_a_deployment(&h).await;
    let cookie = sign_in(&h, ADMIN).await;
    let mut stream = browser()
        .get(format!("{}/events", h.server.url()))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(
        stream.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    ok(
        &h.admin,
        "mutation($id: ID!) { stopDeployment(id: $id) { flowRun { id } } }",
        json!({"id": id}),
    )
    .await;
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("an event within 5 s")
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&chunk).contains("event: change"),
        "{chunk:?}"
    );
}
