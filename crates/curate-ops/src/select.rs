//! `select`: keeps records for which a boolean expression over columns holds, so a
//! threshold on precomputed signals can change without recomputing them.
//!
//! Grammar (lowest precedence first):
//! `or` → `and` → `not` → comparison (`<`, `<=`, `>`, `>=`, `==`, `!=`, `in [..]`) → value
//! (column name, number, 'string' or "string", `true`, `false`, `null`, parenthesised expression).
//! A comparison involving a null value is false, as in SQL's WHERE.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator, Verdicts};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `select`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectParams {
    /// Condition a record must meet to be kept, e.g. `mean_word_length < 9 and lang == "en"`.
    pub expr: String,
    /// Drop reason recorded for records that fail; default `select:<expr>`.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
}

impl std::fmt::Display for Lit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lit::Num(n) => write!(f, "the number {n}"),
            Lit::Str(s) => write!(f, "the string {s:?}"),
            Lit::Bool(b) => write!(f, "the boolean {b}"),
            Lit::Null => f.write_str("null"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Col(String),
    Lit(Lit),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<Lit>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Op(&'static str),
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            out.push((start, Tok::Ident(s[start..i].to_string())));
        } else if c.is_ascii_digit() || (c == '-' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || matches!(b[i], b'.' | b'e' | b'E' | b'_')) {
                i += 1;
            }
            let text = s[start..i].replace('_', "");
            let n = text.parse::<f64>().map_err(|_| format!("bad number `{}` at column {}", &s[start..i], start + 1))?;
            out.push((start, Tok::Num(n)));
        } else if c == '\'' || c == '"' {
            let start = i;
            i += 1;
            let mut lit = String::new();
            loop {
                match s[i..].chars().next() {
                    None => return Err(format!("unterminated string starting at column {}", start + 1)),
                    Some(ch) if ch == c => {
                        i += 1;
                        break;
                    }
                    Some('\\') if i + 1 < b.len() => {
                        let next = s[i + 1..].chars().next().unwrap_or('\\');
                        lit.push(next);
                        i += 1 + next.len_utf8();
                    }
                    Some(ch) => {
                        lit.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            out.push((start, Tok::Str(lit)));
        } else {
            let ops = ["<=", ">=", "==", "!=", "<", ">", "(", ")", "[", "]", ","];
            let op = ops
                .iter()
                .find(|op| s[i..].starts_with(**op))
                .ok_or_else(|| format!("unexpected `{}` at column {}", &s[i..].chars().next().unwrap_or(' '), i + 1))?;
            out.push((i, Tok::Op(op)));
            i += op.len();
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> String {
        match self.toks.get(self.pos) {
            Some((c, _)) => format!("column {}", c + 1),
            None => "the end".into(),
        }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.keyword("or") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.keyword("and") {
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, String> {
        let left = self.value()?;
        if self.keyword("in") {
            if !self.op("[") {
                return Err(format!("expected `[` after `in` at {}", self.at()));
            }
            let mut items = Vec::new();
            while !self.op("]") {
                if !items.is_empty() && !self.op(",") {
                    return Err(format!("expected `,` or `]` at {}", self.at()));
                }
                match self.value()? {
                    Expr::Lit(l) => items.push(l),
                    _ => return Err("`in [...]` takes literal values only".into()),
                }
            }
            return Ok(Expr::In(Box::new(left), items));
        }
        let ops = [("<=", Cmp::Le), (">=", Cmp::Ge), ("==", Cmp::Eq), ("!=", Cmp::Ne), ("<", Cmp::Lt), (">", Cmp::Gt)];
        for (sym, cmp) in ops {
            if self.op(sym) {
                return Ok(Expr::Cmp(cmp, Box::new(left), Box::new(self.value()?)));
            }
        }
        Ok(left)
    }

    fn value(&mut self) -> Result<Expr, String> {
        let at = self.at();
        let tok = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        Ok(match tok {
            Some(Tok::Num(n)) => Expr::Lit(Lit::Num(n)),
            Some(Tok::Str(s)) => Expr::Lit(Lit::Str(s)),
            Some(Tok::Ident(w)) => match w.as_str() {
                "true" => Expr::Lit(Lit::Bool(true)),
                "false" => Expr::Lit(Lit::Bool(false)),
                "null" => Expr::Lit(Lit::Null),
                "and" | "or" | "not" | "in" => return Err(format!("expected a value at {at}, found `{w}`")),
                _ => Expr::Col(w),
            },
            Some(Tok::Op("(")) => {
                let e = self.or()?;
                if !self.op(")") {
                    return Err(format!("expected `)` at {}", self.at()));
                }
                e
            }
            Some(other) => return Err(format!("expected a value at {at}, found {other:?}")),
            None => return Err(format!("expected a value at {at}")),
        })
    }
}

fn parse(s: &str) -> Result<Expr, String> {
    let mut p = Parser { toks: lex(s)?, pos: 0 };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected input at {}", p.at()));
    }
    Ok(e)
}

fn columns_of(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Col(c) if !out.contains(c) => out.push(c.clone()),
        Expr::Cmp(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
            columns_of(a, out);
            columns_of(b, out);
        }
        Expr::In(a, _) | Expr::Not(a) => columns_of(a, out),
        _ => {}
    }
}

/// Keeps records for which `expr` holds.
pub struct Select {
    expr: Expr,
    reason: String,
    columns: Vec<String>,
}

impl BuiltinOp for Select {
    const NAME: &'static str = "select";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Map;
    const SUMMARY: &'static str = "Keep records for which a boolean expression over columns holds";
    type Params = SelectParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        let expr = parse(&params.expr).map_err(|e| format!("expr `{}`: {e}", params.expr))?;
        let mut columns = Vec::new();
        columns_of(&expr, &mut columns);
        let reason = params.reason.unwrap_or_else(|| format!("select:{}", params.expr.trim()));
        Ok(Select { expr, reason, columns })
    }
}

fn cell(batch: &RecordBatch, col: &str, row: usize) -> Result<Lit, OpError> {
    let a = batch.column_by_name(col).ok_or_else(|| OpError(format!("column `{col}` is missing")))?;
    if a.is_null(row) {
        return Ok(Lit::Null);
    }
    macro_rules! num {
        ($t:ty) => {
            Lit::Num(a.as_primitive::<$t>().value(row) as f64)
        };
    }
    Ok(match a.data_type() {
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float32 => num!(Float32Type),
        DataType::Float64 => num!(Float64Type),
        DataType::Boolean => Lit::Bool(a.as_boolean().value(row)),
        DataType::Utf8 => Lit::Str(a.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Lit::Str(a.as_string::<i64>().value(row).to_string()),
        other => return Err(OpError(format!("column `{col}` has type {other}, which select cannot compare"))),
    })
}

fn compare(op: Cmp, a: &Lit, b: &Lit) -> Result<bool, OpError> {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Lit::Null, _) | (_, Lit::Null) => return Ok(false),
        (Lit::Num(x), Lit::Num(y)) => x.partial_cmp(y),
        (Lit::Str(x), Lit::Str(y)) => Some(x.cmp(y)),
        (Lit::Bool(x), Lit::Bool(y)) => Some(x.cmp(y)),
        _ => return Err(OpError(format!("cannot compare {a} with {b}"))),
    };
    Ok(match ord {
        None => false,
        Some(o) => match op {
            Cmp::Lt => o == Ordering::Less,
            Cmp::Le => o != Ordering::Greater,
            Cmp::Gt => o == Ordering::Greater,
            Cmp::Ge => o != Ordering::Less,
            Cmp::Eq => o == Ordering::Equal,
            Cmp::Ne => o != Ordering::Equal,
        },
    })
}

fn value(e: &Expr, batch: &RecordBatch, row: usize) -> Result<Lit, OpError> {
    Ok(match e {
        Expr::Col(c) => cell(batch, c, row)?,
        Expr::Lit(l) => l.clone(),
        other => Lit::Bool(holds(other, batch, row)?),
    })
}

fn holds(e: &Expr, batch: &RecordBatch, row: usize) -> Result<bool, OpError> {
    Ok(match e {
        Expr::And(a, b) => holds(a, batch, row)? && holds(b, batch, row)?,
        Expr::Or(a, b) => holds(a, batch, row)? || holds(b, batch, row)?,
        Expr::Not(a) => !holds(a, batch, row)?,
        Expr::Cmp(op, a, b) => compare(*op, &value(a, batch, row)?, &value(b, batch, row)?)?,
        Expr::In(a, items) => {
            let v = value(a, batch, row)?;
            v != Lit::Null && items.iter().any(|i| *i == v)
        }
        other => match value(other, batch, row)? {
            Lit::Bool(b) => b,
            Lit::Null => false,
            v => return Err(OpError(format!("{v} is not a condition; compare it, e.g. `x > 0`"))),
        },
    })
}

impl Operator for Select {
    fn columns(&self) -> Columns {
        Columns { reads: self.columns.clone(), writes: vec![] }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let mut verdicts = Verdicts::keep_all(batch.num_rows());
        for row in 0..batch.num_rows() {
            if !holds(&self.expr, &batch, row)? {
                verdicts.drop_row(row, &self.reason);
            }
        }
        Ok(OpOutput { batch, verdicts: Some(verdicts) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float64Array, StringArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("score", DataType::Float64, true),
            Field::new("lang", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![Some(3.0), Some(9.5), None, Some(1.0)])),
                Arc::new(StringArray::from(vec![Some("en"), Some("en"), Some("en"), Some("de")])),
            ],
        )
        .unwrap()
    }

    fn kept(expr: &str) -> Vec<usize> {
        let op = Select::new(SelectParams { expr: expr.into(), reason: None }).unwrap();
        let v = op.process(batch()).unwrap().verdicts.unwrap();
        (0..v.len()).filter(|&i| v.reason(i).is_none()).collect()
    }

    #[test]
    fn evaluates_comparisons_logic_and_nulls() {
        assert_eq!(kept("score < 9 and lang == \"en\""), [0]);
        assert_eq!(kept("score >= 9 or lang != 'en'"), [1, 3]);
        assert_eq!(kept("not (score < 9)"), [1, 2]);
        assert_eq!(kept("lang in ['de', 'fr']"), [3]);
        assert_eq!(kept("score == null"), Vec::<usize>::new());
        assert_eq!(kept("score > -1_000"), [0, 1, 3]);
    }

    #[test]
    fn reason_names_the_expression() {
        let op = Select::new(SelectParams { expr: " score < 2 ".into(), reason: None }).unwrap();
        let v = op.process(batch()).unwrap().verdicts.unwrap();
        assert_eq!(v.reason(0).map(|r| &**r), Some("select:score < 2"));
        assert_eq!(op.columns().reads, ["score"]);
    }

    #[test]
    fn syntax_and_type_errors_are_clear() {
        let err = |e: &str| Select::new(SelectParams { expr: e.into(), reason: None }).err().unwrap();
        assert_eq!(err("score <"), "expr `score <`: expected a value at the end");
        assert_eq!(err("score < 3 lang"), "expr `score < 3 lang`: unexpected input at column 11");
        assert_eq!(err("(score < 3"), "expr `(score < 3`: expected `)` at the end");
        assert_eq!(err("lang == 'en"), "expr `lang == 'en`: unterminated string starting at column 9");
        let op = Select::new(SelectParams { expr: "lang > 3".into(), reason: None }).unwrap();
        let e = op.process(batch()).err().unwrap();
        assert_eq!(e.0, "cannot compare the string \"en\" with the number 3");
    }
}
