//! Kubernetes' path, for real: containerd (Debian's package, its built-in CRI plugin) with
//! `hako-runtime` as a runtime handler (`io.containerd.runc.v2`, `BinaryName`), CNI from
//! Debian's containernetworking-plugins (bridge, host-local, loopback) and a pause image built
//! here and served by a private registry. The test talks to the CRI socket as kubelet does:
//! gRPC for the API, websockets to containerd's streaming server for exec, attach and
//! port-forward.
//!
//! Everything is private to the test: containerd's socket, root, state, config and CNI
//! configuration live in a temporary directory, the bridge and subnet are named for this
//! process, the pods' cgroups nest under the test's own cgroup. After the pod is removed
//! nothing may be left: no mount, cgroup, network namespace, veth, runtime state or shim.
//!
//! `bench_cri_pods` (ignored; `bench/cri.sh` runs it) times RunPodSandbox + CreateContainer +
//! StartContainer with hako-runtime against runc as the handler, and creates and removes many
//! pods counting failures and leftovers.

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{self as cri};
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

fn hako_runtime() -> PathBuf {
    // The benchmark points at the release binary that scripts/build-release.sh makes.
    std::env::var_os("HAKO_RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hako-runtime")))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256_file(path: &Path) -> String {
    // The layers are a few MB.
    let data = std::fs::read(path).unwrap();
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)))
}

/// An OCI image layout holding one image of one uncompressed layer, tagged `tag`.
fn oci_layout(dir: &Path, layer: &Path, config: Value, tag: &str) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let d = format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)));
        std::fs::write(blobs.join(&d[7..]), data).unwrap();
        (d, data.len())
    };
    let layer_digest = sha256_file(layer);
    std::fs::copy(layer, blobs.join(&layer_digest[7..])).unwrap();
    let layer_size = std::fs::metadata(layer).unwrap().len();
    let mut config = config;
    config["architecture"] = json!("amd64");
    config["os"] = json!("linux");
    config["rootfs"] = json!({"type": "layers", "diff_ids": [layer_digest]});
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": tag}}]
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

/// The pause program every pod's sandbox container runs: a static binary that sleeps until
/// SIGINT or SIGTERM and reaps whatever is orphaned to it.
const PAUSE_C: &str = r#"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
"#;

/// The private registry, serving the pause image and busybox.
struct Images {
    registry: hako_testkit::Registry,
    pause: String,
    busybox: String,
}

impl Images {
    fn build(work: &Path) -> Images {
        let registry = hako_testkit::Registry::start();
        // pause: compiled here, one static file in a layer of its own.
        let src = work.join("pause.c");
        std::fs::write(&src, PAUSE_C).unwrap();
        let root = work.join("pause-root");
        std::fs::create_dir_all(&root).unwrap();
        run(Command::new(hako_testkit::need("gcc"))
            .args(["-static", "-Os", "-s", "-o"])
            .arg(root.join("pause"))
            .arg(&src));
        let layer = work.join("pause-layer.tar");
        run(Command::new("tar")
            .args([
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--mtime=@0",
                "-cf",
            ])
            .arg(&layer)
            .arg("-C")
            .arg(&root)
            .arg("pause"));
        let layout = work.join("pause-oci");
        oci_layout(
            &layout,
            &layer,
            json!({"config": {"Entrypoint": ["/pause"]}}),
            "1",
        );
        registry.skopeo_push(&layout, "1", "hako-test/pause:1", &[]);

        // busybox: the suite's test image, which is a root filesystem tarball already.
        let tar = hako_testkit::images_dir().join("busybox.tar");
        assert!(tar.is_file(), "{} is missing", tar.display());
        let layout = work.join("busybox-oci");
        oci_layout(
            &layout,
            &tar,
            json!({"config": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}}),
            "1",
        );
        registry.skopeo_push(&layout, "1", "hako-test/busybox:1", &[]);
        Images {
            pause: registry.name("hako-test/pause:1"),
            busybox: registry.name("hako-test/busybox:1"),
            registry,
        }
    }
}

/// A private containerd with the CRI plugin, hako-runtime and runc as handlers, and a CNI
/// bridge network of its own.
struct Containerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bridge: String,
    /// The pods' cgroup parent, relative: it nests under the test's own cgroup.
    cgroup_parent: String,
    /// libcni's result cache before this containerd started.
    cni_before: BTreeSet<String>,
}

impl Containerd {
    fn start(images: &Images) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("hako-cri-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = dir.path();
        // Names and subnet by process and instance: tests of this file may run at once.
        static INSTANCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = INSTANCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        let bridge = format!("hkcri{tag}");
        let net = format!("hako-cri-{tag}");
        // 10.224-254.x.0/24, away from the 10.0-10.200 ranges hosts often use.
        let k = pid.wrapping_mul(7).wrapping_add(n);
        let subnet = format!("10.{}.{}.0/24", 224 + k % 31, (k / 31) % 256);
        std::fs::create_dir_all(d.join("net.d")).unwrap();
        let conflist = json!({
            "cniVersion": "0.4.0",
            "name": &net,
            "plugins": [{
                "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
                "hairpinMode": true,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                         "dataDir": d.join("ipam")}
            }]
        });
        std::fs::write(d.join("net.d/10-hako.conflist"), conflist.to_string()).unwrap();
        let r = d.display();
        let config = format!(
            r#"version = 2
root = "{r}/root"
state = "{r}/state"
[grpc]
  address = "{r}/sock"
[ttrpc]
  address = "{r}/sock.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{r}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # Kubelet gives the pause container -998; lowering a score needs CAP_SYS_RESOURCE, which
  # some hosts (this VM's bounding set) withhold from root. containerd then keeps every
  # score at or above its own, as for rootless nodes; runc would fail the same way.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "hako"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hako]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hako.options]
        BinaryName = "{hako}"
        Root = "{r}/hako-runtime"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{r}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{r}/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:{port}"]
    endpoint = ["http://127.0.0.1:{port}"]
"#,
            pause = images.pause,
            hako = hako_runtime().display(),
            runc = hako_testkit::need("runc").display(),
            port = images.registry.port,
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new(hako_testkit::need("containerd"))
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            child: Some(child),
            bridge,
            cgroup_parent: format!("hako-cri-{tag}"),
            cni_before: cni_results(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.sock().exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// hako-runtime's state root, as the shim passes it (`--root`): the handler's `Root`
    /// and the CRI plugin's containerd namespace.
    fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("hako-runtime/k8s.io")
    }

    /// Stops containerd (the shims of removed pods are gone by then) and checks that no
    /// process of this containerd is left.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Cached CNI results that were not there when this containerd started.
    fn new_cni_results(&self) -> Vec<String> {
        cni_results()
            .difference(&self.cni_before)
            .cloned()
            .collect()
    }

    /// Processes (shims) whose command line names this containerd's directory.
    fn own_processes(&self) -> Vec<String> {
        let d = self.dir.path().to_string_lossy().into_owned();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_err() || name == std::process::id().to_string() {
                continue;
            }
            if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(&d) {
                    out.push(format!("{name}: {cmd}"));
                }
            }
        }
        out
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if self.child.is_some() && failed {
            // A failed test may have left pods: take them down so no shim or container
            // outlives the test.
            if let Ok(mut cri) = std::panic::catch_unwind(|| Cri::connect(&self.sock())) {
                cri.remove_all_pods();
            }
        }
        self.stop();
        if failed {
            // What a runtime that failed the shim may have left running: the shims (by
            // their command line) and the containers (by the pods' cgroups), all started
            // for this test.
            for p in self.own_processes() {
                if let Some(pid) = p.split(':').next().and_then(|p| p.parse().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            for dir in cgroup_dirs(&self.cgroup_parent) {
                for procs in walk_dirs(&dir).iter().map(|d| d.join("cgroup.procs")) {
                    for pid in std::fs::read_to_string(procs).unwrap_or_default().lines() {
                        if let Ok(pid) = pid.parse() {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(pid),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        hako_testkit::unmount_under(self.dir.path());
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        for dir in cgroup_dirs(&self.cgroup_parent) {
            // Deepest first: containers, pods, then ours.
            for d in walk_dirs(&dir).iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
        for name in self.new_cni_results() {
            let _ = std::fs::remove_file(Path::new(CNI_RESULTS).join(name));
        }
    }
}

/// `dir` and every directory below it, parents before children.
fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if dir.is_dir() {
        out.push(dir.to_path_buf());
        let mut i = 0;
        while i < out.len() {
            let entries = std::fs::read_dir(&out[i]).into_iter().flatten().flatten();
            let subdirs: Vec<PathBuf> = entries.map(|e| e.path()).filter(|p| p.is_dir()).collect();
            out.extend(subdirs);
            i += 1;
        }
    }
    out
}

/// Where libcni caches each attachment's result (containerd 1.6 cannot move it).
const CNI_RESULTS: &str = "/var/lib/cni/results";

fn cni_results() -> BTreeSet<String> {
    std::fs::read_dir(CNI_RESULTS)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// `rel` (relative to our own cgroup) in every v1 hierarchy and the unified one.
fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    own.lines()
        .filter_map(|line| {
            let mut f = line.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            let mount = if ctrl.is_empty() {
                "unified".to_owned()
            } else {
                ctrl.trim_start_matches("name=").to_owned()
            };
            Some(
                Path::new("/sys/fs/cgroup")
                    .join(mount)
                    .join(path.trim_start_matches('/'))
                    .join(rel),
            )
        })
        .filter(|p| p.parent().is_some_and(Path::exists))
        .collect()
}

/// A CRI client on containerd's socket, with a runtime to drive it from plain tests.
struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    fn connect(sock: &Path) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sock = sock.to_path_buf();
        let channel = rt
            .block_on(
                // A runtime that answers the shim wrongly makes containerd wait forever (a
                // pod that never stops): every call fails after a minute instead.
                tonic::transport::Endpoint::from_static("http://[::]:0")
                    .timeout(Duration::from_secs(60))
                    .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                        let sock = sock.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(sock).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                        }
                    })),
            )
            .expect("connect to containerd's CRI socket");
        Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        }
    }

    fn pull(&mut self, image: &str) {
        let req = cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        // containerd opens its socket before its CRI plugin is ready: until then it answers
        // "server is not initialized yet" (seen under load), which is waited out here.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match self.rt.block_on(self.images.pull_image(req.clone())) {
                Ok(_) => return,
                Err(e)
                    if e.message().contains("not initialized yet")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("pull {image}: {e}"),
            }
        }
    }

    fn pod_config(name: &str, cgroup_parent: &str) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "hako-test".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("{cgroup_parent}/{name}"),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run_pod(
        &mut self,
        config: &cri::PodSandboxConfig,
        handler: &str,
    ) -> Result<String, tonic::Status> {
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        Ok(self
            .rt
            .block_on(self.runtime.run_pod_sandbox(req))?
            .into_inner()
            .pod_sandbox_id)
    }

    fn pod_status(&mut self, id: &str) -> cri::PodSandboxStatus {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        self.rt
            .block_on(self.runtime.pod_sandbox_status(req))
            .unwrap()
            .into_inner()
            .status
            .unwrap()
    }

    fn create_container(
        &mut self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        config: cri::ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        Ok(self
            .rt
            .block_on(self.runtime.create_container(req))?
            .into_inner()
            .container_id)
    }

    fn start_container(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::StartContainerRequest {
            container_id: id.into(),
        };
        self.rt.block_on(self.runtime.start_container(req))?;
        Ok(())
    }

    fn container_status(&mut self, id: &str) -> cri::ContainerStatus {
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        self.rt
            .block_on(self.runtime.container_status(req))
            .unwrap()
            .into_inner()
            .status
            .unwrap()
    }

    fn exec_sync(&mut self, id: &str, cmd: &[&str]) -> cri::ExecSyncResponse {
        let req = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 20,
        };
        self.rt
            .block_on(self.runtime.exec_sync(req))
            .unwrap_or_else(|e| panic!("exec_sync {cmd:?}: {e}"))
            .into_inner()
    }

    fn stop_pod(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt.block_on(self.runtime.stop_pod_sandbox(req))?;
        Ok(())
    }

    fn remove_pod(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt.block_on(self.runtime.remove_pod_sandbox(req))?;
        Ok(())
    }

    fn remove_all_pods(&mut self) {
        let Ok(list) = self.rt.block_on(
            self.runtime
                .list_pod_sandbox(cri::ListPodSandboxRequest::default()),
        ) else {
            return;
        };
        for pod in list.into_inner().items {
            let _ = self.stop_pod(&pod.id);
            let _ = self.remove_pod(&pod.id);
        }
    }
}

fn busybox_container(image: &str, name: &str, args: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A websocket to containerd's streaming server, speaking Kubernetes' channel protocol:
/// every binary message starts with its channel number.
struct Stream {
    ws: tungstenite::WebSocket<TcpStream>,
}

/// What an exec or attach stream carried, by channel.
#[derive(Debug, Default)]
struct Streamed {
    stdout: String,
    stderr: String,
    /// The v4 status document sent on the error channel at the end.
    status: String,
}

impl Stream {
    fn open(url: &str, query: &str) -> Stream {
        use tungstenite::client::IntoClientRequest;
        let url = format!("{}{query}", url.replacen("http://", "ws://", 1));
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            tungstenite::http::HeaderValue::from_static("v4.channel.k8s.io"),
        );
        let host = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let tcp = TcpStream::connect(&host).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let (ws, _) =
            tungstenite::client(req, tcp).unwrap_or_else(|e| panic!("websocket {url}: {e}"));
        Stream { ws }
    }

    fn send(&mut self, channel: u8, data: &[u8]) {
        let mut msg = vec![channel];
        msg.extend_from_slice(data);
        self.ws.send(tungstenite::Message::binary(msg)).unwrap();
    }

    /// The next message: (channel, payload), or None once the server closed.
    fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            match self.ws.read() {
                Ok(tungstenite::Message::Binary(b)) if !b.is_empty() => {
                    return Some((b[0], b[1..].to_vec()))
                }
                Ok(tungstenite::Message::Close(_)) => return None,
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed)
                | Err(tungstenite::Error::AlreadyClosed) => return None,
                Err(e) => panic!("websocket: {e}"),
            }
        }
    }

    /// Reads until `stdout` contains `want` (or, with `want` None, until the stream ends).
    fn collect(&mut self, want: Option<&str>) -> Streamed {
        let mut out = Streamed::default();
        while let Some((ch, data)) = self.recv() {
            let text = String::from_utf8_lossy(&data);
            match ch {
                1 => out.stdout.push_str(&text),
                2 => out.stderr.push_str(&text),
                3 => out.status.push_str(&text),
                _ => {}
            }
            if want.is_some_and(|w| out.stdout.contains(w)) {
                break;
            }
        }
        out
    }
}

/// Everything a pod could leave behind on this host.
#[derive(Debug, PartialEq)]
struct Traces {
    mounts: Vec<String>,
    cgroups: Vec<String>,
    netns: Vec<String>,
    veths: Vec<String>,
    /// libcni's cached results of this test's pods (`/var/lib/cni/results/NET-ID-IF`, and
    /// the loopback network's).
    cni_results: Vec<String>,
    runtime_state: Vec<String>,
}

fn traces(c: &Containerd) -> Traces {
    let d = c.dir.path().to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&d))
        .map(str::to_owned)
        .collect();
    let mut cgroups = Vec::new();
    for dir in cgroup_dirs(&c.cgroup_parent) {
        // The parent holds one directory per pod (kubelet's pod cgroup); each must be empty.
        for pod in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            for leaf in std::fs::read_dir(pod.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if leaf.path().is_dir() {
                    cgroups.push(leaf.path().display().to_string());
                }
            }
        }
    }
    let list = |p: PathBuf| -> Vec<String> {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    Traces {
        mounts,
        cgroups,
        netns: list(c.dir.path().join("state/io.containerd.grpc.v1.cri/netns")),
        veths: list(PathBuf::from(format!("/sys/class/net/{}/brif", c.bridge))),
        cni_results: c.new_cni_results(),
        runtime_state: list(c.runtime_root())
            .into_iter()
            .filter(|n| !n.starts_with('@'))
            .collect(),
    }
}

fn no_traces() -> Traces {
    Traces {
        mounts: vec![],
        cgroups: vec![],
        netns: vec![],
        veths: vec![],
        cni_results: vec![],
        runtime_state: vec![],
    }
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn setup() -> (tempfile::TempDir, Images, Containerd, Cri) {
    assert!(nix::unistd::geteuid().is_root(), "run as root");
    for bin in [
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "gcc",
        "skopeo",
        "ip",
    ] {
        hako_testkit::need(bin);
    }
    for plugin in ["bridge", "host-local", "loopback"] {
        assert!(
            Path::new("/usr/lib/cni").join(plugin).is_file(),
            "/usr/lib/cni/{plugin} is missing: scripts/test.sh installs containernetworking-plugins"
        );
    }
    let work = tempfile::Builder::new()
        .prefix("hako-cri-images-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let images = Images::build(work.path());
    let ctrd = Containerd::start(&images);
    let mut cri = Cri::connect(&ctrd.sock());
    cri.pull(&images.busybox);
    (work, images, ctrd, cri)
}

#[test]
fn a_pod_runs_through_containerds_cri_with_hako_runtime() {
    let (_work, images, mut ctrd, mut cri) = setup();
    let log = |c: &Containerd| c.log();

    // HAKO_CRI_HANDLER=runc runs the same steps with runc, to compare.
    let handler = std::env::var("HAKO_CRI_HANDLER").unwrap_or_else(|_| "hako".into());
    // RunPodSandbox with the hako handler; the pod is ready and has an address on the bridge.
    let pod_config = Cri::pod_config("web", &ctrd.cgroup_parent);
    let pod = cri
        .run_pod(&pod_config, &handler)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", log(&ctrd)));
    let status = cri.pod_status(&pod);
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    let ip = status
        .network
        .as_ref()
        .map(|n| n.ip.clone())
        .unwrap_or_default();
    assert!(ip.starts_with("10."), "pod address {ip:?}");
    assert_eq!(status.runtime_handler, handler);

    // Two containers sharing the pod's network: a web server, and a shell that reads its
    // input (for attach) and from which the server is reached over localhost.
    let web = busybox_container(
        &images.busybox,
        "web",
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo pod-http-ok > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    let web = cri
        .create_container(&pod, &pod_config, web)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", log(&ctrd)));
    cri.start_container(&web)
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", log(&ctrd)));
    let mut echo = busybox_container(
        &images.busybox,
        "echo",
        &["sh", "-c", "while read l; do echo \"attach:$l\"; done"],
    );
    echo.stdin = true;
    let echo = cri.create_container(&pod, &pod_config, echo).unwrap();
    cri.start_container(&echo).unwrap();

    // The containers are hako-runtime's: its state root lists the sandbox and both.
    if handler == "hako" {
        let listed = run(Command::new(hako_runtime())
            .arg("--root")
            .arg(ctrd.runtime_root())
            .args(["list", "-q"]));
        let listed: BTreeSet<&str> = listed.lines().collect();
        for id in [&pod, &web, &echo] {
            assert!(listed.contains(id.as_str()), "{id} not in {listed:?}");
        }
        // And the leftover check below looks where a pod lives.
        assert_eq!(traces(&ctrd).runtime_state.len(), 3);
    }
    let live = traces(&ctrd);
    assert_eq!(
        (live.veths.len(), live.netns.len(), live.cni_results.len()),
        (1, 1, 2),
        "{live:?}"
    );
    assert!(
        live.cgroups.len() >= 3 && !live.mounts.is_empty(),
        "{live:?}"
    );

    // ExecSync: the pod's hostname (its UTS namespace, joined with a hostname), the web
    // server over localhost, exit codes and both output streams.
    let out = cri.exec_sync(&echo, &["hostname"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web\n");
    let body = wait_for("the web server over localhost", 20, || {
        let out = cri.exec_sync(&echo, &["wget", "-qO-", "http://127.0.0.1:8080/"]);
        (out.exit_code == 0).then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(body, "pod-http-ok\n");
    let out = cri.exec_sync(&echo, &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (out.exit_code, &out.stdout[..], &out.stderr[..]),
        (3, &b"out\n"[..], &b"err\n"[..])
    );

    // Exec through the streaming server, with input.
    let req = cri::ExecRequest {
        container_id: echo.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "read x; echo got:$x; echo e >&2; exit 5".into(),
        ],
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let url = cri
        .rt
        .block_on(cri.runtime.exec(req))
        .unwrap()
        .into_inner()
        .url;
    let mut s = Stream::open(&url, "");
    s.send(0, b"ping\n");
    let got = s.collect(None);
    assert_eq!(got.stdout, "got:ping\n", "{got:?}");
    assert_eq!(got.stderr, "e\n", "{got:?}");
    assert!(
        got.status.contains("NonZeroExitCode") && got.status.contains("\"5\""),
        "{got:?}"
    );

    // With a terminal, as `kubectl exec -it`: the shim hands hako-runtime a console socket
    // (`exec --console-socket`). (containerd 1.6 closes a terminal exec's output as soon as
    // its input ends, so a terminal without input loses output with any runtime.)
    let req = cri::ExecRequest {
        container_id: echo.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "tty; read x; echo \"got:$x\"".into(),
        ],
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let url = cri
        .rt
        .block_on(cri.runtime.exec(req))
        .unwrap()
        .into_inner()
        .url;
    let mut s = Stream::open(&url, "");
    let got = s.collect(Some("/dev/pts/"));
    assert!(got.stdout.starts_with("/dev/pts/"), "{got:?}");
    s.send(0, b"bye\n");
    let got = s.collect(None);
    assert!(got.stdout.contains("got:bye\r\n"), "{got:?}");
    assert!(got.status.contains("Success"), "{got:?}");

    // Attach to the echo container's stdin and stdout.
    let req = cri::AttachRequest {
        container_id: echo.clone(),
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let url = cri
        .rt
        .block_on(cri.runtime.attach(req))
        .unwrap()
        .into_inner()
        .url;
    let mut s = Stream::open(&url, "");
    s.send(0, b"hello\n");
    let got = s.collect(Some("attach:hello"));
    assert!(got.stdout.contains("attach:hello\n"), "{got:?}");
    drop(s);

    // PortForward to the pod's port 8080.
    let req = cri::PortForwardRequest {
        pod_sandbox_id: pod.clone(),
        port: vec![8080],
    };
    let url = cri
        .rt
        .block_on(cri.runtime.port_forward(req))
        .unwrap()
        .into_inner()
        .url;
    let mut s = Stream::open(&url, "?port=8080");
    // Each channel first carries its port number.
    let mut greeted = 0;
    while greeted < 2 {
        let (ch, data) = s.recv().expect("port-forward greeting");
        assert_eq!(data, 8080u16.to_le_bytes(), "channel {ch}");
        greeted += 1;
    }
    s.send(0, b"GET /index.html HTTP/1.0\r\n\r\n");
    let mut response = String::new();
    while !response.contains("pod-http-ok") {
        match s.recv() {
            Some((0, data)) => response.push_str(&String::from_utf8_lossy(&data)),
            Some((1, data)) if !data.is_empty() => {
                panic!("port-forward error: {}", String::from_utf8_lossy(&data))
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(
        response.starts_with("HTTP/1.") && response.contains("pod-http-ok"),
        "{response:?}"
    );
    drop(s);

    // ContainerStats.
    let req = cri::ContainerStatsRequest {
        container_id: web.clone(),
    };
    let stats = cri
        .rt
        .block_on(cri.runtime.container_stats(req))
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let ws = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map_or(0, |v| v.value);
    assert!(ws > 0, "{stats:?}");
    let cpu = stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref())
        .map_or(0, |v| v.value);
    assert!(cpu > 0, "{stats:?}");

    // UpdateContainerResources reaches the container's cgroup (`update -r -`).
    let req = cri::UpdateContainerResourcesRequest {
        container_id: echo.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    };
    cri.rt
        .block_on(cri.runtime.update_container_resources(req))
        .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}\n{}", log(&ctrd)));
    let out = cri.exec_sync(
        &echo,
        &[
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/cpu/cpu.shares",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n512\n", 64 << 20)
    );

    // A container killed by its memory limit is reported as OOMKilled.
    let mut hog = busybox_container(
        &images.busybox,
        "hog",
        &["sh", "-c", "sleep 1; tail /dev/zero"],
    );
    hog.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 24 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let hog = cri.create_container(&pod, &pod_config, hog).unwrap();
    cri.start_container(&hog).unwrap();
    let st = wait_for("the memory hog to be killed", 30, || {
        let st = cri.container_status(&hog);
        (st.state == cri::ContainerState::ContainerExited as i32).then_some(st)
    });
    assert_eq!(
        (st.reason.as_str(), st.exit_code),
        ("OOMKilled", 137),
        "{st:?}"
    );

    // StopPodSandbox and RemovePodSandbox take everything down.
    cri.stop_pod(&pod)
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", log(&ctrd)));
    let st = cri.container_status(&web);
    assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);
    cri.remove_pod(&pod)
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", log(&ctrd)));
    assert_eq!(traces(&ctrd), no_traces(), "{}", log(&ctrd));
    drop(cri);
    ctrd.stop();
    let left = wait_for("the shims to exit", 10, || {
        let p = ctrd.own_processes();
        p.is_empty().then_some(p)
    });
    assert!(left.is_empty());
}

/// Timed start of one pod (RunPodSandbox + CreateContainer + StartContainer) and its
/// removal, for `bench/cri.sh`. Returns the start's duration.
fn one_pod(
    cri: &mut Cri,
    c: &Containerd,
    image: &str,
    name: &str,
    handler: &str,
) -> Result<Duration, String> {
    let config = Cri::pod_config(name, &c.cgroup_parent);
    let t = Instant::now();
    let pod = cri
        .run_pod(&config, handler)
        .map_err(|e| format!("RunPodSandbox: {e}"))?;
    let ctr = cri
        .create_container(
            &pod,
            &config,
            busybox_container(image, "main", &["sleep", "3600"]),
        )
        .map_err(|e| format!("CreateContainer: {e}"));
    let started = ctr.and_then(|ctr| {
        cri.start_container(&ctr)
            .map_err(|e| format!("StartContainer: {e}"))
    });
    let took = t.elapsed();
    let stopped = cri
        .stop_pod(&pod)
        .map_err(|e| format!("StopPodSandbox: {e}"));
    let removed = cri
        .remove_pod(&pod)
        .map_err(|e| format!("RemovePodSandbox: {e}"));
    started.and(stopped).and(removed).map(|()| took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `bench/cri.sh`: HAKO_CRI_RUNS alternating pods per handler (hako, runc), then
/// HAKO_CRI_PODS pods with hako-runtime, counting failures and leftovers. Prints one JSON line.
#[test]
#[ignore = "benchmark: bench/cri.sh runs it"]
fn bench_cri_pods() {
    let runs: usize = std::env::var("HAKO_CRI_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let pods: usize = std::env::var("HAKO_CRI_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let (_work, images, ctrd, mut cri) = setup();
    // Warm both paths (image unpacking, first CNI call).
    for handler in ["hako", "runc"] {
        one_pod(
            &mut cri,
            &ctrd,
            &images.busybox,
            &format!("warm-{handler}"),
            handler,
        )
        .unwrap();
    }
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for i in 0..runs {
        for (k, handler) in ["hako", "runc"].iter().enumerate() {
            let t = one_pod(
                &mut cri,
                &ctrd,
                &images.busybox,
                &format!("b{i}-{handler}"),
                handler,
            )
            .unwrap_or_else(|e| panic!("{handler}: {e}\n{}", ctrd.log()));
            times[k].push(t);
        }
    }
    let mut failures = Vec::new();
    let t = Instant::now();
    for i in 0..pods {
        if let Err(e) = one_pod(&mut cri, &ctrd, &images.busybox, &format!("p{i}"), "hako") {
            failures.push(format!("pod {i}: {e}"));
        }
    }
    let churn = t.elapsed();
    let left = traces(&ctrd);
    let [hako, runc] = times;
    let (h, r) = (median(hako), median(runc));
    let line = json!({
        "runs": runs,
        "hako_ms": h.as_secs_f64() * 1000.0,
        "runc_ms": r.as_secs_f64() * 1000.0,
        "ratio": h.as_secs_f64() / r.as_secs_f64(),
        "pods": pods,
        "pods_seconds": churn.as_secs_f64(),
        "failures": failures,
        "leftovers": format!("{left:?}"),
        "clean": left == no_traces(),
    });
    let mut out = std::io::stdout();
    writeln!(out, "HAKO_CRI_BENCH {line}").unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(left, no_traces());
}
