//! Where a gateway sends each service's requests: per role, one or more
//! `http://host:port` addresses (`--upstream order=http://a:8083,http://b:8083`),
//! and `all` for a pool of all-in-one processes that serves any role not
//! named on its own.
//!
//! Layers merge per role: a later layer that names `order` replaces the
//! earlier `order` addresses and leaves the other roles as they were.

use super::Role;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// One upstream address, checked on parse: plain `http://`, a host and
/// (default 80) a port, nothing else. A URL with credentials, a path or a
/// query is refused, so an address is safe to show in logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UpstreamAddr {
    /// `host:port`, as the HTTP/2 `:authority` of forwarded requests.
    authority: String,
}

impl UpstreamAddr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("upstream `{}`: {why}", shown(s));
        let rest = s.trim().strip_prefix("http://").ok_or_else(|| {
            bad("use http://HOST:PORT (h2c to the services; TLS ends in front of the gateway)")
        })?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains('@') {
            return Err("an upstream address may not carry credentials".into());
        }
        if authority.contains(['/', '?', '#']) {
            return Err(bad("only scheme, host and port are allowed"));
        }
        let parsed: axum::http::uri::Authority =
            authority.parse().map_err(|_| bad("not a host:port"))?;
        // `[::1]` has colons but no port; `a:99999` has a port that is
        // not one (the parser would silently drop it).
        let explicit_port = parsed
            .as_str()
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'));
        let authority = match (explicit_port, parsed.port_u16()) {
            (true, Some(_)) => parsed.as_str().to_owned(),
            (true, None) => return Err(bad("not a valid port")),
            (false, _) => format!("{}:80", parsed.host()),
        };
        Ok(Self { authority })
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// A refused value is echoed only when it cannot be a credential-bearing URL.
fn shown(s: &str) -> &str {
    if s.contains('@') {
        "(not shown)"
    } else {
        s
    }
}

impl fmt::Debug for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// The pools of one gateway: per service role, and `all`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BTreeMap<String, AddrList>")]
pub struct Upstreams {
    /// All-in-one processes: they serve every role not listed in `roles`.
    pub all: Vec<UpstreamAddr>,
    /// Per service role.
    pub roles: Vec<(Role, Vec<UpstreamAddr>)>,
}

/// A TOML value for one role: `"http://a,http://b"` or a list.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum AddrList {
    One(String),
    Many(Vec<String>),
}

impl Upstreams {
    /// Parses one `ROLE=URL[,URL…]` setting (a `--upstream` flag).
    pub fn parse_entry(s: &str) -> Result<Self, String> {
        let (role, urls) = s
            .split_once('=')
            .ok_or_else(|| "an upstream is ROLE=http://HOST:PORT[,http://HOST:PORT…]".to_owned())?;
        Self::default().with(role, urls.split(','))
    }

    /// These addresses for `role` (`all` or a service role), replacing
    /// what it had.
    pub fn with<'a>(
        mut self,
        role: &str,
        urls: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        let addrs = urls
            .into_iter()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(UpstreamAddr::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err(format!("upstream `{role}` lists no address"));
        }
        let role = role.trim();
        if role.eq_ignore_ascii_case("all") {
            self.all = addrs;
            return Ok(self);
        }
        let role = Role::EVERY
            .into_iter()
            .filter(|r| *r != Role::Gateway)
            .find(|r| r.name().eq_ignore_ascii_case(role))
            .ok_or_else(|| {
                format!("unknown upstream role `{role}`: use all, auth, product, order, coupon or point")
            })?;
        self.roles.retain(|(r, _)| *r != role);
        self.roles.push((role, addrs));
        Ok(self)
    }

    /// `other`'s roles replace ours; roles it does not name stay.
    pub fn merge(mut self, other: Self) -> Self {
        if !other.all.is_empty() {
            self.all = other.all;
        }
        for (role, addrs) in other.roles {
            self.roles.retain(|(r, _)| *r != role);
            self.roles.push((role, addrs));
        }
        self
    }

    /// The addresses that serve `role`: its own, else the `all` pool.
    pub fn for_role(&self, role: Role) -> &[UpstreamAddr] {
        self.roles
            .iter()
            .find(|(r, _)| *r == role)
            .map_or(&self.all[..], |(_, a)| &a[..])
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.roles.is_empty()
    }
}

impl TryFrom<BTreeMap<String, AddrList>> for Upstreams {
    type Error = String;

    fn try_from(map: BTreeMap<String, AddrList>) -> Result<Self, Self::Error> {
        let mut ups = Self::default();
        for (role, list) in map {
            ups = match list {
                AddrList::One(s) => ups.with(&role, s.split(','))?,
                AddrList::Many(v) => ups.with(&role, v.iter().map(String::as_str))?,
            };
        }
        Ok(ups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_per_role_and_all() {
        let u = Upstreams::parse_entry("order=http://a:8083, http://b:8083/")
            .expect("order")
            .merge(Upstreams::parse_entry("all=http://c").expect("all"));
        let auths: Vec<_> = u
            .for_role(Role::Auth)
            .iter()
            .map(|a| a.authority())
            .collect();
        assert_eq!(auths, ["c:80"]);
        let orders: Vec<_> = u
            .for_role(Role::Order)
            .iter()
            .map(|a| a.authority())
            .collect();
        assert_eq!(orders, ["a:8083", "b:8083"]);
    }

    #[test]
    fn later_layers_replace_a_role_and_keep_the_others() {
        let first = Upstreams::parse_entry("order=http://a:1")
            .expect("a")
            .merge(Upstreams::parse_entry("auth=http://b:2").expect("b"));
        let u = first.merge(Upstreams::parse_entry("order=http://c:3").expect("c"));
        assert_eq!(u.for_role(Role::Order)[0].authority(), "c:3");
        assert_eq!(u.for_role(Role::Auth)[0].authority(), "b:2");
        assert!(u.for_role(Role::Point).is_empty());
    }

    #[test]
    fn bad_entries_are_refused_without_echoing_credentials() {
        for bad in [
            "order",
            "order=",
            "gateway=http://a:1",
            "shop=http://a:1",
            "order=https://a:1",
            "order=http://a:1/v1",
            "order=http://a:99999",
        ] {
            assert!(Upstreams::parse_entry(bad).is_err(), "{bad}");
        }
        let e = Upstreams::parse_entry("order=http://user:s3cret@a:1").expect_err("creds");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn toml_takes_a_string_or_a_list() {
        #[derive(Deserialize)]
        struct T {
            upstream: Upstreams,
        }
        let t: T = toml::from_str(
            "[upstream]\nall = \"http://a:1,http://b:2\"\npoint = [\"http://c:3\"]\n",
        )
        .expect("toml");
        assert_eq!(t.upstream.all.len(), 2);
        assert_eq!(t.upstream.for_role(Role::Point)[0].authority(), "c:3");
    }
}
