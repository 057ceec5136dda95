//! The public API's paths, as the gateway sees them: which role serves
//! each, and which methods need a Bearer token checked at the edge. The
//! table mirrors the services' router (`transport/http/mod.rs`); a path
//! missing here answers 404 at the edge, so a new route is added in both.

use crate::config::Role;
use axum::http::Method;

/// Whether a call needs a valid access token before it is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    Bearer,
}

/// One path template: `{name}` matches one segment.
pub struct Route {
    pub template: &'static str,
    pub role: Role,
    pub methods: &'static [(Method, Access)],
}

use Access::{Bearer, Public};
use Role::{Auth, Coupon, Order, Point, Product};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PATCH: Method = Method::PATCH;

/// Shorthand for the table.
const fn r(template: &'static str, role: Role, methods: &'static [(Method, Access)]) -> Route {
    Route {
        template,
        role,
        methods,
    }
}

/// Fixed segments are listed before a template that could take them
/// (`/products/deals` before `/products/{product_id}`): the first match wins.
/// `GET /health` is the gateway's own and is not in the table.
pub static ROUTES: &[Route] = &[
    r("/auth/health", Auth, &[(GET, Public)]),
    r("/auth/register", Auth, &[(POST, Public)]),
    r("/auth/login", Auth, &[(POST, Public)]),
    r("/auth/refresh", Auth, &[(POST, Public)]),
    r("/auth/logout", Auth, &[(POST, Bearer)]),
    r("/auth/verify", Auth, &[(GET, Bearer)]),
    r("/auth/users/me", Auth, &[(GET, Bearer)]),
    r("/products/health", Product, &[(GET, Public)]),
    r("/products", Product, &[(GET, Public), (POST, Bearer)]),
    r("/products/deals", Product, &[(GET, Public), (POST, Bearer)]),
    r("/products/deals/{deal_id}", Product, &[(GET, Public)]),
    r(
        "/products/{product_id}",
        Product,
        &[(GET, Public), (PATCH, Bearer)],
    ),
    r(
        "/products/{product_id}/stock",
        Product,
        &[(GET, Public), (PATCH, Bearer)],
    ),
    r(
        "/products/{product_id}/hotdeal/start",
        Product,
        &[(POST, Bearer)],
    ),
    r(
        "/products/{product_id}/hotdeal/end",
        Product,
        &[(POST, Bearer)],
    ),
    r("/orders/health", Order, &[(GET, Public)]),
    r("/orders", Order, &[(GET, Bearer), (POST, Bearer)]),
    r("/orders/{order_id}", Order, &[(GET, Bearer)]),
    r("/orders/{order_id}/cancel", Order, &[(POST, Bearer)]),
    r("/orders/{order_id}/payments", Order, &[(POST, Bearer)]),
    r("/deals/{deal_id}/queue", Order, &[(POST, Bearer)]),
    r("/queue/{token}", Order, &[(GET, Bearer)]),
    r("/coupons/health", Coupon, &[(GET, Public)]),
    r("/coupons", Coupon, &[(POST, Bearer)]),
    r("/coupons/{coupon_id}", Coupon, &[(GET, Public)]),
    r("/coupons/{coupon_id}/issue", Coupon, &[(POST, Bearer)]),
    r("/users/me/coupons", Coupon, &[(GET, Bearer)]),
    r("/points/health", Point, &[(GET, Public)]),
    r("/points", Point, &[(GET, Bearer)]),
    r("/points/charges", Point, &[(POST, Bearer)]),
    r("/points/history", Point, &[(GET, Bearer)]),
    // The API's documents: every service serves the same ones.
    r("/openapi.json", Product, &[(GET, Public)]),
    r("/docs", Product, &[(GET, Public)]),
];

/// What the table says about one request.
pub enum Found {
    Route(&'static Route, Access),
    /// A known path, another method.
    WrongMethod,
    NotFound,
}

/// The route of `method` on `path` (no query).
pub fn find(method: &Method, path: &str) -> Found {
    // HEAD is answered like GET by the services (axum does), so it is
    // checked like GET here.
    let method = if method == Method::HEAD { &GET } else { method };
    let mut known = false;
    for route in ROUTES {
        if !matches(route.template, path) {
            continue;
        }
        known = true;
        if let Some((_, access)) = route.methods.iter().find(|(m, _)| m == method) {
            return Found::Route(route, *access);
        }
    }
    if known {
        Found::WrongMethod
    } else {
        Found::NotFound
    }
}

/// Whether `path` fits `template`, segment by segment. An empty segment
/// (`//`, a trailing `/`) never fits a `{name}`, as in the services.
fn matches(template: &str, path: &str) -> bool {
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) => {
                let fits = if ts.starts_with('{') {
                    !ps.is_empty()
                } else {
                    ts == ps
                };
                if !fits {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role_of(method: Method, path: &str) -> Option<(Role, Access)> {
        match find(&method, path) {
            Found::Route(r, a) => Some((r.role, a)),
            _ => None,
        }
    }

    #[test]
    fn every_path_goes_to_its_role() {
        assert_eq!(role_of(GET, "/products/deals"), Some((Product, Public)));
        assert_eq!(role_of(POST, "/products/deals"), Some((Product, Bearer)));
        assert_eq!(role_of(GET, "/products/abc"), Some((Product, Public)));
        assert_eq!(role_of(POST, "/deals/abc/queue"), Some((Order, Bearer)));
        assert_eq!(role_of(GET, "/queue/t0k"), Some((Order, Bearer)));
        assert_eq!(role_of(GET, "/users/me/coupons"), Some((Coupon, Bearer)));
        assert_eq!(role_of(Method::HEAD, "/points"), Some((Point, Bearer)));
        assert_eq!(role_of(POST, "/auth/login"), Some((Auth, Public)));
    }

    #[test]
    fn unknown_paths_and_methods_are_told_apart() {
        assert!(matches!(find(&GET, "/nope"), Found::NotFound));
        assert!(matches!(find(&GET, "/products/"), Found::NotFound));
        assert!(matches!(find(&GET, "/orders/a/b/c"), Found::NotFound));
        assert!(matches!(
            find(&Method::DELETE, "/orders"),
            Found::WrongMethod
        ));
    }
}
