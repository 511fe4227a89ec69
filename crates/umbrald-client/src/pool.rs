//! [`Pool`]: one appliance served by several replicas (several addresses, or DNS names that
//! resolve to several), all presenting the same certificate.
//!
//! Each attempt goes to the up replica with the fewest attempts outstanding. A replica whose
//! connection fails, is closed (a shutdown, a crash) or stays silent past the request timeout
//! is taken out for an exponential, capped back-off, then probed with a fresh handshake and
//! taken back when the probe succeeds. A request that was not answered for such a reason, or
//! that a replica refused as `overloaded` or `internal`, is retried on another replica:
//! re-encryption is idempotent. The choice and the back-off are the pure state machine of
//! [`crate::balance`]; this module does the I/O around it.

use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use umbrald_proto::{app_codes, ErrorCode};

use crate::balance::{Backoff, Balancer, Health, Verdict};
use crate::client::{
    Client, ClientOptions, ItemOutcome, PreparedRequest, ReencryptRequest, ReencryptSummary,
};
use crate::error::ClientError;
use crate::trust::Trust;

/// One replica address: a socket address, or a DNS name and port that may resolve to several
/// (each a replica, resolved again every [`PoolOptions::resolve_every`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReplicaAddr {
    /// A fixed address.
    Socket(SocketAddr),
    /// A name and port.
    Name {
        /// The host name.
        host: String,
        /// The UDP port.
        port: u16,
    },
}

impl From<SocketAddr> for ReplicaAddr {
    fn from(addr: SocketAddr) -> Self {
        Self::Socket(addr)
    }
}

impl FromStr for ReplicaAddr {
    type Err = PoolError;

    /// `IP:PORT` (`[IPv6]:PORT`) or `NAME:PORT`.
    fn from_str(text: &str) -> Result<Self, PoolError> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self::Socket(addr));
        }
        let bad = || PoolError::BadAddress(text.to_owned());
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse::<u16>().map_err(|_| bad())?;
        if host.is_empty() || host.contains(':') {
            return Err(bad());
        }
        Ok(Self::Name {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for ReplicaAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket(addr) => write!(f, "{addr}"),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Tunables of a [`Pool`]. `Default` suits replicas on a LAN.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The options of each replica's connections. `request_timeout` bounds each attempt;
    /// `reconnect_attempts` is not used (the pool retries on another replica instead).
    pub client: ClientOptions,
    /// QUIC connections to each replica (at least 1); attempts rotate over them.
    pub connections_per_replica: usize,
    /// Most attempts for one request, the first included (at least 1).
    pub attempts: u32,
    /// How long a failed replica is left alone before it is probed.
    pub backoff: Backoff,
    /// How often DNS names are resolved again.
    pub resolve_every: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            client: ClientOptions::default(),
            connections_per_replica: 1,
            attempts: 3,
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
            resolve_every: Duration::from_secs(30),
        }
    }
}

/// One attempt that did not answer the request.
#[derive(Debug)]
pub struct FailedAttempt {
    /// The replica it went to.
    pub replica: SocketAddr,
    /// How long it took to fail.
    pub took: Duration,
    /// Why it failed.
    pub error: ClientError,
}

impl std::fmt::Display for FailedAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.replica, self.error)
    }
}

/// Why a [`Pool`] could not be built or could not get a request answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// No replica address was given, or the names resolve to none.
    #[error("no replica address")]
    NoReplicas,
    /// A replica address is neither `IP:PORT` nor `NAME:PORT`.
    #[error("bad replica address {0:?}: expected IP:PORT or NAME:PORT")]
    BadAddress(String),
    /// A DNS name could not be resolved.
    #[error("cannot resolve {name}: {source}")]
    Resolve {
        /// The name and port.
        name: String,
        /// What the resolver said.
        #[source]
        source: std::io::Error,
    },
    /// A replica's client could not be set up (trust settings, local socket).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A replica answered with an error that another replica would repeat (a rejected
    /// request, a protocol error); `before` are the attempts that failed earlier.
    #[error("{}: {}", .last.replica, .last.error)]
    Rejected {
        /// The final attempt.
        last: Box<FailedAttempt>,
        /// Earlier attempts, oldest first.
        before: Vec<FailedAttempt>,
    },
    /// Every attempt failed, or no replica could take the request; oldest first.
    #[error("no replica answered: {}", describe(.attempts))]
    Exhausted {
        /// Each attempt and why it failed (empty when no replica could be tried).
        attempts: Vec<FailedAttempt>,
    },
}

impl PoolError {
    /// A short stable label, as [`ClientError::label`] gives for the last attempt's error;
    /// `unavailable` when no attempt was made, `setup` for a pool that could not be built.
    pub fn label(&self) -> String {
        match self {
            Self::Rejected { last, .. } => last.error.label(),
            Self::Exhausted { attempts } => attempts
                .last()
                .map_or_else(|| "unavailable".to_owned(), |a| a.error.label()),
            Self::Client(e) => e.label(),
            Self::NoReplicas | Self::BadAddress(_) | Self::Resolve { .. } => "setup".to_owned(),
        }
    }

    /// Every attempt made for the request, oldest first (none for a setup error).
    pub fn attempts(&self) -> Vec<&FailedAttempt> {
        match self {
            Self::Rejected { last, before } => before.iter().chain(Some(&**last)).collect(),
            Self::Exhausted { attempts } => attempts.iter().collect(),
            _ => Vec::new(),
        }
    }
}

fn describe(attempts: &[FailedAttempt]) -> String {
    if attempts.is_empty() {
        return "every replica is out for a back-off".to_owned();
    }
    attempts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// An answer and how the pool got it.
#[derive(Debug)]
pub struct Served<T> {
    /// The answer.
    pub value: T,
    /// The replica that answered.
    pub replica: SocketAddr,
    /// How long the answering attempt took.
    pub took: Duration,
    /// The attempts that failed before it, oldest first (empty when the first one answered).
    pub failed: Vec<FailedAttempt>,
}

/// One replica as the pool sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Its address.
    pub addr: SocketAddr,
    /// Whether it takes requests.
    pub health: Health,
    /// Attempts in flight on it.
    pub outstanding: u32,
    /// Failures in a row.
    pub failures: u32,
}

/// Whether, and how, another replica might answer a request that failed with `error`: `None`
/// when the replica answered in a way another would repeat.
pub fn verdict_of(error: &ClientError) -> Option<Verdict> {
    match error {
        ClientError::Connect { .. }
        | ClientError::ConnectTimeout { .. }
        | ClientError::Connection { .. }
        | ClientError::Timeout(_) => Some(Verdict::Down),
        ClientError::StreamReset { code } if *code == u64::from(app_codes::SHUTTING_DOWN) => {
            Some(Verdict::Down)
        }
        // The server answers `too_large` on the same stream; a reset alone would repeat.
        ClientError::StreamReset { code } if *code == u64::from(app_codes::TOO_LARGE) => None,
        ClientError::StreamReset { .. } | ClientError::Stream(_) => Some(Verdict::Busy),
        ClientError::Server(e) => match e.known_code() {
            // `rate_limited` is this replica's limit on this client; another has its own.
            Some(ErrorCode::Overloaded | ErrorCode::Internal | ErrorCode::RateLimited) => {
                Some(Verdict::Busy)
            }
            _ => None,
        },
        _ => None,
    }
}

/// A set of replicas of one appliance, used as one.
///
/// Cheap to clone; clones share the replicas, their connections and their state. Must be
/// used inside a Tokio runtime.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    options: PoolOptions,
    trust: Trust,
    /// Addresses given as such (never retired).
    fixed: Vec<SocketAddr>,
    /// Names resolved again every `resolve_every`.
    names: Vec<(String, u16)>,
    state: Mutex<State>,
    next_id: AtomicU64,
}

struct State {
    balancer: Balancer,
    /// Each replica's connections, by the balancer's index.
    replicas: Vec<Connections>,
    next_resolve: Instant,
    resolving: bool,
}

struct Connections {
    clients: Vec<Client>,
    next: usize,
}

impl Pool {
    /// A pool over fixed addresses (duplicates count once), not yet connected: each replica
    /// connects on its first attempt, or with [`Pool::connect_all`].
    pub fn new(
        addrs: &[SocketAddr],
        trust: &Trust,
        options: PoolOptions,
    ) -> Result<Self, PoolError> {
        Self::build(addrs.to_vec(), Vec::new(), Vec::new(), trust, options)
    }

    /// A pool over addresses and DNS names, each name resolved now (to one replica per
    /// address) and again every [`PoolOptions::resolve_every`]; not yet connected.
    pub async fn resolve(
        addrs: &[ReplicaAddr],
        trust: &Trust,
        options: PoolOptions,
    ) -> Result<Self, PoolError> {
        let mut fixed = Vec::new();
        let mut names = Vec::new();
        let mut resolved = Vec::new();
        for addr in addrs {
            match addr {
                ReplicaAddr::Socket(a) => fixed.push(*a),
                ReplicaAddr::Name { host, port } => {
                    let found = lookup(host, *port).await?;
                    resolved.extend(found);
                    names.push((host.clone(), *port));
                }
            }
        }
        Self::build(fixed, names, resolved, trust, options)
    }

    fn build(
        fixed: Vec<SocketAddr>,
        names: Vec<(String, u16)>,
        resolved: Vec<SocketAddr>,
        trust: &Trust,
        mut options: PoolOptions,
    ) -> Result<Self, PoolError> {
        options.connections_per_replica = options.connections_per_replica.max(1);
        options.attempts = options.attempts.max(1);
        // A lost connection is the pool's to handle: it retries elsewhere.
        options.client.reconnect_attempts = 0;
        let mut state = State {
            balancer: Balancer::new(options.backoff),
            replicas: Vec::new(),
            next_resolve: Instant::now() + options.resolve_every,
            resolving: false,
        };
        for addr in &fixed {
            add_replica(&mut state, *addr, trust, &options)?;
        }
        // A resolved address this host cannot reach (IPv6 without IPv6) is skipped.
        let mut skipped = None;
        for addr in &resolved {
            if let Err(error) = add_replica(&mut state, *addr, trust, &options) {
                tracing::warn!(%addr, %error, "skipping a resolved replica");
                if skipped.is_none() {
                    skipped = Some(error);
                }
            }
        }
        if state.replicas.is_empty() {
            return Err(skipped.unwrap_or(PoolError::NoReplicas));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                options,
                trust: trust.clone(),
                fixed,
                names,
                state: Mutex::new(state),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// The options this pool was made with.
    pub fn options(&self) -> &PoolOptions {
        &self.shared.options
    }

    /// Every replica and its state, by index.
    pub fn replicas(&self) -> Vec<ReplicaStatus> {
        let state = lock(&self.shared.state);
        state
            .balancer
            .replicas()
            .iter()
            .map(|r| ReplicaStatus {
                addr: r.addr,
                health: r.health,
                outstanding: r.outstanding,
                failures: r.failures,
            })
            .collect()
    }

    /// Every replica's connections (one [`Client`] each), by replica.
    pub fn clients(&self) -> Vec<(SocketAddr, Vec<Client>)> {
        let state = lock(&self.shared.state);
        state
            .balancer
            .replicas()
            .iter()
            .zip(&state.replicas)
            .map(|(r, c)| (r.addr, c.clients.clone()))
            .collect()
    }

    /// Connects every connection of every replica at once. A replica that fails is taken
    /// out for its back-off; the failures are returned (empty when every replica is up).
    pub async fn connect_all(&self) -> Vec<FailedAttempt> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (addr, clients)) in self.clients().into_iter().enumerate() {
            for client in clients {
                tasks.spawn(async move {
                    let started = Instant::now();
                    let result = client.ensure_connected().await;
                    (i, addr, started.elapsed(), result)
                });
            }
        }
        let mut failed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok((i, replica, took, result)) = joined else {
                continue;
            };
            if let Err(error) = result {
                lock(&self.shared.state)
                    .balancer
                    .mark_down(i, Instant::now());
                failed.push(FailedAttempt {
                    replica,
                    took,
                    error,
                });
            }
        }
        failed
    }

    /// Closes every connection gracefully. Later requests reconnect.
    pub fn close(&self) {
        for (_, clients) in self.clients() {
            for client in clients {
                client.close();
            }
        }
    }

    /// Encodes `request` once, as [`Client::prepare`] does, for
    /// [`Pool::reencrypt_prepared`].
    pub fn prepare(&self, request: ReencryptRequest) -> Result<PreparedRequest, ClientError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        PreparedRequest::new(request, id, self.shared.options.client.compact_cfrags)
    }

    /// [`Client::reencrypt`] on a replica, retried on others as the pool's rules say.
    pub async fn reencrypt(
        &self,
        request: ReencryptRequest,
    ) -> Result<Served<Vec<ItemOutcome>>, PoolError> {
        self.run(move |client| {
            let request = request.clone();
            async move { client.reencrypt(request).await }
        })
        .await
    }

    /// [`Client::reencrypt_prepared`] on a replica, retried on others as the pool's rules
    /// say.
    pub async fn reencrypt_prepared(
        &self,
        request: &PreparedRequest,
    ) -> Result<Served<ReencryptSummary>, PoolError> {
        self.run(move |client| async move { client.reencrypt_prepared(request).await })
            .await
    }

    /// [`Client::round_trip_bytes`] on a replica, retried on others as the pool's rules say.
    pub async fn round_trip_bytes(&self, bytes: &[u8]) -> Result<Served<Vec<u8>>, PoolError> {
        self.run(move |client| async move { client.round_trip_bytes(bytes).await })
            .await
    }

    /// Runs `attempt` on replicas until one answers, a replica rejects the request in a way
    /// another would repeat, or the attempts are spent.
    async fn run<T, F, Fut>(&self, attempt: F) -> Result<Served<T>, PoolError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.maybe_resolve();
        let options = &self.shared.options;
        let mut tried: Vec<usize> = Vec::new();
        let mut failed: Vec<FailedAttempt> = Vec::new();
        // Waits for a replica when every one is being probed, bounded like the attempts.
        let mut waits = 0;
        while failed.len() < options.attempts as usize {
            let Some((i, replica, client)) = self.pick(&tried) else {
                if waits >= options.attempts {
                    break;
                }
                waits += 1;
                tokio::time::sleep(options.backoff.base).await;
                continue;
            };
            let mut guard = Outstanding {
                pool: self,
                replica: i,
                verdict: Verdict::Busy,
            };
            if tried.contains(&i) {
                // Every other replica was tried: give this one a moment before asking again.
                tokio::time::sleep(options.backoff.base).await;
            }
            let started = Instant::now();
            let result = attempt(client.clone()).await;
            let took = started.elapsed();
            match result {
                Ok(value) => {
                    guard.verdict = Verdict::Answered;
                    return Ok(Served {
                        value,
                        replica,
                        took,
                        failed,
                    });
                }
                Err(error) => {
                    let last = FailedAttempt {
                        replica,
                        took,
                        error,
                    };
                    let Some(verdict) = verdict_of(&last.error) else {
                        guard.verdict = Verdict::Answered;
                        return Err(PoolError::Rejected {
                            last: Box::new(last),
                            before: failed,
                        });
                    };
                    if matches!(last.error, ClientError::Timeout(_)) {
                        // A silent replica: drop the connection, so that the other requests
                        // it holds fail over now and its probe makes a fresh handshake.
                        client.close();
                    }
                    tracing::debug!(%replica, error = %last.error, "attempt failed; trying another replica");
                    guard.verdict = verdict;
                    drop(guard);
                    tried.push(i);
                    failed.push(last);
                }
            }
        }
        Err(PoolError::Exhausted { attempts: failed })
    }

    /// Chooses a replica and one of its connections for an attempt, and starts the probes
    /// that are due.
    fn pick(&self, tried: &[usize]) -> Option<(usize, SocketAddr, Client)> {
        let now = Instant::now();
        let mut state = lock(&self.shared.state);
        for i in state.balancer.due_probes(now) {
            let clients = state.replicas[i].clients.clone();
            let pool = self.clone();
            tokio::spawn(async move {
                let mut ok = true;
                for client in clients {
                    if let Err(error) = client.ensure_connected().await {
                        tracing::debug!(%error, "probe failed");
                        ok = false;
                        break;
                    }
                }
                lock(&pool.shared.state)
                    .balancer
                    .probed(i, ok, Instant::now());
            });
        }
        let i = state.balancer.choose(tried)?;
        let addr = state.balancer.replicas()[i].addr;
        let connections = &mut state.replicas[i];
        let client = connections.clients[connections.next % connections.clients.len()].clone();
        connections.next = connections.next.wrapping_add(1);
        Some((i, addr, client))
    }

    /// Ends an attempt; a replica taken out has its connections closed, so that the other
    /// requests on them fail over at once.
    fn finish(&self, i: usize, verdict: Verdict) {
        let closing = {
            let mut state = lock(&self.shared.state);
            if state.balancer.finish(i, verdict, Instant::now()) {
                state.replicas[i].clients.clone()
            } else {
                Vec::new()
            }
        };
        for client in closing {
            client.close();
        }
    }

    /// Starts resolving the names again when it is time.
    fn maybe_resolve(&self) {
        if self.shared.names.is_empty() {
            return;
        }
        {
            let mut state = lock(&self.shared.state);
            if state.resolving || Instant::now() < state.next_resolve {
                return;
            }
            state.resolving = true;
        }
        let pool = self.clone();
        tokio::spawn(async move { pool.re_resolve().await });
    }

    async fn re_resolve(&self) {
        let shared = &self.shared;
        let mut found = Vec::new();
        let mut complete = true;
        for (host, port) in &shared.names {
            match lookup(host, *port).await {
                Ok(addrs) => found.extend(addrs),
                Err(error) => {
                    tracing::warn!(%error, "keeping the replicas of the last resolution");
                    complete = false;
                }
            }
        }
        let mut state = lock(&shared.state);
        for addr in &found {
            if let Err(error) = add_replica(&mut state, *addr, &shared.trust, &shared.options) {
                tracing::warn!(%addr, %error, "cannot add a resolved replica");
            }
        }
        if complete {
            let fixed = &shared.fixed;
            state
                .balancer
                .retire_unless(|a| fixed.contains(&a) || found.contains(&a));
        }
        state.next_resolve = Instant::now() + shared.options.resolve_every;
        state.resolving = false;
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("replicas", &self.replicas())
            .finish_non_exhaustive()
    }
}

/// An attempt in flight: counted outstanding on its replica until dropped, so that a caller
/// that abandons the request (a threshold retrieval that has enough) does not leave it
/// counted.
struct Outstanding<'p> {
    pool: &'p Pool,
    replica: usize,
    verdict: Verdict,
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.pool.finish(self.replica, self.verdict);
    }
}

/// Adds `addr` as a replica with its connections, unless it is one already.
fn add_replica(
    state: &mut State,
    addr: SocketAddr,
    trust: &Trust,
    options: &PoolOptions,
) -> Result<(), PoolError> {
    let known = state.balancer.replicas().len();
    if state.balancer.replicas().iter().any(|r| r.addr == addr) {
        state.balancer.add(addr);
        return Ok(());
    }
    let clients = (0..options.connections_per_replica)
        .map(|_| Client::new(addr, trust, options.client.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let i = state.balancer.add(addr);
    debug_assert_eq!(i, known);
    state.replicas.push(Connections { clients, next: 0 });
    Ok(())
}

async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, PoolError> {
    let name = format!("{host}:{port}");
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| PoolError::Resolve {
            name: name.clone(),
            source,
        })?
        .collect();
    if found.is_empty() {
        return Err(PoolError::Resolve {
            name,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        });
    }
    Ok(found)
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServerError;

    #[test]
    fn replica_addresses_parse() {
        assert_eq!(
            "127.0.0.1:4433".parse::<ReplicaAddr>().expect("ip"),
            ReplicaAddr::Socket(SocketAddr::from(([127, 0, 0, 1], 4433)))
        );
        assert!(matches!(
            "[::1]:1".parse::<ReplicaAddr>(),
            Ok(ReplicaAddr::Socket(_))
        ));
        assert_eq!(
            "umbrald.default.svc:4433"
                .parse::<ReplicaAddr>()
                .expect("name"),
            ReplicaAddr::Name {
                host: "umbrald.default.svc".to_owned(),
                port: 4433
            }
        );
        for bad in ["no-port", ":4433", "host:", "host:99999", "::1:4433"] {
            assert!(
                matches!(bad.parse::<ReplicaAddr>(), Err(PoolError::BadAddress(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn failures_that_another_replica_may_not_have_are_retried() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let server = |code: ErrorCode| {
            ClientError::Server(ServerError {
                code: code.as_str().to_owned(),
                message: String::new(),
            })
        };
        let closed = |code: u32| ClientError::Connection {
            addr,
            source: quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
                error_code: code.into(),
                reason: Default::default(),
            }),
        };
        assert_eq!(
            verdict_of(&closed(app_codes::SHUTTING_DOWN)),
            Some(Verdict::Down)
        );
        assert_eq!(
            verdict_of(&ClientError::Connection {
                addr,
                source: quinn::ConnectionError::TimedOut
            }),
            Some(Verdict::Down)
        );
        assert_eq!(
            verdict_of(&ClientError::ConnectTimeout {
                addr,
                timeout: Duration::from_secs(1)
            }),
            Some(Verdict::Down)
        );
        assert_eq!(
            verdict_of(&ClientError::Timeout(Duration::from_secs(1))),
            Some(Verdict::Down)
        );
        assert_eq!(
            verdict_of(&ClientError::StreamReset {
                code: app_codes::SHUTTING_DOWN.into()
            }),
            Some(Verdict::Down)
        );
        assert_eq!(
            verdict_of(&ClientError::StreamReset {
                code: app_codes::REQUEST_TIMEOUT.into()
            }),
            Some(Verdict::Busy)
        );
        assert_eq!(
            verdict_of(&ClientError::StreamReset {
                code: app_codes::TOO_LARGE.into()
            }),
            None
        );
        assert_eq!(
            verdict_of(&server(ErrorCode::Overloaded)),
            Some(Verdict::Busy)
        );
        assert_eq!(
            verdict_of(&server(ErrorCode::RateLimited)),
            Some(Verdict::Busy)
        );
        assert_eq!(
            verdict_of(&server(ErrorCode::Internal)),
            Some(Verdict::Busy)
        );
        for final_code in [
            ErrorCode::Malformed,
            ErrorCode::TooLarge,
            ErrorCode::InvalidCapsule,
            ErrorCode::DeadlineExceeded,
            ErrorCode::KfragVerificationFailed,
        ] {
            assert_eq!(verdict_of(&server(final_code)), None, "{final_code:?}");
        }
        assert_eq!(
            verdict_of(&ClientError::UnexpectedResponse("x".to_owned())),
            None
        );
    }

    #[test]
    fn errors_carry_every_attempt_and_a_label() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let attempt = |error| FailedAttempt {
            replica: addr,
            took: Duration::from_millis(1),
            error,
        };
        let err = PoolError::Exhausted {
            attempts: vec![
                attempt(ClientError::Timeout(Duration::from_secs(1))),
                attempt(ClientError::Server(ServerError {
                    code: "overloaded".to_owned(),
                    message: String::new(),
                })),
            ],
        };
        assert_eq!(err.label(), "overloaded");
        assert_eq!(err.attempts().len(), 2);
        assert!(err.to_string().contains("no response within"), "{err}");
        let none = PoolError::Exhausted {
            attempts: Vec::new(),
        };
        assert_eq!(none.label(), "unavailable");
        let rejected = PoolError::Rejected {
            last: Box::new(attempt(ClientError::UnexpectedResponse("x".to_owned()))),
            before: vec![attempt(ClientError::Timeout(Duration::from_secs(1)))],
        };
        assert_eq!(rejected.label(), "protocol");
        assert_eq!(rejected.attempts().len(), 2);
    }

    #[tokio::test]
    async fn a_pool_needs_a_replica() {
        let trust = Trust::Fingerprint(crate::Fingerprint([0; 32]));
        assert!(matches!(
            Pool::new(&[], &trust, PoolOptions::default()),
            Err(PoolError::NoReplicas)
        ));
        let a = SocketAddr::from(([127, 0, 0, 1], 9));
        let pool = Pool::new(&[a, a], &trust, PoolOptions::default()).expect("pool");
        assert_eq!(pool.replicas().len(), 1, "duplicates count once");
        let pool = Pool::resolve(
            &["localhost:9".parse::<ReplicaAddr>().expect("name")],
            &trust,
            PoolOptions::default(),
        )
        .await
        .expect("localhost resolves");
        assert!(!pool.replicas().is_empty());
    }
}
