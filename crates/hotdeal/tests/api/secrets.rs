//! Secrets and connection URLs never reach the log, an error message or an
//! answer — checked on the real binary with every log level on.

use crate::support::Client;
use hyper::StatusCode;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "never-log-this-signing-key-0123456789";

fn hotdeal(dir: &Path, log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotdeal"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .env("HOTDEAL_ARGON2_MEMORY_KIB", "64")
        .env("HOTDEAL_ARGON2_ITERATIONS", "1")
        .env("HOTDEAL_ADMIN_LISTEN", "off")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    cmd
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hotdeal-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Runs a command that must fail before listening; returns its log.
fn refused(mut cmd: Command, log: &Path) -> String {
    let status = cmd.status().expect("run hotdeal");
    assert!(!status.success(), "started with a bad setting");
    std::fs::read_to_string(log).expect("log")
}

#[tokio::test]
async fn no_secret_or_database_url_reaches_the_log_or_an_answer() {
    let dir = temp_dir();
    let log = dir.join("server.log");
    let db_url = format!("sqlite://{}/store.db?mode=rwc", dir.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = hotdeal(&dir, &log)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", &db_url])
        .env("HOTDEAL_JWT_SECRET", SECRET)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("hotdeal listening")
    {
        assert!(Instant::now() < deadline, "server did not start");
        assert!(child.try_wait().expect("wait").is_none(), "server exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Some traffic, good and bad, so every path logs what it logs.
    let client = Client::new(&format!("http://127.0.0.1:{port}"));
    let user = json!({"email": "kim@example.com", "password": "password123", "name": "Kim"});
    client
        .ok("POST", "/auth/register", None, Some(user.clone()))
        .await;
    let login = json!({"email": "kim@example.com", "password": "password123"});
    let tokens = client.ok("POST", "/auth/login", None, Some(login)).await;
    let token = tokens["access_token"].as_str().expect("token").to_owned();
    let bad = Some(b"{bad json".to_vec());
    let r = client
        .send_bytes("POST", "/points/charges", Some(&token), bad)
        .await;
    assert_eq!(r.expect("up").status, StatusCode::BAD_REQUEST);
    let r = client
        .send("POST", "/orders", Some("forged.token.x"), Some(json!({})))
        .await;
    assert_eq!(r.expect("up").status, StatusCode::UNAUTHORIZED);
    for r in [
        client
            .send("GET", "/auth/users/me", Some(&token), None)
            .await,
        client.send("GET", "/nope", None, None).await,
    ] {
        let r = r.expect("up");
        let body = r.body.to_string();
        assert!(
            !body.contains(SECRET) && !body.contains("store.db"),
            "{body}"
        );
    }
    child.kill().expect("kill");
    child.wait().expect("wait");

    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("hotdeal listening"), "the log was captured");
    assert!(!logged.contains(SECRET), "the JWT secret was logged");
    assert!(!logged.contains(&db_url), "the database URL was logged");
    assert!(!logged.contains("$argon2id$"), "a password hash was logged");
    assert!(!logged.contains("password123"), "a password was logged");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_bad_database_url_is_refused_without_repeating_it() {
    let dir = temp_dir();
    let log = dir.join("server.log");
    let mut cmd = hotdeal(&dir, &log);
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "postgres://app:hunter2-db-password@127.0.0.1:1/hotdeal",
    ])
    .env("HOTDEAL_JWT_SECRET", SECRET);
    let logged = refused(cmd, &log);
    assert!(!logged.contains("hunter2-db-password"), "{logged}");
    assert!(!logged.contains(SECRET), "{logged}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_short_jwt_secret_is_refused_at_start() {
    for secret in ["", "short-secret"] {
        let dir = temp_dir();
        let log = dir.join("server.log");
        let mut cmd = hotdeal(&dir, &log);
        cmd.args(["--listen", "127.0.0.1:0"])
            .env("HOTDEAL_JWT_SECRET", secret);
        let logged = refused(cmd, &log);
        assert!(logged.contains("at least 32 bytes"), "{logged}");
        if !secret.is_empty() {
            assert!(!logged.contains(secret), "{logged}");
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
