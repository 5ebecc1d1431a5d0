//! A YAML document as a tree whose every node knows where it was written, for reading Shadow
//! configurations with errors at their line and column.
//!
//! Built from `saphyr-parser`'s events (YAML 1.2). Anchors and aliases are expanded, merge keys
//! (`<<: *base`) are applied as Shadow applies them (keys written in the mapping win, then the
//! merged mappings in order), and duplicate keys are errors. Hostile input gives an error, never
//! a panic: nesting is bounded, and so is the size that aliases can expand to.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;

/// Where something is written: 1-based line and column.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
}

/// A YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What it holds.
    pub value: Value,
    /// Where it starts.
    pub pos: Pos,
}

/// What a node holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar: its text, and whether it was written plain (unquoted, not a block), which is
    /// what makes `null`, `true` or `5` more than a string.
    Scalar {
        /// The text.
        text: String,
        /// Plain style.
        plain: bool,
        /// A literal block (`|`): its lines start on the line after `pos`, indented.
        literal: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in the order written (merge keys applied).
    Map(Vec<Entry>),
}

/// One `key: value` pair of a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key (a scalar's text).
    pub key: String,
    /// Where the key is written.
    pub pos: Pos,
    /// The value.
    pub value: Node,
}

impl Node {
    /// Whether this is YAML's null: an empty value, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true, .. } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar's text, if this is a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// What kind of node this is, for messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A document that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    /// Where.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;
/// Most nodes a document may hold once its aliases are expanded.
const MAX_NODES: usize = 1_000_000;

/// A collection under construction.
enum Frame {
    Seq { items: Vec<Node>, pos: Pos, anchor: usize },
    Map { entries: Vec<Entry>, key: Option<(String, Pos)>, pos: Pos, anchor: usize },
}

/// The state of the tree builder.
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    root: Option<Node>,
}

fn pos_of(span: &Span) -> Pos {
    Pos { line: span.start.line(), column: span.start.col() + 1 }
}

fn err<T>(pos: Pos, message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError { pos, message: message.into() })
}

/// Number of nodes in `node`.
fn size(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|e| 1 + size(&e.value)).sum::<usize>(),
    }
}

/// Apply merge keys: entries written in the mapping first, then those of each merged mapping
/// (in the order given) whose keys are not there yet.
fn merge(entries: Vec<Entry>) -> Result<Vec<Entry>, YamlError> {
    if !entries.iter().any(|e| e.key == "<<") {
        return Ok(entries);
    }
    let (merges, mut own): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| e.key == "<<");
    for m in merges {
        let sources = match m.value.value {
            Value::Map(_) => vec![m.value],
            Value::Seq(items) => items,
            Value::Scalar { .. } => return err(m.pos, "a merge key `<<` takes a mapping or a list of mappings"),
        };
        for source in sources {
            let Value::Map(inherited) = source.value else {
                return err(source.pos, "a merge key `<<` takes a mapping or a list of mappings");
            };
            for e in inherited {
                if !own.iter().any(|o| o.key == e.key) {
                    own.push(e);
                }
            }
        }
    }
    Ok(own)
}

impl Builder {
    /// Place a finished node in its parent (or make it the document).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            let n = size(&node);
            self.anchors.insert(anchor, (node.clone(), n));
        }
        match self.stack.last_mut() {
            None if self.root.is_some() => {
                err(node.pos, "a Shadow configuration is one YAML document; this is a second")
            }
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some((k, pos)) => {
                    if let Some(first) = entries.iter().find(|e| e.key == k && k != "<<") {
                        let p = first.pos;
                        return err(pos, format!("duplicate key `{k}` (first written at {}:{})", p.line, p.column));
                    }
                    entries.push(Entry { key: k, pos, value: node });
                    Ok(())
                }
                None => match node.value {
                    Value::Scalar { text, .. } => {
                        *key = Some((text, node.pos));
                        Ok(())
                    }
                    _ => err(node.pos, "mapping keys must be scalars"),
                },
            },
        }
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return err(pos, format!("the document expands to more than {MAX_NODES} nodes (aliases included)"));
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, pos: Pos) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return err(pos, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        self.count(1, pos)?;
        self.stack.push(frame);
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let pos = pos_of(&span);
        match event {
            Event::Scalar(text, style, anchor, _) => {
                self.count(1, pos)?;
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                        literal: style == ScalarStyle::Literal,
                    },
                    pos,
                };
                self.finish(node, anchor)
            }
            Event::Alias(id) => {
                let Some((node, n)) = self.anchors.get(&id).cloned() else {
                    return err(pos, "an alias to an anchor that is not defined before it");
                };
                self.count(n, pos)?;
                self.finish(node, 0)
            }
            Event::SequenceStart(anchor, _) => self.open(Frame::Seq { items: Vec::new(), pos, anchor }, pos),
            Event::MappingStart(anchor, _) => {
                self.open(Frame::Map { entries: Vec::new(), key: None, pos, anchor }, pos)
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { items, pos, anchor }) => self.finish(Node { value: Value::Seq(items), pos }, anchor),
                Some(Frame::Map { entries, pos, anchor, .. }) => {
                    self.finish(Node { value: Value::Map(merge(entries)?), pos }, anchor)
                }
                None => err(pos, "the end of a collection that was not opened"),
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::DocumentEnd => {
                Ok(())
            }
        }
    }
}

/// Parse one YAML document.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder { stack: Vec::new(), anchors: HashMap::new(), nodes: 0, root: None };
    while let Some(event) = parser.next_event() {
        match event {
            Ok((event, span)) => b.event(event, span)?,
            Err(e) => {
                let m = e.marker();
                return err(Pos { line: m.line(), column: m.col() + 1 }, e.info().to_string());
            }
        }
    }
    b.root.ok_or_else(|| YamlError { pos: Pos { line: 1, column: 1 }, message: "the document is empty".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[Entry] {
        match &node.value {
            Value::Map(e) => e,
            _ => panic!("not a mapping: {node:?}"),
        }
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let doc = parse("general:\n  stop_time: 10s\nhosts:\n  a.b:\n    processes:\n    - path: x\n").unwrap();
        let top = map(&doc);
        assert_eq!((top[0].key.as_str(), top[0].pos), ("general", Pos { line: 1, column: 1 }));
        let stop = &map(&top[0].value)[0];
        assert_eq!(stop.pos, Pos { line: 2, column: 3 });
        assert_eq!(stop.value.scalar(), Some("10s"));
        assert_eq!(stop.value.pos, Pos { line: 2, column: 14 });
        let host = &map(&top[1].value)[0];
        assert_eq!(host.key, "a.b");
    }

    #[test]
    fn aliases_expand_and_merge_keys_apply_with_written_keys_first() {
        let text = "x-base: &b\n  network_node_id: 0\n  bandwidth_up: 1 Mbit\nhosts:\n  a:\n    <<: *b\n    bandwidth_up: 2 Mbit\n  c: *b\n";
        let doc = parse(text).unwrap();
        let hosts = map(&map(&doc)[1].value);
        let a = map(&hosts[0].value);
        assert_eq!(a.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["bandwidth_up", "network_node_id"]);
        assert_eq!(a[0].value.scalar(), Some("2 Mbit"));
        assert_eq!(map(&hosts[1].value).len(), 2);
    }

    #[test]
    fn nulls_are_plain_and_quoted_null_is_a_string() {
        let doc = parse("a:\nb: ~\nc: null\nd: \"null\"\n").unwrap();
        let e = map(&doc);
        assert!(e[0].value.is_null() && e[1].value.is_null() && e[2].value.is_null());
        assert!(!e[3].value.is_null());
    }

    #[test]
    fn bad_documents_are_errors_with_a_place() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, column: 1 });
        assert!(e.message.contains("duplicate key `a` (first written at 1:1)"), "{e:?}");
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        let e = parse("a: *nope\n").unwrap_err();
        assert!(e.message.contains("unknown anchor") && e.pos == Pos { line: 1, column: 4 }, "{e:?}");
        assert!(parse("a: 1\n---\nb: 2\n").unwrap_err().message.contains("one YAML document"));
        assert!(parse("").unwrap_err().message.contains("empty"));
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&deep).unwrap_err().message.contains("nesting"));
        let mut laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n".to_string();
        for i in 0..8 {
            laughs += &format!(
                "b{i}: &b{i} [{}]\n",
                vec![if i == 0 { "*a".to_string() } else { format!("*b{}", i - 1) }; 10].join(", ")
            );
        }
        assert!(parse(&laughs).unwrap_err().message.contains("expands to more than"));
    }

    #[test]
    fn hostile_bytes_give_errors_not_panics() {
        for text in
            ["{", "[", "a: b: c", "- - - -", "&a [*a]", "? [a]\n: b", "a: |\n x\n  y\n", "\u{0}", "'unterminated"]
        {
            let _ = parse(text);
        }
    }
}
