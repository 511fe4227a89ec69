//! The requests the load generator sends: real policies and capsules made with umbral-pre, so
//! that the server does real work, and a check that its answers verify.

use umbral_pre::{Capsule, CapsuleFrag, DefaultDeserialize};
use umbrald_proto::{Item, Policy};

use crate::actors::{Alice, Bob, Grant};
use crate::cli::CliError;
use crate::client::{Client, ReencryptRequest};

/// Pre-built policies and capsules; request `k` is fully determined by `k`.
pub struct Workload {
    grants: Vec<Grant>,
    policies: Vec<Policy>,
    capsules: Vec<Capsule>,
    capsule_bytes: Vec<Vec<u8>>,
    batch: usize,
    deadline_ms: Option<u32>,
}

impl Workload {
    /// Makes `policies` 1-of-1 grants and `capsules` capsules (each at least 1).
    pub fn generate(
        policies: usize,
        capsules: usize,
        batch: usize,
        deadline_ms: Option<u32>,
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
        Ok(Self {
            grants,
            policies: wire_policies,
            capsules: sealed,
            capsule_bytes: bytes,
            batch: batch.max(1),
            deadline_ms,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use umbral_pre::{DefaultSerialize, KeyFrag};

    #[test]
    fn every_item_is_valid_under_its_policy() {
        let w = Workload::generate(3, 7, 4, None).expect("workload");
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
        let w = Workload::generate(4, 1, 2, Some(50)).expect("workload");
        let req = w.request(3);
        assert_eq!(req.items.len(), 2);
        assert_eq!(req.deadline_ms, Some(50));
    }
}
