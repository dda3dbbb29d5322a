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
