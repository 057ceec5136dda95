//! Which parts of hotdeal one process runs. The default runs every service
//! in one process (the all-in-one of the embedded and scaled modes); the
//! seeds' topology runs a gateway in front of separate auth, product,
//! order, coupon and point processes, each started with its own `--role`.

use serde::Deserialize;
use std::fmt;
use std::str::FromStr;

/// One part of the storefront, or the gateway in front of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The edge: checks tokens, limits rates and routes to the services.
    Gateway,
    /// Sign-up, login, tokens and one's own user.
    Auth,
    /// Products, deals and the stock tier (also over gRPC).
    Product,
    /// Orders, payment and the waiting rooms in front of deals.
    Order,
    /// Coupon definitions and first-come-first-served issue.
    Coupon,
    /// Point balances and charges.
    Point,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const EVERY: [Role; 6] = [
        Role::Gateway,
        Role::Auth,
        Role::Product,
        Role::Order,
        Role::Coupon,
        Role::Point,
    ];

    /// The role's name on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Auth => "auth",
            Role::Product => "product",
            Role::Order => "order",
            Role::Coupon => "coupon",
            Role::Point => "point",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The roles of one process: `all` (every service, no gateway), `gateway`
/// alone, or a comma-separated list of services (`product,order`).
#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Roles(u8);

impl Roles {
    /// Every service in one process: what `hotdeal serve` runs by default.
    pub const ALL: Roles = Roles(
        (1 << Role::Auth as u8)
            | (1 << Role::Product as u8)
            | (1 << Role::Order as u8)
            | (1 << Role::Coupon as u8)
            | (1 << Role::Point as u8),
    );

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Every service runs here: nothing is reached over the network.
    pub fn is_all(self) -> bool {
        self == Self::ALL
    }

    /// This process is a gateway (which runs no service).
    pub fn is_gateway(self) -> bool {
        self.contains(Role::Gateway)
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::EVERY.into_iter().filter(move |r| self.contains(*r))
    }
}

impl Default for Roles {
    fn default() -> Self {
        Self::ALL
    }
}

impl FromStr for Roles {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(Self::ALL);
        }
        let mut bits = 0u8;
        for part in s.split(',').map(str::trim) {
            let role = Role::EVERY
                .into_iter()
                .find(|r| r.name().eq_ignore_ascii_case(part))
                .ok_or_else(|| {
                    format!(
                        "unknown role `{part}`: use all, gateway, or a list of auth, product, order, coupon, point"
                    )
                })?;
            bits |= role.bit();
        }
        let roles = Self(bits);
        // A gateway in the same process as a service would route to
        // itself; run it as its own process.
        if roles.is_gateway() && roles != Self(Role::Gateway.bit()) {
            return Err(
                "the gateway role runs alone: start the services as other processes".into(),
            );
        }
        Ok(roles)
    }
}

impl TryFrom<String> for Roles {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all");
        }
        let names: Vec<_> = self.iter().map(Role::name).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Roles({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_as_all_a_gateway_or_a_list_of_services() {
        assert_eq!("all".parse::<Roles>(), Ok(Roles::ALL));
        let two: Roles = "product, order".parse().expect("roles");
        assert!(two.contains(Role::Product) && two.contains(Role::Order));
        assert!(!two.contains(Role::Auth) && !two.is_all() && !two.is_gateway());
        assert_eq!(two.to_string(), "product,order");
        let every: Roles = "auth,product,order,coupon,point".parse().expect("roles");
        assert!(every.is_all());
        assert!("gateway".parse::<Roles>().expect("roles").is_gateway());
    }

    #[test]
    fn unknown_roles_and_a_gateway_with_services_are_refused() {
        assert!("catalog".parse::<Roles>().is_err());
        assert!("".parse::<Roles>().is_err());
        assert!("gateway,order".parse::<Roles>().is_err());
    }
}
