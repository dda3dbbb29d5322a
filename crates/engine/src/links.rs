//! `--link NAME[:ALIAS]`: Docker's legacy links, as lines of the container's /etc/hosts naming
//! the linked container's address by its alias, its host name and its name. Docker does this
//! on the default bridge; on a user network it makes the alias resolve instead, which the
//! same line gives the linking container (and only it, as with Docker).

use crate::{ContainerConfig, Engine, Error, Network, Result, State};

impl Engine {
    /// The /etc/hosts lines of the container `me`'s links; each linked container must be
    /// running and on the same network.
    pub(crate) fn link_hosts(&self, me: &str, opts: &ContainerConfig) -> Result<Vec<String>> {
        if opts.links.is_empty() {
            return Ok(Vec::new());
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
        let mut lines = Vec::with_capacity(opts.links.len());
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
        }
        Ok(lines)
    }
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
    fn links_read_as_dockers_cli() {
        assert_eq!(super::parse("db").unwrap(), ("db", "db"));
        assert_eq!(super::parse("/db:data").unwrap(), ("db", "data"));
        for bad in ["", "db:", ":x", "a:b:c"] {
            assert!(super::parse(bad).is_err(), "{bad}");
        }
    }
}
