//! Device access rules: the kernel's cgroup v1 semantics, and the same rules as the eBPF program
//! cgroup v2 needs.
//!
//! cgroup v2 has no devices controller. Access to device nodes is decided by
//! `BPF_PROG_TYPE_CGROUP_DEVICE` programs attached to the cgroup, which the kernel runs on every
//! open and mknod of a device node. The program is generated here from the same rule list the
//! v1 `devices.allow`/`devices.deny` files take. This generator is hand-written on purpose: it
//! is the heart of device isolation, small (a dozen instructions per rule) and the crates that
//! assemble eBPF bring a loader, maps and BTF we do not need.
//!
//! A rule list is read the way the v1 kernel reads writes to those files, starting from a new
//! cgroup under an unrestricted parent (everything allowed, no exceptions): an `a` rule resets
//! the default (allow or deny) and drops every exception, whatever numbers or access it names;
//! a `b`/`c` rule adds an exception when it goes against the default, and takes access away
//! from the exception with the same type and numbers when it agrees with it. [`Canonical`] is
//! the result: a default and its exceptions, which both back ends apply.

use crate::{DeviceRule, Error};

/// `BPF_DEVCG_ACC_*`: what a process asks of a device node.
pub(crate) const ACC_MKNOD: u32 = 1;
pub(crate) const ACC_READ: u32 = 2;
pub(crate) const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// `BPF_DEVCG_DEV_*`: the node's type.
pub(crate) const DEV_BLOCK: u32 = 1;
pub(crate) const DEV_CHAR: u32 = 2;

/// An exception to the default: block or character devices, with optional numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exception {
    /// [`DEV_BLOCK`] or [`DEV_CHAR`].
    pub(crate) typ: u32,
    /// `None` matches any major number.
    pub(crate) major: Option<u32>,
    /// `None` matches any minor number.
    pub(crate) minor: Option<u32>,
    /// `ACC_*` bits.
    pub(crate) access: u32,
}

impl Exception {
    fn same_device(&self, other: &Exception) -> bool {
        self.typ == other.typ && self.major == other.major && self.minor == other.minor
    }

    fn covers(&self, typ: u32, major: u32, minor: u32) -> bool {
        self.typ == typ
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }

    /// The line `devices.allow`/`devices.deny` take, e.g. `c 136:* rw`.
    fn v1_line(&self) -> String {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        let mut access = String::with_capacity(3);
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        let typ = if self.typ == DEV_BLOCK { 'b' } else { 'c' };
        format!("{typ} {}:{} {access}", num(self.major), num(self.minor))
    }
}

/// A rule list reduced to what it means: a default and the exceptions to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Canonical {
    /// Whether a device no exception covers is allowed.
    pub(crate) default_allow: bool,
    /// Under a default of deny, what is allowed (an access needs one exception that grants all
    /// of it); under a default of allow, what is denied (any overlap denies).
    pub(crate) exceptions: Vec<Exception>,
}

fn access_bits(access: &str) -> Option<u32> {
    if access.is_empty() {
        return None;
    }
    access.chars().try_fold(0, |bits, c| match c {
        'r' => Some(bits | ACC_READ),
        'w' => Some(bits | ACC_WRITE),
        'm' => Some(bits | ACC_MKNOD),
        _ => None,
    })
}

/// A rule's device number: negative (as some OCI writers spell "any") or absent is a wildcard.
fn number(n: Option<i64>) -> Result<Option<u32>, Error> {
    match n {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| Error::InvalidResources("device numbers must fit in 32 bits")),
    }
}

impl Canonical {
    /// Reads `rules` in order, as the v1 kernel reads writes to a new cgroup's files.
    pub(crate) fn from_rules(rules: &[DeviceRule]) -> Result<Canonical, Error> {
        let mut c = Canonical {
            default_allow: true,
            exceptions: Vec::new(),
        };
        for rule in rules {
            let access = access_bits(&rule.access);
            let (Some(access), 'a' | 'b' | 'c') = (access, rule.kind) else {
                return Err(Error::InvalidResources(
                    "device rules need type a, c or b and access made of r, w, m",
                ));
            };
            if rule.kind == 'a' {
                c.default_allow = rule.allow;
                c.exceptions.clear();
                continue;
            }
            let ex = Exception {
                typ: if rule.kind == 'b' {
                    DEV_BLOCK
                } else {
                    DEV_CHAR
                },
                major: number(rule.major)?,
                minor: number(rule.minor)?,
                access,
            };
            if rule.allow == c.default_allow {
                // Agrees with the default: takes access away from the exception for exactly
                // this device (the kernel matches no wildcards here).
                c.exceptions.retain_mut(|e| {
                    if e.same_device(&ex) {
                        e.access &= !ex.access;
                    }
                    e.access != 0
                });
            } else if let Some(e) = c.exceptions.iter_mut().find(|e| e.same_device(&ex)) {
                e.access |= ex.access;
            } else {
                c.exceptions.push(ex);
            }
        }
        Ok(c)
    }

    /// Whether reading and writing the device is allowed (block or character).
    pub(crate) fn allows_rw(&self, block: bool, major: u32, minor: u32) -> bool {
        let typ = if block { DEV_BLOCK } else { DEV_CHAR };
        self.allows(typ, major, minor, ACC_READ | ACC_WRITE)
    }

    /// Whether `access` (`ACC_*` bits) to the device is allowed: the v1 kernel's check.
    pub(crate) fn allows(&self, typ: u32, major: u32, minor: u32, access: u32) -> bool {
        let mut matching = self
            .exceptions
            .iter()
            .filter(|e| e.covers(typ, major, minor));
        if self.default_allow {
            !matching.any(|e| e.access & access != 0)
        } else {
            matching.any(|e| access & !e.access == 0)
        }
    }

    /// Whether nothing is restricted: the program would allow everything.
    pub(crate) fn allows_all(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// The writes that give a v1 cgroup exactly this state, as (file, line): the default
    /// first (which drops every earlier exception), then the exceptions.
    pub(crate) fn v1_writes(&self) -> Vec<(&'static str, String)> {
        let (reset, except) = if self.default_allow {
            ("devices.allow", "devices.deny")
        } else {
            ("devices.deny", "devices.allow")
        };
        let mut out = Vec::with_capacity(1 + self.exceptions.len());
        out.push((reset, "a".to_owned()));
        out.extend(self.exceptions.iter().map(|e| (except, e.v1_line())));
        out
    }
}

/// One eBPF instruction, as `struct bpf_insn` lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Insn {
    pub(crate) code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub(crate) regs: u8,
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

// Instruction classes, operations and modes used below (linux/bpf_common.h, linux/bpf.h).
pub(crate) const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
pub(crate) const ALU32_AND_K: u8 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
pub(crate) const ALU32_RSH_K: u8 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
pub(crate) const ALU32_MOV_X: u8 = 0x04 | 0xb0 | 0x08; // BPF_ALU | BPF_MOV | BPF_X
pub(crate) const ALU64_MOV_K: u8 = 0x07 | 0xb0; // BPF_ALU64 | BPF_MOV | BPF_K
pub(crate) const JMP32_JEQ_K: u8 = 0x06 | 0x10; // BPF_JMP32 | BPF_JEQ | BPF_K
pub(crate) const JMP32_JNE_K: u8 = 0x06 | 0x50; // BPF_JMP32 | BPF_JNE | BPF_K
pub(crate) const JMP32_JNE_X: u8 = 0x06 | 0x50 | 0x08; // BPF_JMP32 | BPF_JNE | BPF_X
pub(crate) const JMP_EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT

// Registers: r1 holds the context on entry; r2..r5 get its fields.
const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The program that gives a cgroup v2 cgroup the access `c` describes. It returns 1 to allow
/// and 0 to deny.
///
/// `struct bpf_cgroup_dev_ctx` is `{ u32 access_type; u32 major; u32 minor; }` with
/// `access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*`. Each exception is a block of
/// tests that jump past the block on a mismatch and otherwise return the exception's answer;
/// falling off the last block returns the default. Comparisons are 32-bit (`BPF_JMP32`), so
/// device numbers above `i32::MAX` compare as the kernel passes them.
pub(crate) fn program(c: &Canonical) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, TYPE, R1, 0, 0),
        insn(ALU32_AND_K, TYPE, 0, 0, 0xffff),
        insn(LDX_MEM_W, ACCESS, R1, 0, 0),
        insn(ALU32_RSH_K, ACCESS, 0, 0, 16),
        insn(LDX_MEM_W, MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, MINOR, R1, 8, 0),
    ];
    let verdict = |allow: bool| i32::from(allow);
    for e in &c.exceptions {
        // Jumps hold a placeholder offset (-1) until the block's length is known.
        let mut block = vec![insn(JMP32_JNE_K, TYPE, 0, -1, e.typ as i32)];
        if e.access != ACC_ALL {
            block.push(insn(ALU32_MOV_X, R1, ACCESS, 0, 0));
            block.push(insn(ALU32_AND_K, R1, 0, 0, e.access as i32));
            if c.default_allow {
                // A deny exception: any of the asked access it names denies.
                block.push(insn(JMP32_JEQ_K, R1, 0, -1, 0));
            } else {
                // An allow exception: it must grant all of the asked access.
                block.push(insn(JMP32_JNE_X, R1, ACCESS, -1, 0));
            }
        }
        if let Some(major) = e.major {
            block.push(insn(JMP32_JNE_K, MAJOR, 0, -1, major as i32));
        }
        if let Some(minor) = e.minor {
            block.push(insn(JMP32_JNE_K, MINOR, 0, -1, minor as i32));
        }
        block.push(insn(ALU64_MOV_K, R0, 0, 0, verdict(!c.default_allow)));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.off == -1 {
                // Past the rest of the block: the next instruction after it.
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, R0, 0, 0, verdict(c.default_allow)));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}
