//! Shell completion of the names a static script cannot know: containers, images, networks
//! and volumes of the state root. The shell's script (`hako completion SHELL`, or `HAKO_COMPLETE=SHELL
//! hako`) calls hako back with `HAKO_COMPLETE` set; clap_complete then parses the line being typed
//! and asks these functions for the candidates of the argument under the cursor.

use clap_complete::engine::CompletionCandidate;

/// The variable the completion script sets when it calls hako back: hako's own, not
/// clap_complete's generic `COMPLETE`, so that a `COMPLETE` a user's environment holds for
/// something else never turns every hako command into a completion request.
pub const COMPLETE_VAR: &str = "HAKO_COMPLETE";
use hako_engine::Engine;

/// The state root the line names (`--root` is not known here): `HAKO_ROOT`, else the default.
/// Never created: completing in a shell must not make a root.
fn engine() -> Option<Engine> {
    let root = std::env::var_os("HAKO_ROOT")
        .filter(|r| !r.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(hako_engine::rootless::default_root);
    if !root.join("hako.db").exists() {
        return None;
    }
    Engine::open(&root).ok()
}

fn candidates(names: impl IntoIterator<Item = String>) -> Vec<CompletionCandidate> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// Container names.
pub fn containers() -> Vec<CompletionCandidate> {
    let Some(e) = engine() else { return Vec::new() };
    candidates(e.list(true).unwrap_or_default().into_iter().map(|c| c.name))
}

/// Image references as Docker users type them (`busybox:latest`, `reg:5000/app:1`).
pub fn images() -> Vec<CompletionCandidate> {
    let Some(e) = engine() else { return Vec::new() };
    candidates(
        e.images()
            .list()
            .unwrap_or_default()
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .map(|r| r.familiar()),
    )
}

/// Network names.
pub fn networks() -> Vec<CompletionCandidate> {
    let Some(e) = engine() else { return Vec::new() };
    candidates(
        e.network_list()
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.name),
    )
}

/// Volume names.
pub fn volumes() -> Vec<CompletionCandidate> {
    let Some(e) = engine() else { return Vec::new() };
    candidates(
        e.volume_list()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name),
    )
}
