//! What an image's C library needs from the host's kernel, read from its layers before a
//! container starts: glibc's `NT_GNU_ABI_TAG` note (the oldest Linux it supports) and its
//! release, which tells whether it calls the legacy vsyscall page. musl needs neither.

use std::path::{Path, PathBuf};

/// The image's glibc, as far as the checks before start need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibcAbi {
    /// Its path in the image (`/lib/x86_64-linux-gnu/libc.so.6`).
    pub library: String,
    /// The oldest Linux it runs on (`NT_GNU_ABI_TAG`), when it says.
    pub min_kernel: Option<(u32, u32, u32)>,
    /// Its release (`2.36`), from its version banner, when found.
    pub release: Option<(u32, u32)>,
}

impl LibcAbi {
    /// One line for a cache: `library min release`, `-` for what is unknown.
    pub fn to_line(&self) -> String {
        let min = self
            .min_kernel
            .map(|(a, b, c)| format!("{a}.{b}.{c}"))
            .unwrap_or_else(|| "-".into());
        let rel = self
            .release
            .map(|(a, b)| format!("{a}.{b}"))
            .unwrap_or_else(|| "-".into());
        format!("{} {min} {rel}", self.library)
    }

    /// Reads what [`LibcAbi::to_line`] wrote.
    pub fn from_line(line: &str) -> Option<LibcAbi> {
        let mut it = line.split(' ');
        let library = it.next().filter(|l| l.starts_with('/'))?.to_string();
        let num = |s: &str| s.parse::<u32>().ok();
        let min_kernel = it.next().and_then(|m| {
            let v: Vec<u32> = m.split('.').filter_map(num).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        });
        let release = it.next().and_then(|r| {
            let (a, b) = r.split_once('.')?;
            Some((num(a)?, num(b)?))
        });
        Some(LibcAbi {
            library,
            min_kernel,
            release,
        })
    }

    /// glibc before 2.14 calls the fixed vsyscall page for `time`, `gettimeofday` and
    /// `getcpu` (CentOS 6 has 2.12); a kernel booted with `vsyscall=none` kills it (status
    /// 139).
    pub fn uses_vsyscall(&self) -> bool {
        self.release.is_some_and(|r| r < (2, 14))
    }
}

/// Finds glibc in the layers (topmost first) of an image for `architecture` (GOARCH) and
/// reads its ABI note and release. `None` for an image without glibc: musl, static binaries
/// only, or none found where glibc lives.
pub fn inspect(layers_top_first: &[PathBuf], architecture: &str) -> Option<LibcAbi> {
    let triple = match architecture {
        "amd64" => "x86_64-linux-gnu",
        "arm64" => "aarch64-linux-gnu",
        "386" => "i386-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "ppc64le" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "mips64le" => "mips64el-linux-gnuabi64",
        _ => "",
    };
    let mut candidates = Vec::new();
    if !triple.is_empty() {
        candidates.push(format!("/lib/{triple}/libc.so.6"));
        candidates.push(format!("/usr/lib/{triple}/libc.so.6"));
    }
    for dir in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
        candidates.push(format!("{dir}/libc.so.6"));
    }
    for c in candidates {
        if let Some(host_path) = find(layers_top_first, &c) {
            let Ok(bytes) = std::fs::read(&host_path) else {
                continue;
            };
            if !bytes.starts_with(b"\x7fELF") {
                continue;
            }
            return Some(LibcAbi {
                library: c,
                min_kernel: abi_tag(&bytes),
                release: release(&bytes),
            });
        }
    }
    None
}

/// The `NT_GNU_ABI_TAG` note of an ELF file: OS 0 (Linux) and the oldest kernel version.
pub fn abi_tag(elf: &[u8]) -> Option<(u32, u32, u32)> {
    const NT_GNU_ABI_TAG: u32 = 1;
    let parsed = goblin::elf::Elf::parse(elf).ok()?;
    let notes = parsed
        .iter_note_headers(elf)
        .into_iter()
        .flatten()
        .chain(parsed.iter_note_sections(elf, None).into_iter().flatten());
    for note in notes.flatten() {
        if note.n_type == NT_GNU_ABI_TAG && note.name == "GNU" && note.desc.len() >= 16 {
            let word = |i: usize| {
                let b: [u8; 4] = note.desc[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4]);
                if parsed.little_endian {
                    u32::from_le_bytes(b)
                } else {
                    u32::from_be_bytes(b)
                }
            };
            if word(0) == 0 {
                return Some((word(1), word(2), word(3)));
            }
        }
    }
    None
}

/// glibc's release from its banner (`… release version 2.36.`, printed when libc.so.6 is
/// run).
fn release(elf: &[u8]) -> Option<(u32, u32)> {
    const MARK: &[u8] = b"release version ";
    let at = elf.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let rest = &elf[at..elf.len().min(at + 16)];
    let text: String = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .map(|b| *b as char)
        .collect();
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The host path of `path` (absolute, in the image) in the union of `layers` (topmost
/// first): each component is taken from the topmost layer that has it, a whiteout hides it,
/// and symbolic links are followed inside the image, never onto the host.
fn find(layers: &[PathBuf], path: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(c);
        let rel: PathBuf = done.iter().collect();
        let host = top(layers, &rel)?;
        let meta = std::fs::symlink_metadata(&host).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return None;
            }
            let target = std::fs::read_link(&host).ok()?;
            let target = target.to_str()?;
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(str::to_string),
            );
        } else if todo.is_empty() {
            return meta.is_file().then_some(host);
        }
    }
    None
}

/// The topmost layer's copy of `rel`, unless a layer above whites it out.
fn top(layers: &[PathBuf], rel: &Path) -> Option<PathBuf> {
    let name = rel.file_name()?.to_str()?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    for l in layers {
        let p = l.join(rel);
        match std::fs::symlink_metadata(&p) {
            // overlayfs' whiteout: a 0/0 character device.
            Ok(m) if is_whiteout(&m) => return None,
            Ok(_) => return Some(p),
            Err(_) => {
                if std::fs::symlink_metadata(l.join(parent).join(format!(".wh.{name}"))).is_ok() {
                    return None;
                }
            }
        }
    }
    None
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    m.file_type().is_char_device() && m.rdev() == 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal little-endian ELF64 file with one `PT_NOTE` segment holding an
    /// `NT_GNU_ABI_TAG` for `min`, followed by glibc's banner for `release`.
    pub(crate) fn fake_libc(min: (u32, u32, u32), release: &str) -> Vec<u8> {
        let mut note = Vec::new();
        for w in [4u32, 16, 1] {
            note.extend_from_slice(&w.to_le_bytes());
        }
        note.extend_from_slice(b"GNU\0");
        for w in [0, min.0, min.1, min.2] {
            note.extend_from_slice(&w.to_le_bytes());
        }
        let (ehsize, phsize) = (64u16, 56u16);
        let note_off = (ehsize + phsize) as u64;
        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        f.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
        f.extend_from_slice(&62u16.to_le_bytes()); // x86-64
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // entry
        f.extend_from_slice(&(ehsize as u64).to_le_bytes()); // phoff
        f.extend_from_slice(&0u64.to_le_bytes()); // shoff
        f.extend_from_slice(&0u32.to_le_bytes()); // flags
        f.extend_from_slice(&ehsize.to_le_bytes());
        f.extend_from_slice(&phsize.to_le_bytes());
        f.extend_from_slice(&1u16.to_le_bytes()); // phnum
        f.extend_from_slice(&64u16.to_le_bytes()); // shentsize
        f.extend_from_slice(&0u16.to_le_bytes()); // shnum
        f.extend_from_slice(&0u16.to_le_bytes()); // shstrndx
        f.extend_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        f.extend_from_slice(&4u32.to_le_bytes()); // PF_R
        f.extend_from_slice(&note_off.to_le_bytes());
        f.extend_from_slice(&note_off.to_le_bytes());
        f.extend_from_slice(&note_off.to_le_bytes());
        f.extend_from_slice(&(note.len() as u64).to_le_bytes());
        f.extend_from_slice(&(note.len() as u64).to_le_bytes());
        f.extend_from_slice(&4u64.to_le_bytes());
        f.extend_from_slice(&note);
        f.extend_from_slice(
            format!("GNU C Library (GNU libc) stable release version {release}.\n").as_bytes(),
        );
        f
    }

    #[test]
    fn reads_the_abi_tag_and_release_through_layers_and_links() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        let l = lower.path();
        std::fs::create_dir_all(l.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::os::unix::fs::symlink("usr/lib", l.join("lib")).unwrap();
        std::fs::write(
            l.join("usr/lib/x86_64-linux-gnu/libc-2.12.so"),
            fake_libc((2, 6, 18), "2.12"),
        )
        .unwrap();
        std::os::unix::fs::symlink("libc-2.12.so", l.join("usr/lib/x86_64-linux-gnu/libc.so.6"))
            .unwrap();
        let layers = vec![upper.path().to_path_buf(), l.to_path_buf()];
        let abi = inspect(&layers, "amd64").unwrap();
        assert_eq!(abi.library, "/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(abi.min_kernel, Some((2, 6, 18)));
        assert_eq!(abi.release, Some((2, 12)));
        assert!(abi.uses_vsyscall());
        assert_eq!(LibcAbi::from_line(&abi.to_line()), Some(abi));

        // A whiteout in the upper layer hides it.
        let u = upper.path().join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&u).unwrap();
        std::fs::write(u.join(".wh.libc-2.12.so"), b"").unwrap();
        assert_eq!(inspect(&layers, "amd64"), None);
        // A link out of the image stays inside it.
        let escape = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(escape.path().join("lib64")).unwrap();
        std::os::unix::fs::symlink("/etc/../lib64", escape.path().join("lib64/x")).unwrap();
        assert_eq!(
            find(&[escape.path().to_path_buf()], "/lib64/x/libc.so.6"),
            None
        );
    }

    #[test]
    fn no_libc_no_abi_and_the_hosts_own_libc_reads() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(inspect(&[empty.path().to_path_buf()], "amd64"), None);
        let new = LibcAbi::from_line("/lib64/libc.so.6 3.2.0 2.36").unwrap();
        assert!(!new.uses_vsyscall());
        assert_eq!(
            LibcAbi::from_line("/lib64/libc.so.6 - -").unwrap().release,
            None
        );
        // This host's own glibc (Debian's), when there is one: a real ELF note.
        for p in [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ] {
            if let Ok(b) = std::fs::read(p) {
                let (major, ..) = abi_tag(&b).expect("glibc has an ABI tag");
                assert!(major >= 2);
                assert!(release(&b).is_some_and(|r| r >= (2, 17)));
            }
        }
    }
}
