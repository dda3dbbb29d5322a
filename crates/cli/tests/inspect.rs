//! inspect, ps filters and formats, pause/unpause, rename, diff, top, stats, container prune.

mod common;

use common::Root;

#[test]
fn inspect_is_docker_shaped_and_templated() {
    let r = Root::with_busybox();
    let id = r.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-m",
        "64m",
        "-e",
        "A=1",
        "-l",
        "tier=front",
        "busybox",
        "sleep",
        "100",
    ]);
    let id = id.trim();
    let doc: serde_json::Value = serde_json::from_str(&r.ok(&["inspect", "web"])).unwrap();
    let c = &doc[0];
    assert_eq!(c["Id"], id);
    assert_eq!(c["Name"], "/web");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Running"], true);
    assert!(c["State"]["Pid"].as_i64().unwrap() > 1);
    assert_eq!(c["Path"], "sleep");
    assert_eq!(c["Args"][0], "100");
    assert_eq!(c["HostConfig"]["Memory"], 64 << 20);
    // Docker's configured environment: the container's, then the image's it does not set (an
    // imported busybox has none); not what the runtime adds (HOSTNAME, HOME, a default PATH).
    let env: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(env[0], "A=1", "{env:?}");
    assert!(
        !env.iter()
            .any(|e| e.starts_with("HOSTNAME=") || e.starts_with("HOME=")),
        "{env:?}"
    );
    assert_eq!(c["Config"]["Labels"]["tier"], "front");
    assert!(c["Image"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        r.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.Config.Hostname}}",
            "web"
        ]),
        format!("running {}\n", &id[..12])
    );
    assert_eq!(
        r.ok(&["inspect", "--format", "{{json .Config.Labels}}", "web"]),
        "{\"tier\":\"front\"}\n"
    );
    let (code, _, err) = r.run(&["inspect", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such object: nosuch"), "{err}");

    r.ok(&["pause", "web"]);
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "paused\n"
    );
    // ps says so as Docker's does: State "paused", Status "Up … (Paused)".
    let ps = r.ok(&["ps", "--format", "{{.State}}|{{.Status}}"]);
    assert!(
        ps.starts_with("paused|Up ") && ps.ends_with(" (Paused)\n"),
        "{ps}"
    );
    assert!(r.ok(&["ps"]).contains(" (Paused) "));
    let (code, _, err) = r.run(&["pause", "web"]);
    assert_eq!(code, 1);
    assert!(err.contains("already paused"), "{err}");
    r.ok(&["unpause", "web"]);
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "running\n"
    );

    let top = r.ok(&["top", "web"]);
    assert!(
        top.contains("sleep 100") && top.lines().count() == 2,
        "{top}"
    );
    // ps options that select processes themselves (`aux`) still show only the container's.
    let top = r.ok(&["top", "web", "aux"]);
    assert!(
        top.starts_with("USER") && top.contains("sleep 100") && top.lines().count() == 2,
        "{top}"
    );
    let stats = r.ok(&["stats", "--no-stream", "web"]);
    assert!(
        stats.starts_with("CONTAINER ID")
            && stats.contains("MEM USAGE / LIMIT")
            && stats.contains("/ 64MiB"),
        "{stats}"
    );

    r.ok(&["rename", "web", "web2"]);
    assert!(r.ok(&["ps"]).contains("web2"));
    r.ok(&["rm", "-f", "web2"]);
}

#[test]
fn ps_filters_formats_and_prune() {
    let r = Root::with_busybox();
    r.ok(&["run", "--name", "ok0", "busybox", "true"]);
    assert_eq!(
        r.run(&["run", "--name", "bad3", "busybox", "sh", "-c", "exit 3"])
            .0,
        3
    );
    r.ok(&["run", "-d", "--name", "live", "busybox", "sleep", "100"]);
    assert_eq!(r.ok(&["ps", "--format", "{{.Names}}"]), "live\n");
    assert_eq!(
        r.ok(&[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--format",
            "{{.Names}}"
        ]),
        "bad3\nok0\n"
    );
    assert_eq!(
        r.ok(&["ps", "-a", "--filter", "exited=3", "--format", "{{.Names}}"]),
        "bad3\n"
    );
    assert_eq!(
        r.ok(&[
            "ps",
            "--filter",
            "name=ok",
            "-a",
            "--format",
            "{{.Names}} {{.State}}"
        ]),
        "ok0 exited\n"
    );
    assert_eq!(r.ok(&["ps", "-l", "--format", "{{.Names}}"]), "live\n");
    assert_eq!(
        r.ok(&["ps", "-n", "2", "--format", "{{.Names}}"]),
        "live\nbad3\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(r.ok(&["ps", "--format", "json"]).trim()).unwrap();
    assert_eq!(json["Names"], "live");
    assert_eq!(r.run(&["ps", "--filter", "bogus=1"]).0, 1);

    let out = r.ok(&["container", "prune", "-f"]);
    assert!(
        out.starts_with("Deleted Containers:\n") && out.lines().count() == 4,
        "{out}"
    );
    assert_eq!(r.ok(&["ps", "-a", "--format", "{{.Names}}"]), "live\n");
    r.ok(&["rm", "-f", "live"]);
}

#[test]
fn diff_shows_the_writable_layer() {
    let r = Root::with_busybox();
    r.ok(&[
        "run",
        "--name",
        "changer",
        "busybox",
        "sh",
        "-c",
        "touch /newfile; rm /etc/group; mkdir /tmp/d",
    ]);
    let diff = r.ok(&["diff", "changer"]);
    let lines: Vec<&str> = diff.lines().collect();
    assert!(lines.contains(&"A /newfile"), "{diff}");
    assert!(lines.contains(&"D /etc/group"), "{diff}");
    assert!(
        lines.contains(&"C /tmp") && lines.contains(&"A /tmp/d"),
        "{diff}"
    );
    assert!(
        !lines.contains(&"A /etc/hosts"),
        "hako's own mount points are hidden: {diff}"
    );
    r.ok(&["rm", "changer"]);
}

#[test]
fn info_counts_and_describes_the_host() {
    let r = Root::with_busybox();
    r.ok(&["run", "--name", "stopped", "busybox", "true"]);
    let info = r.ok(&["info"]);
    assert!(
        info.contains(" Containers: 1\n")
            && info.contains("  Stopped: 1\n")
            && info.contains(" Images: 1\n"),
        "{info}"
    );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(
        info.contains(&format!(" Kernel Version: {}", kernel.trim())),
        "{info}"
    );
    assert!(info.contains(" Cgroup Version: "), "{info}");
    assert_eq!(
        r.ok(&["info", "--format", "{{.Containers}} {{.Images}}"]),
        "1 1\n"
    );
    r.ok(&["rm", "stopped"]);
}

#[test]
fn system_df_and_prune() {
    let r = Root::with_busybox();
    r.ok(&[
        "run",
        "--name",
        "done",
        "busybox",
        "sh",
        "-c",
        "echo data > /file",
    ]);
    r.ok(&["commit", "done", "snap:1"]);
    let df = r.ok(&["system", "df"]);
    assert!(
        df.starts_with("TYPE")
            && df.contains("Images")
            && df.contains("Containers")
            && df.contains("Local Volumes"),
        "{df}"
    );
    let out = r.ok(&["system", "prune", "-a", "-f"]);
    assert!(
        out.contains("Deleted Containers:") && out.contains("Deleted Images:"),
        "{out}"
    );
    assert!(
        out.contains("untagged: snap:1") && out.contains("untagged: busybox:latest"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("MB"), "{out}");
    assert_eq!(r.ok(&["images", "-q"]), "");
    assert_eq!(r.ok(&["ps", "-aq"]), "");
}

#[test]
fn events_record_the_lifecycle() {
    let r = Root::with_busybox();
    assert_eq!(
        r.run(&["run", "--name", "evt", "busybox", "sh", "-c", "exit 2"])
            .0,
        2
    );
    r.ok(&["rm", "evt"]);
    let ev = r.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "container=evt",
    ]);
    let actions: Vec<&str> = ev
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(actions, vec!["create", "start", "die", "destroy"], "{ev}");
    assert!(ev.contains("exitCode=2"), "{ev}");
    let fmt = r.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "event=die",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{.Status}} {{gt .TimeNano 0}}",
    ]);
    assert_eq!(fmt, "die evt die true\n");
}

#[test]
fn events_of_images_volumes_networks_and_container_changes() {
    let r = Root::with_busybox();
    r.ok(&["tag", "busybox", "evt-img:1"]);
    let ctx = r.path().join("evt-ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nLABEL evt=1\n").unwrap();
    r.ok(&["build", "-q", "-t", "evt-built:1", ctx.to_str().unwrap()]);
    r.ok(&["volume", "create", "evt-vol"]);
    r.ok(&["network", "create", "evt-net"]);
    r.ok(&["create", "--name", "evt-c", "busybox", "true"]);
    r.ok(&["network", "connect", "evt-net", "evt-c"]);
    r.ok(&["network", "disconnect", "evt-net", "evt-c"]);
    r.ok(&["rename", "evt-c", "evt-c2"]);
    r.ok(&["update", "--restart", "on-failure", "evt-c2"]);
    r.ok(&["commit", "evt-c2", "evt-img:2"]);
    r.ok(&[
        "export",
        "-o",
        r.path().join("evt.tar").to_str().unwrap(),
        "evt-c2",
    ]);
    r.ok(&["rm", "evt-c2"]);
    r.ok(&["run", "-d", "--name", "evt-x", "busybox", "sleep", "60"]);
    assert_eq!(r.run(&["exec", "evt-x", "sh", "-c", "exit 3"]).0, 3);
    r.ok(&["rm", "-f", "evt-x"]);
    r.ok(&["rmi", "evt-img:1", "evt-img:2", "evt-built:1"]);
    r.ok(&["volume", "rm", "evt-vol"]);
    r.ok(&["network", "rm", "evt-net"]);
    // Every event of the last minute that passes `filters`, in `format`.
    let events_as = |format: &str, filters: &[&str]| {
        let mut args = vec![
            "events", "--since", "1m", "--until", "0s", "--format", format,
        ];
        for f in filters {
            args.extend(["--filter", f]);
        }
        r.ok(&args)
    };
    // A volume's actor is its name; the others name themselves in an attribute.
    let events = |filters: &[&str]| {
        events_as(
            "{{.Type}} {{.Action}} {{if eq .Type \"volume\"}}{{.Actor.ID}}{{else}}{{.Actor.Attributes.name}}{{end}}",
            filters,
        )
    };
    let all = events(&[]);
    for want in [
        "image tag evt-img:1",
        "image tag evt-built:1",
        "volume create evt-vol",
        "network create evt-net",
        "network connect evt-net",
        "network disconnect evt-net",
        "container rename evt-c2",
        "container update evt-c2",
        "container commit evt-c2",
        "image tag evt-img:2",
        "container export evt-c2",
        "image untag evt-img:1",
        "image untag evt-img:2",
        "image delete sha256:",
        "volume destroy evt-vol",
        "network destroy evt-net",
    ] {
        assert!(all.contains(want), "{want:?} not in:\n{all}");
    }
    // Filters by type and by object.
    let images = events(&["type=image"]);
    assert!(images.lines().all(|l| l.starts_with("image ")), "{images}");
    assert_eq!(images.matches("image untag").count(), 3, "{images}");
    let vol = events(&["volume=evt-vol"]);
    assert_eq!(vol, "volume create evt-vol\nvolume destroy evt-vol\n");
    let net = events(&["network=evt-net", "event=connect"]);
    assert_eq!(net, "network connect evt-net\n");
    let renamed = events_as("{{.Actor.Attributes.oldName}}", &["event=rename"]);
    assert_eq!(renamed, "/evt-c\n");
    // exec's events, matched by their action before the detail as Docker matches them.
    let execs = events_as(
        "{{.Action}}|{{.Actor.Attributes.exitCode}}",
        &["container=evt-x"],
    );
    let lines: Vec<&str> = execs.lines().filter(|l| l.starts_with("exec")).collect();
    assert_eq!(
        lines,
        [
            "exec_create: sh -c exit 3|<no value>",
            "exec_start: sh -c exit 3|<no value>",
            "exec_die|3"
        ],
        "{execs}"
    );
    let started = events_as("{{.Actor.Attributes.name}}", &["event=exec_start"]);
    assert_eq!(started, "evt-x\n");
}

#[test]
fn shell_completions_are_generated() {
    let r = Root::new();
    // Each script calls hako back with HAKO_COMPLETE=SHELL for the candidates.
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = r.ok(&["completion", shell]);
        assert!(
            script.contains("hako") && script.contains("HAKO_COMPLETE") && script.contains(shell),
            "{shell}: {script}"
        );
    }
}

#[test]
fn stats_net_and_block_io_columns_and_formats() {
    let r = Root::with_busybox();
    // Traffic to the bridge's gateway is counted on the container's eth0, in both directions.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "ping -c 3 -W 1 $(ip route | awk '/default/ {print $3}'); echo pinged; sleep 100",
    ]);
    r.ok(&[
        "run",
        "-d",
        "--name",
        "hostnet",
        "--network",
        "host",
        "busybox",
        "sleep",
        "100",
    ]);
    assert!(common::wait_for(15, || r
        .ok(&["logs", "talker"])
        .contains("pinged")));
    let line = r.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}",
        "talker",
        "hostnet",
    ]);
    let rows: Vec<Vec<&str>> = line.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 2, "{line}");
    assert_eq!(rows[0][0], "talker");
    let (rx, tx) = rows[0][1].split_once(" / ").unwrap();
    assert!(rx != "0B" && tx != "0B", "no traffic counted: {line}");
    // Docker shows nothing for the host's interfaces.
    assert_eq!(rows[1][1], "0B / 0B", "{line}");
    assert!(
        rows[0][2].contains(" / ") && rows[0][2].ends_with('B'),
        "{line}"
    );
    assert_eq!(rows[1][3], "1");

    let json = r.ok(&["stats", "--no-stream", "--format", "json", "talker"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    for k in [
        "BlockIO",
        "CPUPerc",
        "Container",
        "ID",
        "MemPerc",
        "MemUsage",
        "Name",
        "NetIO",
        "PIDs",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {json}");
    }
    let table = r.ok(&["stats", "--no-stream"]);
    let talker = table.lines().find(|l| l.contains("talker")).unwrap();
    assert!(!talker.contains("--"), "{table}");
    r.ok(&["rm", "-f", "talker", "hostnet"]);
}

#[test]
fn ps_s_shows_the_writable_layer_and_virtual_size() {
    let r = Root::with_busybox();
    r.ok(&[
        "run",
        "--name",
        "sz",
        "busybox",
        "sh",
        "-c",
        "head -c 250000 /dev/zero > /big",
    ]);
    let table = r.ok(&["ps", "-as"]);
    assert!(table.lines().next().unwrap().ends_with("SIZE"), "{table}");
    let row = table.lines().find(|l| l.contains("sz")).unwrap();
    // The virtual size is the image's plus the 250kB written (both rounded to 3 digits).
    let mb = |s: &str| s.trim().trim_end_matches("MB").parse::<f64>().unwrap();
    let images = r.ok(&["images", "busybox"]);
    let image = mb(images
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap());
    let virt = row
        .split("(virtual ")
        .nth(1)
        .and_then(|v| v.strip_suffix(')'))
        .unwrap();
    assert!(row.contains("250kB (virtual "), "{row}");
    assert!(
        (mb(virt) - image - 0.25).abs() < 0.011,
        "{row}, image {image}MB"
    );
    let size = r.ok(&["ps", "-a", "--format", "{{.Size}}"]);
    assert!(
        size.starts_with("250kB (virtual ") && size.ends_with("B)\n"),
        "{size}"
    );
    // Without -s the column is not computed or shown.
    assert!(!r.ok(&["ps", "-a"]).contains("SIZE"));
    r.ok(&["rm", "sz"]);
}

#[test]
fn system_df_v_lists_images_containers_and_volumes() {
    let r = Root::with_busybox();
    r.ok(&["volume", "create", "dfv"]);
    r.ok(&[
        "run",
        "--name",
        "dfc",
        "-v",
        "dfv:/data",
        "busybox",
        "sh",
        "-c",
        "head -c 3000 /dev/zero > /data/f; head -c 1000 /dev/zero > /g",
    ]);
    let out = r.ok(&["system", "df", "-v"]);
    let sections: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with("space usage:"))
        .collect();
    assert_eq!(
        sections,
        [
            "Images space usage:",
            "Containers space usage:",
            "Local Volumes space usage:"
        ],
        "{out}"
    );
    let busybox = out.lines().find(|l| l.starts_with("busybox")).unwrap();
    assert!(
        busybox.trim_end().ends_with(" 1"),
        "one container uses it: {out}"
    );
    let dfc = out.lines().find(|l| l.ends_with("dfc")).unwrap();
    let cols: Vec<&str> = dfc.split("   ").filter(|c| !c.is_empty()).collect();
    assert!(
        cols.contains(&" 1") || cols.iter().any(|c| c.trim() == "1"),
        "{dfc}"
    );
    assert!(cols.iter().any(|c| c.trim() == "1kB"), "{dfc}");
    let vol = out.lines().find(|l| l.starts_with("dfv")).unwrap();
    assert_eq!(
        vol.split_whitespace().collect::<Vec<_>>(),
        ["dfv", "1", "3kB"]
    );
    r.ok(&["rm", "dfc"]);
    r.ok(&["volume", "rm", "dfv"]);
}

/// The configuration is stored typed: what `create` was given reads back from inspect as
/// Docker shows it, after a start too (which uses the stored configuration as it is).
#[test]
fn create_flags_read_back_typed() {
    let r = Root::with_busybox();
    r.ok(&[
        "create",
        "--name",
        "typed",
        "-t",
        "--health-cmd",
        "true",
        "--health-interval",
        "1m30s",
        "--health-retries",
        "3",
        "--tmpfs",
        "/run:size=1m",
        "--restart",
        "on-failure:3",
        "--cpus",
        "1.5",
        "--ulimit",
        "nofile=1024:2048",
        "--add-host",
        "db:10.0.0.5",
        "--entrypoint",
        "",
        "busybox",
        "sleep",
        "100",
    ]);
    let check = |when: &str| {
        let doc: serde_json::Value = serde_json::from_str(&r.ok(&["inspect", "typed"])).unwrap();
        let c = &doc[0];
        let h = &c["Config"]["Healthcheck"];
        assert_eq!(
            h["Test"],
            serde_json::json!(["CMD-SHELL", "true"]),
            "{when}"
        );
        assert_eq!(h["Interval"], 90_000_000_000i64, "{when}");
        assert_eq!(h["Retries"], 3, "{when}");
        assert!(h.get("Timeout").is_none(), "{when}: {h}");
        assert_eq!(c["Config"]["Tty"], true, "{when}");
        assert_eq!(c["Config"]["Entrypoint"], serde_json::json!([]), "{when}");
        let hc = &c["HostConfig"];
        assert_eq!(hc["Tmpfs"]["/run"], "size=1m", "{when}");
        assert_eq!(hc["RestartPolicy"]["Name"], "on-failure", "{when}");
        assert_eq!(hc["RestartPolicy"]["MaximumRetryCount"], 3, "{when}");
        assert_eq!(hc["NanoCpus"], 1_500_000_000i64, "{when}");
        assert_eq!(
            hc["Ulimits"],
            serde_json::json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}]),
            "{when}"
        );
        assert_eq!(
            hc["ExtraHosts"],
            serde_json::json!(["db:10.0.0.5"]),
            "{when}"
        );
    };
    check("created");
    r.ok(&["start", "typed"]);
    check("started");
    assert_eq!(
        // -w: the container's own line names its hostname, a short id that may begin "db".
        r.ok(&["exec", "typed", "grep", "-w", "db", "/etc/hosts"])
            .trim(),
        "10.0.0.5\tdb"
    );
    r.ok(&["rm", "-f", "typed"]);
}

/// What the shell's completion asks hako (`HAKO_COMPLETE=bash hako -- hako WORDS…`, as the script
/// `hako completion bash` installs does): the candidates for the last word.
fn complete(r: &Root, words: &[&str]) -> Vec<String> {
    let out = r
        .cmd(&[])
        .arg("--")
        .arg("hako")
        .args(words)
        .env("HAKO_COMPLETE", "bash")
        .env("_CLAP_IFS", "\n")
        .env("_CLAP_COMPLETE_INDEX", words.len().to_string())
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Completion knows the root's names: containers where a container goes, images, networks and
/// volumes likewise; commands and flags as clap knows them; the script it installs calls hako
/// back.
#[test]
fn shell_completion_offers_the_roots_names() {
    let r = Root::with_busybox();
    r.ok(&["create", "--name", "webby", "busybox", "true"]);
    r.ok(&["volume", "create", "datavol"]);
    assert!(complete(&r, &["rm", ""]).contains(&"webby".to_string()));
    assert_eq!(complete(&r, &["exec", "-it", "we"]), ["webby"]);
    assert_eq!(complete(&r, &["run", "busy"]), ["busybox:latest"]);
    assert!(complete(&r, &["volume", "rm", ""]).contains(&"datavol".to_string()));
    let nets = complete(&r, &["network", "inspect", ""]);
    assert!(nets.contains(&"host".to_string()), "{nets:?}");
    let cmds = complete(&r, &["re"]);
    assert!(
        cmds.contains(&"restart".to_string()) && cmds.contains(&"rename".to_string()),
        "{cmds:?}"
    );
    assert!(
        !cmds.iter().any(|c| c.starts_with("api")),
        "hidden commands: {cmds:?}"
    );
    let script = r.ok(&["completion", "bash"]);
    assert!(script.contains("HAKO_COMPLETE=\"bash\""), "{script}");
    assert!(script.contains("complete -o nospace"), "{script}");
    r.ok(&["rm", "webby"]);
    r.ok(&["volume", "rm", "datavol"]);
}
