//! A small W3C WebDriver client for the browser tests: Debian's `chromedriver` driving
//! headless Chromium. Only the commands the tests use; every failure says which command
//! and what the driver answered.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The key W3C WebDriver names for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const ENTER: &str = "\u{E007}";
pub const TAB: &str = "\u{E004}";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Child,
    _profile: tempfile::TempDir,
}

#[derive(Clone)]
pub struct Element(String);

fn program(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session at
    /// `width`×`height`. Prompts (confirm dialogs) stay open until the test answers them.
    pub async fn start(width: u32, height: u32) -> Browser {
        let driver_bin = program("STYRMIN_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("STYRMIN_CHROMIUM", "/usr/bin/chromium");
        assert!(
            driver_bin.exists() && chromium.exists(),
            "the browser tests need {} and {} (Debian's chromium-driver and chromium; scripts/test.sh installs them)",
            driver_bin.display(),
            chromium.display()
        );
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval within a deadline
        }
        let profile = tempfile::tempdir().unwrap();
        // Without the background-networking flags Chromium keeps dialling Google's hosts,
        // which this closed network refuses.
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            _driver: driver,
            _profile: profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        } else if method == reqwest::Method::POST {
            request = request.json(&json!({}));
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let v: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    async fn try_command(&self, method: reqwest::Method, path: &str, body: Value) -> Option<Value> {
        let url = format!("{}{path}", self.session);
        let response = self
            .http
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .ok()?;
        let ok = response.status().is_success();
        let v: Value = response.json().await.ok()?;
        ok.then(|| v["value"].clone())
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn current_url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Makes the viewport a phone's (`width`×`height` CSS pixels, touch, mobile) through
    /// Chromium's DevTools; `desktop` undoes it. A window cannot be made that narrow.
    pub async fn emulate_phone(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": true}}),
            ),
        )
        .await;
    }

    pub async fn desktop(&self) {
        self.command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.clearDeviceMetricsOverride", "params": {}})),
        )
        .await;
    }

    /// The element `css` selects, waiting up to 10 s for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = self.find_now(css).await {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no element `{css}` on {} after 10 s:\n{}",
                self.current_url().await,
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval within a deadline
        }
    }

    pub async fn find_now(&self, css: &str) -> Option<Element> {
        let v = self
            .try_command(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        v[ELEMENT].as_str().map(|id| Element(id.to_owned()))
    }

    pub async fn count(&self, css: &str) -> usize {
        self.command(
            reqwest::Method::POST,
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    /// Clicks the element. A live page may swap `<main>` between finding the element and
    /// clicking it; the click then goes to the element as it is now (a few tries).
    pub async fn click(&self, css: &str) {
        for _ in 0..4 {
            let Element(id) = self.find(css).await;
            let path = format!("/element/{id}/click");
            if self
                .try_command(reqwest::Method::POST, &path, json!({}))
                .await
                .is_some()
            {
                return;
            }
        }
        let Element(id) = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/click"), None)
            .await;
    }

    /// Replaces the input's value with `text` (WebDriver key codes such as `ENTER` work).
    pub async fn fill(&self, css: &str, text: &str) {
        let Element(id) = self.find(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/clear"), None)
            .await;
        self.type_into(css, text).await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let Element(id) = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Keys to whatever has the focus, as a keyboard user types them.
    pub async fn keys(&self, text: &str) {
        let actions: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.command(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let Some(Element(id)) = self.find_now(css).await else {
            return String::new();
        };
        self.try_command(
            reqwest::Method::GET,
            &format!("/element/{id}/text"),
            json!({}),
        )
        .await
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
    }

    pub async fn script(&self, body: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": body, "args": args})),
        )
        .await
    }

    pub async fn async_script(&self, body: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": body, "args": args})),
        )
        .await
    }

    /// Accepts the confirm dialog that should be open, waiting up to 5 s for it; returns
    /// its question.
    pub async fn accept_dialog(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(text) = self
                .try_command(reqwest::Method::GET, "/alert/text", json!({}))
                .await
            {
                self.command(reqwest::Method::POST, "/alert/accept", None)
                    .await;
                return text.as_str().unwrap_or_default().to_owned();
            }
            assert!(Instant::now() < deadline, "no dialog opened");
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval within a deadline
        }
    }

    /// Waits up to `limit` for `check` (a JS expression) to be true; says what the page
    /// showed when it never was.
    pub async fn until(&self, what: &str, limit: Duration, check: &str) {
        let deadline = Instant::now() + limit;
        loop {
            let v = self
                .try_command(
                    reqwest::Method::POST,
                    "/execute/sync",
                    json!({"script": format!("return !!({check});"), "args": []}),
                )
                .await;
            if v == Some(Value::Bool(true)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not true after {limit:?}: `{check}`; the page shows:\n{}",
                self.text("main").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await; // poll interval within a deadline
        }
    }

    /// Saves a PNG of the whole page at the current width to `dir/name.png`: the window
    /// grows to the page's height for the shot, then returns to its size.
    pub async fn screenshot(&self, dir: &Path, name: &str) {
        let size = self
            .script(
                "return [window.outerWidth, window.outerHeight, document.documentElement.scrollHeight + (window.outerHeight - window.innerHeight)];",
                json!([]),
            )
            .await;
        let dimension = |i: usize| u32::try_from(size[i].as_u64().unwrap_or(900)).unwrap_or(900);
        let (width, height, full) = (dimension(0), dimension(1), dimension(2));
        self.resize(width, full.clamp(height, 6000)).await;
        let v = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        self.resize(width, height).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("the screenshot is base64");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}
