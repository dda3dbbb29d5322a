//! Typed views of containers, built once by the engine and shown by every front end: the CLI
//! renders them as tables and templates, the API server as Docker's JSON.

mod top;

pub use top::Top;
