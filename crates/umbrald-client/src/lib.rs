//! Client library of umbrald: talk to appliances, retrieve m-of-n cfrags, and the umbral-pre
//! roles around them.
//!
//! - [`Client`]: one QUIC connection (ALPN `umbrald/1`, TLS 1.3) to one appliance, trusted by a
//!   CA file or a pinned certificate fingerprint ([`Trust`]). Requests are pipelined, one QUIC
//!   stream each; a lost connection is re-established transparently. High-rate callers that
//!   need only each item's outcome (a load generator) encode a [`PreparedRequest`] once and send
//!   it with [`Client::reencrypt_prepared`], which checks the answer in place.
//! - [`Pool`]: one appliance served by several replicas (addresses, or DNS names resolving to
//!   several) sharing one certificate: each request goes to the replica with the fewest
//!   requests outstanding, a failed replica is left alone for a back-off, and a request that a
//!   replica did not answer (lost or closed connection, shutdown, `overloaded`) is retried on
//!   another. The choice and the back-off are the pure state machine of [`balance`].
//! - [`ThresholdClient`]: the split-key retrieval. Ask n appliances, verify each cfrag with
//!   umbral-pre as it arrives, return with the first m valid ones and a report of bad nodes.
//! - [`Alice`], [`Bob`], [`Grant`]: umbral-pre helpers so an end-to-end flow takes a few lines:
//!
//! ```no_run
//! # async fn flow(nodes: Vec<umbrald_client::NodeSpec>) -> Result<(), Box<dyn std::error::Error>> {
//! use umbrald_client::{Alice, Bob, ClientOptions, ThresholdClient};
//! let (alice, bob) = (Alice::random(), Bob::random());
//! let sealed = alice.encrypt(b"attack at dawn")?;
//! let grant = alice.grant(&bob.public_key(), 2, nodes.len())?;
//! let appliances = ThresholdClient::new(&nodes, &ClientOptions::default())?;
//! let retrieval = appliances.retrieve(&grant, &sealed.capsule).await?;
//! assert_eq!(&*bob.decrypt(&grant, &sealed, retrieval.cfrags)?, b"attack at dawn");
//! # Ok(()) }
//! ```
//!
//! [`keyfile`] reads and writes the roles' secret key files.

pub mod actors;
pub mod balance;
pub mod client;
pub mod error;
pub mod keyfile;
pub mod pool;
pub mod threshold;
pub mod trust;

mod gather;

pub use actors::{ActorError, Alice, Bob, Grant, Sealed};
pub use balance::{Backoff, Health, Verdict};
pub use client::{
    Client, ClientOptions, ItemOutcome, PreparedRequest, ReencryptRequest, ReencryptSummary,
};
pub use error::{ClientError, ServerError};
pub use pool::{FailedAttempt, Pool, PoolError, PoolOptions, ReplicaAddr, ReplicaStatus, Served};
pub use threshold::{
    NodeFailure, NodeFailureKind, NodeSpec, ReplicatedNode, Retrieval, ThresholdClient,
    ThresholdError,
};
pub use trust::{ClientIdentity, Fingerprint, Trust, TrustError};
