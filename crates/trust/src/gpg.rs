//! Simple signing with GPG keys, through the `gpg` program.
//!
//! Why not a Rust OpenPGP crate: `sequoia-openpgp` pulls a crypto backend (nettle through
//! bindgen, or its RustCrypto backend marked experimental) and several hundred compile units;
//! on this project's two-core builds that is minutes for a path few users take, while `gpg`
//! is what produced and checks these signatures everywhere else (containers/image drives the
//! same engine through gpgme). Verification runs `gpg` in a private, temporary GNUPGHOME that
//! holds only the policy's keys, so the user's keyring and trust settings never decide
//! anything: a signature that verifies there was made by one of the policy's keys.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::Error;

fn gpg() -> Command {
    let mut c = Command::new(std::env::var_os("HAKO_GPG").unwrap_or_else(|| "gpg".into()));
    c.args(["--batch", "--no-tty", "--quiet"])
        .stdin(Stdio::null());
    c
}

fn run(mut cmd: Command, what: &str) -> Result<std::process::Output, Error> {
    let out = cmd
        .output()
        .map_err(|e| Error::Gpg(format!("cannot run gpg to {what}: {e}")))?;
    Ok(out)
}

fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.starts_with("[GNUPG:]") && !l.trim().is_empty())
        .unwrap_or("failed")
        .trim()
        .to_string()
}

/// Checks a simple signature (an OpenPGP signed message) against `keys` (keyring files or
/// armored exports). Returns the signed payload and the signing key's fingerprint; the error
/// says why the signature is not accepted.
pub(crate) fn verify(
    keys: &[Vec<u8>],
    signature: &[u8],
) -> Result<Result<(Vec<u8>, String), String>, Error> {
    let home = tempfile::Builder::new()
        .prefix("hako-gpg-")
        .tempdir()
        .map_err(|e| Error::Gpg(format!("temporary GNUPGHOME: {e}")))?;
    let h = home.path();
    let mut import = gpg();
    import.arg("--homedir").arg(h).arg("--import");
    for (i, k) in keys.iter().enumerate() {
        let p = h.join(format!("key-{i}"));
        std::fs::write(&p, k).map_err(crate::io_err(&p))?;
        import.arg(&p);
    }
    let out = run(import, "import the policy's keys")?;
    if !out.status.success() {
        return Err(Error::Gpg(format!(
            "importing the policy's keys: {}",
            last_line(&out.stderr)
        )));
    }
    let sig = h.join("signature");
    let payload = h.join("payload");
    std::fs::write(&sig, signature).map_err(crate::io_err(&sig))?;
    let mut check = gpg();
    check
        .arg("--homedir")
        .arg(h)
        .args(["--trust-model", "always", "--status-fd", "1", "--output"])
        .arg(&payload)
        .arg("--decrypt")
        .arg(&sig);
    let out = run(check, "verify a signature")?;
    let status = String::from_utf8_lossy(&out.stdout);
    let mut valid = None;
    let mut count = 0;
    for line in status.lines() {
        let Some(rest) = line.strip_prefix("[GNUPG:] ") else {
            continue;
        };
        let mut f = rest.split_whitespace();
        match f.next() {
            Some("NEWSIG") => count += 1,
            Some("VALIDSIG") => valid = f.next().map(str::to_string),
            Some("BADSIG") => {
                return Ok(Err("the signature does not match the signed data".into()))
            }
            Some("ERRSIG") | Some("NO_PUBKEY") => {
                return Ok(Err(
                    "the signature was not made by a key the policy trusts".into()
                ))
            }
            Some("EXPKEYSIG") => return Ok(Err("the signing key has expired".into())),
            Some("REVKEYSIG") => return Ok(Err("the signing key was revoked".into())),
            _ => {}
        }
    }
    if count > 1 {
        return Ok(Err(
            "the signature file holds more than one signature".into()
        ));
    }
    match (out.status.success(), valid) {
        (true, Some(fpr)) => {
            let data = std::fs::read(&payload).map_err(crate::io_err(&payload))?;
            Ok(Ok((data, fpr)))
        }
        _ => Ok(Err(format!(
            "not a valid signature: {}",
            last_line(&out.stderr)
        ))),
    }
}

/// Signs `payload` with the key `fingerprint` of the user's keyring (`$GNUPGHOME` or
/// `~/.gnupg`), giving the OpenPGP signed message simple signing stores.
pub(crate) fn sign(
    payload: &[u8],
    fingerprint: &str,
    passphrase_file: Option<&Path>,
) -> Result<Vec<u8>, Error> {
    let dir = tempfile::Builder::new()
        .prefix("hako-sign-")
        .tempdir()
        .map_err(|e| Error::Gpg(format!("temporary directory: {e}")))?;
    let input = dir.path().join("payload");
    let output = dir.path().join("signature");
    std::fs::write(&input, payload).map_err(crate::io_err(&input))?;
    let mut cmd = gpg();
    if let Some(p) = passphrase_file {
        cmd.args(["--pinentry-mode", "loopback", "--passphrase-file"])
            .arg(p);
    }
    cmd.args(["--local-user", fingerprint, "--output"])
        .arg(&output)
        .arg("--sign")
        .arg(&input);
    let out = run(cmd, "sign")?;
    if !out.status.success() {
        return Err(Error::Gpg(format!(
            "signing with {fingerprint}: {}",
            last_line(&out.stderr)
        )));
    }
    std::fs::read(&output).map_err(crate::io_err(&output))
}
