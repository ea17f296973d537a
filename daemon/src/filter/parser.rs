//! Recursive-descent parser for one filter expression (one conjunction).
//!
//! Grammar (containerd's, with whitespace allowed between any two tokens):
//!
//! ```text
//! expression := selector ("," selector)*
//! selector   := fieldpath (operator value)?
//! fieldpath  := field ("." field)*
//! field      := [A-Za-z0-9_-]+ | "double-quoted"
//! operator   := "==" | "!=" | "~="
//! value      := bare | "double-quoted" | /slash-quoted/ | |pipe-quoted|   (the last two after ~= only)
//! ```

use super::scanner::{Mode, ScanError, Scanner, Token, TokenKind};
use super::{compile_regex, Conjunction, FilterError, Operator, Selector};

pub(super) struct Parser<'a> {
    text: &'a str,
    scanner: Scanner<'a>,
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a str) -> Self {
        Parser {
            text,
            scanner: Scanner::new(text),
        }
    }

    /// Parses the whole expression; the empty string matches everything, as in containerd.
    pub fn expression(mut self) -> Result<Conjunction, FilterError> {
        let mut selectors = Vec::new();
        if self.text.is_empty() {
            return Ok(Conjunction { selectors });
        }
        loop {
            selectors.push(self.selector()?);
            let token = self.next(Mode::Field)?;
            match token.kind {
                TokenKind::Comma => continue,
                TokenKind::Eof => return Ok(Conjunction { selectors }),
                _ => return Err(self.error(token.pos, r#"expected "," or the end of the filter"#)),
            }
        }
    }

    fn selector(&mut self) -> Result<Selector, FilterError> {
        let path = self.fieldpath()?;
        let token = self
            .scanner
            .peek(Mode::Field)
            .map_err(|e| self.scan_error(e))?;
        let op =
            match token.kind {
                TokenKind::Comma | TokenKind::Eof => {
                    return Ok(Selector {
                        path,
                        op: Operator::Present,
                    })
                }
                TokenKind::Operator(op) => {
                    self.next(Mode::Field)?;
                    op
                }
                _ => return Err(self.error(
                    token.pos,
                    r#"expected an operator ("==", "!=" or "~="), "," or the end of the filter"#,
                )),
            };
        let regex = op == "~=";
        if !regex && op != "==" && op != "!=" {
            return Err(self.error(
                token.pos,
                &format!(r#"unsupported operator {op:?}; expected "==", "!=" or "~=""#),
            ));
        }
        let value_token = self.next(Mode::Value)?;
        let value = match value_token.kind {
            TokenKind::Value(v) => v,
            TokenKind::Quoted { quote: '"', text } => text,
            TokenKind::Quoted { text, .. } if regex => text,
            TokenKind::Quoted { quote, .. } => {
                return Err(self.error(
                    value_token.pos,
                    &format!(r#"{quote}…{quote} quoting is only allowed for "~=" values"#),
                ))
            }
            _ => return Err(self.error(value_token.pos, &format!("expected a value after {op:?}"))),
        };
        let op = match op.as_str() {
            "==" => Operator::Equal(value),
            "!=" => Operator::NotEqual(value),
            _ => {
                let regex = compile_regex(&value).map_err(|source| FilterError::Regex {
                    filter: self.text.to_owned(),
                    pos: value_token.pos,
                    pattern: value.clone(),
                    source,
                })?;
                Operator::Matches {
                    source: value,
                    regex,
                }
            }
        };
        Ok(Selector { path, op })
    }

    fn fieldpath(&mut self) -> Result<Vec<String>, FilterError> {
        let mut path = vec![self.field("expected a field name or a quoted string")?];
        while self
            .scanner
            .peek(Mode::Field)
            .map_err(|e| self.scan_error(e))?
            .kind
            == TokenKind::Dot
        {
            self.next(Mode::Field)?;
            path.push(self.field(r#"expected a field name or a quoted string after ".""#)?);
        }
        Ok(path)
    }

    fn field(&mut self, expected: &str) -> Result<String, FilterError> {
        let token = self.next(Mode::Field)?;
        match token.kind {
            TokenKind::Field(name) => Ok(name),
            TokenKind::Quoted { quote: '"', text } => Ok(text),
            TokenKind::Quoted { quote, .. } => Err(self.error(
                token.pos,
                &format!(r#"a field name can only be quoted with '"', not {quote:?}"#),
            )),
            _ => Err(self.error(token.pos, expected)),
        }
    }

    fn next(&mut self, mode: Mode) -> Result<Token, FilterError> {
        self.scanner
            .next_token(mode)
            .map_err(|e| self.scan_error(e))
    }

    fn scan_error(&self, e: ScanError) -> FilterError {
        self.error(e.pos, &e.message)
    }

    fn error(&self, pos: usize, message: &str) -> FilterError {
        FilterError::Syntax {
            filter: self.text.to_owned(),
            pos,
            message: message.to_owned(),
        }
    }
}
