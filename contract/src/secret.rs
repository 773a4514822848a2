//! A secret string (LiveKit API secret, caller HS secret) that never shows itself in logs or `Debug`
//! output. Shared by the operator and the sidecar; it depends on nothing, so every module can use it
//! without depending on the configuration that carries it.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Not `Clone`: every copy is one more place the secret outlives its use; share it by reference or
/// `Arc` instead. Its bytes are overwritten when it is dropped, so a later heap reuse, core dump or
/// swapped page does not carry a retired secret.
#[derive(PartialEq, Eq)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The marker `zeroize` documents for types that wipe themselves on drop.
impl ZeroizeOnDrop for Secret {}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipes_itself_on_drop_and_cannot_be_copied() {
        fn wipes_on_drop<T: ZeroizeOnDrop>() {}
        wipes_on_drop::<Secret>();
        // What Drop runs, observed on a live value: every byte overwritten, nothing left.
        let mut secret = Secret::new("hunter2-hunter2");
        secret.0.zeroize();
        assert_eq!(secret.expose(), "");
    }

    #[test]
    fn debug_hides_the_value() {
        let shown = format!("{:?}", Secret::new("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
