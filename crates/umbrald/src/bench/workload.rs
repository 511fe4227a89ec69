//! The requests the load generator sends: real policies and capsules made with umbral-pre, so
//! that the server does real work, and a check that its answers verify.
//!
//! The requests are encoded once, before the clock starts ([`PreparedRequest`]), so that the
//! generator spends its CPU on the transport rather than on building, encoding and decoding
//! what it throws away.

use umbral_pre::{Capsule, CapsuleFrag, DefaultDeserialize};
use umbrald_client::{Alice, Bob, Client, Grant, PreparedRequest, ReencryptRequest};
use umbrald_proto::{Item, Policy};

use crate::error::CliError;

/// At most this many distinct requests are prepared (unless there are more policies, see
/// [`Workload::prepared`]).
const MAX_PREPARED: usize = 64;

/// Pre-built policies and capsules; request `k` is fully determined by `k`.
pub struct Workload {
    grants: Vec<Grant>,
    policies: Vec<Policy>,
    capsules: Vec<Capsule>,
    capsule_bytes: Vec<Vec<u8>>,
    batch: usize,
    deadline_ms: Option<u32>,
    prepared: Vec<PreparedRequest>,
}

impl Workload {
    /// Makes `policies` 1-of-1 grants and `capsules` capsules (each at least 1), and prepares
    /// the requests to send (asking for compact cfrags if `compact_cfrags`).
    pub fn generate(
        policies: usize,
        capsules: usize,
        batch: usize,
        deadline_ms: Option<u32>,
        compact_cfrags: bool,
    ) -> Result<Self, CliError> {
        let bob = Bob::random();
        let mut grants = Vec::new();
        let mut wire_policies = Vec::new();
        for _ in 0..policies.max(1) {
            let grant = Alice::random().grant(&bob.public_key(), 1, 1)?;
            wire_policies.push(
                grant
                    .policy(0)
                    .ok_or_else(|| CliError::Usage("grant without kfrag".to_owned()))?,
            );
            grants.push(grant);
        }
        // A capsule's validity and a cfrag's verification do not depend on which Alice made
        // the capsule, so every capsule is valid under every policy.
        let owner = Alice::random();
        let mut sealed = Vec::new();
        let mut bytes = Vec::new();
        for i in 0..capsules.max(1) {
            let s = owner.encrypt(format!("bench {i}").as_bytes())?;
            bytes.push(s.capsule_bytes()?);
            sealed.push(s.capsule);
        }
        let mut workload = Self {
            grants,
            policies: wire_policies,
            capsules: sealed,
            capsule_bytes: bytes,
            batch: batch.max(1),
            deadline_ms,
            prepared: Vec::new(),
        };
        let distinct = workload.distinct_requests();
        workload.prepared = (0..distinct as u64)
            .map(|seq| PreparedRequest::new(workload.request(seq), seq + 1, compact_cfrags))
            .collect::<Result<_, _>>()?;
        Ok(workload)
    }

    /// How many requests are prepared: the period of [`Workload::pick`] (the least common
    /// multiple of the policy and capsule counts), but at most [`MAX_PREPARED`] or the number
    /// of policies, whichever is larger, so that every policy is still used and memory stays
    /// bounded (a request of `--batch 512` is about 60 KiB). Past the bound the capsule offsets
    /// repeat sooner than [`Workload::request`]'s would, which the server's work does not
    /// depend on.
    fn distinct_requests(&self) -> usize {
        let (p, c) = (self.grants.len(), self.capsules.len());
        let period = p / gcd(p, c) * c;
        period.min(MAX_PREPARED.max(p))
    }

    /// The prepared request number `seq`: the same as [`Workload::request`]`(seq mod n)` with
    /// `n` prepared requests (see [`Workload::distinct_requests`]). Request 0 is
    /// [`Workload::request`]`(0)`, the one [`Workload::check_answers`] verifies.
    pub fn prepared(&self, seq: u64) -> &PreparedRequest {
        &self.prepared[(seq % self.prepared.len() as u64) as usize]
    }

    /// Request number `seq`: one policy, `batch` capsules encrypted under it.
    pub fn request(&self, seq: u64) -> ReencryptRequest {
        let (policy, capsules) = self.pick(seq);
        let items = capsules
            .into_iter()
            .map(|c| Item {
                capsule: self.capsule_bytes[c].clone(),
                policy: 0,
            })
            .collect();
        ReencryptRequest {
            policies: vec![self.policies[policy].clone()],
            items,
            deadline_ms: self.deadline_ms,
            priority: None,
        }
    }

    /// Sends request 0 and verifies every cfrag with umbral-pre, so that a benchmark never
    /// measures a server that answers garbage.
    pub async fn check_answers(&self, client: &Client) -> Result<(), CliError> {
        let outcomes = client.reencrypt(self.request(0)).await?;
        let (policy, capsules) = self.pick(0);
        let grant = &self.grants[policy];
        for (outcome, c) in outcomes.into_iter().zip(capsules) {
            let bytes = outcome.map_err(|e| CliError::BadCfrag(format!("item rejected: {e}")))?;
            CapsuleFrag::from_bytes(&bytes)
                .map_err(|e| CliError::BadCfrag(e.to_string()))?
                .verify(
                    &self.capsules[c],
                    &grant.verifying_pk,
                    &grant.delegating_pk,
                    &grant.receiving_pk,
                )
                .map_err(|(e, _)| CliError::BadCfrag(e.to_string()))?;
        }
        Ok(())
    }

    /// The policy index and capsule indexes of request `seq`: policies round-robin, capsules
    /// consecutive.
    fn pick(&self, seq: u64) -> (usize, Vec<usize>) {
        let policy = (seq % self.grants.len() as u64) as usize;
        let first = (seq % self.capsules.len() as u64) as usize * self.batch;
        let capsules = (0..self.batch)
            .map(|j| (first + j) % self.capsules.len())
            .collect();
        (policy, capsules)
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use umbral_pre::{DefaultSerialize, KeyFrag};

    #[test]
    fn every_item_is_valid_under_its_policy() {
        let w = Workload::generate(3, 7, 4, None, true).expect("workload");
        for seq in 0..6 {
            let req = w.request(seq);
            assert_eq!(req.items.len(), 4);
            let (policy, capsules) = w.pick(seq);
            let grant = &w.grants[policy];
            let kfrag = KeyFrag::from_bytes(&req.policies[0].kfrag)
                .expect("kfrag")
                .verify(
                    &grant.verifying_pk,
                    Some(&grant.delegating_pk),
                    Some(&grant.receiving_pk),
                )
                .expect("verifies");
            for (item, c) in req.items.iter().zip(capsules) {
                assert_eq!(
                    item.capsule,
                    w.capsules[c].to_bytes().expect("bytes").to_vec()
                );
                let cfrag = umbral_pre::reencrypt(&w.capsules[c], kfrag.clone());
                assert!(cfrag
                    .unverify()
                    .verify(
                        &w.capsules[c],
                        &grant.verifying_pk,
                        &grant.delegating_pk,
                        &grant.receiving_pk
                    )
                    .is_ok());
            }
        }
    }

    #[test]
    fn more_items_than_capsules_wrap_around() {
        let w = Workload::generate(4, 1, 2, Some(50), false).expect("workload");
        let req = w.request(3);
        assert_eq!(req.items.len(), 2);
        assert_eq!(req.deadline_ms, Some(50));
    }

    /// The prepared requests are the workload's own, encoded once, and cycle with
    /// [`Workload::pick`]'s period (bounded).
    #[test]
    fn prepared_requests_encode_the_workloads_requests() {
        use umbrald_proto::{decode, Request};
        let w = Workload::generate(3, 4, 2, Some(7), true).expect("workload");
        assert_eq!(w.prepared.len(), 12);
        for seq in [0, 5, 11, 12, 29] {
            let prepared = w.prepared(seq);
            let sent: Request = decode(prepared.bytes()).expect("decode");
            let expected = w.request(seq % 12);
            assert_eq!(sent.policies, expected.policies);
            assert_eq!(sent.items, expected.items);
            assert_eq!(sent.deadline_ms, Some(7));
            assert_eq!(sent.compact_cfrags, Some(true));
            assert_eq!(sent.id, seq % 12 + 1);
            assert_eq!(prepared.items(), 2);
        }
        // The default shape (1 policy, 256 capsules) is bounded; many policies all stay in use.
        let w = Workload::generate(1, 256, 1, None, false).expect("workload");
        assert_eq!(w.prepared.len(), MAX_PREPARED);
        assert_eq!(w.prepared(0).bytes(), w.prepared(64).bytes());
        let w = Workload::generate(70, 3, 1, None, false).expect("workload");
        assert_eq!(w.prepared.len(), 70);
        let sent: Request = decode(w.prepared(0).bytes()).expect("decode");
        assert_eq!(sent.compact_cfrags, None);
    }
}
