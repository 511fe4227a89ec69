//! The node's NuCypher keys as the server carries them. A leaf: the configuration, the
//! NuCypher ingress and the `/status` endpoint use it.

use std::sync::Arc;

use umbrald_nucypher::NodeKeys;

/// The node's NuCypher keys as the configuration carries them: absent unless the server was
/// started with node keys (`umbrald serve --node-keys`). Never serialized; two slots are equal
/// when they hold the same public keys.
#[derive(Clone, Default)]
pub struct NodeKeysSlot(pub Option<Arc<NodeKeys>>);

impl std::fmt::Debug for NodeKeysSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // NodeKeys' Debug shows public keys only.
        f.debug_tuple("NodeKeysSlot").field(&self.0).finish()
    }
}

impl PartialEq for NodeKeysSlot {
    fn eq(&self, other: &Self) -> bool {
        let public = |s: &Self| {
            s.0.as_ref()
                .map(|k| (*k.decrypting_public_key(), *k.verifying_public_key()))
        };
        public(self) == public(other)
    }
}

impl Eq for NodeKeysSlot {}

impl From<NodeKeys> for NodeKeysSlot {
    fn from(keys: NodeKeys) -> Self {
        Self(Some(Arc::new(keys)))
    }
}
