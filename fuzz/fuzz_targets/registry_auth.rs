//! What a registry answers around authentication and errors (`crates/registry/src/auth.rs`,
//! `client.rs`): `WWW-Authenticate` challenges, token server answers and error bodies.
//! Challenges written the way registries write them parse back to their scheme and parameters;
//! a token that is accepted can be sent; an error always says something.
//!
//! The input is seven fields separated by NULs: a `WWW-Authenticate` header; a scheme and
//! `KEY=VALUE` lines to write a challenge from; a token server's status and body; an error
//! answer's status and body.
#![no_main]

use std::collections::HashMap;

use hako_registry::fuzzing;
use libfuzzer_sys::fuzz_target;

struct Input {
    header: String,
    scheme: String,
    params: Vec<(String, String)>,
    token_status: u16,
    token_body: Vec<u8>,
    error_status: u16,
    error_body: Vec<u8>,
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~+".contains(c)
}

impl Input {
    fn parse(data: &[u8]) -> Input {
        let mut f = data.splitn(7, |b| *b == 0);
        let mut text = || String::from_utf8_lossy(f.next().unwrap_or_default()).into_owned();
        let header = text();
        let scheme = text();
        let params = text()
            .lines()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect();
        let token_status = text().trim().parse().unwrap_or(200);
        let token_body = text().into_bytes();
        let error_status = text().trim().parse().unwrap_or(404);
        let error_body = f.next().unwrap_or_default().to_vec();
        Input {
            header,
            scheme,
            params,
            token_status,
            token_body,
            error_status,
            error_body,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    if let Some((scheme, params)) = fuzzing::parse_challenge(&input.header) {
        assert_eq!(scheme, scheme.to_ascii_lowercase());
        for k in params.keys() {
            assert_eq!(k, &k.trim().to_ascii_lowercase(), "key {k:?}");
        }
    }

    // A challenge as a registry writes one: a token scheme, then key="value" pairs with `"`
    // and `\` escaped.
    if !input.scheme.is_empty() && input.scheme.chars().all(token_char) {
        let mut want: HashMap<String, String> = HashMap::new();
        let mut header = format!("{} ", input.scheme);
        for (i, (k, v)) in input.params.iter().enumerate() {
            if k.is_empty() || !k.chars().all(token_char) {
                continue;
            }
            if i > 0 {
                header.push(',');
            }
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
            header.push_str(&format!("{k}=\"{escaped}\""));
            want.insert(k.to_ascii_lowercase(), v.clone());
        }
        let (scheme, params) = fuzzing::parse_challenge(&header).expect("a well-formed challenge");
        assert_eq!(scheme, input.scheme.to_ascii_lowercase());
        assert_eq!(params, want, "{header}");
    }

    match fuzzing::token_answer(input.token_status, &input.token_body) {
        Ok(auth) => {
            assert_eq!(input.token_status, 200);
            let token = auth.strip_prefix("Bearer ").expect("a Bearer value");
            assert!(!token.is_empty());
            assert!(
                ureq::http::HeaderValue::from_str(&auth).is_ok(),
                "a token that cannot be sent in a header: {auth:?}"
            );
        }
        Err(msg) => assert!(!msg.is_empty()),
    }

    if let Some(e) = fuzzing::status_error(input.error_status, &input.error_body) {
        match e {
            hako_registry::Error::Status {
                status, message, ..
            } => {
                assert_eq!(status, input.error_status);
                assert!(!message.is_empty(), "an empty error message");
            }
            other => panic!("{other:?}"),
        }
    }
});
