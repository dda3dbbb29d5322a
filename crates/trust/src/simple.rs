//! The simple-signing payload (containers-signature(5)) both signature formats sign: which
//! manifest digest, under which reference. Parsed strictly, as containers/image does, so that
//! a payload with fields a verifier does not understand is never half-understood.

use serde_json::{json, Map, Value};

use crate::identity::ImageRef;

/// `critical.type` of GPG simple signatures.
pub(crate) const ATOMIC_TYPE: &str = "atomic container signature";
/// `critical.type` of sigstore signatures.
pub(crate) const COSIGN_TYPE: &str = "cosign container image signature";

/// What a verified payload claims.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Claims {
    pub digest: String,
    pub reference: ImageRef,
}

/// The payload signing `digest` as `reference`, with `critical.type` `ty`.
pub(crate) fn payload(ty: &str, reference: &ImageRef, digest: &str) -> Vec<u8> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let v = json!({
        "critical": {
            "identity": {"docker-reference": reference.to_string()},
            "image": {"docker-manifest-digest": digest},
            "type": ty,
        },
        "optional": {
            "creator": concat!("hako ", env!("CARGO_PKG_VERSION")),
            "timestamp": timestamp,
        },
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn exact<'a>(v: &'a Value, at: &str, fields: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{at} is not a JSON object"))?;
    for k in obj.keys() {
        if !fields.contains(&k.as_str()) {
            return Err(format!("unexpected field {at}.{k}"));
        }
    }
    for f in fields {
        if !obj.contains_key(*f) {
            return Err(format!("{at}.{f} is missing"));
        }
    }
    Ok(obj)
}

fn string<'a>(obj: &'a Map<String, Value>, at: &str, k: &str) -> Result<&'a str, String> {
    obj.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}.{k} is not a string"))
}

/// Parses a payload whose signature already checked out, requiring `critical.type` `ty`.
pub(crate) fn parse(data: &[u8], ty: &str) -> Result<Claims, String> {
    let v: Value =
        serde_json::from_slice(data).map_err(|e| format!("the signed payload is not JSON: {e}"))?;
    let top = v
        .as_object()
        .ok_or("the signed payload is not a JSON object")?;
    for k in top.keys() {
        if k != "critical" && k != "optional" {
            return Err(format!("unexpected field {k} in the signed payload"));
        }
    }
    if let Some(o) = top.get("optional") {
        let o = o.as_object().ok_or("optional is not a JSON object")?;
        if o.get("creator").is_some_and(|c| !c.is_string()) {
            return Err("optional.creator is not a string".into());
        }
        if o.get("timestamp").is_some_and(|t| !t.is_i64()) {
            return Err("optional.timestamp is not an integer".into());
        }
    }
    let critical = top.get("critical").ok_or("critical is missing")?;
    let critical = exact(critical, "critical", &["type", "image", "identity"])?;
    let got = string(critical, "critical", "type")?;
    if got != ty {
        return Err(format!("critical.type is {got:?}, not {ty:?}"));
    }
    let image = exact(
        &critical["image"],
        "critical.image",
        &["docker-manifest-digest"],
    )?;
    let digest = string(image, "critical.image", "docker-manifest-digest")?;
    let identity = exact(
        &critical["identity"],
        "critical.identity",
        &["docker-reference"],
    )?;
    let reference = string(identity, "critical.identity", "docker-reference")?;
    let reference = ImageRef::parse_full(reference)
        .map_err(|e| format!("critical.identity.docker-reference: {e}"))?;
    Ok(Claims {
        digest: digest.to_string(),
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let r = ImageRef::parse("localhost:5000/a/b:1").unwrap();
        let p = payload(COSIGN_TYPE, &r, "sha256:ab");
        let c = parse(&p, COSIGN_TYPE).unwrap();
        assert_eq!(c.digest, "sha256:ab");
        assert_eq!(c.reference, r);
        assert!(parse(&p, ATOMIC_TYPE)
            .unwrap_err()
            .contains("critical.type"));
        let extra = br#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"sha256:a"},"identity":{"docker-reference":"quay.io/a:1"},"x":1}}"#;
        assert!(parse(extra, ATOMIC_TYPE)
            .unwrap_err()
            .contains("critical.x"));
        let short = br#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"sha256:a"},"identity":{"docker-reference":"busybox"}}}"#;
        assert!(parse(short, ATOMIC_TYPE).is_err());
    }
}
