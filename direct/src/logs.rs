//! Logs as data: every line a direct host's spec processes (and their descendants) write to their
//! stdout and stderr, with the simulated instant it was written.
//!
//! A process's stdout and stderr are regular files the engine opens for it, and every write to a
//! regular file is already notified (for the disk quota, see [`crate::disk`]), so a line costs no
//! extra notification: when a write goes to one of those files (known by its device and inode,
//! which a restart's reopening keeps), the supervisor copies the bytes the write puts in the file
//! and splits them into lines here. A line is dated by the write that ends it (its newline); a
//! last line without one is dated by its last write and kept when the run ends. Lines are
//! repeatable because writes are: the host's tasks run one at a time, in simulated order.
//!
//! The lines feed the `direct_logs` table and the timeline's log conditions (a scenario step that
//! waits for a line, see [`crate::ops`]). A host keeps at most [`LOG_CAP`] bytes of lines; the
//! files keep everything.

use std::collections::HashMap;

/// Bytes of lines a host keeps in memory for `direct_logs`; later lines are counted, not kept.
pub const LOG_CAP: usize = 64 << 20;
/// A line longer than this is cut into pieces of this length (a program printing without
/// newlines still gives rows).
pub const MAX_LINE: usize = 64 << 10;

/// Which of a process's outputs a line went to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of a process's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When the write that ended it ran (ns since the start of the run).
    pub time: u64,
    /// The host's process (index among its processes) whose file it went to.
    pub proc: usize,
    /// Which file.
    pub stream: Stream,
    /// Its text, without the newline (bytes that are not UTF-8 are replaced).
    pub text: String,
}

/// One output file being split into lines.
#[derive(Debug)]
struct Tap {
    proc: usize,
    stream: Stream,
    partial: Vec<u8>,
    partial_time: u64,
}

/// A host's output files and the lines written to them.
#[derive(Debug, Default)]
pub struct Logs {
    /// Output files by (device, inode).
    taps: HashMap<(u64, u64), usize>,
    files: Vec<Tap>,
    /// The lines, in the order they were completed.
    pub lines: Vec<LogLine>,
    /// Bytes of text in `lines`.
    kept: usize,
    /// Lines not kept past [`LOG_CAP`].
    pub dropped: u64,
    /// Also queue every line (kept or not) for [`Logs::take_fresh`]: the host's timeline waits
    /// for lines.
    pub feed: bool,
    fresh: Vec<LogLine>,
}

impl Logs {
    /// Split what is written to the file `(dev, ino)` into lines of `proc`'s `stream` from now
    /// on. Registering the same file again (a restarted process reopens it) changes nothing.
    pub fn tap(&mut self, id: (u64, u64), proc: usize, stream: Stream) {
        let files = &mut self.files;
        self.taps.entry(id).or_insert_with(|| {
            files.push(Tap { proc, stream, partial: Vec::new(), partial_time: 0 });
            files.len() - 1
        });
    }

    /// Whether writes to the file `(dev, ino)` are split into lines.
    pub fn is_tapped(&self, id: (u64, u64)) -> bool {
        self.taps.contains_key(&id)
    }

    /// `bytes` were written to the file `id` at `time`: complete the lines they end.
    pub fn written(&mut self, id: (u64, u64), bytes: &[u8], time: u64) {
        let Some(&f) = self.taps.get(&id) else { return };
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = MAX_LINE - self.files[f].partial.len();
            match rest.iter().take(room).position(|&b| b == b'\n') {
                Some(i) => {
                    self.files[f].partial.extend_from_slice(&rest[..i]);
                    rest = &rest[i + 1..];
                    self.complete(f, time);
                }
                None if rest.len() >= room => {
                    self.files[f].partial.extend_from_slice(&rest[..room]);
                    rest = &rest[room..];
                    self.complete(f, time);
                }
                None => {
                    self.files[f].partial.extend_from_slice(rest);
                    self.files[f].partial_time = time;
                    rest = &[];
                }
            }
        }
    }

    /// The run ends: last lines without a newline become lines, dated by their last write.
    pub fn finish(&mut self) {
        for f in 0..self.files.len() {
            if !self.files[f].partial.is_empty() {
                let t = self.files[f].partial_time;
                self.complete(f, t);
            }
        }
    }

    /// Process `proc` has ended (at `now`): its last lines without a newline become lines, so
    /// that a later instance's first line does not continue them.
    pub fn flush_proc(&mut self, proc: usize, now: u64) {
        for f in 0..self.files.len() {
            if self.files[f].proc == proc && !self.files[f].partial.is_empty() {
                self.complete(f, now);
            }
        }
    }

    /// The lines completed since the last call (only with `feed`).
    pub fn take_fresh(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.fresh)
    }

    fn complete(&mut self, f: usize, time: u64) {
        let tap = &mut self.files[f];
        let bytes = std::mem::take(&mut tap.partial);
        let text = String::from_utf8_lossy(bytes.strip_suffix(b"\r").unwrap_or(&bytes)).into_owned();
        let line = LogLine { time, proc: tap.proc, stream: tap.stream, text };
        if self.feed {
            self.fresh.push(line.clone());
        }
        if self.kept + line.text.len() > LOG_CAP {
            self.dropped += 1;
            return;
        }
        self.kept += line.text.len();
        self.lines.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(logs: &Logs) -> Vec<(u64, &str)> {
        logs.lines.iter().map(|l| (l.time, l.text.as_str())).collect()
    }

    #[test]
    fn lines_are_dated_by_the_write_that_ends_them() {
        let mut logs = Logs::default();
        logs.tap((1, 2), 0, Stream::Stdout);
        logs.written((1, 2), b"one\ntw", 5);
        logs.written((1, 2), b"o\nthree\r\n", 9);
        logs.written((1, 2), b"fou", 12);
        assert_eq!(texts(&logs), [(5, "one"), (9, "two"), (9, "three")]);
        logs.finish();
        assert_eq!(logs.lines.last().map(|l| (l.time, l.text.as_str())), Some((12, "fou")));
    }

    #[test]
    fn an_ended_process_s_last_line_is_its_own_and_the_timeline_gets_every_line() {
        let mut logs = Logs { feed: true, ..Logs::default() };
        logs.tap((1, 2), 3, Stream::Stdout);
        logs.written((1, 2), b"killed mid-li", 5);
        logs.flush_proc(3, 6);
        logs.written((1, 2), b"new instance\n", 7);
        assert_eq!(texts(&logs), [(6, "killed mid-li"), (7, "new instance")]);
        assert_eq!(logs.take_fresh().len(), 2);
        assert!(logs.take_fresh().is_empty());
    }

    #[test]
    fn files_are_told_apart_and_untapped_files_ignored() {
        let mut logs = Logs::default();
        logs.tap((1, 2), 0, Stream::Stdout);
        logs.tap((1, 3), 0, Stream::Stderr);
        logs.tap((1, 2), 7, Stream::Stderr);
        logs.written((1, 3), b"err ", 1);
        logs.written((1, 2), b"out\n", 2);
        logs.written((1, 3), b"line\n", 3);
        logs.written((9, 9), b"elsewhere\n", 4);
        let seen: Vec<_> = logs.lines.iter().map(|l| (l.proc, l.stream, l.text.as_str())).collect();
        assert_eq!(seen, [(0, Stream::Stdout, "out"), (0, Stream::Stderr, "err line")]);
        assert!(logs.is_tapped((1, 2)) && !logs.is_tapped((9, 9)));
    }

    #[test]
    fn long_lines_are_cut_and_bad_utf8_replaced() {
        let mut logs = Logs::default();
        logs.tap((0, 0), 0, Stream::Stdout);
        logs.written((0, 0), &vec![b'x'; MAX_LINE * 2 + 3], 1);
        logs.written((0, 0), b"\n\xff\n", 2);
        let lens: Vec<usize> = logs.lines.iter().map(|l| l.text.len()).collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 3, 3]);
        assert_eq!(logs.lines[3].text, "\u{fffd}");
    }
}
