//! Typed identifiers, so a deal id can never be passed where a product id is
//! expected. All are UUIDs on the wire; new ones are v7 (time-ordered), which
//! keeps B-tree inserts at the right edge of the index.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses a path segment; `None` when it is not a UUID (the API
            /// answers that like an unknown id).
            pub fn parse(s: &str) -> Option<Self> {
                Uuid::try_parse(s).ok().map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A registered user (buyer or seller).
    UserId
);
id_type!(
    /// A product in the catalogue.
    ProductId
);
id_type!(
    /// A time-boxed deal on one product.
    DealId
);
id_type!(
    /// An order.
    OrderId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_uuids() {
        assert!(ProductId::parse("not-a-uuid").is_none());
        assert!(ProductId::parse("").is_none());
        let id = ProductId::new();
        assert_eq!(ProductId::parse(&id.to_string()), Some(id));
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = OrderId::new();
        let b = OrderId::new();
        assert!(a < b);
    }
}
