//! Splitting a command line into arguments as Shadow does for `args: "..."` (GLib's
//! `g_shell_parse_argv`: the words of a POSIX shell, without any expansion).

/// Split `line` into words: blanks separate words; `'…'` keeps everything literally; `"…"`
/// keeps everything but a backslash before `$`, `` ` ``, `"`, `\` or a newline; a backslash
/// elsewhere keeps the next character (and drops a backslash-newline); `#` at the start of a
/// word comments out the rest of the line. Nothing is expanded (`$HOME`, `*`, `~` stay as
/// written). An empty line gives no words; a line of only blanks, an unterminated quote or a
/// trailing backslash is an error, as in Shadow.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    if line.is_empty() {
        return Ok(Vec::new());
    }
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => words.extend(word.take()),
            '#' if word.is_none() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("a single quote is not closed".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(c @ ('$' | '`' | '"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("a double quote is not closed".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("a double quote is not closed".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("the text ends with a backslash".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    if words.is_empty() {
        return Err("the text holds only blanks (write no `args`, or `args: []`)".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn words_split_as_a_shell_would_without_expansion() {
        // Shadow's own test of its argument parser.
        let words = split(r#"the quick brown fox "jumped over" the "\"lazy\" dog""#).unwrap();
        assert_eq!(words, ["the", "quick", "brown", "fox", "jumped over", "the", "\"lazy\" dog"]);
        assert_eq!(
            split("--user-agent 'Mozilla/5.0 (compatible; ...)' http://myserver:8080").unwrap(),
            ["--user-agent", "Mozilla/5.0 (compatible; ...)", "http://myserver:8080"]
        );
        assert_eq!(
            split(r#"-w '%{http_code}' $HOME a\ b "x\y" ''"#).unwrap(),
            ["-w", "%{http_code}", "$HOME", "a b", "x\\y", ""]
        );
        assert_eq!(split("a # the rest\nb").unwrap(), ["a", "b"]);
        assert_eq!(split("a#b").unwrap(), ["a#b"]);
        assert_eq!(split("a\\\nb").unwrap(), ["ab"]);
        assert!(split("").unwrap().is_empty());
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(split("'open").unwrap_err().contains("single quote"));
        assert!(split("\"open").unwrap_err().contains("double quote"));
        assert!(split("end\\").unwrap_err().contains("backslash"));
        assert!(split("   ").unwrap_err().contains("only blanks"));
    }
}
