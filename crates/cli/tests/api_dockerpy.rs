//! docker-py (PyPI `docker`): the project's own test module, `tests/dockerpy/test_api.py`,
//! against `hako system service`. scripts/test.sh installs docker-py in a venv and names its
//! Python in HAKO_TEST_PYTHON; without it, the system's python3 is used if it has docker-py.

mod common;

use common::service::{have, split, Service};
use common::Root;

fn python() -> Option<String> {
    let candidates = std::env::var("HAKO_TEST_PYTHON")
        .ok()
        .into_iter()
        .chain(["python3".to_string()]);
    for p in candidates {
        let ok = std::process::Command::new(&p)
            .args(["-c", "import docker"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(p);
        }
    }
    None
}

#[test]
fn docker_py_test_module() {
    let Some(py) = python() else {
        eprintln!(
            "skipped: no Python with docker-py (set HAKO_TEST_PYTHON; scripts/test.sh makes one)"
        );
        return;
    };
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    let reg = have("docker-registry").then(hako_testkit::Registry::start);
    let mut c = svc.client(&py);
    c.args(["-m", "unittest", "-v", "test_api"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dockerpy"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    if let Some(r) = &reg {
        c.env("HAKO_TEST_REGISTRY", format!("127.0.0.1:{}", r.port));
    }
    let (code, out, err) = split(c.output().unwrap());
    assert_eq!(code, 0, "docker-py tests failed:\n{out}\n{err}");
    assert!(err.contains("OK"), "{err}");
    if reg.is_some() {
        assert!(!err.contains("skipped 'no registry'"), "{err}");
    }
    assert_eq!(root.ok(&["ps", "-aq"]), "");
}
