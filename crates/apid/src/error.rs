//! Errors as the API answers them: a status and Docker's `{"message": …}` body.

use hyper::StatusCode;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// 400, 404, 409, 500, 501, ...
    pub status: StatusCode,
    /// The body's `message`.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// An error with this status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed or asks for something invalid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the object's state does not allow it.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 501: an endpoint or option hako does not implement, named.
    pub fn not_implemented(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not implemented by hako"),
        )
    }
}

/// The status dockerd answers for each engine failure: what the user named does not exist
/// (404), the object's state forbids it (409), the input is wrong (400), hako failed (500).
impl From<hako_engine::Error> for ApiError {
    fn from(e: hako_engine::Error) -> ApiError {
        use hako_engine::Error as E;
        let status = match &e {
            E::ImageNotFound(_) | E::NoSuchContainer(_) | E::NoSuchVolume(_) => {
                StatusCode::NOT_FOUND
            }
            E::NameConflict { .. } | E::NotRunning(_) | E::Running(_) | E::VolumeInUse { .. } => {
                StatusCode::CONFLICT
            }
            E::Invalid(_) | E::NoCommand | E::User(_) => StatusCode::BAD_REQUEST,
            E::Image(i) => return image_status(i, e.to_string()),
            // A registry's 401/403/404 and a network's not-found or conflict keep their kind.
            E::Registry(_) | E::Net(_) => StatusCode::from_u16(e.kind().http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            // Docker reports a command that cannot be found or executed as the caller's fault;
            // its CLI then exits 127 or 126 from the message.
            E::Runtime(hako_engine::hako_runtime::Error::Exec { .. }) => StatusCode::BAD_REQUEST,
            E::Runtime(_) | E::Cgroup(_) | E::Db(_) | E::Io { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

/// A filter hako_docker refuses is the request's fault (400); an engine failure keeps its
/// status.
impl From<hako_docker::image::Error> for ApiError {
    fn from(e: hako_docker::image::Error) -> ApiError {
        match e {
            hako_docker::image::Error::Invalid(m) => ApiError::bad_request(m),
            hako_docker::image::Error::Engine(e) => e.into(),
        }
    }
}

impl From<hako_engine::hako_image::Error> for ApiError {
    fn from(e: hako_engine::hako_image::Error) -> ApiError {
        let message = e.to_string();
        image_status(&e, message)
    }
}

fn image_status(e: &hako_engine::hako_image::Error, message: String) -> ApiError {
    use hako_engine::hako_image::Error as I;
    let status = match e {
        I::NotFound(_) => StatusCode::NOT_FOUND,
        I::InvalidReference(_)
        | I::Ambiguous(_)
        | I::InvalidArchive(_)
        | I::TooManyLayers(_)
        | I::UnsupportedOs(_)
        | I::InvalidChange(_) => StatusCode::BAD_REQUEST,
        I::InUse { .. } | I::ReferenceInUse { .. } | I::Conflict(_) => StatusCode::CONFLICT,
        I::DigestMismatch { .. } | I::Corrupt(_) | I::Io(_) | I::Db(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    ApiError::new(status, message)
}
