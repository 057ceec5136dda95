//! `GET /docs` and the strictness of `GET /openapi.json`: the page is
//! served from the binary and renders the document; the document states
//! every answer and field rule that clients and fuzzers rely on.

use crate::support::{chromium_dump_dom, chromium_or_skip, spawn_app};
use hyper::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn docs_page_is_html_that_loads_the_document() {
    let app = spawn_app().await;
    let (status, content_type, body) = app.get_text(&app.base, "/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("/openapi.json"));
    // Self-contained: nothing is loaded from elsewhere.
    assert!(!body.contains("<script src"), "no external scripts");
    assert!(!body.contains("https://"), "no CDN");
}

/// Every operation of the document, as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

fn statuses(op: &Value) -> Vec<String> {
    op["responses"]
        .as_object()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn document_lists_every_answer_of_every_operation() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", None).await.body;
    let ops = operations(&doc);
    assert!(ops.len() >= 34, "{} operations", ops.len());
    for (method, path, op) in &ops {
        let codes = statuses(op);
        let has = |c: &str| codes.iter().any(|s| s == c);
        let at = format!("{} {path}: {codes:?}", method.to_uppercase());
        assert!(has("503"), "every route can be shed: {at}");
        if op.get("requestBody").is_some() {
            for c in ["400", "413", "422"] {
                assert!(has(c), "a JSON body route must list {c}: {at}");
            }
        }
        if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            assert!(has("401"), "a protected route must list 401: {at}");
        }
        if path.contains('{') {
            assert!(has("404"), "a path id route must list 404: {at}");
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let size = params.iter().find(|p| p["name"] == "size");
        if let Some(size) = size {
            assert!(has("422"), "a list must list 422: {at}");
            assert_eq!(size["schema"]["minimum"], json!(1), "{at}");
            assert_eq!(size["schema"]["maximum"], json!(100), "{at}");
            let page = params.iter().find(|p| p["name"] == "page").expect("page");
            assert_eq!(page["schema"]["minimum"], json!(1), "{at}");
        }
    }
    let lists = ops
        .iter()
        .filter(|(m, _, op)| {
            m == "get"
                && op["parameters"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["name"] == "size"))
        })
        .count();
    assert_eq!(
        lists, 5,
        "products, deals, orders, point history, my coupons"
    );
}

#[tokio::test]
async fn document_states_the_field_rules() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", None).await.body;
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let prop = |name: &str, field: &str| schema(name)["properties"][field].clone();

    // Request bodies refuse unknown fields, as the server does.
    for name in ["RegisterIn", "ProductIn", "OrderIn", "CouponIn", "ChargeIn"] {
        assert_eq!(schema(name)["additionalProperties"], json!(false), "{name}");
    }
    assert_eq!(prop("RegisterIn", "password")["minLength"], json!(8));
    assert_eq!(prop("ProductIn", "name")["maxLength"], json!(200));
    assert_eq!(prop("ProductIn", "price")["minimum"], json!(0));
    assert_eq!(prop("ChargeIn", "amount")["maximum"], json!(10_000_000));
    assert_eq!(prop("OrderIn", "items")["minItems"], json!(1));
    assert_eq!(prop("OrderIn", "items")["maxItems"], json!(10));
    assert_eq!(prop("OrderLineIn", "quantity")["maximum"], json!(10));
    assert_eq!(
        prop("ShippingAddressIn", "postal_code")["pattern"],
        json!("^[0-9]{5}$")
    );
    assert_eq!(schema("DiscountType")["enum"], json!(["fixed", "percent"]));
    assert_eq!(
        schema("OrderStatusName")["enum"],
        json!(["pending", "confirmed", "shipped", "delivered", "cancelled"])
    );
    // A PATCH may leave out any field; name and price may not be null.
    assert!(schema("ProductPatchIn")["required"]
        .as_array()
        .is_none_or(|r| r.is_empty()));
    assert_eq!(prop("ProductPatchIn", "name")["type"], json!("string"));
    // Answers carry every field, nullable ones as null.
    let product = schema("ProductOut");
    let required = product["required"].as_array().expect("required");
    assert_eq!(
        required.len(),
        product["properties"].as_object().expect("props").len()
    );
    assert_eq!(
        prop("ProductOut", "description")["type"],
        json!(["string", "null"])
    );
}

#[tokio::test]
async fn page_and_size_take_plain_digits_only() {
    let app = spawn_app().await;
    for (query, field) in [
        ("size=1%C2%A0", "size"),
        ("size=%201", "size"),
        ("size=%2B5", "size"),
        ("size=0", "size"),
        ("size=101", "size"),
        ("page=1%C2%A0", "page"),
        ("page=-1", "page"),
        ("page=1.0", "page"),
        ("page=", "page"),
        ("page=99999999999999999999", "page"),
    ] {
        let r = app.get(&format!("/products?{query}"), None).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(r.code(), "VALIDATION_ERROR", "{query}");
        assert!(r.body["details"][field].is_string(), "{query}: {}", r.body);
    }
    let r = app.get("/products?page=01&size=100", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.body["page"].clone(), r.body["size"].clone()),
        (json!(1), json!(100))
    );
}

#[tokio::test]
async fn integer_fields_take_integral_numbers() {
    let app = spawn_app().await;
    let (_, token) = app.user("int@x.co").await;
    let r = app
        .post("/points/charges", Some(&token), json!({"amount": 500.0}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["amount"], json!(500));
    let r = app
        .post("/points/charges", Some(&token), json!({"amount": 1.5}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["details"]["amount"].is_string(), "{}", r.body);
}

/// The page in a real browser: every operation of the document appears.
/// Skipped without Chromium, except in CI (`CI=true`).
#[tokio::test]
async fn docs_page_renders_every_operation_in_chromium() {
    let Some(bin) = chromium_or_skip("docs_page_renders_every_operation_in_chromium") else {
        return;
    };
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", None).await.body;
    let url = format!("{}/docs", app.base);
    // Off the runtime's thread: the server under test must keep answering.
    let mut browser_cmd = chromium_dump_dom(bin, &app.dir, &url, 10000);
    let output = tokio::task::spawn_blocking(move || browser_cmd.output())
        .await
        .expect("join")
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dom = String::from_utf8_lossy(&output.stdout);
    for (method, path, _) in operations(&doc) {
        let marker = format!("data-op=\"{} {path}\"", method.to_uppercase());
        assert!(dom.contains(&marker), "{marker} not rendered");
    }
    assert!(dom.contains("VALIDATION_ERROR"), "responses rendered");
}
