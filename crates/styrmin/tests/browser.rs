//! The web UI in a real browser (headless Chromium through chromedriver) against server +
//! agent + local cluster, as a user works: sign in with the keyboard, create the example
//! deployment from the form generated from its driver, watch its badge turn RUNNING
//! without a reload, read its URLs, upgrade it and watch the run's log arrive, stop it,
//! delete it; a viewer sees no mutation button and a forged POST from the browser is
//! refused. Every main page is also looked at on a phone-width screen.
//!
//! Screenshots of the main pages land in `.artifacts/screenshots/` (not committed) for a
//! reviewer to look at.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use styrmin_server::Settings;
use styrmin_testkit::cluster::LocalStack;
use styrmin_testkit::webdriver::{Browser, ENTER};
use styrmin_testkit::{ADMIN_TOKEN as ADMIN, ok};

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.artifacts/screenshots")
}

/// True while the page has not been reloaded since `mark_page` ran on it.
const NOT_RELOADED: &str = "window.__styrmin_marked === true";

async fn mark_page(browser: &Browser) {
    browser
        .script("window.__styrmin_marked = true; return null;", json!([]))
        .await;
}

fn status_is(status: &str) -> String {
    format!(
        "document.getElementById('status') && document.getElementById('status').dataset.status === '{status}'"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deploys_upgrades_stops_and_deletes_from_the_browser() {
    let setup = LocalStack::start(
        Settings::default(),
        json!({"fqdn_suffix": "apps.local.test"}),
    )
    .await;
    let mut agent = setup.agent_process(
        Path::new(env!("CARGO_BIN_EXE_styrmin")),
        &setup.server.url(),
        "5",
    );
    let base = setup.server.url();
    let shots = screenshots();
    let browser = Browser::start(1280, 900).await;

    // Sign in with the keyboard: the token field has the focus, Enter submits.
    browser.goto(&format!("{base}/")).await;
    browser.find("#token").await;
    assert!(browser.current_url().await.ends_with("/login"));
    browser.screenshot(&shots, "01-sign-in").await;
    browser.keys(&format!("{ADMIN}{ENTER}")).await;
    browser
        .until(
            "signed in, on the overview",
            Duration::from_secs(10),
            "document.querySelector('h1') && document.querySelector('h1').textContent === 'Overview'",
        )
        .await;
    browser.screenshot(&shots, "02-overview-empty").await;

    // The create form, from the navigation: choose the driver and environment, continue.
    browser.click("nav a[href='/deployments/new']").await;
    browser
        .click("form[aria-label='Choose driver and environment'] button")
        .await;
    browser.find("#create-form").await;
    assert_eq!(
        browser
            .script(
                "return document.getElementById('param-replicas').type;",
                json!([])
            )
            .await,
        "number"
    );
    assert_eq!(
        browser
            .script(
                "return document.getElementById('param-enable_api_docs').type;",
                json!([])
            )
            .await,
        "checkbox"
    );
    assert_eq!(
        browser
            .script(
                "return document.getElementById('param-log_level').tagName;",
                json!([])
            )
            .await,
        "SELECT"
    );
    // The browser itself holds back a form with the required field empty.
    browser.click("#create-form button[type=submit]").await;
    assert_eq!(
        browser
            .script(
                "return document.getElementById('param-admin_email').validity.valueMissing;",
                json!([])
            )
            .await,
        true
    );
    browser.fill("#name", "shop").await;
    browser.fill("#param-replicas", "1").await;
    browser.fill("#param-admin_email", "ops@example.com").await;
    browser.screenshot(&shots, "03-create-form").await;
    browser.click("#create-form button[type=submit]").await;

    // The deployment page: the badge turns RUNNING by itself.
    browser.find("#status").await;
    mark_page(&browser).await;
    browser
        .until(
            "the badge turns RUNNING without a reload",
            Duration::from_secs(120),
            &status_is("RUNNING"),
        )
        .await;
    browser
        .until("no reload", Duration::ZERO, NOT_RELOADED)
        .await;
    let url = browser.current_url().await;
    let id = url.rsplit('/').next().unwrap().to_owned();
    let urls = browser.text("#url-list").await;
    assert!(
        urls.contains("https://") && urls.contains("apps.local.test"),
        "the URL list: {urls}"
    );
    browser
        .until(
            "the pods are listed",
            Duration::from_secs(30),
            "document.querySelector('section[aria-labelledby=components]').textContent.includes('server')",
        )
        .await;
    browser.screenshot(&shots, "04-deployment-running").await;

    // A viewer, in a second browser: the same page without a button that would fail, and
    // a forged POST from that page's origin refused.
    let viewer = ok(
        &setup.admin,
        "mutation { createToken(name: \"eve\", role: viewer) { secret } }",
        json!({}),
    )
    .await["createToken"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = Browser::start(1280, 900).await;
    second.goto(&format!("{base}/login")).await;
    second.fill("#token", &format!("{viewer}{ENTER}")).await;
    second.find("nav").await;
    second.goto(&format!("{base}/deployments/{id}")).await;
    second.find("#status").await;
    assert_eq!(
        second
            .count("form[method=post][action^='/deployments']")
            .await,
        0
    );
    assert_eq!(
        second
            .count("a[href$='/edit'], a[href$='/upgrade'], a[href='/deployments/new']")
            .await,
        0
    );
    second.screenshot(&shots, "05-deployment-as-viewer").await;
    let forged = second
        .async_script(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'csrf=' + '0'.repeat(64)})
               .then(r => done(r.status), e => done(String(e)));",
            json!([format!("/deployments/{id}/stop")]),
        )
        .await;
    assert_eq!(forged, 403, "a forged POST is refused");
    second.close().await;
    let phase = ok(
        &setup.admin,
        "query($id: ID!) { deployment(id: $id) { phase } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        phase["deployment"]["phase"], "running",
        "the forged stop changed nothing"
    );

    // Upgrade from its form; the run's log streams into the page.
    browser.click("a[href$='/upgrade']").await;
    browser.fill("#appVersion", "2.4.0").await;
    browser.screenshot(&shots, "06-upgrade-form").await;
    browser.click("#upgrade-form button[type=submit]").await;
    let question = browser.accept_dialog().await;
    assert!(question.starts_with("Upgrade shop?"), "{question}");
    browser.find("#latest-log").await;
    mark_page(&browser).await;
    browser
        .until(
            "the upgrade's log streams in",
            Duration::from_secs(60),
            "document.getElementById('latest-log').textContent.includes('stop_server_before_upgrade')",
        )
        .await;
    browser
        .until(
            "the upgrade completes, still without a reload",
            Duration::from_secs(180),
            &format!(
                "{NOT_RELOADED} && document.getElementById('latest-log-title').textContent.includes('upgrade, completed') && {}",
                status_is("RUNNING")
            ),
        )
        .await;
    assert!(
        browser.text("#latest-log").await.contains("smoke_test"),
        "the log shows the post-upgrade smoke test"
    );
    assert!(browser.text("main").await.contains("2.4.0"));
    browser.screenshot(&shots, "07-deployment-upgraded").await;

    // The Instances diff: the image tag moved.
    browser
        .click("form[aria-label='Compare rendered values'] button")
        .await;
    browser.find("table.diff").await;
    assert!(
        browser.text("table.diff").await.contains("2.4.0"),
        "{}",
        browser.text("main").await
    );
    browser.screenshot(&shots, "08-values-diff").await;

    // The run's own page with its whole log.
    browser.goto(&format!("{base}/deployments/{id}")).await;
    browser
        .click("section[aria-labelledby=runs] tbody tr:first-child a")
        .await;
    browser.find("#log").await;
    assert!(browser.text("#log").await.contains("smoke_test"));
    browser.screenshot(&shots, "09-flow-run").await;

    // Stop: confirmed, then STOPPED without a reload.
    browser.goto(&format!("{base}/deployments/{id}")).await;
    browser.find("#status").await;
    mark_page(&browser).await;
    browser
        .click(&format!("form[action='/deployments/{id}/stop'] button"))
        .await;
    assert_eq!(browser.accept_dialog().await, "Stop shop?");
    browser
        .until(
            "the badge turns STOPPED",
            Duration::from_secs(90),
            &status_is("STOPPED"),
        )
        .await;
    browser.screenshot(&shots, "10-deployment-stopped").await;

    // The other main pages, for the reviewer.
    for (path, name) in [
        ("/", "11-overview"),
        ("/clusters/local", "12-cluster"),
        ("/environments/dev", "13-environment"),
        ("/drivers", "14-drivers"),
        ("/drivers/my-app", "15-driver"),
        ("/runs", "16-flow-runs"),
        ("/backups", "17-backups"),
    ] {
        browser.goto(&format!("{base}{path}")).await;
        browser.find("main h1").await;
        browser.screenshot(&shots, name).await;
    }

    // A phone's width: nothing wider than the screen but the tables, which scroll.
    browser.emulate_phone(390, 844).await;
    for path in [
        "/".to_owned(),
        format!("/deployments/{id}"),
        "/deployments/new?driver=my-app&environment=dev".to_owned(),
    ] {
        browser.goto(&format!("{base}{path}")).await;
        browser.find("main h1").await;
        assert_eq!(
            browser.script("return window.innerWidth;", json!([])).await,
            390
        );
        let overflow = browser
            .script("return document.documentElement.scrollWidth - document.documentElement.clientWidth;", json!([]))
            .await;
        assert_eq!(overflow, 0, "{path} is wider than a phone");
    }
    browser.goto(&format!("{base}/deployments/{id}")).await;
    browser.find("#status").await;
    browser.screenshot(&shots, "18-deployment-phone").await;
    browser.desktop().await;

    // Delete: confirmed; the environment page shows it going, then gone.
    browser.goto(&format!("{base}/deployments/{id}")).await;
    browser
        .click(&format!("form[action='/deployments/{id}/delete'] button"))
        .await;
    assert_eq!(browser.accept_dialog().await, "Delete shop?");
    browser
        .until(
            "on the environment page",
            Duration::from_secs(10),
            "location.pathname.startsWith('/environments/')",
        )
        .await;
    mark_page(&browser).await;
    browser
        .until(
            "the deployment leaves the environment without a reload",
            Duration::from_secs(120),
            &format!("{NOT_RELOADED} && !document.querySelector(\"a[href='/deployments/{id}']\")"),
        )
        .await;
    browser
        .screenshot(&shots, "19-environment-after-delete")
        .await;

    browser.close().await;
    agent.kill().await.ok();
    setup.stop().await;
}
