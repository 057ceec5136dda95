//! A small in-memory server speaking the API contract (docs/api.md) for
//! the routes the scenarios use — including points and coupons, which the
//! real server only gains in a later release. It exists so every
//! scenario's setup, iteration and books can be exercised end to end in
//! tests; its rules are the contract's (stock never below zero, one coupon
//! per user, points never below zero), kept deliberately simple.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[derive(Default)]
struct Product {
    price: i64,
    stock: i64,
    seller: usize,
}

#[derive(Default)]
struct Deal {
    product: String,
    price: i64,
    stock: i64,
    remaining: i64,
    limit: Option<i64>,
    bought: HashMap<usize, i64>,
}

#[derive(Default)]
struct Coupon {
    total: i64,
    issued: i64,
    holders: Vec<usize>,
}

#[derive(Default)]
struct State {
    users: Vec<(String, i64)>, // (email, points)
    products: HashMap<String, Product>,
    deals: HashMap<String, Deal>,
    coupons: HashMap<String, Coupon>,
    orders: HashMap<String, (usize, Value)>,
    /// Whether register answers carry tokens (the additive later release).
    tokens_on_register: bool,
}

pub struct Fake {
    state: Mutex<State>,
}

fn reply(status: u16, body: Value) -> (u16, Value) {
    (status, body)
}

fn err(status: u16, code: &str) -> (u16, Value) {
    (
        status,
        json!({"error": code, "message": code.to_lowercase()}),
    )
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Fake {
    fn handle(
        &self,
        method: &Method,
        path: &str,
        auth: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let user: Option<usize> = auth
            .and_then(|a| a.strip_prefix("Bearer tok-"))
            .and_then(|n| n.parse().ok())
            .filter(|n: &usize| *n < st.users.len());
        let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let product_page =
            method == Method::GET && matches!(seg.as_slice(), ["products", id] if *id != "deals");
        let needs_auth = !product_page
            && !matches!(
                (method.as_str(), seg.as_slice()),
                ("GET", ["health"])
                    | ("POST", ["auth", "register"])
                    | ("POST", ["auth", "login"])
                    | ("GET", ["products", _, "stock"])
                    | ("GET", ["products", "deals", _])
                    | ("GET", ["coupons", _])
            );
        if needs_auth && user.is_none() {
            let known = matches!(
                seg.first(),
                Some(&("auth" | "products" | "orders" | "coupons" | "points" | "users"))
            );
            return if known {
                err(401, "UNAUTHORIZED")
            } else {
                err(404, "NOT_FOUND")
            };
        }
        let me = user.unwrap_or(usize::MAX);
        match (method.as_str(), seg.as_slice()) {
            ("GET", ["health"]) => reply(200, json!({"status": "healthy", "service": "gateway"})),
            ("POST", ["auth", "register"]) => {
                let email = body["email"].as_str().unwrap_or("").to_string();
                if st.users.iter().any(|u| u.0 == email) {
                    return err(409, "EMAIL_EXISTS");
                }
                st.users.push((email.clone(), 0));
                let n = st.users.len() - 1;
                let mut v = json!({"id": id(), "email": email, "name": body["name"], "created_at": "2025-01-01T00:00:00Z"});
                if st.tokens_on_register {
                    v["access_token"] = json!(format!("tok-{n}"));
                }
                reply(201, v)
            }
            ("POST", ["auth", "login"]) => {
                let email = body["email"].as_str().unwrap_or("");
                match st.users.iter().position(|u| u.0 == email) {
                    Some(n) => reply(
                        200,
                        json!({"access_token": format!("tok-{n}"), "refresh_token": "r", "token_type": "Bearer", "expires_in": 3600}),
                    ),
                    None => err(401, "INVALID_CREDENTIALS"),
                }
            }
            ("GET", ["auth", "users", "me"]) => {
                reply(200, json!({"id": id(), "email": st.users[me].0}))
            }
            ("POST", ["products"]) => {
                let pid = id();
                let price = body["price"].as_i64().unwrap_or(0);
                let stock = body["stock"].as_i64().unwrap_or(0);
                st.products.insert(
                    pid.clone(),
                    Product {
                        price,
                        stock,
                        seller: me,
                    },
                );
                reply(201, json!({"id": pid, "price": price, "stock": stock}))
            }
            ("PATCH", ["products", pid, "stock"]) => match st.products.get_mut(*pid) {
                Some(p) if p.seller == me => {
                    p.stock += body["delta"].as_i64().unwrap_or(0);
                    reply(200, json!({"product_id": pid, "stock": p.stock}))
                }
                Some(_) => err(403, "FORBIDDEN"),
                None => err(404, "NOT_FOUND"),
            },
            ("GET", ["products", "deals"]) => {
                let n = st.deals.len();
                reply(200, json!({"items": [], "total": n, "page": 1, "size": 20}))
            }
            ("POST", ["products", "deals"]) => {
                let pid = body["product_id"].as_str().unwrap_or("").to_string();
                let want = body["deal_stock"].as_i64().unwrap_or(0);
                let Some(p) = st.products.get_mut(&pid) else {
                    return err(404, "PRODUCT_NOT_FOUND");
                };
                if p.stock < want {
                    return err(400, "INSUFFICIENT_STOCK");
                }
                p.stock -= want;
                let did = id();
                let deal = Deal {
                    product: pid,
                    price: body["deal_price"].as_i64().unwrap_or(0),
                    stock: want,
                    remaining: want,
                    limit: body["per_user_limit"].as_i64(),
                    bought: HashMap::new(),
                };
                st.deals.insert(did.clone(), deal);
                reply(
                    201,
                    json!({"id": did, "deal_stock": want, "remaining_stock": want}),
                )
            }
            ("GET", ["products", "deals", did]) => match st.deals.get(*did) {
                Some(d) => reply(
                    200,
                    json!({"id": did, "deal_stock": d.stock, "remaining_stock": d.remaining}),
                ),
                None => err(404, "NOT_FOUND"),
            },
            ("GET", ["products", pid]) if *pid != "deals" => match st.products.get(*pid) {
                Some(p) => reply(200, json!({"id": pid, "price": p.price, "stock": p.stock})),
                None => err(404, "NOT_FOUND"),
            },
            ("GET", ["products", pid, "stock"]) => match st.products.get(*pid) {
                Some(p) => reply(200, json!({"product_id": pid, "stock": p.stock})),
                None => err(404, "NOT_FOUND"),
            },
            ("POST", ["points", "charges"]) => {
                let amount = body["amount"].as_i64().unwrap_or(0);
                st.users[me].1 += amount;
                reply(
                    201,
                    json!({"charge_id": id(), "amount": amount, "balance": st.users[me].1}),
                )
            }
            ("GET", ["points"]) => reply(200, json!({"user_id": id(), "balance": st.users[me].1})),
            ("POST", ["coupons"]) => {
                let cid = id();
                let total = body["total_quantity"].as_i64().unwrap_or(0);
                st.coupons.insert(
                    cid.clone(),
                    Coupon {
                        total,
                        ..Default::default()
                    },
                );
                reply(
                    201,
                    json!({"id": cid, "total_quantity": total, "issued_count": 0, "remaining": total}),
                )
            }
            ("GET", ["coupons", cid]) => match st.coupons.get(*cid) {
                Some(c) => reply(
                    200,
                    json!({"id": cid, "total_quantity": c.total, "issued_count": c.issued, "remaining": c.total - c.issued}),
                ),
                None => err(404, "NOT_FOUND"),
            },
            ("POST", ["coupons", cid, "issue"]) => match st.coupons.get_mut(*cid) {
                Some(c) if c.holders.contains(&me) => err(409, "COUPON_ALREADY_ISSUED"),
                Some(c) if c.issued >= c.total => err(409, "COUPON_SOLD_OUT"),
                Some(c) => {
                    c.issued += 1;
                    c.holders.push(me);
                    reply(
                        201,
                        json!({"id": id(), "coupon_id": cid, "status": "issued"}),
                    )
                }
                None => err(404, "NOT_FOUND"),
            },
            ("GET", ["users", "me", "coupons"]) => {
                let items: Vec<Value> = st
                    .coupons
                    .iter()
                    .filter(|(_, c)| c.holders.contains(&me))
                    .map(|(cid, _)| json!({"coupon_id": cid}))
                    .collect();
                reply(200, json!(items))
            }
            ("POST", ["orders"]) => self.order(&mut st, me, body),
            ("GET", ["orders", oid]) => match st.orders.get(*oid) {
                Some((owner, o)) if *owner == me => reply(200, o.clone()),
                Some(_) => err(403, "FORBIDDEN"),
                None => err(404, "NOT_FOUND"),
            },
            _ => err(404, "NOT_FOUND"),
        }
    }

    fn order(&self, st: &mut State, me: usize, body: &Value) -> (u16, Value) {
        let items = body["items"].as_array().cloned().unwrap_or_default();
        // All or nothing: check every line (summed per stock), then apply.
        let mut need: HashMap<String, i64> = HashMap::new();
        let mut total = 0;
        for it in &items {
            let q = it["quantity"].as_i64().unwrap_or(0);
            let key = match it["deal_id"].as_str() {
                Some(d) => {
                    let Some(deal) = st.deals.get(d) else {
                        return err(404, "DEAL_NOT_FOUND");
                    };
                    if let Some(l) = deal.limit {
                        if deal.bought.get(&me).copied().unwrap_or(0) + q > l {
                            return err(409, "PURCHASE_LIMIT_EXCEEDED");
                        }
                    }
                    total += deal.price * q;
                    format!("d:{d}")
                }
                None => {
                    let pid = it["product_id"].as_str().unwrap_or("");
                    let Some(p) = st.products.get(pid) else {
                        return err(404, "PRODUCT_NOT_FOUND");
                    };
                    total += p.price * q;
                    format!("p:{pid}")
                }
            };
            *need.entry(key).or_default() += q;
        }
        for (key, q) in &need {
            let have = match key.split_once(':') {
                Some(("d", d)) => st.deals.get(d).map_or(0, |x| x.remaining),
                Some((_, p)) => st.products.get(p).map_or(0, |x| x.stock),
                None => 0,
            };
            if have < *q {
                return err(400, "INSUFFICIENT_STOCK");
            }
        }
        let pay = body.get("payment").is_some();
        if pay && st.users[me].1 < total {
            return err(400, "INSUFFICIENT_POINTS");
        }
        for (key, q) in &need {
            match key.split_once(':') {
                Some(("d", d)) => {
                    if let Some(x) = st.deals.get_mut(d) {
                        x.remaining -= q;
                        *x.bought.entry(me).or_default() += q;
                    }
                }
                Some((_, p)) => {
                    if let Some(x) = st.products.get_mut(p) {
                        x.stock -= q;
                    }
                }
                None => {}
            }
        }
        if pay {
            st.users[me].1 -= total;
        }
        let oid = id();
        let lines: Vec<Value> = items
            .iter()
            .map(|it| json!({"product_id": it["product_id"], "quantity": it["quantity"]}))
            .collect();
        let order = json!({
            "id": oid, "items": lines, "total_amount": total, "status": "confirmed",
            "payment_status": if pay { "paid" } else { "unpaid" },
        });
        st.orders.insert(oid, (me, order.clone()));
        reply(201, order)
    }
}

/// Starts the fake on 127.0.0.1 port 0.
pub async fn start(tokens_on_register: bool) -> SocketAddr {
    let mut addrs = start_shared(1, tokens_on_register).await;
    addrs.pop().expect("one address")
}

/// Starts one fake behind `n` listeners: `n` "instances" over one shared
/// state, as the instances of a scaled deployment share one store. (Two
/// separate fakes share nothing — see `start` twice.)
pub async fn start_shared(n: usize, tokens_on_register: bool) -> Vec<SocketAddr> {
    let fake = Arc::new(Fake {
        state: Mutex::new(State {
            tokens_on_register,
            ..Default::default()
        }),
    });
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(listener.local_addr().expect("addr"));
        serve(listener, fake.clone());
    }
    addrs
}

fn serve(listener: TcpListener, fake: Arc<Fake>) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fake = fake.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let fake = fake.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let auth = parts
                            .headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok());
                        let (status, v) = fake.handle(&parts.method, parts.uri.path(), auth, &json);
                        let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
                        *resp.status_mut() = hyper::StatusCode::from_u16(status)
                            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}
