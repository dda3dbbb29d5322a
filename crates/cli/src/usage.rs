//! Command-line usage errors the way Docker's CLI reports them: a flag it does not know, a flag
//! without its value or with a bad one exits 125 (`unknown flag: --bogus`); a wrong number of
//! arguments or an unknown command exits 1 (`'hako rm' requires at least 1 argument`,
//! `unknown command: hako nosuch`); a command group without its subcommand prints the group's
//! help and exits 0. Each is one line, then where to read more.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// What a usage error prints (on stderr, as Docker prints even the help of a bare command
/// group) and the status it exits with.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage {
    /// The exit status.
    pub code: u8,
    /// stderr, or None when clap prints (help and version).
    pub message: Option<String>,
}

/// A `--filter` value must be `name=value`; Docker's CLI refuses anything else as a bad flag
/// value (125) before asking its daemon, which judges the names.
pub fn filter_arg(s: &str) -> Result<String, String> {
    if s.contains('=') {
        Ok(s.to_string())
    } else {
        Err("bad format of filter (expected name=value)".into())
    }
}

/// Docker's words for a flag it does not know: `unknown flag: --bogus`, or for a short one
/// `unknown shorthand flag: 'z' in -z`.
pub fn unknown_flag(arg: &str) -> String {
    match arg.strip_prefix('-') {
        Some(rest) if !rest.starts_with('-') && !rest.is_empty() => {
            let c = rest.chars().next().unwrap_or('-');
            format!("unknown shorthand flag: '{c}' in {arg}")
        }
        _ => format!("unknown flag: {arg}"),
    }
}

/// Translates a parse error of `argv` (the process's arguments, program name first).
/// `command` makes the command line (the top level's help is grouped there).
pub fn explain(e: &clap::Error, argv: &[String], command: fn() -> clap::Command) -> Usage {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            return Usage {
                code: 0,
                message: None,
            }
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            // `docker image`, like `docker` alone, shows the group's commands.
            let mut root = command();
            root.build();
            let (_, cmd) = locate(&root, argv);
            return Usage {
                code: 0,
                message: Some(cmd.clone().render_help().to_string()),
            };
        }
        _ => {}
    }
    let mut root = command();
    root.build();
    let (path, cmd) = locate(&root, argv);
    let path = path.join(" ");
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.first().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let flag_error = |msg: String| Usage {
        code: 125,
        message: Some(format!("hako: {msg}\nSee '{path} --help'.\n")),
    };
    let args_error = || Usage {
        code: 1,
        message: Some(format!(
            "hako: '{path}' {}\nSee '{path} --help'.\n",
            arity(cmd)
        )),
    };
    match e.kind() {
        ErrorKind::UnknownArgument if arg.starts_with('-') && arg.len() > 1 => {
            flag_error(unknown_flag(&arg))
        }
        ErrorKind::InvalidSubcommand => {
            let sub = match e.get(ContextKind::InvalidSubcommand) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => arg,
            };
            Usage {
                code: 1,
                message: Some(format!(
                    "hako: unknown command: {path} {sub}\nSee '{path} --help'.\n"
                )),
            }
        }
        ErrorKind::UnknownArgument
        | ErrorKind::MissingRequiredArgument
        | ErrorKind::WrongNumberOfValues
        | ErrorKind::TooFewValues
        | ErrorKind::TooManyValues
            if !arg.starts_with('-') =>
        {
            args_error()
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::NoEquals
            if arg.starts_with('-') =>
        {
            let flag = flag_names(cmd, &arg);
            let value = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            if value.is_empty() && e.kind() == ErrorKind::InvalidValue {
                return flag_error(format!("flag needs an argument: {}", as_typed(&flag, argv)));
            }
            let why = match std::error::Error::source(e) {
                Some(s) => s.to_string(),
                None => match e.get(ContextKind::ValidValue) {
                    Some(ContextValue::Strings(v)) => format!("must be one of {}", v.join(", ")),
                    _ => "invalid value".to_string(),
                },
            };
            flag_error(format!(
                "invalid argument \"{value}\" for \"{flag}\" flag: {why}"
            ))
        }
        // A bad value of an argument, or anything else: clap's own words, on one line.
        _ => Usage {
            code: if arg.starts_with('-') { 125 } else { 1 },
            message: Some(format!("hako: {}\nSee '{path} --help'.\n", first_line(e))),
        },
    }
}

fn first_line(e: &clap::Error) -> String {
    let s = e.render().to_string();
    s.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

/// The command `argv` names, as a path (`hako network create`) and its definition. Only the
/// global `--root` may come before a subcommand.
fn locate<'a>(root: &'a clap::Command, argv: &[String]) -> (Vec<String>, &'a clap::Command) {
    let mut path = vec![root.get_name().to_string()];
    let mut cmd = root;
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        if a == "--root" {
            args.next();
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        match cmd.find_subcommand(a) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                cmd = sub;
            }
            None => break,
        }
    }
    (path, cmd)
}

/// Docker's wording of how many arguments a command takes (`cli.RequiresMinArgs` and kin).
fn arity(cmd: &clap::Command) -> String {
    let mut min = 0usize;
    let mut max = Some(0usize);
    for p in cmd.get_positionals() {
        let range = p.get_num_args().unwrap_or_default();
        if p.is_required_set() {
            min += range.min_values();
        }
        max = match (max, range.max_values()) {
            (Some(m), n) if n != usize::MAX => Some(m + n),
            _ => None,
        };
    }
    let noun = |n: usize| if n == 1 { "argument" } else { "arguments" };
    match max {
        Some(0) => "accepts no arguments".to_string(),
        Some(m) if m == min => format!("requires {m} {}", noun(m)),
        Some(m) if min == 0 => format!("requires at most {m} {}", noun(m)),
        Some(m) => format!("requires at least {min} and at most {m} {}", noun(m)),
        None => format!("requires at least {min} {}", noun(min)),
    }
}

/// How the user wrote a flag that lacks its value, in Docker's words: `'n' in -n` for the
/// short form, `--last` for the long one.
fn as_typed(names: &str, argv: &[String]) -> String {
    let (short, long) = match names.split_once(", ") {
        Some((s, l)) => (Some(s), l),
        None if names.starts_with("--") => (None, names),
        None => (Some(names), ""),
    };
    let last_short = short.and_then(|s| argv.iter().rposition(|a| a == s));
    let last_long = argv.iter().rposition(|a| a == long);
    match (short, last_short, last_long) {
        (Some(s), Some(i), l) if l.is_none_or(|l| l < i) => {
            format!("'{}' in {s}", s.trim_start_matches('-'))
        }
        _ => long.to_string(),
    }
}

/// `-n, --last` for the flag clap calls `--last <LAST>`, as Docker names flags in errors.
fn flag_names(cmd: &clap::Command, shown: &str) -> String {
    let name = shown.split_whitespace().next().unwrap_or(shown);
    let found = cmd.get_arguments().find(|a| {
        a.get_long().is_some_and(|l| name == format!("--{l}"))
            || a.get_short().is_some_and(|s| name == format!("-{s}"))
    });
    match found {
        Some(a) => match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => name.to_string(),
        },
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    #[command(name = "hako", disable_help_subcommand = true)]
    struct T {
        #[arg(long, global = true)]
        root: Option<String>,
        #[command(subcommand)]
        cmd: Sub,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        Ps {
            #[arg(short = 'n', long)]
            last: Option<usize>,
        },
        Rm {
            #[arg(required = true)]
            names: Vec<String>,
        },
        Port {
            c: String,
            p: Option<String>,
        },
        #[command(subcommand)]
        Image(ImageSub),
    }

    #[derive(clap::Subcommand)]
    enum ImageSub {
        Ls { r: Option<String> },
    }

    fn explain_args(args: &[&str]) -> Usage {
        let argv: Vec<String> = std::iter::once("hako")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let e = T::try_parse_from(&argv).err().expect("a usage error");
        explain(&e, &argv, T::command)
    }

    #[test]
    fn docker_statuses_and_words() {
        let u = explain_args(&["ps", "--bogus"]);
        assert_eq!(u.code, 125);
        assert_eq!(
            u.message.unwrap(),
            "hako: unknown flag: --bogus\nSee 'hako ps --help'.\n"
        );
        let u = explain_args(&["--root", "/r", "ps", "-z"]);
        assert_eq!(u.code, 125);
        assert!(u
            .message
            .unwrap()
            .starts_with("hako: unknown shorthand flag: 'z' in -z\n"));
        let u = explain_args(&["ps", "-n", "x"]);
        assert_eq!(u.code, 125);
        assert!(u
            .message
            .unwrap()
            .starts_with("hako: invalid argument \"x\" for \"-n, --last\" flag: "));
        assert_eq!(
            explain_args(&["ps", "-n"]).message.unwrap(),
            "hako: flag needs an argument: 'n' in -n\nSee 'hako ps --help'.\n"
        );
        assert!(explain_args(&["ps", "--last"])
            .message
            .unwrap()
            .starts_with("hako: flag needs an argument: --last\n"));
        let cases = [
            (&["ps", "x"][..], "'hako ps' accepts no arguments"),
            (&["rm"], "'hako rm' requires at least 1 argument"),
            (
                &["port"],
                "'hako port' requires at least 1 and at most 2 arguments",
            ),
            (
                &["port", "a", "b", "c"],
                "'hako port' requires at least 1 and at most 2 arguments",
            ),
            (
                &["image", "ls", "a", "b"],
                "'hako image ls' requires at most 1 argument",
            ),
            (&["nosuch"], "unknown command: hako nosuch"),
            (&["image", "nosuch"], "unknown command: hako image nosuch"),
        ];
        for (args, want) in cases {
            let u = explain_args(args);
            assert_eq!(u.code, 1, "{args:?}");
            let m = u.message.unwrap();
            assert!(m.starts_with(&format!("hako: {want}\n")), "{args:?}: {m}");
        }
        for args in [&[][..], &["image"]] {
            let u = explain_args(args);
            assert_eq!(u.code, 0, "{args:?}");
            assert!(u.message.unwrap().contains("Usage:"), "{args:?}");
        }
        assert_eq!(
            explain_args(&["--help"]),
            Usage {
                code: 0,
                message: None
            }
        );
    }

    #[test]
    fn filter_values() {
        assert!(filter_arg("name=x").is_ok());
        assert!(filter_arg("label=a=b").is_ok());
        assert_eq!(
            filter_arg("bogus").unwrap_err(),
            "bad format of filter (expected name=value)"
        );
    }
}
