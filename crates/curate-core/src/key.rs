//! Content keys: a hash over a typed, length-prefixed encoding, so that different inputs
//! can never produce the same byte stream (and so the same key).

/// Builds a content key field by field.
pub struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    /// A hasher for keys of kind `domain` (keys of different kinds never collide).
    pub fn new(domain: &str) -> Self {
        let mut k = KeyHasher(blake3::Hasher::new());
        k.bytes("domain", domain.as_bytes());
        k
    }

    /// Adds a named byte field.
    pub fn bytes(&mut self, tag: &str, value: &[u8]) -> &mut Self {
        self.0.update(&(tag.len() as u64).to_le_bytes());
        self.0.update(tag.as_bytes());
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    /// Adds a named string field.
    pub fn str(&mut self, tag: &str, value: &str) -> &mut Self {
        self.bytes(tag, value.as_bytes())
    }

    /// Adds a named JSON value in canonical form (sorted keys).
    pub fn json(&mut self, tag: &str, value: &serde_json::Value) -> &mut Self {
        let text = crate::spec::canonical(value).to_string();
        self.bytes(tag, text.as_bytes())
    }

    /// The key as 64 hex characters.
    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_separates_fields() {
        let a = KeyHasher::new("t").str("a", "bc").str("d", "").finish();
        let b = KeyHasher::new("t").str("a", "b").str("cd", "").finish();
        assert_ne!(a, b);
        let c = KeyHasher::new("u").str("a", "bc").str("d", "").finish();
        assert_ne!(a, c);
        assert_eq!(a, KeyHasher::new("t").str("a", "bc").str("d", "").finish());
    }

    #[test]
    fn json_is_canonical() {
        let x: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        let y: serde_json::Value = serde_json::from_str(r#"{"a":{"c":3,"d":2},"b":1}"#).unwrap();
        assert_eq!(KeyHasher::new("t").json("p", &x).finish(), KeyHasher::new("t").json("p", &y).finish());
    }
}
