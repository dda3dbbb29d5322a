//! Whether an image's platform can run on this host: natively, under an emulator registered
//! with `binfmt_misc` (Debian's `qemu-user-static` registers one per architecture), or not at
//! all, which is said before anything starts rather than as a bare `exec format error`.

use std::path::Path;

use hako_image::ImagePlatform;

use crate::{Error, Result};

/// Where the kernel lists its `binfmt_misc` handlers.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// A `binfmt_misc` handler that recognises executables by their first bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emulator {
    /// The entry's name (`qemu-aarch64`).
    pub name: String,
    /// The program the kernel runs the executable with.
    pub interpreter: String,
    /// The entry's flags (`F`: the interpreter was opened at registration, so it works inside
    /// a container's root filesystem too).
    pub flags: String,
    /// Whether the entry, and `binfmt_misc` as a whole, are enabled.
    pub enabled: bool,
    offset: usize,
    magic: Vec<u8>,
    mask: Vec<u8>,
}

impl Emulator {
    /// Whether the kernel would hand a file starting with `header` to this handler.
    pub fn matches(&self, header: &[u8]) -> bool {
        let Some(bytes) = header.get(self.offset..self.offset + self.magic.len()) else {
            return false;
        };
        bytes.iter().enumerate().all(|(i, b)| {
            let m = self.mask.get(i).copied().unwrap_or(0xff);
            b & m == self.magic[i] & m
        })
    }

    /// Whether the interpreter works from inside a container: only an entry registered with
    /// the F flag has its interpreter opened by the kernel at registration; without it the
    /// kernel looks the path up in the container's own root filesystem.
    pub fn fixed_binary(&self) -> bool {
        self.flags.contains('F')
    }

    /// What the entry's file in `binfmt_misc` says; `None` for an entry that matches by file
    /// name extension, which no container's executable is recognised by.
    pub fn parse(name: &str, text: &str) -> Option<Emulator> {
        let mut e = Emulator {
            name: name.to_string(),
            interpreter: String::new(),
            flags: String::new(),
            enabled: false,
            offset: 0,
            magic: Vec::new(),
            mask: Vec::new(),
        };
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "enabled" => e.enabled = true,
                "interpreter" => e.interpreter = value.to_string(),
                "flags:" => e.flags = value.to_string(),
                "offset" => e.offset = value.parse().ok()?,
                "magic" => e.magic = hex::decode(value).ok()?,
                "mask" => e.mask = hex::decode(value).ok()?,
                "extension" => return None,
                _ => {}
            }
        }
        (!e.magic.is_empty()).then_some(e)
    }
}

/// The handlers registered in `dir` (normally [`BINFMT_MISC`]); none when `binfmt_misc` is not
/// mounted. Entries are disabled as a whole when its `status` says so.
pub fn emulators_in(dir: &Path) -> Vec<Emulator> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let on = std::fs::read_to_string(dir.join("status")).is_ok_and(|s| s.trim() == "enabled");
    let mut out: Vec<Emulator> = entries
        .flatten()
        .filter_map(|d| {
            let name = d.file_name().to_string_lossy().into_owned();
            if name == "status" || name == "register" {
                return None;
            }
            let text = std::fs::read_to_string(d.path()).ok()?;
            let mut e = Emulator::parse(&name, &text)?;
            e.enabled &= on;
            Some(e)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Parses `os/arch[/variant]` as `--platform` takes it, with Docker's aliases (`x86_64`,
/// `aarch64`, `armhf`).
pub fn parse(s: &str) -> Result<ImagePlatform> {
    let p = hako_registry::Platform::parse(s)?;
    Ok(ImagePlatform {
        os: p.os,
        architecture: p.architecture,
        variant: p.variant,
    })
}

/// The registered handlers (for `hako info`).
pub fn emulators() -> Vec<Emulator> {
    emulators_in(Path::new(BINFMT_MISC))
}

/// Refuses an image that cannot run here, before anything is created: another OS (Docker's
/// message), or another architecture with no usable emulator (naming both platforms and both
/// ways out). For a foreign image that can run emulated, returns the emulator.
pub fn check(image: &ImagePlatform) -> Result<Option<Emulator>> {
    check_with(image, &|| emulators())
}

pub(crate) fn check_with(
    image: &ImagePlatform,
    emulators: &dyn Fn() -> Vec<Emulator>,
) -> Result<Option<Emulator>> {
    image.check_os()?;
    if image.is_native() {
        return Ok(None);
    }
    let host = ImagePlatform::host();
    let fixes = format!(
        "use --platform {host} to pull the image's variant for this host, or install qemu-user-static (apt-get install qemu-user-static) to run it emulated"
    );
    let Some(header) = image.elf_header() else {
        return Err(Error::Invalid(format!(
            "image platform {image} cannot run on this host ({host}): hako knows no executable format for architecture {:?}; use --platform {host} to pull the image's variant for this host",
            image.architecture
        )));
    };
    let all = emulators();
    let matching: Vec<&Emulator> = all.iter().filter(|e| e.matches(&header)).collect();
    if let Some(e) = matching.iter().find(|e| e.enabled && e.fixed_binary()) {
        return Ok(Some((*e).clone()));
    }
    let why = match matching.first() {
        Some(e) if !e.enabled => format!("the emulator {} is registered but disabled", e.name),
        Some(e) => format!(
            "the emulator {} is registered without the F flag, so its interpreter {} cannot be found inside the container",
            e.name, e.interpreter
        ),
        None => format!("no emulator for {} is registered in {BINFMT_MISC}", image.architecture),
    };
    Err(Error::Invalid(format!(
        "image platform {image} cannot run on this host ({host}): {why}; {fixes}"
    )))
}

/// The note `run` prints once for a container that runs emulated.
pub fn emulated_note(image: &ImagePlatform, e: &Emulator) -> String {
    format!(
        "The image's platform ({image}) differs from the host's ({}): running it emulated by {} (binfmt_misc {})",
        ImagePlatform::host(),
        e.interpreter,
        e.name
    )
}

/// The host kernel's version, `6.18.0` from `6.18.0-1-amd64`; missing parts are 0.
pub(crate) fn kernel_triple(release: &str) -> (u32, u32, u32) {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// The vsyscall mode of this host's kernel: `none` when no `[vsyscall]` page is mapped into
/// processes (x86-64 only), else `emulate` or `xonly` (whichever it is: either serves old
/// glibc's calls), read from the kernel command line when it says.
pub fn vsyscall_mode() -> &'static str {
    if !cfg!(target_arch = "x86_64") {
        return "none (not x86-64)";
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    if !maps.contains("[vsyscall]") {
        return "none";
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.split_whitespace().any(|w| w == "vsyscall=emulate") {
        "emulate"
    } else {
        "xonly"
    }
}

/// What the image's glibc needs from this kernel, as warnings to print before it starts:
/// a newer kernel than this one (its ABI note), or the vsyscall page this kernel does not map.
/// What the image's layers say is cached in `cache` per image (`ROOT/cache/abi/<id>`), so a
/// run pays one small file read.
pub(crate) fn abi_warnings(
    cache: &Path,
    image: &hako_image::Image,
    platform: &ImagePlatform,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let hex = image.id.trim_start_matches("sha256:");
    let file = cache.join(hex);
    let abi = match std::fs::read_to_string(&file) {
        Ok(line) => hako_image::abi::LibcAbi::from_line(line.trim()),
        Err(_) => {
            let layers: Vec<std::path::PathBuf> = image.layers.iter().rev().cloned().collect();
            let abi = hako_image::abi::inspect(&layers, &platform.architecture);
            let line = abi
                .as_ref()
                .map(|a| a.to_line())
                .unwrap_or_else(|| "none".into());
            // A cache that cannot be written costs the next run the same reading again.
            let _ = std::fs::create_dir_all(cache).and_then(|_| {
                let tmp = cache.join(format!(".{hex}.{}", std::process::id()));
                std::fs::write(&tmp, line)?;
                std::fs::rename(&tmp, &file)
            });
            // Rare (once per image), so the place to forget images removed since.
            sweep_abi_cache(cache, exists);
            abi
        }
    };
    match abi {
        Some(abi) => warnings_for(
            &abi,
            &platform.architecture,
            &crate::seccomp::kernel_release(),
            &vsyscall_mode,
        ),
        None => Vec::new(),
    }
}

/// What `abi` needs that this kernel (`release`, whose vsyscall mode is read only when it
/// matters) lacks.
fn warnings_for(
    abi: &hako_image::abi::LibcAbi,
    architecture: &str,
    release: &str,
    vsyscall: &dyn Fn() -> &'static str,
) -> Vec<String> {
    let mut out = Vec::new();
    let host = kernel_triple(release);
    if let Some(min) = abi.min_kernel.filter(|m| *m > host) {
        out.push(format!(
            "The image's C library {} needs Linux {}.{}.{} or newer, and this host runs {release}: its programs may stop with \"FATAL: kernel too old\" or fail on missing system calls. Run it on a newer kernel, or use a variant of the image built for an older one",
            abi.library, min.0, min.1, min.2
        ));
    }
    if architecture == "amd64" && abi.uses_vsyscall() && vsyscall() == "none" {
        let (a, b) = abi.release.unwrap_or_default();
        out.push(format!(
            "The image's glibc {a}.{b} ({}) calls the legacy vsyscall page, which this host's kernel does not map (vsyscall=none): its programs will crash with a segmentation fault (exit status 139). Boot the host with vsyscall=emulate on the kernel command line to run it",
            abi.library
        ));
    }
    out
}

/// Removes the cached ABI readings of images that are gone.
pub(crate) fn sweep_abi_cache(cache: &Path, exists: &dyn Fn(&str) -> bool) {
    let Ok(rd) = std::fs::read_dir(cache) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() == 64 && !exists(&format!("sha256:{name}")) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn arm64() -> ImagePlatform {
        ImagePlatform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        }
    }

    #[test]
    fn libc_needs_said_with_versions_and_the_fix() {
        use hako_image::abi::LibcAbi;
        let centos6 = LibcAbi::from_line("/lib64/libc.so.6 2.6.18 2.12").unwrap();
        let w = warnings_for(&centos6, "amd64", "6.18.0-1-amd64", &|| "none");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with(
            "The image's glibc 2.12 (/lib64/libc.so.6) calls the legacy vsyscall page"
        ));
        assert!(w[0].contains("vsyscall=emulate on the kernel command line"));
        assert!(warnings_for(&centos6, "amd64", "6.18.0", &|| "xonly").is_empty());
        // vsyscall is an x86-64 matter; its mode is not even read for others.
        assert!(warnings_for(&centos6, "arm64", "6.18.0", &|| panic!("read")).is_empty());
        let future = LibcAbi::from_line("/usr/lib64/libc.so.6 7.0.1 2.99").unwrap();
        let w = warnings_for(&future, "amd64", "6.18.0-1-amd64", &|| panic!("read"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("The image's C library /usr/lib64/libc.so.6 needs Linux 7.0.1 or newer, and this host runs 6.18.0-1-amd64"));
        assert!(warnings_for(&future, "amd64", "7.0.1", &|| "none").is_empty());
        assert_eq!(kernel_triple("6.18"), (6, 18, 0));
    }

    #[test]
    fn parses_entries() {
        let e = Emulator::parse("qemu-aarch64", AARCH64).unwrap();
        assert!(e.enabled && e.fixed_binary());
        assert_eq!(e.interpreter, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
        assert!(e.matches(&arm64().elf_header().unwrap()));
        assert!(!e.matches(b"\x7fELF"));
        let ext = "enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n";
        assert!(Emulator::parse("wine", ext).is_none());
    }

    #[test]
    fn foreign_images_run_emulated_or_are_refused_with_both_fixes() {
        if ImagePlatform::host().architecture == "arm64" {
            return; // arm64 is native there; the table is for another host.
        }
        let e = Emulator::parse("qemu-aarch64", AARCH64).unwrap();
        let found = check_with(&arm64(), &|| vec![e.clone()]).unwrap();
        assert_eq!(
            found.as_ref().map(|e| e.name.as_str()),
            Some("qemu-aarch64")
        );
        let err = check_with(&arm64(), &Vec::new).unwrap_err().to_string();
        assert!(err.starts_with("image platform linux/arm64/v8 cannot run on this host (linux/"));
        assert!(err.contains("no emulator for arm64 is registered"), "{err}");
        assert!(err.contains("--platform linux/") && err.contains("qemu-user-static"));
        let no_f = Emulator {
            flags: "POC".into(),
            ..e.clone()
        };
        let err = check_with(&arm64(), &|| vec![no_f.clone()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("without the F flag"), "{err}");
        let off = Emulator {
            enabled: false,
            ..e
        };
        let err = check_with(&arm64(), &|| vec![off.clone()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("registered but disabled"), "{err}");
        // Native images never look at binfmt_misc.
        assert!(check_with(&ImagePlatform::host(), &|| panic!("read"))
            .unwrap()
            .is_none());
        let win = ImagePlatform {
            os: "windows".into(),
            ..ImagePlatform::host()
        };
        assert_eq!(
            check_with(&win, &Vec::new).unwrap_err().to_string(),
            "image operating system \"windows\" cannot be used on this platform"
        );
    }
}
