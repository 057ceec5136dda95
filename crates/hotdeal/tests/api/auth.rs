use crate::support::spawn_app;
use base64::Engine;
use hyper::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn health_routes_name_their_service() {
    let app = spawn_app().await;
    for (path, service) in [
        ("/health", "gateway"),
        ("/auth/health", "auth-service"),
        ("/products/health", "product-service"),
        ("/orders/health", "order-service"),
        ("/coupons/health", "coupon-service"),
        ("/points/health", "point-service"),
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body, json!({"status": "healthy", "service": service}));
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_error_bodies() {
    let app = spawn_app().await;
    let r = app.get("/nope", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    assert!(r.body["message"].is_string());
    let r = app.send(Method::DELETE, "/products", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn register_login_me_verify() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "Kim@Example.com", "password": "password123", "name": "Kim"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(r.body["email"], "kim@example.com");
    assert_eq!(r.body["name"], "Kim");
    assert!(r.body["created_at"].is_string());
    assert!(r.body.get("password_hash").is_none() && r.body.get("password").is_none());

    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "kim@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3600);
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    assert!(r.body["refresh_token"].is_string());

    // The payload carries sub, iat, exp.
    let payload = token.split('.').nth(1).expect("payload");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        3600
    );

    let r = app.get("/auth/users/me", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], id.as_str());
    let r = app.get("/auth/verify", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"valid": true, "user_id": id}));
}

#[tokio::test]
async fn register_errors() {
    let app = spawn_app().await;
    let ok = json!({"email": "a@b.co", "password": "password123", "name": "Lee"});
    assert_eq!(
        app.post("/auth/register", None, ok.clone()).await.status,
        StatusCode::CREATED
    );
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "A@B.CO", "password": "password123", "name": "Lee"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "EMAIL_EXISTS"));

    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "nope", "password": "short", "name": "L"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR")
    );
    for field in ["email", "password", "name"] {
        assert!(
            r.body["details"][field].is_string(),
            "{field} named in {:?}",
            r.body
        );
    }
    let long_name = "x".repeat(51);
    let r = app
        .post(
            "/auth/register",
            None,
            json!({"email": "c@d.co", "password": "password123", "name": long_name}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["details"]["name"].is_string());
}

#[tokio::test]
async fn login_refuses_unknown_email_and_wrong_password_alike() {
    let app = spawn_app().await;
    app.user("u@x.co").await;
    let wrong = app
        .post(
            "/auth/login",
            None,
            json!({"email": "u@x.co", "password": "wrongpass"}),
        )
        .await;
    let unknown = app
        .post(
            "/auth/login",
            None,
            json!({"email": "who@x.co", "password": "password123"}),
        )
        .await;
    for r in [&wrong, &unknown] {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS")
        );
    }
    assert_eq!(wrong.body["message"], unknown.body["message"]);
}

#[tokio::test]
async fn refresh_tokens_are_single_use() {
    let app = spawn_app().await;
    app.user("r@x.co").await;
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "r@x.co", "password": "password123"}),
        )
        .await;
    let refresh = r.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let r1 = app
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(r1.status, StatusCode::OK);
    assert_eq!(r1.body["expires_in"], 3600);
    assert_ne!(r1.body["refresh_token"], refresh.as_str());
    let r2 = app
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(
        (r2.status, r2.code()),
        (StatusCode::UNAUTHORIZED, "INVALID_TOKEN")
    );
    // The new one works, once.
    let next = r1.body["refresh_token"].as_str().expect("next");
    assert_eq!(
        app.post("/auth/refresh", None, json!({"refresh_token": next}))
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .post("/auth/refresh", None, json!({"refresh_token": "made-up"}))
        .await;
    assert_eq!(r.code(), "INVALID_TOKEN");
}

#[tokio::test]
async fn missing_vs_invalid_tokens() {
    let app = spawn_app().await;
    let (_, token) = app.user("t@x.co").await;
    let r = app.get("/auth/users/me", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    let r = app
        .raw(
            Method::GET,
            "/auth/verify",
            &[("authorization", &format!("Basic {token}"))],
            "",
        )
        .await;
    assert_eq!(r.code(), "UNAUTHORIZED");
    let r = app.get("/auth/verify", Some("not.a.jwt")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "INVALID_TOKEN")
    );
    // A tampered signature.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        app.get("/auth/verify", Some(&forged)).await.code(),
        "INVALID_TOKEN"
    );
    // alg: none with the same payload.
    let payload = token.split('.').nth(1).expect("payload");
    let none = format!(
        "{}.{payload}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    assert_eq!(
        app.get("/auth/verify", Some(&none)).await.code(),
        "INVALID_TOKEN"
    );
    // Expired: an hour later by the server's clock.
    app.clock.advance(chrono::Duration::seconds(3600));
    let r = app.get("/auth/users/me", Some(&token)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "INVALID_TOKEN")
    );
}

#[tokio::test]
async fn openapi_document_covers_the_routes() {
    let app = spawn_app().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3."));
    let paths = r.body["paths"].as_object().expect("paths");
    for p in [
        "/health",
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/verify",
        "/auth/users/me",
        "/products",
        "/products/{product_id}",
        "/products/{product_id}/stock",
        "/products/deals",
        "/products/deals/{deal_id}",
        "/products/{product_id}/hotdeal/start",
        "/products/{product_id}/hotdeal/end",
        "/orders",
        "/orders/{order_id}",
        "/orders/{order_id}/cancel",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    let text = r.body.to_string();
    for code in [
        "INSUFFICIENT_STOCK",
        "DEAL_NOT_ACTIVE",
        "EMAIL_EXISTS",
        "PURCHASE_LIMIT_EXCEEDED",
        "INVALID_STATE",
    ] {
        assert!(text.contains(code), "{code} undocumented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_hashing_answers_503_quickly() {
    // One hashing slot, no queue, a costly hash: of 12 simultaneous
    // sign-ups some are refused at once with Retry-After.
    let dir = std::env::temp_dir().join(format!("hotdeal-test-{}", uuid::Uuid::new_v4()));
    let mut config = hotdeal::Config::for_tests(&dir);
    config.hash_workers = 1;
    config.hash_queue = 0;
    config.argon2.memory_kib = 16 * 1024;
    config.argon2.iterations = 4;
    let app = hotdeal::App::build(&config).await.expect("build");
    let base = format!("http://{}", app.local_addr());
    let server = tokio::spawn(app.serve(std::future::pending()));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let client = client.clone();
            let req = hyper::Request::post(format!("{base}/auth/register"))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                    r#"{{"email":"u{i}@x.co","password":"password123","name":"User"}}"#
                ))))
                .expect("request");
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let res = client.request(req).await.expect("send");
                (
                    res.status(),
                    res.headers().get("retry-after").cloned(),
                    started.elapsed(),
                )
            })
        })
        .collect();
    let (mut created, mut refused) = (0, 0);
    for c in calls {
        let (status, retry_after, took) = c.await.expect("join");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert!(retry_after.is_some(), "503 carries Retry-After");
                assert!(
                    took < std::time::Duration::from_millis(500),
                    "refused fast, took {took:?}"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        created >= 1 && refused >= 1,
        "created {created}, refused {refused}"
    );
    server.abort();
    std::fs::remove_dir_all(dir).ok();
}

/// Logs in once more; returns (access token, refresh token).
async fn login(app: &crate::support::TestApp, email: &str) -> (String, String) {
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": email, "password": "password123"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let field = |k: &str| r.body[k].as_str().expect("token").to_owned();
    (field("access_token"), field("refresh_token"))
}

#[tokio::test]
async fn logout_revokes_one_refresh_token_or_all_of_them() {
    let app = spawn_app().await;
    app.user("l@x.co").await;
    app.user("other@x.co").await;
    let (access, first) = login(&app, "l@x.co").await;
    let (_, second) = login(&app, "l@x.co").await;
    let (_, third) = login(&app, "l@x.co").await;
    let (other_access, others) = login(&app, "other@x.co").await;
    let refresh = |token: &str| {
        let body = json!({ "refresh_token": token });
        let app = &app;
        async move { app.post("/auth/refresh", None, body).await.status }
    };

    let r = app.post("/auth/logout", None, json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    // One token, named: only it stops working.
    let r = app
        .post(
            "/auth/logout",
            Some(&access),
            json!({"refresh_token": first}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(refresh(&first).await, StatusCode::UNAUTHORIZED);
    // Someone else's token is not the caller's to revoke.
    let r = app
        .post(
            "/auth/logout",
            Some(&access),
            json!({"refresh_token": others}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(refresh(&others).await, StatusCode::OK);
    // No body: every refresh token of the caller, and nobody else's.
    let (_, others_next) = login(&app, "other@x.co").await;
    let r = app
        .send(Method::POST, "/auth/logout", Some(&access), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(refresh(&second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&third).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&others_next).await, StatusCode::OK);
    let r = app
        .post("/auth/logout", Some(&other_access), json!({"nope": 1}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "unknown field");
}

/// A token signed with this server's key for a user its store does not
/// have (another database, same secret) is refused like a bad token, on
/// writes as well as reads — never a 500.
#[tokio::test]
async fn a_token_of_an_unknown_user_is_401_not_500() {
    let elsewhere = spawn_app().await;
    let (_, token) = elsewhere.user("ghost@x.co").await;
    let app = spawn_app().await;
    let (_, seller) = app.user("seller@x.co").await;
    let product = app.product(&seller, 1000, 10).await;
    let now = app.clock_now();
    let writes = [
        (
            "/orders",
            json!({"items": [{"product_id": product, "quantity": 1}]}),
        ),
        ("/points/charges", json!({"amount": 100})),
        (
            "/products",
            json!({"name": "Ghost", "price": 1, "stock": 1}),
        ),
        (
            "/coupons",
            json!({"name": "Ghost", "discount_type": "fixed", "discount_value": 1,
                   "min_order_amount": 0, "total_quantity": 1,
                   "starts_at": now, "ends_at": now + chrono::Duration::days(1)}),
        ),
    ];
    for (path, body) in writes {
        let r = app.post(path, Some(&token), body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "INVALID_TOKEN"),
            "{path}: {}",
            r.body
        );
    }
    assert_eq!(
        app.stock(&product).await,
        10,
        "the refused order took nothing"
    );
    let r = app.get("/auth/users/me", Some(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
