//! `hako compose`: Debian's docker-compose 1.29 against a private `hako system service`.

mod common;

use common::service::have;
use common::{wait_for, Root};

const PROJECT: &str = r#"version: "3.7"
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo db-ready > /data/state; echo db up; exec httpd -f -p 8080 -h /data"]
    volumes:
      - dbdata:/data
    networks: [back]
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www; until wget -qO /www/index.html http://db:8080/state; do sleep 0.1; done; echo web up; exec httpd -f -p 80 -h /www"]
    depends_on: [db]
    ports:
      - "PORT:80"
    networks: [back]
volumes:
  dbdata:
networks:
  back:
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn compose_up_ps_logs_exec_down() {
    if !have("docker-compose") {
        eprintln!("skipped: docker-compose is not installed (apt-get install docker-compose)");
        return;
    }
    let root = Root::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        PROJECT.replace("PORT", &port.to_string()),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut c = root.cmd(&["compose", "-p", "apitest"]);
        c.args(args).current_dir(dir.path());
        common::service::split(c.output().unwrap())
    };
    let (code, out, err) = compose(&["up", "-d"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("Creating apitest_web_1"), "{err}");
    // The published port reaches web, which got its page from db over the user network.
    let url = format!("http://127.0.0.1:{port}/");
    let fetched = || {
        std::process::Command::new("wget")
            .args(["-qO-", &url])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "db-ready\n")
    };
    assert!(
        wait_for(20, fetched),
        "web did not serve db's page on port {port}"
    );

    let (code, out, err) = compose(&["ps"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("apitest_db_1").count(), 1, "{out}");
    assert_eq!(out.matches("apitest_web_1").count(), 1, "{out}");
    assert!(out.contains(&format!("0.0.0.0:{port}->80/tcp")), "{out}");
    let (code, out, err) = compose(&["logs", "--no-color", "db", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("db up") && out.contains("web up"), "{out}");
    let (code, out, err) = compose(&["exec", "-T", "web", "cat", "/www/index.html"]);
    assert_eq!((code, out.as_str()), (0, "db-ready\n"), "{err}");

    // A second up changes nothing.
    let (code, out, err) = compose(&["up", "-d"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("apitest_db_1 is up-to-date"), "{err}");
    assert!(err.contains("apitest_web_1 is up-to-date"), "{err}");
    assert_eq!(root.ok(&["ps", "-q"]).lines().count(), 2);

    let (code, out, err) = compose(&["down", "-v"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(root.ok(&["ps", "-aq"]), "");
    assert_eq!(root.ok(&["volume", "ls", "-q"]), "");
    assert!(!root.ok(&["network", "ls"]).contains("apitest_back"));
}

#[test]
fn compose_without_docker_compose_names_the_package() {
    let root = Root::new();
    let mut c = root.cmd(&["compose", "up"]);
    c.env("PATH", "/nonexistent");
    let (code, _, err) = common::service::split(c.output().unwrap());
    assert_eq!(code, 1);
    assert!(
        err.contains("docker-compose") && err.contains("apt-get install docker-compose"),
        "{err}"
    );
}
