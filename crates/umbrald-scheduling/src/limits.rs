//! Per-client limits: a token bucket of requests per second, one of items (capsules) per
//! second, and a count of requests in flight, for each client seen lately, in a table of
//! bounded size.
//!
//! A request is admitted in two steps: [`ClientTable::admit`] when it has arrived (one request
//! token and one in-flight slot), then [`ClientTable::charge_items`] once its item count is
//! known; [`ClientTable::release`] frees the slot when it is answered. A request of more items
//! than the item burst is admitted when the bucket is full and leaves it in debt, so large
//! requests are slowed to the configured rate instead of refused for ever.
//!
//! The table holds at most [`ClientLimits::max_clients`] clients. A new client finds room by
//! forgetting clients whose state is that of a stranger (nothing in flight, full buckets),
//! then, if that is not enough, the longest idle of those with nothing in flight. Clients with
//! requests in flight are never forgotten; when every tracked client has some, a new client is
//! refused ([`Refused::Full`]). Someone cycling source addresses thus costs the table at most
//! `max_clients` entries (each at most 112 bytes, in a hash table at most twice that size:
//! under 4 MiB for the default 16,384), and only gains what a fresh address gains anyway: a
//! full bucket.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// What one client may do; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Requests per second, sustained; 0: unlimited.
    pub requests_per_s: u32,
    /// Requests a client may send at once after a quiet spell; 0: `requests_per_s`.
    pub request_burst: u32,
    /// Items (capsules) per second, sustained; 0: unlimited.
    pub items_per_s: u32,
    /// Items a client may send at once after a quiet spell; 0: `items_per_s`.
    pub item_burst: u32,
    /// Requests of one client being answered at once; 0: unlimited.
    pub max_in_flight: u32,
    /// Most clients tracked at once (at least 1).
    pub max_clients: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            requests_per_s: 0,
            request_burst: 0,
            items_per_s: 0,
            item_burst: 0,
            max_in_flight: 0,
            max_clients: DEFAULT_MAX_CLIENTS,
        }
    }
}

/// The default bound of the client table.
pub const DEFAULT_MAX_CLIENTS: usize = 16_384;

/// The share of the table freed at once when it is full of recently active clients (1/16), so
/// that finding room costs a scan only every so many new clients.
const EVICT_SHARE: usize = 16;

impl ClientLimits {
    /// Whether no limit is on (the table is then not consulted at all).
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_s == 0 && self.items_per_s == 0 && self.max_in_flight == 0
    }

    fn requests(&self) -> Option<Rate> {
        Rate::of(self.requests_per_s, self.request_burst)
    }

    fn items(&self) -> Option<Rate> {
        Rate::of(self.items_per_s, self.item_burst)
    }
}

/// A bucket's refill rate and size.
#[derive(Debug, Clone, Copy)]
struct Rate {
    per_s: f64,
    burst: f64,
}

impl Rate {
    fn of(per_s: u32, burst: u32) -> Option<Self> {
        (per_s > 0).then(|| Self {
            per_s: f64::from(per_s),
            burst: f64::from(if burst == 0 { per_s } else { burst }),
        })
    }

    /// How long until a bucket holding `tokens` holds `needed`.
    fn wait(&self, tokens: f64, needed: f64) -> Duration {
        Duration::from_secs_f64(((needed - tokens) / self.per_s).max(0.0))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refused {
    /// Past the requests-per-second bucket; a token is back after `retry_after`.
    Requests {
        /// When the request would be admitted, if nothing else arrives meanwhile.
        retry_after: Duration,
    },
    /// Past the items-per-second bucket; enough are back after `retry_after`.
    Items {
        /// When the request would be admitted, if nothing else arrives meanwhile.
        retry_after: Duration,
    },
    /// The client has `max_in_flight` requests being answered.
    InFlight,
    /// The table is full of clients with requests in flight; a new client must wait.
    Full,
}

impl Refused {
    /// How long the client should wait before trying again (at least a millisecond; a second
    /// when it depends on other requests finishing).
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Requests { retry_after } | Self::Items { retry_after } => {
                (*retry_after).max(Duration::from_millis(1))
            }
            Self::InFlight | Self::Full => Duration::from_secs(1),
        }
    }

    /// A short reason, for answers and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Requests { .. } => "requests per second",
            Self::Items { .. } => "items per second",
            Self::InFlight => "requests in flight",
            Self::Full => "too many clients",
        }
    }
}

/// Tokens of one bucket as of an instant.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Option<Rate>, now: Instant) -> Self {
        Self {
            tokens: rate.map_or(0.0, |r| r.burst),
            at: now,
        }
    }

    /// Adds what flowed in since the last refill (a clock read earlier than the last one adds
    /// nothing).
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_s).min(rate.burst);
        self.at = self.at.max(now);
    }

    fn is_full(&self, rate: Option<Rate>, now: Instant) -> bool {
        match rate {
            None => true,
            Some(rate) => {
                let mut bucket = *self;
                bucket.refill(rate, now);
                bucket.tokens >= rate.burst
            }
        }
    }
}

/// One client's state.
#[derive(Debug, Clone)]
struct Entry {
    requests: Bucket,
    items: Bucket,
    in_flight: u32,
    last_seen: Instant,
}

impl Entry {
    fn fresh(limits: &ClientLimits, now: Instant) -> Self {
        Self {
            requests: Bucket::full(limits.requests(), now),
            items: Bucket::full(limits.items(), now),
            in_flight: 0,
            last_seen: now,
        }
    }

    /// Nothing in flight and both buckets full: forgetting it changes nothing.
    fn is_stranger(&self, limits: &ClientLimits, now: Instant) -> bool {
        self.in_flight == 0
            && self.requests.is_full(limits.requests(), now)
            && self.items.is_full(limits.items(), now)
    }
}

/// The clients seen lately, keyed by `K` (their identity), and their limits.
#[derive(Debug, Clone)]
pub struct ClientTable<K> {
    limits: ClientLimits,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> ClientTable<K> {
    /// An empty table enforcing `limits`.
    pub fn new(limits: ClientLimits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> ClientLimits {
        self.limits
    }

    /// Clients tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Enforces `limits` from now on: every tracked client starts again with full buckets and
    /// keeps its requests in flight; clients with nothing in flight are forgotten.
    pub fn set_limits(&mut self, limits: ClientLimits, now: Instant) {
        self.limits = limits;
        self.entries.retain(|_, entry| entry.in_flight > 0);
        for entry in self.entries.values_mut() {
            entry.requests = Bucket::full(limits.requests(), now);
            entry.items = Bucket::full(limits.items(), now);
        }
    }

    /// Admits one request of client `key`: takes a request token and an in-flight slot, or
    /// refuses (and takes nothing). Pair every `Ok` with a [`ClientTable::release`].
    pub fn admit(&mut self, key: &K, now: Instant) -> Result<(), Refused> {
        let limits = self.limits;
        if !self.entries.contains_key(key) {
            self.make_room(now)?;
        }
        let entry = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| Entry::fresh(&limits, now));
        entry.last_seen = entry.last_seen.max(now);
        if limits.max_in_flight > 0 && entry.in_flight >= limits.max_in_flight {
            return Err(Refused::InFlight);
        }
        if let Some(rate) = limits.requests() {
            entry.requests.refill(rate, now);
            if entry.requests.tokens < 1.0 {
                return Err(Refused::Requests {
                    retry_after: rate.wait(entry.requests.tokens, 1.0),
                });
            }
            entry.requests.tokens -= 1.0;
        }
        entry.in_flight = entry.in_flight.saturating_add(1);
        Ok(())
    }

    /// Charges `items` items to client `key`, whose request [`ClientTable::admit`] admitted:
    /// refused when the bucket holds fewer than `items` (or, for a request larger than the
    /// burst, when it is not full).
    pub fn charge_items(&mut self, key: &K, items: usize, now: Instant) -> Result<(), Refused> {
        let Some(rate) = self.limits.items() else {
            return Ok(());
        };
        // A client forgotten since its admission (limits reloaded meanwhile) is not charged.
        let Some(entry) = self.entries.get_mut(key) else {
            return Ok(());
        };
        entry.items.refill(rate, now);
        // Item counts are bounded by the request limits; f64 holds them exactly.
        let wanted = items as f64;
        let needed = wanted.min(rate.burst);
        if entry.items.tokens < needed {
            return Err(Refused::Items {
                retry_after: rate.wait(entry.items.tokens, needed),
            });
        }
        entry.items.tokens -= wanted;
        Ok(())
    }

    /// Frees the in-flight slot of an admitted request of client `key`.
    pub fn release(&mut self, key: &K, now: Instant) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.last_seen = entry.last_seen.max(now);
        }
    }

    /// Requests of client `key` in flight.
    pub fn in_flight(&self, key: &K) -> u32 {
        self.entries.get(key).map_or(0, |entry| entry.in_flight)
    }

    /// Makes room for one more client, or says the table is full of busy ones.
    fn make_room(&mut self, now: Instant) -> Result<(), Refused> {
        let max = self.limits.max_clients.max(1);
        if self.entries.len() < max {
            return Ok(());
        }
        let limits = self.limits;
        self.entries
            .retain(|_, entry| !entry.is_stranger(&limits, now));
        if self.entries.len() < max {
            return Ok(());
        }
        // Still full: forget the longest idle among those with nothing in flight, a share of
        // the table at once.
        let mut idle: Vec<(Instant, K)> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.in_flight == 0)
            .map(|(key, entry)| (entry.last_seen, key.clone()))
            .collect();
        if idle.is_empty() {
            return Err(Refused::Full);
        }
        let excess = self.entries.len() + 1 - max;
        let evict = excess.max(max / EVICT_SHARE).min(idle.len());
        if evict < idle.len() {
            idle.select_nth_unstable_by_key(evict, |(seen, _)| *seen);
        }
        for (_, key) in idle.iter().take(evict) {
            self.entries.remove(key);
        }
        if self.entries.len() < max {
            Ok(())
        } else {
            Err(Refused::Full)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn limits() -> ClientLimits {
        ClientLimits {
            requests_per_s: 10,
            request_burst: 3,
            ..ClientLimits::default()
        }
    }

    #[test]
    fn unlimited_is_the_default() {
        assert!(ClientLimits::default().is_unlimited());
        assert!(!limits().is_unlimited());
        let mut table = ClientTable::new(ClientLimits::default());
        let t0 = Instant::now();
        for _ in 0..1000 {
            table.admit(&1u32, t0).expect("unlimited");
        }
        table
            .charge_items(&1, 1 << 20, t0)
            .expect("unlimited items");
    }

    #[test]
    fn the_burst_passes_then_the_rate_holds() {
        let mut table = ClientTable::new(limits());
        let t0 = Instant::now();
        for _ in 0..3 {
            table.admit(&1u32, t0).expect("within the burst");
            table.release(&1, t0);
        }
        let refused = table.admit(&1, t0).expect_err("burst spent");
        assert!(matches!(refused, Refused::Requests { .. }), "{refused:?}");
        // One token every 100 ms.
        let wait = refused.retry_after();
        assert!(wait > ms(99) && wait <= ms(100), "{wait:?}");
        assert!(table.admit(&1, t0 + ms(50)).is_err(), "half a token");
        table.admit(&1, t0 + ms(100)).expect("refilled");
        table.release(&1, t0 + ms(100));
        // A long pause refills to the burst, no further.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            table.admit(&1, later).expect("burst again");
            table.release(&1, later);
        }
        assert!(table.admit(&1, later).is_err(), "no more than the burst");
    }

    #[test]
    fn a_refusal_takes_nothing() {
        let mut table = ClientTable::new(limits());
        let t0 = Instant::now();
        for _ in 0..3 {
            table.admit(&1u32, t0).expect("burst");
        }
        assert_eq!(table.in_flight(&1), 3);
        for _ in 0..10 {
            assert!(table.admit(&1, t0).is_err());
        }
        assert_eq!(table.in_flight(&1), 3, "refusals hold no slot");
        table
            .admit(&1, t0 + ms(100))
            .expect("one token, not spent by refusals");
    }

    #[test]
    fn items_are_charged_with_debt_for_large_requests() {
        let mut table = ClientTable::new(ClientLimits {
            items_per_s: 100,
            item_burst: 50,
            ..ClientLimits::default()
        });
        let t0 = Instant::now();
        table.admit(&1u32, t0).expect("no request limit");
        table.charge_items(&1, 30, t0).expect("30 of 50");
        let refused = table.charge_items(&1, 30, t0).expect_err("20 left");
        assert!(matches!(refused, Refused::Items { .. }));
        assert_eq!(refused.retry_after(), ms(100), "10 more at 100/s");
        table.charge_items(&1, 30, t0 + ms(100)).expect("30 again");
        // Larger than the burst: admitted on a full bucket, leaving debt.
        let t1 = t0 + Duration::from_secs(10);
        table.charge_items(&1, 500, t1).expect("full bucket");
        let refused = table
            .charge_items(&1, 1, t1 + ms(1000))
            .expect_err("in debt");
        // 450 in debt, 100 back after a second: 351 more to one token.
        assert_eq!(refused.retry_after(), ms(3510));
        table
            .charge_items(&1, 1, t1 + ms(4510))
            .expect("debt repaid at the rate");
    }

    #[test]
    fn in_flight_is_bounded_and_released() {
        let mut table = ClientTable::new(ClientLimits {
            max_in_flight: 2,
            ..ClientLimits::default()
        });
        let t0 = Instant::now();
        table.admit(&1u32, t0).expect("first");
        table.admit(&1, t0).expect("second");
        assert_eq!(table.admit(&1, t0), Err(Refused::InFlight));
        assert_eq!(Refused::InFlight.retry_after(), Duration::from_secs(1));
        table.admit(&2, t0).expect("another client has its own");
        table.release(&1, t0);
        table.admit(&1, t0).expect("a slot was freed");
        // Releasing more than was admitted never goes below zero.
        for _ in 0..5 {
            table.release(&1, t0);
        }
        assert_eq!(table.in_flight(&1), 0);
        table.release(&99, t0);
    }

    #[test]
    fn clients_do_not_share_buckets() {
        let mut table = ClientTable::new(limits());
        let t0 = Instant::now();
        for _ in 0..3 {
            table.admit(&1u32, t0).expect("client 1");
        }
        assert!(table.admit(&1, t0).is_err());
        for client in 2..100u32 {
            table
                .admit(&client, t0)
                .expect("every other client is fresh");
        }
    }

    #[test]
    fn the_table_is_bounded_and_forgets_strangers_first() {
        let max = 64;
        let mut table = ClientTable::new(ClientLimits {
            max_clients: max,
            ..limits()
        });
        let t0 = Instant::now();
        // Client 0 is in debt and busy: never forgotten.
        for _ in 0..3 {
            table.admit(&0u32, t0).expect("burst");
        }
        // An attacker cycling addresses, one request each, far more than the table holds.
        for (i, client) in (1..100_000u32).enumerate() {
            let now = t0 + Duration::from_micros(i as u64);
            table.admit(&client, now).expect("room is made");
            table.release(&client, now);
            assert!(table.len() <= max, "{} clients tracked", table.len());
        }
        assert_eq!(table.in_flight(&0), 3, "the busy client kept its state");
        assert!(table.admit(&0, t0).is_err(), "and its empty bucket");

        // Strangers (full buckets, nothing in flight) are forgotten before idle debtors.
        let mut table = ClientTable::new(ClientLimits {
            max_clients: 4,
            ..limits()
        });
        for _ in 0..3 {
            table.admit(&1u32, t0).expect("debtor");
            table.release(&1, t0);
        }
        for client in 2..=4u32 {
            table.admit(&client, t0).expect("fill");
            table.release(&client, t0);
        }
        // 150 ms later clients 2 to 4 are full again (2 + 1.5 tokens), client 1 is not (1.5).
        let t1 = t0 + ms(150);
        table.admit(&5, t1).expect("room made");
        assert_eq!(table.len(), 2, "the three strangers went");
        table.admit(&1, t1).expect("client 1 kept its 1.5 tokens");
        assert!(table.admit(&1, t1).is_err(), "not a fresh bucket of 3");
    }

    #[test]
    fn a_table_full_of_busy_clients_refuses_new_ones() {
        let mut table = ClientTable::new(ClientLimits {
            max_clients: 3,
            max_in_flight: 5,
            ..ClientLimits::default()
        });
        let t0 = Instant::now();
        for client in 0..3u32 {
            table.admit(&client, t0).expect("busy");
        }
        assert_eq!(table.admit(&9, t0), Err(Refused::Full));
        table.admit(&1, t0).expect("a tracked client still gets in");
        table.release(&2, t0);
        table
            .admit(&9, t0)
            .expect("client 2 went idle and made room");
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn new_limits_apply_at_once_and_keep_what_is_in_flight() {
        let mut table = ClientTable::new(limits());
        let t0 = Instant::now();
        for _ in 0..3 {
            table.admit(&1u32, t0).expect("burst");
        }
        table.admit(&2, t0).expect("other");
        table.release(&2, t0);
        assert!(table.admit(&1, t0).is_err());
        table.set_limits(
            ClientLimits {
                requests_per_s: 1,
                request_burst: 1,
                ..ClientLimits::default()
            },
            t0,
        );
        assert_eq!(table.len(), 1, "idle clients forgotten");
        assert_eq!(table.in_flight(&1), 3, "in flight kept");
        table.admit(&1, t0).expect("a full bucket of the new size");
        assert!(table.admit(&1, t0).is_err(), "new burst of 1");
        table.set_limits(ClientLimits::default(), t0);
        assert!(table.limits().is_unlimited());
    }

    #[test]
    fn an_entry_is_small() {
        // The server's key is at most 33 bytes (a SHA-256, or an IP address and its tag): with
        // the hash table's control byte and its load factor (at most 7/8, capacities powers of
        // two), a table of `max_clients` entries takes at most 2 × 113 bytes per client.
        assert!(std::mem::size_of::<([u8; 33], Entry)>() <= 112);
    }

    #[test]
    fn a_clock_read_out_of_order_adds_nothing() {
        let mut table = ClientTable::new(limits());
        let t0 = Instant::now();
        let t1 = t0 + ms(500);
        for _ in 0..3 {
            table.admit(&1u32, t1).expect("burst");
        }
        assert!(
            table.admit(&1, t0).is_err(),
            "an earlier instant refills nothing"
        );
    }
}
