//! The Dockerfile subset accepted by `docker import --change`.

use std::collections::HashMap;

use oci_spec::image::Config;

use crate::Error;

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidChange(msg.into())
}

/// Applies `changes` in order to `config`.
pub fn apply(config: &mut Config, changes: &[String]) -> Result<(), Error> {
    for change in changes {
        let line = change.trim();
        if line.is_empty() {
            continue;
        }
        let (instr, rest) = match line.split_once(char::is_whitespace) {
            Some((i, r)) => (i, r.trim()),
            None => (line, ""),
        };
        let upper = instr.to_ascii_uppercase();
        let env = env_map(config);
        match upper.as_str() {
            "ENV" => {
                let pairs = key_values(rest, &env, "ENV")?;
                let mut list = config.env().clone().unwrap_or_default();
                for (k, v) in pairs {
                    let prefix = format!("{k}=");
                    let item = format!("{k}={v}");
                    match list.iter_mut().find(|e| e.starts_with(&prefix)) {
                        Some(e) => *e = item,
                        None => list.push(item),
                    }
                }
                config.set_env(Some(list));
            }
            "LABEL" => {
                let pairs = key_values(rest, &env, "LABEL")?;
                let mut labels = config.labels().clone().unwrap_or_default();
                labels.extend(pairs);
                config.set_labels(Some(labels));
            }
            "CMD" => {
                config.set_cmd(Some(command(rest)));
            }
            "ENTRYPOINT" => {
                config.set_entrypoint(Some(command(rest)));
            }
            "WORKDIR" => {
                let dir = one_word(rest, &env, "WORKDIR")?;
                // A relative WORKDIR is relative to the previous one.
                let dir = if dir.starts_with('/') {
                    dir
                } else {
                    let base = config.working_dir().clone().unwrap_or_else(|| "/".into());
                    format!("{}/{dir}", base.trim_end_matches('/'))
                };
                config.set_working_dir(Some(dir));
            }
            "USER" => {
                config.set_user(Some(one_word(rest, &env, "USER")?));
            }
            "STOPSIGNAL" => {
                config.set_stop_signal(Some(one_word(rest, &env, "STOPSIGNAL")?));
            }
            "EXPOSE" => {
                let words = words(rest, &env)?;
                if words.is_empty() {
                    return Err(bad("EXPOSE requires at least one argument"));
                }
                let mut ports = config.exposed_ports().clone().unwrap_or_default();
                for w in words {
                    let port = normalize_port(&w)?;
                    if !ports.contains(&port) {
                        ports.push(port);
                    }
                }
                config.set_exposed_ports(Some(ports));
            }
            "VOLUME" => {
                let vols = match serde_json::from_str::<Vec<String>>(rest) {
                    Ok(v) => v,
                    Err(_) => words(rest, &env)?,
                };
                if vols.is_empty() || vols.iter().any(|v| v.is_empty()) {
                    return Err(bad("VOLUME specified can not be an empty string"));
                }
                let mut list = config.volumes().clone().unwrap_or_default();
                for v in vols {
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
                config.set_volumes(Some(list));
            }
            _ => {
                return Err(bad(format!(
                    "{instr} is not a valid change command (supported: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)"
                )))
            }
        }
    }
    Ok(())
}

fn env_map(config: &Config) -> HashMap<String, String> {
    config
        .env()
        .iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// JSON array form is taken verbatim; anything else is the shell form.
fn command(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), rest.to_string()]
}

fn one_word(rest: &str, env: &HashMap<String, String>, instr: &str) -> Result<String, Error> {
    let w = words(rest, env)?;
    match w.as_slice() {
        [one] if !one.is_empty() => Ok(one.clone()),
        _ => Err(bad(format!("{instr} requires exactly one argument"))),
    }
}

fn normalize_port(p: &str) -> Result<String, Error> {
    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let range_ok = {
        let (a, b) = port.split_once('-').unwrap_or((port, port));
        matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= b)
    };
    if !range_ok || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad(format!("invalid port for EXPOSE: {p}")));
    }
    Ok(format!("{port}/{proto}"))
}

/// `K=V K2="v 2"`, or the legacy single-pair form `K some value`.
fn key_values(
    rest: &str,
    env: &HashMap<String, String>,
    instr: &str,
) -> Result<Vec<(String, String)>, Error> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let Some((k, v)) = rest.split_once(char::is_whitespace) else {
            return Err(bad(format!("{instr} requires at least one argument")));
        };
        let v = words(v.trim(), env)?.join(" ");
        return Ok(vec![(k.to_string(), v)]);
    }
    let mut out = Vec::new();
    for w in words(rest, env)? {
        let Some((k, v)) = w.split_once('=') else {
            return Err(bad(format!("{instr}: expected KEY=VALUE, got {w:?}")));
        };
        if k.is_empty() {
            return Err(bad(format!("{instr}: empty key in {w:?}")));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Splits shell-like words with quotes, backslash escapes and `$VAR` /
/// `${VAR}` expansion from the image's environment (as the Dockerfile
/// builder does for these instructions).
fn words(s: &str, env: &HashMap<String, String>) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => cur.push('\\'),
                }
            }
            (_, '$') => {
                in_word = true;
                let name: String = if chars.peek() == Some(&'{') {
                    chars.next();
                    let mut n = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(x) => n.push(x),
                            None => return Err(bad(format!("missing '}}' in {s:?}"))),
                        }
                    }
                    n
                } else {
                    let mut n = String::new();
                    while let Some(&x) = chars.peek() {
                        if x.is_ascii_alphanumeric() || x == '_' {
                            n.push(x);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    n
                };
                if name.is_empty() {
                    cur.push('$');
                } else {
                    cur.push_str(env.get(&name).map(String::as_str).unwrap_or(""));
                }
            }
            (_, c) => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err(bad(format!("unterminated quote in {s:?}")));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(changes: &[&str]) -> Result<Config, Error> {
        let mut c = Config::default();
        apply(
            &mut c,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(c)
    }

    #[test]
    fn all_instructions() {
        let c = run(&[
            "ENV PATH=/usr/bin A=\"x y\"",
            "ENV B $A-z",
            "ENV PATH=$PATH:/opt/bin",
            r#"CMD ["/bin/echo", "hi"]"#,
            "ENTRYPOINT echo hello",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "LABEL a=b \"c d\"=e",
            r#"VOLUME ["/data"]"#,
            "VOLUME /v1 /v2",
            "stopsignal SIGINT",
        ])
        .unwrap();
        assert_eq!(
            c.env().as_ref().unwrap(),
            &vec![
                "PATH=/usr/bin:/opt/bin".to_string(),
                "A=x y".into(),
                "B=x y-z".into()
            ]
        );
        assert_eq!(c.cmd().as_ref().unwrap(), &vec!["/bin/echo", "hi"]);
        assert_eq!(
            c.entrypoint().as_ref().unwrap(),
            &vec!["/bin/sh", "-c", "echo hello"]
        );
        assert_eq!(c.working_dir().as_deref(), Some("/srv/app"));
        assert_eq!(c.user().as_deref(), Some("1000:1000"));
        assert_eq!(
            c.exposed_ports().as_ref().unwrap(),
            &vec!["80/tcp", "53/udp"]
        );
        let labels = c.labels().as_ref().unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["c d"], "e");
        assert_eq!(c.volumes().as_ref().unwrap(), &vec!["/data", "/v1", "/v2"]);
        assert_eq!(c.stop_signal().as_deref(), Some("SIGINT"));
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        for bad in [
            "RUN echo",
            "EXPOSE abc",
            "USER",
            "ENV",
            "LABEL x=\"y",
            "FROM x",
        ] {
            assert!(matches!(run(&[bad]), Err(Error::InvalidChange(_))), "{bad}");
        }
    }
}
