//! The web UI over HTTP, as a browser uses it: sign-in sets a strict session cookie,
//! pages show what the API knows, forms need the session's CSRF token (a forged POST is
//! refused and changes nothing), a viewer gets no buttons, a bearer token works for
//! scripts, values are HTML-escaped, and `/events` streams a change as it happens.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use styrmin_testkit::{ADMIN_TOKEN as ADMIN, Harness, Kind, example_deployment, ok};

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
    example_deployment(&h.admin, &env, "shop").await
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
    assert!(page.body.contains("Initial admin e-mail") && page.body.contains("ops@example.com"));
    assert!(
        page.body
            .contains("Log of the latest run (create, scheduled)"),
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
        String::from_utf8_lossy(&chunk).contains("event: change\ndata: "),
        "{chunk:?}"
    );
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("form pairs encode")
}

#[tokio::test]
async fn the_create_form_is_generated_from_the_driver_and_shows_errors_next_to_fields() {
    let h = Harness::new(Kind::Sqlite).await;
    let (_, env, _) = h.cluster_with_environment("prod", "shop-env").await;
    h.load_example_driver().await;
    let cookie = sign_in(&h, ADMIN).await;

    let page = get(
        &h,
        &format!("/deployments/new?environment={env}&driver=my-app"),
        Some(&cookie),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    // One input per parameter, of the kind's input type, defaults filled in, the
    // required one marked.
    for input in [
        r#"<input type="number" id="param-replicas" name="p.replicas" value="2""#,
        r#"<select id="param-log_level" name="p.log_level">"#,
        r#"<option value="info" selected>info</option>"#,
        r#"<input type="checkbox" id="param-enable_api_docs" name="p.enable_api_docs" value="true">"#,
        r#"<input type="checkbox" id="param-ingress_enabled" name="p.ingress_enabled" value="true" checked>"#,
        r#"<input type="text" id="param-admin_email" name="p.admin_email" value="" required>"#,
        r#"name="appVersion" value="2.3.1""#,
    ] {
        assert!(
            page.body.contains(input),
            "{input} missing from {}",
            page.body
        );
    }
    assert!(
        page.body
            .contains(r#"Initial admin e-mail <span class="required""#)
    );

    // Left empty, the required parameter is refused by the API, next to its field, with
    // what was typed kept; nothing is created.
    let before = h.row_counts().await;
    let csrf = csrf_of(&page.body);
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("driver", "my-app"),
        ("environment", env.as_str()),
        ("name", "shop"),
        ("appVersion", "2.3.1"),
        ("p.replicas", "3"),
        ("p.log_level", "debug"),
        ("p.admin_email", ""),
    ];
    let refused = post(&h, "/deployments/new", Some(&cookie), &form_encode(&form)).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains(r#"<p class="field-error" id="param-admin_email-error">required: the driver gives no default</p>"#),
        "{body}"
    );
    assert!(
        body.contains(r#"name="p.replicas" value="3""#),
        "typed value kept"
    );
    assert!(body.contains(r#"<option value="debug" selected>"#));
    assert_eq!(h.row_counts().await, before, "a refused form wrote nothing");

    // An application version outside the driver's range lands on its own field.
    form[4] = ("appVersion", "9.0.0");
    form[7] = ("p.admin_email", "ops@example.com");
    let refused = post(&h, "/deployments/new", Some(&cookie), &form_encode(&form)).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(body.contains(r#"id="appVersion-error""#), "{body}");

    form[4] = ("appVersion", "2.3.1");
    let created = post(&h, "/deployments/new", Some(&cookie), &form_encode(&form)).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let location = created.headers()[LOCATION].to_str().unwrap().to_owned();
    let id = location.trim_start_matches("/deployments/");
    let d = ok(
        &h.admin,
        "query($id: ID!) { deployment(id: $id) { name parameters appVersion } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        d["deployment"],
        json!({"name": "shop", "appVersion": "2.3.1", "parameters": {
            "replicas": 3, "log_level": "debug", "enable_api_docs": false,
            "ingress_enabled": false, "admin_email": "ops@example.com"}})
    );
}

#[tokio::test]
async fn update_and_upgrade_forms_send_only_changes_and_instances_diff() {
    let h = Harness::new(Kind::Sqlite).await;
    let id = with_a_deployment(&h).await;
    let cookie = sign_in(&h, ADMIN).await;

    let page = get(&h, &format!("/deployments/{id}/edit"), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"name="p.admin_email" value="ops@example.com""#),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let form = [
        ("csrf", csrf.as_str()),
        ("p.replicas", "4"),
        ("p.log_level", "info"),
        ("p.admin_email", "ops@example.com"),
        ("p.ingress_enabled", "true"),
    ];
    let response = post(
        &h,
        &format!("/deployments/{id}/edit"),
        Some(&cookie),
        &form_encode(&form),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let d = ok(
        &h.admin,
        "query($id: ID!) { deployment(id: $id) { parameters flowRuns { kind } instances { id } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(d["deployment"]["parameters"]["replicas"], 4);
    assert_eq!(d["deployment"]["flowRuns"][0]["kind"], "update");

    // A wrong integer typed into the form comes back next to its field.
    let bad = [
        ("csrf", csrf.as_str()),
        ("p.replicas", "two"),
        ("p.ingress_enabled", "true"),
    ];
    let refused = post(
        &h,
        &format!("/deployments/{id}/edit"),
        Some(&cookie),
        &form_encode(&bad),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains(r#"id="param-replicas-error">expected an integer, found &quot;two&quot;"#),
        "{body}"
    );

    // Two Instances now: the diff page shows the replicas change between them.
    let instances = d["deployment"]["instances"].as_array().unwrap();
    let (newer, older) = (
        instances[0]["id"].as_str().unwrap(),
        instances[1]["id"].as_str().unwrap(),
    );
    let diff = get(
        &h,
        &format!("/deployments/{id}/diff?from={older}&to={newer}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(diff.status, StatusCode::OK);
    assert!(
        diff.body.contains("<code>server.replicas</code>"),
        "{}",
        diff.body
    );
    assert!(diff.body.contains("<pre>2</pre>") && diff.body.contains("<pre>4</pre>"));

    let page = get(&h, &format!("/deployments/{id}/upgrade"), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page.body);
    let refused = post(
        &h,
        &format!("/deployments/{id}/upgrade"),
        Some(&cookie),
        &form_encode(&[("csrf", &csrf), ("appVersion", "3.0.0")]),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains(r#"id="appVersion-error""#)
    );
    let upgraded = post(
        &h,
        &format!("/deployments/{id}/upgrade"),
        Some(&cookie),
        &form_encode(&[("csrf", &csrf), ("appVersion", "2.4.0")]),
    )
    .await;
    assert_eq!(upgraded.status(), StatusCode::SEE_OTHER);
    let d = ok(
        &h.admin,
        "query($id: ID!) { deployment(id: $id) { appVersion flowRuns { kind } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(d["deployment"]["appVersion"], "2.4.0");
    assert_eq!(d["deployment"]["flowRuns"][0]["kind"], "upgrade");
}

#[tokio::test]
async fn every_page_renders_for_admin_and_viewer_and_only_the_admin_gets_forms() {
    every_page_renders(Kind::Sqlite).await;
}

#[tokio::test]
async fn every_page_renders_on_postgres_too() {
    every_page_renders(Kind::Postgres).await;
}

async fn every_page_renders(kind: Kind) {
    let h = Harness::new(kind).await;
    let id = with_a_deployment(&h).await;
    let d = ok(&h.admin, "query($id: ID!) { deployment(id: $id) { environmentId clusterId flowRuns { id } instances { id } } }", json!({"id": id})).await;
    let d = &d["deployment"];
    let run = d["flowRuns"][0]["id"].as_str().unwrap();
    let instance = d["instances"][0]["id"].as_str().unwrap();
    let pages = [
        "/".to_owned(),
        format!("/clusters/{}", d["clusterId"].as_str().unwrap()),
        format!("/environments/{}", d["environmentId"].as_str().unwrap()),
        "/drivers".to_owned(),
        "/drivers/my-app".to_owned(),
        "/runs".to_owned(),
        "/runs?state=scheduled".to_owned(),
        format!("/runs/{run}"),
        "/backups".to_owned(),
        format!("/deployments/{id}"),
        format!("/deployments/{id}/diff?from={instance}&to={instance}"),
        "/deployments/new?driver=my-app".to_owned(),
    ];
    let v = ok(
        &h.admin,
        "mutation { createToken(name: \"eve\", role: viewer) { secret } }",
        json!({}),
    )
    .await;
    let viewer = sign_in(&h, v["createToken"]["secret"].as_str().unwrap()).await;
    let admin = sign_in(&h, ADMIN).await;
    for path in &pages {
        let page = get(&h, path, Some(&admin)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(page.body.contains("<main id=\"main\">"), "{path}");
        let page = get(&h, path, Some(&viewer)).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "{path} as viewer: {}",
            page.body
        );
        for button in [
            "href=\"/deployments/new\"",
            "method=\"post\" action=\"/deployments",
            "Deploy my-app",
            "id=\"create-form\"",
        ] {
            assert!(
                !page.body.contains(button),
                "{path} shows `{button}` to a viewer"
            );
        }
    }
    let page = get(&h, "/drivers/my-app", Some(&admin)).await;
    for shown in [
        "check_database_settings",
        "smoke_test",
        "postgresql",
        "admin_email",
        "&gt;=2.0,&lt;3.0",
    ] {
        assert!(
            page.body.contains(shown),
            "{shown} missing from the driver page"
        );
    }
    let page = get(&h, "/runs", Some(&admin)).await;
    assert!(page.body.contains(&format!("/runs/{run}")) && page.body.contains(">shop</a>"));
    // Counted in one query: the agent never connected, so the one deployment is UNKNOWN.
    let page = get(&h, "/", Some(&admin)).await;
    assert!(page.body.contains(">UNKNOWN 1</span>"), "{}", page.body);
    let missing = get(&h, "/deployments/nope", Some(&admin)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// A UI session is a record of its own: the cookie holds a session secret, not the API
/// token; it expires (`Max-Age`), ends at sign-out, and ends when its token is revoked.
#[tokio::test]
async fn sessions_are_their_own_expiring_revocable_records() {
    let h = Harness::new(Kind::Sqlite).await;
    let v = ok(
        &h.admin,
        "mutation { createToken(name: \"alice\", role: viewer) { secret } }",
        json!({}),
    )
    .await;
    let token = v["createToken"]["secret"].as_str().unwrap().to_owned();
    let response = post(&h, "/login", None, &format!("token={token}")).await;
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        !set.contains(&token),
        "the cookie carries the API token: {set}"
    );
    assert!(set.contains("Max-Age=43200"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    assert_eq!(get(&h, "/", Some(&cookie)).await.status, StatusCode::OK);

    // Signing out ends the session on the server, not only in the browser.
    let page = get(&h, "/", Some(&cookie)).await;
    let form = format!("csrf={}", csrf_of(&page.body));
    assert_eq!(
        post(&h, "/logout", Some(&cookie), &form).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&h, "/", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );

    // Revoking the token ends its sessions.
    let cookie = sign_in(&h, &token).await;
    assert_eq!(get(&h, "/", Some(&cookie)).await.status, StatusCode::OK);
    ok(
        &h.admin,
        "mutation { deleteToken(id: \"alice\") { name } }",
        json!({}),
    )
    .await;
    assert_eq!(
        get(&h, "/", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );
}

/// Pages may not be framed or sniffed and load scripts and styles from the server only;
/// the GraphQL console is built in (no script from a CDN).
#[tokio::test]
async fn pages_carry_security_headers_and_load_nothing_from_elsewhere() {
    let h = Harness::new(Kind::Sqlite).await;
    for path in ["/login", "/graphql", "/static/app.js"] {
        let response = browser()
            .get(format!("{}{path}", h.server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("https://"),
            "{path} loads something from elsewhere"
        );
    }
}

/// Guessing tokens at sign-in is slowed: past 20 refusals in a minute an address gets 429
/// with Retry-After, even for a right token, until the minute is over.
#[tokio::test]
async fn repeated_failed_sign_ins_are_rate_limited() {
    let h = Harness::new(Kind::Sqlite).await;
    for _ in 0..20 {
        let refused = post(&h, "/login", None, "token=stm_guess").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = post(&h, "/login", None, &format!("token={ADMIN}")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    // The API is not affected.
    ok(&h.admin, "{ me { name } }", json!({})).await;
}

/// The backup buttons: "Back up now" on a deployment schedules its backup; the page then
/// lists it with its per-component results and a Restore button whose confirmation names
/// the deployment whose data is overwritten; restoring goes back only to a page of this
/// site; the environment page backs up the whole environment, refuses without a location
/// (saying so), and clones with data; a viewer gets none of these buttons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_and_clone_buttons() {
    let h = Harness::new(Kind::Sqlite).await;
    let (cluster, env, agent) = h.cluster_with_environment("prod", "shop-env").await;
    let bare = h.create_environment("bare", &cluster).await;
    ok(&h.admin, "mutation { createBackupStorageLocation(name: \"s3\", endpoint: \"http://127.0.0.1:9000\", bucket: \"b\", region: \"r\", accessKeyId: \"k\", secretAccessKey: \"s\") { id } }", json!({})).await;
    ok(&h.admin, "mutation($e: ID!) { assignBackupStorageLocation(environmentId: $e, backupStorageLocationId: \"s3\") { id } }", json!({"e": env})).await;
    h.load_example_driver().await;
    let id = example_deployment(&h.admin, &env, "shop").await;
    styrmin_testkit::finish(&agent, "create").await;
    let cookie = sign_in(&h, ADMIN).await;

    let page = get(&h, &format!("/deployments/{id}"), Some(&cookie)).await;
    assert!(page.body.contains("Back up now"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    let response = post(
        &h,
        &format!("/deployments/{id}/backup"),
        Some(&cookie),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let run = styrmin_testkit::claim_one(&agent).await;
    assert_eq!(run["kind"], "backup");
    ok(&agent, "mutation($id: ID!, $a: Int!, $r: JSON) { completeFlowRun(id: $id, attempt: $a, result: $r) { state } }", json!({"id": run["id"], "a": run["attempt"], "r": {"state": "completed", "sizeBytes": 777, "components": [{"component": "postgresql", "kind": "postgres", "bytes": 512, "durationMs": 3, "error": null}], "errors": []}})).await;
    let backup_id = run["payload"]["backupId"].as_str().unwrap().to_owned();

    let page = get(&h, &format!("/deployments/{id}"), Some(&cookie)).await;
    assert!(
        page.body.contains(&backup_id)
            && page.body.contains("postgresql (postgres): 512 bytes")
            && page.body.contains("777"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!(
            "data-confirm=\"Restore backup {backup_id} into deployment shop? Its current data is overwritten"
        )),
        "{}",
        page.body
    );
    let response = post(
        &h,
        &format!("/backups/{backup_id}/restore"),
        Some(&cookie),
        &format!("csrf={csrf}&back=/deployments/{id}"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[LOCATION],
        format!("/deployments/{id}").as_str()
    );
    let response = post(
        &h,
        &format!("/backups/{backup_id}/restore"),
        Some(&cookie),
        &format!("csrf={csrf}&back=//evil.example/"),
    )
    .await;
    assert_eq!(response.headers()[LOCATION], "/backups");
    let restores = ok(
        &h.admin,
        "{ restores { state targetDeploymentId } }",
        json!({}),
    )
    .await;
    assert_eq!(restores["restores"].as_array().unwrap().len(), 2);

    // The environment page: back up the whole environment, refused without a location.
    let page = get(&h, &format!("/environments/{env}"), Some(&cookie)).await;
    assert!(page.body.contains("Back up now") && page.body.contains("Clone as"));
    let response = post(
        &h,
        &format!("/environments/{bare}/backup"),
        Some(&cookie),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = response.text().await.unwrap();
    assert!(body.contains("has no backup storage location"), "{body}");
    let response = post(
        &h,
        &format!("/environments/{env}/clone"),
        Some(&cookie),
        &format!("csrf={csrf}&name=rehearsal&with_data=1"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = response.headers()[LOCATION].to_str().unwrap().to_owned();
    let clone = get(&h, &to, Some(&cookie)).await;
    assert!(clone.body.contains("rehearsal"), "{}", clone.body);
    let restores = ok(&h.admin, "{ restores { id } }", json!({})).await;
    assert_eq!(
        restores["restores"].as_array().unwrap().len(),
        3,
        "the clone's restore"
    );

    let backups = get(&h, "/backups", Some(&cookie)).await;
    assert!(
        backups.body.contains("postgresql (postgres)"),
        "{}",
        backups.body
    );

    // A viewer sees the backups but no button.
    let viewer = ok(
        &h.admin,
        "mutation { createToken(name: \"ro\", role: viewer) { secret } }",
        json!({}),
    )
    .await["createToken"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer_cookie = sign_in(&h, &viewer).await;
    let page = get(&h, &format!("/deployments/{id}"), Some(&viewer_cookie)).await;
    assert!(page.body.contains(&backup_id));
    assert!(
        !page.body.contains("Back up now") && !page.body.contains("/restore\""),
        "{}",
        page.body
    );
}
