//! OpenPGP signature verification of Git commits and annotated tags: Flux's GitRepository
//! `spec.verify` (`mode: HEAD | Tag | TagAndHEAD`, `secretRef` to a Secret whose values are
//! ASCII-armored OpenPGP public keys), on top of rpgp (the `pgp` crate, pure Rust).
//!
//! As source-controller does:
//!
//! - `HEAD` verifies the commit the reference resolved to; `Tag` the annotated tag object the
//!   reference named (`ref.tag`, `ref.semver`, or `ref.name` under `refs/tags/`), `TagAndHEAD`
//!   both. `Tag` modes with a reference that names no tag are refused, and so is a lightweight
//!   tag (it has no signature of its own).
//! - Any key of any Secret value may have made the signature; an unsigned object, a signature by
//!   another key, or a signature that does not match the object are failures, and no artifact is
//!   written.
//! - The result names the key that verified: [`VerifiedSignature::fingerprint`] (the primary
//!   key's fingerprint) and [`VerifiedSignature::key_id`] (its 16-hex-digit key ID, which Flux
//!   shows in the `SourceVerified` condition).
//!
//! The signed payload is what git hands to `gpg --verify`: a commit without its `gpgsig` header,
//! an annotated tag without its trailing signature block (both split by gix). Signatures may be
//! made by the primary key or by a signing subkey bound to it. Only OpenPGP signatures are
//! verified: SSH and X.509 (gpgsm) signatures are refused with [`VerifyError::UnsupportedSignature`].
//! What the key block says about validity is checked: a revoked primary key or subkey does not
//! verify, nor does a signature made after the key (or subkey) expired (by the newest
//! self-signature's expiry) or a signature whose own expiry time has passed. Trust levels do not
//! exist here: every key in the Secret is trusted.

use std::fmt;
use std::sync::Arc;

use gix::bstr::ByteSlice;
use gix::objs::signature::Format;
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::{Signature, SignatureType};
use pgp::types::KeyDetails;
use serde::{Deserialize, Serialize};

/// Flux's `spec.verify.mode`: which Git object(s) must carry a valid signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VerificationMode {
    /// `HEAD` (also spelled `head`): the commit the reference resolved to. Flux's default.
    #[default]
    Head,
    /// `Tag`: the annotated tag object the reference names.
    Tag,
    /// `TagAndHEAD`: the tag object and the commit.
    TagAndHead,
}

impl VerificationMode {
    /// Parses Flux's spelling: `HEAD` or `head`, `Tag`, `TagAndHEAD`; empty means `HEAD` (the CRD's
    /// default). Anything else is an error naming the value.
    pub fn parse(text: &str) -> Result<VerificationMode, VerifyError> {
        match text.trim() {
            "" | "HEAD" | "head" => Ok(VerificationMode::Head),
            "Tag" => Ok(VerificationMode::Tag),
            "TagAndHEAD" => Ok(VerificationMode::TagAndHead),
            other => Err(VerifyError::InvalidMode {
                mode: other.to_string(),
            }),
        }
    }

    /// Flux's canonical spelling (`HEAD`, `Tag`, `TagAndHEAD`).
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationMode::Head => "HEAD",
            VerificationMode::Tag => "Tag",
            VerificationMode::TagAndHead => "TagAndHEAD",
        }
    }

    /// Whether the commit is verified (`HEAD`, `TagAndHEAD`).
    pub fn verifies_head(self) -> bool {
        matches!(self, VerificationMode::Head | VerificationMode::TagAndHead)
    }

    /// Whether the tag object is verified (`Tag`, `TagAndHEAD`).
    pub fn verifies_tag(self) -> bool {
        matches!(self, VerificationMode::Tag | VerificationMode::TagAndHead)
    }
}

impl fmt::Display for VerificationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for VerificationMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for VerificationMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        VerificationMode::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What to verify and with which keys: Flux's `spec.verify` with the data of its Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitVerification {
    /// Which object(s) to verify.
    pub mode: VerificationMode,
    /// `(Secret data key, ASCII-armored OpenPGP public key block)` pairs; a value may hold several
    /// keys or armored blocks. Any of the keys may have signed.
    pub public_keys: Vec<(String, String)>,
}

/// The Git object a signature belongs to, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedObject {
    /// A commit, by its hex id.
    Commit(String),
    /// An annotated tag, by its name.
    Tag(String),
}

impl fmt::Display for SignedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignedObject::Commit(id) => write!(f, "commit '{id}'"),
            SignedObject::Tag(name) => write!(f, "tag '{name}'"),
        }
    }
}

/// The key that verified a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The object that was verified.
    pub object: SignedObject,
    /// Fingerprint of the primary key (uppercase hex, 40 digits for v4 keys).
    pub fingerprint: String,
    /// Key ID of the primary key (the last 16 uppercase hex digits of a v4 fingerprint), as Flux
    /// reports it.
    pub key_id: String,
    /// Fingerprint of the key that made the signature: the primary key's, or a signing subkey's.
    pub signing_key_fingerprint: String,
    /// The Secret data key the verifying public key came from.
    pub secret_key: String,
}

/// Errors of signature verification. Every one is terminal for the fetch (no artifact is
/// written): the keys, the spec, or the upstream object has to change. Messages name the Secret
/// data key or the Git object; key material never appears in them.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// `spec.verify.mode` is not one of `HEAD`, `head`, `Tag`, `TagAndHEAD`.
    #[error("verify.mode {mode:?} is not one of HEAD, Tag or TagAndHEAD")]
    InvalidMode {
        /// The value.
        mode: String,
    },
    /// A Secret value is not an ASCII-armored OpenPGP public key block.
    #[error("public key {key:?} of the verification secret cannot be used: {reason}")]
    InvalidPublicKey {
        /// The Secret data key.
        key: String,
        /// What is wrong (never the key material).
        reason: String,
    },
    /// The Secret has no public keys at all.
    #[error("the verification secret holds no OpenPGP public keys")]
    NoPublicKeys,
    /// A `Tag` mode, but the reference selects a branch or commit, not a tag.
    #[error(
        "verify.mode {mode} verifies a tag object, but the reference ({reference}) names no tag; use ref.tag, ref.semver or a refs/tags/ ref.name"
    )]
    NoTagReference {
        /// The mode.
        mode: VerificationMode,
        /// The reference, e.g. `branch "main"`.
        reference: String,
    },
    /// The tag is lightweight (a ref straight to a commit): there is no tag object to verify.
    #[error("tag '{tag}' is a lightweight tag and has no signature to verify")]
    LightweightTag {
        /// The tag name.
        tag: String,
    },
    /// The object carries no signature.
    #[error("{object} is not signed")]
    NotSigned {
        /// The object.
        object: SignedObject,
    },
    /// The object is signed, but not with OpenPGP.
    #[error("{object} has an {format} signature; only OpenPGP signatures can be verified")]
    UnsupportedSignature {
        /// The object.
        object: SignedObject,
        /// `SSH` or `X.509`.
        format: &'static str,
    },
    /// The signature block or the object cannot be parsed.
    #[error("{object}: malformed signature: {reason}")]
    MalformedSignature {
        /// The object.
        object: SignedObject,
        /// What failed.
        reason: String,
    },
    /// No given key made the signature.
    #[error(
        "{object} is signed by key {issuers}, which is not among the {count} public key(s) of the verification secret"
    )]
    NoMatchingKey {
        /// The object.
        object: SignedObject,
        /// The issuer fingerprints or key IDs the signature names, comma-separated (`unknown`
        /// when it names none).
        issuers: String,
        /// How many keys were tried.
        count: usize,
    },
    /// A given key is the issuer, but the signature does not verify (the object was changed
    /// after signing, or the key is revoked or not valid for signing).
    #[error("{object}: signature by key {fingerprint} does not verify: {reason}")]
    BadSignature {
        /// The object.
        object: SignedObject,
        /// The issuing key's fingerprint.
        fingerprint: String,
        /// What failed.
        reason: String,
    },
    /// Reading the object from the fetched repository failed.
    #[error("{object}: reading the object: {reason}")]
    Object {
        /// The object.
        object: SignedObject,
        /// What failed.
        reason: String,
    },
}

impl VerifyError {
    /// Flux's reason for `SourceVerified=False` with this error: `InvalidCommitSignature`,
    /// `InvalidTagSignature`, `InvalidGitObject` (unsigned or lightweight tag),
    /// `InvalidVerificationMode`, or `VerificationError` (the keys).
    pub fn reason(&self) -> &'static str {
        let of = |object: &SignedObject| match object {
            SignedObject::Commit(_) => "InvalidCommitSignature",
            SignedObject::Tag(_) => "InvalidTagSignature",
        };
        match self {
            VerifyError::InvalidMode { .. } | VerifyError::NoTagReference { .. } => {
                "InvalidVerificationMode"
            }
            VerifyError::InvalidPublicKey { .. } | VerifyError::NoPublicKeys => "VerificationError",
            VerifyError::LightweightTag { .. } => "InvalidGitObject",
            VerifyError::NotSigned { object } => match object {
                SignedObject::Commit(_) => "InvalidCommitSignature",
                SignedObject::Tag(_) => "InvalidGitObject",
            },
            VerifyError::UnsupportedSignature { object, .. }
            | VerifyError::MalformedSignature { object, .. }
            | VerifyError::NoMatchingKey { object, .. }
            | VerifyError::BadSignature { object, .. }
            | VerifyError::Object { object, .. } => of(object),
        }
    }
}

/// The reasons [`VerifyError::reason`] gives, for callers that match them in messages.
pub const REASONS: [&str; 5] = [
    "InvalidCommitSignature",
    "InvalidTagSignature",
    "InvalidGitObject",
    "InvalidVerificationMode",
    "VerificationError",
];

/// Parsed public keys, each with the Secret data key it came from. Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<Vec<(String, SignedPublicKey)>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.keys.iter().map(|(name, key)| {
                    format!("{name}: {}", hex_upper(key.fingerprint().as_bytes()))
                }),
            )
            .finish()
    }
}

const PUBLIC_KEY_BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";

impl Keyring {
    /// Parses `(Secret data key, armored key block)` pairs. Every value must hold at least one
    /// ASCII-armored public key (several keys in one block, or several blocks one after the other,
    /// are fine); the first value that does not is an error naming its data key. An empty list is
    /// [`VerifyError::NoPublicKeys`].
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Keyring, VerifyError> {
        let mut keys = Vec::new();
        for (name, armored) in entries {
            let invalid = |reason: String| VerifyError::InvalidPublicKey {
                key: name.to_string(),
                reason,
            };
            let blocks = armored_blocks(armored);
            if blocks.is_empty() {
                return Err(invalid(format!(
                    "no ASCII-armored public key block ({PUBLIC_KEY_BEGIN})"
                )));
            }
            for block in blocks {
                let (parsed, _headers) = SignedPublicKey::from_armor_many(block.as_bytes())
                    .map_err(|e| invalid(e.to_string()))?;
                let before = keys.len();
                for key in parsed {
                    keys.push((name.to_string(), key.map_err(|e| invalid(e.to_string()))?));
                }
                if keys.len() == before {
                    return Err(invalid("the armored block holds no public key".into()));
                }
            }
        }
        if keys.is_empty() {
            return Err(VerifyError::NoPublicKeys);
        }
        Ok(Keyring {
            keys: Arc::new(keys),
        })
    }

    /// How many public keys (primary keys) there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none (never true for a parsed keyring).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The primary keys' fingerprints (uppercase hex), in Secret order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|(_, k)| hex_upper(k.fingerprint().as_bytes()))
            .collect()
    }

    /// Verifies a raw commit object (as `git cat-file commit` prints it): its `gpgsig` header
    /// against the rest of the object. `id` names the commit in errors.
    pub fn verify_commit(&self, id: &str, raw: &[u8]) -> Result<VerifiedSignature, VerifyError> {
        let object = SignedObject::Commit(id.to_string());
        let found =
            gix::objs::CommitRefIter::signature(raw, gix::hash::Kind::Sha1).map_err(|e| {
                VerifyError::MalformedSignature {
                    object: object.clone(),
                    reason: e.to_string(),
                }
            })?;
        let Some((signature, signed)) = found else {
            return Err(VerifyError::NotSigned { object });
        };
        let payload = signed.to_bstring();
        self.verify_detached(object, signature.as_bytes(), &payload)
    }

    /// Verifies a raw annotated tag object (as `git cat-file tag` prints it): its trailing
    /// signature block against the object before it. `name` names the tag in errors.
    pub fn verify_tag(&self, name: &str, raw: &[u8]) -> Result<VerifiedSignature, VerifyError> {
        let object = SignedObject::Tag(name.to_string());
        let Some((signature, signed)) = gix::objs::TagRefIter::signature(raw) else {
            return Err(VerifyError::NotSigned { object });
        };
        let payload = signed.to_bstring();
        self.verify_detached(object, signature.data.as_bytes(), &payload)
    }

    /// Verifies an ASCII-armored detached signature over `payload`; any signature packet in it
    /// made by any key of the keyring (primary key or signing subkey) is enough.
    pub fn verify_detached(
        &self,
        object: SignedObject,
        armored_signature: &[u8],
        payload: &[u8],
    ) -> Result<VerifiedSignature, VerifyError> {
        let armored = armored_signature.trim();
        match Format::from_signature(armored) {
            Some(Format::OpenPgp) => {}
            Some(Format::Ssh) => {
                return Err(VerifyError::UnsupportedSignature {
                    object,
                    format: "SSH",
                });
            }
            Some(Format::X509) => {
                return Err(VerifyError::UnsupportedSignature {
                    object,
                    format: "X.509",
                });
            }
            None => {
                return Err(VerifyError::MalformedSignature {
                    object,
                    reason: "no armored signature block".into(),
                });
            }
        }
        let malformed = |reason: String| VerifyError::MalformedSignature {
            object: object.clone(),
            reason,
        };
        let (parsed, _headers) =
            DetachedSignature::from_armor_many(armored).map_err(|e| malformed(e.to_string()))?;
        let signatures = parsed
            .map(|s| s.map(|d| d.signature))
            .collect::<Result<Vec<Signature>, _>>()
            .map_err(|e| malformed(e.to_string()))?;
        if signatures.is_empty() {
            return Err(malformed("no signature packet".into()));
        }

        let mut issuers: Vec<String> = Vec::new();
        let mut failure: Option<VerifyError> = None;
        for sig in &signatures {
            if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
                failure.get_or_insert_with(|| {
                    malformed(format!("not a document signature ({:?})", sig.typ()))
                });
                continue;
            }
            issuers.extend(issuer_names(sig));
            for (secret_key, key) in self.keys.iter() {
                let verified = |signer: &dyn KeyDetails| VerifiedSignature {
                    object: object.clone(),
                    fingerprint: hex_upper(key.fingerprint().as_bytes()),
                    key_id: hex_upper(key.legacy_key_id().as_ref()),
                    signing_key_fingerprint: hex_upper(signer.fingerprint().as_bytes()),
                    secret_key: secret_key.clone(),
                };
                let bad = |signer: &dyn KeyDetails, reason: String| VerifyError::BadSignature {
                    object: object.clone(),
                    fingerprint: hex_upper(signer.fingerprint().as_bytes()),
                    reason,
                };
                if issued_by(sig, &key.primary_key) {
                    let result = if !key.details.revocation_signatures.is_empty() {
                        Err("the key is revoked".to_string())
                    } else {
                        valid_when_made(sig, primary_expiry(key)).and_then(|()| {
                            sig.verify(&key.primary_key, payload)
                                .map_err(|e| e.to_string())
                        })
                    };
                    match result {
                        Ok(()) => return Ok(verified(&key.primary_key)),
                        Err(reason) => {
                            failure.get_or_insert_with(|| bad(&key.primary_key, reason));
                        }
                    }
                }
                for sub in &key.public_subkeys {
                    if !issued_by(sig, &sub.key) {
                        continue;
                    }
                    let result = signing_subkey(key, sub)
                        .and_then(|expires| valid_when_made(sig, expires))
                        .and_then(|()| sig.verify(&sub.key, payload).map_err(|e| e.to_string()));
                    match result {
                        Ok(()) => return Ok(verified(&sub.key)),
                        Err(reason) => {
                            failure.get_or_insert_with(|| bad(&sub.key, reason));
                        }
                    }
                }
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        issuers.dedup();
        Err(VerifyError::NoMatchingKey {
            object,
            issuers: if issuers.is_empty() {
                "unknown".into()
            } else {
                issuers.join(", ")
            },
            count: self.keys.len(),
        })
    }
}

/// Splits a Secret value into its armored public key blocks.
fn armored_blocks(text: &str) -> Vec<&str> {
    let starts: Vec<usize> = text
        .match_indices(PUBLIC_KEY_BEGIN)
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || text[..i].ends_with('\n'))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| {
            let end = starts.get(n + 1).copied().unwrap_or(text.len());
            &text[start..end]
        })
        .collect()
}

/// Whether `sig` names `key` as its issuer (by fingerprint or key ID). A signature that names no
/// issuer at all is tried against every key.
fn issued_by(sig: &Signature, key: &impl KeyDetails) -> bool {
    let fingerprints = sig.issuer_fingerprint();
    let key_ids = sig.issuer_key_id();
    if fingerprints.is_empty() && key_ids.is_empty() {
        return true;
    }
    fingerprints.iter().any(|f| **f == key.fingerprint())
        || key_ids.iter().any(|k| **k == key.legacy_key_id())
}

/// A subkey may sign for its primary key when it is bound to it, flagged for signing, and neither
/// it nor the primary key is revoked. Returns when it expires (the earlier of its own and the
/// primary key's expiry, Unix seconds).
fn signing_subkey(
    primary: &SignedPublicKey,
    sub: &pgp::composed::SignedPublicSubKey,
) -> Result<Option<u64>, String> {
    if !primary.details.revocation_signatures.is_empty() {
        return Err("the primary key is revoked".into());
    }
    if sub
        .signatures
        .iter()
        .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation))
    {
        return Err("the subkey is revoked".into());
    }
    if !sub
        .signatures
        .iter()
        .any(|s| s.typ() == Some(SignatureType::SubkeyBinding) && s.key_flags().sign())
    {
        return Err("the subkey is not bound for signing".into());
    }
    sub.verify_bindings(&primary.primary_key)
        .map_err(|e| format!("the subkey's binding to its primary key does not verify: {e}"))?;
    let bindings = sub
        .signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding));
    match (
        primary_expiry(primary),
        expiry(sub.key.created_at(), bindings),
    ) {
        (Some(a), Some(b)) => Ok(Some(a.min(b))),
        (a, b) => Ok(a.or(b)),
    }
}

/// When the primary key expires (Unix seconds), by its newest self-signature; `None` if never.
fn primary_expiry(key: &SignedPublicKey) -> Option<u64> {
    let self_sigs = key
        .details
        .direct_signatures
        .iter()
        .chain(key.details.users.iter().flat_map(|u| u.signatures.iter()))
        .filter(|s| issued_by(s, &key.primary_key));
    expiry(key.primary_key.created_at(), self_sigs)
}

/// When a key created at `created` expires by the newest of `self_sigs` (Unix seconds).
fn expiry<'a>(
    created: pgp::types::Timestamp,
    self_sigs: impl Iterator<Item = &'a Signature>,
) -> Option<u64> {
    let newest = self_sigs
        .filter_map(|s| s.created().map(|c| (c.as_secs(), s)))
        .max_by_key(|(c, _)| *c)?
        .1;
    let seconds = newest.key_expiration_time()?.as_secs();
    (seconds > 0).then(|| u64::from(created.as_secs()) + u64::from(seconds))
}

/// The signature was made while its key was valid, and has not expired itself.
fn valid_when_made(sig: &Signature, key_expiry: Option<u64>) -> Result<(), String> {
    let Some(made) = sig.created().map(|t| u64::from(t.as_secs())) else {
        return Ok(());
    };
    if let Some(expiry) = key_expiry
        && made > expiry
    {
        return Err(format!(
            "the key expired (at Unix time {expiry}) before the signature was made ({made})"
        ));
    }
    if let Some(lifetime) = sig.signature_expiration_time().map(|d| d.as_secs())
        && lifetime > 0
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if made + u64::from(lifetime) < now {
            return Err("the signature has expired".into());
        }
    }
    Ok(())
}

/// The issuer fingerprints of a signature, else its issuer key IDs, as uppercase hex.
fn issuer_names(sig: &Signature) -> Vec<String> {
    let fingerprints: Vec<String> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| hex_upper(f.as_bytes()))
        .collect();
    if !fingerprints.is_empty() {
        return fingerprints;
    }
    sig.issuer_key_id()
        .iter()
        .map(|k| hex_upper(k.as_ref()))
        .collect()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = include_str!("../testdata/git_verify/alice.asc");
    const BOB: &str = include_str!("../testdata/git_verify/bob.asc");
    const CAROL: &str = include_str!("../testdata/git_verify/carol.asc");
    const COMMIT_ALICE: &[u8] = include_bytes!("../testdata/git_verify/commit_signed_alice.txt");
    const COMMIT_CAROL: &[u8] =
        include_bytes!("../testdata/git_verify/commit_signed_carol_subkey.txt");
    const TAG_ALICE: &[u8] = include_bytes!("../testdata/git_verify/tag_signed_alice.txt");
    const ALICE_FPR: &str = "751BFDEF372A4030001FCFEF150DF114232FD4EE";
    const BOB_FPR: &str = "F1AE0327C677843FBE055426A240106AEF5D81CC";
    const CAROL_FPR: &str = "51872D3A75A8EBC60B4393C9E1BCF280DB739475";
    const CAROL_SUB_FPR: &str = "4AF8487DE9A3A6AD816A5C83EE0E0864DFC117D7";
    const COMMIT_ID: &str = "c9a3701755081960c4a1172c7b66c4ed209fe911";

    fn keyring(entries: &[(&str, &str)]) -> Keyring {
        Keyring::parse(entries.iter().copied()).unwrap()
    }

    #[test]
    fn modes_parse_flux_spellings() {
        for (text, mode) in [
            ("HEAD", VerificationMode::Head),
            ("head", VerificationMode::Head),
            ("", VerificationMode::Head),
            ("Tag", VerificationMode::Tag),
            ("TagAndHEAD", VerificationMode::TagAndHead),
        ] {
            assert_eq!(VerificationMode::parse(text).unwrap(), mode, "{text}");
        }
        let err = VerificationMode::parse("tag").unwrap_err();
        assert!(err.to_string().contains("\"tag\""), "{err}");
        assert!(VerificationMode::TagAndHead.verifies_head());
        assert!(VerificationMode::TagAndHead.verifies_tag());
        assert!(!VerificationMode::Head.verifies_tag());
        assert!(!VerificationMode::Tag.verifies_head());
        let json = serde_json::to_string(&VerificationMode::TagAndHead).unwrap();
        assert_eq!(json, "\"TagAndHEAD\"");
        let back: VerificationMode = serde_json::from_str("\"head\"").unwrap();
        assert_eq!(back, VerificationMode::Head);
    }

    #[test]
    fn keyring_parses_blocks_and_names_the_bad_key() {
        let ring = keyring(&[("alice.asc", ALICE), ("bob.asc", BOB)]);
        assert_eq!(ring.fingerprints(), [ALICE_FPR, BOB_FPR]);
        // Two blocks in one value.
        let both = format!("{ALICE}\n{BOB}");
        assert_eq!(keyring(&[("team.asc", &both)]).len(), 2);

        let err = Keyring::parse([("alice.asc", ALICE), ("broken.asc", "not a key")]).unwrap_err();
        assert!(
            matches!(&err, VerifyError::InvalidPublicKey { key, .. } if key == "broken.asc"),
            "{err}"
        );
        // A block whose body is damaged.
        let damaged = ALICE.replace("mDME", "mDMX");
        let err = Keyring::parse([("damaged.asc", damaged.as_str())]).unwrap_err();
        assert!(err.to_string().contains("\"damaged.asc\""), "{err}");
        assert_eq!(err.reason(), "VerificationError");
        assert!(matches!(
            Keyring::parse(std::iter::empty()).unwrap_err(),
            VerifyError::NoPublicKeys
        ));
    }

    #[test]
    fn signed_commit_verifies_with_its_key_among_others() {
        let ring = keyring(&[("bob.asc", BOB), ("alice.asc", ALICE)]);
        let v = ring.verify_commit(COMMIT_ID, COMMIT_ALICE).unwrap();
        assert_eq!(v.fingerprint, ALICE_FPR);
        assert_eq!(v.signing_key_fingerprint, ALICE_FPR);
        assert_eq!(v.key_id, &ALICE_FPR[24..]);
        assert_eq!(v.secret_key, "alice.asc");
        assert_eq!(v.object, SignedObject::Commit(COMMIT_ID.into()));
    }

    #[test]
    fn commit_signed_by_another_key_is_refused() {
        let ring = keyring(&[("bob.asc", BOB)]);
        let err = ring.verify_commit(COMMIT_ID, COMMIT_ALICE).unwrap_err();
        let VerifyError::NoMatchingKey { issuers, count, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(issuers, ALICE_FPR);
        assert_eq!(*count, 1);
        assert!(err.to_string().contains(COMMIT_ID), "{err}");
        assert_eq!(err.reason(), "InvalidCommitSignature");
    }

    #[test]
    fn tampered_commit_does_not_verify() {
        let ring = keyring(&[("alice.asc", ALICE)]);
        let text = String::from_utf8(COMMIT_ALICE.to_vec()).unwrap();
        let tampered = text.replace("signed commit", "signed commit!");
        let err = ring
            .verify_commit(COMMIT_ID, tampered.as_bytes())
            .unwrap_err();
        assert!(
            matches!(&err, VerifyError::BadSignature { fingerprint, .. } if fingerprint == ALICE_FPR),
            "{err}"
        );
    }

    #[test]
    fn unsigned_commit_is_refused() {
        let ring = keyring(&[("alice.asc", ALICE)]);
        let unsigned = b"tree aaff74984cccd156a469afa7d9ab10e4777beb24\n\
            author Test <t@example.invalid> 1704067200 +0000\n\
            committer Test <t@example.invalid> 1704067200 +0000\n\nunsigned\n";
        let err = ring.verify_commit("abc", unsigned).unwrap_err();
        assert!(matches!(err, VerifyError::NotSigned { .. }), "{err}");
        assert_eq!(err.to_string(), "commit 'abc' is not signed");
    }

    #[test]
    fn signing_subkey_verifies_for_its_primary_key() {
        let ring = keyring(&[("carol.asc", CAROL)]);
        let v = ring.verify_commit("child", COMMIT_CAROL).unwrap();
        assert_eq!(v.fingerprint, CAROL_FPR);
        assert_eq!(v.signing_key_fingerprint, CAROL_SUB_FPR);
    }

    #[test]
    fn signed_tag_verifies_and_tampering_shows() {
        let ring = keyring(&[("alice.asc", ALICE)]);
        let v = ring.verify_tag("v1", TAG_ALICE).unwrap();
        assert_eq!(v.fingerprint, ALICE_FPR);
        assert_eq!(v.object, SignedObject::Tag("v1".into()));
        let text = String::from_utf8(TAG_ALICE.to_vec()).unwrap();
        let tampered = text.replace("tag v1\n", "tag v2\n");
        let err = ring.verify_tag("v2", tampered.as_bytes()).unwrap_err();
        assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
        assert_eq!(err.reason(), "InvalidTagSignature");

        let unsigned = b"object c9a3701755081960c4a1172c7b66c4ed209fe911\ntype commit\n\
            tag v0\ntagger Test <t@example.invalid> 1704067200 +0000\n\nplain\n";
        let err = ring.verify_tag("v0", unsigned).unwrap_err();
        assert!(matches!(err, VerifyError::NotSigned { .. }), "{err}");
        assert_eq!(err.reason(), "InvalidGitObject");
    }

    #[test]
    fn signatures_made_after_the_key_expired_are_refused() {
        // Dave's key was made at 2024-01-01T00:00Z and set to expire 25 hours later.
        let dave = include_str!("../testdata/git_verify/dave_expires.asc");
        let ring = keyring(&[("dave.asc", dave)]);
        let object = || SignedObject::Commit("abc".into());
        let in_time = include_bytes!("../testdata/git_verify/payload_signed_dave_in_time.asc");
        let v = ring
            .verify_detached(object(), in_time, b"payload\n")
            .unwrap();
        assert_eq!(v.fingerprint, "0028C7B3BE17E3CCF22AA9320FFC2EDC70DF5D63");
        let late = include_bytes!("../testdata/git_verify/payload_signed_dave_after_expiry.asc");
        let err = ring
            .verify_detached(object(), late, b"payload\n")
            .unwrap_err();
        assert!(
            matches!(&err, VerifyError::BadSignature { reason, .. } if reason.contains("expired")),
            "{err}"
        );
    }

    #[test]
    fn ssh_signatures_are_unsupported() {
        let ring = keyring(&[("alice.asc", ALICE)]);
        let err = ring
            .verify_detached(
                SignedObject::Commit("abc".into()),
                b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n",
                b"payload",
            )
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::UnsupportedSignature { format: "SSH", .. }),
            "{err}"
        );
        let err = ring
            .verify_detached(
                SignedObject::Commit("abc".into()),
                b"-----BEGIN PGP SIGNATURE-----\n\n!!!\n-----END PGP SIGNATURE-----\n",
                b"payload",
            )
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::MalformedSignature { .. }),
            "{err}"
        );
    }

    #[test]
    fn debug_shows_fingerprints_only() {
        let ring = keyring(&[("alice.asc", ALICE)]);
        let shown = format!("{ring:?}");
        assert!(shown.contains(ALICE_FPR), "{shown}");
        assert!(!shown.contains("mDME"), "{shown}");
    }
}
