#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into corpus/<target>/ (run from anywhere).

The seeds are small on purpose: real Dockerfiles from the end-to-end tests, references from the
unit tests, manifests and errors captured from Debian's docker-registry (see README.md), and tar
archives written by Python's tarfile, several of them malicious on purpose (`..`, absolute
paths, symlink and hard-link escapes, whiteouts, deep and long names, oversized headers).
Existing files are overwritten; files the fuzzers added are left alone.
"""

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- Dockerfiles: the string literals of the build tests that contain a FROM. ---------------

def rust_strings(src):
    """The contents of the plain "..." literals in Rust source, with escapes applied."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', src, re.S):
        raw = m.group(1)
        raw = re.sub(r"\\\n\s*", "", raw)  # a line continuation inside the literal
        s = raw.encode().decode("unicode_escape")
        out.append(s)
    return out


def dockerfiles():
    n = 0
    seen = set()
    tests = os.path.join(REPO, "crates/cli/tests")
    for name in sorted(os.listdir(tests)):
        if not name.startswith("build"):
            continue
        with open(os.path.join(tests, name)) as f:
            src = f.read()
        for s in rust_strings(src):
            if "FROM " not in s or "\n" not in s or s in seen:
                continue
            seen.add(s)
            put("dockerfile", f"test-{n:02}", s)
            n += 1
    extra = {
        "escape-directive": "# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n",
        "continuations": "FROM x\nRUN echo a \\\n# inner comment\n\n    && echo b \\\n    && echo c\n",
        "heredocs": 'FROM x\nRUN <<EOF\necho one\nEOF\nCOPY <<-"END" /f\n\thello $X\n\tEND\nRUN cat <<A <<B\na\nA\nb\nB\n',
        "crlf": "FROM x\r\nRUN a \\\r\n  b\r\n",
        "all-instructions": (
            "# syntax=docker/dockerfile:1\n# check=skip=all\nARG V=1\nFROM --platform=linux/amd64 b:${V} AS one\n"
            "ADD --chown=1:1 --chmod=644 --checksum=sha256:00 http://x/y /z\nCOPY --from=one --link a b\n"
            'ENTRYPOINT ["sh", "-c"]\nCMD echo\nENV A=1 B="two words"\nENV legacy form value\n'
            'EXPOSE 80/tcp 53/udp\nHEALTHCHECK --interval=5s CMD ["true"]\nLABEL "k"="v"\n'
            "MAINTAINER me\nONBUILD RUN x\nRUN --mount=type=cache,target=/c,id=x,sharing=locked "
            "--mount=type=bind,from=one,source=/,target=/m,rw --network=none true\n"
            'SHELL ["/bin/bash", "-c"]\nSTOPSIGNAL SIGKILL\nUSER 1:1\nVOLUME ["/v"]\nWORKDIR /w\n'
        ),
        "mounts": (
            "FROM x\nRUN --mount=type=secret,id=tok,env=TOKEN,required=true "
            "--mount=type=ssh,id=deploy,required "
            "--mount=type=tmpfs,target=/t,size=1m true\n"
        ),
        "circular": "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n",
    }
    for k, v in extra.items():
        put("dockerfile", k, v)


# --- Words and .dockerignore -------------------------------------------------------------

def words():
    seeds = {
        "vars": "${A}x$B ${NOPE:-d} ${E:+alt}\0lit eral\0A=1\nB=two words\nE=",
        "nested": "${X:-${Y:-$Z}}\0\0Z=z",
        "quotes": "'$A' \"$A b\" \\$A \"\\$A\" a\\ b\0\"quoted\" 'x'\0A=1",
        "name-values": 'X="a b" Y=$A Z=\'c d\'\0=\0A=1',
        "backtick": "`dir c:\\ `$A\0`\0A=1",
        "unset-error": "${NOPE:?must be set} ${A\0}\0",
    }
    for k, v in seeds.items():
        put("words", k, v)


def dockerignore():
    seeds = {
        "docker-semantics": "# comment\n*.log\n/secret\ntmp/**\n!tmp/keep\n**/node_modules\n\0"
        "a.log\ndir/a.log\nsecret/inner/file\ntmp/keep\na/b/node_modules/c\nsrc/main.c",
        "classes": "*\n!keep*\nkeep.bad\nfile[0-9].txt\nf?o\n./a/../b\n[^a-c]x\n[!x]\n\\*lit\n\0"
        "Dockerfile\nkeep.txt\nfile3.txt\nfoo\nb\ndx\n*lit",
        "stars": "**/*.go\n*/*/x\n**\n!**/keep/**\n\0a/b/c.go\nq/w/x\nkeep/z",
    }
    for k, v in seeds.items():
        put("dockerignore", k, v)


# --- References, templates ---------------------------------------------------------------

def references():
    d = "sha256:" + "a" * 64
    refs = [
        "busybox", "busybox:1", "docker.io/library/busybox:latest", "index.docker.io/busybox",
        "user/app", "localhost:5000/a/b:t", "localhost/x", "quay.io/co-re/my_app__x.y:v1.2-rc_3",
        f"busybox@{d}", f"busybox:1@{d}", "[::1]:5000/img", "UPPER/x", "a" * 64,
        "registry.example.com:443/team/project/image:2024.01-rc1",
        "example.com/a@sha512:" + "b" * 128, "x/y@multihash+base58:" + "c" * 40,
        "bu--sy..box", "a//b", "busybox:", "-bad.host/x",
    ]
    for i, r in enumerate(refs):
        put("reference", f"ref-{i:02}", r)


def templates():
    ts = [
        "{{.State.Status}} {{.State.ExitCode}}", "{{json .Config}}", "json", "{{json .}}",
        "{{.Id}}\\t{{upper .State.Status}}", "{{lower .Name}}\\n",
        "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}",
        "{{range $k, $v := .NetworkSettings.Ports}}{{$k}}->{{(index $v 0).HostPort}}{{end}}",
        "{{if .State.Running}}up{{else}}down{{end}}", "{{with .HostConfig}}{{.Memory}}{{end}}",
        "{{index .Config.Labels \"com.example\"}}", "{{len .Config.Env}}",
        '{{printf "%s-%d" .Name .State.Pid}}', "{{if and .State.Running (eq .State.Pid 4242)}}y{{end}}",
        "{{/* a comment */}}{{- .Name -}}", "{{$x := .Size}}{{$x}}", "{{.Big}} {{.Neg}}",
        "{{.Config.Cmd}}", "{{.NoSuchField}}", "{{range .Config.Env}}{{.}}|{{end}}",
        "{{template \"x\"}}", "{{define \"x\"}}X{{end}}{{template \"x\" .}}",
        "{{if not .State.Running}}{{else if .State.Pid}}{{end}}", "{{.Id",
    ]
    for i, t in enumerate(ts):
        put("template", f"tmpl-{i:02}", t)


# --- Manifests and configs (captured answers are written by capture-registry.sh) ----------

MT = {
    "oci-index": "application/vnd.oci.image.index.v1+json",
    "oci-manifest": "application/vnd.oci.image.manifest.v1+json",
    "docker-list": "application/vnd.docker.distribution.manifest.list.v2+json",
    "docker-manifest": "application/vnd.docker.distribution.manifest.v2+json",
    "schema1": "application/vnd.docker.distribution.manifest.v1+prettyjws",
}


def manifests():
    def desc(mt, data, platform=None):
        d = {"mediaType": mt, "digest": sha(data), "size": len(data)}
        if platform:
            d["platform"] = platform
        return d

    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(b"one"), sha(b"two")]},
        "history": [{"created_by": "x"}],
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MT["oci-manifest"],
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", b"one"),
                   desc("application/vnd.oci.image.layer.v1.tar+zstd", b"two")],
    }).encode()
    plats = [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm", "variant": "v6"},
        {"os": "linux", "architecture": "arm", "variant": "v7"},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
        {"os": "linux", "architecture": "ppc64le"},
        {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"},
        {"os": "unknown", "architecture": "unknown"},
    ]
    index = json.dumps({
        "schemaVersion": 2, "mediaType": MT["oci-index"],
        "manifests": [desc(MT["oci-manifest"], manifest + bytes([i]), p) for i, p in enumerate(plats)],
    }).encode()
    seeds = {
        "oci-index": (MT["oci-index"], "linux/arm64/v8", index),
        "docker-list": (MT["docker-list"], "linux/arm/v7", index.replace(MT["oci-index"].encode(), MT["docker-list"].encode())),
        "index-no-type": ("application/json", "linux/amd64", json.dumps({"manifests": json.loads(index)["manifests"]}).encode()),
        "windows-only": (MT["oci-index"], "linux/amd64", json.dumps({"manifests": [desc(MT["oci-manifest"], b"w", plats[5])]}).encode()),
        "oci-manifest": (MT["oci-manifest"], "linux/x86_64", manifest),
        "docker-manifest": (MT["docker-manifest"] + "; charset=utf-8", "linux/aarch64", manifest),
        "manifest-by-shape": ("text/plain", "", json.dumps({"config": {"digest": sha(config)}, "layers": []}).encode()),
        "schema1": (MT["schema1"], "linux/armhf", b'{"schemaVersion":1,"name":"x","fsLayers":[]}'),
        "config": ("application/vnd.oci.image.config.v1+json", "linux/s390x", config),
        "config-windows": ("", "windows/amd64", json.dumps({"os": "windows", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": []}}).encode()),
        "config-bad-diffid": ("", "linux/amd64", b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:xyz"]}}'),
    }
    for k, (ct, plat, body) in seeds.items():
        put("manifest", k, ct.encode() + b"\n" + plat.encode() + b"\n" + body)


def registry_auth():
    hub = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'
    seeds = {
        "docker-hub": [hub, "Bearer", "realm=https://auth.docker.io/token\nservice=registry.docker.io\nscope=repository:library/busybox:pull,push",
                       "200", '{"token":"eyJhbGciOi.x.y","access_token":"eyJhbGciOi.x.y","expires_in":300,"issued_at":"2026-01-01T00:00:00Z"}',
                       "401", '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Class":"","Name":"library/busybox","Action":"pull"}]}]}\n'],
        "basic": ['Basic realm="Registry Realm"', "Basic", "realm=Registry Realm", "401", "Unauthorized\n",
                  "403", ""],
        "oauth": ['bearer realm="https://ghcr.io/token",service="ghcr.io",error="insufficient_scope"', "Bearer",
                  'realm=a "quoted" \\ value\nerror=invalid_token', "200", '{"access_token":"gho_x"}', "500",
                  "<html><body>502 Bad Gateway</body></html>"],
        "odd": ['Bearer realm=unquoted,service="a\\"b",=empty,key', "Negotiate", "", "200", '{"token":""}', "429",
                '{"errors":[]}'],
        "newline-token": ["", "Bearer", "realm=x", "200", '{"token":"a\\nb"}', "404",
                          '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'],
    }
    for k, v in seeds.items():
        put("registry_auth", k, "\0".join(v))


# --- Tar archives ------------------------------------------------------------------------

def tar_bytes(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (TarInfo kwargs, data) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for kw, data in entries:
            ti = tarfile.TarInfo(kw.pop("name"))
            ti.mtime = kw.pop("mtime", 1700000000)
            for k, v in kw.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def f(name, data=b"x\n", **kw):
    return (dict(dict(name=name, type=tarfile.REGTYPE, mode=0o644), **kw), data)


def d(name, **kw):
    return (dict(name=name, type=tarfile.DIRTYPE, mode=0o755, **kw), None)


def sym(name, target):
    return (dict(name=name, type=tarfile.SYMTYPE, linkname=target, mode=0o777), None)


def hard(name, target):
    return (dict(name=name, type=tarfile.LNKTYPE, linkname=target), None)


def layers():
    simple = tar_bytes([d("a/"), f("a/b", b"hello\n"), sym("a/l", "b"), hard("a/h", "a/b"),
                        (dict(name="a/fifo", type=tarfile.FIFOTYPE), None),
                        (dict(name="a/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3), None)])
    pax = tar_bytes([f("p/x", b"pax\n", pax_headers={"SCHILY.xattr.user.k": "v",
                                                    "SCHILY.xattr.security.capability": "\x01"}),
                     f("p/" + "long/" * 40 + "name", b"deep\n")], fmt=tarfile.PAX_FORMAT)
    out = {
        "simple.tar": simple,
        "simple.tar.gz": gzip.compress(simple, mtime=0),
        "pax-xattrs.tar": pax,
        "dotdot.tar": tar_bytes([f("../escape"), f("a/../../escape2"), f("./ok")]),
        "absolute.tar": tar_bytes([f("/etc/hako-fuzz-evil"), f("/abs/inside")]),
        "symlink-escape.tar": tar_bytes([sym("root", "/"), f("root/etc/hako-fuzz-evil"),
                                         sym("up", "../.."), f("up/canary", b"overwritten\n"),
                                         sym("chain1", "chain2"), sym("chain2", "../../canary-dir"),
                                         f("chain1/evil")]),
        "symlink-replace.tar": tar_bytes([sym("x", "../canary"), f("x", b"through the link\n"),
                                          d("dir/"), sym("dir", "/etc"), f("dir/passwd")]),
        "hardlink-out.tar": tar_bytes([hard("h1", "../../canary"), hard("h2", "/etc/passwd"),
                                       sym("l", "/etc"), hard("h3", "l/passwd"),
                                       sym("u", ".."), hard("h4", "u/canary")]),
        "whiteouts.tar": tar_bytes([d("a/"), f("a/x"), f("a/.wh.x"), f("a/.wh..wh..opq"), f(".wh.."),
                                    f(".wh."), f("b/.wh.c"), sym("s", "/etc"), f("s/.wh.passwd"),
                                    f("s/.wh..wh..opq")]),
        "overwrite.tar": tar_bytes([d("a/"), f("a/f"), f("a"), d("a/"), f("b"), d("b/"), f("b/c")]),
        "deep.tar": tar_bytes([f("d/" * 120 + "bottom", b"deep\n")], fmt=tarfile.PAX_FORMAT),
        "devices.tar": tar_bytes([(dict(name="blk", type=tarfile.BLKTYPE, devmajor=8, devminor=0), None),
                                  (dict(name="c", type=tarfile.CHRTYPE, devmajor=4095, devminor=1048575), None),
                                  (dict(name="l/fifo", type=tarfile.FIFOTYPE), None),
                                  sym("l", "/dev"), f("setuid", mode=0o4755)]),
    }
    # A GNU long-name entry that announces far more data than follows, and a PAX header whose
    # record claims a huge length.
    big = bytearray(tar_bytes([f("x" * 200)]))
    big[124:136] = b"77777777777\0"
    out["huge-longname.tar"] = bytes(big)
    hdr = tarfile.TarInfo("pax")
    hdr.type = tarfile.XHDTYPE
    body = b"99999999999999 path=a\n"
    hdr.size = len(body)
    raw = hdr.tobuf(tarfile.USTAR_FORMAT) + body + b"\0" * (512 - len(body))
    out["huge-pax-record.tar"] = raw + tar_bytes([f("after")])
    zst = subprocess.run(["zstd", "-q", "-c"], input=simple, capture_output=True, check=True).stdout
    out["simple.tar.zst"] = zst
    for k, v in out.items():
        put("layer", k, v)

    scripts = {
        "simple": "d a\nf a/b\thello\nl a/l\tb\nh a/h\ta/b\np a/fifo\nc a/null\n",
        "symlink-escape": "l root\t/\nf root/etc/hako-fuzz-evil\tx\nl up\t../..\nf up/canary\tbad\n",
        "symlink-then-file": "l x\t../canary\nf x\tover\nd dir\nl dir\t/etc\nf dir/passwd\tx\n",
        "hardlinks": "h h1\t../../canary\nh h2\t/etc/passwd\nl l\t/etc\nh h3\tl/passwd\nl u\t..\nh h4\tu/canary\n",
        "whiteouts": "d a\nf a/x\tx\nf a/.wh.x\t\nf a/.wh..wh..opq\t\nf .wh..\t\nl s\t/etc\nf s/.wh.passwd\t\n",
        "long-names": "L " + "long/" * 30 + "name\tx\nP " + "pax/" * 30 + "name\ty\nP ../pax-escape\tz\nL /abs\tz\n",
        "pax-records": "x f\tSCHILY.xattr.user.a=b\nx g\tSCHILY.xattr.trusted.overlay.opaque=y\nx h\tlinkpath=../../x\nx i\tsize=999999999999\ng global\tc\n",
        "devices": "c dev/null\nb dev/sda\np fifo\nl dev/l\t/dev\nc dev/l/evil\n",
        "modes": "m setuid\t4755\nm none\t0\nm all\t7777\nm bogus\t9\n",
    }
    for k, v in scripts.items():
        put("layer_script", k, v)


def oci_archive(layer_tars, tag="fuzz.test/img:1", nested=False, docker=True, gz=False):
    """A `docker save`-style archive that is also an OCI layout, as Docker 25 writes it."""
    blobs = {}
    layer_descs, diff_ids, layer_paths = [], [], []
    for lt in layer_tars:
        blob = gzip.compress(lt, mtime=0) if gz else lt
        blobs[sha(blob)] = blob
        diff_ids.append(sha(lt))
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else ""),
                            "digest": sha(blob), "size": len(blob)})
        layer_paths.append("blobs/sha256/" + sha(blob)[7:])
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    blobs[sha(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MT["oci-manifest"],
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(config), "size": len(config)},
                           "layers": layer_descs}).encode()
    blobs[sha(manifest)] = manifest
    top = {"mediaType": MT["oci-manifest"], "digest": sha(manifest), "size": len(manifest),
           "annotations": {"io.containerd.image.name": "docker.io/" + tag if "/" not in tag.split(":")[0] else tag,
                           "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[-1]}}
    if nested:
        inner = json.dumps({"schemaVersion": 2, "mediaType": MT["oci-index"],
                            "manifests": [dict(top, platform={"os": "linux", "architecture": "amd64"})]}).encode()
        blobs[sha(inner)] = inner
        top = {"mediaType": MT["oci-index"], "digest": sha(inner), "size": len(inner),
               "annotations": top["annotations"]}
    files = [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
             ("index.json", json.dumps({"schemaVersion": 2, "mediaType": MT["oci-index"], "manifests": [top]}).encode())]
    if docker:
        files.append(("manifest.json", json.dumps([{"Config": "blobs/sha256/" + sha(config)[7:],
                                                    "RepoTags": [tag], "Layers": layer_paths}]).encode()))
        files.append(("repositories", json.dumps({tag.split(":")[0]: {tag.split(":")[1]: layer_paths[-1][13:] if layer_paths else ""}}).encode()))
    entries = [d("blobs/"), d("blobs/sha256/")]
    entries += [f("blobs/sha256/" + k[7:], v) for k, v in blobs.items()]
    entries += [f(n, v) for n, v in files]
    return tar_bytes(entries, fmt=tarfile.USTAR_FORMAT)


def docker_only(layer_tars, config_path, layer_paths, tags):
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in layer_tars]}}).encode()
    entries = [f(config_path, config)]
    entries += [f(p, t) for p, t in zip(layer_paths, layer_tars)]
    entries.append(f("manifest.json", json.dumps([{"Config": config_path, "RepoTags": tags,
                                                   "Layers": layer_paths}]).encode()))
    return tar_bytes(entries, fmt=tarfile.USTAR_FORMAT)


def archives():
    small = tar_bytes([d("etc/"), f("etc/hostname", b"fuzz\n"), sym("bin", "usr/bin")])
    second = tar_bytes([f("etc/.wh.hostname"), f("new", b"2\n")])
    evil = tar_bytes([sym("root", "/"), f("root/etc/hako-fuzz-evil"), f("../up")])
    out = {
        "oci-docker.tar": oci_archive([small, second]),
        "oci-only.tar": oci_archive([small], docker=False),
        "oci-nested-index.tar": oci_archive([small], nested=True, docker=False),
        "oci-gzip-layers.tar.gz": gzip.compress(oci_archive([small], gz=True), mtime=0),
        "no-layers.tar": oci_archive([], tag="empty:latest"),
        "docker-legacy.tar": docker_only([small], "abc.json", ["abc/layer.tar"], ["legacy:1", "Bad:tag"]),
        "docker-escape-paths.tar": docker_only([small], "../../etc/passwd", ["/etc/shadow"], ["x:1"]),
        "docker-evil-layer.tar": docker_only([evil], "c.json", ["l/layer.tar"], []),
        "not-an-archive.tar": tar_bytes([f("hello", b"world\n")]),
        "dir-then-file.tar": tar_bytes([d("a/"), f("a"), f("b"), f("b/c"), f("manifest.json", b"[]")]),
    }
    for k, v in out.items():
        put("load", k, v)


if __name__ == "__main__":
    dockerfiles()
    words()
    dockerignore()
    references()
    templates()
    manifests()
    registry_auth()
    layers()
    archives()
