//! A YAML emitter that writes what `kubectl kustomize` writes.
//!
//! Kustomize prints each resource with `sigs.k8s.io/yaml.JSONToYAML`, i.e. with yaml.v2's
//! encoder (`encode.go`) over libyaml's emitter as ported to Go (`emitterc.go`). This module
//! follows that emitter for the shapes a JSON document can take: block mappings and
//! sequences (sequences inside mappings not indented), `{}` / `[]` for empty collections,
//! and the scalar style rules: plain when yaml.v2 would read the text back as the same
//! string, single quotes when plain is not allowed, double quotes (with escapes) when
//! single quotes are not allowed, literal blocks for text with line breaks, and folding of
//! long flow scalars at 80 columns.
//!
//! Keys are written in the order of the map; [`super::sort_keys`] puts them in yaml.v2's order.

use serde_json::{Map, Value};

use super::analyze::{Analysis, analyze, is_break, is_printable, is_space, width};
use super::scalar::{format_float_g, v2_plain_is_string};

const BEST_INDENT: isize = 2;
const BEST_WIDTH: usize = 80;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

#[derive(Clone, Copy, Default)]
struct Ctx {
    mapping: bool,
    simple_key: bool,
}

/// Writes JSON-shaped values as YAML documents, byte for byte as yaml.v2 does.
pub(crate) struct Emitter<'o> {
    out: &'o mut String,
    column: usize,
    indent: isize,
    indents: Vec<isize>,
    whitespace: bool,
    indention: bool,
}

impl<'o> Emitter<'o> {
    /// An emitter appending to `out`.
    pub(crate) fn new(out: &'o mut String) -> Self {
        Emitter {
            out,
            column: 0,
            indent: -1,
            indents: Vec::new(),
            whitespace: true,
            indention: true,
        }
    }

    /// Writes `value` as one document, as `yaml.Marshal` does (no `---`, final line break).
    pub(crate) fn document(&mut self, value: &Value) {
        self.column = 0;
        self.indent = -1;
        self.indents.clear();
        self.whitespace = true;
        self.indention = true;
        self.node(value, Ctx::default());
        self.write_indent();
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    /// Copies the character of `s` at byte `*i`.
    fn write(&mut self, s: &str, i: &mut usize) {
        let w = width(s.as_bytes()[*i]);
        self.out.push_str(&s[*i..*i + w]);
        self.column += 1;
        *i += w;
    }

    fn write_all(&mut self, s: &str) {
        let mut i = 0;
        while i < s.len() {
            self.write(s, &mut i);
        }
    }

    fn write_break(&mut self, s: &str, i: &mut usize) {
        if s.as_bytes()[*i] == b'\n' {
            self.put_break();
            *i += 1;
        } else {
            self.write(s, i);
            self.column = 0;
        }
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        self.write_all(indicator);
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn node(&mut self, value: &Value, ctx: Ctx) {
        match value {
            Value::Object(m) if m.is_empty() => self.empty_flow("{", "}"),
            Value::Array(a) if a.is_empty() => self.empty_flow("[", "]"),
            Value::Object(m) => self.mapping(m),
            Value::Array(items) => {
                let indentless = ctx.mapping && !self.indention;
                self.increase_indent(false, indentless);
                for item in items {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.node(item, Ctx::default());
                }
                self.pop_indent();
            }
            Value::Null => self.plain_text("null", ctx),
            Value::Bool(b) => self.plain_text(if *b { "true" } else { "false" }, ctx),
            Value::Number(n) => {
                let text = if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                    format_float_g(f)
                } else {
                    n.to_string()
                };
                self.plain_text(&text, ctx);
            }
            Value::String(s) => {
                let a = analyze(s);
                self.scalar(s, string_style(s), &a, ctx);
            }
        }
    }

    /// Writes a mapping object as one document (the map need not be wrapped in a `Value`).
    pub(crate) fn document_map(&mut self, map: &Map<String, Value>) {
        self.column = 0;
        self.indent = -1;
        self.indents.clear();
        self.whitespace = true;
        self.indention = true;
        if map.is_empty() {
            self.empty_flow("{", "}");
        } else {
            self.mapping(map);
        }
        self.write_indent();
    }

    fn mapping(&mut self, m: &Map<String, Value>) {
        self.increase_indent(false, false);
        for (k, v) in m {
            self.write_indent();
            let key_style = string_style(k);
            let a = analyze(k);
            if !a.multiline && k.len() <= 128 {
                let ctx = Ctx {
                    mapping: true,
                    simple_key: true,
                };
                self.scalar(k, key_style, &a, ctx);
                self.write_indicator(":", false, false, false);
            } else {
                let ctx = Ctx {
                    mapping: true,
                    simple_key: false,
                };
                self.write_indicator("?", true, false, true);
                self.scalar(k, key_style, &a, ctx);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            let ctx = Ctx {
                mapping: true,
                simple_key: false,
            };
            self.node(v, ctx);
        }
        self.pop_indent();
    }

    fn empty_flow(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.write_indicator(close, false, false, false);
    }

    fn plain_text(&mut self, text: &str, ctx: Ctx) {
        let a = analyze(text);
        self.scalar(text, Style::Plain, &a, ctx);
    }

    /// libyaml's `yaml_emitter_select_scalar_style` and `yaml_emitter_process_scalar`.
    fn scalar(&mut self, value: &str, requested: Style, a: &Analysis, ctx: Ctx) {
        let mut style = requested;
        if ctx.simple_key && a.multiline {
            style = Style::Double;
        }
        if style == Style::Plain && (!a.block_plain_allowed || (value.is_empty() && ctx.simple_key))
        {
            style = Style::Single;
        }
        if style == Style::Single && !a.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block_allowed || ctx.simple_key) {
            style = Style::Double;
        }
        self.increase_indent(true, false);
        let allow_breaks = !ctx.simple_key;
        match style {
            Style::Plain => self.write_plain(value, allow_breaks),
            Style::Single => self.write_single_quoted(value, allow_breaks),
            Style::Double => self.write_double_quoted(value, allow_breaks),
            Style::Literal => self.write_literal(value),
        }
        self.pop_indent();
    }

    fn write_plain(&mut self, value: &str, allow_breaks: bool) {
        let b = value.as_bytes();
        if !self.whitespace {
            self.put(' ');
        }
        let mut spaces = false;
        let mut breaks = false;
        let mut i = 0;
        while i < b.len() {
            if is_space(b, i) {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !is_space(b, i + 1) {
                    self.write_indent();
                    i += 1;
                } else {
                    self.write(value, &mut i);
                }
                spaces = true;
            } else if is_break(b, i) {
                if !breaks && b[i] == b'\n' {
                    self.put_break();
                }
                self.write_break(value, &mut i);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(value, &mut i);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single_quoted(&mut self, value: &str, allow_breaks: bool) {
        let b = value.as_bytes();
        self.write_indicator("'", true, false, false);
        let mut spaces = false;
        let mut breaks = false;
        let mut i = 0;
        while i < b.len() {
            if is_space(b, i) {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i < b.len() - 1
                    && !is_space(b, i + 1)
                {
                    self.write_indent();
                    i += 1;
                } else {
                    self.write(value, &mut i);
                }
                spaces = true;
            } else if is_break(b, i) {
                if !breaks && b[i] == b'\n' {
                    self.put_break();
                }
                self.write_break(value, &mut i);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if b[i] == b'\'' {
                    self.put('\'');
                }
                self.write(value, &mut i);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, value: &str, allow_breaks: bool) {
        let b = value.as_bytes();
        let starts_with_bom = value.starts_with('\u{FEFF}');
        let mut spaces = false;
        self.write_indicator("\"", true, false, false);
        let mut i = 0;
        while i < b.len() {
            if !is_printable(b, i)
                || starts_with_bom
                || is_break(b, i)
                || b[i] == b'"'
                || b[i] == b'\\'
            {
                let w = width(b[i]);
                let ch = value[i..i + w].chars().next().map_or(0, u32::from);
                i += w;
                self.put('\\');
                match ch {
                    0x00 => self.put('0'),
                    0x07 => self.put('a'),
                    0x08 => self.put('b'),
                    0x09 => self.put('t'),
                    0x0A => self.put('n'),
                    0x0B => self.put('v'),
                    0x0C => self.put('f'),
                    0x0D => self.put('r'),
                    0x1B => self.put('e'),
                    0x22 => self.put('"'),
                    0x5C => self.put('\\'),
                    0x85 => self.put('N'),
                    0xA0 => self.put('_'),
                    0x2028 => self.put('L'),
                    0x2029 => self.put('P'),
                    _ => {
                        let (marker, digits) = if ch <= 0xFF {
                            ('x', 2)
                        } else if ch <= 0xFFFF {
                            ('u', 4)
                        } else {
                            ('U', 8)
                        };
                        self.put(marker);
                        for k in (0..digits).rev() {
                            let d = (ch >> (k * 4)) & 0x0F;
                            self.put(
                                char::from_digit(d, 16).map_or('0', |c| c.to_ascii_uppercase()),
                            );
                        }
                    }
                }
                spaces = false;
            } else if is_space(b, i) {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i < b.len() - 1 {
                    self.write_indent();
                    if is_space(b, i + 1) {
                        self.put('\\');
                    }
                    i += 1;
                } else {
                    self.write(value, &mut i);
                }
                spaces = true;
            } else {
                self.write(value, &mut i);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_block_scalar_hints(&mut self, value: &str) {
        let b = value.as_bytes();
        if is_space(b, 0) || is_break(b, 0) {
            let hint = char::from(b'0' + BEST_INDENT as u8);
            self.write_indicator(&hint.to_string(), false, false, false);
        }
        let chomp = if b.is_empty() {
            Some("-")
        } else {
            let mut i = b.len() - 1;
            while i > 0 && b[i] & 0xC0 == 0x80 {
                i -= 1;
            }
            if !is_break(b, i) {
                Some("-")
            } else if i == 0 {
                Some("+")
            } else {
                i -= 1;
                while i > 0 && b[i] & 0xC0 == 0x80 {
                    i -= 1;
                }
                if is_break(b, i) { Some("+") } else { None }
            }
        };
        if let Some(c) = chomp {
            self.write_indicator(c, false, false, false);
        }
    }

    fn write_literal(&mut self, value: &str) {
        let b = value.as_bytes();
        self.write_indicator("|", true, false, false);
        self.write_block_scalar_hints(value);
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        let mut i = 0;
        while i < b.len() {
            if is_break(b, i) {
                self.write_break(value, &mut i);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.write(value, &mut i);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// The style yaml.v2's encoder asks for a string (`stringv`).
fn string_style(s: &str) -> Style {
    if s.contains('\n') {
        Style::Literal
    } else if v2_plain_is_string(s) {
        Style::Plain
    } else {
        Style::Double
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn emit(v: &Value) -> String {
        let mut out = String::new();
        Emitter::new(&mut out).document(v);
        out
    }

    #[test]
    fn block_styles_like_yaml_v2() {
        let v = json!({
            "a": {"b": [1, "2", {"c": "d", "e": []}], "f": {}},
            "g": "#x", "h": "a: b", "i": "line1\nline2", "j": "x\n", "k": "x\n\n",
            "l": "tab\there", "m": "", "n": null, "o": "yes", "p": [[1, 2]],
        });
        let want = "a:\n  b:\n  - 1\n  - \"2\"\n  - c: d\n    e: []\n  f: {}\ng: '#x'\nh: 'a: b'\n\
                    i: |-\n  line1\n  line2\nj: |\n  x\nk: |+\n  x\n\nl: \"tab\\there\"\nm: \"\"\n\
                    \"n\": null\no: \"yes\"\np:\n- - 1\n  - 2\n";
        assert_eq!(emit(&v), want);
    }

    #[test]
    fn long_scalars_fold_at_80_columns() {
        let long = "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr ssss";
        let v = json!({"data": {"long": long}});
        assert_eq!(
            emit(&v),
            "data:\n  long: aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo\n    pppp qqqq rrrr ssss\n"
        );
    }
}
