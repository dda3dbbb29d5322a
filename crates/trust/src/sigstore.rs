//! Sigstore signatures with a local key pair: ECDSA P-256 with SHA-256 over the payload, the
//! signature ASN.1 DER and base64 in the layer annotation. Private keys are the files
//! cosign (`cosign generate-key-pair`) and skopeo (`generate-sigstore-key`) write: a PEM block
//! `ENCRYPTED SIGSTORE PRIVATE KEY` (formerly `ENCRYPTED COSIGN PRIVATE KEY`) holding JSON:
//! scrypt parameters and salt, a NaCl secretbox nonce, and the sealed PKCS#8 key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
};
use serde::{Deserialize, Serialize};

use crate::Error;

const SIGSTORE_PEM: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
const COSIGN_PEM: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// A public key of a `sigstoreSigned` requirement.
pub(crate) fn public_key(pem: &[u8], what: &str) -> Result<VerifyingKey, Error> {
    let text = std::str::from_utf8(pem).map_err(|_| Error::Key {
        what: what.into(),
        message: "not a PEM public key".into(),
    })?;
    VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| Error::Key {
        what: what.into(),
        message: format!("not an ECDSA P-256 public key in PEM: {e}"),
    })
}

/// Whether `signature` (base64 of ASN.1 DER) is `key`'s signature of `payload`.
pub(crate) fn verify(key: &VerifyingKey, payload: &[u8], signature: &str) -> Result<(), String> {
    let der = B64
        .decode(signature.trim())
        .map_err(|e| format!("the signature is not base64: {e}"))?;
    let sig = DerSignature::try_from(der.as_slice())
        .map_err(|e| format!("the signature is not an ASN.1 ECDSA signature: {e}"))?;
    key.verify(payload, &sig).map_err(|_| {
        "the signature does not match the policy's key (or the payload was altered)".to_string()
    })
}

#[derive(Serialize, Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;

    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::B64.encode(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        super::B64.decode(s).map_err(serde::de::Error::custom)
    }
}

fn secretbox_key(passphrase: &[u8], salt: &[u8], p: &ScryptParams) -> Result<[u8; 32], String> {
    if !p.n.is_power_of_two() || p.n < 2 {
        return Err(format!("scrypt N {} is not a power of two", p.n));
    }
    let log_n = p.n.trailing_zeros() as u8;
    let params =
        scrypt::Params::new(log_n, p.r, p.p).map_err(|e| format!("bad scrypt parameters: {e}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(passphrase, salt, &params, &mut key).map_err(|e| e.to_string())?;
    Ok(key)
}

/// The single PEM block of `text` of one of `types`: its type and bytes.
fn pem_block<'a>(text: &str, types: &[&'a str]) -> Option<(&'a str, Vec<u8>)> {
    for ty in types {
        let begin = format!("-----BEGIN {ty}-----");
        let end = format!("-----END {ty}-----");
        if let Some(start) = text.find(&begin) {
            let body = &text[start + begin.len()..];
            let stop = body.find(&end)?;
            let b64: String = body[..stop].split_whitespace().collect();
            return B64.decode(b64).ok().map(|d| (*ty, d));
        }
    }
    None
}

/// A decrypted sigstore private key.
pub struct SigstorePrivateKey(SigningKey);

impl std::fmt::Debug for SigstorePrivateKey {
    /// Never the key itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigstorePrivateKey(..)")
    }
}

impl SigstorePrivateKey {
    /// Decrypts a cosign/sigstore private key file's contents with `passphrase`.
    pub fn decrypt(pem: &[u8], passphrase: &[u8], what: &str) -> Result<Self, Error> {
        let key_err = |message: String| Error::Key {
            what: what.into(),
            message,
        };
        let text = std::str::from_utf8(pem).map_err(|_| key_err("not a PEM file".into()))?;
        let (_, data) = pem_block(text, &[SIGSTORE_PEM, COSIGN_PEM])
            .ok_or_else(|| key_err(format!("no {SIGSTORE_PEM} or {COSIGN_PEM} PEM block")))?;
        let enc: Encrypted = serde_json::from_slice(&data)
            .map_err(|e| key_err(format!("malformed encrypted key: {e}")))?;
        if enc.kdf.name != "scrypt" || enc.cipher.name != "nacl/secretbox" {
            return Err(key_err(format!(
                "unsupported encryption {} / {}",
                enc.kdf.name, enc.cipher.name
            )));
        }
        let key = secretbox_key(passphrase, &enc.kdf.salt, &enc.kdf.params).map_err(key_err)?;
        use crypto_secretbox::aead::{Aead as _, KeyInit as _};
        let nonce: [u8; 24] = enc
            .cipher
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| key_err("the nonce is not 24 bytes".into()))?;
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
        let der = cipher
            .decrypt(&nonce.into(), enc.ciphertext.as_slice())
            .map_err(|_| key_err("wrong passphrase (the key does not decrypt)".into()))?;
        let sk = SigningKey::from_pkcs8_der(&der)
            .map_err(|e| key_err(format!("not an ECDSA P-256 private key: {e}")))?;
        Ok(SigstorePrivateKey(sk))
    }

    /// The base64 ASN.1 DER signature of `payload`.
    pub(crate) fn sign(&self, payload: &[u8]) -> String {
        let sig: p256::ecdsa::Signature = self.0.sign(payload);
        B64.encode(sig.to_der().as_bytes())
    }
}

/// A new key pair: the encrypted private key (PEM, as cosign and skopeo write it, sealed with
/// `passphrase`) and the public key (PEM).
pub fn generate_key_pair(passphrase: &[u8]) -> Result<(String, String), Error> {
    let rand_err = |e: getrandom::Error| Error::Key {
        what: "new key".into(),
        message: format!("no randomness: {e}"),
    };
    let sk = loop {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(rand_err)?;
        if let Ok(k) = SigningKey::from_slice(&seed) {
            break k;
        }
    };
    let internal = |e: String| Error::Key {
        what: "new key".into(),
        message: e,
    };
    let der = sk.to_pkcs8_der().map_err(|e| internal(e.to_string()))?;
    let public = sk
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|e| internal(e.to_string()))?;
    let mut salt = vec![0u8; 32];
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut salt).map_err(rand_err)?;
    getrandom::fill(&mut nonce).map_err(rand_err)?;
    // cosign's parameters: N = 2^15, r = 8, p = 1.
    let params = ScryptParams {
        n: 1 << 15,
        r: 8,
        p: 1,
    };
    let key = secretbox_key(passphrase, &salt, &params).map_err(internal)?;
    use crypto_secretbox::aead::{Aead as _, KeyInit as _};
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    let ciphertext = cipher
        .encrypt(&nonce.into(), der.as_bytes())
        .map_err(|e| internal(e.to_string()))?;
    let enc = Encrypted {
        kdf: Kdf {
            name: "scrypt".into(),
            params,
            salt,
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    };
    let json = serde_json::to_vec(&enc).map_err(|e| internal(e.to_string()))?;
    let b64 = B64.encode(json);
    let mut private = format!("-----BEGIN {SIGSTORE_PEM}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        private.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        private.push('\n');
    }
    private.push_str(&format!("-----END {SIGSTORE_PEM}-----\n"));
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_decrypt_sign_verify() {
        let (private, public) = generate_key_pair(b"pw").unwrap();
        assert!(
            SigstorePrivateKey::decrypt(private.as_bytes(), b"nope", "k")
                .unwrap_err()
                .to_string()
                .contains("wrong passphrase")
        );
        let sk = SigstorePrivateKey::decrypt(private.as_bytes(), b"pw", "k").unwrap();
        let vk = public_key(public.as_bytes(), "k.pub").unwrap();
        let sig = sk.sign(b"payload");
        verify(&vk, b"payload", &sig).unwrap();
        assert!(verify(&vk, b"payloaD", &sig).is_err());
        let (_, other) = generate_key_pair(b"").unwrap();
        let other = public_key(other.as_bytes(), "o.pub").unwrap();
        assert!(verify(&other, b"payload", &sig).is_err());
    }
}
