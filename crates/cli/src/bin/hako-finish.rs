//! `hako-finish ROOT ID PID`: what a detached container's monitor execs once the container has
//! exited and its status is in the exit file: records the exit, frees the cgroup and the
//! network, applies `--rm` and the restart policy (`hako_engine::finish`). The process keeps
//! the monitor's pid (and its subreaper bit), so `wait` and `run -it` see one process end.
//! Not run by hand.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, id, pid] = &args[..] else {
        eprintln!(
            "hako-finish is run by hako-monitor when its container exits; it is not run by hand"
        );
        return std::process::ExitCode::from(2);
    };
    // Nobody reads this stderr; the engine also logs a failure in ROOT/container-finish.log.
    match hako_engine::finish::finish_for_monitor(std::path::Path::new(root), id, pid.parse().ok())
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hako-finish {id}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
