//! Drawing the [`App`] with ratatui: the pane shown, the side list of
//! panes and members, the status line and the input line. A pure function
//! of the state (and the time, for countdowns), redrawn whole each time,
//! so nothing that arrives can disturb the line being typed.

use chrono::{DateTime, Local};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use std::time::Instant;
use unicode_width::UnicodeWidthChar;

use super::app::{plural, App};
use super::link::Link;
use super::pane::{Delivery, Entry, Level, Pane, PaneId};

/// Width of the side list.
const SIDE_WIDTH: u16 = 24;

/// Nick colours: readable on dark and light backgrounds alike.
const PALETTE: [Color; 12] = [
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
];

/// The colour of `nick`: the same in every pane and every session.
pub fn nick_color(nick: &str) -> Color {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let hash = nick
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

/// `HH:MM` in local time.
pub fn hhmm(ts_us: u64) -> String {
    let local = DateTime::from_timestamp_micros(i64::try_from(ts_us).unwrap_or(i64::MAX))
        .map(|t| t.with_timezone(&Local));
    local.map_or_else(|| "--:--".into(), |t| t.format("%H:%M").to_string())
}

/// `text` with control characters shown as escapes: another user must not
/// be able to send the terminal escape sequences. Line breaks are kept.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push_str("    "),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App, now: Instant) {
    let [main, status, input] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1), Constraint::Length(1)])
            .areas(frame.area());
    let pane = app.current_pane();
    if main.width >= SIDE_WIDTH * 3 {
        let [messages, side] =
            Layout::horizontal([Constraint::Min(10), Constraint::Length(SIDE_WIDTH)]).areas(main);
        draw_messages(frame, app, pane, messages);
        draw_side(frame, app, side);
    } else {
        draw_messages(frame, app, pane, main);
    }
    draw_status(frame, app, status, now);
    draw_input(frame, app, input);
}

fn title(app: &App, pane: &Pane) -> String {
    match &pane.id {
        PaneId::Room(_) if !pane.joined => format!(" {} (not joined) ", pane.id.label()),
        PaneId::Room(_) => {
            let count = pane.member_count.unwrap_or(pane.members.len() as u32);
            format!(" {} - {} ", pane.id.label(), plural(count, "member"))
        }
        PaneId::Direct(_) => format!(" {} - direct messages ", pane.id.label()),
        PaneId::Server => format!(" {} - {} ", pane.id.label(), app.addr),
    }
}

fn draw_messages(frame: &mut Frame<'_>, app: &App, pane: &Pane, area: Rect) {
    let block = Block::default().borders(Borders::ALL).title(title(app, pane));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (width, height) = (usize::from(inner.width), usize::from(inner.height));
    if width == 0 || height == 0 {
        return;
    }
    // Wrap only what can be seen, newest first.
    let shown = pane.entries().len().saturating_sub(pane.scroll);
    let mut rows: Vec<Line<'static>> = Vec::new();
    for entry in pane.entries().range(..shown).rev() {
        let mut lines = wrap(entry_spans(app, entry), width, 6);
        lines.append(&mut rows);
        rows = lines;
        if rows.len() >= height {
            break;
        }
    }
    let skip = rows.len().saturating_sub(height);
    let visible: Vec<_> = rows.into_iter().skip(skip).collect();
    // Bottom-aligned, like a chat.
    let top = inner.y + inner.height - visible.len() as u16;
    let area = Rect { y: top, height: visible.len() as u16, ..inner };
    frame.render_widget(Paragraph::new(visible), area);
}

/// One entry as styled pieces.
fn entry_spans(app: &App, entry: &Entry) -> Vec<Span<'static>> {
    let dim = Style::default().fg(Color::DarkGray);
    match entry {
        Entry::Message { ts_us, from, text, history, mention, delivery, .. } => {
            let mut nick = Style::default().fg(nick_color(from)).add_modifier(Modifier::BOLD);
            let mut body = Style::default();
            if *history {
                nick = nick.add_modifier(Modifier::DIM);
                body = dim;
            }
            if *mention {
                body = body.add_modifier(Modifier::BOLD).fg(Color::Yellow);
            }
            let mut spans = vec![Span::styled(format!("{} ", hhmm(*ts_us)), dim)];
            if *from == app.nick {
                nick = nick.add_modifier(Modifier::UNDERLINED);
            }
            spans.push(Span::styled(from.clone(), nick));
            spans.push(Span::styled(": ", dim));
            match delivery {
                Delivery::Delivered => spans.push(Span::styled(sanitize(text), body)),
                Delivery::Sending(_) => {
                    spans.push(Span::styled(sanitize(text), dim));
                    spans.push(Span::styled(" (sending...)", dim.add_modifier(Modifier::ITALIC)));
                }
                Delivery::Failed(why) => {
                    spans.push(Span::styled(sanitize(text), dim.add_modifier(Modifier::CROSSED_OUT)));
                    spans.push(Span::styled(format!(" (not sent: {why})"), Style::default().fg(Color::Red)));
                }
            }
            spans
        }
        Entry::Notice { ts_us, level, text } => {
            let style = match level {
                Level::Info => Style::default().fg(Color::Cyan),
                Level::Error => Style::default().fg(Color::Red),
                Level::Presence => dim,
                Level::Marker => dim.add_modifier(Modifier::BOLD),
            };
            vec![Span::styled(format!("{} ", hhmm(*ts_us)), dim), Span::styled(sanitize(text), style)]
        }
    }
}

/// Word-wraps styled text to `width` columns; continuation rows are
/// indented by `indent` (under the text, past the time). Words longer than
/// a row are cut. `\n` starts a new row.
pub fn wrap(spans: Vec<Span<'static>>, width: usize, indent: usize) -> Vec<Line<'static>> {
    let indent = if indent * 2 > width { 0 } else { indent };
    let mut rows: Vec<Vec<Span<'static>>> = vec![Vec::new()];
    let mut col = 0;
    let new_row = |rows: &mut Vec<Vec<Span<'static>>>, col: &mut usize| {
        rows.push(vec![Span::raw(" ".repeat(indent))]);
        *col = indent;
    };
    for span in spans {
        let style = span.style;
        // Words with their trailing spaces, and line breaks on their own.
        let mut words: Vec<&str> = Vec::new();
        let text: &str = &span.content;
        let mut start = 0;
        for (i, c) in text.char_indices() {
            let next = i + c.len_utf8();
            let ends_word = c == '\n' || (c == ' ' && text[next..].chars().next().is_some_and(|n| n != ' '));
            if c == '\n' {
                words.push(&text[start..i]);
                words.push("\n");
                start = next;
            } else if ends_word {
                words.push(&text[start..next]);
                start = next;
            }
        }
        words.push(&text[start..]);
        for word in words.into_iter().filter(|w| !w.is_empty()) {
            if word == "\n" {
                new_row(&mut rows, &mut col);
                continue;
            }
            let w: usize = word.trim_end().chars().map(|c| c.width().unwrap_or(0)).sum();
            if col + w > width && col > indent {
                new_row(&mut rows, &mut col);
            }
            let mut piece = String::new();
            for c in word.chars() {
                let cw = c.width().unwrap_or(0);
                if col + cw > width {
                    if c == ' ' {
                        continue;
                    }
                    if let Some(row) = rows.last_mut() {
                        row.push(Span::styled(std::mem::take(&mut piece), style));
                    }
                    new_row(&mut rows, &mut col);
                }
                piece.push(c);
                col += cw;
            }
            if let Some(row) = rows.last_mut() {
                row.push(Span::styled(piece, style));
            }
        }
    }
    rows.into_iter().map(Line::from).collect()
}

fn draw_side(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let list_height = (app.panes.len() as u16 + 2).min(area.height / 2).max(3);
    let [list, members] = Layout::vertical([Constraint::Length(list_height), Constraint::Min(0)]).areas(area);

    let rows: Vec<Line<'_>> = app
        .panes
        .iter()
        .enumerate()
        .map(|(i, pane)| {
            let mut style = Style::default();
            if i == app.current {
                style = style.add_modifier(Modifier::REVERSED);
            } else if pane.mentioned {
                style = style.fg(Color::Yellow).add_modifier(Modifier::BOLD);
            } else if pane.unread > 0 {
                style = style.add_modifier(Modifier::BOLD);
            } else if matches!(pane.id, PaneId::Room(_)) && !pane.joined {
                style = style.fg(Color::DarkGray);
            }
            let unread = if pane.unread > 0 { format!(" ({})", pane.unread) } else { String::new() };
            let name_width = usize::from(SIDE_WIDTH).saturating_sub(6 + unread.len());
            let label: String = pane.id.label().chars().take(name_width).collect();
            Line::styled(format!("{:>2} {label}{unread}", i + 1), style)
        })
        .collect();
    let block = Block::default().borders(Borders::ALL).title(" panes ");
    frame.render_widget(Paragraph::new(rows).block(block), list);

    let pane = app.current_pane();
    let title = match pane.id {
        PaneId::Server => " members ".to_owned(),
        _ => format!(" members ({}) ", pane.members.len()),
    };
    let rows: Vec<Line<'_>> = pane
        .members
        .iter()
        .map(|nick| {
            let mut style = Style::default().fg(nick_color(nick));
            if *nick == app.nick {
                style = style.add_modifier(Modifier::BOLD);
            }
            Line::styled(format!(" {nick}"), style)
        })
        .collect();
    frame.render_widget(
        Paragraph::new(rows).block(Block::default().borders(Borders::ALL).title(title)),
        members,
    );
}

fn draw_status(frame: &mut Frame<'_>, app: &App, area: Rect, now: Instant) {
    let bar = Style::default().bg(Color::Blue).fg(Color::White);
    let link = match app.link {
        Link::Up => bar,
        Link::Down { .. } => bar.bg(Color::Red),
        _ => bar.bg(Color::Yellow).fg(Color::Black),
    };
    let mut spans = vec![Span::styled(format!(" {} ", app.link_text(now)), link)];
    let pane = app.current_pane();
    if pane.scroll > 0 {
        spans.push(Span::styled(format!(" [scrolled back {}: PageDown, Esc] ", pane.scroll), bar));
    }
    if let Some(error) = app.status_text(now) {
        spans.push(Span::styled(format!(" ! {} ", sanitize(error).replace('\n', " ")), bar.bg(Color::Red)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
}

fn draw_input(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let prompt = format!("{}> ", app.current_pane().id.label());
    let prompt_width = prompt.chars().count();
    let width = usize::from(area.width).saturating_sub(prompt_width + 1).max(1);
    // Scroll the line sideways so that the cursor stays visible.
    let cursor = app.input.cursor_width();
    let skip_cols = cursor.saturating_sub(width);
    let mut shown = String::new();
    let mut col = 0;
    for c in app.input.text().chars() {
        let w = c.width().unwrap_or(0);
        if col >= skip_cols && col + w <= skip_cols + width {
            shown.push(c);
        }
        col += w;
    }
    let line = Line::from(vec![
        Span::styled(prompt, Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(shown),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x =
        area.x + (prompt_width + cursor - skip_cols).min(usize::from(area.width.saturating_sub(1))) as u16;
    frame.set_cursor_position(Position { x, y: area.y });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    #[test]
    fn wrap_breaks_between_words_and_indents() {
        let spans = vec![Span::raw("12:00 "), Span::raw("bob: "), Span::raw("the quick brown fox jumps")];
        assert_eq!(text(&wrap(spans, 21, 6)), ["12:00 bob: the quick ", "      brown fox jumps"]);
    }

    #[test]
    fn wrap_cuts_long_words_and_keeps_line_breaks() {
        let spans = vec![Span::raw("abcdefghij"), Span::raw("\nxy")];
        assert_eq!(text(&wrap(spans, 4, 1)), ["abcd", " efg", " hij", " xy"]);
    }

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(sanitize("a\u{1b}[2Jb\r"), "a\\u{1b}[2Jb\\u{d}");
        assert_eq!(sanitize("two\nlines"), "two\nlines");
    }

    #[test]
    fn nick_colours_are_stable() {
        assert_eq!(nick_color("alice"), nick_color("alice"));
        let colours: std::collections::HashSet<_> =
            ["alice", "bob", "carol", "dave", "eve", "mallory"].iter().map(|n| nick_color(n)).collect();
        assert!(colours.len() >= 4, "nicks spread over the palette");
    }
}
