//! Pull and push progress as Docker's CLI draws it: on a terminal, one line per layer,
//! rewritten in place as its status changes, with a bar while it downloads; elsewhere (a pipe,
//! a file, a CI log), one plain line per event and none for byte counts.

use hako_engine::images::{LayerStatus, Progress};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A progress sink for `out`: the terminal display when `out` is stdout or stderr on a
/// terminal (`tty`), plain lines otherwise; nothing with `quiet`.
pub fn sink<'a>(
    quiet: bool,
    tty: bool,
    out: &'a mut dyn Write,
) -> impl FnMut(Progress) -> std::io::Result<()> + 'a {
    let mut display = Display {
        out,
        tty,
        width: if tty { terminal_width() } else { 0 },
        layers: Vec::new(),
    };
    move |p| {
        if quiet {
            return Ok(());
        }
        display.show(p)
    }
}

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether stderr is a terminal.
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

struct Display<'a> {
    out: &'a mut dyn Write,
    tty: bool,
    width: usize,
    /// The lines drawn, top to bottom: each layer's ID with when its byte count was last
    /// redrawn (other lines have an empty ID).
    layers: Vec<(String, Option<Instant>)>,
}

/// Redraws of one layer's byte count come at most this often (a fast download reports every
/// chunk); status changes are drawn at once.
const REDRAW: Duration = Duration::from_millis(100);

impl Display<'_> {
    fn show(&mut self, p: Progress) -> std::io::Result<()> {
        let Progress::Layer { id, status } = &p else {
            // A line of its own below the layers; later layer updates still find theirs.
            return match p.line() {
                Some(l) => {
                    if self.tty {
                        self.layers.push((String::new(), None));
                    }
                    writeln!(self.out, "{l}")
                }
                None => Ok(()),
            };
        };
        if !self.tty {
            return match p.line() {
                Some(l) => writeln!(self.out, "{l}"),
                None => Ok(()),
            };
        }
        let text = format!("{id}: {}{}", status.text(), self.bar(status));
        match self.layers.iter().position(|(l, _)| l == id) {
            Some(i) => {
                if matches!(status, LayerStatus::Downloading { .. }) {
                    if self.layers[i].1.is_some_and(|t| t.elapsed() < REDRAW) {
                        return Ok(());
                    }
                    self.layers[i].1 = Some(Instant::now());
                }
                let up = self.layers.len() - i;
                // Up to its line, clear it, write, and back down below the last one.
                write!(self.out, "\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")?;
            }
            None => {
                self.layers.push((id.clone(), None));
                writeln!(self.out, "{text}")?;
            }
        }
        self.out.flush()
    }

    /// Docker's `[====>     ]  1.2MB/4.5MB` after "Downloading" (the bar only on a terminal
    /// wider than 110 columns, as Docker's).
    fn bar(&self, status: &LayerStatus) -> String {
        let LayerStatus::Downloading { current, total } = *status else {
            return String::new();
        };
        let size = hako_engine::hako_base::size::human_size_with_precision;
        if total == 0 || current > total {
            return format!(" {:>8}", size(current, 3));
        }
        let half_percent = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
        let bar = if self.width > 110 {
            format!(
                "[{}>{}] ",
                "=".repeat(half_percent),
                " ".repeat(50 - half_percent)
            )
        } else {
            String::new()
        };
        format!(" {bar}{:>8}/{}", size(current, 3), size(total, 3))
    }
}

/// Columns of the terminal on stdout or stderr (80 when neither says).
fn terminal_width() -> usize {
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass, which lives here.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
            return usize::from(ws.ws_col);
        }
    }
    80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(id: &str, status: LayerStatus) -> Progress {
        Progress::Layer {
            id: id.into(),
            status,
        }
    }

    #[test]
    fn plain_lines_without_a_terminal() {
        let mut out = Vec::new();
        {
            let mut s = sink(false, false, &mut out);
            s(layer("aaa", LayerStatus::PullingFsLayer)).unwrap();
            s(layer(
                "aaa",
                LayerStatus::Downloading {
                    current: 1,
                    total: 2,
                },
            ))
            .unwrap();
            s(layer("aaa", LayerStatus::PullComplete)).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "aaa: Pulling fs layer\naaa: Pull complete\n"
        );
    }

    #[test]
    fn a_terminal_rewrites_each_layers_line() {
        let mut out = Vec::new();
        {
            let mut d = Display {
                out: &mut out,
                tty: true,
                width: 120,
                layers: Vec::new(),
            };
            d.show(Progress::PullingFrom {
                tag: "1".into(),
                repository: "app".into(),
            })
            .unwrap();
            d.show(layer("aaa", LayerStatus::PullingFsLayer)).unwrap();
            d.show(layer("bbb", LayerStatus::PullingFsLayer)).unwrap();
            d.show(layer(
                "aaa",
                LayerStatus::Downloading {
                    current: 500_000,
                    total: 1_000_000,
                },
            ))
            .unwrap();
            // Too soon after the last redraw of its count: skipped; a status change is not.
            d.show(layer(
                "aaa",
                LayerStatus::Downloading {
                    current: 600_000,
                    total: 1_000_000,
                },
            ))
            .unwrap();
            d.show(layer("aaa", LayerStatus::PullComplete)).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("1: Pulling from app\naaa: Pulling fs layer\nbbb: Pulling fs layer\n"),
            "{text:?}"
        );
        let bar = format!("[{}>{}] ", "=".repeat(25), " ".repeat(25));
        assert!(
            text.contains(&format!(
                "\x1b[2A\r\x1b[2Kaaa: Downloading {bar}   500kB/1MB\r\x1b[2B"
            )),
            "{text:?}"
        );
        assert!(
            text.ends_with("\x1b[2A\r\x1b[2Kaaa: Pull complete\r\x1b[2B"),
            "{text:?}"
        );
        assert!(!text.contains("600kB"), "{text:?}");
    }
}
