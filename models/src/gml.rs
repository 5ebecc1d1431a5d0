//! A parser for GML (Graph Modelling Language), the format of Shadow's network graphs.
//!
//! GML is a list of `key value` pairs; a value is an integer, a real, a double-quoted string or a
//! bracketed list of pairs. Lines starting with `#` are comments. Every value remembers its line
//! and column, so that the topology builder can say where a bad attribute is. Parsing never panics
//! and nesting depth is bounded, so hostile input gives an error.

use std::fmt;

/// Where something is in the input: 1-based line and column.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A GML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A real number.
    Real(f64),
    /// A string (quotes removed).
    Str(String),
    /// A list of key-value pairs.
    List(Vec<Pair>),
}

/// One `key value` pair with the position of its key.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Where the key starts.
    pub pos: Pos,
}

/// A syntax error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct GmlError {
    /// Where.
    pub pos: Pos,
    /// What was expected.
    pub message: String,
}

const MAX_DEPTH: usize = 64;

struct Lexer<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
    column: usize,
}

impl<'a> Lexer<'a> {
    fn pos(&self) -> Pos {
        Pos { line: self.line, column: self.column }
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, GmlError> {
        Err(GmlError { pos: self.pos(), message: message.into() })
    }

    fn bump(&mut self) -> Option<u8> {
        let c = *self.text.get(self.at)?;
        self.at += 1;
        if c == b'\n' {
            self.line += 1;
            self.column = 1;
        } else if c & 0xC0 != 0x80 {
            self.column += 1;
        }
        Some(c)
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    /// Skip white space and comment lines.
    fn skip(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() {
                self.bump();
            } else if c == b'#' {
                while let Some(c) = self.bump() {
                    if c == b'\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn key(&mut self) -> Result<(String, Pos), GmlError> {
        let pos = self.pos();
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' {
                self.bump();
            } else {
                break;
            }
        }
        if start == self.at || self.text[start].is_ascii_digit() {
            return self.err("expected a key (letters, digits and _, not starting with a digit)");
        }
        Ok((String::from_utf8_lossy(&self.text[start..self.at]).into_owned(), pos))
    }

    fn value(&mut self, depth: usize) -> Result<Value, GmlError> {
        self.skip();
        match self.peek() {
            None => self.err("expected a value, found the end of the input"),
            Some(b'"') => {
                self.bump();
                let start = self.at;
                loop {
                    match self.bump() {
                        None => return self.err("unterminated string"),
                        Some(b'"') => break,
                        Some(_) => {}
                    }
                }
                let raw = &self.text[start..self.at - 1];
                match std::str::from_utf8(raw) {
                    Ok(s) => Ok(Value::Str(s.to_string())),
                    Err(_) => self.err("string is not valid UTF-8"),
                }
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return self.err(format!("lists nested deeper than {MAX_DEPTH}"));
                }
                self.bump();
                let mut pairs = Vec::new();
                loop {
                    self.skip();
                    match self.peek() {
                        Some(b']') => {
                            self.bump();
                            return Ok(Value::List(pairs));
                        }
                        None => return self.err("unterminated list: expected ]"),
                        _ => pairs.push(self.pair(depth + 1)?),
                    }
                }
            }
            Some(c) if c == b'-' || c == b'+' || c == b'.' || c.is_ascii_digit() => {
                let pos = self.pos();
                let start = self.at;
                while let Some(c) = self.peek() {
                    if c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E') {
                        self.bump();
                    } else {
                        break;
                    }
                }
                let text = std::str::from_utf8(&self.text[start..self.at]).unwrap_or("");
                if let Ok(i) = text.parse::<i64>() {
                    Ok(Value::Int(i))
                } else if let Ok(r) = text.parse::<f64>() {
                    Ok(Value::Real(r))
                } else {
                    Err(GmlError { pos, message: format!("invalid number {text:?}") })
                }
            }
            Some(_) => self.err("expected a value: a number, a \"string\" or a [ list ]"),
        }
    }

    fn pair(&mut self, depth: usize) -> Result<Pair, GmlError> {
        self.skip();
        let (key, pos) = self.key()?;
        let value = self.value(depth)?;
        Ok(Pair { key, value, pos })
    }
}

/// Parse GML text into its top-level pairs.
pub fn parse(text: &str) -> Result<Vec<Pair>, GmlError> {
    let mut lx = Lexer { text: text.as_bytes(), at: 0, line: 1, column: 1 };
    let mut pairs = Vec::new();
    loop {
        lx.skip();
        if lx.peek().is_none() {
            return Ok(pairs);
        }
        pairs.push(lx.pair(0)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_nested_lists_strings_numbers_and_comments() {
        let text = "# a comment\ngraph [\n  directed 0\n  node [ id 3 label \"a b\" ]\n  edge [ source 3 target 3 packet_loss 0.25 latency \"5 ms\" ]\n]\n";
        let top = parse(text).unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].key, "graph");
        assert_eq!(top[0].pos, Pos { line: 2, column: 1 });
        let Value::List(items) = &top[0].value else { panic!("not a list") };
        assert_eq!(items[0], Pair { key: "directed".into(), value: Value::Int(0), pos: Pos { line: 3, column: 3 } });
        let Value::List(edge) = &items[2].value else { panic!("not a list") };
        assert_eq!(edge[2].value, Value::Real(0.25));
        assert_eq!(edge[3].value, Value::Str("5 ms".into()));
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(parse("graph [\n  node [ id ]\n]").unwrap_err().pos, Pos { line: 2, column: 13 });
        assert!(parse("graph [ node [ id 1 ]").unwrap_err().message.contains("unterminated list"));
        assert!(parse("graph [ label \"abc ]").unwrap_err().message.contains("unterminated string"));
        assert!(parse("9lives 3").unwrap_err().message.contains("expected a key"));
        assert!(parse(&"a [".repeat(100)).unwrap_err().message.contains("nested deeper"));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn gml_like_text_never_panics(text in "[a-z \\[\\]\"0-9.#\\n-]{0,300}") {
            let _ = parse(&text);
        }
    }
}
