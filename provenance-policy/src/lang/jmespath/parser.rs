//! Pratt parser producing the JMESPath AST (same binding powers as go-jmespath).

use super::lexer::{Tok, tokenize};
use serde_json::Value;

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// AST node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Identity,
    Field(String),
    Literal(Value),
    Index(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Subexpr(Box<Node>, Box<Node>),
    /// `left[*]rhs`, `left[]rhs` (flatten on left), slices.
    Projection(Box<Node>, Box<Node>),
    /// `left.*rhs`.
    ValueProjection(Box<Node>, Box<Node>),
    /// `left[?cond]rhs`.
    Filter(Box<Node>, Box<Node>, Box<Node>),
    Flatten(Box<Node>),
    IndexExpr(Box<Node>, Box<Node>),
    Compare(Cmp, Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Pipe(Box<Node>, Box<Node>),
    MultiList(Vec<Node>),
    MultiHash(Vec<(String, Node)>),
    Function(String, Vec<Node>),
    Expref(Box<Node>),
}

/// Maximum nesting depth of the parser (bounds recursion on hostile input).
const MAX_DEPTH: usize = 256;
/// Maximum number of AST nodes built from one expression (bounds the depth of left-leaning
/// chains such as `a.a.a...`, which the evaluator walks recursively).
const MAX_NODES: usize = 4096;
/// Maximum depth of the finished AST.
const MAX_AST_DEPTH: usize = 512;

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
    nodes: usize,
}

/// Depth of an AST, computed without recursion.
fn ast_depth(root: &Node) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&Node, usize)> = vec![(root, 1)];
    while let Some((n, d)) = stack.pop() {
        max = max.max(d);
        match n {
            Node::Subexpr(a, b)
            | Node::Projection(a, b)
            | Node::ValueProjection(a, b)
            | Node::IndexExpr(a, b)
            | Node::Compare(_, a, b)
            | Node::Or(a, b)
            | Node::And(a, b)
            | Node::Pipe(a, b) => {
                stack.push((a, d + 1));
                stack.push((b, d + 1));
            }
            Node::Filter(a, b, c) => {
                stack.push((a, d + 1));
                stack.push((b, d + 1));
                stack.push((c, d + 1));
            }
            Node::Flatten(a) | Node::Not(a) | Node::Expref(a) => stack.push((a, d + 1)),
            Node::MultiList(v) | Node::Function(_, v) => {
                stack.extend(v.iter().map(|x| (x, d + 1)));
            }
            Node::MultiHash(v) => stack.extend(v.iter().map(|(_, x)| (x, d + 1))),
            Node::Identity
            | Node::Field(_)
            | Node::Literal(_)
            | Node::Index(_)
            | Node::Slice(..) => {}
        }
    }
    max
}

/// Parses `src` into an AST.
pub(crate) fn parse(src: &str) -> Result<Node, String> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        nodes: 0,
    };
    let n = p.expr(0)?;
    if ast_depth(&n) > MAX_AST_DEPTH {
        return Err("expression nested too deeply".into());
    }
    if p.cur() != &Tok::Eof {
        return Err(format!(
            "unexpected token {:?} at offset {}",
            p.cur(),
            p.offset()
        ));
    }
    Ok(n)
}

fn bx(n: Node) -> Box<Node> {
    Box::new(n)
}

impl Parser {
    fn cur(&self) -> &Tok {
        self.peek(0)
    }
    fn peek(&self, n: usize) -> &Tok {
        self.toks
            .get(self.pos + n)
            .map(|t| &t.0)
            .unwrap_or(&Tok::Eof)
    }
    fn offset(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.1).unwrap_or(0)
    }
    fn advance(&mut self) -> Tok {
        let t = self.cur().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn expect(&mut self, t: &Tok) -> Result<(), String> {
        if self.cur() == t {
            self.advance();
            Ok(())
        } else {
            Err(format!(
                "expected {t:?}, found {:?} at offset {}",
                self.cur(),
                self.offset()
            ))
        }
    }

    fn expr(&mut self, bp: u8) -> Result<Node, String> {
        self.depth += 1;
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err("expression too large".into());
        }
        if self.depth > MAX_DEPTH {
            return Err("expression nested too deeply".into());
        }
        let tok = self.advance();
        let mut left = self.nud(tok)?;
        while bp < self.cur().bp() {
            self.nodes += 1;
            if self.nodes > MAX_NODES {
                return Err("expression too large".into());
            }
            let t = self.advance();
            left = self.led(t, left)?;
        }
        self.depth -= 1;
        Ok(left)
    }

    fn nud(&mut self, tok: Tok) -> Result<Node, String> {
        match tok {
            Tok::Literal(v) => Ok(Node::Literal(v)),
            Tok::RawStr(s) => Ok(Node::Literal(Value::String(s))),
            Tok::Ident(s) => Ok(Node::Field(s)),
            Tok::QIdent(s) => {
                if self.cur() == &Tok::Lparen {
                    return Err("a quoted identifier cannot be a function name".into());
                }
                Ok(Node::Field(s))
            }
            Tok::Star => {
                let rhs = if self.cur() == &Tok::Rbracket {
                    Node::Identity
                } else {
                    self.projection_rhs(Tok::Star.bp())?
                };
                Ok(Node::ValueProjection(bx(Node::Identity), bx(rhs)))
            }
            Tok::Filter => self.filter(Node::Identity),
            Tok::Lbrace => self.multi_hash(),
            Tok::Flatten => {
                let rhs = self.projection_rhs(Tok::Flatten.bp())?;
                Ok(Node::Projection(
                    bx(Node::Flatten(bx(Node::Identity))),
                    bx(rhs),
                ))
            }
            Tok::Lbracket => match self.cur() {
                Tok::Number(_) | Tok::Colon => {
                    let right = self.index_expr()?;
                    self.project_if_slice(Node::Identity, right)
                }
                Tok::Star if self.peek(1) == &Tok::Rbracket => {
                    self.advance();
                    self.advance();
                    let rhs = self.projection_rhs(Tok::Star.bp())?;
                    Ok(Node::Projection(bx(Node::Identity), bx(rhs)))
                }
                _ => self.multi_list(),
            },
            Tok::Current => Ok(Node::Identity),
            Tok::Expref => Ok(Node::Expref(bx(self.expr(Tok::Expref.bp())?))),
            Tok::Not => Ok(Node::Not(bx(self.expr(Tok::Not.bp())?))),
            Tok::Lparen => {
                let e = self.expr(0)?;
                self.expect(&Tok::Rparen)?;
                Ok(e)
            }
            Tok::Eof => Err("unexpected end of expression".into()),
            t => Err(format!("unexpected token {t:?}")),
        }
    }

    fn led(&mut self, tok: Tok, left: Node) -> Result<Node, String> {
        match tok {
            Tok::Dot => {
                if self.cur() != &Tok::Star {
                    let right = self.dot_rhs(Tok::Dot.bp())?;
                    Ok(Node::Subexpr(bx(left), bx(right)))
                } else {
                    self.advance();
                    let right = self.projection_rhs(Tok::Dot.bp())?;
                    Ok(Node::ValueProjection(bx(left), bx(right)))
                }
            }
            Tok::Pipe => Ok(Node::Pipe(bx(left), bx(self.expr(Tok::Pipe.bp())?))),
            Tok::Or => Ok(Node::Or(bx(left), bx(self.expr(Tok::Or.bp())?))),
            Tok::And => Ok(Node::And(bx(left), bx(self.expr(Tok::And.bp())?))),
            Tok::Lparen => {
                let name = match left {
                    Node::Field(n) => n,
                    _ => return Err("invalid function name".into()),
                };
                let mut args = Vec::new();
                while self.cur() != &Tok::Rparen {
                    args.push(self.expr(0)?);
                    if self.cur() == &Tok::Comma {
                        self.advance();
                        if self.cur() == &Tok::Rparen {
                            return Err("trailing comma in function arguments".into());
                        }
                    } else if self.cur() != &Tok::Rparen {
                        return Err(format!(
                            "expected ',' or ')' at offset {}, found {:?}",
                            self.offset(),
                            self.cur()
                        ));
                    }
                }
                self.advance();
                Ok(Node::Function(name, args))
            }
            Tok::Filter => self.filter(left),
            Tok::Flatten => {
                let rhs = self.projection_rhs(Tok::Flatten.bp())?;
                Ok(Node::Projection(bx(Node::Flatten(bx(left))), bx(rhs)))
            }
            Tok::Eq | Tok::Ne | Tok::Lt | Tok::Lte | Tok::Gt | Tok::Gte => {
                let op = match tok {
                    Tok::Eq => Cmp::Eq,
                    Tok::Ne => Cmp::Ne,
                    Tok::Lt => Cmp::Lt,
                    Tok::Lte => Cmp::Lte,
                    Tok::Gt => Cmp::Gt,
                    _ => Cmp::Gte,
                };
                let right = self.expr(tok.bp())?;
                Ok(Node::Compare(op, bx(left), bx(right)))
            }
            Tok::Lbracket => match self.cur() {
                Tok::Number(_) | Tok::Colon => {
                    let right = self.index_expr()?;
                    self.project_if_slice(left, right)
                }
                _ => {
                    self.expect(&Tok::Star)?;
                    self.expect(&Tok::Rbracket)?;
                    let rhs = self.projection_rhs(Tok::Star.bp())?;
                    Ok(Node::Projection(bx(left), bx(rhs)))
                }
            },
            t => Err(format!("unexpected token {t:?}")),
        }
    }

    fn filter(&mut self, left: Node) -> Result<Node, String> {
        let cond = self.expr(0)?;
        self.expect(&Tok::Rbracket)?;
        let rhs = if self.cur() == &Tok::Flatten {
            Node::Identity
        } else {
            self.projection_rhs(Tok::Filter.bp())?
        };
        Ok(Node::Filter(bx(left), bx(rhs), bx(cond)))
    }

    fn project_if_slice(&mut self, left: Node, right: Node) -> Result<Node, String> {
        let is_slice = matches!(right, Node::Slice(..));
        let ie = Node::IndexExpr(bx(left), bx(right));
        if is_slice {
            let rhs = self.projection_rhs(Tok::Star.bp())?;
            Ok(Node::Projection(bx(ie), bx(rhs)))
        } else {
            Ok(ie)
        }
    }

    fn index_expr(&mut self) -> Result<Node, String> {
        if self.cur() == &Tok::Colon || self.peek(1) == &Tok::Colon {
            let mut parts: [Option<i64>; 3] = [None, None, None];
            let mut idx = 0usize;
            loop {
                match self.cur().clone() {
                    Tok::Rbracket => break,
                    Tok::Colon => {
                        idx += 1;
                        if idx > 2 {
                            return Err("too many colons in slice".into());
                        }
                        self.advance();
                    }
                    Tok::Number(n) => {
                        parts[idx] = Some(n);
                        self.advance();
                    }
                    t => return Err(format!("unexpected token {t:?} in slice")),
                }
            }
            self.expect(&Tok::Rbracket)?;
            Ok(Node::Slice(parts[0], parts[1], parts[2]))
        } else {
            let n = match self.advance() {
                Tok::Number(n) => n,
                t => return Err(format!("expected number, found {t:?}")),
            };
            self.expect(&Tok::Rbracket)?;
            Ok(Node::Index(n))
        }
    }

    fn projection_rhs(&mut self, bp: u8) -> Result<Node, String> {
        let c = self.cur().clone();
        if c.bp() < 10 {
            Ok(Node::Identity)
        } else if matches!(c, Tok::Lbracket | Tok::Filter) {
            self.expr(bp)
        } else if c == Tok::Dot {
            self.advance();
            self.dot_rhs(bp)
        } else {
            Err(format!(
                "unexpected token {c:?} after projection at offset {}",
                self.offset()
            ))
        }
    }

    fn dot_rhs(&mut self, bp: u8) -> Result<Node, String> {
        match self.cur() {
            Tok::Ident(_) | Tok::QIdent(_) | Tok::Star => self.expr(bp),
            Tok::Lbracket => {
                self.advance();
                self.multi_list()
            }
            Tok::Lbrace => {
                self.advance();
                self.multi_hash()
            }
            t => Err(format!(
                "expected identifier, '[' or '{{' after '.', found {t:?} at offset {}",
                self.offset()
            )),
        }
    }

    fn multi_list(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        loop {
            items.push(self.expr(0)?);
            if self.cur() == &Tok::Rbracket {
                break;
            }
            self.expect(&Tok::Comma)?;
        }
        self.expect(&Tok::Rbracket)?;
        Ok(Node::MultiList(items))
    }

    fn multi_hash(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        loop {
            let key = match self.advance() {
                Tok::Ident(s) | Tok::QIdent(s) => s,
                t => return Err(format!("expected key in multi-select hash, found {t:?}")),
            };
            self.expect(&Tok::Colon)?;
            let v = self.expr(0)?;
            items.push((key, v));
            match self.cur() {
                Tok::Comma => {
                    self.advance();
                }
                Tok::Rbrace => {
                    self.advance();
                    break;
                }
                // go-jmespath (Kyverno's) reads the next key when the comma is missing.
                Tok::Ident(_) | Tok::QIdent(_) => {}
                t => return Err(format!("expected ',' or '}}', found {t:?}")),
            }
        }
        Ok(Node::MultiHash(items))
    }
}
