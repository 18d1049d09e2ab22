//! The input line: a single-line editor with the usual readline keys and a
//! history of submitted lines. I/O-free; keys are mapped to these
//! operations in [`super::app`].

use unicode_width::UnicodeWidthChar;

/// Lines kept in the history.
const HISTORY_LEN: usize = 500;

/// Longest line accepted, in bytes: more than any server takes (the text
/// limit is announced at login and checked by the server), small enough
/// that a huge paste cannot eat memory.
pub const MAX_LINE: usize = 256 * 1024;

/// A line being edited, a cursor in it, and the lines submitted before.
#[derive(Debug, Default)]
pub struct LineEditor {
    text: String,
    /// Byte offset of the cursor, always on a char boundary.
    cursor: usize,
    history: Vec<String>,
    /// Index in `history` of the line shown, while browsing it.
    browsing: Option<usize>,
    /// The line being typed before browsing started, given back at the end.
    draft: String,
}

impl LineEditor {
    /// An empty line with an empty history.
    pub fn new() -> LineEditor {
        LineEditor::default()
    }

    /// The line as typed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Byte offset of the cursor.
    #[cfg(test)]
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Display width of the text before the cursor.
    pub fn cursor_width(&self) -> usize {
        self.text[..self.cursor].chars().map(|c| c.width().unwrap_or(0)).sum()
    }

    /// Inserts `c` at the cursor (control characters are ignored).
    pub fn insert(&mut self, c: char) {
        if !c.is_control() && self.text.len() + c.len_utf8() <= MAX_LINE {
            self.text.insert(self.cursor, c);
            self.cursor += c.len_utf8();
        }
    }

    /// Inserts pasted text: line breaks and tabs become spaces, other
    /// control characters are dropped.
    pub fn insert_str(&mut self, s: &str) {
        for c in s.chars() {
            match c {
                '\r' | '\n' | '\t' => self.insert(' '),
                c => self.insert(c),
            }
        }
    }

    fn prev_boundary(&self, at: usize) -> usize {
        self.text[..at].char_indices().next_back().map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self, at: usize) -> usize {
        self.text[at..].chars().next().map_or(at, |c| at + c.len_utf8())
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        let start = self.prev_boundary(self.cursor);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        let end = self.next_boundary(self.cursor);
        self.text.replace_range(self.cursor..end, "");
    }

    /// One character left.
    pub fn left(&mut self) {
        self.cursor = self.prev_boundary(self.cursor);
    }

    /// One character right.
    pub fn right(&mut self) {
        self.cursor = self.next_boundary(self.cursor);
    }

    /// To the start of the line.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// To the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Start of the word before `at`: back over spaces, then over the word.
    fn word_start(&self, at: usize) -> usize {
        let before = &self.text[..at];
        let trimmed = before.trim_end_matches(char::is_whitespace);
        trimmed.rfind(char::is_whitespace).map_or(0, |i| i + 1)
    }

    /// End of the word after `at`: over spaces, then over the word.
    fn word_end(&self, at: usize) -> usize {
        let after = &self.text[at..];
        let skipped = after.len() - after.trim_start_matches(char::is_whitespace).len();
        let rest = &after[skipped..];
        at + skipped + rest.find(char::is_whitespace).unwrap_or(rest.len())
    }

    /// One word left (Ctrl-Left, Alt-B).
    pub fn word_left(&mut self) {
        self.cursor = self.word_start(self.cursor);
    }

    /// One word right (Ctrl-Right, Alt-F).
    pub fn word_right(&mut self) {
        self.cursor = self.word_end(self.cursor);
    }

    /// Deletes the word before the cursor (Ctrl-W).
    pub fn delete_word_back(&mut self) {
        let start = self.word_start(self.cursor);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes from the start of the line to the cursor (Ctrl-U).
    pub fn kill_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Deletes from the cursor to the end of the line (Ctrl-K).
    pub fn kill_to_end(&mut self) {
        self.text.truncate(self.cursor);
    }

    fn show(&mut self, text: String) {
        self.text = text;
        self.cursor = self.text.len();
    }

    /// The previous line of the history (Up).
    pub fn history_prev(&mut self) {
        let index = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.text);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(index);
        self.show(self.history[index].clone());
    }

    /// The next line of the history, or back to the draft (Down).
    pub fn history_next(&mut self) {
        let Some(index) = self.browsing else { return };
        if index + 1 < self.history.len() {
            self.browsing = Some(index + 1);
            self.show(self.history[index + 1].clone());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.show(draft);
        }
    }

    /// Takes the line (Enter): the editor is empty again, and the line is
    /// added to the history unless blank or the same as the last one.
    pub fn submit(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY_LEN {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        line
    }

    /// Completes the word before the cursor from `candidates` (Tab): the
    /// whole word if one candidate fits, else their longest common prefix.
    /// A nick completed at the start of the line gets `": "`.
    pub fn complete<'a>(&mut self, candidates: impl IntoIterator<Item = &'a str>) {
        let start = self.text[..self.cursor].rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let prefix = &self.text[start..self.cursor];
        if prefix.is_empty() {
            return;
        }
        let lower = prefix.to_lowercase();
        let matches: Vec<&str> =
            candidates.into_iter().filter(|c| c.to_lowercase().starts_with(&lower)).collect();
        let completion = match matches.as_slice() {
            [] => return,
            [one] => {
                let suffix = if start == 0 && !one.starts_with('/') { ": " } else { " " };
                format!("{one}{suffix}")
            }
            [first, rest @ ..] => {
                let mut common = first.len();
                for other in rest {
                    common = common.min(common_prefix_len(first, other));
                }
                if common < prefix.len() {
                    return;
                }
                first[..common].to_owned()
            }
        };
        self.text.replace_range(start..self.cursor, &completion);
        self.cursor = start + completion.len();
    }
}

/// Bytes the two strings share at their start (case-insensitively), on a
/// char boundary of `a`.
fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| !x.to_lowercase().eq(y.to_lowercase()))
        .map_or_else(|| a.len().min(b.len()), |((i, _), _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &str) -> LineEditor {
        let mut e = LineEditor::new();
        s.chars().for_each(|c| e.insert(c));
        e
    }

    #[test]
    fn editing_in_the_middle_of_a_line() {
        let mut e = typed("helo wrld");
        e.home();
        (0..3).for_each(|_| e.right());
        e.insert('l');
        e.end();
        (0..3).for_each(|_| e.left());
        e.insert('o');
        assert_eq!(e.text(), "hello world");
        e.backspace();
        e.delete();
        assert_eq!(e.text(), "hello wld");
        assert_eq!(e.cursor(), 7);
    }

    #[test]
    fn multibyte_and_wide_characters() {
        let mut e = typed("né 日本");
        assert_eq!(e.cursor_width(), 7);
        e.backspace();
        e.left();
        e.left();
        e.backspace();
        assert_eq!(e.text(), "n 日");
        assert_eq!(e.cursor_width(), 1);
        e.insert('\u{1b}');
        assert_eq!(e.text(), "n 日", "control characters are not inserted");
    }

    #[test]
    fn word_keys() {
        let mut e = typed("one two  three");
        e.delete_word_back();
        assert_eq!(e.text(), "one two  ");
        e.delete_word_back();
        assert_eq!(e.text(), "one ");
        let mut e = typed("one two three");
        e.word_left();
        e.word_left();
        assert_eq!(e.cursor(), 4);
        e.word_right();
        assert_eq!(e.cursor(), 7);
        e.kill_to_end();
        assert_eq!(e.text(), "one two");
        e.word_left();
        e.kill_to_start();
        assert_eq!((e.text(), e.cursor()), ("two", 0));
    }

    #[test]
    fn history_browses_and_gives_the_draft_back() {
        let mut e = LineEditor::new();
        for line in ["first", "second", "second", "  "] {
            line.chars().for_each(|c| e.insert(c));
            e.submit();
        }
        "draft".chars().for_each(|c| e.insert(c));
        e.history_prev();
        assert_eq!(e.text(), "second", "duplicates and blank lines are not kept");
        e.history_prev();
        assert_eq!(e.text(), "first");
        e.history_prev();
        assert_eq!(e.text(), "first");
        e.history_next();
        e.history_next();
        assert_eq!(e.text(), "draft");
        assert_eq!(e.cursor(), 5);
        e.history_next();
        assert_eq!(e.text(), "draft");
    }

    #[test]
    fn paste_flattens_lines() {
        let mut e = LineEditor::new();
        e.insert_str("a\r\nb\tc\u{7}");
        assert_eq!(e.text(), "a  b c");
    }

    #[test]
    fn tab_completes_nicks_and_commands() {
        let mut e = typed("bo");
        e.complete(["alice", "bob"]);
        assert_eq!(e.text(), "bob: ");
        let mut e = typed("hi AL");
        e.complete(["alice", "albert"]);
        assert_eq!(e.text(), "hi al");
        let mut e = typed("/jo");
        e.complete(["/join", "/leave"]);
        assert_eq!(e.text(), "/join ");
        let mut e = typed("zz");
        e.complete(["alice"]);
        assert_eq!(e.text(), "zz");
    }
}
