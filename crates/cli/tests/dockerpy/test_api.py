"""docker-py (PyPI `docker`) against `hako system service`.

Run by crates/cli/tests/api_dockerpy.rs with DOCKER_HOST at a private service whose root has
busybox imported; HAKO_TEST_REGISTRY names a private registry (host:port) for pull and push.
"""

import io
import os
import tarfile
import time
import unittest

import docker
from docker.errors import APIError, ImageNotFound, NotFound


def client():
    return docker.from_env(timeout=60)


class Containers(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def tearDown(self):
        for ct in self.c.containers.list(all=True):
            ct.remove(force=True)
        self.c.close()

    def test_run_output_and_exit_status(self):
        out = self.c.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], remove=True, stderr=True)
        self.assertEqual(out, b"out\nerr\n")
        with self.assertRaises(docker.errors.ContainerError) as e:
            self.c.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True)
        self.assertEqual(e.exception.exit_status, 3)
        self.assertEqual(self.c.containers.list(all=True), [])

    def test_lifecycle(self):
        ct = self.c.containers.create("busybox", ["sleep", "300"], name="life", labels={"k": "v"})
        self.assertEqual(ct.status, "created")
        ct.start()
        ct.reload()
        self.assertEqual(ct.status, "running")
        self.assertEqual([x.name for x in self.c.containers.list(filters={"label": "k=v"})], ["life"])
        self.assertEqual(self.c.containers.list(filters={"label": ["k=v", "k=other"]}), [])
        ct.pause()
        ct.reload()
        self.assertEqual(ct.status, "paused")
        ct.unpause()
        top = ct.top()
        self.assertIn("PID", top["Titles"])
        self.assertTrue(any("sleep" in " ".join(p) for p in top["Processes"]))
        ct.rename("life2")
        ct.reload()
        self.assertEqual(ct.name, "life2")
        ct.kill(signal="SIGKILL")
        self.assertEqual(ct.wait(timeout=30)["StatusCode"], 137)
        ct.start()
        ct.stop(timeout=1)
        ct.reload()
        self.assertEqual(ct.status, "exited")
        ct.remove()
        with self.assertRaises(NotFound):
            self.c.containers.get("life2")

    def test_errors_keep_their_status(self):
        with self.assertRaises(NotFound):
            self.c.containers.get("nosuch")
        ct = self.c.containers.run("busybox", ["sleep", "300"], detach=True, name="dup")
        with self.assertRaises(APIError) as e:
            self.c.containers.create("busybox", ["true"], name="dup")
        self.assertEqual(e.exception.status_code, 409)
        with self.assertRaises(APIError) as e:
            ct.remove()
        self.assertEqual(e.exception.status_code, 409)
        with self.assertRaises(ImageNotFound):
            self.c.containers.create("nosuchimage:1")

    def test_attach_socket_stdin(self):
        ct = self.c.containers.create("busybox", ["tr", "a-z", "A-Z"], stdin_open=True)
        sock = ct.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        ct.start()
        raw = sock._sock
        raw.sendall(b"hello\n")
        raw.shutdown(1)
        data = b""
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            data += chunk
        # Without a terminal: 8-byte frame headers, stream 1.
        self.assertEqual(data[:8], b"\x01\x00\x00\x00\x00\x00\x00\x06")
        self.assertEqual(data[8:], b"HELLO\n")
        self.assertEqual(ct.wait(timeout=30)["StatusCode"], 0)


class Exec(unittest.TestCase):
    def setUp(self):
        self.c = client()
        self.ct = self.c.containers.run("busybox", ["sleep", "300"], detach=True)

    def tearDown(self):
        self.ct.remove(force=True)
        self.c.close()

    def test_exec_run(self):
        r = self.ct.exec_run(["sh", "-c", "echo hi; echo err >&2; exit 4"], demux=True)
        self.assertEqual(r.exit_code, 4)
        self.assertEqual(r.output, (b"hi\n", b"err\n"))
        r = self.ct.exec_run("cat /etc/hostname", workdir="/tmp", user="nobody", environment={"A": "1"})
        self.assertEqual(r.exit_code, 0)
        r = self.ct.exec_run(["sh", "-c", "echo $A; pwd; id -un"], workdir="/tmp", user="nobody", environment={"A": "1"})
        self.assertEqual(r.output, b"1\n/tmp\nnobody\n")

    def test_exec_stream_and_tty(self):
        r = self.ct.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; done"], stream=True)
        self.assertEqual(b"".join(r.output), b"1\n2\n3\n")
        r = self.ct.exec_run(["tty"], tty=True)
        self.assertTrue(r.output.startswith(b"/dev/pts/"), r.output)
        api = self.c.api
        e = api.exec_create(self.ct.id, ["sh", "-c", "exit 7"])
        api.exec_start(e["Id"])
        self.assertEqual(api.exec_inspect(e["Id"])["ExitCode"], 7)
        with self.assertRaises(NotFound):
            api.exec_inspect("nosuchexec")


class Images(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def tearDown(self):
        for ct in self.c.containers.list(all=True):
            ct.remove(force=True)
        self.c.close()

    def test_list_tag_remove(self):
        img = self.c.images.get("busybox")
        self.assertIn("busybox:latest", img.tags)
        self.assertTrue(img.id.startswith("sha256:"))
        img.tag("pytag", "v1")
        self.assertIn("pytag:v1", self.c.images.get("pytag:v1").tags)
        self.assertEqual([i.id for i in self.c.images.list(name="pytag")], [img.id])
        self.assertEqual(self.c.api.images(name="pytag")[0]["RepoTags"], ["pytag:v1"])
        self.assertEqual(self.c.images.list(name="nosuch*"), [])
        self.c.images.remove("pytag:v1")
        with self.assertRaises(ImageNotFound):
            self.c.images.get("pytag:v1")

    def test_build_with_streamed_output(self):
        ctx = io.BytesIO()
        with tarfile.open(fileobj=ctx, mode="w") as t:
            df = b"FROM busybox\nARG WHO=nobody\nRUN echo hello $WHO > /greeting\nCMD [\"cat\", \"/greeting\"]\n"
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(df)
            t.addfile(info, io.BytesIO(df))
        ctx.seek(0)
        img, logs = self.c.images.build(fileobj=ctx, custom_context=True, tag="pybuilt:1", buildargs={"WHO": "py"})
        lines = "".join(l.get("stream", "") for l in logs)
        self.assertIn("Step 1/4", lines)
        self.assertEqual(self.c.containers.run("pybuilt:1", remove=True), b"hello py\n")
        self.c.images.remove("pybuilt:1")
        ctx = io.BytesIO()
        with tarfile.open(fileobj=ctx, mode="w") as t:
            df = b"FROM busybox\nRUN exit 5\n"
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(df)
            t.addfile(info, io.BytesIO(df))
        ctx.seek(0)
        with self.assertRaises(docker.errors.BuildError):
            self.c.images.build(fileobj=ctx, custom_context=True, tag="pybroken")

    @unittest.skipUnless(os.environ.get("HAKO_TEST_REGISTRY"), "no registry")
    def test_push_and_pull_progress(self):
        reg = os.environ["HAKO_TEST_REGISTRY"]
        repo = f"{reg}/pytest"
        self.c.images.get("busybox").tag(repo, "1")
        out = list(self.c.api.push(repo, tag="1", stream=True, decode=True))
        self.assertFalse([o for o in out if "error" in o], out)
        self.c.images.remove(f"{repo}:1")
        progress = list(self.c.api.pull(repo, tag="1", stream=True, decode=True))
        self.assertTrue(progress and all("status" in p for p in progress), progress)
        self.assertIn(f"{repo}:1", self.c.images.get(f"{repo}:1").tags)
        with self.assertRaises(docker.errors.NotFound):
            self.c.images.pull(f"{reg}/nothing", tag="here")
        self.c.images.remove(f"{repo}:1")


class NetworksAndVolumes(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def tearDown(self):
        for ct in self.c.containers.list(all=True):
            ct.remove(force=True)
        self.c.close()

    def test_networks(self):
        n = self.c.networks.create("pynet", driver="bridge", labels={"a": "b"})
        self.assertEqual(self.c.networks.get("pynet").attrs["Labels"], {"a": "b"})
        self.assertIn("pynet", [x.name for x in self.c.networks.list(filters={"label": "a=b"})])
        ct = self.c.containers.run("busybox", ["sleep", "300"], detach=True, network="pynet", name="netc")
        n.reload()
        self.assertIn(ct.id, n.attrs["Containers"])
        peer = self.c.containers.run("busybox", ["ping", "-c", "1", "-W", "5", "netc"], network="pynet", remove=True)
        self.assertIn(b"1 packets received", peer)
        n.disconnect(ct)
        n.reload()
        self.assertEqual(n.attrs["Containers"], {})
        ct.remove(force=True)
        n.remove()
        with self.assertRaises(NotFound):
            self.c.networks.get("pynet")

    def test_volumes(self):
        v = self.c.volumes.create("pyvol", labels={"x": "y"})
        self.assertEqual(v.attrs["Labels"], {"x": "y"})
        self.c.containers.run("busybox", ["sh", "-c", "echo kept > /v/f"], volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, remove=True)
        out = self.c.containers.run("busybox", ["cat", "/v/f"], volumes=["pyvol:/v:ro"], remove=True)
        self.assertEqual(out, b"kept\n")
        self.assertEqual([x.name for x in self.c.volumes.list(filters={"label": "x=y"})], ["pyvol"])
        v.remove()
        with self.assertRaises(NotFound):
            self.c.volumes.get("pyvol")


class Streams(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def tearDown(self):
        for ct in self.c.containers.list(all=True):
            ct.remove(force=True)
        self.c.close()

    def test_logs_follow(self):
        ct = self.c.containers.run("busybox", ["sh", "-c", "echo a; sleep 1; echo b >&2"], detach=True)
        self.assertEqual(b"".join(ct.logs(stream=True, follow=True)), b"a\nb\n")
        self.assertEqual(ct.logs(stdout=False), b"b\n")
        self.assertEqual(ct.logs(tail=1), b"b\n")

    def test_events_and_stats(self):
        since = time.time() - 1
        ct = self.c.containers.run("busybox", ["sleep", "300"], detach=True, name="evc")
        s = ct.stats(stream=False)
        self.assertIn("memory_stats", s)
        self.assertIn("cpu_stats", s)
        samples = ct.stats(stream=True, decode=True)
        first, second = next(samples), next(samples)
        self.assertGreater(second["cpu_stats"]["system_cpu_usage"], 0)
        samples.close()
        ct.remove(force=True)
        until = time.time() + 1
        events = list(self.c.events(since=since, until=until, decode=True, filters={"container": "evc"}))
        actions = [e["Action"] for e in events]
        for a in ["create", "start"]:
            self.assertIn(a, actions)
        self.assertTrue(all(e["Type"] == "container" for e in events))

    def test_system(self):
        self.assertEqual(self.c.ping(), True)
        v = self.c.version()
        self.assertGreaterEqual(tuple(map(int, v["ApiVersion"].split("."))), (1, 44))
        info = self.c.info()
        self.assertEqual(info["OSType"], "linux")
        df = self.c.df()
        self.assertTrue(any("busybox:latest" in (i["RepoTags"] or []) for i in df["Images"]), df["Images"])


if __name__ == "__main__":
    unittest.main()
