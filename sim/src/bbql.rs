//! The subset of BBQL (Bitbucket's `q=` filter language) the connector needs: comparisons
//! `= != ~ !~ > >= < <=`, `IN` / `NOT IN` lists, `AND` / `OR`, parentheses, quoted strings,
//! numbers, `true`/`false`/`null` and unquoted ISO-8601 datetimes.
//!
//! Each listing evaluates a parsed query against its items through a field resolver, so no item
//! is turned into JSON just to be filtered.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A literal on the right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A quoted string.
    Str(String),
    /// A number.
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An unquoted datetime.
    Time(DateTime<Utc>),
    /// A `( … )` list for `IN`.
    List(Vec<Literal>),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `~` (case-insensitive contains)
    Contains,
    /// `!~`
    NotContains,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `IN`
    In,
    /// `NOT IN`
    NotIn,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both sides hold.
    And(Box<Expr>, Box<Expr>),
    /// Either side holds.
    Or(Box<Expr>, Box<Expr>),
    /// `field op literal`.
    Cmp {
        /// Dotted field path, e.g. `project.key`.
        field: String,
        /// Operator.
        op: Op,
        /// Right-hand side.
        value: Literal,
    },
}

/// The value of a field on one item, as a resolver returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// Compared case-sensitively.
    Str(&'a str),
    /// Compared ignoring ASCII case (emails).
    CiStr(&'a str),
    /// A timestamp.
    Time(DateTime<Utc>),
    /// A boolean.
    Bool(bool),
    /// A permission level as a rank: none 0, read 1, write 2, admin 3.
    Rank(u8),
    /// Absent / null.
    Null,
}

/// A query that does not parse, or names a field the listing does not support.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// Rank of a permission name for `permission>"read"` style comparisons.
pub fn rank(s: &str) -> Option<u8> {
    match s {
        "none" => Some(0),
        "read" => Some(1),
        "write" => Some(2),
        "admin" => Some(3),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Bare(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(q: &str) -> Result<Vec<Tok>, QueryError> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(QueryError("unterminated string".into())),
                        Some('\\') => {
                            if let Some(n) = chars.get(i + 1) {
                                s.push(*n);
                            }
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '=' => {
                out.push(Tok::Op("="));
                i += 1
            }
            '~' => {
                out.push(Tok::Op("~"));
                i += 1
            }
            '!' => match chars.get(i + 1) {
                Some('=') => {
                    out.push(Tok::Op("!="));
                    i += 2
                }
                Some('~') => {
                    out.push(Tok::Op("!~"));
                    i += 2
                }
                _ => return Err(QueryError("unexpected '!'".into())),
            },
            '>' | '<' => {
                let eq = chars.get(i + 1) == Some(&'=');
                out.push(Tok::Op(match (c, eq) {
                    ('>', true) => ">=",
                    ('>', false) => ">",
                    ('<', true) => "<=",
                    _ => "<",
                }));
                i += if eq { 2 } else { 1 };
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], ':' | '.' | '+' | '-'))
                {
                    i += 1;
                }
                out.push(Tok::Bare(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-'))
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(QueryError(format!("unexpected character '{other}'"))),
        }
    }
    Ok(out)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }
    fn expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.term()?;
        while self.keyword("AND") {
            self.pos += 1;
            let right = self.term()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn term(&mut self) -> Result<Expr, QueryError> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.expr()?;
            if self.next() != Some(Tok::RParen) {
                return Err(QueryError("expected ')'".into()));
            }
            return Ok(e);
        }
        let field = match self.next() {
            Some(Tok::Ident(f)) => f,
            other => return Err(QueryError(format!("expected a field name, got {other:?}"))),
        };
        let op = match self.next() {
            Some(Tok::Op("=")) => Op::Eq,
            Some(Tok::Op("!=")) => Op::Ne,
            Some(Tok::Op("~")) => Op::Contains,
            Some(Tok::Op("!~")) => Op::NotContains,
            Some(Tok::Op(">")) => Op::Gt,
            Some(Tok::Op(">=")) => Op::Ge,
            Some(Tok::Op("<")) => Op::Lt,
            Some(Tok::Op("<=")) => Op::Le,
            Some(Tok::Ident(k)) if k.eq_ignore_ascii_case("IN") => Op::In,
            Some(Tok::Ident(k)) if k.eq_ignore_ascii_case("NOT") => match self.next() {
                Some(Tok::Ident(k)) if k.eq_ignore_ascii_case("IN") => Op::NotIn,
                _ => return Err(QueryError("expected IN after NOT".into())),
            },
            other => return Err(QueryError(format!("expected an operator, got {other:?}"))),
        };
        let value = if matches!(op, Op::In | Op::NotIn) {
            if self.next() != Some(Tok::LParen) {
                return Err(QueryError("expected '(' after IN".into()));
            }
            let mut items = Vec::new();
            loop {
                items.push(self.literal()?);
                match self.next() {
                    Some(Tok::Comma) => continue,
                    Some(Tok::RParen) => break,
                    _ => return Err(QueryError("expected ',' or ')' in list".into())),
                }
            }
            Literal::List(items)
        } else {
            self.literal()?
        };
        Ok(Expr::Cmp { field, op, value })
    }
    fn literal(&mut self) -> Result<Literal, QueryError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Literal::Str(s)),
            Some(Tok::Ident(k)) if k == "true" => Ok(Literal::Bool(true)),
            Some(Tok::Ident(k)) if k == "false" => Ok(Literal::Bool(false)),
            Some(Tok::Ident(k)) if k == "null" => Ok(Literal::Null),
            Some(Tok::Bare(b)) => {
                if let Some(t) = b.contains('-').then(|| parse_time(&b)).flatten() {
                    Ok(Literal::Time(t))
                } else if let Ok(n) = b.parse::<f64>() {
                    Ok(Literal::Num(n))
                } else {
                    Err(QueryError(format!("invalid value {b}")))
                }
            }
            other => Err(QueryError(format!("expected a value, got {other:?}"))),
        }
    }
}

/// Parses a query.
pub fn parse(q: &str) -> Result<Expr, QueryError> {
    let toks = tokenize(q)?;
    if toks.is_empty() {
        return Err(QueryError("empty query".into()));
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.expr()?;
    if p.pos < p.toks.len() {
        return Err(QueryError("unexpected trailing input".into()));
    }
    Ok(e)
}

impl Expr {
    /// Every field the query names.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut v = a.fields();
                v.extend(b.fields());
                v
            }
            Expr::Cmp { field, .. } => vec![field.as_str()],
        }
    }

    /// Rejects fields outside `allowed`.
    pub fn check_fields(&self, allowed: &[&str]) -> Result<(), QueryError> {
        for f in self.fields() {
            if !allowed.contains(&f) {
                return Err(QueryError(format!("Invalid field name: '{f}'")));
            }
        }
        Ok(())
    }

    /// Total number of literal values for a field (list items count one each); used for the
    /// 90-address limit on the member email filter.
    pub fn count_values(&self, field: &str) -> usize {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => a.count_values(field) + b.count_values(field),
            Expr::Cmp {
                field: f, value, ..
            } if f == field => match value {
                Literal::List(v) => v.len(),
                _ => 1,
            },
            Expr::Cmp { .. } => 0,
        }
    }

    /// Evaluates the query against one item.
    pub fn matches<'a>(&self, resolve: &impl Fn(&str) -> FieldValue<'a>) -> bool {
        match self {
            Expr::And(a, b) => a.matches(resolve) && b.matches(resolve),
            Expr::Or(a, b) => a.matches(resolve) || b.matches(resolve),
            Expr::Cmp { field, op, value } => compare(&resolve(field), *op, value),
        }
    }
}

fn compare(f: &FieldValue<'_>, op: Op, lit: &Literal) -> bool {
    use std::cmp::Ordering;
    match op {
        Op::In => match lit {
            Literal::List(items) => items.iter().any(|i| compare(f, Op::Eq, i)),
            other => compare(f, Op::Eq, other),
        },
        Op::NotIn => !compare(f, Op::In, lit),
        Op::Ne => !compare(f, Op::Eq, lit),
        Op::NotContains => !compare(f, Op::Contains, lit),
        Op::Contains => match (f, lit) {
            (FieldValue::Str(s) | FieldValue::CiStr(s), Literal::Str(l)) => {
                s.to_lowercase().contains(&l.to_lowercase())
            }
            _ => false,
        },
        _ => {
            let ord: Option<Ordering> = match (f, lit) {
                (FieldValue::Str(s), Literal::Str(l)) => Some(s.cmp(&l.as_str())),
                (FieldValue::CiStr(s), Literal::Str(l)) => {
                    Some(s.to_ascii_lowercase().cmp(&l.to_ascii_lowercase()))
                }
                (FieldValue::Time(t), Literal::Time(l)) => Some(t.cmp(l)),
                (FieldValue::Time(t), Literal::Str(l)) => parse_time(l).map(|l| t.cmp(&l)),
                (FieldValue::Bool(b), Literal::Bool(l)) => Some(b.cmp(l)),
                (FieldValue::Rank(r), Literal::Str(l)) => rank(l).map(|l| r.cmp(&l)),
                (FieldValue::Null, Literal::Null) => Some(Ordering::Equal),
                _ => None,
            };
            match (op, ord) {
                (_, None) => false,
                (Op::Eq, Some(o)) => o == Ordering::Equal,
                (Op::Gt, Some(o)) => o == Ordering::Greater,
                (Op::Ge, Some(o)) => o != Ordering::Less,
                (Op::Lt, Some(o)) => o == Ordering::Less,
                (Op::Le, Some(o)) => o != Ordering::Greater,
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_email_in_list_and_counts_addresses() {
        let e = parse(r#"user.email IN ("a@x.com", "B@x.com")"#).expect("parses");
        assert_eq!(e.count_values("user.email"), 2);
        let hit = e.matches(&|_| FieldValue::CiStr("b@X.com"));
        assert!(hit);
        assert!(!e.matches(&|_| FieldValue::CiStr("c@x.com")));
    }

    #[test]
    fn compares_datetimes_and_ranks() {
        let e = parse("updated_on>2026-01-01T00:00:00 AND permission>\"read\"").expect("parses");
        let t = parse_time("2026-03-01T00:00:00").expect("time");
        let resolve = |f: &str| match f {
            "updated_on" => FieldValue::Time(t),
            _ => FieldValue::Rank(2),
        };
        assert!(e.matches(&resolve));
        let resolve_read = |f: &str| match f {
            "updated_on" => FieldValue::Time(t),
            _ => FieldValue::Rank(1),
        };
        assert!(!e.matches(&resolve_read));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("name ==").is_err());
        assert!(parse("(name = \"x\"").is_err());
    }
}
