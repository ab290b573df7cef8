//! Content digests in the OCI / go-digest form `<algorithm>:<hex>`, as Flux's `artifact.digest`
//! and RFC-0005 revisions use them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// A hash algorithm that may appear in a [`Digest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-1, 40 hex characters (Git commit ids).
    Sha1,
    /// SHA-256, 64 hex characters (Flux's default artifact digest).
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl Algorithm {
    /// The lowercase name used in digest strings (`sha1`, `sha256`, `sha512`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding of a checksum of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 40,
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha1" => Ok(Algorithm::Sha1),
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(DigestError::UnknownAlgorithm(other.to_string())),
        }
    }
}

/// Why a digest string did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// The string has no `:` between algorithm and checksum.
    #[error("digest {0:?} is not of the form <algorithm>:<hex>")]
    Malformed(String),
    /// The algorithm is not one of `sha1`, `sha256`, `sha512`.
    #[error("unknown digest algorithm {0:?} (expected sha1, sha256 or sha512)")]
    UnknownAlgorithm(String),
    /// The checksum is not lowercase hex of the algorithm's length.
    #[error("digest checksum {hex:?} is not {expected} lowercase hex characters for {algorithm}")]
    BadChecksum {
        /// The algorithm named in the digest.
        algorithm: &'static str,
        /// The checksum as given.
        hex: String,
        /// Expected number of hex characters.
        expected: usize,
    },
}

/// A content digest such as `sha256:8f2b…` (algorithm and lowercase hex checksum).
///
/// Parsing checks the algorithm and the checksum length; printing gives the same string back.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Builds a digest from an algorithm and a hex checksum, validating the checksum.
    pub fn new(algorithm: Algorithm, hex: impl Into<String>) -> Result<Self, DigestError> {
        let hex = hex.into();
        let valid = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(DigestError::BadChecksum {
                algorithm: algorithm.as_str(),
                hex,
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest { algorithm, hex })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex checksum part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The checksum shortened to `n` characters (Flux displays at least 7), with the algorithm kept.
    pub fn short(&self, n: usize) -> String {
        let n = n.max(7).min(self.hex.len());
        format!("{}:{}", self.algorithm.as_str(), &self.hex[..n])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_string()))?;
        Digest::new(algo.parse()?, hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A writer adapter that computes the SHA-256 digest and the byte count of what passes through.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    written: u64,
}

impl<W> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: sha2::Sha256::new(),
            written: 0,
        }
    }

    /// Returns the inner writer, the digest and the number of bytes written.
    pub fn finish(self) -> (W, Digest, u64) {
        let digest = Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(self.hasher.finalize()),
        };
        (self.inner, digest, self.written)
    }
}

impl<W: std::io::Write> std::io::Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Computes the SHA-256 digest and size of everything `reader` yields.
pub fn sha256_reader(mut reader: impl std::io::Read) -> std::io::Result<(Digest, u64)> {
    let mut w = DigestWriter::new(std::io::sink());
    std::io::copy(&mut reader, &mut w)?;
    let (_, d, n) = w.finish();
    Ok((d, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_sha256() {
        let s = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), s);
        assert_eq!(Digest::sha256_of(b"hello"), d);
        assert_eq!(d.short(7), "sha256:2cf24db");
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(matches!(
            "sha256".parse::<Digest>(),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            "md5:abcd".parse::<Digest>(),
            Err(DigestError::UnknownAlgorithm(_))
        ));
        assert!(matches!(
            "sha1:ABC".parse::<Digest>(),
            Err(DigestError::BadChecksum { .. })
        ));
    }
}
