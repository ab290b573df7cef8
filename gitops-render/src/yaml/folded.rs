//! The round trip a folded block scalar (`>`) makes inside kustomize.
//!
//! kyaml prints each resource with yaml.v3 (indent 2, compact sequences) and reads the text
//! back before converting it to JSON. yaml.v3's folded-scalar writer (`emitterc.go`,
//! `yaml_emitter_write_folded_scalar`) decides whether a line break needs an extra empty line
//! by looking at the start of the whole value instead of the next line (libyaml looks at the
//! next line). For folded text with more-indented lines the value read back differs from the
//! value written: this module writes the scalar as yaml.v3 does (no line width limit, a line
//! break after the header) and reads it back, so the renderer ends up with kustomize's value.

use saphyr_parser::{Event, Parser};

use super::analyze::{analyze_block_allowed, at, is_blank, is_blankz, is_break, is_space, width};

struct Writer {
    out: String,
    column: usize,
    indent: usize,
    indention: bool,
    whitespace: bool,
}

impl Writer {
    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
        self.indention = true;
    }

    fn write_indent(&mut self) {
        if !self.indention
            || self.column > self.indent
            || (self.column == self.indent && !self.whitespace)
        {
            self.put_break();
        }
        while self.column < self.indent {
            self.out.push(' ');
            self.column += 1;
        }
        self.whitespace = true;
    }

    fn write(&mut self, s: &str, i: &mut usize) {
        let w = width(s.as_bytes()[*i]);
        self.out.push_str(&s[*i..*i + w]);
        self.column += 1;
        *i += w;
    }

    fn write_break(&mut self, s: &str, i: &mut usize) {
        if s.as_bytes()[*i] == b'\n' {
            self.put_break();
            *i += 1;
        } else {
            self.write(s, i);
            self.column = 0;
            self.indention = true;
        }
    }
}

/// yaml.v3's block scalar header hints: indentation indicator and chomping indicator.
fn hints(value: &str) -> String {
    let b = value.as_bytes();
    let mut h = String::new();
    if is_space(b, 0) || is_break(b, 0) {
        h.push('2');
    }
    if b.is_empty() {
        h.push('-');
        return h;
    }
    let mut i = b.len() - 1;
    while i > 0 && b[i] & 0xC0 == 0x80 {
        i -= 1;
    }
    if !is_break(b, i) {
        h.push('-');
    } else if i == 0 {
        h.push('+');
    } else {
        i -= 1;
        while i > 0 && b[i] & 0xC0 == 0x80 {
            i -= 1;
        }
        if is_break(b, i) {
            h.push('+');
        }
    }
    h
}

/// The value of a folded scalar after kyaml's print-and-read round trip, when the content
/// sits at column `indent` (the indentation yaml.v3 gives it). `None` when the value comes
/// back unchanged or would not be printed as a block scalar (then it survives as is).
pub(super) fn v3_round_trip(value: &str, indent: usize) -> Option<String> {
    if !analyze_block_allowed(value) {
        return None;
    }
    let parent = indent.saturating_sub(2);
    let mut w = Writer {
        out: format!("{}x: >{}", " ".repeat(parent), hints(value)),
        column: 0,
        indent,
        indention: false,
        whitespace: true,
    };
    // `yaml_emitter_process_line_comment_linebreak(emitter, true)`: the header ends its line.
    w.put_break();
    let b = value.as_bytes();
    let mut breaks = true;
    let mut leading_spaces = true;
    let mut i = 0;
    while i < b.len() {
        if is_break(b, i) {
            if !breaks && !leading_spaces && b[i] == b'\n' {
                // yaml.v3 scans from the start of the value here, not from the next line.
                let mut k = 0;
                while is_break(b, k) {
                    k += width(at(b, k));
                }
                if !is_blankz(b, k) {
                    w.put_break();
                }
            }
            w.write_break(value, &mut i);
            breaks = true;
        } else {
            if breaks {
                w.write_indent();
                leading_spaces = is_blank(b, i);
            }
            // yaml.v3's line width is unlimited: long lines are never folded.
            w.write(value, &mut i);
            w.indention = false;
            breaks = false;
        }
    }
    // What follows starts on a new line (yaml.v3's `write_indent` breaks only mid-line).
    if w.column > 0 {
        w.out.push('\n');
    }
    let mut read = None;
    for ev in Parser::new_from_str(&w.out) {
        match ev {
            Ok((Event::Scalar(text, _, _, _), _)) if text != "x" => {
                read = Some(text.into_owned());
                break;
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    read.filter(|r| r != value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_indented_lines_gain_an_empty_line() {
        let v = "folded text continues here\nnew paragraph\n  indented more\nback";
        assert_eq!(
            v3_round_trip(v, 4).as_deref(),
            Some("folded text continues here\nnew paragraph\n\n  indented more\nback")
        );
        assert_eq!(v3_round_trip("plain folded text\n", 4), None);
        assert_eq!(v3_round_trip("para one\n\npara two\n", 2), None);
    }
}
