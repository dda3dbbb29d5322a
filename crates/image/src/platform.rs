//! The platform an image is for, as its config records it (`os`, `architecture`, `variant`),
//! and how an executable for it starts: the ELF identification a `binfmt_misc` handler
//! matches.

use oci_spec::image::ImageConfiguration;

/// The os/architecture/variant an image's config records, in Go's spelling (`linux`,
/// `arm64`, `v8`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePlatform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// `v7`, `v8`, … when the config names one.
    pub variant: Option<String>,
}

impl ImagePlatform {
    /// What `config` records. An image without `os` is a Linux one (Docker's reading of old
    /// configs).
    pub fn of(config: &ImageConfiguration) -> ImagePlatform {
        let os = config.os().to_string();
        ImagePlatform {
            os: if os.is_empty() { "linux".into() } else { os },
            architecture: config.architecture().to_string(),
            variant: config.variant().clone().filter(|v| !v.is_empty()),
        }
    }

    /// The same, from a config's JSON, for callers that hold it undecoded.
    pub fn of_json(config: &serde_json::Value) -> ImagePlatform {
        let s = |k: &str| config[k].as_str().filter(|s| !s.is_empty());
        ImagePlatform {
            os: s("os").unwrap_or("linux").to_string(),
            architecture: s("architecture").unwrap_or_default().to_string(),
            variant: s("variant").map(str::to_string),
        }
    }

    /// The platform this binary runs as: what a native container is.
    pub fn host() -> ImagePlatform {
        ImagePlatform {
            os: "linux".into(),
            architecture: crate::store::go_arch().to_string(),
            variant: None,
        }
    }

    /// Refuses any OS but Linux, with Docker's message.
    pub fn check_os(&self) -> Result<(), crate::Error> {
        if self.os == "linux" {
            Ok(())
        } else {
            Err(crate::Error::UnsupportedOs(self.os.clone()))
        }
    }

    /// Whether a container of this platform runs natively here. An empty architecture (a
    /// config that names none, as some hand-made ones) is taken as the host's, as Docker does.
    pub fn is_native(&self) -> bool {
        self.os == "linux"
            && (self.architecture.is_empty()
                || self.architecture == crate::store::go_arch().to_string())
    }

    /// Whether an image of this platform is what `want` (`--platform`) asks for: the same OS
    /// and architecture (an empty one is the host's), and the same variant when both name one;
    /// arm64 images often leave out their only variant, v8.
    pub fn satisfies(&self, want: &ImagePlatform) -> bool {
        let host = crate::store::go_arch().to_string();
        let arch = if self.architecture.is_empty() {
            &host
        } else {
            &self.architecture
        };
        self.os == want.os
            && *arch == want.architecture
            && match (&want.variant, &self.variant) {
                (Some(w), Some(h)) => w == h,
                (Some(w), None) => want.architecture == "arm64" && w == "v8",
                (None, _) => true,
            }
    }

    /// The first bytes of an ELF executable built for this platform: what the kernel, and a
    /// `binfmt_misc` handler's magic and mask, look at (`e_ident`, `e_type`, `e_machine`).
    /// `None` for an architecture this table does not know.
    pub fn elf_header(&self) -> Option<[u8; 20]> {
        // (64-bit, big-endian, e_machine) per GOARCH.
        let (wide, big, machine): (bool, bool, u16) = match self.architecture.as_str() {
            "amd64" => (true, false, 62),
            "386" => (false, false, 3),
            "arm64" => (true, false, 183),
            "arm" => (false, false, 40),
            "ppc64le" => (true, false, 21),
            "ppc64" => (true, true, 21),
            "s390x" => (true, true, 22),
            "riscv64" => (true, false, 243),
            "mips64le" => (true, false, 8),
            "mips64" => (true, true, 8),
            "mipsle" => (false, false, 8),
            "mips" => (false, true, 8),
            "loong64" => (true, false, 258),
            _ => return None,
        };
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if wide { 2 } else { 1 };
        h[5] = if big { 2 } else { 1 };
        h[6] = 1; // EV_CURRENT
        let (e_type, e_machine) = if big {
            (2u16.to_be_bytes(), machine.to_be_bytes())
        } else {
            (2u16.to_le_bytes(), machine.to_le_bytes())
        };
        // ET_EXEC; handlers mask its low bit so that ET_DYN (PIE) matches too.
        h[16..18].copy_from_slice(&e_type);
        h[18..20].copy_from_slice(&e_machine);
        Some(h)
    }
}

impl std::fmt::Display for ImagePlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_config_and_refuses_other_oses() {
        let cfg: ImageConfiguration = serde_json::from_str(
            r#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let p = ImagePlatform::of(&cfg);
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.check_os().is_ok());
        let win =
            ImagePlatform::of_json(&serde_json::json!({"os": "windows", "architecture": "amd64"}));
        assert_eq!(
            win.check_os().unwrap_err().to_string(),
            "image operating system \"windows\" cannot be used on this platform"
        );
        assert!(!win.is_native());
        assert!(ImagePlatform::host().is_native());
        assert_eq!(ImagePlatform::of_json(&serde_json::json!({})).os, "linux");
    }

    #[test]
    fn satisfies_a_requested_platform() {
        let p = |os: &str, a: &str, v: Option<&str>| ImagePlatform {
            os: os.into(),
            architecture: a.into(),
            variant: v.map(str::to_string),
        };
        assert!(p("linux", "arm64", None).satisfies(&p("linux", "arm64", Some("v8"))));
        assert!(p("linux", "arm64", Some("v8")).satisfies(&p("linux", "arm64", None)));
        assert!(!p("linux", "arm", Some("v6")).satisfies(&p("linux", "arm", Some("v7"))));
        assert!(!p("linux", "arm", None).satisfies(&p("linux", "arm", Some("v7"))));
        assert!(!p("linux", "amd64", None).satisfies(&p("linux", "arm64", None)));
        assert!(!p("windows", "amd64", None).satisfies(&p("linux", "amd64", None)));
        assert!(p("linux", "", None).satisfies(&ImagePlatform::host()));
    }

    #[test]
    fn elf_headers_match_qemu_magic() {
        // Debian's qemu-aarch64 binfmt entry (qemu's scripts/qemu-binfmt-conf.sh).
        let magic = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00";
        let mask =
            b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
        let arm64 = ImagePlatform::of_json(&serde_json::json!({"architecture": "arm64"}));
        let h = arm64.elf_header().unwrap();
        assert!(h
            .iter()
            .zip(mask)
            .zip(magic)
            .all(|((b, m), g)| b & m == g & m));
        let amd64 = ImagePlatform::of_json(&serde_json::json!({"architecture": "amd64"}));
        let h = amd64.elf_header().unwrap();
        assert!(!h
            .iter()
            .zip(mask)
            .zip(magic)
            .all(|((b, m), g)| b & m == g & m));
        let s390x = ImagePlatform::of_json(&serde_json::json!({"architecture": "s390x"}));
        assert_eq!(&s390x.elf_header().unwrap()[18..20], &[0, 22]);
        assert!(
            ImagePlatform::of_json(&serde_json::json!({"architecture": "vax"}))
                .elf_header()
                .is_none()
        );
    }
}
