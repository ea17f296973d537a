//! Tokens of the filter language and the quoting rules of containerd's filters.
//!
//! The scanner is driven by the parser: whether the next token is read as a field
//! or as a value depends on where the parser is, exactly as in containerd (after an
//! operator, `b.c` is one value; elsewhere it is a field path).

/// One token and the byte offset where it starts in the filter text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub pos: usize,
    pub kind: TokenKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenKind {
    /// A bare field name: `[A-Za-z0-9_-]+`.
    Field(String),
    /// A bare value: everything up to `,`, whitespace or a control character.
    Value(String),
    /// A quoted string, unescaped; `quote` is `"`, `/` or `|`.
    Quoted {
        quote: char,
        text: String,
    },
    Dot,
    Comma,
    /// A run of `=`, `!` and `~`; the parser decides whether it is a known operator.
    Operator(String),
    /// A character that cannot start any token here.
    Other(char),
    Eof,
}

/// A lexical error: where it is and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ScanError {
    pub pos: usize,
    pub message: String,
}

/// Whether the next token is read in field position or in value position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Field,
    Value,
}

#[derive(Debug, Clone)]
pub(super) struct Scanner<'a> {
    src: &'a str,
    pos: usize,
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_operator_char(c: char) -> bool {
    matches!(c, '=' | '!' | '~')
}

fn is_quote_char(c: char) -> bool {
    matches!(c, '"' | '/' | '|')
}

fn is_value_char(c: char) -> bool {
    c != ',' && !c.is_whitespace() && !c.is_control()
}

impl<'a> Scanner<'a> {
    pub fn new(src: &'a str) -> Self {
        Scanner { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Consumes characters while `keep` holds and returns them.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        let len = self
            .rest()
            .find(|c: char| !keep(c))
            .unwrap_or(self.rest().len());
        self.pos += len;
        &self.src[start..self.pos]
    }

    /// Returns the next token without consuming it.
    pub fn peek(&self, mode: Mode) -> Result<Token, ScanError> {
        self.clone().next_token(mode)
    }

    /// Consumes and returns the next token, skipping whitespace before it.
    pub fn next_token(&mut self, mode: Mode) -> Result<Token, ScanError> {
        self.take_while(char::is_whitespace);
        let pos = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(Token {
                pos,
                kind: TokenKind::Eof,
            });
        };
        let kind = if is_quote_char(c) {
            self.quoted(c)?
        } else if c == ',' {
            self.pos += 1;
            TokenKind::Comma
        } else if mode == Mode::Value {
            if is_value_char(c) {
                TokenKind::Value(self.take_while(is_value_char).to_owned())
            } else {
                TokenKind::Other(c)
            }
        } else if c == '.' {
            self.pos += 1;
            TokenKind::Dot
        } else if is_operator_char(c) {
            TokenKind::Operator(self.take_while(is_operator_char).to_owned())
        } else if is_field_char(c) {
            TokenKind::Field(self.take_while(is_field_char).to_owned())
        } else {
            TokenKind::Other(c)
        };
        Ok(Token { pos, kind })
    }

    /// Reads a quoted string opened by `quote` at the current position.
    ///
    /// Escapes follow Go string syntax as containerd accepts it: `\a \b \f \n \r \t
    /// \v \\`, the closing quote itself, three octal digits, `\xHH` (both raw
    /// bytes), `\uHHHH` and `\UHHHHHHHH`. Anything else (`\.` included) is an error,
    /// and so is a newline before the closing quote.
    fn quoted(&mut self, quote: char) -> Result<TokenKind, ScanError> {
        let open = self.pos;
        self.pos += quote.len_utf8();
        let mut bytes = Vec::new();
        loop {
            let Some(c) = self.peek_char() else {
                return Err(unterminated(open, quote));
            };
            if c == '\n' {
                return Err(unterminated(open, quote));
            }
            if c == quote {
                self.pos += c.len_utf8();
                break;
            }
            if c == '\\' {
                self.escape(quote, &mut bytes)?;
            } else {
                let mut buf = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                self.pos += c.len_utf8();
            }
        }
        let text = String::from_utf8(bytes).map_err(|_| ScanError {
            pos: open,
            message: format!(
                "quoted string {} is not valid UTF-8",
                &self.src[open..self.pos]
            ),
        })?;
        Ok(TokenKind::Quoted { quote, text })
    }

    /// Decodes one escape sequence starting at the backslash under the cursor.
    fn escape(&mut self, quote: char, out: &mut Vec<u8>) -> Result<(), ScanError> {
        let start = self.pos;
        self.pos += 1;
        let illegal = |scanner: &Self| ScanError {
            pos: start,
            message: format!(
                "illegal escape sequence {:?}",
                &scanner.src[start..scanner.pos]
            ),
        };
        let Some(c) = self.peek_char() else {
            return Err(illegal(self));
        };
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            _ if c == quote => Some(c as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        let (radix, digits, first) = match c {
            '0'..='7' => (8, 2, c.to_digit(8)),
            'x' => (16, 2, None),
            'u' => (16, 4, None),
            'U' => (16, 8, None),
            _ => return Err(illegal(self)),
        };
        let mut value = first.unwrap_or(0);
        for _ in 0..digits {
            let Some(d) = self.peek_char().and_then(|d| d.to_digit(radix)) else {
                return Err(illegal(self));
            };
            self.pos += 1;
            value = value * radix + d;
        }
        match c {
            'u' | 'U' => {
                let ch = char::from_u32(value).ok_or_else(|| illegal(self))?;
                let mut buf = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            _ => out.push(u8::try_from(value).map_err(|_| illegal(self))?),
        }
        Ok(())
    }
}

fn unterminated(pos: usize, quote: char) -> ScanError {
    ScanError {
        pos,
        message: format!("quoted string opened with {quote:?} is not terminated"),
    }
}
