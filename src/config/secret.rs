//! Bounds on secrets and account names: secret files are read only when they are small regular
//! files, and tokens and emails are checked for length and characters. No message here repeats
//! the value it refuses; a 10 MB email is described by its length alone.

use std::io::Read;
use std::path::Path;

/// The largest secret file read, in bytes (64 KiB). A token is far smaller; the bound keeps a
/// mistaken path (`/dev/zero`, a log file) from exhausting memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The longest token accepted, in characters. Atlassian API tokens are about 200 characters.
pub const MAX_TOKEN_LEN: usize = 1024;

/// The longest email address accepted, in characters (RFC 5321's limit on a path).
pub const MAX_EMAIL_LEN: usize = 254;

/// Reads a secret file: a regular file (or a link to one) of at most [`MAX_SECRET_FILE_BYTES`],
/// UTF-8, not empty once surrounding whitespace is removed. The error is a sentence about the
/// file, never about its content.
pub fn read_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the file {shown}: {}", e.kind()))?;
    if !metadata.is_file() {
        return Err(format!(
            "names {shown}, which is not a regular file (a directory, device or pipe); point it at a file that holds only the secret"
        ));
    }
    let too_big = |size: u64| {
        format!(
            "names {shown}, which holds {size} bytes; a secret file may hold at most {MAX_SECRET_FILE_BYTES} bytes (64 KiB), so check the path"
        )
    };
    if metadata.len() > MAX_SECRET_FILE_BYTES {
        return Err(too_big(metadata.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the file {shown}: {}", e.kind()))?;
    // The file may have grown between the size check and the read.
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        format!("the file {shown} is not UTF-8 text; a secret file holds the token as text")
    })?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("the file {shown} is empty"));
    }
    Ok(trimmed.to_string())
}

/// The first shared rule `text` breaks: at most `max` characters, then no whitespace or
/// control characters (`blank_or_control` says which and what to do).
fn first_problem(text: &str, max: usize, what: &str, blank_or_control: &str) -> Option<String> {
    let length = text.chars().count();
    if length > max {
        return Some(format!(
            "is {length} characters long; {what} has at most {max}"
        ));
    }
    text.chars()
        .any(|c| c.is_control() || c.is_whitespace())
        .then(|| format!("contains {blank_or_control}"))
}

/// Why `token` cannot be an API token, if it cannot: tokens are printable ASCII without spaces,
/// at most [`MAX_TOKEN_LEN`] characters.
pub fn token_problem(token: &str) -> Option<String> {
    first_problem(
        token,
        MAX_TOKEN_LEN,
        "a token",
        "a line break, tab, space, NUL or other control character; a token is printable ASCII, so check for a stray newline or a copy from a terminal",
    )
    .or_else(|| {
        (!token.is_ascii()).then(|| {
            "contains a non-ASCII character; a token is printable ASCII, so check for a typographic quote or a look-alike letter".into()
        })
    })
}

/// Why `email` cannot be an Atlassian account's email, if it cannot: at most [`MAX_EMAIL_LEN`]
/// characters, no whitespace or control characters, a local part and a dotted domain.
pub fn email_problem(email: &str) -> Option<String> {
    first_problem(
        email,
        MAX_EMAIL_LEN,
        "an email address",
        "a space, line break, tab, NUL or other control character; write the email address alone",
    )
    .or_else(|| {
        let shaped = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        });
        (!shaped).then(|| {
            "must be the email address of the Atlassian account (Bitbucket authenticates API tokens with email:token; a username does not work)".into()
        })
    })
}
