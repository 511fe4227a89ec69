//! A bounded cache of verified kfrags, keyed by a hash of the exact policy bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::codec::VerifiedKeyFrag;

/// Key of one policy: SHA-256 over the length-prefixed kfrag and key bytes.
pub(crate) type PolicyKey = [u8; 32];

/// Computes the cache key of a policy's bytes.
pub(crate) fn policy_key(parts: [&[u8]; 4]) -> PolicyKey {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// FIFO-evicting map from policy key to verified kfrag.
pub(crate) struct KfragCache {
    capacity: usize,
    map: HashMap<PolicyKey, Arc<VerifiedKeyFrag>>,
    order: VecDeque<PolicyKey>,
}

impl KfragCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn get(&self, key: &PolicyKey) -> Option<Arc<VerifiedKeyFrag>> {
        self.map.get(key).cloned()
    }

    pub(crate) fn insert(&mut self, key: PolicyKey, kfrag: Arc<VerifiedKeyFrag>) {
        if self.map.insert(key, kfrag).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}
