//! sha256 as the image formats use it: over blobs as they stream past, and
//! the chain IDs that name unpacked layers.

use sha2::{Digest, Sha256};
use std::io::{self, Read};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The chain ID of each layer: the first is its diff ID, each next one is
/// sha256 of "PARENT_CHAIN_ID DIFF_ID" (OCI image spec, config.md).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => format!(
                "sha256:{}",
                sha256_hex(format!("{parent} {diff_id}").as_bytes())
            ),
        };
        chain.push(next);
    }
    chain
}

/// Hashes and counts what is read through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left (a tar stream ends before its padding does), then
    /// returns `sha256:HEX` and the byte count of the whole stream.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex(&self.hasher.finalize())),
            self.bytes,
        ))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        self.hasher.update(read);
        self.bytes = self.bytes.saturating_add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_chain_ids() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let diff = vec!["sha256:a".to_string(), "sha256:b".to_string()];
        let chain = chain_ids(&diff);
        assert_eq!(chain[0], "sha256:a");
        assert_eq!(
            chain[1],
            format!("sha256:{}", sha256_hex(b"sha256:a sha256:b"))
        );
        let mut reader = Hashing::new(&b"abc"[..]);
        let mut first = [0u8; 1];
        reader.read_exact(&mut first).unwrap();
        let (digest, bytes) = reader.finish().unwrap();
        assert_eq!(bytes, 3);
        assert_eq!(digest, format!("sha256:{}", sha256_hex(b"abc")));
    }
}
