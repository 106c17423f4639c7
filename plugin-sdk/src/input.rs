//! Untrusted input: reading files a user names without hanging on a FIFO or a device, and
//! echoing values from files and configs in messages without letting them forge terminal
//! output, log lines or megabytes of stderr.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

/// One mebibyte, for writing limits.
pub const MIB: u64 = 1 << 20;

/// Characters of a value [`quote_input`] shows before it truncates.
pub const QUOTE_CHARS: usize = 100;

/// Why [`read_regular_file`] refused or failed to read a file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path names something other than a regular file (a FIFO, a device, a folder,
    /// a socket), which could block forever or never end.
    #[error("is {kind}, not a regular file")]
    NotRegular {
        /// What it is instead (`a FIFO`, `a character device`, ...).
        kind: &'static str,
    },
    /// The file is larger than the caller accepts.
    #[error("is larger than the limit of {}", human_bytes(*limit))]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The file is not UTF-8 text.
    #[error("is not UTF-8 text (byte {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The operating system refused (not found, permission denied, ...).
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
}

impl ReadError {
    /// True when the file does not exist, for callers where a missing file means "none".
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// `16 MiB`, `2 GiB`, or bytes when not a round number of either.
pub fn human_bytes(n: u64) -> String {
    const GIB: u64 = 1 << 30;
    if n >= GIB && n.is_multiple_of(GIB) {
        format!("{} GiB", n / GIB)
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

fn kind_of(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    "not a file"
}

/// Opens without waiting for a writer, should the path have become a FIFO since it was
/// checked: a FIFO opened for reading otherwise blocks in `open` itself.
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(0o4000); // O_NONBLOCK
    }
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(0x0004); // O_NONBLOCK
    }
    options.open(path)
}

/// Reads a whole file that must be a regular file of at most `max_bytes` bytes (symbolic
/// links are followed). A FIFO, a device or a folder is refused before it is opened, so
/// naming `/dev/zero` or a pipe fails at once instead of hanging or filling memory.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            kind: kind_of(&meta),
        });
    }
    if meta.len() > max_bytes {
        return Err(ReadError::TooLarge { limit: max_bytes });
    }
    let file = open_nonblocking(path)?;
    // The path may have been replaced between the check and the open.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            kind: kind_of(&meta),
        });
    }
    let mut buf = Vec::with_capacity(meta.len().min(max_bytes) as usize);
    // A file that grows while it is read is still cut off at the limit.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge { limit: max_bytes });
    }
    Ok(buf)
}

/// [`read_regular_file`] for UTF-8 text.
pub fn read_regular_text(path: &Path, max_bytes: u64) -> Result<String, ReadError> {
    String::from_utf8(read_regular_file(path, max_bytes)?).map_err(|e| ReadError::NotUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Control characters that can forge output: C0 (newline, carriage return, ESC), DEL, C1
/// (CSI), and the bidirectional and line-separator marks that reorder or split what a
/// terminal or a log viewer shows.
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Appends `c` with control characters escaped the way Rust writes string literals; in a
/// quoted value also its backticks and backslashes, so the quoted text is unambiguous.
fn push_escaped(out: &mut String, c: char, quoted: bool) {
    match c {
        '`' | '\\' if quoted => {
            out.push('\\');
            out.push(c);
        }
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_control(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Escapes at most `max_chars` characters of `s`; true when it was cut.
fn escape(s: &str, max_chars: usize, quoted: bool) -> (String, bool) {
    let mut out = String::with_capacity(s.len().min(max_chars * 2) + 2);
    for (n, c) in s.chars().enumerate() {
        if n == max_chars {
            return (out, true);
        }
        push_escaped(&mut out, c, quoted);
    }
    (out, false)
}

/// A value from a file or a config, as shown in a message: in backticks, with control
/// characters escaped (`\n`, `\u{1b}`) and cut after [`QUOTE_CHARS`] characters, with the
/// value's full size: `` `aaaa…` (52428800 bytes) ``.
pub fn quote_input(s: &str) -> String {
    let (body, cut) = escape(s, QUOTE_CHARS, true);
    if cut {
        format!("`{body}…` ({} bytes)", s.len())
    } else {
        format!("`{body}`")
    }
}

/// Text that may carry input, such as a parser's message quoting a value: control
/// characters escaped and cut after `max_chars` characters, with the full size.
pub fn clean_text(s: &str, max_chars: usize) -> Cow<'_, str> {
    if s.len() <= max_chars && !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let (body, cut) = escape(s, max_chars, false);
    if cut {
        Cow::Owned(format!("{body}… ({} bytes)", s.len()))
    } else {
        Cow::Owned(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_and_truncate() {
        assert_eq!(quote_input("abc"), "`abc`");
        assert_eq!(
            quote_input("a\nb\u{1b}[31mc`d\"e"),
            "`a\\nb\\u{1b}[31mc\\`d\"e`"
        );
        let big = "x".repeat(5_000_000);
        let q = quote_input(&big);
        assert!(q.len() < 200, "{q}");
        assert!(q.ends_with("…` (5000000 bytes)"), "{q}");
        assert_eq!(quote_input("\u{202e}"), "`\\u{202e}`");
    }

    #[test]
    fn clean_text_keeps_plain_text() {
        assert!(matches!(clean_text("plain text", 100), Cow::Borrowed(_)));
        assert_eq!(clean_text("a\r\nb", 100), "a\\r\\nb");
        assert_eq!(clean_text("abcdef", 3), "abc… (6 bytes)");
        assert_eq!(clean_text("a\\b", 10), "a\\b");
    }

    #[test]
    fn regular_files_only_with_a_limit() {
        let dir = std::env::temp_dir().join(format!("dw-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_regular_text(&f, 5).unwrap(), "hello");
        assert!(matches!(
            read_regular_file(&f, 4),
            Err(ReadError::TooLarge { limit: 4 })
        ));
        assert!(matches!(
            read_regular_file(&dir, 4),
            Err(ReadError::NotRegular { kind: "a folder" })
        ));
        assert!(read_regular_file(&dir.join("nope"), 4)
            .unwrap_err()
            .is_not_found());
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_regular_text(&f, 5),
            Err(ReadError::NotUtf8 { offset: 0 })
        ));
        #[cfg(unix)]
        {
            let e = read_regular_file(Path::new("/dev/zero"), 4).unwrap_err();
            assert_eq!(e.to_string(), "is a character device, not a regular file");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn limits_read_well() {
        assert_eq!(human_bytes(16 * MIB), "16 MiB");
        assert_eq!(human_bytes(2 << 30), "2 GiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
