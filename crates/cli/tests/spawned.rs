//! The engine's container work for multi-threaded callers (what the API server uses): start,
//! exec with the caller's streams, cp both ways, export and wait, called from several threads
//! of this one test process at once. Each runs in a spawned `hako`, so none needs this
//! process to be single-threaded, to have its signal mask or its stdio.

mod common;

use common::Root;
use hako_engine::exec::ExecOptions;
use hako_engine::helper::Streams;
use hako_engine::wait::WaitCondition;
use hako_engine::Engine;
use std::io::{Read, Seek};
use std::os::fd::OwnedFd;

fn file() -> std::fs::File {
    tempfile::tempfile().unwrap()
}

fn fd(f: &std::fs::File) -> OwnedFd {
    OwnedFd::from(f.try_clone().unwrap())
}

fn contents(mut f: std::fs::File) -> Vec<u8> {
    let mut v = Vec::new();
    f.rewind().unwrap();
    f.read_to_end(&mut v).unwrap();
    v
}

/// A tar archive holding `name` with `text`.
fn archive(name: &str, text: &str) -> std::fs::File {
    let f = file();
    let mut b = tar::Builder::new(f.try_clone().unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, text.as_bytes()).unwrap();
    b.finish().unwrap();
    drop(b);
    let mut f = f;
    f.rewind().unwrap();
    f
}

#[test]
fn container_work_from_many_threads_of_one_process() {
    let r = Root::with_busybox();
    // Set before any thread of this test starts; the tests of this file run one at a time
    // (`Root` serializes them) and no other reads it.
    std::env::set_var("HAKO_BINARY", common::hako_bin());
    let names: Vec<String> = (0..4).map(|i| format!("mt{i}")).collect();
    for n in &names {
        // Not `sleep 1000`: other suites find their containers by that command line.
        r.ok(&["create", "--name", n, "busybox", "sleep", "86397"]);
    }
    let root = r.path().to_path_buf();
    let threads: Vec<_> = names
        .iter()
        .cloned()
        .map(|name| {
            let root = root.clone();
            std::thread::spawn(move || {
                let engine = Engine::open(&root).unwrap();
                let id = engine.start_spawned(&name).unwrap();

                // exec with the caller's streams: stdin in, stdout and stderr apart.
                let (input, out, err) = (file(), file(), file());
                {
                    let mut i = input.try_clone().unwrap();
                    std::io::Write::write_all(&mut i, b"from-stdin\n").unwrap();
                    i.rewind().unwrap();
                }
                let code = engine
                    .exec_spawned(
                        &name,
                        &ExecOptions {
                            cmd: vec![
                                "sh".into(),
                                "-c".into(),
                                "read l; echo \"$l $NAME $(hostname)\"; echo oops >&2; exit 3"
                                    .into(),
                            ],
                            env: vec![format!("NAME={name}")],
                            interactive: true,
                            ..Default::default()
                        },
                        Streams {
                            stdin: Some(fd(&input)),
                            stdout: Some(fd(&out)),
                            stderr: Some(fd(&err)),
                        },
                    )
                    .unwrap();
                assert_eq!(code, 3);
                assert_eq!(
                    String::from_utf8(contents(out)).unwrap(),
                    format!("from-stdin {name} {}\n", &id[..12])
                );
                assert_eq!(String::from_utf8(contents(err)).unwrap(), "oops\n");

                // cp in, then out again.
                engine
                    .copy_to_spawned(&name, "/tmp", OwnedFd::from(archive("note", &name)))
                    .unwrap();
                let back = file();
                engine
                    .copy_from_spawned(&name, "/tmp/note", fd(&back))
                    .unwrap();
                let mut a = tar::Archive::new(std::io::Cursor::new(contents(back)));
                let mut entry = a.entries().unwrap().next().unwrap().unwrap();
                let mut text = String::new();
                entry.read_to_string(&mut text).unwrap();
                assert_eq!(text, name);

                // export holds the file too.
                let exported = file();
                engine.export_spawned(&name, fd(&exported)).unwrap();
                let mut a = tar::Archive::new(std::io::Cursor::new(contents(exported)));
                assert!(a.entries().unwrap().any(|e| {
                    e.unwrap()
                        .path()
                        .unwrap()
                        .to_string_lossy()
                        .trim_start_matches("./")
                        == "tmp/note"
                }));

                // Errors keep their kind.
                assert!(matches!(
                    engine.start_spawned("nosuch"),
                    Err(hako_engine::Error::NoSuchContainer(_))
                ));
                let e = engine
                    .copy_from_spawned(&name, "/no/such/path", fd(&file()))
                    .unwrap_err();
                assert!(e.to_string().contains("/no/such/path"), "{e}");

                engine.kill(&name, libc::SIGKILL).unwrap();
                assert_eq!(engine.wait(&name).unwrap(), 137);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Stopped containers refuse an exec with the kind the API maps to 409.
    let engine = Engine::open(&root).unwrap();
    assert!(matches!(
        engine.exec_spawned(
            "mt0",
            &ExecOptions {
                cmd: vec!["true".into()],
                ..Default::default()
            },
            Streams::default()
        ),
        Err(hako_engine::Error::NotRunning(_))
    ));
    for n in &names {
        r.ok(&["rm", "-f", n]);
    }
}

/// `wait` with Docker's conditions, from other threads, while `hako` commands change the
/// containers: each waiter returns when its condition holds, not before.
#[test]
fn wait_conditions_from_other_threads() {
    let r = Root::with_busybox();
    let root = r.path().to_path_buf();
    r.ok(&["run", "-d", "--name", "w1", "busybox", "sleep", "86396"]);
    r.ok(&["create", "--name", "w2", "busybox", "sh", "-c", "exit 5"]);
    let waiter = |name: &'static str, condition| {
        let root = root.clone();
        std::thread::spawn(move || {
            Engine::open(&root)
                .unwrap()
                .wait_for(name, condition)
                .unwrap()
        })
    };
    let not_running = waiter("w1", WaitCondition::NotRunning);
    let next_exit = waiter("w2", WaitCondition::NextExit);
    let engine = Engine::open(&root).unwrap();
    // A created container is not running: answered at once.
    assert_eq!(engine.wait_for("w2", WaitCondition::NotRunning).unwrap(), 0);
    assert!(matches!(
        engine.wait_for("nosuch", WaitCondition::NotRunning),
        Err(hako_engine::Error::NoSuchContainer(_))
    ));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!not_running.is_finished() && !next_exit.is_finished());

    r.ok(&["kill", "w1"]);
    assert_eq!(not_running.join().unwrap(), 137);
    let removed = waiter("w1", WaitCondition::Removed);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!removed.is_finished());
    r.ok(&["rm", "w1"]);
    assert_eq!(removed.join().unwrap(), 137);

    assert!(!next_exit.is_finished());
    r.ok(&["start", "w2"]);
    assert_eq!(next_exit.join().unwrap(), 5);
    r.ok(&["rm", "w2"]);
}
