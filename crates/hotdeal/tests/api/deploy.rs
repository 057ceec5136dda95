//! The deployment files, checked with the real tools where this machine
//! has them: nginx (Debian's) started on `deploy/nginx/nginx.conf` in
//! front of two gateways, and the compose file read by Docker Compose.

use crate::gateway::spawn_gateway;
use crate::support::spawn_app;
use hyper::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The nginx binary, or `None` after a notice; under `CI=true` (which
/// installs it) a missing nginx fails the test.
fn nginx_or_skip(test: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nginx is not installed, and CI=true requires it (Debian package nginx-light)"
        );
        eprintln!("notice: {test} skipped: no nginx here (Debian package nginx-light)");
    }
    found
}

/// nginx in the foreground, stopped when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_of_two_gateways_serves_and_fails_over() {
    let Some(nginx) = nginx_or_skip("nginx example") else {
        return;
    };
    let app = spawn_app().await;
    let first = spawn_gateway(&[&app.direct], |_| {}).await;
    let second = spawn_gateway(&[&app.direct], |_| {}).await;
    // The example as shipped, pointed at this test's gateways and a free
    // port, with its files under a directory of its own.
    let dir = std::env::temp_dir().join(format!("hotdeal-nginx-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let example = std::fs::read_to_string(repo().join("deploy/nginx/nginx.conf")).expect("example");
    let conf = example
        .replace("gateway-1:8080", first.base.trim_start_matches("http://"))
        .replace("gateway-2:8080", second.base.trim_start_matches("http://"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    assert_ne!(
        conf, example,
        "the example names its gateways and port as expected"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("write conf");
    let globals = format!(
        "daemon off; pid {0}/nginx.pid; error_log {0}/error.log;",
        dir.display()
    );
    let check = Command::new(&nginx)
        .args(["-t", "-p"])
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", &globals])
        .output()
        .expect("nginx -t");
    assert!(
        check.status.success(),
        "nginx refuses the example: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _nginx = Nginx(
        Command::new(&nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", &globals])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx"),
    );
    let front = crate::support::Client::new(&format!("http://127.0.0.1:{port}"));
    let mut up = false;
    for _ in 0..100 {
        if front.send("GET", "/health", None, None).await.is_some() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "nginx did not start");

    let health = front
        .send("GET", "/health", None, None)
        .await
        .expect("health");
    assert_eq!(health.body["service"], "gateway");
    let (_, seller) = app.user("seller@nginx.test").await;
    let product = app.product(&seller, 1000, 10).await;
    let (_, buyer) = app.user("buyer@nginx.test").await;
    let line = json!({"items": [{"product_id": product, "quantity": 1}]});
    // One gateway goes away. A request caught on one of its connections
    // as it closes would get 502 for a POST (nginx never resends what may
    // have been taken; clients retry with an Idempotency-Key), so the
    // orders start once it is gone: then nginx sends everything to the
    // other one.
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..4 {
        let page = front
            .send("GET", &format!("/products/{product}"), None, None)
            .await
            .expect("page");
        assert_eq!(page.status, StatusCode::OK, "a read fails over");
    }
    for _ in 0..6 {
        let r = front
            .send("POST", "/orders", Some(&buyer), Some(line.clone()))
            .await
            .expect("order");
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{:?}; nginx says: {}",
            r.body,
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        let page = front
            .send("GET", &format!("/products/{product}"), None, None)
            .await
            .expect("page");
        assert_eq!(page.status, StatusCode::OK);
    }
    drop(second);
    assert_eq!(app.stock(&product).await, 4);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_compose_file_is_valid_compose() {
    let compose = repo().join("deploy/compose/compose.yaml");
    let tries: [&[&str]; 2] = [&["docker", "compose"], &["docker-compose"]];
    for cmd in tries {
        let Ok(out) = Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("-f")
            .arg(&compose)
            .args(["config", "-q"])
            .env("POSTGRES_PASSWORD", "checked-not-used")
            .output()
        else {
            continue;
        };
        if cmd.len() == 2
            && !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("unknown")
        {
            // A docker client without the compose plugin.
            continue;
        }
        assert!(
            out.status.success(),
            "{} refuses the compose file: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    eprintln!("notice: the compose file is not checked: no Docker Compose here (docker compose or docker-compose)");
}
