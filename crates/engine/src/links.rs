//! `--link NAME[:ALIAS]`: Docker's legacy links, as lines of the container's /etc/hosts naming
//! the linked container's address by its alias, its host name and its name. Docker does this
//! on the default bridge; on a user network it makes the alias resolve instead, which the
//! same line gives the linking container (and only it, as with Docker). On the default
//! bridge the linking container also gets Docker's link variables (`DB_PORT_5432_TCP_ADDR`,
//! `DB_ENV_…`, …), which Docker sets there only.

use crate::{ContainerConfig, Engine, Error, Network, Result, State};

impl Engine {
    /// The /etc/hosts lines of the container `me`'s links; each linked container must be
    /// running and on the same network.
    /// And the link variables, on the default network: see [`link_env`].
    pub(crate) fn link_hosts(
        &self,
        me: &str,
        opts: &ContainerConfig,
    ) -> Result<(Vec<String>, Vec<String>)> {
        if opts.links.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let my_name = self.find(me).map(|c| c.name).unwrap_or_default();
        let nets = crate::netwire::networks(self.store.conn(), &self.root)?;
        let network = match &opts.network {
            Network::Default => nets.config().default_network.clone(),
            Network::Named(n) => n.clone(),
            Network::Container(_) => {
                return Err(Error::Invalid(
                    "conflicting options: container type network can't be used with links. This would result in undefined behavior".into(),
                ))
            }
            Network::None | Network::Host => {
                return Err(Error::Invalid(
                    "conflicting options: host type networking can't be used with links. This would result in undefined behavior".into(),
                ))
            }
        };
        let default = network == nets.config().default_network;
        let mut lines = Vec::with_capacity(opts.links.len());
        let mut env = Vec::new();
        for link in &opts.links {
            let (name, alias) = parse(link)?;
            let other = self
                .find(name)
                .map_err(|e| Error::Invalid(format!("could not get container for {name}: {e}")))?;
            if other.state != State::Running {
                return Err(Error::Invalid(format!(
                    "Cannot link to a non running container: /{} AS /{my_name}/{alias}",
                    other.name
                )));
            }
            let ip = nets
                .container_endpoints(&other.id)
                .unwrap_or_default()
                .into_iter()
                .find(|(n, _)| n.name == network)
                .map(|(_, e)| e.ip)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "Cannot link to /{}, as it does not belong to the default network",
                        other.name
                    ))
                })?;
            let hostname = self
                .config_of(&other.id)?
                .hostname
                .unwrap_or_else(|| other.id[..12].to_string());
            let mut names = format!("{alias} {hostname}");
            if alias != other.name {
                names.push(' ');
                names.push_str(&other.name);
            }
            lines.push(format!("{ip}\t{names}"));
            if default {
                let theirs = self.container_inspect(&other.id)?.config;
                let ports: Vec<String> = theirs.exposed_ports.keys().cloned().collect();
                env.extend(link_env(
                    &my_name,
                    alias,
                    &ip.to_string(),
                    &ports,
                    &theirs.env,
                ));
            }
        }
        Ok((lines, env))
    }
}

/// Docker's variables for a link named `alias` from the container `me` to one at `ip` that
/// exposes `ports` (`80/tcp`) and runs with `env`: `ALIAS_NAME=/me/alias`, `ALIAS_PORT` (its
/// lowest port), per port `ALIAS_PORT_80_TCP` with its `_ADDR`, `_PORT` and `_PROTO`, and its
/// configured variables (`Config.Env`) as `ALIAS_ENV_NAME` (not HOME and PATH, as Docker
/// leaves them out). The alias is
/// upper-cased, `-` and `.` as `_`.
pub(crate) fn link_env(
    me: &str,
    alias: &str,
    ip: &str,
    ports: &[String],
    env: &[String],
) -> Vec<String> {
    let a: String = alias
        .trim_start_matches('/')
        .chars()
        .map(|c| match c {
            '-' | '.' | '/' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    let mut out = vec![format!("{a}_NAME=/{me}/{}", alias.trim_start_matches('/'))];
    let mut parsed: Vec<(u16, String)> = ports
        .iter()
        .filter_map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((n.parse().ok()?, proto.to_string()))
        })
        .collect();
    parsed.sort();
    if let Some((n, proto)) = parsed.first() {
        out.push(format!("{a}_PORT={proto}://{ip}:{n}"));
    }
    for (n, proto) in &parsed {
        let p = format!("{a}_PORT_{n}_{}", proto.to_ascii_uppercase());
        out.push(format!("{p}={proto}://{ip}:{n}"));
        out.push(format!("{p}_ADDR={ip}"));
        out.push(format!("{p}_PORT={n}"));
        out.push(format!("{p}_PROTO={proto}"));
    }
    for v in env {
        let Some((k, val)) = v.split_once('=') else {
            continue;
        };
        // As Docker leaves them out.
        if matches!(k, "HOME" | "PATH") {
            continue;
        }
        out.push(format!("{a}_ENV_{k}={val}"));
    }
    out
}

/// `NAME[:ALIAS]` (the alias defaults to the name), as Docker's CLI reads it.
pub fn parse(link: &str) -> Result<(&str, &str)> {
    let (name, alias) = match link.split_once(':') {
        Some((n, a)) => (n.trim_start_matches('/'), a),
        None => (link.trim_start_matches('/'), link.trim_start_matches('/')),
    };
    if name.is_empty() || alias.is_empty() || alias.contains(':') {
        return Err(Error::Invalid(format!(
            "invalid argument \"{link}\" for \"--link\" flag: bad format for links: {link}"
        )));
    }
    Ok((name, alias))
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_variables_as_docker_sets_them() {
        let env = super::link_env(
            "web",
            "my-db",
            "172.17.0.2",
            &["5432/tcp".into(), "53/udp".into()],
            &[
                "PATH=/bin".into(),
                "POSTGRES_DB=app".into(),
                "HOME=/root".into(),
            ],
        );
        assert_eq!(
            env,
            [
                "MY_DB_NAME=/web/my-db",
                "MY_DB_PORT=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                "MY_DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "MY_DB_PORT_5432_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_ENV_POSTGRES_DB=app",
            ]
        );
    }

    #[test]
    fn links_read_as_dockers_cli() {
        assert_eq!(super::parse("db").unwrap(), ("db", "db"));
        assert_eq!(super::parse("/db:data").unwrap(), ("db", "data"));
        for bad in ["", "db:", ":x", "a:b:c"] {
            assert!(super::parse(bad).is_err(), "{bad}");
        }
    }
}
