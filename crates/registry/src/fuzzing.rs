//! Entry points for the fuzz targets in `fuzz/`, not an API: the code that reads what a
//! registry answers, reachable without a network. Each function runs exactly what a pull or a
//! login runs on the same bytes.

use std::collections::HashMap;

use hako_image::Reference;

use crate::manifest::{self, Kind, Platform};
use crate::Error;

/// A `WWW-Authenticate` header as parsed: the scheme in lower case, and the parameters.
pub fn parse_challenge(header: &str) -> Option<(String, HashMap<String, String>)> {
    crate::auth::parse_challenge(header).map(|c| (c.scheme, c.params))
}

/// The `Authorization` value a token server's answer gives, or the message of the
/// `Unauthorized` error a pull reports.
pub fn token_answer(status: u16, body: &[u8]) -> Result<String, String> {
    crate::client::token_from_answer(status, body)
}

/// The error a request answered with `status` and `body` is reported as; `None` when `status`
/// is not an HTTP status code.
pub fn status_error(status: u16, body: &[u8]) -> Option<Error> {
    let resp = ureq::http::Response::builder()
        .status(status)
        .body(ureq::Body::builder().data(body.to_vec()))
        .ok()?;
    Some(crate::client::status_error(
        resp,
        "http://registry/v2/",
        status,
    ))
}

/// Whether a manifest answer with this content type is an index (`true`) or an image manifest.
pub fn classify(content_type: &str, body: &[u8], reference: &Reference) -> Result<bool, Error> {
    manifest::classify(content_type, body, &reference.familiar()).map(|k| k == Kind::Index)
}

/// The entry of an index a pull picks for `want`.
#[derive(Debug)]
pub struct Selected {
    /// The manifest's digest, as the index gives it.
    pub digest: String,
    /// The entry's `platform.os`.
    pub os: String,
    /// The entry's `platform.architecture`.
    pub architecture: String,
    /// The entry's `platform.variant`.
    pub variant: Option<String>,
}

/// Parses an index and picks the entry for `want`, as a pull does.
pub fn select(body: &[u8], want: &Platform, reference: &Reference) -> Result<Selected, Error> {
    let index: manifest::Index = serde_json::from_slice(body).map_err(|e| Error::BadManifest {
        reference: reference.familiar(),
        message: e.to_string(),
    })?;
    let d = manifest::select(&index, want)?;
    let p = d.platform.clone().unwrap_or(manifest::WirePlatform {
        os: String::new(),
        architecture: String::new(),
        variant: None,
    });
    Ok(Selected {
        digest: d.digest.clone(),
        os: p.os,
        architecture: p.architecture,
        variant: p.variant,
    })
}

/// Parses an image manifest as a pull does: the config's digest and each layer's media type
/// and digest.
pub fn parse_manifest(
    body: &[u8],
    reference: &Reference,
) -> Result<(String, Vec<(String, String)>), Error> {
    let m = crate::pull::parse_manifest(body, reference)?;
    Ok((
        m.config.digest,
        m.layers
            .into_iter()
            .map(|l| (l.media_type, l.digest))
            .collect(),
    ))
}

/// Checks an image config's platform as a pull does; `Ok` with the warning printed, if any.
pub fn check_platform(
    config: &[u8],
    platform: Option<Platform>,
    reference: &Reference,
) -> Result<String, Error> {
    let mut out = Vec::new();
    let opts = crate::PullOptions { platform };
    crate::pull::check_platform(config, reference, &opts, &mut crate::lines_to(&mut out))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
