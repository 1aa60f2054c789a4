//! Text from the config, the database or a probe, made safe inside Markdown: one table cell or one line of
//! prose that cannot break the table, start a link or an image, or carry raw HTML. A leaf: no crate imports.

/// `text` as one Markdown table cell (or inline text):
/// - `\` is doubled first, so the escapes below cannot be undone by the text;
/// - `|` is escaped, so the cell cannot end early;
/// - each CR and LF becomes a space, so the row stays one line;
/// - `<` and `>` become `&lt;` and `&gt;`: no raw HTML (`<script>`) and no autolink (`<http://x>`);
/// - `[` and `]` are escaped: no link (`[x](y)`, `[x][y]`), no image (`![x](y)`).
///
/// `&` is left as it is: an entity cannot make a link, a tag or a cell border in Markdown.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '[' => out.push_str("\\["),
            ']' => out.push_str("\\]"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(
            cell("api is up: HTTP 200 in 12 ms"),
            "api is up: HTTP 200 in 12 ms"
        );
        assert_eq!(cell("R&D ≥ 99.5% (target)"), "R&D ≥ 99.5% (target)");
    }

    #[test]
    fn a_pipe_cannot_end_the_cell() {
        assert_eq!(cell("down | refused"), "down \\| refused");
    }

    #[test]
    fn line_breaks_keep_the_row_on_one_line() {
        assert_eq!(cell("a\nb\r\nc\rd"), "a b  c d");
    }

    #[test]
    fn a_backslash_cannot_undo_an_escape() {
        // `\|` in the text must not become `\\|` (a literal backslash, then a cell border).
        assert_eq!(cell("a\\|b"), "a\\\\\\|b");
        assert_eq!(cell("c:\\temp"), "c:\\\\temp");
        assert_eq!(cell("\\[x](y)"), "\\\\\\[x\\](y)");
    }

    #[test]
    fn links_and_images_are_text() {
        assert_eq!(cell("[x](http://evil)"), "\\[x\\](http://evil)");
        assert_eq!(
            cell("![x](http://evil/p.png)"),
            "!\\[x\\](http://evil/p.png)"
        );
        assert_eq!(cell("[x][ref]"), "\\[x\\]\\[ref\\]");
    }

    #[test]
    fn autolinks_and_raw_html_are_text() {
        assert_eq!(cell("<http://evil>"), "&lt;http://evil&gt;");
        assert_eq!(cell("<a@b.c>"), "&lt;a@b.c&gt;");
        assert_eq!(
            cell("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(cell("<img src=x onerror=y>"), "&lt;img src=x onerror=y&gt;");
    }
}
