//! The replica choice of a [`Pool`](crate::Pool) as a pure state machine: which replica takes
//! the next attempt (least outstanding requests), which replicas are out for a back-off after a
//! failure, and when one is due for a probe. Time is an argument; nothing here does I/O, so the
//! rules are tested without a runtime or a network.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Exponential back-off of a failed replica: `base`, doubled with each failure in a row, at
/// most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The back-off after the first failure.
    pub base: Duration,
    /// The longest back-off.
    pub max: Duration,
}

impl Backoff {
    /// The back-off after `failures` failures in a row (at least one).
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// What an attempt on a replica says about that replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The replica answered (with results, or with an error another replica would repeat).
    Answered,
    /// The replica is up but did not take the request (`overloaded`, `internal`, a refused
    /// stream): the request goes elsewhere, the replica stays in.
    Busy,
    /// The replica is unreachable or its connection failed or was closed (shutdown, crash,
    /// timeout): it is taken out for a back-off.
    Down,
}

/// Whether a replica takes requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Takes requests.
    Up,
    /// Out after a failure until the instant; then probed.
    Down {
        /// When the back-off ends.
        until: Instant,
    },
    /// A probe (a fresh handshake) is under way.
    Probing,
    /// Its address no longer resolves: it finishes what it holds and takes nothing new.
    Retired,
}

impl Health {
    /// Preference when choosing: lower is better.
    fn rank(self) -> u8 {
        match self {
            Self::Up => 0,
            Self::Down { .. } => 1,
            Self::Probing => 2,
            Self::Retired => 3,
        }
    }
}

/// One replica's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    /// Its address.
    pub addr: SocketAddr,
    /// Attempts sent to it and not finished.
    pub outstanding: u32,
    /// Whether it takes requests.
    pub health: Health,
    /// Failures in a row (a `Down` verdict or a failed probe); an answer while up clears it.
    pub failures: u32,
}

/// The replicas of a pool and the rules that spread attempts over them.
#[derive(Debug, Clone)]
pub struct Balancer {
    replicas: Vec<ReplicaState>,
    backoff: Backoff,
    /// Where the search for the least loaded replica starts, so that ties rotate.
    rotation: usize,
}

impl Balancer {
    /// An empty balancer.
    pub fn new(backoff: Backoff) -> Self {
        Self {
            replicas: Vec::new(),
            backoff,
            rotation: 0,
        }
    }

    /// The replicas, by index.
    pub fn replicas(&self) -> &[ReplicaState] {
        &self.replicas
    }

    /// Adds a replica (up) and returns its index; an address already present keeps its index
    /// and, if retired, comes back up.
    pub fn add(&mut self, addr: SocketAddr) -> usize {
        if let Some(i) = self.replicas.iter().position(|r| r.addr == addr) {
            if self.replicas[i].health == Health::Retired {
                self.replicas[i].health = Health::Up;
                self.replicas[i].failures = 0;
            }
            return i;
        }
        self.replicas.push(ReplicaState {
            addr,
            outstanding: 0,
            health: Health::Up,
            failures: 0,
        });
        self.replicas.len() - 1
    }

    /// Retires every replica whose address `keep` rejects. Indexes stay valid.
    pub fn retire_unless(&mut self, keep: impl Fn(SocketAddr) -> bool) {
        for r in &mut self.replicas {
            if !keep(r.addr) {
                r.health = Health::Retired;
            }
        }
    }

    /// Chooses the replica for an attempt and counts it outstanding: an up replica before a
    /// down one (tried only when no replica is up), one this request has not `tried` before
    /// one it has, then the fewest outstanding attempts; ties rotate. Probing and retired
    /// replicas are never chosen. `None` when no replica can be chosen.
    pub fn choose(&mut self, tried: &[usize]) -> Option<usize> {
        let n = self.replicas.len();
        let mut best: Option<(usize, (u8, bool, u32))> = None;
        for k in 0..n {
            let i = (self.rotation + k) % n;
            let r = &self.replicas[i];
            if matches!(r.health, Health::Probing | Health::Retired) {
                continue;
            }
            let key = (r.health.rank(), tried.contains(&i), r.outstanding);
            if best.map_or(true, |(_, b)| key < b) {
                best = Some((i, key));
            }
        }
        let (i, _) = best?;
        self.rotation = (i + 1) % n.max(1);
        self.replicas[i].outstanding += 1;
        Some(i)
    }

    /// Ends an attempt on replica `i` with what it said about the replica, and returns
    /// whether that took the replica out. A `Down` verdict takes an up replica out for its
    /// back-off (only the first of several failures that arrive together counts); an answer
    /// from an up replica clears its failures. Only a probe brings a down replica back: an
    /// answer that a replica finishes after it was taken out (in-flight work of a server
    /// shutting down) says nothing about new requests.
    pub fn finish(&mut self, i: usize, verdict: Verdict, now: Instant) -> bool {
        let Some(r) = self.replicas.get_mut(i) else {
            return false;
        };
        r.outstanding = r.outstanding.saturating_sub(1);
        match (verdict, r.health) {
            (Verdict::Down, _) => self.mark_down(i, now),
            (Verdict::Answered, Health::Up) => {
                r.failures = 0;
                false
            }
            _ => false,
        }
    }

    /// Takes an up replica out for its back-off (a failed connection outside any attempt)
    /// and returns whether it was up.
    pub fn mark_down(&mut self, i: usize, now: Instant) -> bool {
        let backoff = self.backoff;
        let Some(r) = self.replicas.get_mut(i) else {
            return false;
        };
        if r.health != Health::Up {
            return false;
        }
        r.failures = r.failures.saturating_add(1);
        r.health = Health::Down {
            until: now + backoff.after(r.failures),
        };
        true
    }

    /// Replicas whose back-off is over, now marked probing: the caller makes a fresh
    /// handshake with each and reports it with [`Balancer::probed`].
    pub fn due_probes(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        for (i, r) in self.replicas.iter_mut().enumerate() {
            if matches!(r.health, Health::Down { until } if until <= now) {
                r.health = Health::Probing;
                due.push(i);
            }
        }
        due
    }

    /// The earliest end of a back-off, if a replica is down.
    pub fn next_probe(&self) -> Option<Instant> {
        self.replicas
            .iter()
            .filter_map(|r| match r.health {
                Health::Down { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// The outcome of a probe of replica `i`: up again, or down for a longer back-off.
    pub fn probed(&mut self, i: usize, ok: bool, now: Instant) {
        let backoff = self.backoff;
        let Some(r) = self.replicas.get_mut(i) else {
            return;
        };
        if r.health != Health::Probing {
            return;
        }
        if ok {
            r.health = Health::Up;
        } else {
            r.failures = r.failures.saturating_add(1);
            r.health = Health::Down {
                until: now + backoff.after(r.failures),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(1_000),
    };

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn three() -> Balancer {
        let mut b = Balancer::new(BACKOFF);
        for port in 1..=3 {
            b.add(addr(port));
        }
        b
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let ms = |f| BACKOFF.after(f).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5)],
            [100, 200, 400, 800, 1000]
        );
        assert_eq!(ms(0), 100);
        assert_eq!(ms(u32::MAX), 1000);
    }

    #[test]
    fn attempts_go_to_the_least_outstanding_replica_and_ties_rotate() {
        let mut b = three();
        let first: Vec<usize> = (0..3).map(|_| b.choose(&[]).expect("up")).collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2], "one each before any gets a second");
        let now = Instant::now();
        // Replica 1 finishes; it is now the least loaded.
        b.finish(1, Verdict::Answered, now);
        assert_eq!(b.choose(&[]), Some(1));
        // Everyone at 1 outstanding: ties rotate rather than always picking replica 0.
        let next: Vec<usize> = (0..3).map(|_| b.choose(&[]).expect("up")).collect();
        let mut sorted = next.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2]);
        assert!(b.replicas().iter().all(|r| r.outstanding == 2));
    }

    #[test]
    fn a_retry_avoids_the_replicas_it_already_tried() {
        let mut b = three();
        // Replica 0 is idle, but this request already tried it and replica 2.
        b.replicas[1].outstanding = 5;
        b.replicas[2].outstanding = 1;
        assert_eq!(b.choose(&[0, 2]), Some(1));
        // Every up replica tried: the least loaded of them.
        assert_eq!(b.choose(&[0, 1, 2]), Some(0));
    }

    #[test]
    fn a_down_replica_is_out_for_its_backoff_then_probed() {
        let mut b = three();
        let now = Instant::now();
        let i = b.choose(&[]).expect("up");
        assert!(b.finish(i, Verdict::Down, now), "taken out");
        assert_eq!(
            b.replicas()[i].health,
            Health::Down {
                until: now + Duration::from_millis(100)
            }
        );
        for _ in 0..10 {
            let c = b.choose(&[]).expect("up");
            assert_ne!(c, i, "a down replica takes nothing while others are up");
        }
        assert!(b.due_probes(now + Duration::from_millis(99)).is_empty());
        assert_eq!(b.next_probe(), Some(now + Duration::from_millis(100)));
        assert_eq!(b.due_probes(now + Duration::from_millis(100)), vec![i]);
        assert_eq!(b.replicas()[i].health, Health::Probing);
        // A failed probe doubles the back-off.
        let later = now + Duration::from_millis(150);
        b.probed(i, false, later);
        assert_eq!(
            b.replicas()[i].health,
            Health::Down {
                until: later + Duration::from_millis(200)
            }
        );
        assert_eq!(b.replicas()[i].failures, 2);
        // A good probe brings it back; its first answer clears the failures.
        assert_eq!(b.due_probes(later + Duration::from_millis(200)), vec![i]);
        b.probed(i, true, later);
        assert_eq!(b.replicas()[i].health, Health::Up);
        assert_eq!(b.replicas()[i].failures, 2);
        b.replicas[i].outstanding += 1;
        b.finish(i, Verdict::Answered, later);
        assert_eq!(b.replicas()[i].failures, 0);
    }

    #[test]
    fn failures_arriving_together_count_once() {
        let mut b = three();
        let now = Instant::now();
        for _ in 0..4 {
            b.replicas[0].outstanding += 1;
        }
        let taken_out: Vec<bool> = (0..4).map(|_| b.finish(0, Verdict::Down, now)).collect();
        assert_eq!(taken_out, vec![true, false, false, false]);
        assert_eq!(b.replicas()[0].failures, 1);
        assert_eq!(b.replicas()[0].outstanding, 0);
    }

    #[test]
    fn busy_replicas_stay_in() {
        let mut b = three();
        let i = b.choose(&[]).expect("up");
        assert!(!b.finish(i, Verdict::Busy, Instant::now()));
        assert_eq!(b.replicas()[i].health, Health::Up);
        assert_eq!(b.replicas()[i].failures, 0);
    }

    #[test]
    fn with_every_replica_down_the_earliest_chosen_is_still_tried() {
        let mut b = three();
        let now = Instant::now();
        for i in 0..3 {
            b.replicas[i].outstanding += 1;
            b.finish(i, Verdict::Down, now);
        }
        // Nothing is up: a down replica is tried directly rather than failing at once.
        let c = b.choose(&[]).expect("a down replica");
        // Probing replicas are not chosen.
        let probing = b.due_probes(now + Duration::from_secs(1));
        assert_eq!(probing.len(), 3);
        assert_eq!(b.choose(&[]), None);
        // An answer from a down replica leaves it down; a good probe brings it back.
        b.finish(c, Verdict::Answered, now);
        assert_eq!(b.replicas()[c].health, Health::Probing);
        b.probed(c, true, now);
        assert_eq!(b.choose(&[]), Some(c));
    }

    #[test]
    fn retired_replicas_take_nothing_and_come_back_when_resolved_again() {
        let mut b = three();
        b.retire_unless(|a| a.port() != 2);
        for _ in 0..6 {
            assert_ne!(b.choose(&[]), Some(1));
        }
        assert_eq!(b.add(addr(2)), 1);
        assert_eq!(b.replicas()[1].health, Health::Up);
        assert_eq!(b.add(addr(4)), 3);
        assert_eq!(b.replicas().len(), 4);
    }
}
