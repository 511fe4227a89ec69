//! Access control per request: whether the client is still allowed (`[access]
//! allowed_clients`), and its limits (`[access]` requests and items per second, requests in
//! flight), kept in the sans-IO [`ClientTable`] keyed by the client's identity.
//!
//! A request takes a [`Ticket`] once it has arrived ([`Access::admit`]: one request token and
//! one in-flight slot), pays for its items once they are counted ([`Ticket::charge_items`]),
//! and frees its slot when the ticket is dropped, after the answer is written. SIGHUP swaps
//! the allowlist and the limits ([`Access::set`]); requests in flight keep their slots.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use umbrald_proto::ErrorCode;
use umbrald_scheduling::{ClientLimits, ClientTable, Refused};

use super::reply::Refusal;
use crate::config::AccessSection;
use crate::observe::audit::Client;
use crate::observe::metrics::Metrics;

/// Who a client is for its limits: its certificate's public key, else its IP address (an IPv6
/// address by its /64, the block one host usually holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    /// SHA-256 of the client certificate's public key.
    Key([u8; 32]),
    /// The source address (IPv4, IPv6 /64 prefix).
    Ip(IpAddr),
}

impl From<Client> for ClientKey {
    fn from(client: Client) -> Self {
        match client {
            Client::Key(key) => Self::Key(key),
            Client::Addr(addr) => Self::Ip(match addr.ip() {
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => {
                        let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                        IpAddr::V6(Ipv6Addr::from(prefix))
                    }
                },
                v4 => v4,
            }),
        }
    }
}

/// `[access]` as the server applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessPolicy {
    /// Allowed client public keys; empty: every client.
    pub allowed: Arc<HashSet<[u8; 32]>>,
    /// Per-client limits.
    pub limits: ClientLimits,
}

impl AccessPolicy {
    /// The policy of `section`; `Err` names an allowlist entry that is not a fingerprint (the
    /// configuration's validation refuses those).
    pub fn of(section: &AccessSection) -> Result<Self, String> {
        let mut allowed = HashSet::new();
        for entry in &section.allowed_clients {
            allowed.insert(crate::config::parse_sha256_hex(entry).ok_or_else(|| entry.clone())?);
        }
        Ok(Self {
            allowed: Arc::new(allowed),
            limits: ClientLimits {
                requests_per_s: section.requests_per_s,
                request_burst: section.request_burst,
                items_per_s: section.items_per_s,
                item_burst: section.item_burst,
                max_in_flight: section.max_in_flight,
                max_clients: section.max_clients.max(1),
            },
        })
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Denied {
    /// The client's key left the allowlist since its connection opened.
    NotAllowed,
    /// Past one of the client's limits.
    Limited(Refused),
}

/// The `rate_limited` answer for `refused` (id 0).
pub(crate) fn limited(refused: &Refused) -> Refusal {
    Refusal::new(
        0,
        ErrorCode::RateLimited,
        format!(
            "over this client's limit of {}; retry in {} ms",
            refused.reason(),
            refused.retry_after().as_millis()
        ),
    )
}

/// The allowlist and the limits in force, and every tracked client's state.
#[derive(Debug)]
pub(crate) struct Access {
    allowed: RwLock<Arc<HashSet<[u8; 32]>>>,
    table: Mutex<ClientTable<ClientKey>>,
    metrics: Arc<Metrics>,
}

impl Access {
    /// Access under `policy`.
    pub fn new(policy: AccessPolicy, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            allowed: RwLock::new(policy.allowed),
            table: Mutex::new(ClientTable::new(policy.limits)),
            metrics,
        })
    }

    /// Enforces `policy` from now on: new requests of clients no longer allowed are refused,
    /// and every client starts again with full buckets (in-flight counts are kept).
    pub fn set(&self, policy: AccessPolicy) {
        *self.allowed.write().unwrap_or_else(PoisonError::into_inner) = policy.allowed;
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.set_limits(policy.limits, Instant::now());
        self.metrics.access_clients.set(gauge(table.len()));
    }

    /// The allowlist in force.
    pub fn allowed(&self) -> Arc<HashSet<[u8; 32]>> {
        self.allowed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Admits one request of `client`, which has arrived whole.
    pub fn admit(self: &Arc<Self>, client: Client) -> Result<Ticket, Denied> {
        let allowed = self.allowed();
        if !allowed.is_empty() && !matches!(client, Client::Key(key) if allowed.contains(&key)) {
            self.metrics.access_refused("revoked");
            return Err(Denied::NotAllowed);
        }
        let key = ClientKey::from(client);
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.limits().is_unlimited() {
            return Ok(Ticket::unlimited(self.clone()));
        }
        let admitted = table.admit(&key, Instant::now());
        self.metrics.access_clients.set(gauge(table.len()));
        drop(table);
        match admitted {
            Ok(()) => Ok(Ticket {
                access: self.clone(),
                key: Some(key),
                retry_after: Mutex::new(None),
            }),
            Err(refused) => {
                tracing::debug!(client = ?key, reason = refused.reason(), "rate limited");
                Err(Denied::Limited(refused))
            }
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One admitted request's place: its in-flight slot, freed on drop.
#[derive(Debug)]
pub(crate) struct Ticket {
    access: Arc<Access>,
    /// The client as the table knows it; `None` when no limit was on at admission.
    key: Option<ClientKey>,
    /// How long the client was told to wait, when its items were refused.
    retry_after: Mutex<Option<Duration>>,
}

impl Ticket {
    fn unlimited(access: Arc<Access>) -> Self {
        Self {
            access,
            key: None,
            retry_after: Mutex::new(None),
        }
    }

    /// A ticket that limits nothing, for requests that are not counted.
    #[cfg(test)]
    pub fn free(access: Arc<Access>) -> Self {
        Self::unlimited(access)
    }

    /// Charges the request's `items` to its client: `Err` is the `rate_limited` refusal.
    pub fn charge_items(&self, items: usize) -> Result<(), Refusal> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let charged = self
            .access
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .charge_items(key, items, Instant::now());
        charged.map_err(|refused| {
            *self
                .retry_after
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(refused.retry_after());
            tracing::debug!(client = ?key, reason = refused.reason(), "rate limited");
            limited(&refused)
        })
    }

    /// How long the client was told to wait, when [`Ticket::charge_items`] refused it.
    pub fn retry_after(&self) -> Option<Duration> {
        *self
            .retry_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(key) = &self.key {
            self.access
                .table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .release(key, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn addr(text: &str) -> Client {
        Client::Addr(text.parse::<SocketAddr>().expect("address"))
    }

    #[test]
    fn clients_are_keyed_by_key_else_address_without_port() {
        assert_eq!(
            ClientKey::from(addr("10.0.0.1:1000")),
            ClientKey::from(addr("10.0.0.1:2000"))
        );
        assert_ne!(
            ClientKey::from(addr("10.0.0.1:1000")),
            ClientKey::from(addr("10.0.0.2:1000"))
        );
        assert_eq!(
            ClientKey::from(addr("[2001:db8::1]:1")),
            ClientKey::from(addr("[2001:db8::ffff:2]:2")),
            "one /64"
        );
        assert_ne!(
            ClientKey::from(addr("[2001:db8:0:1::1]:1")),
            ClientKey::from(addr("[2001:db8::1]:1"))
        );
        assert_eq!(
            ClientKey::from(addr("[::ffff:10.0.0.1]:1")),
            ClientKey::from(addr("10.0.0.1:1"))
        );
        assert_eq!(
            ClientKey::from(Client::Key([7; 32])),
            ClientKey::Key([7; 32])
        );
    }

    fn policy(allowed: &[[u8; 32]], limits: ClientLimits) -> AccessPolicy {
        AccessPolicy {
            allowed: Arc::new(allowed.iter().copied().collect()),
            limits,
        }
    }

    #[test]
    fn tickets_hold_slots_until_dropped_and_reloads_apply() {
        let limits = ClientLimits {
            max_in_flight: 1,
            items_per_s: 10,
            ..ClientLimits::default()
        };
        let access = Access::new(policy(&[], limits), Arc::new(Metrics::new()));
        let client = addr("10.0.0.1:1");
        let first = access.admit(client).expect("first");
        assert!(matches!(
            access.admit(client),
            Err(Denied::Limited(Refused::InFlight))
        ));
        first.charge_items(10).expect("the burst");
        let refusal = first.charge_items(10).expect_err("spent");
        assert_eq!(refusal.code, ErrorCode::RateLimited);
        assert!(first.retry_after().is_some());
        drop(first);
        let second = access.admit(client).expect("slot freed");
        drop(second);

        // An allowlist set by a reload refuses a client that is not on it.
        access.set(policy(&[[1; 32]], ClientLimits::default()));
        assert_eq!(access.admit(client).err(), Some(Denied::NotAllowed));
        access.admit(Client::Key([1; 32])).expect("listed");
        assert_eq!(
            access.admit(Client::Key([2; 32])).err(),
            Some(Denied::NotAllowed)
        );
        access.set(policy(&[], ClientLimits::default()));
        access.admit(client).expect("no allowlist, no limits");
        let _ = Ticket::free(access.clone());
    }
}
