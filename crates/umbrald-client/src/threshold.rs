//! Threshold retrieval, the split-key part of umbrald as a user sees it: n appliances each hold
//! one of the n kfrags of a policy; Bob asks all of them, verifies every cfrag with umbral-pre
//! as it arrives, and goes on as soon as m are valid. A node may be several replicas of one
//! appliance ([`ReplicatedNode`]), asked through a [`Pool`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use umbral_pre::{Capsule, CapsuleFrag, DefaultDeserialize, PublicKey, VerifiedCapsuleFrag};

use crate::actors::{capsule_bytes, ActorError, Grant};
use crate::client::{Client, ClientOptions, ReencryptRequest};
use crate::error::{ClientError, ServerError};
use crate::gather::first_valid;
use crate::pool::{Pool, PoolError, PoolOptions, ReplicaAddr};
use crate::trust::Trust;

/// Where one appliance is and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The appliance's QUIC address.
    pub addr: SocketAddr,
    /// How to authenticate it.
    pub trust: Trust,
}

/// One node given as several replicas of one appliance (they hold the same kfrag and present
/// the same certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatedNode {
    /// The replicas' addresses (or DNS names resolving to them).
    pub replicas: Vec<ReplicaAddr>,
    /// How to authenticate every replica.
    pub trust: Trust,
}

impl From<NodeSpec> for ReplicatedNode {
    fn from(node: NodeSpec) -> Self {
        Self {
            replicas: vec![ReplicaAddr::Socket(node.addr)],
            trust: node.trust,
        }
    }
}

/// Clients for the n appliances of one policy; node `i` is sent kfrag `i` of a [`Grant`].
#[derive(Debug, Clone)]
pub struct ThresholdClient {
    /// The clients of nodes given as one address each (empty when the nodes are pools).
    clients: Vec<Client>,
    targets: Vec<Target>,
}

/// How one node is asked.
#[derive(Debug, Clone)]
enum Target {
    One(Client),
    Replicas(Pool),
}

impl Target {
    /// The address reported with a failure: the node's, or its first replica's.
    fn addr(&self) -> SocketAddr {
        match self {
            Self::One(client) => client.addr(),
            Self::Replicas(pool) => pool
                .replicas()
                .first()
                .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |r| r.addr),
        }
    }
}

/// The result of a successful [`ThresholdClient::retrieve`].
#[derive(Debug)]
pub struct Retrieval {
    /// Exactly `grant.threshold` verified cfrags, ready for [`crate::Bob::decrypt`].
    pub cfrags: Vec<VerifiedCapsuleFrag>,
    /// The node index each cfrag came from, in the same order.
    pub contributors: Vec<usize>,
    /// Nodes that failed before the threshold was reached: unreachable, rejected the request,
    /// or returned a bad cfrag (see [`NodeFailureKind::is_misbehaviour`]).
    pub failures: Vec<NodeFailure>,
    /// Nodes that had not answered when enough cfrags were in hand; their requests were
    /// cancelled. Their correctness is unknown.
    pub pending: Vec<usize>,
    /// Time from the first request to the m-th valid cfrag.
    pub elapsed: Duration,
}

/// One node's failure in a retrieval.
#[derive(Debug, thiserror::Error)]
#[error("node {node} ({addr}): {kind}")]
pub struct NodeFailure {
    /// The node's index.
    pub node: usize,
    /// The node's address.
    pub addr: SocketAddr,
    /// What went wrong.
    #[source]
    pub kind: NodeFailureKind,
}

/// What went wrong with one node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeFailureKind {
    /// The request failed: unreachable, timed out, or rejected as a whole.
    #[error(transparent)]
    Request(ClientError),
    /// The node's replicas did not answer, or one rejected the request as a whole.
    #[error(transparent)]
    Replicas(PoolError),
    /// The node refused the item (for example `kfrag_verification_failed`).
    #[error("item rejected: {0}")]
    Rejected(ServerError),
    /// The node answered bytes that are not a cfrag.
    #[error("answer is not a cfrag: {0}")]
    Malformed(String),
    /// The node answered a well-formed cfrag that fails umbral-pre verification: it did not
    /// re-encrypt this capsule with the kfrag it was given.
    #[error("cfrag failed verification: {0}")]
    Invalid(String),
    /// The node answered a valid cfrag that another node already delivered (same kfrag).
    #[error("cfrag duplicates one from node {0}")]
    Duplicate(usize),
}

impl NodeFailureKind {
    /// Whether the node answered but the answer was wrong (malformed, invalid or duplicate),
    /// as opposed to being down, slow or refusing: the node deserves an operator's look.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            Self::Malformed(_) | Self::Invalid(_) | Self::Duplicate(_)
        )
    }
}

/// Why a retrieval did not produce m valid cfrags.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdError {
    /// The grant's kfrag count does not match the number of nodes.
    #[error("grant has {kfrags} kfrags but there are {nodes} nodes")]
    NodeCountMismatch {
        /// Kfrags in the grant.
        kfrags: usize,
        /// Nodes in the client.
        nodes: usize,
    },
    /// The capsule could not be serialized.
    #[error(transparent)]
    Capsule(#[from] ActorError),
    /// Too many nodes failed.
    #[error("only {got} of the {needed} required cfrags: {}", summarize(.failures))]
    NotEnough {
        /// m.
        needed: usize,
        /// Valid cfrags received.
        got: usize,
        /// Every failure.
        failures: Vec<NodeFailure>,
    },
}

impl ThresholdClient {
    /// Creates (unconnected) clients for the nodes; each connects on first use.
    pub fn new(nodes: &[NodeSpec], options: &ClientOptions) -> Result<Self, ClientError> {
        let nodes = nodes
            .iter()
            .map(|n| Client::new(n.addr, &n.trust, options.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Self::from_clients(nodes))
    }

    /// Uses existing clients; the same client may appear several times (one appliance holding
    /// several kfrags, as in a single-node demo).
    pub fn from_clients(nodes: Vec<Client>) -> Self {
        let targets = nodes.iter().cloned().map(Target::One).collect();
        Self {
            clients: nodes,
            targets,
        }
    }

    /// Creates (unconnected) pools for nodes given as replicas, resolving DNS names; each
    /// node's request goes to one of its replicas and fails over to the others.
    pub async fn with_replicas(
        nodes: &[ReplicatedNode],
        options: &PoolOptions,
    ) -> Result<Self, PoolError> {
        let mut pools = Vec::with_capacity(nodes.len());
        for node in nodes {
            pools.push(Pool::resolve(&node.replicas, &node.trust, options.clone()).await?);
        }
        Ok(Self::from_pools(pools))
    }

    /// Uses existing pools, one per node.
    pub fn from_pools(pools: Vec<Pool>) -> Self {
        Self {
            clients: Vec::new(),
            targets: pools.into_iter().map(Target::Replicas).collect(),
        }
    }

    /// The node clients, by index, when every node is one address ([`ThresholdClient::new`],
    /// [`ThresholdClient::from_clients`]); empty when the nodes are pools.
    pub fn nodes(&self) -> &[Client] {
        &self.clients
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Asks every node to re-encrypt `capsule` with its kfrag of `grant`, verifies each cfrag
    /// as it arrives, and returns as soon as `grant.threshold` valid, distinct cfrags are in
    /// hand. Nodes still working then are abandoned; a node that is down costs nothing once
    /// m others answered. Fails with [`ThresholdError::NotEnough`] as soon as m valid cfrags
    /// can no longer be reached.
    pub async fn retrieve(
        &self,
        grant: &Grant,
        capsule: &Capsule,
    ) -> Result<Retrieval, ThresholdError> {
        if grant.shares() != self.targets.len() {
            return Err(ThresholdError::NodeCountMismatch {
                kfrags: grant.shares(),
                nodes: self.targets.len(),
            });
        }
        let started = Instant::now();
        let keys = PolicyKeys::of(grant);
        let capsule_wire = capsule_bytes(capsule)?;
        let tasks: Vec<_> = self
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, target)| {
                let policy = grant.policy(i)?;
                let request = ReencryptRequest::new(policy, [capsule_wire.clone()]);
                Some(ask_node(target.clone(), request, capsule.clone(), keys))
            })
            .collect();

        let mut kfrag_ids: Vec<([u8; 32], usize)> = Vec::new();
        let gathered = first_valid(
            tasks,
            grant.threshold,
            |node, cfrag: VerifiedCapsuleFrag| {
                let id = kfrag_id(&cfrag);
                if let Some(&(_, first)) = kfrag_ids.iter().find(|(seen, _)| *seen == id) {
                    return Err(NodeFailureKind::Duplicate(first));
                }
                kfrag_ids.push((id, node));
                Ok(cfrag)
            },
        )
        .await;

        let failures: Vec<NodeFailure> = gathered
            .failed
            .into_iter()
            .map(|(node, kind)| NodeFailure {
                node,
                addr: self.targets[node].addr(),
                kind,
            })
            .collect();
        for failure in &failures {
            if failure.kind.is_misbehaviour() {
                tracing::warn!(%failure, "appliance returned a bad cfrag");
            }
        }
        if gathered.ok.len() < grant.threshold {
            return Err(ThresholdError::NotEnough {
                needed: grant.threshold,
                got: gathered.ok.len(),
                failures,
            });
        }
        let (contributors, cfrags) = gathered.ok.into_iter().unzip();
        Ok(Retrieval {
            cfrags,
            contributors,
            failures,
            pending: gathered.pending,
            elapsed: started.elapsed(),
        })
    }
}

/// The three public keys a cfrag is verified against.
#[derive(Clone, Copy)]
struct PolicyKeys {
    delegating: PublicKey,
    receiving: PublicKey,
    verifying: PublicKey,
}

impl PolicyKeys {
    fn of(grant: &Grant) -> Self {
        Self {
            delegating: grant.delegating_pk,
            receiving: grant.receiving_pk,
            verifying: grant.verifying_pk,
        }
    }
}

/// One node's part: request, then verify the single cfrag.
async fn ask_node(
    target: Target,
    request: ReencryptRequest,
    capsule: Capsule,
    keys: PolicyKeys,
) -> Result<VerifiedCapsuleFrag, NodeFailureKind> {
    let mut outcomes = match target {
        Target::One(client) => client
            .reencrypt(request)
            .await
            .map_err(NodeFailureKind::Request)?,
        Target::Replicas(pool) => {
            pool.reencrypt(request)
                .await
                .map_err(NodeFailureKind::Replicas)?
                .value
        }
    };
    // `reencrypt` checked that there is exactly one outcome per item.
    let bytes = match outcomes.pop() {
        Some(Ok(bytes)) => bytes,
        Some(Err(rejected)) => return Err(NodeFailureKind::Rejected(rejected)),
        None => return Err(NodeFailureKind::Malformed("no result".to_owned())),
    };
    verify_cfrag(&bytes, &capsule, &keys)
}

fn verify_cfrag(
    bytes: &[u8],
    capsule: &Capsule,
    keys: &PolicyKeys,
) -> Result<VerifiedCapsuleFrag, NodeFailureKind> {
    let cfrag =
        CapsuleFrag::from_bytes(bytes).map_err(|e| NodeFailureKind::Malformed(e.to_string()))?;
    cfrag
        .verify(capsule, &keys.verifying, &keys.delegating, &keys.receiving)
        .map_err(|(e, _)| NodeFailureKind::Invalid(e.to_string()))
}

/// The id of the kfrag a cfrag was made with: bytes 66..98 of umbral-pre's simple encoding
/// (after the two 33-byte points `e1` and `v1`).
fn kfrag_id(cfrag: &VerifiedCapsuleFrag) -> [u8; 32] {
    let simple = cfrag.to_bytes_simple();
    let mut id = [0u8; 32];
    if let Some(bytes) = simple.get(66..98) {
        id.copy_from_slice(bytes);
    }
    id
}

fn summarize(failures: &[NodeFailure]) -> String {
    if failures.is_empty() {
        return "no node failed (nodes still pending)".to_owned();
    }
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::{Alice, Bob};
    use umbral_pre::{DefaultSerialize, KeyFrag};

    fn local_cfrag(grant: &Grant, i: usize, capsule: &Capsule) -> VerifiedCapsuleFrag {
        let kfrag = KeyFrag::from_bytes(&grant.kfrags[i])
            .expect("kfrag")
            .verify(
                &grant.verifying_pk,
                Some(&grant.delegating_pk),
                Some(&grant.receiving_pk),
            )
            .expect("verify");
        umbral_pre::reencrypt(capsule, kfrag)
    }

    #[test]
    fn verification_accepts_good_and_classifies_bad_cfrags() {
        let (alice, bob) = (Alice::random(), Bob::random());
        let grant = alice.grant(&bob.public_key(), 2, 3).expect("grant");
        let sealed = alice.encrypt(b"m").expect("encrypt");
        let other = alice.encrypt(b"n").expect("encrypt");
        let keys = PolicyKeys::of(&grant);
        let good = local_cfrag(&grant, 0, &sealed.capsule)
            .to_bytes()
            .expect("bytes");
        assert!(verify_cfrag(&good, &sealed.capsule, &keys).is_ok());

        // A real cfrag, but for another capsule.
        let wrong = local_cfrag(&grant, 0, &other.capsule)
            .to_bytes()
            .expect("bytes");
        assert!(matches!(
            verify_cfrag(&wrong, &sealed.capsule, &keys),
            Err(NodeFailureKind::Invalid(_))
        ));

        assert!(matches!(
            verify_cfrag(b"junk", &sealed.capsule, &keys),
            Err(NodeFailureKind::Malformed(_))
        ));
    }

    #[test]
    fn kfrag_id_tells_kfrags_apart() {
        let (alice, bob) = (Alice::random(), Bob::random());
        let grant = alice.grant(&bob.public_key(), 2, 2).expect("grant");
        let sealed = alice.encrypt(b"m").expect("encrypt");
        let a1 = kfrag_id(&local_cfrag(&grant, 0, &sealed.capsule));
        let a2 = kfrag_id(&local_cfrag(&grant, 0, &sealed.capsule));
        let b = kfrag_id(&local_cfrag(&grant, 1, &sealed.capsule));
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
    }

    #[test]
    fn misbehaviour_is_told_apart_from_unavailability() {
        assert!(NodeFailureKind::Invalid("x".into()).is_misbehaviour());
        assert!(NodeFailureKind::Duplicate(1).is_misbehaviour());
        assert!(
            !NodeFailureKind::Request(ClientError::Timeout(Duration::from_secs(1)))
                .is_misbehaviour()
        );
    }
}
