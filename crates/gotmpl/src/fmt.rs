//! Go's `fmt` for the values a template handles: `Sprint`, `Sprintln`, `Sprintf` (verbs,
//! flags, widths, precisions, argument indexes and Go's `%!` error forms), and
//! `strconv.Quote`.

use crate::Value;

/// How much text one print or printf builds: beyond it the text stops growing (a width of
/// 10^6 applied to each of a million elements would otherwise take a terabyte), and the
/// template functions report it as an error ([`too_long`]).
pub const MAX_TEXT: usize = 4 << 20;

/// Whether `s` reached [`MAX_TEXT`] (and so may have been cut).
pub fn too_long(s: &str) -> bool {
    s.len() >= MAX_TEXT
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::String(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        print_value(&mut out, a, 'v', &Flags::default());
        prev_string = is_string;
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands, a newline after.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_value(&mut out, a, 'v', &Flags::default());
    }
    out.push('\n');
    out
}

/// Go's `%v` of one value.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    print_value(&mut out, v, 'v', &Flags::default());
    out
}

#[derive(Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

/// Go refuses widths and precisions beyond this (`%!(BADWIDTH)`).
const TOO_LARGE: usize = 1_000_000;

/// Go's `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argn = 0usize;
    let mut reordered = false;
    let b = format.as_bytes();
    let mut i = 0;
    while i < b.len() && !too_long(&out) {
        let lit_end = format[i..].find('%').map_or(b.len(), |n| i + n);
        out.push_str(&format[i..lit_end]);
        if lit_end >= b.len() {
            break;
        }
        i = lit_end + 1;
        let mut f = Flags::default();
        while i < b.len() {
            match b[i] {
                b'#' => f.sharp = true,
                b'0' => f.zero = true,
                b'+' => f.plus = true,
                b'-' => f.minus = true,
                b' ' => f.space = true,
                _ => break,
            }
            i += 1;
        }
        // `[n]` argument indexes, before a width, a precision or the verb.
        let mut bad_index = false;
        let arg_index = |i: &mut usize, argn: &mut usize, bad: &mut bool, reordered: &mut bool| {
            if *i < b.len() && b[*i] == b'[' {
                *reordered = true;
                match format[*i..].find(']') {
                    Some(close) => {
                        let n = format[*i + 1..*i + close].parse::<usize>().ok();
                        match n {
                            Some(n) if n >= 1 && n <= args.len() => *argn = n - 1,
                            _ => *bad = true,
                        }
                        *i += close + 1;
                    }
                    None => {
                        *bad = true;
                        *i = b.len();
                    }
                }
            }
        };
        arg_index(&mut i, &mut argn, &mut bad_index, &mut reordered);
        // Width: digits or `*`.
        if i < b.len() && b[i] == b'*' {
            i += 1;
            match args.get(argn) {
                Some(Value::Int(n)) if n.unsigned_abs() <= TOO_LARGE as u64 => {
                    f.wid = Some(n.unsigned_abs() as usize);
                    if *n < 0 {
                        f.minus = true;
                        f.zero = false;
                    }
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argn += 1;
        } else {
            let (n, next) = digits(b, i);
            if next > i {
                match n {
                    Some(n) if n <= TOO_LARGE => f.wid = Some(n),
                    _ => out.push_str("%!(BADWIDTH)"),
                }
            }
            i = next;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            arg_index(&mut i, &mut argn, &mut bad_index, &mut reordered);
            if i < b.len() && b[i] == b'*' {
                i += 1;
                match args.get(argn) {
                    Some(Value::Int(n)) if (0..=TOO_LARGE as i64).contains(n) => {
                        f.prec = Some(*n as usize)
                    }
                    Some(Value::Int(n)) if *n < 0 => {}
                    _ => out.push_str("%!(BADPREC)"),
                }
                argn += 1;
            } else {
                let (n, next) = digits(b, i);
                match n {
                    Some(n) if n <= TOO_LARGE => f.prec = Some(n),
                    None if next == i => f.prec = Some(0),
                    _ => out.push_str("%!(BADPREC)"),
                }
                i = next;
            }
        }
        arg_index(&mut i, &mut argn, &mut bad_index, &mut reordered);
        if f.minus {
            f.zero = false;
        }
        let Some(verb) = format[i.min(b.len())..].chars().next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
            continue;
        }
        if bad_index {
            out.push_str(&format!("%!{verb}(BADINDEX)"));
            continue;
        }
        let Some(arg) = args.get(argn) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argn += 1;
        if verb == 'T' {
            pad(&mut out, arg.type_name(), &f);
            continue;
        }
        print_value(&mut out, arg, verb, &f);
    }
    if !reordered && argn < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, a) in args[argn..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match a {
                Value::Nil | Value::NoValue => out.push_str("<nil>"),
                a => {
                    out.push_str(a.type_name());
                    out.push('=');
                    print_value(&mut out, a, 'v', &Flags::default());
                }
            }
        }
        out.push(')');
    }
    out
}

/// A run of decimal digits at `i`: its value (None when too large) and where it ends.
fn digits(b: &[u8], mut i: usize) -> (Option<usize>, usize) {
    let mut n: Option<usize> = Some(0);
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        n = n
            .and_then(|n| n.checked_mul(10))
            .and_then(|n| n.checked_add(usize::from(b[i] - b'0')))
            .filter(|&n| n <= TOO_LARGE);
        i += 1;
    }
    if i == start {
        (None, i)
    } else {
        (n, i)
    }
}

/// Pads `s` to the width, on the left unless `-`.
fn pad(out: &mut String, s: &str, f: &Flags) {
    if too_long(out) {
        return;
    }
    let n = s.chars().count();
    let w = f.wid.unwrap_or(0);
    if n >= w {
        out.push_str(s);
        return;
    }
    let fill = " ".repeat(w - n);
    if f.minus {
        out.push_str(s);
        out.push_str(&fill);
    } else {
        out.push_str(&fill);
        out.push_str(s);
    }
}

/// Pads a number: zeros go after the sign when `0` is set.
fn pad_number(out: &mut String, s: &str, f: &Flags) {
    if too_long(out) {
        return;
    }
    let w = f.wid.unwrap_or(0);
    let n = s.chars().count();
    if f.zero && !f.minus && n < w {
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+' | b'-' | b' ') => s.split_at(1),
            _ => ("", s),
        };
        out.push_str(sign);
        out.push_str(&"0".repeat(w - n));
        out.push_str(rest);
    } else {
        pad(out, s, f);
    }
}

fn bad_verb(out: &mut String, v: &Value, verb: char) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match v {
        Value::Nil | Value::NoValue => out.push_str("<nil>"),
        v => {
            out.push_str(v.type_name());
            out.push('=');
            print_value(out, v, 'v', &Flags::default());
        }
    }
    out.push(')');
}

fn print_value(out: &mut String, v: &Value, verb: char, f: &Flags) {
    match v {
        Value::NoValue | Value::Nil => match verb {
            'v' => pad(out, "<nil>", f),
            _ => bad_verb(out, v, verb),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => pad(out, if *b { "true" } else { "false" }, f),
            _ => bad_verb(out, v, verb),
        },
        Value::Int(i) => fmt_integer(out, *i < 0, u128::from(i.unsigned_abs()), verb, f, v),
        Value::Uint(u) => fmt_integer(out, false, u128::from(*u), verb, f, v),
        Value::Float(x) => fmt_float(out, *x, verb, f, v),
        Value::String(s) => fmt_string(out, s, verb, f, v),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if too_long(out) {
                    break;
                }
                if i > 0 {
                    out.push(' ');
                }
                print_value(out, e, verb, f);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push_str("map[");
            for (i, (k, e)) in o.fields.iter().enumerate() {
                if too_long(out) {
                    break;
                }
                if i > 0 {
                    out.push(' ');
                }
                fmt_string(out, k, verb, f, &Value::str(k));
                out.push(':');
                print_value(out, e, verb, f);
            }
            out.push(']');
        }
    }
}

fn fmt_string(out: &mut String, s: &str, verb: char, f: &Flags, v: &Value) {
    let s = match f.prec {
        Some(p) if matches!(verb, 'v' | 's' | 'q' | 'x' | 'X') => {
            let end = s.char_indices().nth(p).map_or(s.len(), |(i, _)| i);
            &s[..end]
        }
        _ => s,
    };
    match verb {
        'v' | 's' => pad(out, s, f),
        'q' => {
            if f.sharp && !s.contains('`') && s.chars().all(|c| c == '\t' || !c.is_control()) {
                pad(out, &format!("`{s}`"), f);
            } else {
                pad(out, &quote(s), f);
            }
        }
        'x' | 'X' => {
            let mut h = String::new();
            for (i, b) in s.bytes().enumerate() {
                if f.space && i > 0 {
                    h.push(' ');
                }
                if f.sharp && (f.space || i == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    h.push_str(&format!("{b:02x}"));
                } else {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            pad(out, &h, f);
        }
        _ => bad_verb(out, v, verb),
    }
}

fn fmt_integer(out: &mut String, neg: bool, mag: u128, verb: char, f: &Flags, v: &Value) {
    let (base, upper) = match verb {
        'v' | 'd' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' => {
            let c = u32::try_from(mag)
                .ok()
                .filter(|_| !neg)
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, &c.to_string(), f);
            return;
        }
        'q' => {
            let c = u32::try_from(mag)
                .ok()
                .filter(|_| !neg)
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, &quote_rune(c), f);
            return;
        }
        'U' => {
            let mut s = format!("U+{mag:04X}");
            if f.sharp {
                if let Some(c) = u32::try_from(mag).ok().and_then(char::from_u32) {
                    if !c.is_control() {
                        s.push_str(&format!(" '{c}'"));
                    }
                }
            }
            pad(out, &s, f);
            return;
        }
        _ => {
            bad_verb(out, v, verb);
            return;
        }
    };
    let mut digits = match base {
        2 => format!("{mag:b}"),
        8 => format!("{mag:o}"),
        16 if upper => format!("{mag:X}"),
        16 => format!("{mag:x}"),
        _ => mag.to_string(),
    };
    if let Some(p) = f.prec {
        if p == 0 && mag == 0 {
            digits.clear();
        } else if digits.len() < p {
            digits = "0".repeat(p - digits.len()) + &digits;
        }
    }
    let mut prefix = String::new();
    if neg {
        prefix.push('-');
    } else if f.plus {
        prefix.push('+');
    } else if f.space {
        prefix.push(' ');
    }
    if verb == 'O' {
        prefix.push_str("0o");
    } else if f.sharp {
        match verb {
            'b' => prefix.push_str("0b"),
            'o' if !digits.starts_with('0') => prefix.push('0'),
            'x' => prefix.push_str("0x"),
            'X' => prefix.push_str("0X"),
            _ => {}
        }
    }
    // With a precision, `0` does not pad (Go).
    let zero = f.zero && f.prec.is_none();
    let w = f.wid.unwrap_or(0);
    let len = prefix.len() + digits.len();
    if too_long(out) {
        return;
    }
    if zero && !f.minus && len < w {
        out.push_str(&prefix);
        out.push_str(&"0".repeat(w - len));
        out.push_str(&digits);
    } else {
        pad(out, &(prefix + &digits), f);
    }
}

/// More decimals than any f64 has (its exact expansion ends within 1,074 places): beyond
/// them only zeros follow. Rust's formatter panics on precisions above `u16::MAX`, which Go's
/// (up to 10^6) reach, so longer ones are written as this many and then zeros.
const EXACT_DIGITS: usize = 1100;

/// `format!("{:.*}")` or `format!("{:.*e}")` with any precision up to Go's bound.
fn fixed(x: f64, prec: usize, exp: bool) -> String {
    let p = prec.min(EXACT_DIGITS);
    let zeros = "0".repeat(prec - p);
    if exp {
        let s = format!("{:.*e}", p, x);
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        format!("{m}{zeros}e{e}")
    } else {
        format!("{:.*}{zeros}", p, x)
    }
}

/// The decimal digits of `|x|` (no trailing zeros) and the decimal point position, to
/// `sig` significant digits or the shortest that reads back.
fn decimal(x: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        Some(p) => format!("{:.*e}", p.saturating_sub(1).min(EXACT_DIGITS), x.abs()),
        None => format!("{:e}", x.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: String = mant.chars().filter(|c| *c != '.').collect();
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    if d == "0" {
        return (d, 1);
    }
    (d, exp + 1)
}

fn exp_text(e: i32, upper: bool) -> String {
    format!(
        "{}{}{:02}",
        if upper { 'E' } else { 'e' },
        if e < 0 { '-' } else { '+' },
        e.unsigned_abs()
    )
}

/// Go's `%g` (`%v`): the shortest digits (or `prec` significant ones), in %e form when
/// the exponent is below -4 or at least the precision (6 for the shortest).
fn fmt_g(x: f64, prec: Option<usize>, upper: bool) -> String {
    let prec = prec.map(|p| p.max(1));
    let (d, dp) = decimal(x, prec);
    let nd = d.len() as i32;
    let mut eprec = prec.map_or(nd, |p| p as i32);
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if prec.is_none() {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        let mut s = d[..1].to_string();
        if nd > 1 {
            s.push('.');
            s.push_str(&d[1..]);
        }
        s + &exp_text(exp, upper)
    } else {
        place_point(&d, dp)
    }
}

/// Digits with the decimal point at `dp`, written out in full.
fn place_point(d: &str, dp: i32) -> String {
    if dp <= 0 {
        format!("0.{}{d}", "0".repeat(dp.unsigned_abs() as usize))
    } else if (dp as usize) >= d.len() {
        format!("{d}{}", "0".repeat(dp as usize - d.len()))
    } else {
        format!("{}.{}", &d[..dp as usize], &d[dp as usize..])
    }
}

fn fmt_float(out: &mut String, x: f64, verb: char, f: &Flags, v: &Value) {
    let upper = matches!(verb, 'E' | 'G' | 'F');
    let body = if x.is_nan() {
        "NaN".to_string()
    } else if x.is_infinite() {
        "Inf".to_string()
    } else {
        match verb {
            'v' | 'g' | 'G' => fmt_g(x, f.prec, upper),
            'e' | 'E' => {
                let s = fixed(x.abs(), f.prec.unwrap_or(6), true);
                let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                format!("{m}{}", exp_text(e.parse().unwrap_or(0), upper))
            }
            'f' | 'F' => fixed(x.abs(), f.prec.unwrap_or(6), false),
            _ => {
                bad_verb(out, v, verb);
                return;
            }
        }
    };
    let sign = if x.is_sign_negative() && !x.is_nan() {
        "-"
    } else if f.plus || x.is_infinite() {
        "+"
    } else if f.space {
        " "
    } else {
        ""
    };
    let s = format!("{sign}{body}");
    if x.is_finite() {
        pad_number(out, &s, f);
    } else {
        pad(out, &s, f);
    }
}

fn escape_char(out: &mut String, c: char, q: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == q => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_control() || (c.is_whitespace() && c != ' ') => {
            if (c as u32) < 0x10000 {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c => out.push(c),
    }
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_char(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune`.
fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_char(&mut out, c, '\'');
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn printf_verbs_as_go() {
        let p = |f: &str, a: &[Value]| sprintf(f, a);
        assert_eq!(p("%5s|%-5s|", &[s("ab"), s("cd")]), "   ab|cd   |");
        assert_eq!(
            p("%05d %d%%", &[Value::Int(42), Value::Int(-7)]),
            "00042 -7%"
        );
        assert_eq!(p("%05d", &[Value::Int(-42)]), "-0042");
        assert_eq!(
            p("%.2f %f", &[Value::Float(2.345), Value::Float(1.5)]),
            "2.35 1.500000"
        );
        assert_eq!(
            p(
                "%x %X %o %b",
                &[
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5)
                ]
            ),
            "ff FF 10 101"
        );
        assert_eq!(p("%x", &[s("hi")]), "6869");
        assert_eq!(p("%q", &[s("a\"b\n")]), r#""a\"b\n""#);
        assert_eq!(p("%t %v", &[Value::Bool(true), Value::Nil]), "true <nil>");
        assert_eq!(p("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(p("%s", &[Value::Int(5)]), "%!s(int=5)");
        assert_eq!(p("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(p("%d", &[Value::Int(1), s("x")]), "1%!(EXTRA string=x)");
        assert_eq!(p("%", &[]), "%!(NOVERB)");
        assert_eq!(p("%[2]s %[1]s", &[s("a"), s("b")]), "b a");
        assert_eq!(p("%9999999s", &[s("a")]), "%!(BADWIDTH)a");
        assert_eq!(p("%+d % d", &[Value::Int(3), Value::Int(3)]), "+3  3");
        assert_eq!(p("%c%c", &[Value::Int(72), Value::Int(105)]), "Hi");
        assert_eq!(p("%q", &[Value::Int(97)]), "'a'");
        assert_eq!(p("%U", &[Value::Int(0x41)]), "U+0041");
        assert_eq!(p("%T %T", &[s("a"), Value::Float(1.0)]), "string float64");
        assert_eq!(p("%.1s", &[s("héllo")]), "h");
        assert_eq!(p("%05s", &[s("ab")]), "   ab");
        assert_eq!(p("%6.2f|", &[Value::Float(-1.0)]), " -1.00|");
        assert_eq!(p("%e", &[Value::Float(1234.5678)]), "1.234568e+03");
        assert_eq!(p("%.3g", &[Value::Float(1000.0)]), "1e+03");
        assert_eq!(p("%g", &[Value::Float(0.00001)]), "1e-05");
        assert_eq!(p("%#x", &[Value::Int(255)]), "0xff");
        assert_eq!(p("%x", &[Value::Int(-255)]), "-ff");
        assert_eq!(p("%.3d", &[Value::Int(7)]), "007");
        assert_eq!(p("%v", &[Value::Float(1.5)]), "1.5");
        // Precisions beyond Rust's formatter (u16::MAX) but within Go's bound: zeros follow.
        let long = p("%.70000f", &[Value::Float(1.5)]);
        assert_eq!(
            (long.len(), &long[..4], long.ends_with('0')),
            (70002, "1.50", true)
        );
        let long = p("%.70000e", &[Value::Float(1.5)]);
        assert_eq!((long.len(), &long[long.len() - 5..]), (70006, "0e+00"));
        assert_eq!(p("%.70000g|", &[Value::Float(1.5)]), "1.5|");
        assert_eq!(p("%.1100f", &[Value::Float(0.1)]).len(), 1102);
        assert_eq!(p("%*d|", &[Value::Int(4), Value::Int(7)]), "   7|");
        let arr = Value::Array(Rc::new(vec![s("a"), s("b")]));
        assert_eq!(p("%q", std::slice::from_ref(&arr)), r#"["a" "b"]"#);
        assert_eq!(p("%3s", &[arr]), "[  a   b]");
    }

    #[test]
    fn values_print_as_go() {
        assert_eq!(to_string(&Value::Float(1e6)), "1e+06");
        assert_eq!(to_string(&Value::Float(123456.0)), "123456");
        assert_eq!(to_string(&Value::Float(1234567.0)), "1.234567e+06");
        assert_eq!(to_string(&Value::Float(0.0001)), "0.0001");
        assert_eq!(to_string(&Value::Float(-2.5)), "-2.5");
        assert_eq!(to_string(&Value::Float(0.0)), "0");
        assert_eq!(to_string(&Value::Float(100.0)), "100");
        let v = Value::from_json(&serde_json::json!({"b": [1, "x", null], "a": {"k": true}}));
        assert_eq!(to_string(&v), "map[a:map[k:true] b:[1 x <nil>]]");
        assert_eq!(
            sprint(&[s("a"), Value::Int(1), Value::Int(2), s("b")]),
            "a1 2b"
        );
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
        assert_eq!(quote("é\t\u{7f}"), "\"é\\t\\x7f\"");
    }
}
