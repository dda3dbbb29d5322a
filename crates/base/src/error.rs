//! The classes errors fall into, for the front ends to answer each the way Docker does.

use std::fmt;

/// What kind of failure an error is, as far as a caller can act on it.
///
/// Every library error of hako (`hako_engine::Error`, `hako_image::Error`, ...) reports one
/// through its `kind()`, so the kind survives wrapping: an image that is not found is
/// [`NotFound`](ErrorKind::NotFound) whether the image store, the engine or the builder
/// returns it. The CLI maps kinds to Docker's exit statuses; the API server maps them to the
/// HTTP statuses dockerd answers with ([`ErrorKind::http_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object named does not exist: no such container, image, network, volume or
    /// manifest (404).
    NotFound,
    /// The request clashes with the state: a name in use, a running container to remove,
    /// an image a container uses (409).
    Conflict,
    /// The request itself is wrong: a malformed value, an unknown option, a command that
    /// cannot be executed (400).
    Invalid,
    /// Nothing to do: starting a started container, stopping a stopped one (304).
    NotModified,
    /// The caller's credentials were refused, or are needed and missing (401).
    Unauthorized,
    /// The operation is not allowed on this object (403).
    Forbidden,
    /// A service the operation needs (a registry, the network) cannot be reached or gave up
    /// (503).
    Unavailable,
    /// Anything else: the engine failed at its own work (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status dockerd answers with for an error of this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Invalid => 400,
            ErrorKind::NotModified => 304,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// A short lowercase name, e.g. for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid",
            ErrorKind::NotModified => "not modified",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind as K;

    #[test]
    fn statuses_are_dockerds() {
        let all = [
            (K::NotFound, 404),
            (K::Conflict, 409),
            (K::Invalid, 400),
            (K::NotModified, 304),
            (K::Unauthorized, 401),
            (K::Forbidden, 403),
            (K::Unavailable, 503),
            (K::Internal, 500),
        ];
        for (k, status) in all {
            assert_eq!(k.http_status(), status, "{k}");
        }
    }
}
