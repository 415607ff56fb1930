//! A request body as the pieces it is sent in.

use bytes::Bytes;

/// Slices of the caller's bytes around the gateway's edits (or one body the gateway wrote),
/// sent upstream one after another: a large request is held once, as it came, never copied
/// to be forwarded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pieces(pub Vec<Bytes>);

impl Pieces {
    pub fn one(body: Vec<u8>) -> Self {
        Self(vec![Bytes::from(body)])
    }

    /// Bytes in all.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body in one buffer (tests, and callers that must parse it).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for p in &self.0 {
            out.extend_from_slice(p);
        }
        out
    }
}
