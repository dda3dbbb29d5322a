//! What the fuzz targets share: a sandbox in which a write outside the scratch directory fails
//! loudly instead of landing on the host, canaries that catch writes inside it but outside the
//! directory under test, and tar archives built from a small text language with valid checksums.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `struct mount_attr` of mount_setattr(2); the libc crate does not define it.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL")
}

fn check(rc: libc::c_long, what: &str) {
    if rc != 0 {
        panic!(
            "sandbox: {what}: {} (the extraction targets need root, for a private mount namespace)",
            io::Error::last_os_error()
        );
    }
}

fn mount_setattr(path: &Path, set: u64, clr: u64) {
    let p = cstr(path);
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr(2) with a NUL-terminated path and a live, correctly sized
    // mount_attr; it changes only the flags of mounts in this process's own namespace.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(rc, &format!("mount_setattr {}", path.display()));
}

fn mount(src: Option<&Path>, dst: &Path, fstype: Option<&str>, flags: libc::c_ulong) {
    let src = src.map(cstr);
    let dst = cstr(dst);
    let fstype = fstype.map(|t| CString::new(t).expect("fs type"));
    let opt = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: mount(2) with NUL-terminated strings (or NULL where allowed) that outlive the
    // call; it only changes this process's private mount namespace.
    let rc = unsafe {
        libc::mount(
            opt(&src),
            dst.as_ptr(),
            opt(&fstype),
            flags,
            std::ptr::null(),
        )
    };
    check(rc.into(), &format!("mount {}", dst.to_string_lossy()));
}

/// The fuzz crate's directory, which holds the corpora, artifacts and `target/`.
fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The scratch directory of this process: a fresh tmpfs in a private mount namespace where
/// every other mount is read-only, except the fuzz directory (corpora, crash artifacts) and
/// `$TMPDIR` (libFuzzer's merge files). Code under test that writes anywhere else gets EROFS,
/// which [`Sandbox::assert_no_escape`] turns into a crash. Set up on first use.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let fuzz = fuzz_dir();
        let dir = fuzz.join("target/scratch");
        fs::create_dir_all(&dir).expect("create the scratch mount point");
        let tmp = PathBuf::from(std::env::var_os("TMPDIR").unwrap_or_else(|| "/tmp".into()));
        // SAFETY: unshare(2) of the mount namespace only; the other threads libFuzzer may have
        // started keep the old one, and they never touch the files under test.
        check(
            unsafe { libc::unshare(libc::CLONE_NEWNS) }.into(),
            "unshare(CLONE_NEWNS)",
        );
        mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE);
        // Bind mounts of their own, so that they can be made writable again below.
        let writable: Vec<PathBuf> = [fuzz, tmp]
            .into_iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        for p in &writable {
            mount(Some(p), p, None, libc::MS_BIND | libc::MS_REC);
        }
        mount_setattr(Path::new("/"), MOUNT_ATTR_RDONLY, 0);
        for p in &writable {
            mount_setattr(p, 0, MOUNT_ATTR_RDONLY);
        }
        mount(Some(Path::new("tmpfs")), &dir, Some("tmpfs"), 0);
        // The sandbox is what makes an escape visible: check that it holds before trusting it.
        let probe = fuzz_dir().join("../.hako-fuzz-sandbox-probe");
        match fs::write(&probe, b"") {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
            other => {
                let _ = fs::remove_file(&probe);
                panic!("sandbox: a write outside it was not refused: {other:?}");
            }
        }
        dir
    })
}

/// Whether an error's chain says a write hit a read-only mount: outside the scratch
/// directory, given the sandbox.
pub fn is_erofs(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        // A transparent variant forwards `source()` past the io::Error it holds.
        let io = match err.downcast_ref::<hako_image::Error>() {
            Some(hako_image::Error::Io(io)) => Some(io),
            _ => err.downcast_ref::<io::Error>(),
        };
        if let Some(io) = io {
            if io.raw_os_error() == Some(libc::EROFS)
                || io.kind() == io::ErrorKind::ReadOnlyFilesystem
            {
                return true;
            }
        }
        cur = err.source();
    }
    // Not the message: it quotes names from the archive, and the fuzzer learns the words
    // this would look for from the comparison itself.
    false
}

/// What a file looked like: enough to notice any write, link, rename or chmod.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    mode: u32,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: Vec<u8>,
}

fn stamp(p: &Path) -> Option<Stamp> {
    let m = fs::symlink_metadata(p).ok()?;
    let content = if m.is_file() {
        fs::read(p).ok()?
    } else if m.file_type().is_symlink() {
        fs::read_link(p).ok()?.into_os_string().into_encoded_bytes()
    } else {
        Vec::new()
    };
    Some(Stamp {
        ino: m.ino(),
        mode: m.mode(),
        nlink: m.nlink(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        content,
    })
}

/// Every path under `dir` (not following symlinks) with its stamp, except those under `skip`.
fn snapshot(dir: &Path, skip: &[PathBuf], out: &mut BTreeMap<PathBuf, Option<Stamp>>) {
    out.insert(dir.to_path_buf(), stamp(dir));
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if skip.contains(&p) {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            snapshot(&p, skip, out);
        } else {
            out.insert(p.clone(), stamp(&p));
        }
    }
}

/// A directory under test inside the scratch tmpfs, surrounded by canaries: files, a
/// directory and a symlink next to it, whose every byte and inode field is checked after each
/// run.
pub struct Sandbox {
    /// The scratch directory's subdirectory for this target.
    pub root: PathBuf,
    /// Where the code under test may write (created empty).
    pub inside: PathBuf,
    before: BTreeMap<PathBuf, Option<Stamp>>,
}

impl Sandbox {
    /// Makes `scratch/NAME/{inside,canary…}`.
    pub fn new(name: &str) -> Sandbox {
        let root = scratch().join(name);
        let inside = root.join("inside");
        fs::create_dir_all(&inside).expect("create the directory under test");
        fs::write(root.join("canary"), b"canary file\n").expect("canary");
        fs::create_dir_all(root.join("canary-dir/sub")).expect("canary dir");
        fs::write(root.join("canary-dir/sub/file"), b"deeper canary\n").expect("canary");
        // A way back out that a layer could only reach through `..`.
        let _ = std::os::unix::fs::symlink("../canary", root.join("canary-dir/up"));
        // The same names one level further up, for layers that climb two levels.
        fs::write(scratch().join("canary"), b"top canary\n").expect("canary");
        let mut s = Sandbox {
            root,
            inside,
            before: BTreeMap::new(),
        };
        s.before = s.outside();
        let probe = s.root.join("probe");
        fs::write(&probe, b"").expect("probe");
        assert_ne!(
            s.outside(),
            s.before,
            "sandbox: a new file outside went unnoticed"
        );
        fs::remove_file(&probe).expect("probe");
        s.before = s.outside();
        s
    }

    fn outside(&self) -> BTreeMap<PathBuf, Option<Stamp>> {
        let mut m = BTreeMap::new();
        snapshot(scratch(), std::slice::from_ref(&self.inside), &mut m);
        m
    }

    /// Panics if anything outside [`Sandbox::inside`] changed, or if `err` says a write hit a
    /// read-only mount (that is, went outside the scratch directory altogether).
    pub fn assert_no_escape(&self, err: Option<&(dyn std::error::Error + 'static)>) {
        if let Some(e) = err {
            assert!(!is_erofs(e), "a write went outside the sandbox: {e}");
        }
        let now = self.outside();
        if now != self.before {
            let changed: Vec<&PathBuf> = now
                .keys()
                .chain(self.before.keys())
                .filter(|k| now.get(*k) != self.before.get(*k))
                .collect();
            panic!("files outside the directory under test changed: {changed:?}");
        }
    }
}

/// Fixes the header checksums of a plain tar stream in place, so that mutations of the
/// headers reach the code behind the checksum test. Headers are found the way a reader walks
/// them (each entry's size from its own header); compressed input is left alone.
pub fn fix_tar_checksums(data: &mut [u8]) {
    let mut off = 0usize;
    while off + 512 <= data.len() {
        let block = &mut data[off..off + 512];
        if block.iter().all(|b| *b == 0) {
            return;
        }
        let mut h = tar::Header::new_old();
        h.as_mut_bytes().copy_from_slice(block);
        h.set_cksum();
        block.copy_from_slice(h.as_bytes());
        let Ok(size) = h.entry_size() else { return };
        let Some(next) = size
            .checked_add(511)
            .map(|s| s / 512 * 512)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| s.checked_add(512))
            .and_then(|s| off.checked_add(s))
        else {
            return;
        };
        off = next;
    }
}

/// One entry of a [`tar_from_script`] archive.
struct Entry {
    kind: u8,
    path: Vec<u8>,
    arg: Vec<u8>,
}

/// Builds a tar from a script, one entry per line: a kind letter, a space, the path (written
/// as is: `..`, absolute paths and all), then optionally a tab and an argument.
///
/// - `f PATH\tDATA`: regular file; `d PATH`: directory;
/// - `l PATH\tTARGET`: symlink; `h PATH\tTARGET`: hard link;
/// - `c`/`b`/`p PATH`: character device 1:3, block device 7:0, FIFO;
/// - `L PATH\tDATA`: file named by a GNU long-name entry; `P PATH\tDATA`: by a PAX `path`;
/// - `x PATH\tKEY=VALUE`: file with that PAX record (`SCHILY.xattr.user.a=b`);
/// - `m PATH\tMODE`: file with that octal mode; `g PATH\tDATA`: PAX global header.
///
/// Names longer than a header holds are cut, as a careless writer would.
pub fn tar_from_script(script: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in script.split(|b| *b == b'\n') {
        if line.len() < 2 || line[1] != b' ' {
            continue;
        }
        let rest = &line[2..];
        let (path, arg) = match rest.iter().position(|b| *b == b'\t') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        let e = Entry {
            kind: line[0],
            path: path.to_vec(),
            arg: arg.to_vec(),
        };
        append(&mut out, &e);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn header(kind: tar::EntryType, name: &[u8], size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let raw = h.as_old_mut();
        let n = name.len().min(raw.name.len());
        raw.name[..n].copy_from_slice(&name[..n]);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn push(out: &mut Vec<u8>, mut h: tar::Header, data: &[u8]) {
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

fn pax(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in records {
        // "LEN KEY=VALUE\n", LEN counting itself.
        let base = k.len() + v.len() + 3;
        let mut len = base + 1;
        while len != base + len.to_string().len() {
            len = base + len.to_string().len();
        }
        body.extend_from_slice(len.to_string().as_bytes());
        body.push(b' ');
        body.extend_from_slice(k);
        body.push(b'=');
        body.extend_from_slice(v);
        body.push(b'\n');
    }
    body
}

fn append(out: &mut Vec<u8>, e: &Entry) {
    use tar::EntryType as T;
    let file = |out: &mut Vec<u8>, name: &[u8], data: &[u8], mode: u32| {
        push(out, header(T::Regular, name, data.len() as u64, mode), data);
    };
    match e.kind {
        b'f' => file(out, &e.path, &e.arg, 0o644),
        b'd' => push(out, header(T::Directory, &e.path, 0, 0o755), b""),
        b'l' | b'h' => {
            let kind = if e.kind == b'l' { T::Symlink } else { T::Link };
            let mut h = header(kind, &e.path, 0, 0o777);
            let raw = h.as_old_mut();
            let n = e.arg.len().min(raw.linkname.len());
            raw.linkname[..n].copy_from_slice(&e.arg[..n]);
            push(out, h, b"");
        }
        b'c' | b'b' | b'p' => {
            let kind = match e.kind {
                b'c' => T::Char,
                b'b' => T::Block,
                _ => T::Fifo,
            };
            let mut h = header(kind, &e.path, 0, 0o644);
            let (major, minor) = if e.kind == b'c' { (1, 3) } else { (7, 0) };
            let _ = h.set_device_major(major);
            let _ = h.set_device_minor(minor);
            push(out, h, b"");
        }
        b'L' => {
            let mut name = e.path.clone();
            name.push(0);
            push(
                out,
                header(T::GNULongName, b"././@LongLink", name.len() as u64, 0o644),
                &name,
            );
            file(out, &e.path, &e.arg, 0o644);
        }
        b'P' => {
            let body = pax(&[(b"path", &e.path)]);
            push(
                out,
                header(T::XHeader, b"pax", body.len() as u64, 0o644),
                &body,
            );
            file(out, b"placeholder", &e.arg, 0o644);
        }
        b'x' => {
            let (k, v) = match e.arg.iter().position(|b| *b == b'=') {
                Some(i) => (&e.arg[..i], &e.arg[i + 1..]),
                None => (&e.arg[..], &b""[..]),
            };
            let body = pax(&[(k, v)]);
            push(
                out,
                header(T::XHeader, b"pax", body.len() as u64, 0o644),
                &body,
            );
            file(out, &e.path, b"with a pax record\n", 0o644);
        }
        b'g' => {
            let body = pax(&[(b"comment", &e.arg)]);
            push(
                out,
                header(T::XGlobalHeader, &e.path, body.len() as u64, 0o644),
                &body,
            );
        }
        b'm' => {
            let mode = std::str::from_utf8(&e.arg)
                .ok()
                .and_then(|s| u32::from_str_radix(s.trim(), 8).ok())
                .unwrap_or(0o644);
            file(out, &e.path, b"mode\n", mode);
        }
        _ => {}
    }
}

/// sha256 of `data` as `sha256:<hex>`.
pub fn digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// The entries of a directory, sorted; empty if it does not exist.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The image store both tar targets write into, in the sandbox.
pub struct Store {
    /// The sandbox around the store's root.
    pub sandbox: Sandbox,
    /// The store, rooted at [`Sandbox::inside`].
    pub store: hako_image::ImageStore,
}

impl Store {
    /// Opens a store in a fresh sandbox named `name`.
    pub fn new(name: &str) -> Store {
        let sandbox = Sandbox::new(name);
        // An escape shows up as the store's own error type: check that it is recognized.
        let outside = fuzz_dir().join("../.hako-fuzz-store-probe");
        match hako_image::ImageStore::open(&outside) {
            Err(e) if is_erofs(&e) => {}
            other => panic!("sandbox: a store outside it did not fail with EROFS: {other:?}"),
        }
        let store = hako_image::ImageStore::open(&sandbox.inside).expect("open the image store");
        Store { sandbox, store }
    }

    /// `tmp/` of the store, where staging happens.
    pub fn tmp(&self) -> PathBuf {
        self.sandbox.inside.join("tmp")
    }

    /// Panics unless staging left nothing behind in `tmp/`.
    pub fn assert_tmp_empty(&self, what: &str) {
        let left = entries(&self.tmp());
        assert!(left.is_empty(), "{what} left {left:?} in tmp/");
    }
}

/// Entries deeper than this are not extracted. Extraction is linear in the depth now
/// (`crates/image/src/unpack.rs` walks with `openat2`), so this only keeps libFuzzer's inputs
/// from spending their time on paths no real layer has; Docker's own limit is far lower.
pub const MAX_DEPTH: usize = 4096;

/// The most path components of any entry (or hard-link target) in a tar stream, plain, gzip or
/// zstd, counting the tar streams inside its entries too (an archive's layers).
pub fn max_depth(data: &[u8]) -> usize {
    fn walk(r: impl io::Read, nested: usize) -> usize {
        let mut ar = tar::Archive::new(r);
        let Ok(entries) = ar.entries() else { return 0 };
        let mut deepest = 0;
        for e in entries {
            let Ok(mut e) = e else { break };
            let mut d = e.path_bytes().split(|b| *b == b'/').count();
            if let Some(l) = e.link_name_bytes() {
                d = d.max(l.split(|b| *b == b'/').count());
            }
            deepest = deepest.max(d);
            if nested < 2 && e.header().entry_type().is_file() {
                let mut body = Vec::new();
                if io::Read::read_to_end(&mut e, &mut body).is_ok() {
                    deepest = deepest.max(depth_of(&body, nested + 1));
                }
            }
        }
        deepest
    }
    fn depth_of(data: &[u8], nested: usize) -> usize {
        if data.starts_with(&[0x1f, 0x8b]) {
            walk(flate2::read::MultiGzDecoder::new(data), nested)
        } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            match zstd::stream::read::Decoder::new(data) {
                Ok(d) => walk(d, nested),
                Err(_) => 0,
            }
        } else if data.len() > 262 && &data[257..262] == b"ustar" || nested == 0 {
            walk(data, nested)
        } else {
            0
        }
    }
    depth_of(data, 0)
}

/// Stages `data` as a layer blob, as a pull does, and checks what a layer from a hostile
/// registry must never do: write outside its staging directory, leave files behind once
/// dropped or failed, or be accepted under a digest it does not have.
pub fn check_layer(st: &Store, data: &[u8]) {
    if max_depth(data) > MAX_DEPTH {
        return;
    }
    let stager = st.store.stager();
    let res = stager.stage_layer(data, None);
    match &res {
        Ok(l) => {
            st.sandbox.assert_no_escape(None);
            assert_eq!(l.blob_digest, digest(data));
            assert_eq!(l.blob_size, data.len() as u64);
            if l.compression == hako_image::Compression::None {
                assert_eq!(
                    l.diff_id, l.blob_digest,
                    "an uncompressed layer is its own diff"
                );
                assert_eq!(l.diff_size, l.blob_size);
            }
        }
        Err(e) => st.sandbox.assert_no_escape(Some(e)),
    }
    let ok = res.is_ok();
    drop(res);
    st.assert_tmp_empty("a staged layer");

    // With the digest a registry announced: the same outcome when it is right, a digest
    // mismatch whatever else is wrong when it is not.
    let right = stager.stage_layer(data, Some(&digest(data)));
    if let Err(e) = &right {
        st.sandbox.assert_no_escape(Some(e));
    }
    assert_eq!(right.is_ok(), ok, "{right:?}");
    drop(right);
    let wrong = format!("sha256:{}", "0".repeat(64));
    if digest(data) != wrong {
        match stager.stage_layer(data, Some(&wrong)) {
            Err(hako_image::Error::DigestMismatch { .. }) => {}
            other => panic!("a layer under a wrong digest: {other:?}"),
        }
    }
    st.assert_tmp_empty("a layer under a digest");
    st.sandbox.assert_no_escape(None);
}
