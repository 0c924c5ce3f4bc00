//! YAML loading that remembers where every value stood, so spec errors can name a line.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A line and column in the spec file, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// A YAML document converted to JSON, plus the position of every value by its path
/// (`steps[0].min_chars`).
#[derive(Debug, Clone)]
pub struct MarkedDoc {
    /// The document as a JSON value.
    pub value: Value,
    positions: BTreeMap<String, Pos>,
}

impl MarkedDoc {
    /// Position of the value at `path`, or of its nearest enclosing value.
    pub fn pos(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, thiserror::Error)]
#[error("{pos_line}:{pos_col}: {message}")]
pub struct YamlError {
    /// Line of the error.
    pub pos_line: usize,
    /// Column of the error.
    pub pos_col: usize,
    /// What the parser said.
    pub message: String,
}

enum Frame {
    Seq(Vec<Value>, String),
    Map(Map<String, Value>, String, Option<String>),
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    positions: BTreeMap<String, Pos>,
    error: Option<YamlError>,
}

fn pos_of(mark: &Marker) -> Pos {
    // yaml-rust2 reports 0-based columns.
    Pos { line: mark.line(), col: mark.col() + 1 }
}

impl Builder {
    /// Path of the value about to be produced, and whether it is a mapping key.
    fn next_path(&self) -> (String, bool) {
        match self.stack.last() {
            None => (String::new(), false),
            Some(Frame::Seq(items, path)) => (format!("{path}[{}]", items.len()), false),
            Some(Frame::Map(_, path, key)) => match key {
                None => (path.clone(), true),
                Some(k) if path.is_empty() => (k.clone(), false),
                Some(k) => (format!("{path}.{k}"), false),
            },
        }
    }

    fn push_value(&mut self, v: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(v),
            Some(Frame::Seq(items, _)) => items.push(v),
            Some(Frame::Map(map, _, key)) => {
                if let Some(k) = key.take() {
                    map.insert(k, v);
                }
            }
        }
    }

    fn fail(&mut self, mark: &Marker, message: String) {
        if self.error.is_none() {
            let p = pos_of(mark);
            self.error = Some(YamlError { pos_line: p.line, pos_col: p.col, message });
        }
    }
}

fn scalar_to_json(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::String(text), Value::Number),
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Null => Value::Null,
        _ => Value::String(text),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let (path, is_key) = self.next_path();
        match ev {
            Event::Scalar(text, style, _, _) => {
                if is_key {
                    if let Some(Frame::Map(map, mpath, key)) = self.stack.last_mut() {
                        if map.contains_key(&text) {
                            let msg = format!("duplicate key `{text}`");
                            self.fail(&mark, msg);
                            return;
                        }
                        // A block mapping's start event is marked after its first key; its
                        // first key is where a reader looks for it.
                        self.positions.entry(mpath.clone()).or_insert(pos_of(&mark));
                        let kpath = if mpath.is_empty() { text.clone() } else { format!("{mpath}.{text}") };
                        *key = Some(text);
                        self.positions.insert(kpath, pos_of(&mark));
                    }
                } else {
                    self.positions.entry(path).or_insert(pos_of(&mark));
                    self.push_value(scalar_to_json(text, style));
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if is_key => {
                self.fail(&mark, "mapping keys must be plain strings".into());
            }
            Event::SequenceStart(..) => {
                self.positions.entry(path.clone()).or_insert(pos_of(&mark));
                self.stack.push(Frame::Seq(Vec::new(), path));
            }
            Event::MappingStart(..) => {
                self.stack.push(Frame::Map(Map::new(), path, None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let v = match self.stack.pop() {
                    Some(Frame::Seq(items, _)) => Value::Array(items),
                    Some(Frame::Map(map, _, _)) => Value::Object(map),
                    None => return,
                };
                self.push_value(v);
            }
            Event::Alias(_) => self.fail(&mark, "YAML aliases are not supported in pipeline specs".into()),
            _ => {}
        }
    }
}

/// Parses one YAML document into JSON with positions.
pub fn load(source: &str) -> Result<MarkedDoc, YamlError> {
    let mut builder = Builder { stack: Vec::new(), root: None, positions: BTreeMap::new(), error: None };
    let mut parser = Parser::new_from_str(source);
    parser.load(&mut builder, false).map_err(|e| YamlError {
        pos_line: e.marker().line(),
        pos_col: e.marker().col() + 1,
        message: e.info().to_string(),
    })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(MarkedDoc { value: builder.root.unwrap_or(Value::Null), positions: builder.positions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_and_marks() {
        let doc = load("name: x\nsteps:\n  - op: a\n    n: 3\n    f: 0.5\n    s: '3'\n").unwrap();
        assert_eq!(doc.value["steps"][0]["n"], Value::from(3));
        assert_eq!(doc.value["steps"][0]["f"], Value::from(0.5));
        assert_eq!(doc.value["steps"][0]["s"], Value::from("3"));
        assert_eq!(doc.pos("steps[0].n").map(|p| p.line), Some(4));
        assert_eq!(doc.pos("steps[0].missing").map(|p| p.line), Some(3));
        assert_eq!(doc.pos("name").map(|p| p.line), Some(1));
    }

    #[test]
    fn rejects_duplicate_keys_with_line() {
        let err = load("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos_line, 3);
        assert!(err.message.contains("duplicate key `a`"));
    }
}
