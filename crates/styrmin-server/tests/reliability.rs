//! Attacks on the server's availability and boundaries, each answered at its root: a
//! runaway values template, oversized and slow requests, costly queries, git sources that
//! point at the server's own disk, oversized driver files. Each test states the attack and
//! what the server does instead of stalling or leaking. The table is docs/reliability.md.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::json;
use styrmin_client::ErrorKind;
use styrmin_server::{RenderLimits, Settings};
use styrmin_testkit::*;

/// A values template whose nested loops would run for hours without a budget.
const RUNAWAY: &str = "\n{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}{{ a }}{% endfor %}{% endfor %}{% endfor %}\n";

/// Loads a copy of the example driver with `extra` appended to its values template.
async fn load_driver_with_template_tail(h: &Harness, extra: &str) {
    let driver = example_driver_copy();
    let values = driver.path().join("values.j2.yml");
    let mut text = std::fs::read_to_string(&values).unwrap();
    text.push_str(extra);
    std::fs::write(&values, text).unwrap();
    ok(
        &h.admin,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.path().display().to_string()}),
    )
    .await;
}

const CREATE: &str = "mutation($env: ID!) { createDeployment(driver: \"my-app\", appVersion: \"2.3.1\", environmentId: $env, name: \"shop\", parameters: {admin_email: \"ops@example.com\"}) { deployment { id } } }";

/// The 99th percentile of `times`.
fn p99(times: &mut [Duration]) -> Duration {
    times.sort();
    times[(times.len() * 99 / 100).min(times.len() - 1)]
}

/// An operator's template with a huge nested loop renders off the async runtime and outside
/// any transaction, and stops when its fuel runs out with an error naming the limit; while
/// it runs a viewer's `{ me { name } }` keeps answering fast (p99 under 100 ms) and nothing
/// of the refused deployment is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_values_template_runs_out_of_fuel_while_a_viewer_keeps_being_answered() {
    // The server's default limits.
    let h = Harness::new(Kind::Sqlite).await;
    let (_, env, _) = h.cluster_with_environment("c1", "prod").await;
    load_driver_with_template_tail(&h, RUNAWAY).await;
    let viewer = h.token("watcher", "viewer").await;
    let before = h.row_counts().await;

    let admin = h.admin.clone();
    let started = Instant::now();
    let create = tokio::spawn(async move { admin.request(CREATE, json!({"env": env})).await });
    let mut times = Vec::new();
    while !create.is_finished() {
        let asked = Instant::now();
        ok(&viewer, "{ me { name } }", json!({})).await;
        times.push(asked.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the render never ended"
        );
    }
    let e = create
        .await
        .unwrap()
        .expect_err("the runaway template is refused");
    assert_eq!(e.kind, ErrorKind::Validation, "{e}");
    assert!(
        e.message.contains("limit of 2000000 steps"),
        "the error names the limit: {e}"
    );
    assert!(times.len() >= 20, "only {} samples", times.len());
    let p99 = p99(&mut times);
    eprintln!(
        "render took {:?}; viewer p99 {p99:?} over {} requests",
        started.elapsed(),
        times.len()
    );
    assert!(p99 < Duration::from_millis(100), "viewer p99 {p99:?}");
    assert_eq!(
        h.row_counts().await,
        before,
        "a refused render writes nothing"
    );
}

/// A render past the wall-clock limit is refused with a message naming it, and the server
/// still stops promptly (what `styrmin server` does on SIGTERM) while the render's thread
/// burns the rest of its fuel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_past_the_time_limit_is_refused_and_the_server_still_stops() {
    let settings = Settings {
        render: RenderLimits {
            fuel: 5_000_000,
            timeout: Duration::from_millis(100),
            slots: 1,
        },
        ..fast_settings()
    };
    let h = Harness::with(Kind::Sqlite, settings).await;
    let (_, env, _) = h.cluster_with_environment("c1", "prod").await;
    load_driver_with_template_tail(&h, RUNAWAY).await;
    let e = fails_with(&h.admin, ErrorKind::Validation, CREATE, json!({"env": env})).await;
    assert!(e.message.contains("limit of 0.1 s per render"), "{e}");
    let stopping = Instant::now();
    h.server.stop().await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        stopping.elapsed()
    );
}

/// A POST of `body` to `path`, with `token` when given; returns the status.
async fn post_bytes(h: &Harness, path: &str, token: Option<&str>, body: Vec<u8>) -> u16 {
    let http = reqwest::Client::new();
    let mut request = http
        .post(format!("{}{path}", h.server.url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .status()
        .as_u16()
}

/// The status a chunked POST of `body` to `/graphql` gets (no `Content-Length`: the size
/// is only known by reading).
async fn post_chunked(h: &Harness, token: &str, body: Vec<u8>) -> String {
    let addr = h.server.addr;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        for chunk in body.chunks(64 * 1024) {
            // The server may answer and close before the whole body is sent.
            if stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|()| stream.write_all(chunk))
                .and_then(|()| stream.write_all(b"\r\n"))
                .is_err()
            {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    })
    .await
    .unwrap()
}

/// A GraphQL document of about `len` bytes (a long comment).
fn big_query(len: usize) -> Vec<u8> {
    json!({"query": format!("{{ me {{ name }} }} #{}", "x".repeat(len))})
        .to_string()
        .into_bytes()
}

/// Bodies are limited before they are read: an anonymous request is refused on its
/// missing token (401, body unread); a signed-in one past 1 MiB is a 413, declared or
/// streamed; a UI form without a session is sent to sign in before its body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_limited_before_they_are_read_and_after_the_token() {
    let h = Harness::new(Kind::Sqlite).await;
    let two_mib = 2 * 1024 * 1024;
    assert_eq!(
        post_bytes(&h, "/graphql", None, big_query(two_mib)).await,
        401
    );
    assert_eq!(
        post_bytes(&h, "/graphql", Some(ADMIN_TOKEN), big_query(two_mib)).await,
        413
    );
    let status = post_chunked(&h, ADMIN_TOKEN, big_query(two_mib)).await;
    assert!(status.contains(" 413 "), "{status}");
    // A small one still works, and a body that is not GraphQL is a plain 400.
    assert_eq!(
        post_bytes(&h, "/graphql", Some(ADMIN_TOKEN), big_query(1000)).await,
        200
    );
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/graphql", h.server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("not a GraphQL request") && !text.contains("Error("),
        "{text}"
    );

    // A UI form without a session: sent to sign in, its body unread (a 2 MiB form would
    // otherwise be read first).
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .post(format!("{}/deployments/new", h.server.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; two_mib])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    // Signed in: the form is read up to the limit.
    let r = no_redirects
        .post(format!("{}/deployments/new", h.server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; two_mib])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

/// A client that sends half a request's headers and waits is cut off after the header
/// timeout; it does not hold a connection forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let settings = Settings {
        header_timeout: Duration::from_millis(500),
        ..fast_settings()
    };
    let h = Harness::with(Kind::Sqlite, settings).await;
    let addr = h.server.addr;
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let mut buf = [0u8; 1024];
        // EOF (or a 408) once the server gives up on the headers.
        let _ = stream.read(&mut buf);
        started.elapsed()
    })
    .await
    .unwrap();
    assert!(
        closed_after < Duration::from_secs(5),
        "the connection stayed open {closed_after:?}"
    );
}

/// Many aliases of a long list of large documents are refused before they run: the cost
/// counts `first:` times what each item costs, and aliases are capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_queries_are_refused_before_they_run() {
    let h = Harness::new(Kind::Sqlite).await;
    let viewer = h.token("curious", "viewer").await;
    let aliases: String = (0..20)
        .map(|i| format!("r{i}: flowRuns(first: 1000) {{ payload }} "))
        .collect();
    let e = fails(&viewer, &format!("{{ {aliases} }}"), json!({})).await;
    assert!(e.message.contains("complex"), "{e}");
    // The same with `first` from a variable.
    let e = fails(
        &viewer,
        "query($n: Int) { a: flowRuns(first: $n) { payload } b: flowRuns(first: $n) { payload } c: flowRuns(first: $n) { payload } d: flowRuns(first: $n) { payload } e: flowRuns(first: $n) { payload } f: flowRuns(first: $n) { payload } g: flowRuns(first: $n) { payload } h: flowRuns(first: $n) { payload } i: flowRuns(first: $n) { payload } j: flowRuns(first: $n) { payload } k: flowRuns(first: $n) { payload } }",
        json!({"n": 1000}),
    )
    .await;
    assert!(e.message.contains("complex"), "{e}");
    let cheap: String = (0..40).map(|i| format!("m{i}: me {{ name }} ")).collect();
    let e = fails(&viewer, &format!("{{ {cheap} }}"), json!({})).await;
    assert!(e.message.contains("40 aliases"), "{e}");
    // An ordinary page still answers.
    ok(
        &viewer,
        "{ a: flowRuns(first: 50) { payload } b: me { name } }",
        json!({}),
    )
    .await;
}

/// Git sources are remote repositories: `file://` and server paths are refused, a
/// driver `path` is relative and stays in the repository, and a missing one is reported
/// without naming the server's directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_drivers_cannot_read_the_servers_disk() {
    let load = "mutation($u: String!, $p: String) { loadApplicationDriverVersion(repoUrl: $u, branch: \"main\", path: $p) { created } }";
    let repo = example_driver_copy();
    commit_all(repo.path(), "driver");
    let file_url = format!("file://{}", repo.path().display());

    let strict = Harness::with(
        Kind::Sqlite,
        Settings {
            allow_local_git: false,
            ..fast_settings()
        },
    )
    .await;
    for url in [file_url.clone(), repo.path().display().to_string()] {
        let e = fails_with(
            &strict.admin,
            ErrorKind::Validation,
            load,
            json!({"u": url, "p": null}),
        )
        .await;
        assert_eq!(e.fields[0].field, "repoUrl", "{e}");
        assert!(e.message.contains("not a remote git repository"), "{e}");
    }
    for path in ["/etc", "../..", "chart/../../x"] {
        let e = fails_with(
            &strict.admin,
            ErrorKind::Validation,
            load,
            json!({"u": "https://example.invalid/r.git", "p": path}),
        )
        .await;
        assert_eq!(e.fields[0].field, "path", "{e}");
    }

    // With local repositories allowed (tests, development), a missing directory and a link
    // out of the checkout read the same, naming no server directory.
    let h = Harness::new(Kind::Sqlite).await;
    std::os::unix::fs::symlink("/etc", repo.path().join("etc-link")).unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "link"]);
    let mut messages = Vec::new();
    for path in ["missing", "etc-link"] {
        let e = fails_with(
            &h.admin,
            ErrorKind::Validation,
            load,
            json!({"u": file_url, "p": path}),
        )
        .await;
        assert!(
            !e.message.contains("/tmp") && !e.message.contains("/etc"),
            "{e}"
        );
        messages.push(e.message.replace(path, "P"));
    }
    assert_eq!(messages[0], messages[1]);
}

/// A driver directory with a 3 GB file is refused as too large without reading the file:
/// the size limit is checked while reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_driver_file_is_refused_while_it_is_read() {
    let h = Harness::new(Kind::Sqlite).await;
    let driver = example_driver_copy();
    let huge = std::fs::File::create(driver.path().join("chart/huge.bin")).unwrap();
    // Sparse: 3 GB that takes no disk.
    huge.set_len(3 * 1024 * 1024 * 1024).unwrap();
    let started = Instant::now();
    let e = fails_with(
        &h.admin,
        ErrorKind::Validation,
        "mutation($p: String!) { loadLocalApplicationDriverVersion(path: $p) { created } }",
        json!({"p": driver.path().display().to_string()}),
    )
    .await;
    assert!(e.message.contains("larger than 32 MiB"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// Every kind of token can be revoked: an extra agent token is deleted like any other
/// (the cluster's own one is rotated instead), and stops working at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_agent_tokens_are_revocable() {
    let h = Harness::new(Kind::Sqlite).await;
    let (cluster, _) = h.create_cluster("c1", json!({})).await;
    let v = ok(
        &h.admin,
        "mutation($c: ID!) { createToken(name: \"spare-agent\", role: agent, cluster: $c) { secret } }",
        json!({"c": cluster}),
    )
    .await;
    let spare = h.client(v["createToken"]["secret"].as_str().unwrap());
    claim(&spare, 1, 0.0).await;
    ok(
        &h.admin,
        "mutation { deleteToken(id: \"spare-agent\") { name } }",
        json!({}),
    )
    .await;
    fails_with(
        &spare,
        ErrorKind::Unauthorized,
        "mutation { claimFlowRuns(max: 1, waitSeconds: 0, agentVersion: \"t\", protocolVersion: \"1.0\") { id } }",
        json!({}),
    )
    .await;
    let e = fails_with(
        &h.admin,
        ErrorKind::Conflict,
        "mutation($t: ID!) { deleteToken(id: $t) { name } }",
        json!({"t": format!("agent-{cluster}")}),
    )
    .await;
    assert!(e.message.contains("rotateAgentToken"), "{e}");
}

/// A database that is busy (another process holds SQLite's write lock past the busy
/// timeout) is a 503 with Retry-After that the client may retry, never a 401; reads keep
/// working meanwhile, and the write goes through once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_a_503_with_retry_after_not_a_401() {
    let h = Harness::new(Kind::Sqlite).await;
    let viewer = h.token("reader", "viewer").await;
    ok(&viewer, "{ me { name } }", json!({})).await;
    let mut locker = h.db.connect().await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();

    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("{}/graphql", h.server.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"query": "mutation { createToken(name: \"late\", role: viewer) { secret } }"}),
        )
        .send()
        .await
        .unwrap();
    eprintln!("refused after {:?}", started.elapsed());
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{body}"
    );
    // A read is not held up by the writer.
    ok(&viewer, "{ me { name } }", json!({})).await;

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    ok(
        &h.admin,
        "mutation { createToken(name: \"late\", role: viewer) { secret } }",
        json!({}),
    )
    .await;
}

/// What the API stores and shows is bounded text: a token name with NUL, control or
/// bidirectional characters or longer than 64 characters is refused, and so is an agent
/// version or protocol version that is not a short version string (nothing is stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_reported_versions_are_checked_before_they_are_stored() {
    let h = Harness::new(Kind::Sqlite).await;
    let create = "mutation($n: String!) { createToken(name: $n, role: viewer) { secret } }";
    for name in [
        "nul\u{0}name".to_owned(),
        "tab\tname".to_owned(),
        "admin\u{202e}nimda".to_owned(),
        "x".repeat(65),
    ] {
        let e = fails_with(&h.admin, ErrorKind::Validation, create, json!({"n": name})).await;
        assert_eq!(e.fields[0].field, "name", "{e}");
    }
    ok(&h.admin, create, json!({"n": "ci-reader élan"})).await;

    let (_, _, agent) = h.cluster_with_environment("c1", "prod").await;
    let claim = "mutation($a: String, $p: String) { claimFlowRuns(max: 1, waitSeconds: 0, agentVersion: $a, protocolVersion: $p) { id } }";
    for (a, p, field) in [
        ("x".repeat(1000), "1.0".to_owned(), "agentVersion"),
        ("<script>".to_owned(), "1.0".to_owned(), "agentVersion"),
        ("1.2.3".to_owned(), "1.0\n".repeat(100), "protocolVersion"),
    ] {
        let e = fails_with(
            &agent,
            ErrorKind::Validation,
            claim,
            json!({"a": a, "p": p}),
        )
        .await;
        assert_eq!(e.fields[0].field, field, "{e}");
    }
    let v = ok(
        &h.admin,
        "{ clusters { agentVersion agentProtocolVersion } }",
        json!({}),
    )
    .await;
    assert_eq!(
        v["clusters"][0]["agentVersion"],
        serde_json::Value::Null,
        "{v}"
    );
    ok(&agent, claim, json!({"a": "1.2.3-rc.1+b7", "p": "1.0"})).await;
}

/// Fault: every PostgreSQL connection of the server is killed (as a database restart does)
/// while a viewer and an operator keep working. Each request either succeeds or gets a
/// 503 with Retry-After — never a 401 or a 500 — and the server recovers by itself: the
/// next requests succeed without restarting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_postgres_connections_are_503s_then_the_server_recovers() {
    let h = Harness::new(Kind::Postgres).await;
    let viewer = h.token("reader", "viewer").await;
    let viewer_token = {
        let v = ok(
            &h.admin,
            "mutation { createToken(name: \"raw-reader\", role: viewer) { secret } }",
            json!({}),
        )
        .await;
        v["createToken"]["secret"].as_str().unwrap().to_owned()
    };
    ok(&viewer, "{ me { name } }", json!({})).await;
    let url = h.server.url();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = done.clone();
    let load = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut statuses = Vec::new();
        for i in 0..60 {
            let (token, query) = if i % 2 == 0 {
                (
                    viewer_token.as_str(),
                    "{ me { name } clusters { name } }".to_owned(),
                )
            } else {
                (
                    ADMIN_TOKEN,
                    format!(
                        "mutation {{ createToken(name: \"t{i}\", role: viewer) {{ token {{ name }} }} }}"
                    ),
                )
            };
            let r = http
                .post(format!("{url}/graphql"))
                .bearer_auth(token)
                .json(&json!({"query": query}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            if status == 503 {
                assert_eq!(r.headers()["retry-after"], "1");
            } else {
                let body: serde_json::Value = r.json().await.unwrap();
                assert!(body["errors"].is_null(), "request {i}: {status} {body}");
            }
            statuses.push(status);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        statuses
    });
    let mut killer = h.db.connect().await;
    // Kill every connection after 10, 20, 30 and 40 requests.
    for after in [10, 20, 30, 40] {
        eventually("the load to progress", Duration::from_secs(30), || {
            let done = done.clone();
            async move { done.load(std::sync::atomic::Ordering::SeqCst) >= after }
        })
        .await;
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            .execute(&mut killer)
            .await
            .unwrap();
    }
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    eprintln!(
        "{} of {} requests were 503s",
        statuses.iter().filter(|s| **s == 503).count(),
        statuses.len()
    );
    // Recovered without a restart.
    ok(&viewer, "{ me { name } }", json!({})).await;
    ok(
        &h.admin,
        "mutation { createToken(name: \"after\", role: viewer) { secret } }",
        json!({}),
    )
    .await;
}
