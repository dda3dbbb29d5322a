//! `docker cp`'s two arguments: which one names a container (`NAME:PATH`), and whether the
//! host side is a path or a tar stream (`-`).

/// The arguments do not name one container side.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidCopy(pub &'static str);

/// The host's side of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSide<'a> {
    /// `-`: a tar stream on stdin or stdout.
    Stream,
    /// A path on the host.
    Path(&'a str),
}

/// A copy, read from `docker cp SRC DST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy<'a> {
    /// `CONTAINER:PATH HOST`.
    FromContainer {
        /// The container's name or id.
        container: &'a str,
        /// The path in it.
        path: &'a str,
        /// Where it goes.
        to: HostSide<'a>,
    },
    /// `HOST CONTAINER:PATH`.
    ToContainer {
        /// What is copied.
        from: HostSide<'a>,
        /// The container's name or id.
        container: &'a str,
        /// The path in it.
        path: &'a str,
    },
}

/// Docker's rule: `NAME:PATH` names a container unless the part before ':' looks like a path
/// (it is empty, holds a `/`, or starts with `.`).
pub fn container_part(arg: &str) -> Option<(&str, &str)> {
    let (c, p) = arg.split_once(':')?;
    if c.is_empty() || c.contains('/') || c.starts_with('.') {
        return None;
    }
    Some((c, p))
}

fn host(arg: &str) -> HostSide<'_> {
    if arg == "-" {
        HostSide::Stream
    } else {
        HostSide::Path(arg)
    }
}

/// Reads `docker cp SRC DST`: exactly one side must name a container.
pub fn parse<'a>(src: &'a str, dst: &'a str) -> Result<Copy<'a>, InvalidCopy> {
    match (container_part(src), container_part(dst)) {
        (Some((container, path)), None) => Ok(Copy::FromContainer {
            container,
            path,
            to: host(dst),
        }),
        (None, Some((container, path))) => Ok(Copy::ToContainer {
            from: host(src),
            container,
            path,
        }),
        (Some(_), Some(_)) => Err(InvalidCopy("copying between containers is not supported")),
        (None, None) => Err(InvalidCopy("must specify at least one container source")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_side_is_the_container() {
        assert_eq!(
            parse("web:/etc/hosts", "-").unwrap(),
            Copy::FromContainer {
                container: "web",
                path: "/etc/hosts",
                to: HostSide::Stream
            }
        );
        assert_eq!(
            parse("./a:b", "web:/tmp").unwrap(),
            Copy::ToContainer {
                from: HostSide::Path("./a:b"),
                container: "web",
                path: "/tmp"
            }
        );
        // Paths that hold a ':' are the host's.
        assert_eq!(container_part("/x:y"), None);
        assert_eq!(container_part(":y"), None);
        assert_eq!(container_part(".x:y"), None);
        assert_eq!(
            parse("a:/x", "b:/y").unwrap_err().to_string(),
            "copying between containers is not supported"
        );
        assert_eq!(
            parse("/a", "/b").unwrap_err().to_string(),
            "must specify at least one container source"
        );
    }
}
