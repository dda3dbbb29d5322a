//! `--format` as Docker users write it (issue 21, defect 9): Go's printing of maps and
//! arrays, `table` headers aligned as Docker's CLI aligns them, the methods of Docker's format
//! contexts (`.Label "k"`, `.Labels`, `.Mounts`, `.Networks`), on every command with a format.

mod common;

use common::Root;

#[test]
fn ps_formats_tables_labels_mounts_and_networks() {
    let r = Root::with_busybox();
    r.ok(&[
        "run",
        "-d",
        "--name",
        "fmt-web",
        "-l",
        "b=2",
        "-l",
        "a=1",
        "-l",
        "com.example.x=y",
        "-v",
        "fmtdata:/srv",
        "busybox",
        "sleep",
        "100",
    ]);
    r.ok(&["create", "--name", "fmt-db", "busybox", "true"]);

    // `table`: a header row from the fields' headers, columns aligned (at least 10 wide
    // with 3 spaces of padding), newest first. It printed "table" on every row and no header.
    assert_eq!(
        r.ok(&["ps", "-a", "--format", "table {{.Names}}\\t{{.Labels}}"]),
        "NAMES     LABELS\nfmt-db    \nfmt-web   a=1,b=2,com.example.x=y\n"
    );
    // Without `table`, no header and no alignment.
    assert_eq!(
        r.ok(&["ps", "-a", "--format", "{{.Names}}\\t{{.State}}"]),
        "fmt-db\tcreated\nfmt-web\trunning\n"
    );
    // Docker's container context: these failed with a Rust map dump.
    assert_eq!(
        r.ok(&[
            "ps",
            "--format",
            "{{.Names}}|{{.Label \"com.example.x\"}}|{{.Label \"zz\"}}|{{.Mounts}}|{{.Networks}}|{{.LocalVolumes}}",
        ]),
        "fmt-web|y||fmtdata|bridge|1\n"
    );
    assert_eq!(
        r.ok(&[
            "ps",
            "--format",
            "{{json .Labels}} {{.Labels | printf \"%q\"}}"
        ]),
        "\"a=1,b=2,com.example.x=y\" \"a=1,b=2,com.example.x=y\"\n"
    );
    // `json`: every field of the row, one object per line.
    let row: serde_json::Value =
        serde_json::from_str(r.ok(&["ps", "--format", "json"]).trim()).unwrap();
    assert_eq!(row["Names"], "fmt-web");
    assert_eq!(row["Labels"], "a=1,b=2,com.example.x=y");
    assert_eq!(row["Mounts"], "fmtdata");
    // `table` alone is Docker's default table.
    let out = r.ok(&["ps", "--format", "table"]);
    assert!(
        out.starts_with("CONTAINER ID   IMAGE     COMMAND       CREATED"),
        "{out}"
    );
    // A field that does not exist is Go's error, in one line, even with nothing listed.
    let (code, out, err) = r.run(&["ps", "--filter", "name=none", "--format", "{{.Nope}}"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert_eq!(
        err.trim(),
        "hako: template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope"
    );
    let (code, _, err) = r.run(&["ps", "--format", "{{.Names"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "hako: template parsing error: template: :1: unclosed action"
    );
    r.ok(&["rm", "-f", "-v", "fmt-web", "fmt-db"]);
    r.ok(&["volume", "rm", "fmtdata"]);
}

#[test]
fn inspect_prints_maps_and_arrays_as_go() {
    let r = Root::with_busybox();
    r.ok(&[
        "create", "--name", "fmt-insp", "-l", "b=2", "-l", "a=1", "-e", "X=1", "busybox", "sh",
        "-c", "true",
    ]);
    let f = |t: &str| r.ok(&["inspect", "-f", t, "fmt-insp"]);
    // Rust's debug syntax before: {"a": String("1"), …} and [String("sh"), …].
    assert_eq!(f("{{.Config.Labels}}"), "map[a:1 b:2]\n");
    assert_eq!(f("{{.Config.Cmd}}"), "[sh -c true]\n");
    assert_eq!(f("{{json .Config.Cmd}}"), "[\"sh\",\"-c\",\"true\"]\n");
    assert_eq!(
        f("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"),
        "a=1;b=2;\n"
    );
    assert_eq!(
        f("{{index .Config.Labels \"b\"}}|{{index .Config.Labels \"zz\"}}|"),
        "2||\n"
    );
    assert_eq!(f("{{.Config.Labels.zz}}"), "<no value>\n");
    assert_eq!(
        f("{{printf \"%5s|%-5s|%%\" \"ab\" \"cd\"}}"),
        "   ab|cd   |%\n"
    );
    assert_eq!(
        f("{{if eq .State.Status \"created\" \"exited\"}}stopped{{else}}up{{end}}"),
        "stopped\n"
    );
    assert_eq!(
        f("{{join .Config.Cmd \" \"}} {{upper .State.Status}}"),
        "sh -c true CREATED\n"
    );
    assert_eq!(
        f("{{range .Config.Env}}{{if eq (index (split . \"=\") 0) \"X\"}}{{.}}{{end}}{{end}}"),
        "X=1\n"
    );
    let (code, _, err) = r.run(&["inspect", "-f", "{{.Nope}}", "fmt-insp"]);
    assert_eq!(code, 1);
    assert!(err.contains("can't evaluate field Nope"), "{err}");
    r.ok(&["rm", "fmt-insp"]);
}

#[test]
fn list_formats_of_images_networks_and_volumes() {
    let r = Root::with_busybox();
    assert_eq!(
        r.ok(&["images", "--format", "table {{.Repository}}\\t{{.Tag}}"]),
        "REPOSITORY   TAG\nbusybox      latest\n"
    );
    assert_eq!(
        r.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest\n"
    );
    r.ok(&[
        "network", "create", "--label", "tier=db", "--label", "a=b", "fmt-net",
    ]);
    assert_eq!(
        r.ok(&[
            "network",
            "ls",
            "--filter",
            "name=fmt-net",
            "--format",
            "table {{.Name}}\\t{{.Labels}}\\t{{.Label \"tier\"}}",
        ]),
        // The header stops at `.Label`, which has no header (as in Docker).
        "NAME      LABELS        \nfmt-net   a=b,tier=db   db\n"
    );
    r.ok(&["volume", "create", "--label", "k=v", "fmt-vol"]);
    assert_eq!(
        r.ok(&[
            "volume",
            "ls",
            "--filter",
            "name=fmt-vol",
            "--format",
            "{{.Name}} {{.Label \"k\"}} {{.Labels}} {{.Label \"zz\"}}|{{.Links}} {{.Size}}",
        ]),
        "fmt-vol v k=v |N/A N/A\n"
    );
    assert_eq!(
        r.ok(&[
            "volume",
            "ls",
            "--filter",
            "name=fmt-vol",
            "--format",
            "table {{.Name}}\\t{{.Driver}}"
        ]),
        "VOLUME NAME   DRIVER\nfmt-vol       local\n"
    );
    assert_eq!(
        r.ok(&[
            "system",
            "df",
            "--format",
            "table {{.Type}}\\t{{.TotalCount}}"
        ])
        .lines()
        .next(),
        Some("TYPE            TOTAL")
    );
    r.ok(&["network", "rm", "fmt-net"]);
    r.ok(&["volume", "rm", "fmt-vol"]);
}

/// Issue 21, defect 10: the live `stats` table wrote its clear-screen escape into the first
/// header cell, where it counted as seven characters: the header stood off its rows.
#[test]
fn live_stats_frames_are_aligned() {
    let r = Root::with_busybox();
    r.ok(&["run", "-d", "--name", "fmt-st", "busybox", "sleep", "100"]);
    let mut child = r
        .cmd(&["stats", "fmt-st"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<&str> = text
        .split("\x1b[2J\x1b[H")
        .filter(|f| !f.is_empty())
        .collect();
    assert!(!frames.is_empty(), "{text:?}");
    for f in frames.iter().filter(|f| f.ends_with('\n')) {
        let lines: Vec<&str> = f.lines().collect();
        assert_eq!(lines.len(), 2, "{f:?}");
        assert!(lines[0].starts_with("CONTAINER ID   NAME"), "{f:?}");
        assert_eq!(lines[0].find("NAME"), lines[1].find("fmt-st"), "{f:?}");
        assert_eq!(
            lines[0].find("PIDS"),
            lines[1].rfind(' ').map(|i| i + 1),
            "{f:?}"
        );
    }
    // `--no-stream` prints one frame, without the escape.
    let once = r.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "table {{.Name}}\\t{{.PIDs}}",
        "fmt-st",
    ]);
    assert_eq!(once, "NAME      PIDS\nfmt-st    1\n");
    r.ok(&["rm", "-f", "fmt-st"]);
}
